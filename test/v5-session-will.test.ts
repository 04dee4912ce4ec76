/**
 * MQTT 5 Will Messages over real sockets: the Will Delay Interval (sent after it, cancelled by a
 * return in time, sent early when the session ends first), will properties carried to a v5
 * subscriber, DISCONNECT 0x04 versus 0x00, and wills the server cannot honour refused in CONNACK.
 * A connection "fails" by the client destroying its socket without DISCONNECT.
 *
 * Delays are 1 s and the broker's sweep runs every 500 ms, so a delayed will is out within about
 * 1.5 s; the tests that wait that long run concurrently, each on its own broker.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { IConnackPacket, IConnectPacket, IPublishPacket } from 'mqtt-packet'
import type { Broker } from '../src/broker/broker.js'
import type { RawClient } from './helpers/raw-client.js'
import { mqtt5, v5Broker } from './helpers/v5.js'

type Will = NonNullable<IConnectPacket['will']>

/** CONNECT v5 with a will on `topic`; returns the CONNACK. */
function connectWithWill(c: RawClient, clientId: string, opts: { will?: Partial<Will>; expiry?: number; clean?: boolean } = {}): Promise<IConnackPacket> {
  const will: Will = { topic: `will/${clientId}`, payload: Buffer.from(`${clientId} is gone`), qos: 1, retain: false, ...opts.will }
  return c.connect({ protocolVersion: 5, clientId, clean: opts.clean ?? true, will, properties: { sessionExpiryInterval: opts.expiry ?? 0 } })
}

/** A raw v5 client subscribed to `will/#` at QoS 1. */
async function watcher(make: () => RawClient): Promise<RawClient> {
  const w = make()
  assert.equal((await w.connect({ protocolVersion: 5, clientId: 'watcher' })).reasonCode, 0)
  w.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'will/#', qos: 1 }] }, 5)
  assert.equal((await w.next()).cmd, 'suback')
  return w
}

/**
 * Publishes a sentinel to `will/sentinel` and returns the first PUBLISH the watcher gets next:
 * anything the broker published before the sentinel arrives first.
 */
async function firstAfterSentinel(make: () => RawClient, w: RawClient): Promise<IPublishPacket> {
  const p = make()
  await p.connect({ protocolVersion: 5, clientId: 'sentinel' })
  p.send({ cmd: 'publish', topic: 'will/sentinel', payload: Buffer.from('sentinel'), qos: 1, messageId: 1, dup: false, retain: false }, 5)
  assert.equal((await p.next()).cmd, 'puback')
  const first = await w.nextPublish()
  if (first.topic !== 'will/sentinel') w.send({ cmd: 'puback', messageId: first.messageId ?? 0 }, 5)
  return first
}

