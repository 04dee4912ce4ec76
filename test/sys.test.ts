import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { IPublishPacket } from 'mqtt-packet'
import { memoryBroker } from './helpers/broker.js'

test('$SYS/broker topics with Mosquitto names, retained, refreshed every sys_interval', async (t) => {
  const { client } = await memoryBroker(t, { sysInterval: 1 })
  const c = client()
  await c.connect({ clientId: 'sys' })
  await c.subscribe('$SYS/broker/#', 0)
  const values = new Map<string, string>()
  // The retained values arrive at once; the next round (1 s later) counts this subscriber.
  const deadline = Date.now() + 1600
  while (Date.now() < deadline) {
    const p = (await c.next(2000).catch(() => undefined)) as IPublishPacket | undefined
    if (p === undefined) break
    values.set(p.topic, p.payload.toString())
  }
  for (const key of [
    'version', 'uptime', 'clients/connected', 'clients/disconnected', 'clients/total', 'clients/maximum',
    'messages/received', 'messages/sent', 'bytes/received', 'bytes/sent', 'publish/messages/received',
    'publish/messages/sent', 'publish/messages/dropped', 'subscriptions/count', 'retained messages/count',
    'publish/messages/expired', 'publish/messages/too-large', 'wills/delayed',
    'load/messages/received/1min', 'load/bytes/sent/15min', 'load/connections/5min',
  ]) {
    assert.ok(values.has(`$SYS/broker/${key}`), `missing $SYS/broker/${key}`)
  }
  assert.match(values.get('$SYS/broker/version') ?? '', /^outpost version /)
  assert.match(values.get('$SYS/broker/uptime') ?? '', /^\d+ seconds$/)
  // Counted before this round: the subscriber itself is connected.
  assert.equal(values.get('$SYS/broker/clients/connected'), '1')
  assert.equal(values.get('$SYS/broker/subscriptions/count'), '1')
})

test('$SYS is not matched by a # subscription [MQTT-4.7.2-1]', async (t) => {
  const { client } = await memoryBroker(t, { sysInterval: 1 })
  const c = client()
  await c.connect({ clientId: 'all' })
  await c.subscribe('#', 0)
  assert.equal(await c.quiet(1200), true)
})

test('$SYS/broker/clients/<id>/dropped counts what one client lost, for clients that lost something', async (t) => {
  const { client } = await memoryBroker(t, { sysInterval: 1, maxQueuedMessages: 2 })
  await client().parkSubscription('slow/dev', 'q', 1)
  const pub = client()
  await pub.connect({ clientId: 'pub' })
  await pub.publishQos1('q', ['0', '1', '2', '3', '4'])
  const watcher = client()
  await watcher.connect({ clientId: 'watcher' })
  await watcher.subscribe('$SYS/broker/clients/+/dropped', 0)
  const p = await watcher.nextPublish(2500)
  assert.equal(p.topic, '$SYS/broker/clients/slow_dev/dropped')
  assert.equal(p.payload.toString(), '3')
})
