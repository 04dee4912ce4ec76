/**
 * A listener's password file, ACL file and anonymous default, enforced on real connections:
 * a password file written by Debian's `mosquitto_passwd`, an ACL in Mosquitto's format, MQTT.js
 * 3.1.1 and 5 clients. What Mosquitto does is the reference for each case.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { promisify } from 'node:util'
import { connect, type IClientOptions, type MqttClient } from 'mqtt'
import type { Packet } from 'mqtt-packet'
import { pino } from 'pino'
import { defaultConfig, defaultListener } from '../src/config/defaults.js'
import type { ListenerConfig, OutpostConfig } from '../src/config/types.js'
import { startGateway, type Gateway } from '../src/gateway.js'
import { makeCerts } from '../scripts/lib/certs.js'
import { Inbox } from './helpers/inbox.js'
import { LogCapture } from './helpers/log-capture.js'
import { tempDir } from './helpers/outpost-process.js'

const run = promisify(execFile)

async function gateway(t: TestContext, listeners: ListenerConfig[], overrides: Partial<OutpostConfig> = {}, log = pino({ level: 'silent' })): Promise<{ gw: Gateway; ports: number[] }> {
  const config: OutpostConfig = { ...defaultConfig(), sysInterval: 0, dataDir: tempDir(t, 'outpost-sec-'), listeners, ...overrides }
  const gw = await startGateway(config, log)
  t.after(() => gw.close())
  return { gw, ports: gw.addresses().map((a) => a.port) }
}

/** Connects, or gives the refusal's code (3.1.1 return code or MQTT 5 reason code). */
function attempt(t: TestContext, url: string, options: IClientOptions = {}): Promise<{ client: MqttClient; inbox: Inbox } | { refused: number | string }> {
  return new Promise((resolve) => {
    const client = connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
    const inbox = new Inbox(client)
    t.after(() => client.endAsync(true))
    client.once('connect', () => resolve({ client, inbox }))
    client.once('error', (err) => resolve({ refused: 'code' in err && (typeof err.code === 'number' || typeof err.code === 'string') ? err.code : err.message }))
  })
}

/** The SUBACK return / reason codes as sent (MQTT.js turns a failure code into a rejection). */
function subackCodes(client: MqttClient, filters: string[]): Promise<number[]> {
  return new Promise((resolve) => {
    const on = (packet: Packet): void => {
      if (packet.cmd !== 'suback') return
      client.off('packetreceive', on)
      resolve(packet.granted.map((g: unknown) => (typeof g === 'number' ? g : typeof g === 'object' && g !== null && 'qos' in g && typeof g.qos === 'number' ? g.qos : -1)))
    }
    client.on('packetreceive', on)
    client.subscribe(filters, () => undefined)
  })
}

async function connected(t: TestContext, url: string, options: IClientOptions = {}): Promise<{ client: MqttClient; inbox: Inbox }> {
  const r = await attempt(t, url, options)
  if ('refused' in r) throw new Error(`refused: ${String(r.refused)}`)
  return r
}

test('anonymous access: a loopback listener follows allow_anonymous, one on another address is closed unless it says so', async (t) => {
  const logs = new LogCapture('info')
  const { ports } = await gateway(t, [defaultListener('mqtt', 0, '127.0.0.1'), defaultListener('mqtt', 0, '0.0.0.0'), { ...defaultListener('mqtt', 0, '0.0.0.0'), allowAnonymous: true }], {}, logs.logger)
  const [loop, open, allowed] = ports
  assert.ok('client' in (await attempt(t, `mqtt://127.0.0.1:${loop}`)))
  assert.deepEqual(await attempt(t, `mqtt://127.0.0.1:${open}`), { refused: 5 })
  assert.deepEqual(await attempt(t, `mqtt://127.0.0.1:${open}`, { protocolVersion: 5 }), { refused: 135 })
  // A username is no way in either: there is no password file to check it against.
  assert.deepEqual(await attempt(t, `mqtt://127.0.0.1:${open}`, { username: 'bob', password: 'x' }), { refused: 5 })
  // The listener that admits nobody is named at start, once; the others are not.
  const warned = logs.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('this listener admits no client'))
  assert.deepEqual(warned.map((l) => l.listener), [`mqtt://0.0.0.0:${open}`])
  assert.ok('client' in (await attempt(t, `mqtt://127.0.0.1:${allowed}`)))
})

