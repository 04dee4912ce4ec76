/**
 * Slow readers: a client that stops reading cannot make the broker buffer without bound. Its
 * QoS 1 queue stays at its cap and drops by queue_full_policy, its QoS 0 messages are dropped while
 * its socket is backed up, or, with drain_timeout, it is closed; the log says which.
 *
 * A slow reader is a raw client on a real socket that sends CONNECT and SUBSCRIBE and then stops
 * reading (`socket.pause()`), so the kernel's buffers fill and the broker's writes back up as they
 * would for a stuck device. Publishers and well-behaved subscribers are MQTT.js clients.
 */
import assert from 'node:assert/strict'
import { connect as netConnect, type Socket } from 'node:net'
import { describe, test, type TestContext } from 'node:test'
import type { IClientOptions, MqttClient } from 'mqtt'
import { generate, parser as createParser, type Packet } from 'mqtt-packet'
import type { Broker } from '../src/broker/broker.js'
import type { OutpostConfig } from '../src/config/types.js'
import { tcpGateway } from './helpers/broker.js'
import type { Inbox } from './helpers/inbox.js'
import { connectedClient } from './helpers/mqtt-client.js'
import { LogCapture, type LogLine } from './helpers/log-capture.js'
import { RawClient } from './helpers/raw-client.js'

const WARN = 40

async function setup(t: TestContext, overrides: Partial<OutpostConfig>): Promise<{ port: number; broker: Broker; logs: LogCapture }> {
  const logs = new LogCapture('info')
  const { port, broker } = await tcpGateway(t, overrides, logs.logger)
  return { port, broker, logs }
}

function mqttClient(t: TestContext, port: number, clientId: string, options: IClientOptions = {}): Promise<{ client: MqttClient; inbox: Inbox }> {
  return connectedClient(t, `mqtt://127.0.0.1:${port}`, { clientId, ...options })
}

/** A client subscribed to `load/#` that then stops reading its socket. */
async function slowReader(t: TestContext, port: number, clientId: string, qos: 0 | 1, version: 4 | 5 = 4): Promise<{ raw: RawClient; socket: Socket }> {
  const socket = netConnect(port, '127.0.0.1')
  const raw = new RawClient(socket, version)
  t.after(() => raw.end())
  await raw.connect({ clientId, protocolVersion: version })
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'load/#', qos }], ...(version === 5 ? { properties: {} } : {}) }, version)
  const ack = await raw.next()
  assert.equal(ack.cmd, 'suback')
  socket.pause()
  return { raw, socket }
}

/** Acknowledges every QoS 1 PUBLISH that arrives on `socket`, whenever it is reading. */
function autoAck(socket: Socket): void {
  const parser = createParser({ protocolVersion: 4 })
  parser.on('packet', (p: Packet) => {
    if (p.cmd === 'publish' && p.qos === 1) socket.write(generate({ cmd: 'puback', messageId: p.messageId as number }))
  })
  socket.on('data', (chunk: Buffer) => parser.parse(chunk))
}

