/**
 * A persistent session's backlog lives in the store, with one page in memory (Session PAGE):
 * order, completeness and the queue totals hold across pages, and across a broker restart on the
 * same store.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { pino } from 'pino'
import { Broker } from '../src/broker/broker.js'
import { PAGE } from '../src/broker/outbound-queue.js'
import { defaultConfig } from '../src/config/defaults.js'
import { MemoryStore } from '../src/store/memory.js'
import { pipeClient } from './helpers/broker.js'
import type { RawClient } from './helpers/raw-client.js'

const N = PAGE * 8 + 17

async function startBroker(t: import('node:test').TestContext, store: MemoryStore): Promise<{ broker: Broker; connect(): RawClient }> {
  const config = { ...defaultConfig(), sysInterval: 0, maxQueuedMessages: 0 }
  const broker = new Broker({ config, log: pino({ level: 'silent' }), store })
  await broker.start()
  t.after(() => broker.close())
  return { broker, connect: () => pipeClient(t, broker) }
}

async function drain(c: RawClient, n: number): Promise<string[]> {
  const got: string[] = []
  for (let i = 0; i < n; i++) {
    const p = await c.nextPublish()
    got.push(p.payload.toString())
    c.send({ cmd: 'puback', messageId: p.messageId as number })
  }
  return got
}

test(`a backlog of ${N} QoS 1 messages (${Math.ceil(N / PAGE)} pages) arrives complete and in order [MQTT-4.6.0-6]`, async (t) => {
  const store = new MemoryStore()
  const { broker, connect } = await startBroker(t, store)
  await connect().parkSubscription('dev', 'q', 1)
  const pub = connect()
  await pub.connect({ clientId: 'pub' })
  await pub.publishQos1('q', Array.from({ length: N }, (_, i) => String(i)))
  assert.equal((await store.queueInfo('dev')).count, N)
  assert.equal(broker.stats.publishDropped, 0)

  const back = connect()
  await back.connect({ clientId: 'dev', clean: false })
  const got = await drain(back, N)
  assert.deepEqual(got, Array.from({ length: N }, (_, i) => String(i)))
  assert.equal(await back.quiet(100), true)
  // Every acknowledged entry left the store.
  await new Promise((r) => setImmediate(r))
  assert.equal((await store.queueInfo('dev')).count, 0)
})

test('a stored backlog is restored a page at a time after a restart, in order, with nothing lost', async (t) => {
  const store = new MemoryStore()
  const first = await startBroker(t, store)
  await first.connect().parkSubscription('dev', 'q', 1)
  const pub = first.connect()
  await pub.connect({ clientId: 'pub' })
  await pub.publishQos1('q', Array.from({ length: N }, (_, i) => String(i)))
  // The broker is replaced; the store (standing in for the disk) stays.
  await first.broker.close()
  const second = await startBroker(t, store)
  const back = second.connect()
  const connack = await back.connect({ clientId: 'dev', clean: false })
  assert.equal(connack.sessionPresent, true)
  const got = await drain(back, N)
  assert.deepEqual(got, Array.from({ length: N }, (_, i) => String(i)))
})
