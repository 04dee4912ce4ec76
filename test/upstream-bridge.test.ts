/**
 * The upstream bridge against a real Mosquitto as the cloud broker, over TLS with certificates
 * made for the test: messages both ways, notifications, store-and-forward across a cloud
 * outage (and a second outage in the middle of the drain), loops, and the outbox caps.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { test, type TestContext } from 'node:test'
import { Aedes } from 'aedes'
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt'
import { createWebSocketStream, WebSocketServer } from 'ws'
import { defaultUpstream } from '../src/config/defaults.js'
import type { TopicRule, UpstreamConfig } from '../src/config/upstream-types.js'
import type { UpstreamBridge } from '../src/upstream/bridge.js'
import { tcpGateway } from './helpers/broker.js'
import { makeCerts, type Certs } from '../scripts/lib/certs.js'
import { cloudClient, startCloudBroker, type CloudBroker } from './helpers/cloud-broker.js'
import { Inbox, type Received } from './helpers/inbox.js'
import { LogCapture } from './helpers/log-capture.js'
import { tempDir } from './helpers/outpost-process.js'

const rule = (pattern: string, direction: TopicRule['direction'], qos: TopicRule['qos'] = 1, localPrefix = '', remotePrefix = ''): TopicRule => ({ pattern, direction, qos, localPrefix, remotePrefix })

interface Setup {
  cloud: CloudBroker
  certs: Certs
  bridge: UpstreamBridge
  local: MqttClient
  localInbox: Inbox
  port: number
  logs: LogCapture
}

async function setup(t: TestContext, overrides: Partial<UpstreamConfig> | ((c: Certs) => Partial<UpstreamConfig>) = {}, cloudOptions: { users?: Record<string, string>; expiredCert?: boolean } = {}): Promise<Setup> {
  const certs = await makeCerts(tempDir(t, 'outpost-certs-'))
  const { expiredCert, ...rest } = cloudOptions
  const cloud = await startCloudBroker(t, { tls: { server: expiredCert === true ? certs.expired : certs.server }, plain: true, logTypes: ['error', 'warning', 'notice', 'information'], extraConfig: ['max_inflight_messages 100'], ...rest })
  const logs = new LogCapture()
  const upstream: UpstreamConfig = {
    ...defaultUpstream('cloud', `mqtts://localhost:${cloud.tlsPort}`),
    tls: { caFile: certs.ca.cert, certFile: undefined, keyFile: undefined, serverName: undefined, verify: true },
    topics: [rule('sensors/#', 'out'), rule('cmd/#', 'in')],
    prefix: 'gateways/{gateway_id}/',
    reconnectMin: 0.05,
    reconnectMax: 0.5,
    ...(typeof overrides === 'function' ? overrides(certs) : overrides),
  }
  const { port, gateway } = await tcpGateway(t, { gatewayId: 'pi-1', upstream: [upstream] }, logs.logger)
  const bridge = gateway.upstream[0]
  assert.ok(bridge !== undefined)
  const local = await connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 })
  t.after(() => local.endAsync())
  return { cloud, certs, bridge, local, localInbox: new Inbox(local), port, logs }
}

async function connected(bridge: UpstreamBridge, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (bridge.stats().state !== 'connected') {
    if (Date.now() > deadline) throw new Error(`bridge still ${bridge.stats().state}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

async function cloudSubscriber(t: TestContext, s: Setup, filter: string, mqtt: IClientOptions = {}): Promise<{ client: MqttClient; inbox: Inbox }> {
  const { client, inbox } = await cloudClient(t, s.cloud, { tls: { ca: s.certs.ca.cert }, mqtt })
  await client.subscribeAsync(filter, { qos: 1 })
  return { client, inbox }
}

/** Sequence numbers in arrival order on `topic`. */
const seqs = (inbox: Inbox, topic: string): number[] => inbox.on(topic).map((m: Received) => Number(m.payload))

