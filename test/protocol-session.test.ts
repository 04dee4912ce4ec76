import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { pino } from 'pino'
import { Writable } from 'node:stream'
import { Broker } from '../src/broker/broker.js'
import { defaultConfig } from '../src/config/defaults.js'
import { duplexPair } from './helpers/duplex-pair.js'
import { memoryBroker, pipeClient } from './helpers/broker.js'
import { RawClient } from './helpers/raw-client.js'

for (const transport of ['memory', 'tcp'] as const) {
  describe(`over ${transport} streams`, () => {
    test('persistent session: subscriptions and QoS 1/2 messages kept while offline, Session Present 1 [MQTT-3.2.2-2]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const a = client()
      assert.equal((await a.connect({ clientId: 'dev', clean: false })).sessionPresent, false)
      await a.subscribe('cmd/#', 2)
      await a.disconnect()

      const pub = client()
      await pub.connect({ clientId: 'pub' })
      for (const qos of [0, 1, 2] as const) {
        pub.send({ cmd: 'publish', topic: `cmd/${qos}`, payload: Buffer.from(`q${qos}`), qos, messageId: 10 + qos, retain: false, dup: false })
      }
      await pub.next() // PUBACK
      await pub.next() // PUBREC
      pub.send({ cmd: 'pubrel', messageId: 12 })
      await pub.next()

      const b = client()
      assert.equal((await b.connect({ clientId: 'dev', clean: false })).sessionPresent, true)
      const got = [(await b.nextPublish()), (await b.nextPublish())]
      assert.deepEqual(got.map((p) => [p.topic, p.qos]), [['cmd/1', 1], ['cmd/2', 2]])
      assert.equal(await b.quiet(100), true, 'QoS 0 is not queued for offline clients by default')
    })

    test('queue_qos0_messages queues QoS 0 for offline persistent sessions', async (t) => {
      const { client } = await memoryBroker(t, { queueQos0Messages: true }, undefined, transport)
      await client().parkSubscription('dev', 'x', 0)
      const pub = client()
      await pub.connect({ clientId: 'pub' })
      pub.send({ cmd: 'publish', topic: 'x', payload: Buffer.from('kept'), qos: 0, retain: false, dup: false })
      pub.send({ cmd: 'pingreq' })
      await pub.next()
      const b = client()
      await b.connect({ clientId: 'dev', clean: false })
      assert.equal((await b.nextPublish()).payload.toString(), 'kept')
    })

    test('unacknowledged messages are resent with DUP on reconnect, PUBREL for those past PUBREC [MQTT-4.4.0-1]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const a = client()
      await a.connect({ clientId: 'dev', clean: false })
      await a.subscribe('d/#', 2)
      const pub = client()
      await pub.connect({ clientId: 'pub' })
      pub.send({ cmd: 'publish', topic: 'd/1', payload: Buffer.from('one'), qos: 1, messageId: 1, retain: false, dup: false })
      pub.send({ cmd: 'publish', topic: 'd/2', payload: Buffer.from('two'), qos: 2, messageId: 2, retain: false, dup: false })
      await pub.next()
      await pub.next()
      pub.send({ cmd: 'pubrel', messageId: 2 })
      await pub.next()
      const p1 = (await a.nextPublish())
      const p2 = (await a.nextPublish())
      a.send({ cmd: 'pubrec', messageId: p2.messageId as number })
      assert.equal((await a.next()).cmd, 'pubrel')
      a.end() // no PUBACK for p1, no PUBCOMP for p2
      await a.closed()

      const b = client()
      assert.equal((await b.connect({ clientId: 'dev', clean: false })).sessionPresent, true)
      const again = (await b.nextPublish())
      assert.equal(again.messageId, p1.messageId)
      assert.equal(again.dup, true)
      assert.equal(again.payload.toString(), 'one')
      const rel = await b.next()
      assert.equal(rel.cmd === 'pubrel' && rel.messageId, p2.messageId)
    })

    test('clean session discards the previous session [MQTT-3.2.2-1] [MQTT-3.1.2-6]', async (t) => {
      const { client, broker } = await memoryBroker(t, {}, undefined, transport)
      await client().parkSubscription('dev', 'x', 1)
      assert.equal(broker.disconnectedCount, 1)
      const b = client()
      assert.equal((await b.connect({ clientId: 'dev', clean: true })).sessionPresent, false)
      assert.equal(broker.subscriptionCount, 0)
      await b.disconnect()
      assert.equal(broker.sessionCount, 0)
    })

    test('in-flight window: at most max_inflight unacknowledged QoS 1 messages, the rest queued in order', async (t) => {
      const { client } = await memoryBroker(t, { maxInflight: 2 }, undefined, transport)
      const sub = client()
      await sub.connect({ clientId: 'slow' })
      await sub.subscribe('w', 1)
      const pub = client()
      await pub.connect({ clientId: 'pub' })
      await pub.publishQos1('w', ['0', '1', '2', '3', '4'])
      const first = [(await sub.nextPublish()), (await sub.nextPublish())]
      assert.equal(await sub.quiet(100), true, 'window of 2 is full')
      sub.send({ cmd: 'puback', messageId: first[0]?.messageId as number })
      assert.equal((await sub.nextPublish()).payload.toString(), '2')
      sub.send({ cmd: 'puback', messageId: first[1]?.messageId as number })
      assert.equal((await sub.nextPublish()).payload.toString(), '3')
    })

    for (const [policy, kept] of [['drop_oldest', ['7', '8', '9']], ['reject_new', ['0', '1', '2']]] as const) {
      test(`max_queued_messages with ${policy}: excess dropped and counted, "queue full" logged once per episode`, async (t) => {
        const lines: string[] = []
        const sink = new Writable({
          write(chunk: Buffer, _e, cb) {
            lines.push(chunk.toString())
            cb()
          },
        })
        const config = { ...defaultConfig(), sysInterval: 0, maxQueuedMessages: 3, queueFullPolicy: policy }
        const broker = new Broker({ config, log: pino({ level: 'info' }, sink) })
        await broker.start()
        t.after(() => broker.close())
        const connect = (): RawClient => pipeClient(t, broker)
        await connect().parkSubscription('dev', 'q', 1)
        const pub = connect()
        await pub.connect({ clientId: 'pub' })
        await pub.publishQos1('q', Array.from({ length: 10 }, (_, i) => String(i)))
        assert.equal(broker.stats.publishDropped, 7)
        assert.equal(lines.filter((l) => l.includes('queue full')).length, 1)
        const back = connect()
        await back.connect({ clientId: 'dev', clean: false })
        const got: string[] = []
        for (let i = 0; i < 3; i++) {
          const p = (await back.nextPublish())
          got.push(p.payload.toString())
          back.send({ cmd: 'puback', messageId: p.messageId as number })
        }
        // Oldest dropped for the newest, or the newest refused.
        assert.deepEqual(got, kept)
        assert.equal(await back.quiet(100), true)
        // Drained: the "room again" line closes the episode.
        assert.equal(lines.filter((l) => l.includes('has room again')).length, 1)
      })
    }

    test('max_queued_bytes caps the queue by payload size', async (t) => {
      const { client, broker } = await memoryBroker(t, { maxQueuedMessages: 0, maxQueuedBytes: 25 }, undefined, transport)
      await client().parkSubscription('dev', 'q', 1)
      const pub = client()
      await pub.connect({ clientId: 'pub' })
      await pub.publishQos1('q', Array.from({ length: 5 }, () => Buffer.alloc(10)))
      assert.equal(broker.stats.publishDropped, 3)
    })

    test('persistent_client_expiration removes offline sessions after their time', async (t) => {
      const { client, broker } = await memoryBroker(t, { persistentClientExpiration: 1 }, undefined, transport)
      await client().parkSubscription('dev', 'x', 1)
      assert.equal(broker.sessionCount, 1)
      await new Promise((r) => setTimeout(r, 1700))
      assert.equal(broker.sessionCount, 0)
      assert.equal(broker.subscriptionCount, 0)
    })

    test('a broken stream never takes the broker down: garbage, half packets, resets', async (t) => {
      const { client, broker } = await memoryBroker(t, {}, undefined, transport)
      const garbage = client()
      garbage.sendHex('ffffffffffffffff')
      await garbage.closed()
      const half = client()
      await half.connect({ clientId: 'half' })
      half.sendHex('30 7f 0001') // announces 127 bytes, sends 3
      half.stream.destroy()
      const ok = client()
      assert.equal((await ok.connect({ clientId: 'ok' })).returnCode, 0)
      assert.equal(broker.connectedCount, 1)
    })

    test('slow QoS 0 consumer: messages are dropped once its buffer is full, memory stays bounded', async (t) => {
      const { broker } = await memoryBroker(t, {}, undefined, transport)
      const [ours, theirs] = duplexPair()
      broker.handle(theirs)
      const c = new RawClient(ours)
      await c.connect({ clientId: 'slow' })
      await c.subscribe('flood', 0)
      ours.pause() // stops reading: the broker's writes pile up in its stream buffer
      const before = broker.stats.publishDropped
      const internal = broker.createInternalClient('flooder')
      const payload = Buffer.alloc(1024)
      for (let i = 0; i < 5000; i++) internal.publish('flood', payload)
      assert.ok(broker.stats.publishDropped - before > 3000, `dropped ${broker.stats.publishDropped - before}`)
      assert.ok(theirs.writableLength < 2 * 1024 * 1024, `buffered ${theirs.writableLength}`)
      internal.close()
    })
  })
}

