import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { IPublishPacket } from 'mqtt-packet'
import type { Message } from '../src/broker/types.js'
import { memoryBroker, tcpGateway } from './helpers/broker.js'
import { nextOf, raw5, sub5, v5Broker } from './helpers/v5.js'

test('internal clients publish and subscribe through the same core as network clients', async (t) => {
  const { broker, client } = await memoryBroker(t)
  const received: Message[] = []
  const bridge = broker.createInternalClient('serial-bridge', (m) => {
    received.push(m)
  })
  t.after(() => bridge.close())
  await bridge.subscribe('cmd/#', 1)

  const net = client()
  await net.connect({ clientId: 'app' })
  await net.subscribe('sensors/#', 1)

  bridge.publish('sensors/t1', '21.5', { qos: 1 })
  const p = (await net.next()) as IPublishPacket
  assert.equal(p.topic, 'sensors/t1')
  assert.equal(p.payload.toString(), '21.5')

  net.send({ cmd: 'publish', topic: 'cmd/led', payload: Buffer.from('on'), qos: 1, messageId: 2, retain: false, dup: false })
  await net.next()
  assert.deepEqual(received.map((m) => [m.topic, m.payload.toString()]), [['cmd/led', 'on']])
})

test('internal client: a slow async handler holds QoS 1 messages in its in-flight window', async (t) => {
  const { broker } = await memoryBroker(t, { maxInflight: 2 })
  const pending: Array<() => void> = []
  const seen: string[] = []
  const up = broker.createInternalClient('upstream', (m) => {
    seen.push(m.payload.toString())
    return new Promise<void>((resolve) => pending.push(resolve))
  })
  t.after(() => up.close())
  await up.subscribe('#', 1)
  const src = broker.createInternalClient('src')
  t.after(() => src.close())
  for (let i = 0; i < 4; i++) src.publish('t', String(i), { qos: 1 })
  assert.deepEqual(seen, ['0', '1'])
  pending.shift()?.()
  await new Promise((r) => setImmediate(r))
  assert.deepEqual(seen, ['0', '1', '2'])
})

test('a network client cannot take an internal client id', async (t) => {
  const { broker, client } = await memoryBroker(t)
  const bridge = broker.createInternalClient('serial-bridge')
  t.after(() => bridge.close())
  const c = client()
  const ack = await c.connect({ clientId: 'serial-bridge' })
  assert.equal(ack.returnCode, 5)
})

test('internal clients carry MQTT 5 properties and message expiry both ways [MQTT-3.3.2-6] [MQTT-3.3.2-18]', async (t) => {
  const { broker, port } = await v5Broker(t)
  const received: Message[] = []
  const bridge = broker.createInternalClient('upstream-bridge', (m) => {
    received.push(m)
  })
  t.after(() => bridge.close())
  await bridge.subscribe('up/#', 1)
  const c = await raw5(t, port, 'v5-app')
  await sub5(c, [{ topic: 'down/#', qos: 1 }])

  // From the bridge to a v5 client: properties passed on, expiry counted down from 60 s.
  bridge.publish('down/cmd', 'on', { qos: 1, properties: { contentType: 'text/plain', userProperties: [['a', '1'], ['b', '2'], ['a', '3']] }, expiryInterval: 60 })
  const p = await nextOf(c, 'publish')
  assert.equal(p.properties?.contentType, 'text/plain')
  assert.ok((p.properties?.messageExpiryInterval ?? 0) > 0 && (p.properties?.messageExpiryInterval ?? 0) <= 60)

  // From a v5 client to the bridge: the handler sees the message properties in the wire order.
  c.send({ cmd: 'publish', topic: 'up/reading', payload: Buffer.from('21.5'), qos: 1, messageId: 9, retain: false, dup: false, properties: { responseTopic: 'reply/x', correlationData: Buffer.from('42') } }, 5)
  await nextOf(c, 'puback')
  assert.equal(received[0]?.properties?.responseTopic, 'reply/x')
  assert.equal(received[0]?.properties?.correlationData?.toString(), '42')
})

test('a retained message routed just before a subscription, and not yet written to the LevelDB store, still reaches it [MQTT-3.3.1-6]', async (t) => {
  const { broker } = await tcpGateway(t)
  const got: string[] = []
  const late = broker.createInternalClient('late', (m, _qos, retain) => {
    if (retain) got.push(m.payload.toString())
  })
  t.after(() => late.close())
  // Not awaited: the write is still on its way to disk when the subscription comes in.
  void broker.publish({ topic: 'state/port', payload: Buffer.from('open'), qos: 0, retain: true })
  await late.subscribe('state/#', 0)
  assert.deepEqual(got, ['open'])
})
