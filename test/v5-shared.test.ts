/**
 * Shared subscriptions (MQTT 5 section 4.8.2: `$share/{group}/{filter}`, and EMQX's `$queue/{filter}`)
 * on a real socket: who gets each message under each `shared_subscription_strategy`, members that
 * cannot take a message now, members that leave with messages unacknowledged, and the protocol
 * errors. Members are MQTT.js (v5 mode) clients unless a test must hold back acks or see exact
 * packets; then they are raw v5 clients.
 *
 * "Nothing else arrived" is proven with a sentinel: every member also has a plain subscription to
 * a sentinel topic, published last; once each member has it, everything routed before it is in.
 */
import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import type { MqttClient } from 'mqtt'
import { tcpClient } from './helpers/broker.js'
import { type Inbox, mqtt5, nextOf, raw5, SENTINEL, sub5, v5Broker, WAIT_MS } from './helpers/v5.js'

interface Member {
  client: MqttClient
  inbox: Inbox
}

/** `n` MQTT.js members of `filter`, each also subscribed (plainly) to the sentinel topic. */
async function members(t: TestContext, port: number, prefix: string, filter: string, n: number, idPrefix = prefix): Promise<Member[]> {
  const out: Member[] = []
  for (let i = 0; i < n; i++) {
    const m = await mqtt5(t, port, `${idPrefix}-${i}`)
    await m.client.subscribeAsync({ [filter]: { qos: 1 }, [`${prefix}/${SENTINEL}`]: { qos: 0 } })
    out.push(m)
  }
  return out
}

/** Publishes the sentinel and waits until every member has it. */
async function settle(pub: MqttClient, prefix: string, ms: Member[]): Promise<void> {
  await pub.publishAsync(`${prefix}/${SENTINEL}`, SENTINEL, { qos: 0 })
  await Promise.all(ms.map((m, i) => m.inbox.until(() => m.inbox.messages.some((x) => x.payload === SENTINEL), `member ${i}: sentinel`)))
}

async function publishAll(pub: MqttClient, topic: string, n: number, qos: 0 | 1 | 2 = 1): Promise<string[]> {
  const sent = Array.from({ length: n }, (_, i) => `${i}`)
  for (const p of sent) await pub.publishAsync(topic, p, { qos })
  return sent
}

/** Every payload the members got, sorted, so "each exactly once" is one deepEqual. */
function union(ms: Member[]): string[] {
  return ms.flatMap((m) => m.inbox.payloads()).sort((a, b) => Number(a) - Number(b))
}

