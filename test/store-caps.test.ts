/** `store.max_bytes` (all queues together) under both `queue_full_policy` values; v5 publishers are told (0x97). */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { nextOf, raw5, sub5, v5Broker } from './helpers/v5.js'

const payload = (i: number): Buffer => Buffer.from(`m${String(i).padStart(3, '0')}`) // 4 bytes

for (const policy of ['reject_new', 'drop_oldest'] as const) {
  test(`store.max_bytes with ${policy}: queued bytes for all clients stay under the cap; the v5 publisher learns of refusals (0x97)`, async (t) => {
    const { broker, port } = await v5Broker(t, { store: { maxBytes: 20 }, maxQueuedMessages: 0, queueFullPolicy: policy })
    // Two offline persistent subscribers share the 20 bytes.
    for (const id of ['a', 'b']) {
      const c = await raw5(t, port, id, { clean: false, properties: { sessionExpiryInterval: 300 } })
      await sub5(c, [{ topic: 'cap/t', qos: 1 }])
      c.send({ cmd: 'disconnect', reasonCode: 0 }, 5)
      await c.closed()
    }
    const pub = await raw5(t, port, 'pub')
    const codes: number[] = []
    for (let i = 0; i < 6; i++) {
      pub.send({ cmd: 'publish', topic: 'cap/t', payload: payload(i), qos: 1, messageId: i + 1, retain: false, dup: false }, 5)
      codes.push((await nextOf(pub, 'puback')).reasonCode ?? 0)
    }
    assert.ok(broker.store.queuedBytes() <= 20, `queued ${broker.store.queuedBytes()} bytes`)
    if (policy === 'reject_new') {
      // 2 subscribers x 4 bytes: messages 0 and 1 fit (16), message 2 fits for one of them (20).
      assert.deepEqual(codes, [0, 0, 0x97, 0x97, 0x97, 0x97])
    } else {
      assert.deepEqual(codes, [0, 0, 0, 0, 0, 0])
    }
    // What a returning subscriber gets: the first messages, or the newest ones, in order.
    const a = await raw5(t, port, 'a', { clean: false, properties: { sessionExpiryInterval: 300 } })
    const got: string[] = []
    while (!(await a.quiet(150))) {
      const p = await nextOf(a, 'publish')
      got.push(p.payload.toString())
      a.send({ cmd: 'puback', messageId: p.messageId as number }, 5)
    }
    if (policy === 'reject_new') {
      assert.deepEqual(got, ['m000', 'm001', 'm002'])
      // Refused: message 2 for b, messages 3 to 5 for both.
      assert.equal(broker.stats.publishDropped, 7)
    } else {
      assert.ok(got.length >= 2 && got.at(-1) === 'm005', `a got ${got.join(',')}`)
      assert.deepEqual(got, [...got].sort(), 'in order')
      assert.ok(broker.stats.publishDropped >= 7, `dropped ${broker.stats.publishDropped}`)
    }
  })
}