async function publishMany(client: MqttClient, topic: string, n: number, from = 0): Promise<void> {
  const window: Array<Promise<unknown>> = []
  for (let i = from; i < from + n; i++) {
    window.push(client.publishAsync(topic, String(i), { qos: 1 }))
    if (window.length >= 50) await window.shift()
  }
  await Promise.all(window)
}

test('out over TLS: a local message reaches the cloud under the gateway prefix; in: a cloud command reaches a local client', async (t) => {
  const s = await setup(t)
  await connected(s.bridge)
  const cloud = await cloudSubscriber(t, s, 'gateways/#')
  await s.local.subscribeAsync('cmd/#', { qos: 1 })
  await s.local.publishAsync('sensors/kitchen/t', '21.5', { qos: 1 })
  const up = await cloud.inbox.waitFor((m) => m.topic === 'gateways/pi-1/sensors/kitchen/t', 'the reading upstream')
  assert.equal(up.payload, '21.5')
  await cloud.client.publishAsync('gateways/pi-1/cmd/led', 'on', { qos: 1 })
  const down = await s.localInbox.waitFor((m) => m.topic === 'cmd/led', 'the command locally')
  assert.equal(down.payload, 'on')
  assert.equal(s.localInbox.on('sensors/kitchen/t').length, 0, 'nothing came back')
})

test('notifications: the bridge state is retained online on both sides', async (t) => {
  const s = await setup(t, { keepalive: 1 })
  await connected(s.bridge)
  const topic = 'outpost/pi-1/bridge/cloud/state'
  const cloud = await cloudSubscriber(t, s, topic)
  assert.equal((await cloud.inbox.waitFor((m) => m.topic === topic, 'upstream state')).payload, 'online')
  await s.local.subscribeAsync(topic)
  assert.equal((await s.localInbox.waitFor((m) => m.topic === topic, 'local state')).payload, 'online')
  assert.equal(s.bridge.stats().state, 'connected')
})

test('store and forward: the cloud is down, 2,000 messages are acknowledged locally, all arrive in order when it returns', async (t) => {
  const s = await setup(t)
  await connected(s.bridge)
  // The cloud-side consumer has a persistent session, so the cloud keeps what arrives while it is away.
  const consumer = await cloudSubscriber(t, s, 'gateways/pi-1/sensors/#', { clientId: 'consumer', clean: false })
  await consumer.client.endAsync()
  await s.cloud.stop()
  await s.logs.waitFor((l) => l.msg === 'upstream link lost', 'the link lost')
  await publishMany(s.local, 'sensors/seq', 2000)
  const stats = s.bridge.stats()
  assert.equal(stats.backlogMessages, 2000)
  assert.equal(stats.state === 'connected', false)
  await s.cloud.restart()
  const back = await cloudClient(t, s.cloud, { tls: { ca: s.certs.ca.cert }, mqtt: { clientId: 'consumer', clean: false } })
  await back.inbox.waitUntil(() => back.inbox.messages.length >= 2000, 'all 2,000 upstream', 30_000)
  assert.deepEqual(seqs(back.inbox, 'gateways/pi-1/sensors/seq'), Array.from({ length: 2000 }, (_, i) => i))
  const drained = await s.logs.waitFor((l) => l.msg === 'outbox drained', 'the drain log line')
  assert.equal(drained.messages, 2000)
  assert.equal(s.bridge.stats().backlogMessages, 0)
})