describe('distribution', () => {
  test('round_robin: three members of $share/g/t get every message exactly once in total, evenly spread (section 4.8.2); each at its granted QoS [MQTT-4.8.2-3]', async (t) => {
    const { port } = await v5Broker(t)
    const ms = await members(t, port, 'rr', '$share/g/rr/t', 2)
    const q0 = await mqtt5(t, port, 'rr-2')
    await q0.client.subscribeAsync({ '$share/g/rr/t': { qos: 0 }, [`rr/${SENTINEL}`]: { qos: 0 } })
    ms.push(q0)
    const pub = await mqtt5(t, port, 'rr-pub')
    const sent = await publishAll(pub.client, 'rr/t', 9)
    await settle(pub.client, 'rr', ms)
    assert.deepEqual(union(ms), sent)
    assert.deepEqual(ms.map((m) => m.inbox.payloads().length), [3, 3, 3])
    for (const m of ms.slice(0, 2)) assert.ok(m.inbox.messages.filter((x) => x.payload !== SENTINEL).every((x) => x.packet.qos === 1))
    assert.ok(q0.inbox.messages.every((x) => x.packet.qos === 0), 'the QoS 0 member gets QoS 1 messages at QoS 0')
  })

  test('$queue/t is one implicit group (EMQX form)', async (t) => {
    const { port } = await v5Broker(t)
    const ms = await members(t, port, 'qu', '$queue/qu/t', 2)
    const pub = await mqtt5(t, port, 'qu-pub')
    const sent = await publishAll(pub.client, 'qu/t', 4)
    await settle(pub.client, 'qu', ms)
    assert.deepEqual(union(ms), sent)
    assert.deepEqual(ms.map((m) => m.inbox.payloads().length), [2, 2])
  })

  test('two groups each get a copy, a non-shared subscriber gets every copy, members get their own Subscription Identifier; PUBACK 0x00 when only a group matched', async (t) => {
    const { port } = await v5Broker(t)
    const g1 = await members(t, port, 'gg', '$share/one/gg/t', 2)
    const g2: Member[] = []
    for (let i = 0; i < 2; i++) {
      const m = await mqtt5(t, port, `gg-two-${i}`)
      await m.client.subscribeAsync('$share/two/gg/t', { qos: 1, properties: { subscriptionIdentifier: 20 + i } })
      await m.client.subscribeAsync(`gg/${SENTINEL}`, { qos: 0 })
      g2.push(m)
    }
    const plain = await members(t, port, 'gg', 'gg/t', 1, 'gg-plain')
    const pub = await raw5(t, port, 'gg-pub')
    for (let i = 0; i < 4; i++) pub.send({ cmd: 'publish', topic: 'gg/t', payload: Buffer.from(`${i}`), qos: 1, messageId: i + 1, retain: false, dup: false }, 5)
    for (let i = 0; i < 4; i++) assert.equal((await nextOf(pub, 'puback')).reasonCode ?? 0, 0)
    pub.send({ cmd: 'publish', topic: `gg/${SENTINEL}`, payload: Buffer.from(SENTINEL), qos: 0, retain: false, dup: false }, 5)
    const all = [...g1, ...g2, ...plain]
    await Promise.all(all.map((m) => m.inbox.until(() => m.inbox.messages.some((x) => x.payload === SENTINEL), 'sentinel')))
    assert.deepEqual(union(g1), ['0', '1', '2', '3'])
    assert.deepEqual(union(g2), ['0', '1', '2', '3'])
    assert.deepEqual(union(plain), ['0', '1', '2', '3'])
    g2.forEach((m, i) => {
      for (const x of m.inbox.messages.filter((y) => y.payload !== SENTINEL)) assert.equal(x.packet.properties?.subscriptionIdentifier, 20 + i)
    })

    // Only a shared subscription matches: still a match for PUBACK (section 3.4.2.1).
    const only = await raw5(t, port, 'gg-only')
    assert.deepEqual(await sub5(only, [{ topic: '$share/solo/gg/only', qos: 1 }]), [1])
    pub.send({ cmd: 'publish', topic: 'gg/only', payload: Buffer.from('x'), qos: 1, messageId: 9, retain: false, dup: false }, 5)
    assert.equal((await nextOf(pub, 'puback')).reasonCode ?? 0, 0)
  })

  test('no retained messages are sent for a shared subscription (section 4.8.2)', async (t) => {
    const { port } = await v5Broker(t)
    const pub = await raw5(t, port, 'sr-pub')
    pub.send({ cmd: 'publish', topic: 'sr/t', payload: Buffer.from('kept'), qos: 1, messageId: 1, retain: true, dup: false }, 5)
    pub.send({ cmd: 'publish', topic: 'sr-sentinel/x', payload: Buffer.from(SENTINEL), qos: 1, messageId: 2, retain: true, dup: false }, 5)
    await nextOf(pub, 'puback')
    await nextOf(pub, 'puback')
    const c = await raw5(t, port, 'sr-sub')
    // SUBSCRIBE packets are handled in order, each one's retained messages before the next SUBACK:
    // the plain subscription's copy proves the store had it when the shared one was made, and the
    // sentinel's closes the sequence.
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/sr/t', qos: 1 }] }, 5)
    c.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'sr/+', qos: 1 }] }, 5)
    c.send({ cmd: 'subscribe', messageId: 3, subscriptions: [{ topic: 'sr-sentinel/x', qos: 0 }] }, 5)
    const seen: string[] = []
    for (;;) {
      const p = await c.next(WAIT_MS)
      if (p.cmd === 'suback') seen.push(`suback ${p.messageId}`)
      else if (p.cmd === 'publish') {
        seen.push(`${p.topic} retain=${p.retain}`)
        if (p.qos > 0) c.send({ cmd: 'puback', messageId: p.messageId as number }, 5)
        if (p.topic === 'sr-sentinel/x') break
      } else assert.fail(`unexpected ${p.cmd}`)
    }
    assert.deepEqual(seen, ['suback 1', 'suback 2', 'sr/t retain=true', 'suback 3', 'sr-sentinel/x retain=true'])
  })

  test('v3.1.1 clients can be members of a shared subscription, next to v5 members', async (t) => {
    const { port, client } = await v5Broker(t)
    const v4 = client()
    await v4.connect({ clientId: 'v4-member' })
    assert.equal(await v4.subscribe('$share/g/mx/t', 1), 1)
    assert.equal(await v4.subscribe(`mx/${SENTINEL}`, 0, 2), 0)
    const v5 = await members(t, port, 'mx', '$share/g/mx/t', 1)
    const pub = await mqtt5(t, port, 'mx-pub')
    await publishAll(pub.client, 'mx/t', 4)
    await settle(pub.client, 'mx', v5)
    const v4got: string[] = []
    for (;;) {
      const p = await v4.nextPublish(WAIT_MS)
      if (p.qos > 0) v4.send({ cmd: 'puback', messageId: p.messageId as number })
      if (p.payload.toString() === SENTINEL) break
      v4got.push(p.payload.toString())
    }
    assert.deepEqual(v4got, ['0', '2'])
    assert.deepEqual(union(v5), ['1', '3'])
  })
})

