/**
 * End-to-end: the `outpost` process itself, as systemd and an operator see it: flags, config
 * file, signals, exit codes, and what its log lines carry (and must never carry).
 */
import * as assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt'
import { generate } from 'mqtt-packet'
import { spawnOutpost, startOutpost, tempDir, type ExitResult, type OutpostProcess } from './helpers/outpost-process.js'

const WAIT_MS = 5_000

interface Finished extends ExitResult {
  stdout: string
  stderr: string
}

/** Runs outpost to completion (killed after `timeoutMs`, which fails the test). */
async function runToExit(t: TestContext, args: readonly string[], timeoutMs = WAIT_MS): Promise<Finished> {
  const child = spawnOutpost(args, tempDir(t))
  t.after(() => child.kill('SIGKILL'))
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr?.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null]
  clearTimeout(timer)
  assert.equal(signal, null, `outpost ${args.join(' ')} did not exit by itself within ${timeoutMs} ms; stderr: ${stderr}`)
  return { code, signal, stdout, stderr }
}

async function client(t: TestContext, broker: OutpostProcess, clientId: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const c = await connectAsync(broker.url, { clientId, reconnectPeriod: 0, connectTimeout: WAIT_MS, ...opts }, false)
  t.after(() => c.endAsync(true))
  return c
}

/** A raw MQTT connection that keeps its side open after the broker's FIN (allowHalfOpen). */
async function halfOpenClient(t: TestContext, broker: OutpostProcess, clientId: string): Promise<Socket> {
  const socket = createConnection({ host: broker.host, port: broker.port, allowHalfOpen: true })
  t.after(() => socket.destroy())
  socket.on('error', () => undefined)
  await once(socket, 'connect')
  socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId }))
  const [connack] = (await once(socket, 'data')) as [Buffer]
  // CONNACK: 0x20, length 2, flags, return code 0.
  assert.deepEqual([...connack.subarray(0, 4)], [0x20, 2, 0, 0])
  return socket
}

function packageVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
  if (typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string') return pkg.version
  throw new Error('package.json has no version')
}