test('password_file written by mosquitto_passwd: the right password gets in; a wrong one is refused, logged and slowed down', async (t) => {
  const dir = tempDir(t, 'outpost-sec-')
  const passwd = join(dir, 'passwd')
  await run('mosquitto_passwd', ['-b', '-c', passwd, 'alice', 'wonderland'])
  const logs = new LogCapture('info')
  const { ports } = await gateway(t, [{ ...defaultListener('mqtt', 0, '127.0.0.1'), allowAnonymous: false, passwordFile: passwd }], {}, logs.logger)
  const url = `mqtt://127.0.0.1:${ports[0] ?? 0}`
  assert.ok('client' in (await attempt(t, url, { username: 'alice', password: 'wonderland' })))
  assert.deepEqual(await attempt(t, url, { username: 'alice', password: 'nope' }), { refused: 4 })
  assert.deepEqual(await attempt(t, url, { username: 'alice', password: 'nope', protocolVersion: 5 }), { refused: 134 })
  assert.deepEqual(await attempt(t, url), { refused: 5 }, 'anonymous is off')
  const line = await logs.waitFor((l) => l.msg === 'login failed', 'a failed-login line')
  assert.equal(line.username, 'alice')
  assert.match(String(line.remote), /127\.0\.0\.1/)
  // The fourth failure from one address is answered only after a delay.
  const started = Date.now()
  assert.deepEqual(await attempt(t, url, { username: 'alice', password: 'nope' }), { refused: 4 })
  assert.ok(Date.now() - started >= 240, `the fourth refusal took ${Date.now() - started} ms`)
})

const ACL = `# anonymous clients
topic read public/#

user alice
topic readwrite home/#
topic deny home/secret
topic read $SYS/broker/uptime

pattern write clients/%c/status
`

test('acl_file: publish, subscribe, delivery and retained messages follow Mosquitto rules; deny wins', async (t) => {
  const dir = tempDir(t, 'outpost-sec-')
  const passwd = join(dir, 'passwd')
  await run('mosquitto_passwd', ['-b', '-c', passwd, 'alice', 'pw'])
  const acl = join(dir, 'acl')
  writeFileSync(acl, ACL)
  const { ports, gw } = await gateway(t, [{ ...defaultListener('mqtt', 0, '127.0.0.1'), allowAnonymous: true, passwordFile: passwd, aclFile: acl }], { sysInterval: 1 })
  const url = `mqtt://127.0.0.1:${ports[0] ?? 0}`
  const alice = await connected(t, url, { username: 'alice', password: 'pw', clientId: 'alice-1' })
  const alice5 = await connected(t, url, { username: 'alice', password: 'pw', clientId: 'alice-5', protocolVersion: 5 })
  const anon = await connected(t, url, { clientId: 'anon-1' })

  // Subscribe: granted where a read rule covers the filter; 0x80 (3.1.1) / 0x87 (5) elsewhere.
  assert.deepEqual(await subackCodes(alice.client, ['home/#', 'other/#', '$SYS/broker/uptime', '$SYS/#']), [0, 128, 0, 128])
  assert.deepEqual(await subackCodes(alice5.client, ['home/#', 'other/x']), [0, 135])
  await anon.client.subscribeAsync('public/#')

  // Publish: allowed, denied-and-dropped (3.1.1), 0x87 (5).
  await alice.client.publishAsync('home/lamp', 'on', { qos: 1 })
  await alice.client.publishAsync('home/secret', 'x', { qos: 1 }) // acknowledged, dropped
  const denied = await alice5.client.publishAsync('home/secret', 'x', { qos: 1 }).then(() => 0, (err: unknown) => (err instanceof Error && 'code' in err ? err.code : -1))
  assert.equal(denied, 0x87)
  await alice.client.publishAsync('clients/alice-1/status', 'up', { qos: 1 }) // pattern %c
  const anonDenied = await anon.client.publishAsync('public/news', 'x', { qos: 1 }).then(() => 'acked')
  assert.equal(anonDenied, 'acked', '3.1.1: acknowledged even when refused')
  assert.ok(gw.broker.stats.publishDenied >= 3)

  await alice5.inbox.waitFor((m) => m.topic === 'home/lamp', 'the allowed publish')
  assert.equal(alice5.inbox.on('home/secret').length, 0, 'denied publishes went nowhere')
  assert.equal(anon.inbox.on('public/news').length, 0)

  // $SYS: only the topic her ACL names.
  await alice.inbox.waitFor((m) => m.topic === '$SYS/broker/uptime', '$SYS uptime for alice')

  // Retained: sent where the subscriber may read it; a retained message under a deny is not.
  await alice.client.publishAsync('home/door', 'closed', { qos: 1, retain: true })
  const lateAlice = await connected(t, url, { username: 'alice', password: 'pw', clientId: 'alice-late' })
  await lateAlice.client.subscribeAsync('home/#')
  await lateAlice.inbox.waitFor((m) => m.topic === 'home/door' && m.retain, 'the retained message alice may read')
  // A retained message under the deny (put there by a client without an ACL: an internal one).
  await gw.broker.publish({ topic: 'home/secret', payload: Buffer.from('s'), qos: 0, retain: true })
  const again = await connected(t, url, { username: 'alice', password: 'pw', clientId: 'alice-again' })
  await again.client.subscribeAsync(['home/#'])
  await again.inbox.waitFor((m) => m.topic === 'home/door', 'the readable retained message')
  assert.equal(again.inbox.on('home/secret').length, 0, 'the denied retained message is not sent')
})

