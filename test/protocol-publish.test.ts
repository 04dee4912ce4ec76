import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { IPublishPacket } from 'mqtt-packet'
import { memoryBroker } from './helpers/broker.js'
import type { RawClient } from './helpers/raw-client.js'

async function subscriber(make: () => RawClient, filter: string, qos: 0 | 1 | 2, clientId = 'sub'): Promise<RawClient> {
  const c = make()
  await c.connect({ clientId })
  await c.subscribe(filter, qos)
  return c
}

for (const transport of ['memory', 'tcp'] as const) {
  describe(`over ${transport} streams`, () => {
    test('QoS 0 delivered as QoS 0, retain flag cleared for live subscribers [MQTT-3.3.1-9]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const sub = await subscriber(client, 'a/+', 2)
      const pub = client()
      await pub.connect({ clientId: 'pub' })
      pub.send({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('x'), qos: 0, retain: true, dup: false })
      const p = (await sub.nextPublish())
      assert.equal(p.qos, 0)
      assert.equal(p.retain, false)
      assert.equal(p.payload.toString(), 'x')
    })

    test('QoS 1: PUBACK to the publisher [MQTT-4.3.2-2], delivery at min(pub, sub) QoS [MQTT-3.8.4-6]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const sub1 = await subscriber(client, 't', 1, 's1')
      const sub0 = await subscriber(client, 't', 0, 's0')
      const pub = client()
      await pub.connect({ clientId: 'pub' })
      pub.send({ cmd: 'publish', topic: 't', payload: Buffer.from('m'), qos: 1, messageId: 7, retain: false, dup: false })
      const ack = await pub.next()
      assert.equal(ack.cmd === 'puback' && ack.messageId, 7)
      const p1 = (await sub1.nextPublish())
      assert.equal(p1.qos, 1)
      assert.ok((p1.messageId ?? 0) > 0)
      assert.equal((await sub0.nextPublish()).qos, 0)
      sub1.send({ cmd: 'puback', messageId: p1.messageId as number })
    })

    test('QoS 2 inbound: PUBREC, held until PUBREL, published once despite a DUP retransmission [MQTT-4.3.3-2]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const sub = await subscriber(client, 'q2', 0)
      const pub = client()
      await pub.connect({ clientId: 'pub' })
      const publish: IPublishPacket = { cmd: 'publish', topic: 'q2', payload: Buffer.from('once'), qos: 2, messageId: 9, retain: false, dup: false }
      pub.send(publish)
      assert.equal((await pub.next()).cmd, 'pubrec')
      pub.send({ ...publish, dup: true })
      assert.equal((await pub.next()).cmd, 'pubrec')
      assert.equal(await sub.quiet(100), true, 'not published before PUBREL')
      pub.send({ cmd: 'pubrel', messageId: 9 })
      const comp = await pub.next()
      assert.equal(comp.cmd === 'pubcomp' && comp.messageId, 9)
      assert.equal((await sub.nextPublish()).payload.toString(), 'once')
      pub.send({ cmd: 'pubrel', messageId: 9 }) // a retried PUBREL is completed again, not republished
      assert.equal((await pub.next()).cmd, 'pubcomp')
      assert.equal(await sub.quiet(100), true)
    })

    test('QoS 2 outbound: PUBLISH, PUBREC -> PUBREL, PUBCOMP [MQTT-4.3.3-1]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const sub = await subscriber(client, 'o2', 2)
      const pub = client()
      await pub.connect({ clientId: 'pub' })
      pub.send({ cmd: 'publish', topic: 'o2', payload: Buffer.from('z'), qos: 2, messageId: 1, retain: false, dup: false })
      await pub.next()
      pub.send({ cmd: 'pubrel', messageId: 1 })
      const p = (await sub.nextPublish())
      assert.equal(p.qos, 2)
      sub.send({ cmd: 'pubrec', messageId: p.messageId as number })
      const rel = await sub.next()
      assert.equal(rel.cmd === 'pubrel' && rel.messageId, p.messageId)
      sub.send({ cmd: 'pubcomp', messageId: p.messageId as number })
      assert.equal(await sub.quiet(100), true)
    })

    test('an ack of the wrong kind for a message in flight closes the connection', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const sub = await subscriber(client, 'w', 1)
      const pub = client()
      await pub.connect({ clientId: 'pub' })
      pub.send({ cmd: 'publish', topic: 'w', payload: Buffer.from('z'), qos: 1, messageId: 1, retain: false, dup: false })
      const p = (await sub.nextPublish())
      sub.send({ cmd: 'pubrec', messageId: p.messageId as number })
      await sub.closed()
    })

    test('PUBLISH checks: wildcard topic [MQTT-3.3.2-2], empty topic [MQTT-4.7.3-1], QoS 3 [MQTT-3.3.1-4], id 0 [MQTT-2.3.1-1], DUP on QoS 0 [MQTT-3.3.1-2]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const bad = [
        '30 06 0003 612F2B 78', // a/+
        '30 03 0000 78', // empty topic
        '36 06 0001 61 0001 78', // QoS 3
        '32 06 0001 61 0000 78', // QoS 1, packet id 0
        '38 04 0001 61 78', // DUP with QoS 0
      ]
      for (const hex of bad) {
        const c = client()
        await c.connect({ clientId: `bad-${hex.slice(0, 2)}` })
        c.sendHex(hex)
        await c.closed()
      }
    })

    test('overlapping subscriptions: one copy at the highest QoS [MQTT-3.3.5-1]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const c = client()
      await c.connect({ clientId: 'overlap' })
      c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'x/#', qos: 0 }, { topic: 'x/+', qos: 1 }, { topic: 'x/y', qos: 0 }] })
      const ack = await c.next()
      assert.deepEqual(ack.cmd === 'suback' && ack.granted, [0, 1, 0])
      const pub = client()
      await pub.connect({ clientId: 'pub' })
      pub.send({ cmd: 'publish', topic: 'x/y', payload: Buffer.from('1'), qos: 2, messageId: 3, retain: false, dup: false })
      await pub.next()
      pub.send({ cmd: 'pubrel', messageId: 3 })
      const p = (await c.nextPublish())
      assert.equal(p.qos, 1)
      assert.equal(await c.quiet(150), true, 'exactly one copy')
    })

    test('retained: sent on subscribe with retain set [MQTT-3.3.1-8], replaced, deleted by empty payload [MQTT-3.3.1-10] [MQTT-3.3.1-11]', async (t) => {
      const { client, broker } = await memoryBroker(t, {}, undefined, transport)
      const pub = client()
      await pub.connect({ clientId: 'pub' })
      pub.send({ cmd: 'publish', topic: 'r/1', payload: Buffer.from('old'), qos: 0, retain: true, dup: false })
      pub.send({ cmd: 'publish', topic: 'r/1', payload: Buffer.from('new'), qos: 1, messageId: 1, retain: true, dup: false })
      await pub.next()
      pub.send({ cmd: 'publish', topic: 'r/2', payload: Buffer.from('q0'), qos: 0, retain: true, dup: false })
      pub.send({ cmd: 'pingreq' })
      await pub.next()
      assert.equal(await broker.store.retainedCount(), 2)
      const sub = await subscriber(client, 'r/#', 1)
      const got = [(await sub.nextPublish()), (await sub.nextPublish())].sort((a, b) => a.topic.localeCompare(b.topic))
      assert.deepEqual(got.map((p) => [p.topic, p.payload.toString(), p.retain, p.qos]), [['r/1', 'new', true, 1], ['r/2', 'q0', true, 0]])
      // Empty retained payload: forwarded to live subscribers and clears the retained message.
      pub.send({ cmd: 'publish', topic: 'r/1', payload: Buffer.alloc(0), qos: 0, retain: true, dup: false })
      assert.equal((await sub.nextPublish()).payload.length, 0)
      assert.equal(await broker.store.retainedCount(), 1)
      const late = await subscriber(client, 'r/1', 0, 'late')
      assert.equal(await late.quiet(150), true)
    })

    test('a repeated SUBSCRIBE replaces the subscription and resends retained messages [MQTT-3.8.4-3]', async (t) => {
      const { client, broker } = await memoryBroker(t, {}, undefined, transport)
      const pub = client()
      await pub.connect({ clientId: 'pub' })
      pub.send({ cmd: 'publish', topic: 'rr', payload: Buffer.from('v'), qos: 0, retain: true, dup: false })
      const sub = await subscriber(client, 'rr', 0)
      assert.equal((await sub.nextPublish()).retain, true)
      sub.send({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: 'rr', qos: 1 }] })
      assert.equal((await sub.next()).cmd, 'suback')
      assert.equal((await sub.nextPublish()).retain, true)
      assert.equal(broker.subscriptionCount, 1)
    })

    test('SUBSCRIBE: SUBACK per filter in order [MQTT-3.8.4-4], 0x80 for a refused filter [MQTT-3.9.3-2]', async (t) => {
      const { client } = await memoryBroker(t, {}, { authorizeSubscribe: (_c, _u, filter) => !filter.startsWith('secret') }, transport)
      const c = client()
      await c.connect({ clientId: 'acl' })
      c.send({ cmd: 'subscribe', messageId: 5, subscriptions: [{ topic: 'open', qos: 2 }, { topic: 'secret/x', qos: 1 }, { topic: 'b', qos: 0 }] })
      const ack = await c.next()
      assert.deepEqual(ack.cmd === 'suback' && [ack.messageId, ack.granted], [5, [2, 0x80, 0]])
    })

    test('SUBSCRIBE: bad filters, no filters, reserved flags close the connection [MQTT-4.7.1-2] [MQTT-3.8.3-3] [MQTT-3.8.1-1]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      for (const hex of ['82 08 0001 0003 612F23 00'.replace('612F23', '23 2F 61'), '82 02 0001', '80 06 0001 0001 70 00', '82 06 0001 0001 70 03']) {
        const c = client()
        await c.connect({ clientId: 'bad' })
        c.sendHex(hex)
        await c.closed()
      }
    })

    test('UNSUBSCRIBE: UNSUBACK even without a match [MQTT-3.10.4-5]; deliveries stop', async (t) => {
      const { client, broker } = await memoryBroker(t, {}, undefined, transport)
      const c = await subscriber(client, 'u/+', 0)
      c.send({ cmd: 'unsubscribe', messageId: 4, unsubscriptions: ['u/+', 'never/subscribed'] })
      const ack = await c.next()
      assert.equal(ack.cmd === 'unsuback' && ack.messageId, 4)
      assert.equal(broker.subscriptionCount, 0)
      const pub = client()
      await pub.connect({ clientId: 'pub' })
      pub.send({ cmd: 'publish', topic: 'u/1', payload: Buffer.from('x'), qos: 0, retain: false, dup: false })
      assert.equal(await c.quiet(100), true)
    })

    test('message_size_limit: a larger PUBLISH is acknowledged and dropped, the connection stays', async (t) => {
      const { client, broker } = await memoryBroker(t, { messageSizeLimit: 10 }, undefined, transport)
      const sub = await subscriber(client, 'big', 0)
      const pub = client()
      await pub.connect({ clientId: 'pub' })
      pub.send({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(11), qos: 1, messageId: 1, retain: false, dup: false })
      assert.equal((await pub.next()).cmd, 'puback')
      assert.equal(await sub.quiet(100), true)
      assert.equal(broker.stats.publishDropped, 1)
      pub.send({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(10), qos: 0, retain: false, dup: false })
      assert.equal((await sub.nextPublish()).payload.length, 10)
    })

    test('clients cannot publish into $SYS', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const sub = await subscriber(client, '$SYS/#', 0)
      const pub = client()
      await pub.connect({ clientId: 'pub' })
      pub.send({ cmd: 'publish', topic: '$SYS/broker/uptime', payload: Buffer.from('fake'), qos: 1, messageId: 1, retain: false, dup: false })
      assert.equal((await pub.next()).cmd, 'puback')
      assert.equal(await sub.quiet(100), true)
    })
  })
}