describe('e2e: the outpost process', () => {
  test('--help prints usage and exits 0', async (t) => {
    const r = await runToExit(t, ['--help'])
    assert.equal(r.code, 0)
    assert.match(r.stdout, /^Usage:/)
    for (const flag of ['--config', '--port', '--bind', '--data-dir', '--log-level', '--version']) assert.ok(r.stdout.includes(flag), `usage mentions ${flag}`)
    assert.equal(r.stderr, '')
  })

  test('--version prints the package version and exits 0', async (t) => {
    const r = await runToExit(t, ['--version'])
    assert.equal(r.code, 0)
    assert.equal(r.stdout, `outpost ${packageVersion()}\n`)
  })

  test('starts from a YAML config file on the port it names', async (t) => {
    const broker = await startOutpost(t, { config: { max_inflight: 7, sys_interval: 0 } })
    const starting = broker.records('starting outpost')[0]
    assert.ok(starting !== undefined, 'a "starting outpost" line')
    assert.equal(typeof starting.configFile, 'string')
    const running = broker.records('outpost running')[0]
    assert.deepEqual(running?.addresses, [{ address: '127.0.0.1', family: 'IPv4', port: broker.port }])
    const c = await client(t, broker, `e2e-yaml-${randomUUID().slice(0, 8)}`)
    assert.equal(c.connected, true)
  })

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal} closes connected clients and exits 0 within 3 s`, async (t) => {
      const broker = await startOutpost(t)
      const clients = await Promise.all([1, 2].map((n) => client(t, broker, `e2e-${signal}-${n}-${randomUUID().slice(0, 8)}`)))
      // And one that never closes its side: a device that went quiet must not hold up a reboot.
      const stuck = await halfOpenClient(t, broker, `e2e-${signal}-stuck-${randomUUID().slice(0, 8)}`)
      const closed = [
        ...clients.map((c) => new Promise<void>((resolve) => c.once('close', () => resolve()))),
        // The broker's FIN; the socket itself stays open until we end it.
        new Promise<void>((resolve) => stuck.once('end', () => resolve())),
      ]
      const started = Date.now()
      const exit = await broker.stop(signal, 3_000)
      const elapsed = Date.now() - started
      assert.deepEqual(exit, { code: 0, signal: null })
      assert.ok(elapsed < 3_000, `exit took ${elapsed} ms`)
      await Promise.all(closed)
      assert.equal(broker.records('client disconnected').length, 3)
      assert.equal(broker.records('shutting down')[0]?.signal, signal)
      assert.equal(broker.records('outpost stopped').length, 1)
    })
  }

  test('one "client connected" and one "client disconnected" info line per client, without payloads or passwords', async (t) => {
    const broker = await startOutpost(t)
    const secret = `pw-${randomUUID()}`
    const payload = `PAYLOAD-${randomUUID()}`
    const id = `e2e-logs-${randomUUID().slice(0, 8)}`
    const sub = await client(t, broker, `e2e-logs-sub-${randomUUID().slice(0, 8)}`)
    await sub.subscribeAsync('logs/#', { qos: 2 })
    const got = new Promise<string>((resolve) => sub.once('message', (_topic, p) => resolve(p.toString())))

    const c = await client(t, broker, id, { username: 'alice', password: Buffer.from(secret) })
    await c.publishAsync('logs/a', payload, { qos: 1 })
    await c.publishAsync('logs/b', `${payload}-retained`, { qos: 0, retain: true })
    await c.publishAsync('logs/c', `${payload}-qos2`, { qos: 2 })
    assert.equal(await got, payload, 'the payload was routed, so it went through the broker')
    await c.endAsync()
    await broker.waitForLog((r) => r.msg === 'client disconnected' && r.clientId === id, WAIT_MS, 'disconnect line')
    assert.equal((await broker.stop()).code, 0)

    const connected = broker.records('client connected').filter((r) => r.clientId === id)
    const disconnected = broker.records('client disconnected').filter((r) => r.clientId === id)
    assert.equal(connected.length, 1, JSON.stringify(connected))
    assert.equal(disconnected.length, 1, JSON.stringify(disconnected))
    for (const line of [...connected, ...disconnected]) {
      assert.equal(line.level, 'info')
      assert.match(String(line.remote), /^127\.0\.0\.1:\d+$/)
      assert.equal(line.protocolVersion, 4)
    }
    assert.equal(connected[0]?.remote, disconnected[0]?.remote, 'both lines name the same connection')
    assert.equal(disconnected[0]?.reason, 'client sent DISCONNECT')

    const all = broker.stdoutText()
    assert.ok(!all.includes(payload), 'a payload reached the log')
    assert.ok(!all.includes(secret), 'the password reached the log')
    assert.ok(!broker.stderr.includes(secret) && !broker.stderr.includes(payload), 'stderr carries a payload or password')
  })

  test('a port already in use: exit non-zero with an error naming the port', async (t) => {
    const blocker = createServer()
    blocker.listen(0, '127.0.0.1')
    await once(blocker, 'listening')
    t.after(() => blocker.close())
    const { port } = blocker.address() as AddressInfo
    const dir = tempDir(t)
    const r = await runToExit(t, ['--port', String(port), '--bind', '127.0.0.1', '--data-dir', join(dir, 'data'), '--log-level', 'info'])
    assert.notEqual(r.code, 0)
    assert.ok(r.stderr.includes(`127.0.0.1:${port}`), `stderr names the port: ${r.stderr}`)
    assert.match(r.stderr, /EADDRINUSE/)
  })

  test('a data directory in use by a running outpost: the second one exits 1 with OUTPOST_E_STORE_LOCKED naming it', async (t) => {
    const first = await startOutpost(t)
    const r = await runToExit(t, ['--port', '0', '--bind', '127.0.0.1', '--data-dir', first.dataDir, '--log-level', 'info'])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /OUTPOST_E_STORE_LOCKED/)
    assert.ok(r.stderr.includes(first.dataDir), `stderr names the directory: ${r.stderr}`)
  })

  test('a damaged store: exit 1 with OUTPOST_E_STORE_CORRUPT and the ways out; --move-aside-store starts empty and keeps the old one', async (t) => {
    const first = await startOutpost(t)
    const dataDir = first.dataDir
    await first.stop()
    // LevelDB's pointer to its manifest, garbled: the store cannot be opened.
    writeFileSync(join(dataDir, 'store', 'CURRENT'), 'MANIFEST-999999\n')
    const r = await runToExit(t, ['--port', '0', '--bind', '127.0.0.1', '--data-dir', dataDir, '--log-level', 'info'])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /OUTPOST_E_STORE_CORRUPT/)
    assert.match(r.stderr, /outpost store repair/)
    assert.match(r.stderr, /--move-aside-store/)
    const second = await startOutpost(t, { dataDir, args: ['--move-aside-store'] })
    assert.ok(readdirSync(dataDir).some((f) => f.startsWith('store.broken-')), 'the old store is kept aside')
    await second.stop()
  })
})