describe('strategies (shared_subscription_strategy)', () => {
  test('random: every message delivered exactly once', async (t) => {
    const { port } = await v5Broker(t, { sharedSubscriptionStrategy: 'random' })
    const ms = await members(t, port, 'rnd', '$share/g/rnd/t', 3)
    const pub = await mqtt5(t, port, 'rnd-pub')
    const sent = await publishAll(pub.client, 'rnd/t', 30)
    await settle(pub.client, 'rnd', ms)
    assert.deepEqual(union(ms), sent)
  })

  test('sticky: the same member while it is fit', async (t) => {
    const { port } = await v5Broker(t, { sharedSubscriptionStrategy: 'sticky' })
    const ms = await members(t, port, 'st', '$share/g/st/t', 3)
    const pub = await mqtt5(t, port, 'st-pub')
    const sent = await publishAll(pub.client, 'st/t', 10)
    await settle(pub.client, 'st', ms)
    assert.deepEqual(union(ms), sent)
    assert.deepEqual(ms.map((m) => m.inbox.payloads().length).sort(), [0, 0, 10])
  })

  test('hash_clientid: all messages of one publisher go to the same member', async (t) => {
    const { port } = await v5Broker(t, { sharedSubscriptionStrategy: 'hash_clientid' })
    const ms = await members(t, port, 'hc', '$share/g/hc/t', 3)
    const pubs = await Promise.all(Array.from({ length: 6 }, (_, i) => mqtt5(t, port, `hc-publisher-${i}`)))
    for (const [i, p] of pubs.entries()) for (let k = 0; k < 4; k++) await p.client.publishAsync('hc/t', `${i}:${k}`, { qos: 1 })
    const [firstPub] = pubs
    assert.ok(firstPub)
    await settle(firstPub.client, 'hc', ms)
    const memberOf = new Map<string, Set<number>>()
    ms.forEach((m, mi) => {
      for (const p of m.inbox.payloads()) {
        const publisher = p.split(':')[0] as string
        memberOf.set(publisher, (memberOf.get(publisher) ?? new Set()).add(mi))
      }
    })
    assert.equal(ms.reduce((n, m) => n + m.inbox.payloads().length, 0), 24, 'each message once')
    for (const [publisher, set] of memberOf) assert.equal(set.size, 1, `publisher ${publisher} went to members ${[...set]}`)
    assert.ok(new Set([...memberOf.values()].map((s) => [...s][0])).size > 1, 'six publishers do not all hash to one member')
  })

  test('hash_topic: all messages on one topic go to the same member', async (t) => {
    const { port } = await v5Broker(t, { sharedSubscriptionStrategy: 'hash_topic' })
    const ms = await members(t, port, 'ht', '$share/g/ht/+', 3)
    const pub = await mqtt5(t, port, 'ht-pub')
    for (let k = 0; k < 3; k++) for (let i = 0; i < 6; i++) await pub.client.publishAsync(`ht/topic${i}`, `${i}:${k}`, { qos: 1 })
    await settle(pub.client, 'ht', ms)
    const memberOf = new Map<string, Set<number>>()
    ms.forEach((m, mi) => {
      for (const x of m.inbox.messages.filter((y) => y.payload !== SENTINEL)) memberOf.set(x.topic, (memberOf.get(x.topic) ?? new Set()).add(mi))
    })
    assert.equal(ms.reduce((n, m) => n + m.inbox.payloads().length, 0), 18, 'each message once')
    assert.equal(memberOf.size, 6)
    for (const [topic, set] of memberOf) assert.equal(set.size, 1, `${topic} went to members ${[...set]}`)
    assert.ok(new Set([...memberOf.values()].map((s) => [...s][0])).size > 1, 'six topics do not all hash to one member')
  })
})