/** The broker's public count of wills waiting for their delay reaches `n`; rejects after 2 s. */
async function pendingWills(broker: Broker, n: number): Promise<void> {
  const start = Date.now()
  while (broker.pendingWillCount !== n) {
    if (Date.now() - start > 2000) throw new Error(`${broker.pendingWillCount} pending wills, expected ${n}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

describe('Will Delay Interval', { concurrency: true }, () => {
  test('the will goes out after the delay when the client does not come back (section 3.1.3.2.2)', async (t) => {
    const { raw } = await v5Broker(t)
    const w = await watcher(raw)
    const c = raw()
    await connectWithWill(c, 'late', { will: { properties: { willDelayInterval: 1 } }, expiry: 60 })
    const start = Date.now()
    c.end()
    const will = await w.nextPublish(3000)
    const elapsed = Date.now() - start
    assert.equal(will.topic, 'will/late')
    assert.equal(will.payload.toString(), 'late is gone')
    assert.ok(elapsed >= 900, `will after ${elapsed} ms, before its 1 s delay`)
  })

  test('reconnecting to the session before the delay cancels the will [MQTT-3.1.3-9]', async (t) => {
    const { broker, raw } = await v5Broker(t)
    const w = await watcher(raw)
    const c = raw()
    await connectWithWill(c, 'back', { will: { properties: { willDelayInterval: 1 } }, expiry: 60, clean: false })
    c.end()
    await pendingWills(broker, 1)
    const again = await raw().connect({ protocolVersion: 5, clientId: 'back', clean: false, properties: { sessionExpiryInterval: 60 } })
    assert.equal(again.sessionPresent, true)
    // Past the delay and a sweep: a will still scheduled would be out by now.
    await sleep(1600)
    assert.equal((await firstAfterSentinel(raw, w)).topic, 'will/sentinel')
  })

  test('a takeover that resumes the session is a return in time: the old connection\'s delayed will is cancelled [MQTT-3.1.4-3] [MQTT-3.1.3-9]', async (t) => {
    const { raw } = await v5Broker(t)
    const w = await watcher(raw)
    const old = raw()
    await connectWithWill(old, 'twin', { will: { properties: { willDelayInterval: 1 } }, expiry: 60, clean: false })
    const resumed = await raw().connect({ protocolVersion: 5, clientId: 'twin', clean: false, properties: { sessionExpiryInterval: 60 } })
    assert.equal(resumed.sessionPresent, true)
    const d = await old.next()
    assert.equal(d.cmd === 'disconnect' && d.reasonCode, 0x8e)
    await sleep(1600)
    assert.equal((await firstAfterSentinel(raw, w)).topic, 'will/sentinel')
  })

  test('a session that ends before the delay sends the will then: Session Expiry 1 s, Will Delay 30 s (section 3.1.3.2.2)', async (t) => {
    const { raw } = await v5Broker(t)
    const w = await watcher(raw)
    const c = raw()
    await connectWithWill(c, 'short-session', { will: { properties: { willDelayInterval: 30 } }, expiry: 1 })
    const start = Date.now()
    c.end()
    const will = await w.nextPublish(3000)
    const elapsed = Date.now() - start
    assert.equal(will.topic, 'will/short-session')
    assert.ok(elapsed >= 900, `will after ${elapsed} ms, before the session's 1 s expiry`)
  })

  test('Session Expiry 0 ends the session with the connection: a delayed will goes out at once (section 3.1.3.2.2)', async (t) => {
    const { raw } = await v5Broker(t)
    const w = await watcher(raw)
    const c = raw()
    await connectWithWill(c, 'no-session', { will: { properties: { willDelayInterval: 30 } }, expiry: 0 })
    c.end()
    assert.equal((await w.nextPublish(1000)).topic, 'will/no-session')
  })

  test('reconnecting with Clean Start 1 ends the old session, and its pending will goes out then (section 3.1.3.2.2)', async (t) => {
    const { broker, raw } = await v5Broker(t)
    const w = await watcher(raw)
    const c = raw()
    await connectWithWill(c, 'restart', { will: { properties: { willDelayInterval: 30 } }, expiry: 60 })
    c.end()
    await pendingWills(broker, 1)
    const fresh = await raw().connect({ protocolVersion: 5, clientId: 'restart', clean: true, properties: { sessionExpiryInterval: 60 } })
    assert.equal(fresh.sessionPresent, false)
    assert.equal((await w.nextPublish(1000)).topic, 'will/restart')
  })
})

