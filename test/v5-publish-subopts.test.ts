/**
 * MQTT 5 subscription options (section 3.8.3.1: No Local, Retain As Published, Retain Handling),
 * Subscription Identifiers, and the v5-only reason codes of UNSUBACK and PUBACK, on a real socket.
 * MQTT.js (v5 mode) where parsed properties are enough; raw v5 clients where the exact order of
 * SUBACK and retained PUBLISH packets is the point.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { IPublishPacket } from 'mqtt-packet'
import type { RawClient } from './helpers/raw-client.js'
import { mqtt5, nextOf, raw5, sub5, v5Broker, WAIT_MS } from './helpers/v5.js'

function publish(topic: string, payload: string, qos: 0 | 1, retain = false, messageId = 1): IPublishPacket {
  return { cmd: 'publish', topic, payload: Buffer.from(payload), qos, retain, dup: false, ...(qos > 0 ? { messageId } : {}) }
}

/** The Subscription Identifiers of a PUBLISH, sorted: their order is not significant [MQTT-3.3.4-4]. */
function ids(packet: IPublishPacket | undefined): number[] {
  const v = packet?.properties?.subscriptionIdentifier
  return v === undefined ? [] : [v].flat().sort((a, b) => a - b)
}

describe('subscription options', () => {
  test('No Local: a client does not get its own messages back on that subscription [MQTT-3.8.3-3]', async (t) => {
    const { port } = await v5Broker(t)
    const noLocal = await mqtt5(t, port, 'nl-on')
    await noLocal.client.subscribeAsync('nl/t', { qos: 1, nl: true })
    const echo = await mqtt5(t, port, 'nl-off')
    await echo.client.subscribeAsync('nl/t', { qos: 1, nl: false })
    await noLocal.client.publishAsync('nl/t', 'from nl-on', { qos: 1 })
    await echo.client.publishAsync('nl/t', 'from nl-off', { qos: 1 })
    await echo.inbox.count(2)
    assert.deepEqual(echo.inbox.payloads(), ['from nl-on', 'from nl-off'], 'without No Local a client hears itself')
    await noLocal.inbox.count(1)
    assert.deepEqual(noLocal.inbox.payloads(), ['from nl-off'], 'its own message was not echoed (the later one proves it would have arrived by now)')
  })

  test('Retain As Published keeps the RETAIN flag on forwarded messages [MQTT-3.3.1-13]; without it the flag is cleared [MQTT-3.3.1-12]', async (t) => {
    const { port } = await v5Broker(t)
    const rap = await raw5(t, port, 'rap-on')
    assert.deepEqual(await sub5(rap, [{ topic: 'rap/t', qos: 1, rap: true }]), [1])
    const plain = await raw5(t, port, 'rap-off')
    assert.deepEqual(await sub5(plain, [{ topic: 'rap/t', qos: 1 }]), [1])
    const pub = await raw5(t, port, 'rap-pub')
    pub.send(publish('rap/t', 'retained', 1, true, 1), 5)
    pub.send(publish('rap/t', 'live', 1, false, 2), 5)
    for (const [c, flags] of [[rap, [true, false]], [plain, [false, false]]] as const) {
      const got: Array<[string, boolean]> = []
      for (let i = 0; i < 2; i++) {
        const p = await c.nextPublish(WAIT_MS)
        got.push([p.payload.toString(), p.retain])
        c.send({ cmd: 'puback', messageId: p.messageId as number }, 5)
      }
      assert.deepEqual(got, [['retained', flags[0]], ['live', flags[1]]])
    }
  })

  test('Retain Handling 0 sends retained messages on every SUBSCRIBE [MQTT-3.3.1-9], 1 only when the subscription is new [MQTT-3.3.1-10], 2 never [MQTT-3.3.1-11]', async (t) => {
    const { port } = await v5Broker(t)
    const pub = await raw5(t, port, 'rh-pub')
    pub.send(publish('rh/t', 'kept', 1, true, 1), 5)
    pub.send(publish('rh-sentinel/x', 'sentinel', 1, true, 2), 5)
    await nextOf(pub, 'puback')
    await nextOf(pub, 'puback')
    /** The retained topics a SUBSCRIBE with this Retain Handling brings, up to a sentinel's. */
    const retainedTopics = async (c: RawClient, rh: 0 | 1 | 2): Promise<string[]> => {
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rh/t', qos: 0, rh }] }, 5)
      // SUBSCRIBE packets are handled one at a time, so the sentinel subscription's retained
      // message comes after whatever the one before it sent.
      c.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'rh-sentinel/x', qos: 0 }] }, 5)
      const topics: string[] = []
      let subacks = 0
      for (;;) {
        const p = await c.next(WAIT_MS)
        if (p.cmd === 'suback') {
          assert.deepEqual(p.granted, [0])
          subacks++
          continue
        }
        assert.equal(p.cmd, 'publish')
        if (p.cmd !== 'publish') return topics
        assert.equal(p.retain, true)
        if (p.topic === 'rh-sentinel/x') {
          assert.equal(subacks, 2)
          return topics
        }
        topics.push(p.topic)
      }
    }
    const c0 = await raw5(t, port, 'rh0')
    assert.deepEqual(await retainedTopics(c0, 0), ['rh/t'])
    assert.deepEqual(await retainedTopics(c0, 0), ['rh/t'], 'again for a subscription that existed')
    const c1 = await raw5(t, port, 'rh1')
    assert.deepEqual(await retainedTopics(c1, 1), ['rh/t'], 'new subscription')
    assert.deepEqual(await retainedTopics(c1, 1), [], 'not for one that existed')
    const c2 = await raw5(t, port, 'rh2')
    assert.deepEqual(await retainedTopics(c2, 2), [])
    assert.deepEqual(await retainedTopics(c2, 2), [])
  })

  test('Retain Handling 1: a subscription restored with a persistent session is not new [MQTT-3.3.1-10]', async (t) => {
    const { port } = await v5Broker(t)
    const pub = await raw5(t, port, 'rhp-pub')
    pub.send(publish('rhp/t', 'kept', 1, true, 1), 5)
    pub.send(publish('rhp-sentinel/x', 'sentinel', 1, true, 2), 5)
    await nextOf(pub, 'puback')
    await nextOf(pub, 'puback')
    const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } }
    const first = await raw5(t, port, 'rhp', persistent)
    assert.deepEqual(await sub5(first, [{ topic: 'rhp/t', qos: 0, rh: 1 }]), [0])
    assert.equal((await first.nextPublish(WAIT_MS)).topic, 'rhp/t')
    await first.disconnect()
    const again = await raw5(t, port, 'rhp', persistent)
    assert.deepEqual(await sub5(again, [{ topic: 'rhp/t', qos: 0, rh: 1 }]), [0])
    assert.deepEqual(await sub5(again, [{ topic: 'rhp-sentinel/x', qos: 0 }]), [0])
    assert.equal((await again.nextPublish(WAIT_MS)).topic, 'rhp-sentinel/x')
  })
})