describe('members that cannot take a message', () => {
  test('a member with a full window (Receive Maximum 1, not acking) is skipped while another can take the messages', async (t) => {
    const { port } = await v5Broker(t)
    const slow = await raw5(t, port, 'fw-slow', { properties: { receiveMaximum: 1 } })
    assert.deepEqual(await sub5(slow, [{ topic: '$share/g/fw/t', qos: 1 }, { topic: `fw/${SENTINEL}`, qos: 0 }]), [1, 0])
    const fast = await members(t, port, 'fw', '$share/g/fw/t', 1)
    const pub = await mqtt5(t, port, 'fw-pub')
    await publishAll(pub.client, 'fw/t', 5)
    await settle(pub.client, 'fw', fast)
    const held = await slow.nextPublish(WAIT_MS)
    assert.equal(held.payload.toString(), '0', 'round robin starts with the first member')
    assert.equal((await slow.nextPublish(WAIT_MS)).payload.toString(), SENTINEL, 'nothing more while its window is full')
    assert.deepEqual(union(fast), ['1', '2', '3', '4'])
  })

  test('a persistent member that is offline is skipped while an online member can take the messages', async (t) => {
    const { port } = await v5Broker(t)
    const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } }
    const away = await raw5(t, port, 'off-away', persistent)
    assert.deepEqual(await sub5(away, [{ topic: '$share/g/off/t', qos: 1 }]), [1])
    await away.disconnect()
    const here = await members(t, port, 'off', '$share/g/off/t', 1)
    const pub = await mqtt5(t, port, 'off-pub')
    const sent = await publishAll(pub.client, 'off/t', 4)
    await settle(pub.client, 'off', here)
    assert.deepEqual(union(here), sent)
    const back = tcpClient(t, port, 5)
    assert.equal((await back.connect({ protocolVersion: 5, clientId: 'off-away', ...persistent })).sessionPresent, true)
    // Anything queued for it would be sent right after CONNACK, ahead of this SUBACK.
    assert.deepEqual(await sub5(back, [{ topic: `off/${SENTINEL}`, qos: 0 }]), [0], 'nothing was queued for the offline member')
  })

  test('QoS 1 messages a member leaves unacknowledged go to another member: none lost (section 4.8.2)', async (t) => {
    const { port } = await v5Broker(t)
    const leaving = await raw5(t, port, 'lv-leaving')
    assert.deepEqual(await sub5(leaving, [{ topic: '$share/g/lv/t', qos: 1 }]), [1])
    const staying = await members(t, port, 'lv', '$share/g/lv/t', 1)
    const pub = await mqtt5(t, port, 'lv-pub')
    const sent = await publishAll(pub.client, 'lv/t', 6)
    const unacked: string[] = []
    for (let i = 0; i < 3; i++) unacked.push((await leaving.nextPublish(WAIT_MS)).payload.toString())
    assert.deepEqual(unacked, ['0', '2', '4'])
    leaving.end()
    const inbox = staying[0]?.inbox
    await inbox?.until(() => inbox.payloads().length >= 6, 'all six at the staying member')
    await settle(pub.client, 'lv', staying)
    assert.deepEqual(union(staying), sent, 'each exactly once')
  })

  test('a QoS 2 message sent to a member that leaves before PUBREC is not given to another member once that session ends [MQTT-4.8.2-5]', async (t) => {
    const { port } = await v5Broker(t)
    const leaving = await raw5(t, port, 'q2-leaving')
    assert.deepEqual(await sub5(leaving, [{ topic: '$share/g/q2/t', qos: 2 }]), [2])
    const staying = await members(t, port, 'q2', '$share/g/q2/t', 1)
    const pub = await mqtt5(t, port, 'q2-pub')
    await publishAll(pub.client, 'q2/t', 2, 2)
    const p = await leaving.nextPublish(WAIT_MS)
    assert.deepEqual([p.qos, p.payload.toString()], [2, '0'])
    // The client may already have handed it to its application (section 4.3.3): a copy elsewhere
    // would be a second delivery of a QoS 2 message.
    leaving.end()
    await settle(pub.client, 'q2', staying)
    assert.deepEqual(union(staying), ['1'])
  })

  test('a QoS 2 message in flight to a persistent member that leaves is completed with that member when it returns, not sent to another [MQTT-4.8.2-4]', async (t) => {
    const { port } = await v5Broker(t)
    const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } }
    const leaving = await raw5(t, port, 'q2p-leaving', persistent)
    assert.deepEqual(await sub5(leaving, [{ topic: '$share/g/q2p/t', qos: 2 }]), [2])
    const staying = await members(t, port, 'q2p', '$share/g/q2p/t', 1)
    const pub = await mqtt5(t, port, 'q2p-pub')
    await publishAll(pub.client, 'q2p/t', 2, 2)
    const first = await leaving.nextPublish(WAIT_MS)
    assert.deepEqual([first.qos, first.payload.toString()], [2, '0'])
    leaving.end()
    await settle(pub.client, 'q2p', staying)
    assert.deepEqual(union(staying), ['1'], 'the other member does not get the message in flight')
    const back = tcpClient(t, port, 5)
    assert.equal((await back.connect({ protocolVersion: 5, clientId: 'q2p-leaving', ...persistent })).sessionPresent, true)
    const again = await back.nextPublish(WAIT_MS)
    assert.deepEqual([again.payload.toString(), again.dup, again.messageId], ['0', true, first.messageId], 'resent with DUP and its packet id [MQTT-4.4.0-1]')
  })

  test('the only member, persistent, leaving with a QoS 1 message unacknowledged gets it resent on return with DUP, its packet id [MQTT-4.4.0-1] and its Subscription Identifier [MQTT-3.3.4-3]', async (t) => {
    const { port } = await v5Broker(t)
    const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } }
    const only = await raw5(t, port, 'solo', persistent)
    only.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/solo/t', qos: 1 }], properties: { subscriptionIdentifier: 5 } }, 5)
    await nextOf(only, 'suback')
    const pub = await mqtt5(t, port, 'solo-pub')
    await pub.client.publishAsync('solo/t', 'm', { qos: 1 })
    const first = await only.nextPublish(WAIT_MS)
    assert.equal(first.properties?.subscriptionIdentifier, 5)
    await only.disconnect()
    const back = tcpClient(t, port, 5)
    assert.equal((await back.connect({ protocolVersion: 5, clientId: 'solo', ...persistent })).sessionPresent, true)
    const again = await back.nextPublish(WAIT_MS)
    assert.deepEqual(
      [again.payload.toString(), again.dup, again.messageId, again.properties?.subscriptionIdentifier],
      ['m', true, first.messageId, 5],
    )
  })

  test('a message a member refused with PUBACK 0x80 is not sent to another member [MQTT-4.8.2-6]', async (t) => {
    const { port } = await v5Broker(t)
    const refusing = await raw5(t, port, 'rf-refusing')
    assert.deepEqual(await sub5(refusing, [{ topic: '$share/g/rf/t', qos: 1 }]), [1])
    const other = await members(t, port, 'rf', '$share/g/rf/t', 1)
    const pub = await mqtt5(t, port, 'rf-pub')
    await publishAll(pub.client, 'rf/t', 2)
    const p = await refusing.nextPublish(WAIT_MS)
    refusing.send({ cmd: 'puback', messageId: p.messageId as number, reasonCode: 0x80 }, 5)
    await refusing.disconnect()
    await settle(pub.client, 'rf', other)
    assert.deepEqual(union(other), ['1'])
  })
})

