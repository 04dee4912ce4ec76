/**
 * MQTT 5 flow control (Receive Maximum, section 4.9) both ways and the client's Maximum Packet
 * Size on what the broker sends, on a real socket. Subscribers are raw v5 clients, so the test
 * decides when (and whether) to acknowledge and sees every packet; publishers are MQTT.js (v5 mode)
 * or raw where they must break a rule.
 *
 * "Nothing else arrived" is proven with a QoS 0 sentinel: QoS 0 is not held back by the in-flight
 * window, so once it is in, any QoS 1/2 PUBLISH the broker was going to send before it is in too.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { IPublishPacket } from 'mqtt-packet'
import type { RawClient } from './helpers/raw-client.js'
import { mqtt5, nextOf, raw5, raw5Connack, splitPackets, sub5, v5Broker, WAIT_MS } from './helpers/v5.js'

/** The next PUBLISH, checked to be the sentinel: everything sent before it has arrived. */
async function expectSentinel(c: RawClient, topic: string): Promise<void> {
  const p = await c.nextPublish(WAIT_MS)
  assert.equal(p.topic, topic, `expected the sentinel, got ${p.topic} ${p.payload.toString()} (QoS ${p.qos})`)
}

function publish(qos: 0 | 1 | 2, messageId: number, topic: string, payload: Buffer | string): IPublishPacket {
  return { cmd: 'publish', topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload, qos, messageId, retain: false, dup: false }
}

describe('Receive Maximum', () => {
  test('a subscriber with Receive Maximum 3 that does not ack gets exactly 3 of 10 QoS 1 messages, the 4th after one PUBACK [MQTT-3.3.4-9]', async (t) => {
    const { port } = await v5Broker(t)
    const sub = await raw5(t, port, 'rm-sub', { properties: { receiveMaximum: 3 } })
    assert.deepEqual(await sub5(sub, [{ topic: 'rm/#', qos: 1 }]), [1])
    const { client: pub } = await mqtt5(t, port, 'rm-pub')
    await Promise.all(Array.from({ length: 10 }, (_, i) => pub.publishAsync('rm/q', `${i}`, { qos: 1 })))
    await pub.publishAsync('rm/sentinel', 's1', { qos: 0 })

    const inflight: IPublishPacket[] = []
    for (let i = 0; i < 3; i++) inflight.push(await sub.nextPublish(WAIT_MS))
    assert.deepEqual(inflight.map((p) => [p.qos, p.payload.toString()]), [[1, '0'], [1, '1'], [1, '2']])
    assert.equal(new Set(inflight.map((p) => p.messageId)).size, 3, 'distinct packet ids')
    await expectSentinel(sub, 'rm/sentinel')

    sub.send({ cmd: 'puback', messageId: inflight[0]?.messageId as number }, 5)
    assert.equal((await sub.nextPublish(WAIT_MS)).payload.toString(), '3', 'one PUBACK frees one slot')
    await pub.publishAsync('rm/sentinel', 's2', { qos: 0 })
    await expectSentinel(sub, 'rm/sentinel')

    // Acking as they come, the rest arrive in order, never more than 3 outstanding.
    const rest: string[] = []
    for (const p of inflight.slice(1)) sub.send({ cmd: 'puback', messageId: p.messageId as number }, 5)
    while (rest.length < 6) {
      const p = await sub.nextPublish(WAIT_MS)
      rest.push(p.payload.toString())
      sub.send({ cmd: 'puback', messageId: p.messageId as number }, 5)
    }
    assert.deepEqual(rest, ['4', '5', '6', '7', '8', '9'])
  })

  test('QoS 2: the window slot is held until PUBCOMP, not freed by PUBREC [MQTT-3.3.4-9]', async (t) => {
    const { port } = await v5Broker(t)
    const sub = await raw5(t, port, 'rm2-sub', { properties: { receiveMaximum: 2 } })
    assert.deepEqual(await sub5(sub, [{ topic: 'rm2/#', qos: 2 }]), [2])
    const { client: pub } = await mqtt5(t, port, 'rm2-pub')
    await Promise.all(Array.from({ length: 5 }, (_, i) => pub.publishAsync('rm2/q', `${i}`, { qos: 2 })))
    await pub.publishAsync('rm2/sentinel', 's1', { qos: 0 })

    const a = await sub.nextPublish(WAIT_MS)
    const b = await sub.nextPublish(WAIT_MS)
    assert.deepEqual([a, b].map((p) => [p.qos, p.payload.toString()]), [[2, '0'], [2, '1']])
    await expectSentinel(sub, 'rm2/sentinel')

    sub.send({ cmd: 'pubrec', messageId: a.messageId as number }, 5)
    assert.equal((await nextOf(sub, 'pubrel')).messageId, a.messageId)
    await pub.publishAsync('rm2/sentinel', 's2', { qos: 0 })
    await expectSentinel(sub, 'rm2/sentinel')

    sub.send({ cmd: 'pubcomp', messageId: a.messageId as number }, 5)
    const c = await sub.nextPublish(WAIT_MS)
    assert.deepEqual([c.qos, c.payload.toString()], [2, '2'], 'PUBCOMP frees the slot')
    await pub.publishAsync('rm2/sentinel', 's3', { qos: 0 })
    await expectSentinel(sub, 'rm2/sentinel')
  })

  test('a PUBREC with a failure code frees the slot too [MQTT-3.3.4-9]', async (t) => {
    const { port } = await v5Broker(t)
    const sub = await raw5(t, port, 'rmf-sub', { properties: { receiveMaximum: 1 } })
    assert.deepEqual(await sub5(sub, [{ topic: 'rmf/#', qos: 2 }]), [2])
    const { client: pub } = await mqtt5(t, port, 'rmf-pub')
    await Promise.all(['0', '1'].map((m) => pub.publishAsync('rmf/q', m, { qos: 2 })))
    const first = await sub.nextPublish(WAIT_MS)
    sub.send({ cmd: 'pubrec', messageId: first.messageId as number, reasonCode: 0x80 }, 5)
    const second = await sub.nextPublish(WAIT_MS)
    assert.equal(second.payload.toString(), '1')
  })

  test('a client sending more unreleased QoS 2 messages than our Receive Maximum gets DISCONNECT 0x93 [MQTT-3.3.4-7]', async (t) => {
    const { port } = await v5Broker(t, { receiveMaximum: 2 })
    const { c, connack } = await raw5Connack(t, port, 'rm-over')
    assert.equal(connack.properties?.receiveMaximum, 2)
    c.send(publish(2, 1, 'over/q', 'a'), 5)
    c.send(publish(2, 2, 'over/q', 'b'), 5)
    assert.equal((await nextOf(c, 'pubrec')).messageId, 1)
    assert.equal((await nextOf(c, 'pubrec')).messageId, 2)
    // Releasing one makes room for one more.
    c.send({ cmd: 'pubrel', messageId: 1 }, 5)
    assert.equal((await nextOf(c, 'pubcomp')).messageId, 1)
    c.send(publish(2, 3, 'over/q', 'c'), 5)
    assert.equal((await nextOf(c, 'pubrec')).messageId, 3)
    c.send(publish(2, 4, 'over/q', 'd'), 5)
    assert.equal((await nextOf(c, 'disconnect')).reasonCode, 0x93)
    await c.closed()
  })
})