test('a second outage in the middle of the drain: nothing is lost, first arrivals stay in order', async (t) => {
  const s = await setup(t, { maxInflight: 20 })
  await connected(s.bridge)
  const consumer = await cloudSubscriber(t, s, 'gateways/pi-1/sensors/#', { clientId: 'consumer', clean: false })
  await consumer.client.endAsync()
  await s.cloud.stop()
  await s.logs.waitFor((l) => l.msg === 'upstream link lost', 'the link lost')
  await publishMany(s.local, 'sensors/seq', 5000)
  await s.cloud.restart()
  // Stop the cloud again as soon as the drain is under way.
  const deadline = Date.now() + 10_000
  while (s.bridge.stats().sent < 500 && Date.now() < deadline) await new Promise((r) => setImmediate(r))
  await s.cloud.stop()
  const left = s.bridge.stats().backlogMessages
  assert.ok(left > 0 && left < 5000, `stopped mid-drain with ${left} left`)
  await publishMany(s.local, 'sensors/seq', 100, 5000) // live traffic during the outage goes behind the backlog
  await s.cloud.restart()
  const back = await cloudClient(t, s.cloud, { tls: { ca: s.certs.ca.cert }, mqtt: { clientId: 'consumer', clean: false } })
  const firsts = (): number[] => [...new Set(seqs(back.inbox, 'gateways/pi-1/sensors/seq'))]
  // Counted as they come: a resend may repeat a message, so distinct payloads are what matters.
  const distinct = new Set<string>()
  let counted = 0
  const count = (): number => {
    for (; counted < back.inbox.messages.length; counted++) distinct.add(back.inbox.messages[counted]?.payload ?? '')
    return distinct.size
  }
  await back.inbox.waitUntil(() => count() >= 5100, () => `all 5,100 upstream; ${distinct.size} so far, bridge ${JSON.stringify(s.bridge.stats())}`, 30_000)
  assert.deepEqual(firsts(), Array.from({ length: 5100 }, (_, i) => i), 'every message, first arrivals in order (a resend may repeat one)')
})

test('a `both` rule does not loop: a local message goes up once and is not published locally a second time', async (t) => {
  for (const protocolVersion of [4, 5] as const) {
    const s = await setup(t, { protocolVersion, topics: [rule('shared/#', 'both')] })
    await connected(s.bridge)
    const cloud = await cloudSubscriber(t, s, 'gateways/pi-1/shared/#')
    await s.local.subscribeAsync('shared/#', { qos: 1 })
    await s.local.publishAsync('shared/x', 'from-local', { qos: 1 })
    await cloud.inbox.waitFor((m) => m.topic === 'gateways/pi-1/shared/x', `v${protocolVersion}: upstream`)
    await cloud.client.publishAsync('gateways/pi-1/shared/y', 'from-cloud', { qos: 1 })
    await s.localInbox.waitFor((m) => m.topic === 'shared/y', `v${protocolVersion}: the cloud's message locally`)
    // The cloud's message came after ours on the same link, so an echo of ours would be in by now.
    assert.equal(s.localInbox.on('shared/x').length, 1, `v${protocolVersion}: shared/x once locally`)
    assert.equal(cloud.inbox.on('gateways/pi-1/shared/y').length, 1, `v${protocolVersion}: the cloud's message did not come back up`)
  }
})

test('outbox cap drop_oldest: the oldest queued messages make room and are counted', async (t) => {
  const s = await setup(t, { maxQueuedMessages: 100 })
  await connected(s.bridge)
  const consumer = await cloudSubscriber(t, s, 'gateways/pi-1/sensors/#', { clientId: 'consumer', clean: false })
  await consumer.client.endAsync()
  await s.cloud.stop()
  await s.logs.waitFor((l) => l.msg === 'upstream link lost', 'the link lost')
  await publishMany(s.local, 'sensors/seq', 150)
  assert.equal(s.bridge.stats().backlogMessages, 100)
  assert.equal(s.bridge.stats().dropped, 50)
  await s.cloud.restart()
  const back = await cloudClient(t, s.cloud, { tls: { ca: s.certs.ca.cert }, mqtt: { clientId: 'consumer', clean: false } })
  await back.inbox.waitUntil(() => back.inbox.messages.length >= 100, 'the newest 100')
  assert.deepEqual(seqs(back.inbox, 'gateways/pi-1/sensors/seq'), Array.from({ length: 100 }, (_, i) => i + 50))
})

