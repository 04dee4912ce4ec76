/** Bounds on incoming QoS 2 messages awaiting PUBREL: `max_awaiting_rel` and `await_rel_timeout`. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { memoryBroker } from './helpers/broker.js'

const publish2 = (id: number, payload: string) => ({ cmd: 'publish' as const, topic: 'q2', payload: Buffer.from(payload), qos: 2 as const, messageId: id, retain: false, dup: false })

test('max_awaiting_rel: one QoS 2 message too many is not acknowledged; released ones make room [MQTT-4.3.3-2]', async (t) => {
  const { client, broker } = await memoryBroker(t, { maxAwaitingRel: 2 })
  const sub = client()
  await sub.connect({ clientId: 'sub' })
  await sub.subscribe('q2', 0)
  const pub = client()
  await pub.connect({ clientId: 'pub' })
  pub.send(publish2(1, 'a'))
  pub.send(publish2(2, 'b'))
  pub.send(publish2(3, 'c'))
  assert.deepEqual([(await pub.next()).cmd, (await pub.next()).cmd], ['pubrec', 'pubrec'])
  assert.equal(await pub.quiet(150), true, 'the third PUBLISH must not get a PUBREC')
  assert.equal(broker.stats.publishDropped, 1)
  pub.send({ cmd: 'pubrel', messageId: 1 })
  assert.equal((await pub.next()).cmd, 'pubcomp')
  assert.equal((await sub.nextPublish()).payload.toString(), 'a')
  // Room again: the client's retry is taken.
  pub.send(publish2(3, 'c'))
  assert.equal((await pub.next()).cmd, 'pubrec')
})

test('await_rel_timeout: a QoS 2 message whose PUBREL does not come in time is dropped, not published', async (t) => {
  const { client, broker } = await memoryBroker(t, { awaitRelTimeout: 1 })
  const sub = client()
  await sub.connect({ clientId: 'sub' })
  await sub.subscribe('q2', 0)
  const pub = client()
  await pub.connect({ clientId: 'pub', keepalive: 0 })
  pub.send(publish2(7, 'late'))
  assert.equal((await pub.next()).cmd, 'pubrec')
  // The sweep runs every 500 ms; past 1 s the message is gone.
  const deadline = Date.now() + 3000
  while (broker.stats.publishDropped === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  assert.equal(broker.stats.publishDropped, 1)
  pub.send({ cmd: 'pubrel', messageId: 7 })
  assert.equal((await pub.next()).cmd, 'pubcomp')
  assert.equal(await sub.quiet(200), true, 'a dropped message is not published on a late PUBREL')
})