describe('errors and limits', () => {
  test('No Local on a shared subscription -> DISCONNECT 0x82 [MQTT-3.8.3-4]', async (t) => {
    const { port } = await v5Broker(t)
    const c = await raw5(t, port, 'nl-shared')
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '$share/g/t', qos: 0, nl: true }] }, 5)
    assert.equal((await nextOf(c, 'disconnect')).reasonCode, 0x82)
    await c.closed()
  })

  test('malformed shared filters -> DISCONNECT 0x82 [MQTT-4.8.2-1] [MQTT-4.8.2-2]', async (t) => {
    const { port } = await v5Broker(t)
    for (const filter of ['$share/g', '$share//t', '$share/g+/t', '$share/#/t']) {
      const c = await raw5(t, port, `bad-${filter.length}-${filter.charCodeAt(7)}`)
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 0 }] }, 5)
      assert.equal((await nextOf(c, 'disconnect')).reasonCode, 0x82, filter)
      await c.closed()
    }
  })

  test('shared_subscriptions false: CONNACK says so, and SUBACK 0x9E for a shared filter, next to a granted plain one (section 3.9.3)', async (t) => {
    const { port } = await v5Broker(t, { sharedSubscriptions: false })
    const c = tcpClient(t, port, 5)
    const connack = await c.connect({ protocolVersion: 5, clientId: 'no-shared' })
    assert.equal(connack.properties?.sharedSubscriptionAvailable, false)
    assert.deepEqual(await sub5(c, [{ topic: '$share/g/t', qos: 1 }, { topic: 'plain/t', qos: 1 }, { topic: '$queue/t', qos: 0 }]), [0x9e, 1, 0x9e])
  })
})