describe('Subscription Identifiers', () => {
  test('sent with every matching message; overlapping subscriptions give one PUBLISH with all their ids [MQTT-3.3.4-3] [MQTT-3.3.4-4]', async (t) => {
    const { port } = await v5Broker(t)
    const { client, inbox } = await mqtt5(t, port, 'si-sub')
    await client.subscribeAsync('si/+', { qos: 1, properties: { subscriptionIdentifier: 7 } })
    await client.subscribeAsync('si/#', { qos: 1, properties: { subscriptionIdentifier: 268_435_455 } })
    await client.subscribeAsync('plain/x', { qos: 1 })
    const pub = await mqtt5(t, port, 'si-pub')
    await pub.client.publishAsync('si/a', 'both', { qos: 1 })
    await pub.client.publishAsync('si/a/b', 'hash only', { qos: 1 })
    await pub.client.publishAsync('plain/x', 'none', { qos: 1 })
    await inbox.count(3)
    assert.deepEqual(
      inbox.messages.map((m) => [m.payload, ids(m.packet)]),
      [['both', [7, 268_435_455]], ['hash only', [268_435_455]], ['none', []]],
      'one copy per message, carrying every matching id (the largest varint too)',
    )

    // Re-subscribing replaces the identifier; without one the subscription has none (section 3.8.2.1.2).
    await client.subscribeAsync('si/+', { qos: 1, properties: { subscriptionIdentifier: 9 } })
    await client.subscribeAsync('si/#', { qos: 1 })
    await pub.client.publishAsync('si/a', 'after', { qos: 1 })
    await inbox.count(4)
    assert.deepEqual(ids(inbox.messages[3]?.packet), [9])
  })

  test("a subscription's identifier is on the retained messages sent when it is made [MQTT-3.3.4-3]", async (t) => {
    const { port } = await v5Broker(t)
    const pub = await raw5(t, port, 'sir-pub')
    pub.send(publish('sir/x', 'kept', 1, true), 5)
    await nextOf(pub, 'puback')
    const sub = await raw5(t, port, 'sir-sub')
    assert.deepEqual(await sub5(sub, [{ topic: 'sir/#', qos: 0 }], 42), [0])
    const p = await sub.nextPublish(WAIT_MS)
    assert.equal(p.retain, true)
    assert.deepEqual(ids(p), [42])
  })
})

describe('v5 reason codes', () => {
  test('UNSUBACK: 0x00 for a filter that was subscribed, 0x11 for one that was not (section 3.11.3)', async (t) => {
    const { port } = await v5Broker(t)
    const c = await raw5(t, port, 'unsub')
    assert.deepEqual(await sub5(c, [{ topic: 'u/a', qos: 0 }]), [0])
    c.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['u/b', 'u/a', 'u/a'] }, 5)
    const ack = await nextOf(c, 'unsuback')
    assert.equal(ack.messageId, 2)
    assert.deepEqual(ack.granted, [0x11, 0x00, 0x11], 'one code per filter, in order')
  })

  test('PUBACK 0x10 when no subscriber matched, 0x00 once one does (section 3.4.2.1)', async (t) => {
    const { port } = await v5Broker(t)
    const pub = await raw5(t, port, 'nomatch-pub')
    pub.send(publish('nm/t', 'x', 1, false, 1), 5)
    const none = await nextOf(pub, 'puback')
    assert.deepEqual([none.messageId, none.reasonCode], [1, 0x10])
    const sub = await raw5(t, port, 'nomatch-sub')
    assert.deepEqual(await sub5(sub, [{ topic: 'nm/#', qos: 0 }]), [0])
    pub.send(publish('nm/t', 'y', 1, false, 2), 5)
    const some = await nextOf(pub, 'puback')
    assert.deepEqual([some.messageId, some.reasonCode ?? 0], [2, 0])
  })
})
