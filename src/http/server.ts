/**
 * The HTTP endpoint (`http:` in the config; node:http, no framework): `/healthz` and `/metrics`
 * for monitoring, without a login, and the dashboard (`/`, `/assets/*`, `/api/state`, `/login`,
 * `/logout`) behind a login when `http.password_file` is set.
 */
import { readFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import type { HttpConfig } from '../config/types.js'
import { OutpostError } from '../errors.js'
import type { Gateway } from '../gateway.js'
import type { HealthMonitor } from '../health.js'
import type { LogRing } from '../logger.js'
import { DashboardAuth, sameOrigin, sessionCookie } from './auth.js'
import { loginPage } from './login-page.js'
import { collectFamilies, renderPrometheus } from './metrics.js'
import { buildState } from './state.js'
import { startFigures, type Figures } from './sys-outpost.js'
import type { Telemetry } from './telemetry.js'

export interface HttpServerOptions {
  config: HttpConfig
  gateway: Gateway
  health: HealthMonitor
  log: Logger
  logLines: LogRing
  /** Shared with `$SYS/outpost` (see startFigures); when absent the server starts its own, and stops it at close. */
  telemetry?: Telemetry
  /** The data directory, for the disk usage figure when the server starts its own Telemetry. */
  dataDir?: string
  /** Where index.html and the assets are; default the package's src/dashboard/. */
  assetsDir?: string
}

export interface HttpServerHandle {
  address(): AddressInfo
  close(): Promise<void>
}

/** dist/src/http/server.js and src/http/server.ts both sit three levels below the package root. */
export const DEFAULT_ASSETS_DIR = fileURLToPath(new URL('../../../src/dashboard/', import.meta.url))

const ASSET_NAME = /^[a-z0-9-]+\.(js|css|svg|png)$/
const CONTENT_TYPES: Record<string, string> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
  png: 'image/png',
}
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
const NO_DASHBOARD = 'The dashboard needs http.password_file in the config (users made with `outpost passwd -c FILE USER`). /healthz and /metrics work without it.\n'
/** A login form is small; anything bigger is not one. */
const MAX_FORM_BYTES = 4096