test('a connected subscriber that falls behind slows the publisher instead of losing acknowledged QoS 1 messages', async (t) => {
  const { client, broker } = await memoryBroker(t, { maxInflight: 2, maxQueuedMessages: 10 }, undefined, 'tcp')
  const sub = client()
  await sub.connect({ clientId: 'slow' })
  await sub.subscribe('bp', 1)
  const pub = client()
  await pub.connect({ clientId: 'fast' })
  const total = 200
  for (let i = 0; i < total; i++) pub.send({ cmd: 'publish', topic: 'bp', payload: Buffer.from(String(i)), qos: 1, messageId: i + 1, retain: false, dup: false })
  const got: string[] = []
  while (got.length < total) {
    const p = (await sub.nextPublish(3000))
    got.push(p.payload.toString())
    // A slow consumer: ack after a pause now and then.
    if (got.length % 50 === 0) await new Promise((r) => setTimeout(r, 50))
    sub.send({ cmd: 'puback', messageId: p.messageId as number })
  }
  assert.deepEqual(got, Array.from({ length: total }, (_, i) => String(i)))
  assert.equal(broker.stats.publishDropped, 0)
  for (let i = 0; i < total; i++) assert.equal((await pub.next()).cmd, 'puback')
})

test('a subscriber that stops acking is given up on after 5 s: the publisher flows again and the cap drops', async (t) => {
  const { client, broker } = await memoryBroker(t, { maxInflight: 1, maxQueuedMessages: 4 }, undefined, 'tcp')
  const sub = client()
  await sub.connect({ clientId: 'stuck' })
  await sub.subscribe('st', 1)
  const pub = client()
  await pub.connect({ clientId: 'pub', keepalive: 2 })
  for (let i = 0; i < 20; i++) pub.send({ cmd: 'publish', topic: 'st', payload: Buffer.from(String(i)), qos: 1, messageId: i + 1, retain: false, dup: false })
  for (let i = 0; i < 20; i++) assert.equal((await pub.next(8000)).cmd, 'puback')
  assert.ok(broker.stats.publishDropped > 0)
  assert.equal(pub.ended, false, 'held publisher was not timed out by its keepalive')
})
