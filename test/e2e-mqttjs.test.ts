/**
 * End-to-end: the compiled `outpost` binary as a child process, driven over real TCP by MQTT.js
 * and, where a test needs to misbehave (retransmit, not ack, go silent), by a raw socket speaking
 * mqtt-packet. Every test gets its own broker process, so counters, retained messages and log
 * lines belong to that test alone.
 *
 * "Nothing else arrived" is checked with a sentinel: a later message on the same path, so that
 * once it is in, anything the broker sent before it is in too. No fixed sleeps.
 */
import * as assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import { connect as tcpConnect, type Socket } from 'node:net'
import { describe, test, type TestContext } from 'node:test'
import { connect, connectAsync, type IClientOptions, type MqttClient } from 'mqtt'
import { generate, parser as createParser, type IConnackPacket, type Packet, type PacketCmd, type QoS } from 'mqtt-packet'
import { startOutpost, type OutpostProcess } from './helpers/outpost-process.js'
import { Inbox } from './helpers/inbox.js'
import { waitOn } from './helpers/wait.js'

const WAIT_MS = 5_000

function uniqueId(name: string): string {
  return `e2e-${name}-${randomUUID().slice(0, 8)}`
}

interface Connected {
  client: MqttClient
  inbox: Inbox
  connack: IConnackPacket
}

function clientOptions(clientId: string, opts: IClientOptions): IClientOptions {
  // No automatic reconnect: a test that closes a client wants it to stay closed.
  return { clientId, reconnectPeriod: 0, connectTimeout: WAIT_MS, ...opts }
}

/** MQTT.js client via `connectAsync`, ended (forcefully) after the test. */
async function mqttClient(t: TestContext, broker: OutpostProcess, name: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const client = await connectAsync(broker.url, clientOptions(uniqueId(name), opts), false)
  t.after(() => client.endAsync(true))
  return client
}

/**
 * MQTT.js client whose inbox is listening before CONNECT goes out, and with the CONNACK at hand.
 * Used where messages can arrive in the same read as the CONNACK (a resumed session), which
 * `connectAsync` could deliver before its promise lets the test attach a listener.
 */