export async function startHttpServer(options: HttpServerOptions): Promise<HttpServerHandle> {
  const { config, gateway, health, log, logLines } = options
  const assetsDir = options.assetsDir ?? DEFAULT_ASSETS_DIR
  let own: Figures | undefined
  if (options.telemetry === undefined) own = startFigures({ gateway, dataDir: options.dataDir, log, health: () => health.report() })
  const telemetry = options.telemetry ?? own?.telemetry
  if (telemetry === undefined) throw new Error('unreachable: no telemetry')
  const auth = config.passwordFile === undefined ? undefined : new DashboardAuth(config.passwordFile, log)
  const version = gateway.broker.version

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://outpost').pathname
    const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET')
    if (path === '/healthz') {
      if (!allow(res, method, ['GET'])) return
      const r = health.report()
      res.setHeader('Cache-Control', 'no-store')
      json(res, r.healthy ? 200 : 503, r)
      return
    }
    if (path === '/metrics') {
      if (!allow(res, method, ['GET'])) return
      const body = renderPrometheus(await collectFamilies({ gateway, telemetry, health: () => health.report(), version }))
      send(res, 200, 'text/plain; version=0.0.4; charset=utf-8', body)
      return
    }
    const dashboardPath = path === '/' || path === '/login' || path === '/logout' || path === '/api' || path.startsWith('/api/') || path.startsWith('/assets/')
    if (!dashboardPath) {
      send(res, 404, 'text/plain; charset=utf-8', 'Not found\n')
      return
    }
    if (auth === undefined) {
      send(res, 404, 'text/plain; charset=utf-8', NO_DASHBOARD)
      return
    }
    // Everything of the dashboard: its own sources only, never inside a frame, never sniffed.
    res.setHeader('Content-Security-Policy', CSP)
    res.setHeader('X-Content-Type-Options', 'nosniff')
    res.setHeader('Referrer-Policy', 'same-origin')
    if (method === 'POST' && !sameOrigin(req)) {
      send(res, 403, 'text/plain; charset=utf-8', 'Cross-origin request refused\n')
      return
    }
    const address = req.socket.remoteAddress ?? 'unknown'
    switch (path) {
      case '/login': {
        if (!allow(res, method, ['GET', 'POST'])) return
        res.setHeader('Cache-Control', 'no-store')
        if (method === 'GET') {
          send(res, 200, 'text/html; charset=utf-8', loginPage())
          return
        }
        const form = await readForm(req)
        if (form === undefined) {
          send(res, 400, 'text/html; charset=utf-8', loginPage('That was not a login form.'))
          return
        }
        const user = form.get('username') ?? ''
        const result = await auth.login(address, user, form.get('password') ?? '')
        if (result.ok) {
          res.setHeader('Set-Cookie', sessionCookie(result.token))
          res.setHeader('Location', '/')
          send(res, 303, 'text/plain; charset=utf-8', 'Logged in\n')
          return
        }
        // The throttle's delay is served here: a guesser waits for each answer.
        if (result.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, result.delayMs))
        if (result.reason === 'unavailable') send(res, 503, 'text/html; charset=utf-8', loginPage('Logins are not possible now: the password file could not be read (see the log).', user))
        else send(res, 401, 'text/html; charset=utf-8', loginPage('Wrong user name or password.', user))
        return
      }
      case '/logout':
        if (!allow(res, method, ['POST'])) return
        auth.logout(req)
        res.setHeader('Set-Cookie', sessionCookie(undefined))
        res.setHeader('Cache-Control', 'no-store')
        res.setHeader('Location', '/login')
        send(res, 303, 'text/plain; charset=utf-8', 'Logged out\n')
        return
      case '/':
        if (!allow(res, method, ['GET'])) return
        res.setHeader('Cache-Control', 'no-store')
        if (auth.session(req) === undefined) {
          res.setHeader('Location', '/login')
          send(res, 302, 'text/plain; charset=utf-8', 'Login required\n')
          return
        }
        await sendFile(res, join(assetsDir, 'index.html'), 'text/html; charset=utf-8')
        return
      case '/api/state':
        if (!allow(res, method, ['GET'])) return
        res.setHeader('Cache-Control', 'no-store')
        if (auth.session(req) === undefined) {
          json(res, 401, { error: 'login required' })
          return
        }
        json(res, 200, await buildState({ gateway, telemetry, health: () => health.report(), logLines, version }))
        return
    }
    if (path.startsWith('/assets/')) {
      if (!allow(res, method, ['GET'])) return
      const name = path.slice('/assets/'.length)
      const ext = ASSET_NAME.exec(name)?.[1]
      if (ext === undefined) {
        send(res, 404, 'text/plain; charset=utf-8', 'Not found\n')
        return
      }
      // The stylesheet carries no data and the login form uses it; the rest is the logged-in page.
      if (ext !== 'css' && auth.session(req) === undefined) {
        send(res, 401, 'text/plain; charset=utf-8', 'Login required\n')
        return
      }
      res.setHeader('Cache-Control', 'no-cache')
      await sendFile(res, join(assetsDir, name), CONTENT_TYPES[ext] ?? 'application/octet-stream')
      return
    }
    if (path.startsWith('/api')) json(res, 404, { error: 'not found' })
    else send(res, 404, 'text/plain; charset=utf-8', 'Not found\n')
  }

  const server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      log.error({ err, url: req.url }, 'HTTP request failed')
      if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'Internal error\n')
      else res.destroy()
    })
  })
  // A box's caretaker and a Prometheus scraper, not the public: a few connections, short timeouts.
  server.maxConnections = 64
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
  server.keepAliveTimeout = 5_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(config.port, config.bind, () => {
      server.off('error', reject)
      resolve()
    })
  }).catch((err: unknown) => {
    own?.stop()
    const code = (err as NodeJS.ErrnoException).code ?? String(err)
    throw new OutpostError('OUTPOST_E_LISTEN', `http: cannot listen on ${config.bind} port ${config.port}: ${code}`)
  })
  const address = server.address() as AddressInfo
  log.info({ address: address.address, port: address.port, dashboard: auth !== undefined }, 'HTTP endpoint listening')

  let closing: Promise<void> | undefined
  return {
    address: () => address,
    close: () => {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
        own?.stop()
      })
      return closing
    },
  }
}

function allow(res: ServerResponse, method: string, methods: readonly string[]): boolean {
  if (methods.includes(method)) return true
  res.setHeader('Allow', methods.includes('GET') ? [...methods, 'HEAD'].join(', ') : methods.join(', '))
  send(res, 405, 'text/plain; charset=utf-8', 'Method not allowed\n')
  return false
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.statusCode = status
  res.setHeader('Content-Type', type)
  res.setHeader('Content-Length', Buffer.byteLength(body))
  res.end(body)
}

function json(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value))
}

/** Read at each request: nothing of the dashboard stays in memory between polls. */
async function sendFile(res: ServerResponse, path: string, type: string): Promise<void> {
  let body: Buffer
  try {
    body = await readFile(path)
  } catch {
    send(res, 404, 'text/plain; charset=utf-8', 'Not found\n')
    return
  }
  send(res, 200, type, body)
}

/** The url-encoded body of a form POST, or undefined when it is not one or is too big. */
async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase()
  if (type !== 'application/x-www-form-urlencoded') return undefined
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req) {
    const b = chunk as Buffer
    size += b.length
    if (size > MAX_FORM_BYTES) return undefined
    chunks.push(b)
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
}