test('outbox cap reject_new: a v5 publisher past the cap gets PUBACK 0x97; the first ones are kept', async (t) => {
  const s = await setup(t, { maxQueuedMessages: 10, queueFullPolicy: 'reject_new' })
  await connected(s.bridge)
  await s.cloud.stop()
  await s.logs.waitFor((l) => l.msg === 'upstream link lost', 'the link lost')
  const v5 = await connectAsync(`mqtt://127.0.0.1:${s.port}`, { protocolVersion: 5, reconnectPeriod: 0 })
  t.after(() => v5.endAsync())
  const codes: Array<number | undefined> = []
  for (let i = 0; i < 12; i++) {
    // MQTT.js turns a PUBACK reason code of 0x80 or more into a rejection carrying the code.
    const code = await v5.publishAsync('sensors/seq', String(i), { qos: 1 }).then(
      (ack) => (ack?.cmd === 'puback' ? (ack.reasonCode ?? 0) : undefined),
      (err: unknown) => (err instanceof Error && 'code' in err && typeof err.code === 'number' ? err.code : undefined),
    )
    codes.push(code)
  }
  assert.deepEqual(codes.slice(10), [0x97, 0x97])
  assert.equal(s.bridge.stats().backlogMessages, 10)
})

test('wrong CA, wrong name, expired certificate and wrong password: a log line that says what failed, and the bridge keeps trying', async (t) => {
  const cases: Array<{ name: string; overrides: (c: Certs) => Partial<UpstreamConfig>; users?: Record<string, string>; expired?: boolean; expect: RegExp }> = [
    { name: 'unknown CA', overrides: (c) => ({ tls: { caFile: c.otherCa.cert, certFile: undefined, keyFile: undefined, serverName: undefined, verify: true } }), expect: /not signed by a CA we trust/ },
    { name: 'wrong name', overrides: (c) => ({ tls: { caFile: c.ca.cert, certFile: undefined, keyFile: undefined, serverName: 'wrong.example.org', verify: true } }), expect: /certificate is not for/ },
    { name: 'expired', overrides: () => ({}), expired: true, expect: /certificate has expired/ },
    { name: 'wrong password', overrides: () => ({ username: 'gw', password: 'nope' }), users: { gw: 'right' }, expect: /bad username or password|not authorized/ },
  ]
  for (const c of cases) {
    const s = await setup(t, c.overrides, { ...(c.users === undefined ? {} : { users: c.users }), ...(c.expired === true ? { expiredCert: true } : {}) })
    const line = await s.logs.waitFor((l) => l.msg === 'upstream connection failed', `${c.name}: a failure line`)
    assert.match(String(line.reason), c.expect, c.name)
    // Still trying: more attempts follow (logged at debug while the reason stays the same).
    await s.logs.waitFor((l) => typeof l.attempts === 'number' && l.attempts >= 3, `${c.name}: a third attempt`)
    assert.notEqual(s.bridge.stats().state, 'connected')
  }
})


test('restarts: the outbox survives a restart of the gateway; a bridge removed from the config takes its outbox with it', async (t) => {
  const logs = new LogCapture()
  const dataDir = tempDir(t, 'outpost-outbox-')
  // Nothing listens on port 1: the link stays down and everything waits in the outbox.
  const down = { ...defaultUpstream('gone', 'mqtt://127.0.0.1:1'), topics: [rule('sensors/#', 'out')], reconnectMin: 0.05, reconnectMax: 0.2 }
  const first = await tcpGateway(t, { dataDir, upstream: [down] }, logs.logger)
  const client = await connectAsync(`mqtt://127.0.0.1:${first.port}`, { reconnectPeriod: 0 })
  await publishMany(client, 'sensors/seq', 10)
  await client.endAsync()
  await first.gateway.close()
  const second = await tcpGateway(t, { dataDir, upstream: [down] }, logs.logger)
  await logs.waitFor((l) => l.msg === 'outbox restored from the store' && l.messages === 10, 'the outbox restored')
  assert.equal(second.gateway.upstream[0]?.stats().backlogMessages, 10)
  await second.gateway.close()
  const third = await tcpGateway(t, { dataDir, upstream: [] }, logs.logger)
  const removed = await logs.waitFor((l) => l.msg === 'removed the outbox of a bridge that is no longer configured', 'the removal')
  assert.deepEqual([removed.outbox, removed.droppedMessages], ['$bridge/gone', 10])
  assert.deepEqual(third.broker.sessionIdsWithPrefix('$bridge/'), [])
})

