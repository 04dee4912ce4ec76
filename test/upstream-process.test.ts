/**
 * The upstream bridge in the shipped binary, configured by YAML, against a real TLS Mosquitto as
 * the cloud: acknowledged messages survive a SIGKILL during an outage and in the middle of the
 * drain, the will marks a dead gateway offline upstream, a half-open link is noticed by
 * keepalive, another Outpost serves as the cloud (MQTT 5, a `both` rule, no loop), one gateway
 * feeds two clouds at once, and the bridge's state shows in `$SYS`.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, connect as tcpConnect, type AddressInfo, type Socket } from 'node:net'
import { test, type TestContext } from 'node:test'
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt'
import { makeCerts, type Certs } from '../scripts/lib/certs.js'
import { cloudClient, startCloudBroker, type CloudBroker, type CloudClient } from './helpers/cloud-broker.js'
import { Inbox } from './helpers/inbox.js'
import { startOutpost, tempDir, type LogRecord, type OutpostProcess, type StartOptions } from './helpers/outpost-process.js'

const GATEWAY = 'pi-1'
const STATE = `outpost/${GATEWAY}/bridge/cloud/state`
const SEQ = `gateways/${GATEWAY}/sensors/seq`
const FAST = { reconnect_min: 0.05, reconnect_max: 0.5 }

interface Cloud {
  broker: CloudBroker
  certs: Certs
}

async function tlsCloud(t: TestContext, saveEveryChange = false): Promise<Cloud> {
  const certs = await makeCerts(tempDir(t, 'outpost-certs-'))
  // Not `all`: Mosquitto would log every PUBLISH of the thousands these tests send.
  const broker = await startCloudBroker(t, { tls: { server: certs.server }, logTypes: ['error', 'warning', 'notice', 'information'], extraConfig: ['max_inflight_messages 100'], saveEveryChange })
  return { broker, certs }
}

/** One `upstream:` entry (YAML keys) to `cloud`, through `port` when given (a relay). */
function bridgeTo(cloud: Cloud, extra: Record<string, unknown> = {}, port = cloud.broker.tlsPort): Record<string, unknown> {
  return { name: 'cloud', url: `mqtts://localhost:${port}`, tls: { ca_file: cloud.certs.ca.cert }, topics: ['sensors/# out 1', 'cmd/# in 1'], prefix: 'gateways/{gateway_id}/', ...FAST, ...extra }
}

function gateway(upstream: Array<Record<string, unknown>>, extra: Record<string, unknown> = {}): StartOptions {
  return { config: { gateway_id: GATEWAY, upstream, ...extra } }
}

/** A client of the cloud Mosquitto over TLS. */
function atCloud(t: TestContext, cloud: Cloud, mqtt: IClientOptions = {}): Promise<CloudClient> {
  return cloudClient(t, cloud.broker, { tls: { ca: cloud.certs.ca.cert }, mqtt })
}

async function clientOf(t: TestContext, p: OutpostProcess, opts: IClientOptions = {}): Promise<{ client: MqttClient; inbox: Inbox }> {
  const client = await connectAsync(p.url, { reconnectPeriod: 0, ...opts })
  t.after(() => client.endAsync(true).catch(() => undefined))
  return { client, inbox: new Inbox(client) }
}

/**
 * The next record with this `msg` from bridge `bridge`, ignoring what is logged already: call it
 * before the action that causes the line, await it after.
 */
function nextLog(p: OutpostProcess, msg: string, timeoutMs = 5_000, bridge = 'cloud'): Promise<LogRecord> {
  const before = new Set(p.records())
  return p.waitForLog((r) => !before.has(r) && r.msg === msg && r.bridge === bridge, timeoutMs, `"${msg}" from bridge ${bridge}`)
}

/** The first such record, logged already or still to come. */
function logged(p: OutpostProcess, msg: string, timeoutMs = 10_000, bridge = 'cloud'): Promise<LogRecord> {
  return p.waitForLog((r) => r.msg === msg && r.bridge === bridge, timeoutMs, `"${msg}" from bridge ${bridge}`)
}

