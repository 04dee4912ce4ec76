/**
 * Listeners of every kind with real clients: MQTT.js over TCP, TLS, WebSocket and secure
 * WebSocket; `mosquitto_pub` with `--cafile` and client certificates; certificates made by the
 * test. Plus the per-listener connection cap, the CONNECT timeout (also over the TLS handshake and
 * the WebSocket upgrade) and a TLS reload.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { copyFileSync, readFileSync } from 'node:fs'
import { connect as netConnect, type Socket } from 'node:net'
import { test, type TestContext } from 'node:test'
import { connect as tlsConnect } from 'node:tls'
import { promisify } from 'node:util'
import { connect, connectAsync, type IClientOptions, type MqttClient } from 'mqtt'
import { pino, type Logger } from 'pino'
import { WebSocket } from 'ws'
import { defaultConfig, defaultListener } from '../src/config/defaults.js'
import type { ListenerConfig, ListenerTls, OutpostConfig } from '../src/config/types.js'
import { startGateway, type Gateway } from '../src/gateway.js'
import { makeCerts, type Certs } from '../scripts/lib/certs.js'
import { Inbox } from './helpers/inbox.js'
import { LogCapture, type LogLine } from './helpers/log-capture.js'
import { tempDir } from './helpers/outpost-process.js'

const run = promisify(execFile)

function tlsOf(certs: Certs, more: Partial<ListenerTls> = {}): ListenerTls {
  return { certFile: certs.server.cert, keyFile: certs.server.key, caFile: certs.ca.cert, minVersion: 'TLSv1.2', ciphers: undefined, requireCertificate: false, useIdentityAsUsername: false, ...more }
}

async function gateway(t: TestContext, listeners: ListenerConfig[], overrides: Partial<OutpostConfig> = {}, log: Logger = pino({ level: 'silent' })): Promise<{ gw: Gateway; ports: number[] }> {
  const config: OutpostConfig = { ...defaultConfig(), sysInterval: 0, dataDir: tempDir(t, 'outpost-listeners-'), listeners, ...overrides }
  const gw = await startGateway(config, log)
  t.after(() => gw.close())
  return { gw, ports: gw.addresses().map((a) => a.port) }
}

async function roundTrip(t: TestContext, url: string, options: IClientOptions = {}): Promise<void> {
  const client = await connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
  t.after(() => client.endAsync())
  const inbox = new Inbox(client)
  await client.subscribeAsync('rt/#', { qos: 1 })
  await client.publishAsync('rt/x', url, { qos: 1 })
  assert.equal((await inbox.waitFor((m) => m.topic === 'rt/x', `${url}: round trip`)).payload, url)
}

test('mqtt, mqtts, ws and wss listeners side by side: MQTT.js round-trips on each, and they share one broker', async (t) => {
  const certs = await makeCerts(tempDir(t, 'outpost-certs-'))
  const { ports } = await gateway(t, [
    defaultListener('mqtt', 0, '127.0.0.1'),
    { ...defaultListener('mqtts', 0, '127.0.0.1'), tls: tlsOf(certs) },
    defaultListener('ws', 0, '127.0.0.1'),
    { ...defaultListener('wss', 0, '127.0.0.1'), tls: tlsOf(certs) },
  ])
  const [mqtt, mqtts, ws, wss] = ports
  const ca = readFileSync(certs.ca.cert)
  await roundTrip(t, `mqtt://127.0.0.1:${mqtt}`)
  await roundTrip(t, `mqtts://localhost:${mqtts}`, { ca })
  await roundTrip(t, `ws://localhost:${ws}/mqtt`)
  await roundTrip(t, `wss://localhost:${wss}/mqtt`, { ca, protocolVersion: 5 })
  // One broker: a WebSocket subscriber sees a TLS publisher's message.
  const sub = await connectAsync(`ws://localhost:${ws}/mqtt`, { reconnectPeriod: 0 })
  t.after(() => sub.endAsync())
  const inbox = new Inbox(sub)
  await sub.subscribeAsync('cross/#', { qos: 1 })
  const pub = await connectAsync(`mqtts://localhost:${mqtts}`, { reconnectPeriod: 0, ca })
  t.after(() => pub.endAsync())
  await pub.publishAsync('cross/a', 'from tls', { qos: 1 })
  assert.equal((await inbox.waitFor((m) => m.topic === 'cross/a', 'across listeners')).payload, 'from tls')
})

test('WebSocket: the mqtt subprotocol is chosen, another path is refused', async (t) => {
  const { ports } = await gateway(t, [{ ...defaultListener('ws', 0, '127.0.0.1'), path: '/broker' }])
  const port = ports[0] ?? 0
  const ws = new WebSocket(`ws://127.0.0.1:${port}/broker`, ['mqtt'])
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  assert.equal(ws.protocol, 'mqtt')
  ws.close()
  const wrong = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, ['mqtt'])
  const refused = await new Promise<string>((resolve) => {
    wrong.once('open', () => resolve('open'))
    wrong.once('unexpected-response', (_req, res) => resolve(`http ${res.statusCode}`))
    wrong.once('error', (err) => resolve(`error ${err.message}`))
  })
  assert.notEqual(refused, 'open')
})

test('mosquitto_pub over TLS with --cafile; require_certificate admits a client certificate from the CA and refuses others', async (t) => {
  const certs = await makeCerts(tempDir(t, 'outpost-certs-'))
  const { ports } = await gateway(t, [
    { ...defaultListener('mqtts', 0, '127.0.0.1'), tls: tlsOf(certs) },
    { ...defaultListener('mqtts', 0, '127.0.0.1'), tls: tlsOf(certs, { requireCertificate: true }) },
  ])
  const [open, strict] = ports
  await run('mosquitto_pub', ['-h', 'localhost', '-p', String(open), '--cafile', certs.ca.cert, '-t', 'a', '-m', 'x', '-q', '1'])
  await run('mosquitto_pub', ['-h', 'localhost', '-p', String(strict), '--cafile', certs.ca.cert, '--cert', certs.client.cert, '--key', certs.client.key, '-t', 'a', '-m', 'x', '-q', '1'])
  await assert.rejects(run('mosquitto_pub', ['-h', 'localhost', '-p', String(strict), '--cafile', certs.ca.cert, '-t', 'a', '-m', 'x', '-q', '1']), 'no client certificate')
  await assert.rejects(run('mosquitto_pub', ['-h', 'localhost', '-p', String(strict), '--cafile', certs.ca.cert, '--cert', certs.otherClient.cert, '--key', certs.otherClient.key, '-t', 'a', '-m', 'x', '-q', '1']), 'a certificate from another CA')
  const ca = readFileSync(certs.ca.cert)
  await roundTrip(t, `mqtts://localhost:${strict}`, { ca, cert: readFileSync(certs.client.cert), key: readFileSync(certs.client.key) })
})

/** A connected MQTT.js client, or undefined when the server closes the connection first. */
function tryConnect(url: string): Promise<MqttClient | undefined> {
  return new Promise((resolve) => {
    const client = connect(url, { reconnectPeriod: 0, connectTimeout: 3000 })
    client.once('connect', () => resolve(client))
    client.once('close', () => {
      client.end(true)
      resolve(undefined)
    })
    client.on('error', () => undefined)
  })
}