test('wss:// and ws://: the bridge talks to Aedes behind a WebSocket server (TLS for wss), both directions', async (t) => {
  const certs = await makeCerts(tempDir(t, 'outpost-certs-'))
  for (const secure of [true, false]) {
    const aedes = await Aedes.createBroker()
    t.after(() => new Promise<void>((resolve) => aedes.close(() => resolve())))
    const http = secure ? createHttpsServer({ cert: readFileSync(certs.server.cert), key: readFileSync(certs.server.key) }) : createHttpServer()
    const wss = new WebSocketServer({ server: http, path: '/mqtt' })
    wss.on('connection', (socket) => aedes.handle(createWebSocketStream(socket)))
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    t.after(() => new Promise<void>((resolve) => { wss.close(); http.closeAllConnections(); http.close(() => resolve()) }))
    const wsPort = (http.address() as AddressInfo).port
    const scheme = secure ? 'wss' : 'ws'
    const bridgeConfig: UpstreamConfig = {
      ...defaultUpstream('aedes', `${scheme}://localhost:${wsPort}/mqtt`),
      tls: { caFile: secure ? certs.ca.cert : undefined, certFile: undefined, keyFile: undefined, serverName: undefined, verify: true },
      topics: [rule('sensors/#', 'out'), rule('cmd/#', 'in')],
      reconnectMin: 0.05,
      reconnectMax: 0.5,
    }
    const { port, gateway } = await tcpGateway(t, { upstream: [bridgeConfig] })
    const bridge = gateway.upstream[0]
    assert.ok(bridge !== undefined)
    await connected(bridge)
    const cloud = await connectAsync(`${scheme}://localhost:${wsPort}/mqtt`, { reconnectPeriod: 0, ...(secure ? { ca: readFileSync(certs.ca.cert) } : {}) })
    t.after(() => cloud.endAsync())
    const cloudInbox = new Inbox(cloud)
    await cloud.subscribeAsync('sensors/#', { qos: 1 })
    const local = await connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 })
    t.after(() => local.endAsync())
    const localInbox = new Inbox(local)
    await local.subscribeAsync('cmd/#', { qos: 1 })
    await local.publishAsync('sensors/t', `over ${scheme}`, { qos: 1 })
    assert.equal((await cloudInbox.waitFor((m) => m.topic === 'sensors/t', `${scheme}: up`)).payload, `over ${scheme}`)
    await cloud.publishAsync('cmd/go', 'now', { qos: 1 })
    assert.equal((await localInbox.waitFor((m) => m.topic === 'cmd/go', `${scheme}: down`)).payload, 'now')
  }
})

test('a client certificate for a cloud that requires one (AWS IoT style): connected with it, refused without', async (t) => {
  const certs = await makeCerts(tempDir(t, 'outpost-certs-'))
  const cloud = await startCloudBroker(t, { tls: { server: certs.server, ca: certs.ca.cert, requireCertificate: true }, logTypes: ['error', 'warning', 'notice', 'information'] })
  const base: UpstreamConfig = {
    ...defaultUpstream('iot', `mqtts://localhost:${cloud.tlsPort}`),
    topics: [rule('sensors/#', 'out')],
    reconnectMin: 0.05,
    reconnectMax: 0.3,
  }
  const withCert = { ...base, tls: { caFile: certs.ca.cert, certFile: certs.client.cert, keyFile: certs.client.key, serverName: undefined, verify: true } }
  const { gateway } = await tcpGateway(t, { upstream: [withCert] })
  const bridge = gateway.upstream[0]
  assert.ok(bridge !== undefined)
  await connected(bridge)
  const logs = new LogCapture()
  const without = { ...base, clientId: 'outpost-nocert', tls: { ...withCert.tls, certFile: undefined, keyFile: undefined } }
  const second = await tcpGateway(t, { upstream: [without] }, logs.logger)
  await logs.waitFor((l) => l.msg === 'upstream connection failed' || l.msg === 'upstream link lost', 'a refusal')
  assert.notEqual(second.gateway.upstream[0]?.stats().state, 'connected')
})