const closedForDrain = (clientId: string) => (l: LogLine): boolean => l.level === WARN && l.clientId === clientId && typeof l.msg === 'string' && l.msg.includes('drain_timeout') && l.msg.startsWith('closing the client')
const disconnected = (clientId: string) => (l: LogLine): boolean => l.clientId === clientId && l.msg === 'client disconnected'
const congestedLine = (clientId: string) => (l: LogLine): boolean => l.level === WARN && l.clientId === clientId && l.msg?.startsWith("dropping QoS 0 messages while the client's socket is backed up") === true

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` every 50 ms; rejects after `ms`. */
async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

const BIG = Buffer.alloc(64 * 1024, 0x61)

/** Publishes `n` 64 KiB QoS 0 messages to `load/q0`, eight at a time. */
async function publishQos0(pub: MqttClient, n: number): Promise<void> {
  for (let sent = 0; sent < n; sent += 8) await Promise.all(Array.from({ length: 8 }, () => pub.publishAsync('load/q0', BIG, { qos: 0 })))
}

/** Publishes 64 KiB QoS 0 messages until `done()` holds (at most 2,000 of them: 128 MiB). */
async function floodQos0(pub: MqttClient, done: () => boolean): Promise<void> {
  for (let sent = 0; sent < 2000; sent += 8) {
    await publishQos0(pub, 8)
    if (done()) return
  }
  throw new Error('still not done after 2,000 messages')
}

test('drain_timeout 2: a QoS 1 subscriber that stops reading is closed (0x97) and logged; others get everything and the publisher stays', async (t) => {
  const { port, broker, logs } = await setup(t, { drainTimeout: 2, maxQueuedMessages: 10, sysInterval: 1 })
  const { raw, socket } = await slowReader(t, port, 'slow-a', 1, 5)
  const good = await mqttClient(t, port, 'good-a')
  await good.client.subscribeAsync('load/#', { qos: 1 })
  const pub = await mqttClient(t, port, 'pub-a')
  let publisherClosed = 0
  pub.client.on('close', () => publisherClosed++)

  const sent = Array.from({ length: 60 }, (_, i) => `m${i}`)
  await Promise.all(sent.map((p) => pub.client.publishAsync('load/a', Buffer.concat([Buffer.from(p), Buffer.alloc(1024)]), { qos: 1 })))
  await logs.waitFor(closedForDrain('slow-a'), 'the drain_timeout line', 8000)
  const line = logs.lines.find(closedForDrain('slow-a'))
  assert.ok(line !== undefined)
  assert.equal(line.drainTimeout, 2)
  assert.ok(typeof line.queued === 'number' && line.queued > 0, `queued ${String(line.queued)}`)
  assert.equal(typeof line.buffered, 'number')
  assert.ok(typeof line.behindSeconds === 'number' && line.behindSeconds >= 2, `closed after ${String(line.behindSeconds)} s behind`)
  await logs.waitFor(disconnected('slow-a'), 'slow-a gone')
  assert.equal(broker.stats.drainTimeouts, 1)
  const watcher = await mqttClient(t, port, 'watcher-a')
  await watcher.client.subscribeAsync('$SYS/broker/clients/drain-timeouts')
  await watcher.inbox.waitFor((m) => m.payload === '1', '$SYS/broker/clients/drain-timeouts 1', 3000)

  // The well-behaved subscriber got every message, in order; the publisher was never cut off.
  await good.inbox.waitUntil(() => good.inbox.on('load/a').length === sent.length, () => `all ${sent.length} messages, got ${good.inbox.on('load/a').length}`)
  assert.deepEqual(good.inbox.on('load/a').map((m) => m.payload.slice(0, m.payload.indexOf('\0'))), sent)
  assert.equal(publisherClosed, 0)
  assert.equal(pub.client.connected, true)

  // Reading again, the slow client finds what it was sent and then DISCONNECT 0x97 Quota exceeded.
  socket.resume()
  let last: Packet | undefined
  for (;;) {
    const p = await raw.next(3000).catch(() => undefined)
    if (p === undefined) break
    last = p
  }
  assert.equal(last?.cmd, 'disconnect')
  assert.equal(last.cmd === 'disconnect' ? last.reasonCode : undefined, 0x97)
})

// Each waits for the publisher to be given up on (5 s): the two run side by side.
describe('slow subscriber without drain_timeout', { concurrency: true }, () => {
  for (const [policy, kept] of [['drop_oldest', 'the newest'], ['reject_new', 'the oldest']] as const) {
    test(`drain_timeout 0, ${policy}: a subscriber that stops reading stays connected, its queue at its cap (${kept} 10 kept), the log names the policy once`, async (t) => {
      const { port, broker, logs } = await setup(t, { drainTimeout: 0, maxQueuedMessages: 10, queueFullPolicy: policy })
      const { raw, socket } = await slowReader(t, port, 'slow-b', 1)
      const pub = await mqttClient(t, port, 'pub-b')
      // 20 go in flight (max_inflight), the next wait in the queue; the publisher is held until the
      // subscriber is given up on (5 s), then the queue cap drops the rest.
      for (let i = 0; i < 60; i++) await pub.client.publishAsync('load/b', `m${i}`, { qos: 1 })
      const backlog = broker.clientBacklog('slow-b')
      assert.deepEqual(backlog && { queued: backlog.queued, inflight: backlog.inflight }, { queued: 10, inflight: 20 })
      assert.equal(broker.stats.publishDropped, 30)
      assert.deepEqual([...broker.droppedByClient()], [['slow-b', 30]])
      const full = logs.lines.filter((l) => l.clientId === 'slow-b' && typeof l.msg === 'string' && l.msg.includes('queue full'))
      assert.equal(full.length, 1, JSON.stringify(full))
      assert.equal(full[0]?.policy, policy)
      assert.equal(full[0]?.maxQueuedMessages, 10)
      assert.match(full[0]?.msg ?? '', new RegExp(`queue_full_policy ${policy}; drain_timeout off`))
      // Given time to be closed, it is not: drain_timeout is off.
      await sleep(1000)
      assert.equal(logs.count(disconnected('slow-b')), 0)
      assert.equal(broker.connectedCount, 2)
      assert.equal(broker.stats.drainTimeouts, 0)
      // Reading again: the 20 in flight, then the 10 the policy kept.
      socket.resume()
      const got: string[] = []
      for (let i = 0; i < 30; i++) {
        const p = await raw.nextPublish()
        got.push(p.payload.toString())
        raw.send({ cmd: 'puback', messageId: p.messageId as number })
      }
      const first = policy === 'drop_oldest' ? 50 : 20
      assert.deepEqual(got, [...Array.from({ length: 20 }, (_, i) => `m${i}`), ...Array.from({ length: 10 }, (_, i) => `m${first + i}`)])
    })
  }
})

test('QoS 0 to a socket that is backed up: dropped with one log line per episode, and "caught up" once it reads again', async (t) => {
  const { port, broker, logs } = await setup(t, { drainTimeout: 0 })
  const { socket } = await slowReader(t, port, 'slow-c0', 0)
  const pub = await mqttClient(t, port, 'pub-c0')
  await floodQos0(pub.client, () => logs.count(congestedLine('slow-c0')) > 0)
  const droppedBefore = broker.stats.publishDropped
  await publishQos0(pub.client, 40)
  // All 40 dropped (as the broker reads them): the socket is still backed up.
  await until(() => broker.stats.publishDropped >= droppedBefore + 40, '40 more dropped')
  assert.equal(logs.count(congestedLine('slow-c0')), 1, 'one line for the episode')
  const line = logs.lines.find(congestedLine('slow-c0'))
  assert.ok(typeof line?.buffered === 'number' && line.buffered > 512 * 1024, `buffered ${String(line?.buffered)}`)

  // Reading again ends the episode, with the count; the next backlog is a new episode.
  socket.resume()
  const caughtUp = await logs.waitFor((l) => l.clientId === 'slow-c0' && l.msg?.startsWith('client caught up') === true, 'the caught-up line')
  assert.ok(typeof caughtUp.dropped === 'number' && caughtUp.dropped >= 40)
  socket.pause()
  await floodQos0(pub.client, () => logs.count(congestedLine('slow-c0')) > 1)
  assert.equal(logs.count(disconnected('slow-c0')), 0, 'drain_timeout off: never closed')
})

test('drain_timeout 2: a QoS 0 subscriber whose socket stays backed up is closed too', async (t) => {
  const { port, broker, logs } = await setup(t, { drainTimeout: 2 })
  await slowReader(t, port, 'slow-c', 0)
  const pub = await mqttClient(t, port, 'pub-c')
  let publisherClosed = 0
  pub.client.on('close', () => publisherClosed++)
  await floodQos0(pub.client, () => logs.count(congestedLine('slow-c')) > 0)
  const closed = await logs.waitFor(closedForDrain('slow-c'), 'the drain_timeout line', 6000)
  assert.ok(typeof closed.buffered === 'number' && closed.buffered > 512 * 1024)
  await logs.waitFor(disconnected('slow-c'), 'slow-c gone')
  assert.equal(logs.count(congestedLine('slow-c')), 1)
  assert.equal(broker.stats.drainTimeouts, 1)
  assert.equal(publisherClosed, 0)
})

test('drain_timeout 3: a client behind for 2 s twice, catching up in between, stays; one that never reads is closed', async (t) => {
  const { port, broker, logs } = await setup(t, { drainTimeout: 3, maxInflight: 2 })
  const catching = await slowReader(t, port, 'catching', 1)
  autoAck(catching.socket)
  await slowReader(t, port, 'stuck', 1)
  const pub = await mqttClient(t, port, 'pub-d')
  const drained = (): boolean => {
    const b = broker.clientBacklog('catching')
    return b !== undefined && b.queued === 0 && b.inflight === 0
  }

  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 10; i++) await pub.client.publishAsync('load/d', `r${round}-${i}`, { qos: 1 })
    assert.ok((broker.clientBacklog('catching')?.queued ?? 0) > 0, 'behind: messages wait beyond the window')
    await sleep(2000)
    catching.socket.resume()
    await until(drained, 'catching to drain')
    catching.socket.pause()
  }
  // "stuck" was behind from the first round on: closed after 3 s of it.
  await logs.waitFor(closedForDrain('stuck'), 'stuck closed', 3000)
  // "catching" was behind for about 4 s in all, never 3 s in a row.
  await sleep(1000)
  assert.equal(logs.count(closedForDrain('catching')), 0)
  assert.equal(logs.count(disconnected('catching')), 0)
  assert.equal(broker.stats.drainTimeouts, 1)
})

test('drain_timeout 2: a client that keeps taking messages, slower than they come, is never closed for it', async (t) => {
  const { port, broker, logs } = await setup(t, { drainTimeout: 2, maxInflight: 1 })
  const socket = netConnect(port, '127.0.0.1')
  const raw = new RawClient(socket, 4)
  t.after(() => raw.end())
  await raw.connect({ clientId: 'plodding', protocolVersion: 4 })
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'load/#', qos: 1 }] }, 4)
  assert.equal((await raw.next()).cmd, 'suback')
  // It acknowledges each PUBLISH 150 ms after it arrives: about 6 a second, one at a time.
  const parser = createParser({ protocolVersion: 4 })
  let acked = 0
  parser.on('packet', (p: Packet) => {
    if (p.cmd !== 'publish' || p.qos !== 1) return
    setTimeout(() => {
      socket.write(generate({ cmd: 'puback', messageId: p.messageId as number }))
      acked++
    }, 150)
  })
  socket.on('data', (chunk: Buffer) => parser.parse(chunk))
  const pub = await mqttClient(t, port, 'pub-e')
  for (let i = 0; i < 30; i++) await pub.client.publishAsync('load/e', `m${i}`, { qos: 1 })
  // Queued behind its window for about 4.5 s, twice drain_timeout, but never without progress.
  assert.ok((broker.clientBacklog('plodding')?.queued ?? 0) > 20)
  await until(() => acked === 30, 'all 30 acknowledged', 15_000)
  assert.equal(logs.count(closedForDrain('plodding')), 0)
  assert.equal(broker.stats.drainTimeouts, 0)
})