describe('Maximum Packet Size (outgoing)', () => {
  test('a message larger than a subscriber Maximum Packet Size is dropped for it alone, and counted; smaller ones still arrive [MQTT-3.1.2-24] [MQTT-3.1.2-25]', async (t) => {
    const { broker, port } = await v5Broker(t)
    const small = await raw5(t, port, 'mp-small', { properties: { maximumPacketSize: 100 } })
    // Every packet the broker sends this client is checked against its limit.
    const bytes: Buffer[] = []
    small.stream.on('data', (chunk: Buffer) => bytes.push(chunk))
    assert.deepEqual(await sub5(small, [{ topic: 'mp/#', qos: 0 }]), [0])
    const big = await raw5(t, port, 'mp-big')
    assert.deepEqual(await sub5(big, [{ topic: 'mp/#', qos: 0 }]), [0])
    const { client: pub } = await mqtt5(t, port, 'mp-pub')

    // A v5 QoS 0 PUBLISH on 'mp/x' without properties is 9 bytes plus the payload.
    await pub.publishAsync('mp/x', Buffer.alloc(500, 0x61), { qos: 0 })
    await pub.publishAsync('mp/x', Buffer.alloc(92, 0x62), { qos: 0 })
    await pub.publishAsync('mp/x', Buffer.alloc(91, 0x63), { qos: 0 })
    await pub.publishAsync('mp/x', 'small', { qos: 0 })

    assert.deepEqual(
      (await Promise.all([0, 1, 2, 3].map(() => big.nextPublish(WAIT_MS)))).map((p) => p.payload.length),
      [500, 92, 91, 5],
      'a subscriber without a limit gets everything',
    )
    const first = await small.nextPublish(WAIT_MS)
    assert.equal(first.payload.length, 91, 'exactly 100 bytes is allowed, 101 is not')
    assert.equal((await small.nextPublish(WAIT_MS)).payload.toString(), 'small')
    assert.equal(broker.stats.publishTooLarge, 2)
    for (const p of splitPackets(Buffer.concat(bytes))) assert.ok(p.length <= 100, `a ${p.length}-byte packet went to a client accepting 100`)
  })

  test('QoS 1: a dropped too-large message does not take a slot of the in-flight window [MQTT-3.1.2-25]', async (t) => {
    const { broker, port } = await v5Broker(t)
    const sub = await raw5(t, port, 'mpq-sub', { properties: { maximumPacketSize: 100, receiveMaximum: 1 } })
    assert.deepEqual(await sub5(sub, [{ topic: 'mpq/#', qos: 1 }]), [1])
    const { client: pub } = await mqtt5(t, port, 'mpq-pub')
    await pub.publishAsync('mpq/x', Buffer.alloc(500), { qos: 1 })
    await pub.publishAsync('mpq/x', 'fits', { qos: 1 })
    const p = await sub.nextPublish(WAIT_MS)
    assert.equal(p.payload.toString(), 'fits', 'the window of 1 was free for it')
    assert.equal(broker.stats.publishTooLarge, 1)
    sub.send({ cmd: 'puback', messageId: p.messageId as number }, 5)
    await pub.publishAsync('mpq/x', 'next', { qos: 1 })
    assert.equal((await sub.nextPublish(WAIT_MS)).payload.toString(), 'next')
  })
})