test('a listener max_connections refuses one more, and takes one again when a client leaves', async (t) => {
  const { ports, gw } = await gateway(t, [{ ...defaultListener('mqtt', 0, '127.0.0.1'), maxConnections: 2 }, defaultListener('mqtt', 0, '127.0.0.1')])
  const [capped, other] = ports
  const url = `mqtt://127.0.0.1:${capped}`
  const a = await tryConnect(url)
  const b = await tryConnect(url)
  assert.ok(a !== undefined && b !== undefined)
  assert.equal(await tryConnect(url), undefined, 'a third is refused')
  // The cap is per listener: the other one still takes clients.
  const c = await tryConnect(`mqtt://127.0.0.1:${other}`)
  assert.ok(c !== undefined)
  await a.endAsync()
  const deadline = Date.now() + 3000
  let d: MqttClient | undefined
  while (d === undefined && Date.now() < deadline) d = await tryConnect(url)
  assert.ok(d !== undefined, 'a slot came free')
  await Promise.all([b.endAsync(), c.endAsync(), d.endAsync()])
  assert.ok(gw.broker.stats.connectionsRefused >= 1)
  t.diagnostic(`refused ${gw.broker.stats.connectionsRefused}`)
})

test('connect_timeout: a socket that sends nothing, or half a CONNECT, is closed; a prompt client is not', async (t) => {
  const { ports, gw } = await gateway(t, [defaultListener('mqtt', 0, '127.0.0.1')], { connectTimeout: 1 })
  const port = ports[0] ?? 0
  const closedAfter = (first: Buffer | undefined): Promise<number> =>
    new Promise((resolve) => {
      const started = Date.now()
      const s = netConnect(port, '127.0.0.1', () => {
        if (first !== undefined) s.write(first)
      })
      s.on('error', () => undefined)
      s.on('close', () => resolve(Date.now() - started))
    })
  const [silent, partial] = await Promise.all([closedAfter(undefined), closedAfter(Buffer.from([0x10, 0x20, 0x00, 0x04, 0x4d]))])
  for (const ms of [silent, partial]) assert.ok(ms >= 900 && ms < 4000, `closed after ${ms} ms`)
  assert.equal(gw.broker.stats.connectTimeouts, 2)
  const client = await connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 })
  await new Promise((r) => setTimeout(r, 1500))
  assert.equal(client.connected, true, 'a connected client outlives the timeout')
  await client.endAsync()
})