describe('will message', () => {
  test('will properties reach a v5 subscriber: Content Type, Response Topic, Correlation Data, Payload Format, Message Expiry, User Properties in order [MQTT-3.1.3-10] (MQTT.js)', async (t) => {
    const { port } = await v5Broker(t)
    const { client: sub } = await mqtt5(t, port, 'listener')
    await sub.subscribeAsync('will/#', { qos: 1 })
    const got = new Promise<IPublishPacket>((resolve) => sub.once('message', (_topic, _payload, packet) => resolve(packet)))

    const { client: dying } = await mqtt5(t, port, 'dying', {
      will: {
        topic: 'will/dying',
        payload: Buffer.from('{"state":"offline"}'),
        qos: 1,
        retain: false,
        properties: {
          contentType: 'application/json',
          responseTopic: 'replies/dying',
          correlationData: Buffer.from([1, 2, 3]),
          payloadFormatIndicator: true,
          messageExpiryInterval: 60,
          userProperties: { zone: 'north', alpha: 'first', mid: 'x' },
        },
      },
    })
    // Forced: the socket is destroyed without DISCONNECT, so the will goes out.
    await dying.endAsync(true)

    const will = await got
    assert.equal(will.topic, 'will/dying')
    assert.equal(will.payload.toString(), '{"state":"offline"}')
    const p = will.properties ?? {}
    assert.equal(p.contentType, 'application/json')
    assert.equal(p.responseTopic, 'replies/dying')
    assert.deepEqual(p.correlationData, Buffer.from([1, 2, 3]))
    assert.equal(p.payloadFormatIndicator, true)
    const expiry = p.messageExpiryInterval ?? 0
    assert.ok(expiry > 55 && expiry <= 60, `Message Expiry Interval ${expiry}: what is left of 60 s`)
    // The decoder adds keys in wire order, so the entries show the order the broker sent.
    assert.deepEqual(Object.entries(p.userProperties ?? {}), [['zone', 'north'], ['alpha', 'first'], ['mid', 'x']])
  })

  test('a takeover closes the old connection without DISCONNECT from it: its will (no delay) is published [MQTT-3.1.4-3]', async (t) => {
    const { raw } = await v5Broker(t)
    const w = await watcher(raw)
    const old = raw()
    await connectWithWill(old, 'replaced')
    assert.equal((await raw().connect({ protocolVersion: 5, clientId: 'replaced' })).reasonCode, 0)
    assert.equal((await w.nextPublish()).topic, 'will/replaced')
  })

  test('DISCONNECT 0x04 (Disconnect with Will Message) publishes the will; 0x00 discards it [MQTT-3.14.4-3]', async (t) => {
    const { raw } = await v5Broker(t)
    const w = await watcher(raw)
    const withWill = raw()
    await connectWithWill(withWill, 'asks')
    withWill.send({ cmd: 'disconnect', reasonCode: 0x04 }, 5)
    await withWill.closed()
    const will = await w.nextPublish()
    assert.equal(will.topic, 'will/asks')
    w.send({ cmd: 'puback', messageId: will.messageId ?? 0 }, 5)

    const normal = raw()
    await connectWithWill(normal, 'polite')
    normal.send({ cmd: 'disconnect', reasonCode: 0x00 }, 5)
    await normal.closed()
    assert.equal((await firstAfterSentinel(raw, w)).topic, 'will/sentinel', 'no will after DISCONNECT 0x00')
  })

  test('a will QoS above max_qos is refused: CONNACK 0x9B and close [MQTT-3.2.2-12]', async (t) => {
    const { raw } = await v5Broker(t, { maxQos: 1 })
    const c = raw()
    const connack = await connectWithWill(c, 'qos2-will', { will: { qos: 2 } })
    assert.equal(connack.reasonCode, 0x9b)
    await c.closed()
    // QoS 1 is within the limit.
    assert.equal((await connectWithWill(raw(), 'qos1-will', { will: { qos: 1 } })).reasonCode, 0)
  })

  test('a retained will with retain_available false is refused: CONNACK 0x9A and close [MQTT-3.2.2-13]', async (t) => {
    const { raw } = await v5Broker(t, { retainAvailable: false })
    const c = raw()
    const connack = await connectWithWill(c, 'retained-will', { will: { retain: true } })
    assert.equal(connack.reasonCode, 0x9a)
    await c.closed()
    assert.equal((await connectWithWill(raw(), 'plain-will', { will: { retain: false } })).reasonCode, 0)
  })
})