async function publishMany(client: MqttClient, topic: string, n: number, from = 0, payload?: string): Promise<void> {
  const window: Array<Promise<unknown>> = []
  for (let i = from; i < from + n; i++) {
    window.push(client.publishAsync(topic, payload ?? String(i), { qos: 1 }))
    if (window.length >= 50) await window.shift()
  }
  await Promise.all(window)
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i)

/**
 * Sequence numbers on `topic` in order of first arrival, counted incrementally as messages come
 * (a resend after a crash may repeat one, so distinct numbers are what count).
 */
class FirstArrivals {
  readonly order: number[] = []
  readonly #inbox: Inbox
  readonly #topic: string
  readonly #seen = new Set<number>()
  #counted = 0

  constructor(inbox: Inbox, topic: string) {
    this.#inbox = inbox
    this.#topic = topic
  }

  count(): number {
    const messages = this.#inbox.messages
    for (; this.#counted < messages.length; this.#counted++) {
      const m = messages[this.#counted]
      if (m === undefined || m.topic !== this.#topic) continue
      const n = Number(m.payload)
      if (this.#seen.has(n)) continue
      this.#seen.add(n)
      this.order.push(n)
    }
    return this.order.length
  }

  wait(n: number, timeoutMs: number): Promise<void> {
    return this.#inbox.waitUntil(() => this.count() >= n, () => `${n} distinct on ${this.#topic}; ${this.order.length} so far`, timeoutMs)
  }
}

/**
 * A TCP relay to `target` that the test can shut (its connections cut, new ones refused) and
 * open again: the bridge loses the cloud while the cloud, and a consumer on it, stay up.
 */
async function relay(t: TestContext, target: number): Promise<{ port: number; shut(): void; open(): void }> {
  const sockets = new Set<Socket>()
  let open = true
  const server = createServer((down) => {
    if (!open) {
      down.destroy()
      return
    }
    const up = tcpConnect(target, '127.0.0.1')
    for (const s of [down, up]) {
      sockets.add(s)
      s.on('error', () => undefined)
      s.on('close', () => {
        sockets.delete(s)
        down.destroy()
        up.destroy()
      })
    }
    down.pipe(up)
    up.pipe(down)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.after(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  return {
    port: (server.address() as AddressInfo).port,
    shut(): void {
      open = false
      for (const s of sockets) s.destroy()
    },
    open(): void {
      open = true
    },
  }
}

test('SIGKILL during the outage: 3,000 acknowledged messages survive on disk and all reach the cloud after the restart', async (t) => {
  const N = 3000
  const cloud = await tlsCloud(t, true)
  const options = gateway([bridgeTo(cloud)])
  const first = await startOutpost(t, options)
  await logged(first, 'upstream connected')
  // The consumer's persistent session keeps at the cloud what arrives while the consumer is away.
  const consumer = await atCloud(t, cloud, { clientId: 'consumer', clean: false })
  await consumer.client.subscribeAsync(`gateways/${GATEWAY}/sensors/#`, { qos: 1 })
  await consumer.client.endAsync()
  const lost = nextLog(first, 'upstream link lost')
  await cloud.broker.stop()
  await lost
  const local = await clientOf(t, first)
  await publishMany(local.client, 'sensors/seq', N) // every one PUBACKed: Outpost has them on disk
  await first.kill()
  await cloud.broker.start()
  const second = await startOutpost(t, { ...options, dataDir: first.dataDir })
  const restored = await logged(second, 'outbox restored from the store')
  assert.equal(restored.messages, N)
  const back = await atCloud(t, cloud, { clientId: 'consumer', clean: false })
  const arrivals = new FirstArrivals(back.inbox, SEQ)
  await arrivals.wait(N, 20_000)
  assert.deepEqual(arrivals.order, range(N), 'every message, first arrivals in order')
  assert.equal((await logged(second, 'outbox drained')).messages, N)
})

test('SIGKILL in the middle of the drain: the restarted Outpost sends the rest; none missing, first arrivals in order', async (t) => {
  const N = 3000
  const cloud = await tlsCloud(t)
  // The outage is a relay cut, so a consumer can watch the drain live and time the kill by it.
  const gate = await relay(t, cloud.broker.tlsPort)
  const options = gateway([bridgeTo(cloud, {}, gate.port)])
  const first = await startOutpost(t, options)
  await logged(first, 'upstream connected')
  const consumer = await atCloud(t, cloud)
  await consumer.client.subscribeAsync(`gateways/${GATEWAY}/sensors/#`, { qos: 1 })
  const lost = nextLog(first, 'upstream link lost')
  gate.shut()
  await lost
  const local = await clientOf(t, first)
  await publishMany(local.client, 'sensors/seq', N)
  const arrivals = new FirstArrivals(consumer.inbox, SEQ)
  // From inside the message handler, so the kill lands while the drain is in its stride.
  let killed = false
  consumer.client.on('message', () => {
    if (!killed && arrivals.count() >= 300) {
      killed = true
      first.child.kill('SIGKILL')
    }
  })
  const draining = nextLog(first, 'draining the outbox')
  gate.open()
  assert.equal((await draining).messages, N)
  await first.exited
  const seen = arrivals.count()
  const second = await startOutpost(t, { ...options, dataDir: first.dataDir })
  const restored = Number((await logged(second, 'outbox restored from the store')).messages)
  t.diagnostic(`killed with ${seen} seen at the cloud; ${restored} restored from the store`)
  // Mid-drain: the cloud had some hundreds and the outbox still held messages. Acks are written
  // behind (group commit), so up to a few hundred the cloud had may still be on disk: duplicates.
  assert.ok(seen < N && restored > 0, `killed mid-drain: ${seen} at the cloud, ${restored} of ${N} left`)
  await arrivals.wait(N, 20_000)
  t.diagnostic(`${consumer.inbox.on(SEQ).length - N} duplicates`)
  assert.deepEqual(arrivals.order, range(N), 'every message, first arrivals in order')
})

test('the will: a frozen or SIGKILLed gateway is marked offline upstream; a SIGTERM leaves offline retained as a goodbye', async (t) => {
  const cloud = await tlsCloud(t)
  const options = gateway([bridgeTo(cloud, { keepalive: 1 })])
  const watcher = await atCloud(t, cloud)
  await watcher.client.subscribeAsync(STATE, { qos: 1 })
  /** Resolves with the ms it took for `payload` to arrive on the state topic after this call. */
  const state = async (payload: string, what: string, timeoutMs = 5_000): Promise<number> => {
    const from = watcher.inbox.messages.length
    const start = Date.now()
    await watcher.inbox.waitUntil(() => watcher.inbox.messages.slice(from).some((m) => m.topic === STATE && m.payload === payload), what, timeoutMs)
    return Date.now() - start
  }

  // Frozen: the socket stays open, so only Mosquitto's keepalive check (1.5 x 1 s) notices.
  let online = state('online', 'online from the first gateway', 10_000)
  const first = await startOutpost(t, options)
  await online
  // Mosquitto's connection line: MQTT 3.1.1 (p2 in its numbering), persistent session (c0), keepalive 1.
  await cloud.broker.waitForLog(/as outpost-pi-1 \(p2, c0, k1\)/)
  const frozen = state('offline', 'the will of a frozen gateway', 10_000)
  process.kill(first.child.pid ?? 0, 'SIGSTOP')
  const frozenMs = await frozen
  await first.kill()

  online = state('online', 'online after the restart', 10_000)
  const second = await startOutpost(t, { ...options, dataDir: first.dataDir })
  await online
  const killed = state('offline', 'the will of a SIGKILLed gateway')
  await second.kill()
  const killedMs = await killed
  t.diagnostic(`will after SIGSTOP: ${frozenMs} ms; after SIGKILL: ${killedMs} ms`)
  // Mosquitto 2.0.11 checks keepalives only every 5 s or so: up to 1.5 s + 5 s for keepalive 1.
  assert.ok(frozenMs < 8_000, `the will of a frozen gateway after ${frozenMs} ms`)
  assert.ok(killedMs < 2_000, `the will of a SIGKILLed gateway after ${killedMs} ms`)

  online = state('online', 'online after the second restart', 10_000)
  const third = await startOutpost(t, { ...options, dataDir: first.dataDir })
  await online
  const goodbye = state('offline', 'offline on a clean stop')
  const exit = await third.stop('SIGTERM')
  assert.equal(exit.code, 0)
  await goodbye
  // A clean DISCONNECT discards the will: the retained `offline` is the bridge's own goodbye.
  const later = await atCloud(t, cloud)
  await later.client.subscribeAsync(STATE, { qos: 1 })
  const retained = await later.inbox.waitFor((m) => m.topic === STATE, 'the retained state')
  assert.deepEqual({ payload: retained.payload, retain: retained.retain }, { payload: 'offline', retain: true })
})

test('a half-open link (the cloud frozen by SIGSTOP) is dropped by keepalive; what is published meanwhile waits and arrives after SIGCONT', async (t) => {
  const cloud = await tlsCloud(t)
  const outpost = await startOutpost(t, gateway([bridgeTo(cloud, { keepalive: 1 })], { sys_interval: 1 }))
  await logged(outpost, 'upstream connected')
  const consumer = await atCloud(t, cloud)
  await consumer.client.subscribeAsync(`gateways/${GATEWAY}/sensors/#`, { qos: 1 })
  await consumer.client.subscribeAsync(STATE, { qos: 1 })
  await consumer.inbox.waitFor((m) => m.topic === STATE && m.payload === 'online', 'online upstream')
  const local = await clientOf(t, outpost)
  const backlogTopic = '$SYS/broker/bridge/cloud/backlog/messages'
  await local.client.subscribeAsync(backlogTopic)
  const pid = cloud.broker.pid
  assert.ok(pid !== undefined)
  t.after(() => {
    if (cloud.broker.running) process.kill(pid, 'SIGCONT')
  })
  const lost = nextLog(outpost, 'upstream link lost')
  const frozenAt = Date.now()
  process.kill(pid, 'SIGSTOP')
  await publishMany(local.client, 'sensors/seq', 50) // sent into the dead link, never acknowledged
  await lost
  const detectedMs = Date.now() - frozenAt
  await publishMany(local.client, 'sensors/seq', 50, 50)
  await local.inbox.waitFor((m) => m.topic === backlogTopic && m.payload === '100', 'all 100 waiting in $SYS', 3_000)
  const up = nextLog(outpost, 'upstream connected', 20_000)
  process.kill(pid, 'SIGCONT')
  await up
  const arrivals = new FirstArrivals(consumer.inbox, SEQ)
  await arrivals.wait(100, 10_000)
  t.diagnostic(`link lost ${detectedMs} ms after SIGSTOP`)
  assert.ok(detectedMs < 3_500, `half-open link noticed after ${detectedMs} ms`)
  assert.deepEqual(arrivals.order, range(100), 'every message, first arrivals in order')
  // The old connection's will (published when Mosquitto wakes up) must not outlive the new `online`.
  const later = await atCloud(t, cloud)
  await later.client.subscribeAsync(STATE, { qos: 1 })
  assert.equal((await later.inbox.waitFor((m) => m.topic === STATE, 'the retained state')).payload, 'online')
})

test('another Outpost as the cloud, MQTT 5, a `both` rule: messages flow out and in, properties go along, nothing loops', async (t) => {
  const cloud = await startOutpost(t)
  const gw = await startOutpost(t, gateway([{ name: 'edge', url: cloud.url, protocol_version: 5, topics: ['shared/# both 1'], prefix: 'gateways/{gateway_id}/', ...FAST }]))
  const remote = await clientOf(t, cloud, { protocolVersion: 5 })
  await remote.client.subscribeAsync([`gateways/${GATEWAY}/shared/#`, `outpost/${GATEWAY}/bridge/edge/state`], { qos: 1 })
  // `online` goes up once the bridge's own subscription is in place.
  await remote.inbox.waitFor((m) => m.topic === `outpost/${GATEWAY}/bridge/edge/state` && m.payload === 'online', 'online at the cloud Outpost', 10_000)
  const local = await clientOf(t, gw, { protocolVersion: 5 })
  await local.client.subscribeAsync('shared/#', { qos: 1 })

  await local.client.publishAsync('shared/up', 'from-local', { qos: 1, properties: { contentType: 'text/plain', userProperties: { k: 'v' }, responseTopic: 'replies/up' } })
  const up = await remote.inbox.waitFor((m) => m.topic === `gateways/${GATEWAY}/shared/up`, 'the local message at the cloud')
  assert.equal(up.payload, 'from-local')
  assert.equal(up.properties?.contentType, 'text/plain')
  assert.equal(up.properties?.responseTopic, 'replies/up')
  assert.deepEqual({ ...up.properties?.userProperties }, { k: 'v' }) // MQTT.js gives a null-prototype object
  await remote.client.publishAsync(`gateways/${GATEWAY}/shared/down`, 'from-cloud', { qos: 1, properties: { contentType: 'application/json', userProperties: { a: 'b' }, responseTopic: 'replies/down', correlationData: Buffer.from('c1') } })
  const down = await local.inbox.waitFor((m) => m.topic === 'shared/down', 'the cloud message locally')
  assert.equal(down.payload, 'from-cloud')
  assert.equal(down.properties?.contentType, 'application/json')
  assert.equal(down.properties?.responseTopic, 'replies/down')
  assert.deepEqual(down.properties?.correlationData, Buffer.from('c1'))
  assert.deepEqual({ ...down.properties?.userProperties }, { a: 'b' })

  // Barriers: each side's outbox and subscription queue are FIFO, so an echo would be in before these.
  await local.client.publishAsync('shared/up2', 'barrier', { qos: 1 })
  await remote.inbox.waitFor((m) => m.topic === `gateways/${GATEWAY}/shared/up2`, 'the local barrier at the cloud')
  await remote.client.publishAsync(`gateways/${GATEWAY}/shared/down2`, 'barrier', { qos: 1 })
  await local.inbox.waitFor((m) => m.topic === 'shared/down2', 'the cloud barrier locally')
  assert.equal(local.inbox.on('shared/up').length, 1, 'the local message did not come back down')
  assert.equal(local.inbox.on('shared/down').length, 1, 'the cloud message arrived once locally')
  assert.equal(remote.inbox.on(`gateways/${GATEWAY}/shared/up`).length, 1, 'the local message went up once')
  assert.equal(remote.inbox.on(`gateways/${GATEWAY}/shared/down`).length, 1, 'the cloud message did not go back up')
})

test('two upstreams at once (TLS Mosquitto and another Outpost): each gets the messages of its own rules, and only those', async (t) => {
  const cloud = await tlsCloud(t)
  const edge = await startOutpost(t)
  const gw = await startOutpost(t, gateway([bridgeTo(cloud), { name: 'edge', url: edge.url, protocol_version: 5, topics: ['metrics/# out 1', 'ctl/# in 1'], prefix: 'gateways/{gateway_id}/', ...FAST }]))
  const mosq = await atCloud(t, cloud)
  await mosq.client.subscribeAsync(['gateways/#', STATE], { qos: 1 })
  const other = await clientOf(t, edge, { protocolVersion: 5 })
  await other.client.subscribeAsync(['gateways/#', `outpost/${GATEWAY}/bridge/edge/state`], { qos: 1 })
  await mosq.inbox.waitFor((m) => m.topic === STATE && m.payload === 'online', 'the Mosquitto bridge online', 10_000)
  await other.inbox.waitFor((m) => m.topic.endsWith('/edge/state') && m.payload === 'online', 'the Outpost bridge online', 10_000)
  assert.equal(gw.records('upstream connected').length, 2)
  const local = await clientOf(t, gw)
  await local.client.subscribeAsync(['cmd/#', 'ctl/#'], { qos: 1 })

  for (const [topic, payload] of [['metrics/m', '1'], ['sensors/s', '1'], ['metrics/m', '2'], ['sensors/s', '2']] as const) {
    await local.client.publishAsync(topic, payload, { qos: 1 })
  }
  await mosq.inbox.waitFor((m) => m.topic === `gateways/${GATEWAY}/sensors/s` && m.payload === '2', 'sensors at Mosquitto')
  await other.inbox.waitFor((m) => m.topic === `gateways/${GATEWAY}/metrics/m` && m.payload === '2', 'metrics at the Outpost cloud')
  // Each cloud sends the other's `in` topic first: a bridge that took it would deliver it before its own.
  await mosq.client.publishAsync(`gateways/${GATEWAY}/ctl/c`, 'wrong way', { qos: 1 })
  await mosq.client.publishAsync(`gateways/${GATEWAY}/cmd/c`, 'from mosquitto', { qos: 1 })
  await other.client.publishAsync(`gateways/${GATEWAY}/cmd/c`, 'wrong way', { qos: 1 })
  await other.client.publishAsync(`gateways/${GATEWAY}/ctl/c`, 'from outpost', { qos: 1 })
  await local.inbox.waitFor((m) => m.topic === 'cmd/c' && m.payload === 'from mosquitto', 'the Mosquitto command locally')
  await local.inbox.waitFor((m) => m.topic === 'ctl/c' && m.payload === 'from outpost', 'the Outpost command locally')

  const data = (inbox: Inbox): string[] => inbox.messages.filter((m) => !m.topic.startsWith('outpost/') && m.payload !== 'wrong way').map((m) => `${m.topic}=${m.payload}`)
  assert.deepEqual(data(mosq.inbox), [`gateways/${GATEWAY}/sensors/s=1`, `gateways/${GATEWAY}/sensors/s=2`, `gateways/${GATEWAY}/cmd/c=from mosquitto`])
  assert.deepEqual(data(other.inbox), [`gateways/${GATEWAY}/metrics/m=1`, `gateways/${GATEWAY}/metrics/m=2`, `gateways/${GATEWAY}/ctl/c=from outpost`])
  assert.deepEqual(local.inbox.messages.map((m) => `${m.topic}=${m.payload}`).sort(), ['cmd/c=from mosquitto', 'ctl/c=from outpost'])
})

test('$SYS/broker/bridge/<name>/...: with the cloud down, state, backlog messages, bytes and oldest age, reconnects; the drain rate after', async (t) => {
  const N = 200
  const payload = 'x'.repeat(100)
  const cloud = await tlsCloud(t)
  const outpost = await startOutpost(t, gateway([bridgeTo(cloud)], { sys_interval: 1 }))
  await logged(outpost, 'upstream connected')
  const local = await clientOf(t, outpost)
  const prefix = '$SYS/broker/bridge/cloud/'
  await local.client.subscribeAsync(`${prefix}#`)
  // $SYS sends only what changed, so the latest value per topic is the state.
  const sys = (key: string): string | undefined => local.inbox.messages.findLast((m) => m.topic === prefix + key)?.payload
  const num = (key: string): number => Number(sys(key) ?? Number.NaN)
  const show = (): string => JSON.stringify(Object.fromEntries(local.inbox.messages.map((m) => [m.topic.slice(prefix.length), m.payload])))
  await local.inbox.waitUntil(() => sys('state') === 'connected', () => `state connected; ${show()}`, 3_000)

  const lost = nextLog(outpost, 'upstream link lost')
  await cloud.broker.stop()
  await lost
  await publishMany(local.client, 'sensors/seq', N, 0, payload)
  await local.inbox.waitUntil(
    () => sys('state') === 'disconnected' && num('backlog/messages') === N && num('backlog/bytes') >= N * payload.length && num('backlog/oldest-age') >= 1 && num('reconnects') >= 1,
    () => `the outage in $SYS; ${show()}`,
    6_000,
  )
  assert.equal(num('dropped'), 0)

  await cloud.broker.start()
  await local.inbox.waitUntil(
    () => sys('state') === 'connected' && num('backlog/messages') === 0 && num('backlog/bytes') === 0 && num('backlog/oldest-age') === 0 && num('messages/sent') >= N,
    () => `the drain in $SYS; ${show()}`,
    10_000,
  )
  // The round after the drain reports the rate it went at.
  await local.inbox.waitUntil(() => local.inbox.messages.some((m) => m.topic === `${prefix}drain-rate` && Number(m.payload) > 0), () => `a drain rate; ${show()}`, 3_000)
})
