/**
 * An in-process gateway (real TCP listener, real store in a temp dir) with its HealthMonitor and
 * the HTTP endpoint on port 0, for the HTTP, metrics and dashboard tests.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { pino } from 'pino'
import { hashPassword } from '../../src/auth/passwd.js'
import { defaultConfig, defaultListener } from '../../src/config/defaults.js'
import type { OutpostConfig } from '../../src/config/types.js'
import type { Gateway } from '../../src/gateway.js'
import { HealthMonitor } from '../../src/health.js'
import { startHttpServer, type HttpServerHandle } from '../../src/http/server.js'
import { startFigures, type Figures } from '../../src/http/sys-outpost.js'
import { createLogger, LogRing } from '../../src/logger.js'
import { tcpGateway } from './broker.js'

export interface HttpSetup {
  gateway: Gateway
  /** The MQTT listener's port. */
  port: number
  /** `http://127.0.0.1:PORT` of the HTTP endpoint. */
  base: string
  http: HttpServerHandle
  health: HealthMonitor
  figures: Figures
  ring: LogRing
  dataDir: string
  /** The gateway's config, for reloads. */
  config: OutpostConfig
}

export interface HttpSetupOptions {
  /** Users of the dashboard's password file; none = no password_file. */
  users?: Record<string, string>
  /** index.html and assets for the dashboard; default a tiny index.html and app.js. */
  assets?: Record<string, string>
  overrides?: Partial<OutpostConfig>
  /**
   * The health monitor's period (default 100 ms). Its round trip through the broker counts as a
   * message in and out, so tests that count messages exactly make it long and wait for the first.
   */
  healthIntervalMs?: number
  /** Telemetry's sample period; default an hour: tests call `figures.telemetry.sample()` themselves. */
  sampleMs?: number
}

export async function httpGateway(t: TestContext, options: HttpSetupOptions = {}): Promise<HttpSetup> {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-http-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  let passwordFile: string | undefined
  if (options.users !== undefined) {
    passwordFile = join(dir, 'passwd')
    const lines = await Promise.all(Object.entries(options.users).map(async ([u, p]) => `${u}:${await hashPassword(p, { iterations: 1000 })}`))
    writeFileSync(passwordFile, `${lines.join('\n')}\n`)
  }
  const assetsDir = join(dir, 'assets')
  mkdirSync(assetsDir)
  for (const [name, text] of Object.entries(options.assets ?? { 'index.html': '<!doctype html><title>test dashboard</title>', 'app.js': 'console.log(1)\n', 'style.css': 'body{}\n' })) {
    writeFileSync(join(assetsDir, name), text)
  }
  const ring = new LogRing()
  const log = createLogger('info', { write: () => undefined }, ring)
  const { port, gateway, dataDir } = await tcpGateway(t, { sysInterval: 1, ...options.overrides }, log)
  // As tcpGateway builds it, for reloads.
  const config: OutpostConfig = { ...defaultConfig(), sysInterval: 1, dataDir, ...options.overrides, listeners: [defaultListener('mqtt', 0, '127.0.0.1')] }
  const health = new HealthMonitor(gateway, pino({ level: 'silent' }), { intervalMs: options.healthIntervalMs ?? 100 })
  let first: () => void = () => undefined
  const checked = new Promise<void>((resolve) => (first = resolve))
  health.onReport(() => first())
  health.start()
  t.after(() => health.stop())
  await checked
  const figures = startFigures({ gateway, dataDir, log, health: () => health.report(), sampleMs: options.sampleMs ?? 3_600_000 })
  t.after(() => figures.stop())
  const http = await startHttpServer({ config: { port: 0, bind: '127.0.0.1', passwordFile }, gateway, health, log, logLines: ring, telemetry: figures.telemetry, assetsDir })
  t.after(() => http.close())
  return { gateway, port, base: `http://127.0.0.1:${http.address().port}`, http, health, figures, ring, dataDir, config }
}

/** Waits until `check` returns something other than undefined (polling), or fails naming `what`. */
export async function until<T>(check: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Logs in through the form; returns the `name=value` of the session cookie. */
export async function login(base: string, username: string, password: string): Promise<string> {
  const res = await fetch(`${base}/login`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ username, password }) })
  if (res.status !== 303) throw new Error(`login as ${username}: ${res.status} ${await res.text()}`)
  const cookie = res.headers.get('set-cookie') ?? ''
  return cookie.split(';')[0] ?? ''
}
