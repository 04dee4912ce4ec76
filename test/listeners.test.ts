/**
 * Listeners of every kind with real clients: MQTT.js over TCP, TLS, WebSocket and secure
 * WebSocket; `mosquitto_pub` with `--cafile` and client certificates; certificates made by the
 * test. Plus the per-listener connection cap, the CONNECT timeout and a TLS reload.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { copyFileSync, readFileSync } from 'node:fs'
import { connect as netConnect } from 'node:net'
import { test, type TestContext } from 'node:test'
import { connect as tlsConnect } from 'node:tls'
import { promisify } from 'node:util'
import { connect, connectAsync, type IClientOptions, type MqttClient } from 'mqtt'
import { pino } from 'pino'
import { WebSocket } from 'ws'
import { defaultConfig, defaultListener } from '../src/config/defaults.js'
import type { ListenerConfig, ListenerTls, OutpostConfig } from '../src/config/types.js'
import { startGateway, type Gateway } from '../src/gateway.js'
import { makeCerts, type Certs } from '../scripts/lib/certs.js'
import { Inbox } from './helpers/inbox.js'
import { tempDir } from './helpers/outpost-process.js'

const run = promisify(execFile)

function tlsOf(certs: Certs, more: Partial<ListenerTls> = {}): ListenerTls {
  return { certFile: certs.server.cert, keyFile: certs.server.key, caFile: certs.ca.cert, minVersion: 'TLSv1.2', ciphers: undefined, requireCertificate: false, useIdentityAsUsername: false, ...more }
}

async function gateway(t: TestContext, listeners: ListenerConfig[], overrides: Partial<OutpostConfig> = {}): Promise<{ gw: Gateway; ports: number[] }> {
  const config: OutpostConfig = { ...defaultConfig(), sysInterval: 0, dataDir: tempDir(t, 'outpost-listeners-'), listeners, ...overrides }
  const gw = await startGateway(config, pino({ level: 'silent' }))
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