function mqttClientWithInbox(t: TestContext, broker: OutpostProcess, clientId: string, opts: IClientOptions = {}): Promise<Connected> {
  const client = connect(broker.url, clientOptions(clientId, opts))
  const inbox = new Inbox(client)
  t.after(() => client.endAsync(true))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${clientId}: no CONNACK within ${WAIT_MS} ms`)), WAIT_MS)
    client.once('connect', (connack) => {
      clearTimeout(timer)
      resolve({ client, inbox, connack })
    })
    client.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    client.once('close', () => {
      clearTimeout(timer)
      reject(new Error(`${clientId}: connection closed before CONNACK`))
    })
  })
}

/** An MQTT.js subscriber with an inbox, subscribed (SUBACK received) when this resolves. */
async function subscriber(
  t: TestContext,
  broker: OutpostProcess,
  name: string,
  filters: Record<string, { qos: QoS }>,
  opts: IClientOptions = {},
): Promise<Connected> {
  const c = await mqttClientWithInbox(t, broker, uniqueId(name), opts)
  const granted = await c.client.subscribeAsync(filters)
  for (const g of granted) assert.equal(g.qos, filters[g.topic]?.qos, `granted QoS for ${g.topic}`)
  return c
}

function isCmd<C extends PacketCmd>(cmd: C): (p: Packet) => p is Extract<Packet, { cmd: C }> {
  return (p: Packet): p is Extract<Packet, { cmd: C }> => p.cmd === cmd
}

/** A client that speaks MQTT byte by byte: it only does what the test tells it. */
class RawClient {
  readonly socket: Socket
  /** Received and not yet taken, in arrival order. */
  readonly packets: Packet[] = []
  readonly closed: Promise<void>
  readonly #events = new EventEmitter()
  #isClosed = false

  constructor(socket: Socket) {
    this.socket = socket
    const parser = createParser({ protocolVersion: 4 })
    parser.on('packet', (p: Packet) => {
      this.packets.push(p)
      this.#events.emit('change')
    })
    parser.on('error', (err: unknown) => this.socket.destroy(err instanceof Error ? err : new Error(String(err))))
    socket.on('data', (chunk: Buffer) => parser.parse(chunk))
    socket.on('error', () => undefined)
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.#isClosed = true
        this.#events.emit('change')
        resolve()
      })
    })
  }

  static async open(t: TestContext, broker: OutpostProcess): Promise<RawClient> {
    const socket = tcpConnect(broker.port, broker.host)
    t.after(() => socket.destroy())
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    return new RawClient(socket)
  }

  /** Opens a socket, sends CONNECT (3.1.1) and waits for a successful CONNACK. */
  static async connected(t: TestContext, broker: OutpostProcess, clientId: string, extra: Partial<Extract<Packet, { cmd: 'connect' }>> = {}): Promise<RawClient> {
    const raw = await RawClient.open(t, broker)
    raw.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId, ...extra })
    const connack = await raw.take(isCmd('connack'), 'CONNACK')
    assert.equal(connack.returnCode, 0, 'CONNACK return code')
    return raw
  }

  get isClosed(): boolean {
    return this.#isClosed
  }

  send(packet: Packet): void {
    this.socket.write(generate(packet, { protocolVersion: 4 }))
  }

  /** Removes and returns the first received packet that matches, waiting for it if need be. */
  take<P extends Packet>(match: (p: Packet) => p is P, what: string, timeoutMs = WAIT_MS): Promise<P> {
    return waitOn(this.#events, 'change', () => {
      for (const [i, p] of this.packets.entries()) {
        if (match(p)) {
          this.packets.splice(i, 1)
          return p
        }
      }
      if (this.#isClosed) throw new Error(`connection closed while waiting for ${what}`)
      return undefined
    }, timeoutMs, what)
  }

  /** Removes and returns every packet received so far that matches. */
  drain<P extends Packet>(match: (p: Packet) => p is P): P[] {
    const out: P[] = []
    const rest: Packet[] = []
    for (const p of this.packets) {
      if (match(p)) out.push(p)
      else rest.push(p)
    }
    this.packets.splice(0, this.packets.length, ...rest)
    return out
  }
}

const isPublish = isCmd('publish')

function publishOn(topic: string, payload?: string): (p: Packet) => p is Extract<Packet, { cmd: 'publish' }> {
  return (p: Packet): p is Extract<Packet, { cmd: 'publish' }> =>
    isPublish(p) && p.topic === topic && (payload === undefined || p.payload.toString() === payload)
}

const PROTOCOLS = [
  { label: 'MQTT 3.1.1', protocolVersion: 4, protocolId: 'MQTT' },
  { label: 'MQTT 3.1', protocolVersion: 3, protocolId: 'MQIsdp' },
] as const

describe('e2e: MQTT.js against the outpost binary', () => {
  for (const proto of PROTOCOLS) {
    for (const qos of [0, 1, 2] as const) {
      test(`QoS ${qos} publish/subscribe round trip over ${proto.label}`, async (t) => {
        const broker = await startOutpost(t)
        const opts: IClientOptions = { protocolVersion: proto.protocolVersion, protocolId: proto.protocolId }
        const sub = await subscriber(t, broker, `rt-sub-v${proto.protocolVersion}`, { 'rt/topic': { qos } }, opts)
        const pub = await mqttClient(t, broker, `rt-pub-v${proto.protocolVersion}`, opts)
        await pub.publishAsync('rt/topic', `hello qos ${qos}`, { qos })
        const m = await sub.inbox.waitFor((x) => x.topic === 'rt/topic', 'the round-trip message')
        assert.deepEqual(m, { topic: 'rt/topic', payload: `hello qos ${qos}`, qos, retain: false, dup: false })
        // The broker must really have spoken this protocol level with the client.
        const line = await broker.waitForLog((r) => r.msg === 'client connected' && r.clientId === sub.client.options.clientId, WAIT_MS, 'subscriber connect line')
        assert.equal(line.protocolVersion, proto.protocolVersion)
      })
    }
  }

  test('delivery is downgraded to the subscription QoS, never upgraded [MQTT-3.8.4-6]', async (t) => {
    const broker = await startOutpost(t)
    const sub = await subscriber(t, broker, 'down-sub', { 'down/0': { qos: 0 }, 'down/1': { qos: 1 }, 'down/2': { qos: 2 } })
    const pub = await mqttClient(t, broker, 'down-pub')
    await pub.publishAsync('down/0', 'a', { qos: 2 })
    await pub.publishAsync('down/1', 'b', { qos: 2 })
    await pub.publishAsync('down/2', 'c', { qos: 1 })
    const got = await Promise.all(['down/0', 'down/1', 'down/2'].map((topic) => sub.inbox.waitFor((m) => m.topic === topic, topic)))
    assert.deepEqual(got.map((m) => m.qos), [0, 1, 1])
  })

  test('overlapping subscriptions deliver one copy at the highest matching QoS [MQTT-3.3.5-1]', async (t) => {
    const broker = await startOutpost(t)
    const sub = await subscriber(t, broker, 'overlap-sub', { 'ov/+': { qos: 0 }, 'ov/#': { qos: 2 }, 'ov/x': { qos: 1 } })
    const pub = await mqttClient(t, broker, 'overlap-pub')
    await pub.publishAsync('ov/x', 'once', { qos: 2 })
    await pub.publishAsync('ov/x', 'sentinel', { qos: 2 })
    await sub.inbox.waitFor((m) => m.payload === 'sentinel', 'sentinel')
    // The spec also allows one copy per subscription; Outpost promises one copy, as Mosquitto does.
    assert.deepEqual(sub.inbox.on('ov/x').map((m) => [m.payload, m.qos]), [['once', 2]])
  })

  test('a retained message is stored and delivered to a new subscriber with the retain flag set [MQTT-3.3.1-8]', async (t) => {
    const broker = await startOutpost(t)
    const pub = await mqttClient(t, broker, 'ret-pub')
    await pub.publishAsync('ret/a', 'kept', { qos: 1, retain: true })
    const sub = await subscriber(t, broker, 'ret-sub', { 'ret/#': { qos: 1 } })
    const m = await sub.inbox.waitFor((x) => x.topic === 'ret/a', 'retained message')
    assert.deepEqual(m, { topic: 'ret/a', payload: 'kept', qos: 1, retain: true, dup: false })
  })

  test('a newer retained message replaces the old one [MQTT-3.3.1-5]', async (t) => {
    const broker = await startOutpost(t)
    const pub = await mqttClient(t, broker, 'repl-pub')
    await pub.publishAsync('repl/a', 'v1', { qos: 1, retain: true })
    await pub.publishAsync('repl/a', 'v2', { qos: 1, retain: true })
    const sub = await subscriber(t, broker, 'repl-sub', { 'repl/a': { qos: 1 } })
    await sub.inbox.waitFor((m) => m.payload === 'v2', 'retained v2')
    await pub.publishAsync('repl/a', 'sentinel', { qos: 1 })
    await sub.inbox.waitFor((m) => m.payload === 'sentinel', 'sentinel')
    assert.deepEqual(sub.inbox.on('repl/a').map((m) => [m.payload, m.retain]), [['v2', true]])
  })

  test('a retained message with an empty payload deletes the retained message [MQTT-3.3.1-10]', async (t) => {
    const broker = await startOutpost(t)
    const pub = await mqttClient(t, broker, 'del-pub')
    await pub.publishAsync('del/a', 'doomed', { qos: 1, retain: true })
    await pub.publishAsync('del/a', '', { qos: 1, retain: true })
    const sub = await subscriber(t, broker, 'del-sub', { 'del/a': { qos: 1 } })
    await pub.publishAsync('del/a', 'sentinel', { qos: 1 })
    await sub.inbox.waitFor((m) => m.payload === 'sentinel', 'sentinel')
    assert.deepEqual(sub.inbox.on('del/a'), [], 'no retained message after the empty retained publish')
  })

  test('a QoS 0 retained message is stored too [MQTT-3.3.1-7]', async (t) => {
    const broker = await startOutpost(t)
    const pub = await mqttClient(t, broker, 'r0-pub')
    await pub.publishAsync('r0/a', 'zero', { qos: 0, retain: true })
    // QoS 0 has no ack; a QoS 1 publish behind it on the same connection proves it was routed.
    await pub.publishAsync('r0/fence', 'x', { qos: 1 })
    const sub = await subscriber(t, broker, 'r0-sub', { 'r0/a': { qos: 2 } })
    const m = await sub.inbox.waitFor((x) => x.topic === 'r0/a', 'retained QoS 0 message')
    assert.deepEqual(m, { topic: 'r0/a', payload: 'zero', qos: 0, retain: true, dup: false })
  })

  test('existing subscribers get a retained publish with retain flag 0 [MQTT-3.3.1-9]', async (t) => {
    const broker = await startOutpost(t)
    const sub = await subscriber(t, broker, 'r9-sub', { 'r9/a': { qos: 1 } })
    const pub = await mqttClient(t, broker, 'r9-pub')
    await pub.publishAsync('r9/a', 'live', { qos: 1, retain: true })
    const m = await sub.inbox.waitFor((x) => x.topic === 'r9/a', 'live retained publish')
    assert.equal(m.retain, false)
  })

  test('the will is published when the socket closes without DISCONNECT [MQTT-3.1.2-8]', async (t) => {
    const broker = await startOutpost(t)
    const watcher = await subscriber(t, broker, 'will-watch', { 'will/abrupt': { qos: 1 } })
    const dying = await mqttClient(t, broker, 'will-dying', { will: { topic: 'will/abrupt', payload: Buffer.from('gone'), qos: 1, retain: false } })
    dying.stream.destroy()
    const m = await watcher.inbox.waitFor((x) => x.topic === 'will/abrupt', 'will message')
    assert.deepEqual([m.payload, m.qos], ['gone', 1])
  })

  test('the will is published on keepalive timeout, within 1.5 keepalive periods [MQTT-3.1.2-8] [MQTT-3.1.2-24]', async (t) => {
    const broker = await startOutpost(t)
    const watcher = await subscriber(t, broker, 'ka-watch', { 'will/keepalive': { qos: 1 } })
    const raw = await RawClient.connected(t, broker, uniqueId('ka-silent'), {
      keepalive: 1,
      will: { topic: 'will/keepalive', payload: Buffer.from('timed out'), qos: 1, retain: false },
    })
    const connectedAt = Date.now()
    // The raw client now says nothing: no PINGREQ.
    const m = await watcher.inbox.waitFor((x) => x.topic === 'will/keepalive', 'will after keepalive timeout', 4_000)
    const elapsed = Date.now() - connectedAt
    assert.equal(m.payload, 'timed out')
    assert.ok(elapsed >= 1_000, `will came after ${elapsed} ms, before one keepalive period`)
    assert.ok(elapsed <= 2_600, `will came after ${elapsed} ms, expected within ~2.5 s`)
    await raw.closed
  })

  test('the will is not published after DISCONNECT [MQTT-3.1.2-10]', async (t) => {
    const broker = await startOutpost(t)
    const watcher = await subscriber(t, broker, 'nowill-watch', { 'will/clean': { qos: 1 } })
    const leaving = await mqttClient(t, broker, 'nowill-leaving', { will: { topic: 'will/clean', payload: Buffer.from('should not appear'), qos: 1, retain: false } })
    const id = leaving.options.clientId
    await leaving.endAsync()
    await broker.waitForLog((r) => r.msg === 'client disconnected' && r.clientId === id, WAIT_MS, 'disconnect line')
    const pub = await mqttClient(t, broker, 'nowill-pub')
    await pub.publishAsync('will/clean', 'sentinel', { qos: 1 })
    await watcher.inbox.waitFor((m) => m.payload === 'sentinel', 'sentinel')
    assert.deepEqual(watcher.inbox.on('will/clean'), [])
  })

  test('a second client with the same id takes over and the first one is closed with its will [MQTT-3.1.4-2]', async (t) => {
    const broker = await startOutpost(t)
    const watcher = await subscriber(t, broker, 'take-watch', { 'will/takeover': { qos: 1 } })
    const id = uniqueId('take')
    const first = await mqttClientWithInbox(t, broker, id, { will: { topic: 'will/takeover', payload: Buffer.from('first gone'), qos: 1, retain: false } })
    const firstClosed = new Promise<void>((resolve) => first.client.once('close', () => resolve()))
    const second = await mqttClientWithInbox(t, broker, id)
    await firstClosed
    const m = await watcher.inbox.waitFor((x) => x.topic === 'will/takeover', 'will of the taken-over client')
    assert.equal(m.payload, 'first gone')
    // The newcomer owns the id and works.
    assert.equal(second.client.connected, true)
    await second.client.subscribeAsync('take/echo', { qos: 1 })
    await second.client.publishAsync('take/echo', 'still here', { qos: 1 })
    await second.inbox.waitFor((x) => x.payload === 'still here', 'echo on the new connection')
  })

  test('a persistent session keeps subscriptions and QoS 1/2 messages while offline, not QoS 0 [MQTT-3.2.2-2]', async (t) => {
    const broker = await startOutpost(t)
    const id = uniqueId('persist')
    const first = await mqttClientWithInbox(t, broker, id, { clean: false })
    assert.equal(first.connack.sessionPresent, false)
    await first.client.subscribeAsync('persist/#', { qos: 2 })
    await first.client.endAsync()
    await broker.waitForLog((r) => r.msg === 'client disconnected' && r.clientId === id, WAIT_MS, 'disconnect line')

    const pub = await mqttClient(t, broker, 'persist-pub')
    await pub.publishAsync('persist/q0', 'offline 0', { qos: 0 })
    await pub.publishAsync('persist/q1', 'offline 1', { qos: 1 })
    await pub.publishAsync('persist/q2', 'offline 2', { qos: 2 })

    const again = await mqttClientWithInbox(t, broker, id, { clean: false })
    assert.equal(again.connack.sessionPresent, true, 'CONNACK session present')
    await pub.publishAsync('persist/end', 'sentinel', { qos: 1 })
    await again.inbox.waitFor((m) => m.payload === 'sentinel', 'sentinel on the resumed session')
    // MQTT.js hands a QoS 2 message over only at PUBREL, so it can come after the QoS 1 sentinel.
    await again.inbox.waitFor((m) => m.topic === 'persist/q2', 'the QoS 2 message queued while offline')
    const got = again.inbox.messages.filter((m) => m.payload !== 'sentinel').map((m) => [m.topic, m.payload, m.qos])
    assert.deepEqual(got, [['persist/q1', 'offline 1', 1], ['persist/q2', 'offline 2', 2]])
  })

  test('a clean session discards the previous session [MQTT-3.2.2-1] [MQTT-3.1.2-6]', async (t) => {
    const broker = await startOutpost(t)
    const id = uniqueId('clean')
    const first = await mqttClientWithInbox(t, broker, id, { clean: false })
    await first.client.subscribeAsync('clean/#', { qos: 1 })
    await first.client.endAsync()
    await broker.waitForLog((r) => r.msg === 'client disconnected' && r.clientId === id, WAIT_MS, 'disconnect line')
    const pub = await mqttClient(t, broker, 'clean-pub')
    await pub.publishAsync('clean/a', 'queued for the old session', { qos: 1 })

    const fresh = await mqttClientWithInbox(t, broker, id, { clean: true })
    assert.equal(fresh.connack.sessionPresent, false, 'CONNACK session present with clean session')
    // No subscription survives: a new one is needed to see the sentinel at all.
    await fresh.client.subscribeAsync('clean/end', { qos: 1 })
    await pub.publishAsync('clean/a', 'after clean connect', { qos: 1 })
    await pub.publishAsync('clean/end', 'sentinel', { qos: 1 })
    await fresh.inbox.waitFor((m) => m.payload === 'sentinel', 'sentinel')
    assert.deepEqual(fresh.inbox.messages.map((m) => m.payload), ['sentinel'])
    await fresh.client.endAsync()
    const disconnects = (): number => broker.records('client disconnected').filter((r) => r.clientId === id).length
    await broker.waitForLog(() => disconnects() >= 2, WAIT_MS, 'second disconnect line')

    // The clean session lasted only as long as its connection.
    const later = await mqttClientWithInbox(t, broker, id, { clean: false })
    assert.equal(later.connack.sessionPresent, false, 'no session left behind by the clean connection')
  })

  test('wildcards: + matches one level, # matches the parent and any depth', async (t) => {
    const broker = await startOutpost(t)
    const plus = await subscriber(t, broker, 'wc-plus', { 'wc/+/c': { qos: 1 } })
    const hash = await subscriber(t, broker, 'wc-hash', { 'wc/#': { qos: 1 } })
    const pub = await mqttClient(t, broker, 'wc-pub')
    for (const topic of ['wc/a/c', 'wc/a/b/c', 'wc', 'other/a/c', 'wc/b/c']) await pub.publishAsync(topic, topic, { qos: 1 })
    await pub.publishAsync('wc/end/c', 'sentinel', { qos: 1 })
    await plus.inbox.waitFor((m) => m.payload === 'sentinel', 'sentinel (+)')
    await hash.inbox.waitFor((m) => m.payload === 'sentinel', 'sentinel (#)')
    const topics = (inbox: Inbox): string[] => inbox.messages.filter((m) => m.payload !== 'sentinel').map((m) => m.topic)
    assert.deepEqual(topics(plus.inbox), ['wc/a/c', 'wc/b/c'])
    assert.deepEqual(topics(hash.inbox), ['wc/a/c', 'wc/a/b/c', 'wc', 'wc/b/c'])
  })

  test('$SYS topics are not matched by # or + at the first level [MQTT-4.7.2-1]', async (t) => {
    const broker = await startOutpost(t, { config: { sys_interval: 1 } })
    const all = await subscriber(t, broker, 'sys-hash', { '#': { qos: 0 }, '+/broker/uptime': { qos: 0 } })
    const sys = await subscriber(t, broker, 'sys-explicit', { '$SYS/broker/uptime': { qos: 0 } })
    // A live (retain 0) update means at least one $SYS round ran after `all` subscribed.
    await sys.inbox.waitFor((m) => !m.retain, 'a live $SYS/broker/uptime update', 3_000)
    const pub = await mqttClient(t, broker, 'sys-pub')
    await pub.publishAsync('plain/topic', 'sentinel', { qos: 0 })
    await all.inbox.waitFor((m) => m.payload === 'sentinel', 'sentinel')
    assert.deepEqual(all.inbox.messages.filter((m) => m.topic.startsWith('$')).map((m) => m.topic), [])
  })

  test('$SYS/broker/{uptime,clients/connected,messages/received,version} are published', async (t) => {
    const broker = await startOutpost(t, { config: { sys_interval: 1 } })
    const topics = ['$SYS/broker/uptime', '$SYS/broker/clients/connected', '$SYS/broker/messages/received', '$SYS/broker/version']
    const sub = await subscriber(t, broker, 'sys-values', Object.fromEntries(topics.map((x) => [x, { qos: 0 as QoS }])))
    const [uptime, received, version] = await Promise.all(
      [topics[0], topics[2], topics[3]].map((x) => sub.inbox.waitFor((m) => m.topic === x, String(x), 3_000)),
    )
    // The retained value may be from before this client connected; a later round counts it.
    await sub.inbox.waitFor((m) => m.topic === '$SYS/broker/clients/connected' && Number(m.payload) >= 1, 'clients/connected >= 1', 3_000)
    assert.match(uptime?.payload ?? '', /^\d+ seconds$/)
    assert.match(received?.payload ?? '', /^\d+$/)
    const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))
    const pkgVersion = typeof pkg === 'object' && pkg !== null && 'version' in pkg ? String(pkg.version) : '?'
    assert.equal(version?.payload, `outpost version ${pkgVersion}`)
  })

  test('QoS 2: a PUBLISH retransmitted with DUP before PUBREL is delivered exactly once [MQTT-4.3.3-2]', async (t) => {
    const broker = await startOutpost(t)
    const sub = await subscriber(t, broker, 'dup-sub', { 'dup/a': { qos: 2 } })
    const raw = await RawClient.connected(t, broker, uniqueId('dup-raw'))
    const publish = { cmd: 'publish', topic: 'dup/a', payload: Buffer.from('exactly once'), qos: 2, retain: false, messageId: 7 } as const
    raw.send({ ...publish, dup: false })
    await raw.take(isCmd('pubrec'), 'first PUBREC')
    raw.send({ ...publish, dup: true })
    const rec = await raw.take(isCmd('pubrec'), 'PUBREC for the retransmission')
    assert.equal(rec.messageId, 7)
    raw.send({ cmd: 'pubrel', messageId: 7 })
    assert.equal((await raw.take(isCmd('pubcomp'), 'PUBCOMP')).messageId, 7)
    // A second message with a new id, fully acknowledged, as the sentinel.
    raw.send({ ...publish, payload: Buffer.from('sentinel'), dup: false, messageId: 8 })
    await raw.take(isCmd('pubrec'), 'sentinel PUBREC')
    raw.send({ cmd: 'pubrel', messageId: 8 })
    await raw.take(isCmd('pubcomp'), 'sentinel PUBCOMP')
    await sub.inbox.waitFor((m) => m.payload === 'sentinel', 'sentinel')
    assert.deepEqual(sub.inbox.on('dup/a').map((m) => [m.payload, m.qos]), [['exactly once', 2]])
  })

  test('max_inflight 2: a subscriber that does not ack gets only 2 QoS 1 messages until it sends PUBACK', async (t) => {
    const broker = await startOutpost(t, { config: { max_inflight: 2 } })
    const raw = await RawClient.connected(t, broker, uniqueId('window-raw'))
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'win/data', qos: 1 }, { topic: 'win/sentinel', qos: 0 }] })
    assert.deepEqual((await raw.take(isCmd('suback'), 'SUBACK')).granted, [1, 0])
    const pub = await mqttClient(t, broker, 'window-pub')
    for (let i = 0; i < 5; i++) await pub.publishAsync('win/data', `m${i}`, { qos: 1 })
    // QoS 0 bypasses the window, so it arrives after everything the broker let through.
    const sentinel = async (n: number): Promise<Array<Extract<Packet, { cmd: 'publish' }>>> => {
      await pub.publishAsync('win/sentinel', `s${n}`, { qos: 0 })
      await raw.take(publishOn('win/sentinel', `s${n}`), `sentinel s${n}`)
      return raw.drain(publishOn('win/data'))
    }
    const payloads = (ps: ReadonlyArray<Extract<Packet, { cmd: 'publish' }>>): string[] => ps.map((p) => p.payload.toString())
    const firstWindow = await sentinel(1)
    assert.deepEqual(payloads(firstWindow), ['m0', 'm1'], 'the first window')
    const [m0, m1] = firstWindow
    assert.deepEqual(raw.packets, [], 'nothing else arrived')

    // Ack m0: exactly one more may go out.
    raw.send({ cmd: 'puback', messageId: m0?.messageId ?? 0 })
    const m2 = await raw.take(publishOn('win/data'), 'a third PUBLISH after one PUBACK')
    assert.equal(m2.payload.toString(), 'm2')
    assert.deepEqual(payloads(await sentinel(2)), [], 'only one message per PUBACK')

    raw.send({ cmd: 'puback', messageId: m1?.messageId ?? 0 })
    raw.send({ cmd: 'puback', messageId: m2.messageId ?? 0 })
    await raw.take(publishOn('win/data', 'm3'), 'm3')
    await raw.take(publishOn('win/data', 'm4'), 'm4')
    assert.deepEqual(payloads(await sentinel(3)), [], 'all five delivered once')
  })

  test('max_queued_messages 5: an offline session keeps 5 of 10 and the log has one "queue full" line', async (t) => {
    const broker = await startOutpost(t, { config: { max_queued_messages: 5 } })
    const id = uniqueId('queue')
    const first = await mqttClientWithInbox(t, broker, id, { clean: false })
    await first.client.subscribeAsync('queue/a', { qos: 1 })
    await first.client.endAsync()
    await broker.waitForLog((r) => r.msg === 'client disconnected' && r.clientId === id, WAIT_MS, 'disconnect line')
    const pub = await mqttClient(t, broker, 'queue-pub')
    for (let i = 0; i < 10; i++) await pub.publishAsync('queue/a', `m${i}`, { qos: 1 })

    const again = await mqttClientWithInbox(t, broker, id, { clean: false })
    assert.equal(again.connack.sessionPresent, true)
    await pub.publishAsync('queue/a', 'sentinel', { qos: 1 })
    await again.inbox.waitFor((m) => m.payload === 'sentinel', 'sentinel')
    const got = again.inbox.on('queue/a').map((m) => m.payload)
    assert.equal(got.length, 5, `received ${JSON.stringify(got)}`)
    const order = got.map((p) => Number(p.slice(1)))
    assert.deepEqual(order, [...order].sort((a, b) => a - b), 'queued messages keep their order')

    // All lines are in once the process has exited.
    assert.equal((await broker.stop()).code, 0)
    const full = broker.records(/queue full/).filter((r) => r.clientId === id)
    assert.equal(full.length, 1, `"queue full" lines: ${JSON.stringify(full)}`)
    assert.equal(full[0]?.level, 'warn')
  })

  test('message_size_limit 100: a 200-byte PUBLISH is not delivered and a warning is logged', async (t) => {
    const broker = await startOutpost(t, { config: { message_size_limit: 100 } })
    const sub = await subscriber(t, broker, 'size-sub', { 'size/a': { qos: 1 } })
    const pub = await mqttClient(t, broker, 'size-pub')
    await pub.publishAsync('size/a', 'x'.repeat(200), { qos: 1 })
    await pub.publishAsync('size/a', 'sentinel', { qos: 1 })
    await sub.inbox.waitFor((m) => m.payload === 'sentinel', 'sentinel')
    assert.deepEqual(sub.inbox.on('size/a'), [])
    const warn = await broker.waitForLog((r) => r.level === 'warn' && /message_size_limit/.test(r.msg), WAIT_MS, 'size warning')
    assert.equal(warn.clientId, pub.options.clientId)
    assert.equal(warn.size, 200)
  })

  test('max_connections 2: a third connection is refused and the log says so', async (t) => {
    const broker = await startOutpost(t, { config: { max_connections: 2 } })
    const first = await mqttClient(t, broker, 'maxc-1')
    await mqttClient(t, broker, 'maxc-2')
    const third = await RawClient.open(t, broker)
    third.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId: uniqueId('maxc-3') })
    await third.closed
    assert.deepEqual(third.drain(isCmd('connack')).filter((c) => c.returnCode === 0), [], 'no successful CONNACK for the third')
    const line = await broker.waitForLog((r) => /max_connections/.test(r.msg), WAIT_MS, 'max_connections line')
    assert.equal(line.maxConnections, 2)
    // The limit is on connections open at once: a freed slot is usable again.
    const firstId = first.options.clientId
    await first.endAsync()
    await broker.waitForLog((r) => r.msg === 'client disconnected' && r.clientId === firstId, WAIT_MS, 'disconnect line')
    const fourth = await mqttClient(t, broker, 'maxc-4')
    assert.equal(fourth.connected, true)
  })
})
