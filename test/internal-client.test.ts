import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { IPublishPacket } from 'mqtt-packet'
import type { Message } from '../src/broker/types.js'
import { memoryBroker } from './helpers/broker.js'

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
