/**
 * The ACL's `read` check on shared subscriptions: a member of a `$share` group that may not read
 * a topic is passed over for messages on it, when the group picks a member and when a leaving
 * member's unacknowledged messages go to another one; when no member may read it, nobody gets
 * it. And SUBSCRIBE to a shared filter is decided by the ACL on the filter inside it.
 * A real listener with an acl_file; MQTT.js clients, and a raw client where acks must be held back.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { connect as netConnect } from 'node:net'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import type { IClientOptions, MqttClient } from 'mqtt'
import type { Packet } from 'mqtt-packet'
import { pino } from 'pino'
import { defaultConfig, defaultListener } from '../src/config/defaults.js'
import type { OutpostConfig } from '../src/config/types.js'
import { startGateway } from '../src/gateway.js'
import type { Inbox } from './helpers/inbox.js'
import { connectedClient } from './helpers/mqtt-client.js'
import { tempDir } from './helpers/outpost-process.js'
import { RawClient } from './helpers/raw-client.js'

// alice may read sensors/ but not sensors/secret/; bob may read all of sensors/.
const ACL = `user alice
topic read sensors/#
topic deny sensors/secret/#
topic read done/#

user bob
topic read sensors/#
topic read done/#

user pub
topic write sensors/#
topic write done/#
`

async function aclBroker(t: TestContext): Promise<string> {
  const dir = tempDir(t, 'outpost-acl-shared-')
  const acl = join(dir, 'acl')
  writeFileSync(acl, ACL)
  const config: OutpostConfig = {
    ...defaultConfig(),
    sysInterval: 0,
    dataDir: dir,
    listeners: [{ ...defaultListener('mqtt', 0, '127.0.0.1'), allowAnonymous: true, aclFile: acl }],
  }
  const gw = await startGateway(config, pino({ level: 'silent' }))
  t.after(() => gw.close())
  return `mqtt://127.0.0.1:${gw.addresses()[0]?.port ?? 0}`
}

function client(t: TestContext, url: string, username: string, clientId: string, options: IClientOptions = {}): Promise<{ client: MqttClient; inbox: Inbox }> {
  return connectedClient(t, url, { username, clientId, ...options })
}

/** The SUBACK codes as sent (MQTT.js turns a failure code into a rejection). */
function subackCodes(c: MqttClient, filters: string[]): Promise<number[]> {
  return new Promise((resolve) => {
    const on = (packet: Packet): void => {
      if (packet.cmd !== 'suback') return
      c.off('packetreceive', on)
      resolve(packet.granted.map((g: unknown) => (typeof g === 'number' ? g : typeof g === 'object' && g !== null && 'qos' in g && typeof g.qos === 'number' ? g.qos : -1)))
    }
    c.on('packetreceive', on)
    c.subscribe(filters, () => undefined)
  })
}

/** Publishes `done/<tag>` and waits until each inbox has it: everything routed before it is in. */
async function settle(pub: MqttClient, tag: string, inboxes: Inbox[]): Promise<void> {
  await pub.publishAsync(`done/${tag}`, tag, { qos: 1 })
  await Promise.all(inboxes.map((box) => box.waitFor((m) => m.topic === `done/${tag}`, `done/${tag}`)))
}

const payloads = (box: Inbox, prefix: string): string[] => box.messages.filter((m) => m.topic.startsWith(prefix)).map((m) => m.payload)

