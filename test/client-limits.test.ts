/**
 * The operator's per-client limits (issue 7): topic levels and length, subscriptions, publish
 * rate and bytes per second. A client over one is told (MQTT 5 reason code in DISCONNECT or
 * CONNACK) and closed, what it sent past the limit goes nowhere, and other clients carry on.
 * Real TCP, MQTT.js 3.1.1 and 5 clients.
 */
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { connect, type IClientOptions, type MqttClient } from 'mqtt'
import type { OutpostConfig } from '../src/config/types.js'
import { tcpGateway } from './helpers/broker.js'
import { Inbox } from './helpers/inbox.js'
import { LogCapture } from './helpers/log-capture.js'

interface Client {
  client: MqttClient
  inbox: Inbox
  /** Resolves with the reason code of the server's DISCONNECT (undefined for none) once the connection closes. */
  closed: Promise<number | undefined>
}

async function client(t: TestContext, port: number, options: IClientOptions = {}): Promise<Client> {
  const c = connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 5, ...options })
  const inbox = new Inbox(c)
  t.after(() => c.endAsync(true))
  let reason: number | undefined
  c.on('disconnect', (packet) => {
    reason = packet.reasonCode
  })
  c.on('error', () => undefined)
  // Bounded, so a limit that is not enforced fails the test instead of hanging it.
  const closed = new Promise<number | undefined>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${String(options.clientId)} was not closed within 8 s`)), 8000)
    c.once('close', () => {
      clearTimeout(timer)
      resolve(reason)
    })
  })
  closed.catch(() => undefined)
  await new Promise<void>((resolve, reject) => {
    c.once('connect', () => resolve())
    c.once('error', reject)
  })
  return { client: c, inbox, closed }
}

/** A gateway with `limits`, a log to check, and a bystander subscribed to everything. */
async function setup(t: TestContext, limits: Partial<OutpostConfig>): Promise<{ port: number; log: LogCapture; bystander: Client; stats: () => number }> {
  const log = new LogCapture('info')
  const { port, broker } = await tcpGateway(t, limits, log.logger)
  const bystander = await client(t, port, { clientId: 'bystander' })
  await bystander.client.subscribeAsync('#', { qos: 1 })
  return { port, log, bystander, stats: () => broker.stats.limitsExceeded }
}

function isOpen(c: Client): boolean {
  return c.client.connected && !c.client.disconnecting
}

test('max_topic_levels: a PUBLISH or SUBSCRIBE over it closes the client (v5 0x90 / 0x8F), the topic goes nowhere, others carry on', async (t) => {
  const { port, log, bystander, stats } = await setup(t, { maxTopicLevels: 3 })
  const pub = await client(t, port, { clientId: 'deep-publisher' })
  await pub.client.publishAsync('a/b/c', 'fine', { qos: 1 })
  await bystander.inbox.waitFor((m) => m.topic === 'a/b/c', 'a three-level topic')
  pub.client.publish('a/b/c/d', 'too deep', { qos: 1 })
  assert.equal(await pub.closed, 0x90)
  const line = await log.waitFor((l) => l.msg === 'client over a per-client limit, closing connection', 'the limit log line')
  assert.equal(line.limit, 'max_topic_levels')
  assert.equal(line.clientId, 'deep-publisher')

  const sub = await client(t, port, { clientId: 'deep-subscriber' })
  await sub.client.subscribeAsync('x/y/#', { qos: 0 })
  sub.client.subscribe('x/y/z/#', () => undefined)
  assert.equal(await sub.closed, 0x8f)

  // A 3.1.1 client cannot be told; it is closed.
  const v4 = await client(t, port, { clientId: 'deep-v4', protocolVersion: 4 })
  v4.client.publish('a/b/c/d/e', 'too deep', { qos: 0 })
  assert.equal(await v4.closed, undefined)

  // The bystander was never disturbed and never saw the refused topics.
  await bystander.client.publishAsync('after/limits', 'still here', { qos: 1 })
  await bystander.inbox.waitFor((m) => m.topic === 'after/limits', 'the bystander after the closes')
  assert.ok(isOpen(bystander))
  assert.deepEqual(bystander.inbox.messages.filter((m) => m.topic.split('/').length > 3), [])
  assert.equal(stats(), 3)
})

test('max_topic_length counts UTF-8 bytes; a will topic over a limit is refused in CONNACK (0x90)', async (t) => {
  const { port, bystander } = await setup(t, { maxTopicLength: 10, maxTopicLevels: 2 })
  const pub = await client(t, port, { clientId: 'long' })
  await pub.client.publishAsync('ten-bytes!', 'ok', { qos: 1 })
  await bystander.inbox.waitFor((m) => m.topic === 'ten-bytes!', 'a ten-byte topic')
  // Eight characters, eleven bytes.
  pub.client.publish('tempé-°°', 'too long', { qos: 1 })
  assert.equal(await pub.closed, 0x90)

  await assert.rejects(client(t, port, { clientId: 'will', will: { topic: 'a/b/c', payload: Buffer.from('gone'), qos: 0, retain: false } }), (err: Error & { code?: number }) => err.code === 0x90)
  const ok = await client(t, port, { clientId: 'will-ok', will: { topic: 'a/b', payload: Buffer.from('gone'), qos: 0, retain: false } })
  assert.ok(isOpen(ok))
})

test('max_subscriptions: a SUBSCRIBE that would go over closes the client (0x97) and adds nothing; repeats of a held filter do not count', async (t) => {
  const { port, log } = await setup(t, { maxSubscriptions: 2 })
  const sub = await client(t, port, { clientId: 'collector', clean: false, properties: { sessionExpiryInterval: 300 } })
  await sub.client.subscribeAsync(['a', 'b'], { qos: 1 })
  // Already held: replaces, does not add.
  await sub.client.subscribeAsync(['a', 'a'], { qos: 0 })
  sub.client.subscribe(['a', 'c'], () => undefined)
  assert.equal(await sub.closed, 0x97)
  assert.equal((await log.waitFor((l) => l.limit !== undefined, 'the limit log line')).limit, 'max_subscriptions')

  // The persistent session kept its two subscriptions and nothing of the refused SUBSCRIBE.
  const again = await client(t, port, { clientId: 'collector', clean: false, properties: { sessionExpiryInterval: 300 } })
  const pub = await client(t, port, { clientId: 'pub' })
  for (const topic of ['a', 'b', 'c']) await pub.client.publishAsync(topic, topic, { qos: 1 })
  await pub.client.publishAsync('b', 'last', { qos: 1 })
  await again.inbox.waitFor((m) => m.payload === 'last', 'the last message')
  assert.deepEqual(again.inbox.messages.map((m) => m.topic), ['a', 'b', 'b'])
})

test('max_publish_rate: a burst within the rate passes, a flood is closed with 0x96, and a steady client under the rate stays', async (t) => {
  const { port, bystander, log } = await setup(t, { maxPublishRate: 20 })
  const steady = await client(t, port, { clientId: 'steady' })
  const flood = await client(t, port, { clientId: 'flood' })
  // A burst of the full second's worth is allowed.
  await Promise.all(Array.from({ length: 20 }, (_, i) => flood.client.publishAsync('flood', String(i), { qos: 1 })))
  for (let i = 0; i < 40; i++) flood.client.publish('flood', `over ${i}`, { qos: 0 })
  assert.equal(await flood.closed, 0x96)
  assert.equal((await log.waitFor((l) => l.limit !== undefined, 'the limit log line')).limit, 'max_publish_rate')
  // Ten a second for three seconds: 30 messages, more than the bucket holds, but under the rate.
  for (let i = 0; i < 30; i++) {
    await steady.client.publishAsync('steady', String(i), { qos: 1 })
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  await bystander.inbox.waitUntil(() => bystander.inbox.on('steady').length === 30, 'all 30 steady messages')
  assert.ok(isOpen(steady))
  const flooded = bystander.inbox.on('flood').length
  assert.ok(flooded >= 20 && flooded < 60, `the flood got through in part only (${flooded} of 60)`)
})

test('max_publish_bytes_rate: payload bytes over the second are closed with 0x96', async (t) => {
  const { port, bystander, log } = await setup(t, { maxPublishBytesRate: 1000 })
  const pub = await client(t, port, { clientId: 'bulky' })
  await pub.client.publishAsync('bulk', Buffer.alloc(600, 1), { qos: 1 })
  pub.client.publish('bulk', Buffer.alloc(600, 2), { qos: 1 })
  assert.equal(await pub.closed, 0x96)
  assert.equal((await log.waitFor((l) => l.limit !== undefined, 'the limit log line')).limit, 'max_publish_bytes_rate')
  await bystander.inbox.waitFor((m) => m.topic === 'bulk', 'the first bulk message')
  assert.deepEqual(bystander.inbox.on('bulk').map((m) => m.payload.length), [600])
})

test('limits are off by default', async (t) => {
  const { port, bystander } = await setup(t, {})
  const pub = await client(t, port, { clientId: 'free' })
  const topic = Array.from({ length: 40 }, (_, i) => `l${i}`).join('/')
  await pub.client.subscribeAsync(Array.from({ length: 300 }, (_, i) => `s/${i}`), { qos: 0 })
  for (let i = 0; i < 500; i++) pub.client.publish(topic, Buffer.alloc(2000), { qos: 0 })
  await pub.client.publishAsync('done', 'x', { qos: 1 })
  await bystander.inbox.waitFor((m) => m.topic === 'done', 'the end marker')
  assert.ok(isOpen(pub))
})