test('reload (SIGHUP): new connections get the new certificate, an open TLS connection stays up', async (t) => {
  const dir = tempDir(t, 'outpost-certs-')
  const certs = await makeCerts(dir)
  // The listener reads these paths; the test swaps their contents.
  const live = { certFile: `${dir}/live.crt`, keyFile: `${dir}/live.key` }
  copyFileSync(certs.server.cert, live.certFile)
  copyFileSync(certs.server.key, live.keyFile)
  const { ports, gw } = await gateway(t, [{ ...defaultListener('mqtts', 0, '127.0.0.1'), tls: { ...tlsOf(certs), ...live } }])
  const port = ports[0] ?? 0
  const ca = readFileSync(certs.ca.cert)
  const serialOf = (): Promise<string> =>
    new Promise((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost', rejectUnauthorized: false }, () => {
        resolve(s.getPeerCertificate().serialNumber)
        s.destroy()
      })
      s.on('error', reject)
    })
  const before = await serialOf()
  const client = await connectAsync(`mqtts://localhost:${port}`, { reconnectPeriod: 0, ca })
  t.after(() => client.endAsync())
  copyFileSync(certs.wrongName.cert, live.certFile)
  copyFileSync(certs.wrongName.key, live.keyFile)
  await gw.reload()
  const after = await serialOf()
  assert.notEqual(after, before, 'the new certificate is served')
  assert.equal(client.connected, true, 'the open connection was not dropped')
  await client.publishAsync('still/here', 'yes', { qos: 1 })
})

/**
 * Milliseconds until the server closes `socket`, or undefined when it is still open after
 * `limitMs` (the socket is then destroyed by us, so the test does not hang).
 */
function closedWithin(socket: Socket, limitMs: number): Promise<number | undefined> {
  const started = Date.now()
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      resolve(undefined)
      socket.destroy()
    }, limitMs)
    socket.on('error', () => undefined)
    socket.once('close', () => {
      clearTimeout(timer)
      resolve(Date.now() - started)
    })
  })
}