test('a $share group: members that may not read a topic are passed over; when none may, nobody gets it', async (t) => {
  const url = await aclBroker(t)
  const alice = await client(t, url, 'alice', 'alice-1')
  const bob = await client(t, url, 'bob', 'bob-1', { protocolVersion: 5 })
  const pub = await client(t, url, 'pub', 'pub-1')
  await alice.client.subscribeAsync({ '$share/g/sensors/#': { qos: 1 }, 'done/#': { qos: 1 } })
  await bob.client.subscribeAsync({ '$share/g/sensors/#': { qos: 1 }, 'done/#': { qos: 1 } })

  for (let i = 0; i < 10; i++) await pub.client.publishAsync('sensors/x', `open-${i}`, { qos: 1 })
  for (let i = 0; i < 6; i++) await pub.client.publishAsync('sensors/secret/x', `secret-${i}`, { qos: 1 })
  await settle(pub.client, '1', [alice.inbox, bob.inbox])

  // Each open message went to exactly one member, and both had a share of them.
  const open = [...payloads(alice.inbox, 'sensors/x'), ...payloads(bob.inbox, 'sensors/x')].sort()
  assert.deepEqual(open, Array.from({ length: 10 }, (_, i) => `open-${i}`).sort())
  assert.ok(payloads(alice.inbox, 'sensors/x').length > 0 && payloads(bob.inbox, 'sensors/x').length > 0, 'both members got open messages')
  // Every secret one went to bob, in order; none to alice.
  assert.deepEqual(payloads(bob.inbox, 'sensors/secret/'), Array.from({ length: 6 }, (_, i) => `secret-${i}`))
  assert.deepEqual(payloads(alice.inbox, 'sensors/secret/'), [])

  // bob leaves the group: a secret message reaches nobody, an open one reaches alice.
  await bob.client.unsubscribeAsync('$share/g/sensors/#')
  await pub.client.publishAsync('sensors/secret/y', 'nobody', { qos: 1 })
  await pub.client.publishAsync('sensors/y', 'alice', { qos: 1 })
  await settle(pub.client, '2', [alice.inbox, bob.inbox])
  assert.deepEqual(payloads(alice.inbox, 'sensors/y'), ['alice'])
  assert.deepEqual(payloads(alice.inbox, 'sensors/secret/'), [])
  assert.deepEqual(payloads(bob.inbox, 'sensors/secret/y'), [])
})

test("a leaving member's unacknowledged messages go to another member only where it may read them", async (t) => {
  const url = await aclBroker(t)
  // bob: a raw client that never acknowledges, so what it is sent stays in flight.
  const bob = await new Promise<RawClient>((resolve, reject) => {
    const socket = netConnect(port(url), '127.0.0.1', () => resolve(new RawClient(socket)))
    socket.once('error', reject)
  })
  t.after(() => bob.end())
  await bob.connect({ clientId: 'bob-raw', username: 'bob' })
  assert.equal(await bob.subscribe('$share/g/sensors/#', 1), 1)
  const pub = await client(t, url, 'pub', 'pub-2')
  for (const topic of ['sensors/a', 'sensors/secret/b', 'sensors/c', 'sensors/secret/d']) await pub.client.publishAsync(topic, topic, { qos: 1 })
  const got: string[] = []
  for (let i = 0; i < 4; i++) got.push((await bob.nextPublish()).topic)
  assert.deepEqual(got, ['sensors/a', 'sensors/secret/b', 'sensors/c', 'sensors/secret/d'])

  const alice = await client(t, url, 'alice', 'alice-2')
  await alice.client.subscribeAsync({ '$share/g/sensors/#': { qos: 1 }, 'done/#': { qos: 1 } })
  // bob goes without acknowledging: its QoS 1 messages are offered to the group again.
  bob.end()
  await alice.inbox.waitFor((m) => m.topic === 'sensors/c', 'the re-routed open messages')
  await settle(pub.client, '3', [alice.inbox])
  assert.deepEqual(payloads(alice.inbox, 'sensors/'), ['sensors/a', 'sensors/c'])
})

test('SUBSCRIBE to a shared filter is decided by the ACL on the filter inside $share/GROUP/', async (t) => {
  const url = await aclBroker(t)
  const alice = await client(t, url, 'alice', 'alice-3', { protocolVersion: 5 })
  const alice3 = await client(t, url, 'alice', 'alice-4')
  // sensors/# is hers to read (a deny on part of it leaves the subscription); # and secret/ are not.
  assert.deepEqual(await subackCodes(alice.client, ['$share/g/sensors/#', '$share/g/#', '$share/g/sensors/secret/#', '$queue/sensors/+']), [0, 0x87, 0x87, 0])
  assert.deepEqual(await subackCodes(alice3.client, ['$share/h/sensors/#', '$share/h/other/#']), [0, 0x80])
})

function port(url: string): number {
  return Number(new URL(url).port)
}