test('use_identity_as_username: the client certificate CN is the username the ACL sees', async (t) => {
  const dir = tempDir(t, 'outpost-sec-')
  const certs = await makeCerts(dir)
  const acl = join(dir, 'acl')
  writeFileSync(acl, 'user outpost-gw\ntopic readwrite gw/#\n')
  const { ports } = await gateway(t, [{
    ...defaultListener('mqtts', 0, '127.0.0.1'),
    tls: { certFile: certs.server.cert, keyFile: certs.server.key, caFile: certs.ca.cert, minVersion: 'TLSv1.2', ciphers: undefined, requireCertificate: true, useIdentityAsUsername: true },
    aclFile: acl,
  }])
  const url = `mqtts://localhost:${ports[0] ?? 0}`
  const tls = { ca: readFileSync(certs.ca.cert), cert: readFileSync(certs.client.cert), key: readFileSync(certs.client.key) }
  const gwClient = await connected(t, url, { ...tls, protocolVersion: 5 })
  assert.deepEqual(await subackCodes(gwClient.client, ['gw/#', 'other/#']), [0, 135])
  await gwClient.client.publishAsync('gw/t', '1', { qos: 1 })
  await gwClient.inbox.waitFor((m) => m.topic === 'gw/t', 'its own message back')
})

test('a will the ACL does not let the client publish is dropped', async (t) => {
  const dir = tempDir(t, 'outpost-sec-')
  const acl = join(dir, 'acl')
  writeFileSync(acl, 'topic readwrite status/#\ntopic read lwt/#\n')
  const { ports } = await gateway(t, [{ ...defaultListener('mqtt', 0, '127.0.0.1'), aclFile: acl }])
  const url = `mqtt://127.0.0.1:${ports[0] ?? 0}`
  const watcher = await connected(t, url, { clientId: 'watcher' })
  await watcher.client.subscribeAsync(['status/#', 'lwt/#'])
  const allowedWill = connect(url, { reconnectPeriod: 0, clientId: 'w1', will: { topic: 'status/w1', payload: Buffer.from('gone'), qos: 1, retain: false } })
  const deniedWill = connect(url, { reconnectPeriod: 0, clientId: 'w2', will: { topic: 'lwt/w2', payload: Buffer.from('gone'), qos: 1, retain: false } })
  await Promise.all([new Promise((r) => allowedWill.once('connect', r)), new Promise((r) => deniedWill.once('connect', r))])
  deniedWill.stream.destroy()
  allowedWill.stream.destroy()
  await watcher.inbox.waitFor((m) => m.topic === 'status/w1', 'the allowed will')
  assert.equal(watcher.inbox.on('lwt/w2').length, 0)
})