test('connect_timeout also bounds the TLS handshake and the WebSocket upgrade: silent or stalled sockets on mqtts, ws and wss are closed', async (t) => {
  const certs = await makeCerts(tempDir(t, 'outpost-certs-'))
  const capture = new LogCapture('info')
  const { gw, ports } = await gateway(
    t,
    [
      { ...defaultListener('mqtts', 0, '127.0.0.1'), tls: tlsOf(certs) },
      defaultListener('ws', 0, '127.0.0.1'),
      { ...defaultListener('wss', 0, '127.0.0.1'), tls: tlsOf(certs) },
    ],
    { connectTimeout: 1 },
    capture.logger,
  )
  const [mqtts = 0, ws = 0, wss = 0] = ports
  const ca = readFileSync(certs.ca.cert)
  // TLS up, then no HTTP request at all.
  const tlsNoUpgrade = tlsConnect({ host: '127.0.0.1', port: wss, ca, servername: 'localhost' })
  const tlsUp = new Promise<void>((resolve) => tlsNoUpgrade.once('secureConnect', resolve))
  // The request line, then one header byte every 200 ms: an idle timer would never fire.
  const trickle = netConnect(ws, '127.0.0.1', () => trickle.write('GET /mqtt HTTP/1.1\r\n'))
  const drip = setInterval(() => trickle.write('X'), 200)
  t.after(() => clearInterval(drip))
  const cases: [string, Socket][] = [
    ['mqtts, nothing sent', netConnect(mqtts, '127.0.0.1')],
    ['ws, nothing sent', netConnect(ws, '127.0.0.1')],
    ['wss, nothing sent', netConnect(wss, '127.0.0.1')],
    ['wss, TLS done but no upgrade', tlsNoUpgrade],
    ['ws, headers trickling', trickle],
  ]
  const closed = await Promise.all(cases.map(([, socket]) => closedWithin(socket, 5000)))
  clearInterval(drip)
  await tlsUp
  for (const [i, [what]] of cases.entries()) {
    const ms = closed[i]
    assert.ok(ms !== undefined, `${what}: still open after 5 s`)
    assert.ok(ms >= 900, `${what}: closed after ${ms} ms, before connect_timeout`)
  }
  assert.equal(gw.broker.stats.connectTimeouts, cases.length)
  const said = (msg: string): LogLine[] => capture.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith(msg))
  const tlsLines = said('TLS handshake not finished within connect_timeout')
  const upgradeLines = said('no WebSocket upgrade within connect_timeout')
  assert.equal(tlsLines.length, 2, 'the silent mqtts and wss sockets')
  assert.equal(upgradeLines.length, 3, 'the silent ws socket, the wss socket without upgrade, the trickling one')
  for (const l of [...tlsLines, ...upgradeLines]) {
    assert.equal(l.remote, '127.0.0.1', JSON.stringify(l))
    assert.match(String(l.listener), /^(mqtts|ws|wss):\/\/127\.0\.0\.1:\d+/)
  }
})

test('connect_timeout does not touch connected clients: MQTT.js over ws, wss and mqtts with keepalive 0 outlive it', async (t) => {
  const certs = await makeCerts(tempDir(t, 'outpost-certs-'))
  const { gw, ports } = await gateway(
    t,
    [
      { ...defaultListener('mqtts', 0, '127.0.0.1'), tls: tlsOf(certs) },
      defaultListener('ws', 0, '127.0.0.1'),
      { ...defaultListener('wss', 0, '127.0.0.1'), tls: tlsOf(certs) },
    ],
    { connectTimeout: 1 },
  )
  const [mqtts, ws, wss] = ports
  const ca = readFileSync(certs.ca.cert)
  const urls = [`mqtts://localhost:${mqtts}`, `ws://localhost:${ws}/mqtt`, `wss://localhost:${wss}/mqtt`]
  const closes: string[] = []
  const clients: MqttClient[] = []
  for (const url of urls) {
    // keepalive 0: nothing at all is sent while the test waits.
    const client = await connectAsync(url, { reconnectPeriod: 0, keepalive: 0, ca })
    t.after(() => client.endAsync())
    client.on('close', () => closes.push(url))
    clients.push(client)
  }
  await new Promise((r) => setTimeout(r, 2500))
  assert.deepEqual(closes, [], 'no connection was closed')
  for (const [i, client] of clients.entries()) {
    assert.equal(client.connected, true, urls[i])
    await client.publishAsync('still/here', 'yes', { qos: 1 })
  }
  assert.equal(gw.broker.stats.connectTimeouts, 0)
})
