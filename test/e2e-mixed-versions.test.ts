/**
 * End-to-end: MQTT 3.1, 3.1.1 and 5 clients (MQTT.js) on one outpost process. They must see
 * the same messages; what differs is the wire format each one gets. A v5 PUBLISH carries
 * properties after the packet id, a 3.1.x PUBLISH has none: if the broker wrote v5 properties to
 * a 3.1.x client, that client's parser would read them as the start of the payload, so an exact
 * payload check on a 3.1.x subscriber is what proves the properties were dropped.
 *
 * "Nothing else arrived" is checked with a sentinel published after the messages under test on
 * the same path. No fixed sleeps.
 */
import * as assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { describe, test, type TestContext } from 'node:test'
import { connect, type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt'
import type { IPublishPacket, QoS } from 'mqtt-packet'
import { startOutpost, type OutpostProcess } from './helpers/outpost-process.js'
import { waitOn } from './helpers/wait.js'

const WAIT_MS = 5_000

const V31 = { label: 'v3.1', protocolVersion: 3, protocolId: 'MQIsdp' } as const
const V311 = { label: 'v3.1.1', protocolVersion: 4, protocolId: 'MQTT' } as const
const V5 = { label: 'v5', protocolVersion: 5, protocolId: 'MQTT' } as const
type Version = typeof V31 | typeof V311 | typeof V5
const VERSIONS: readonly Version[] = [V31, V311, V5]
const QOS: readonly QoS[] = [0, 1, 2]

type PublishProperties = NonNullable<IPublishPacket['properties']>

/** A message as a subscriber saw it, properties flattened to plain values for deepEqual. */
interface Received {
  topic: string
  payload: string
  qos: QoS
  retain: boolean
  dup: boolean
  props: Record<string, unknown> | undefined
}

/**
 * The properties as plain data: correlation data as text, user properties as [name, value]
 * pairs in wire order (mqtt-packet groups repeated names into an array under the first one).
 */
function flatten(p: PublishProperties | undefined): Record<string, unknown> | undefined {
  if (p === undefined) return undefined
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(p)) {
    if (key === 'correlationData' && Buffer.isBuffer(value)) out[key] = value.toString('utf8')
    else if (key === 'userProperties' && typeof value === 'object' && value !== null) {
      out[key] = Object.entries(value).flatMap(([name, v]: [string, unknown]) => (Array.isArray(v) ? v.map((x: unknown) => [name, x]) : [[name, v]]))
    } else out[key] = value
  }
  return out
}

function uniqueId(name: string): string {
  // MQTT 3.1 allows client ids of at most 23 characters.
  return `${name}-${randomUUID().slice(0, 8)}`
}

/** Every message an MQTT.js client receives, listening before CONNECT goes out. */
class Inbox {
  readonly messages: Received[] = []
  readonly #events = new EventEmitter()

  constructor(client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.messages.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain, dup: packet.dup, props: flatten(packet.properties) })
      this.#events.emit('message')
    })
  }

  /** Resolves once `check` returns a value, re-checked on every message. */
  until<T>(check: () => T | undefined, what: string, timeoutMs = WAIT_MS): Promise<T> {
    return waitOn(this.#events, 'message', check, timeoutMs, () => `${what}; got ${JSON.stringify(this.messages)}`)
  }

  waitFor(match: (m: Received) => boolean, what: string): Promise<Received> {
    return this.until(() => this.messages.find(match), what)
  }

  /** Messages on `topic`, the sentinel excluded. */
  on(topic: string): Received[] {
    return this.messages.filter((m) => m.topic === topic && m.payload !== 'sentinel')
  }
}

interface Client {
  readonly v: Version
  readonly client: MqttClient
  readonly inbox: Inbox
  readonly id: string
}

/** Connects an MQTT.js client speaking `v`; ended (forcefully) after the test. */
function join(t: TestContext, broker: OutpostProcess, v: Version, name: string, opts: IClientOptions = {}): Promise<Client> {
  const id = uniqueId(name)
  const client = connect(broker.url, { clientId: id, protocolVersion: v.protocolVersion, protocolId: v.protocolId, reconnectPeriod: 0, connectTimeout: WAIT_MS, ...opts })
  const inbox = new Inbox(client)
  t.after(() => client.endAsync(true))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${id}: no CONNACK within ${WAIT_MS} ms`)), WAIT_MS)
    client.once('connect', () => {
      clearTimeout(timer)
      resolve({ v, client, inbox, id })
    })
    client.once('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}

/** `join` and subscribe; resolves once the SUBACK granted what was asked. */
async function subscriber(t: TestContext, broker: OutpostProcess, v: Version, name: string, filter: string, qos: QoS = 2, subscriptionIdentifier?: number): Promise<Client> {
  const c = await join(t, broker, v, name)
  const properties = subscriptionIdentifier === undefined ? undefined : { subscriptionIdentifier }
  const granted = await c.client.subscribeAsync(filter, { qos, ...(properties === undefined ? {} : { properties }) })
  assert.deepEqual(granted.map((g) => g.qos), [qos], `${v.label} SUBACK for ${filter}`)
  return c
}

/** The broker's own record of the protocol level it spoke with `c`. */
async function assertLevel(broker: OutpostProcess, c: Client): Promise<void> {
  const line = await broker.waitForLog((r) => r.msg === 'client connected' && r.clientId === c.id, WAIT_MS, `connect line of ${c.id}`)
  assert.equal(line.protocolVersion, c.v.protocolVersion, `${c.id} connected as ${c.v.label}`)
}

/** Every v5 property a publisher can set that the broker forwards. */
const FULL_PROPS: IClientPublishOptions['properties'] = {
  payloadFormatIndicator: true,
  messageExpiryInterval: 60,
  contentType: 'text/plain; charset=utf-8',
  responseTopic: 'mixed/reply',
  correlationData: Buffer.from('corr-42'),
  userProperties: { first: '1', second: ['2a', '2b'], third: '3' },
}

/** What a v5 subscriber must see for FULL_PROPS, Message Expiry checked separately. */
const FULL_PROPS_SEEN = {
  payloadFormatIndicator: true,
  contentType: 'text/plain; charset=utf-8',
  responseTopic: 'mixed/reply',
  correlationData: 'corr-42',
  userProperties: [['first', '1'], ['second', '2a'], ['second', '2b'], ['third', '3']],
}

/** Splits off the Message Expiry Interval, asserting it is the remaining lifetime (1..60 s). */
function withoutExpiry(m: Received): Record<string, unknown> | undefined {
  if (m.props === undefined) return undefined
  const { messageExpiryInterval, ...rest } = m.props
  assert.equal(typeof messageExpiryInterval, 'number', `Message Expiry Interval forwarded on ${m.topic} [MQTT-3.3.2-6]`)
  const left = Number(messageExpiryInterval)
  assert.ok(left > 0 && left <= 60, `remaining lifetime ${left} s on ${m.topic} [MQTT-3.3.2-6]`)
  return rest
}

describe('e2e: MQTT 3.1, 3.1.1 and 5 clients on one outpost process', () => {
  test('every version receives every version\'s QoS 0/1/2 publishes with the published QoS, retain 0 and dup 0 [MQTT-3.3.1-9] [MQTT-3.8.4-6]', async (t) => {
    const broker = await startOutpost(t)
    const subs = await Promise.all(VERSIONS.map((v) => subscriber(t, broker, v, `sub${v.protocolVersion}`, 'mix/#')))
    const pubs = await Promise.all(VERSIONS.map((v) => join(t, broker, v, `pub${v.protocolVersion}`)))
    await Promise.all([...subs, ...pubs].map((c) => assertLevel(broker, c)))

    const expected: Array<Omit<Received, 'props'>> = []
    for (const pub of pubs) {
      for (const qos of QOS) {
        const topic = `mix/${pub.v.label}/q${qos}`
        await pub.client.publishAsync(topic, `from ${pub.v.label} at ${qos}`, { qos })
        expected.push({ topic, payload: `from ${pub.v.label} at ${qos}`, qos, retain: false, dup: false })
      }
    }
    const byTopic = (a: { topic: string }, b: { topic: string }): number => a.topic.localeCompare(b.topic)
    expected.sort(byTopic)
    for (const sub of subs) {
      await sub.inbox.until(() => (sub.inbox.messages.length >= expected.length ? true : undefined), `${expected.length} messages at the ${sub.v.label} subscriber`)
    }
    // The sentinel follows the nine on every path, so duplicates would be in before it.
    await pubs[0]?.client.publishAsync('mix/end', 'sentinel', { qos: 1 })
    for (const sub of subs) {
      await sub.inbox.waitFor((m) => m.payload === 'sentinel', `sentinel at the ${sub.v.label} subscriber`)
      const got = sub.inbox.messages.filter((m) => m.payload !== 'sentinel').map(({ props, ...m }) => m).sort(byTopic)
      assert.deepEqual(got, expected, `what the ${sub.v.label} subscriber received`)
      // No publisher set properties and no subscription has an identifier: none to forward.
      assert.deepEqual(sub.inbox.messages.filter((m) => m.props !== undefined), [], `${sub.v.label}: no properties`)
    }
  })

  test('a v5 publisher\'s properties reach a v5 subscriber unaltered and in order, and are dropped for v3.1.1 and v3.1 subscribers [MQTT-3.3.2-4] [MQTT-3.3.2-6] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-18] [MQTT-3.3.2-20]', async (t) => {
    const broker = await startOutpost(t)
    const subs = await Promise.all(VERSIONS.map((v) => subscriber(t, broker, v, `psub${v.protocolVersion}`, 'props/#')))
    const pub = await join(t, broker, V5, 'ppub5')
    for (const qos of QOS) await pub.client.publishAsync(`props/q${qos}`, `payload ${qos}`, { qos, properties: FULL_PROPS })
    await pub.client.publishAsync('props/end', 'sentinel', { qos: 1 })
    for (const sub of subs) await sub.inbox.waitFor((m) => m.payload === 'sentinel', `sentinel at the ${sub.v.label} subscriber`)
    // MQTT.js hands a QoS 2 message over at PUBREL, which can come after the QoS 1 sentinel.
    for (const sub of subs) await sub.inbox.waitFor((m) => m.topic === 'props/q2', `the QoS 2 message at the ${sub.v.label} subscriber`)

    for (const sub of subs) {
      for (const qos of QOS) {
        const got = sub.inbox.on(`props/q${qos}`)
        assert.equal(got.length, 1, `${sub.v.label} got props/q${qos} once: ${JSON.stringify(got)}`)
        const m = got[0] as Received
        // For a 3.1.x subscriber, stray property bytes would show up at the front of the payload.
        assert.deepEqual([m.payload, m.qos, m.retain, m.dup], [`payload ${qos}`, qos, false, false], `${sub.v.label} props/q${qos}`)
        if (sub.v === V5) assert.deepEqual(withoutExpiry(m), FULL_PROPS_SEEN, `v5 subscriber props/q${qos}`)
        else assert.equal(m.props, undefined, `${sub.v.label} props/q${qos}`)
      }
    }
  })

  test('a v3.1.1 publish reaches v5 subscribers with no properties but the subscription identifier [MQTT-3.3.4-3]', async (t) => {
    const broker = await startOutpost(t)
    const withId = await subscriber(t, broker, V5, 'sid5', 'plain/#', 2, 42)
    const without = await subscriber(t, broker, V5, 'nosid5', 'plain/#')
    const pub = await join(t, broker, V311, 'ppub4')
    for (const qos of QOS) await pub.client.publishAsync(`plain/q${qos}`, `plain ${qos}`, { qos })
    await pub.client.publishAsync('plain/end', 'sentinel', { qos: 1 })
    for (const sub of [withId, without]) {
      await sub.inbox.waitFor((m) => m.payload === 'sentinel', 'sentinel')
      await sub.inbox.waitFor((m) => m.topic === 'plain/q2', 'the QoS 2 message')
    }
    const seen = (sub: Client): unknown[] => sub.inbox.messages.filter((m) => m.payload !== 'sentinel').map((m) => [m.topic, m.payload, m.qos, m.props]).sort()
    const expected = (props: unknown): unknown[] => QOS.map((q) => [`plain/q${q}`, `plain ${q}`, q, props])
    assert.deepEqual(seen(withId), expected({ subscriptionIdentifier: 42 }))
    assert.deepEqual(seen(without), expected(undefined))
  })

  test('retained messages set by each version are delivered to every version with the retain flag [MQTT-3.3.1-8]', async (t) => {
    const broker = await startOutpost(t)
    for (const v of VERSIONS) {
      const pub = await join(t, broker, v, `rpub${v.protocolVersion}`)
      const options: IClientPublishOptions = { qos: 1, retain: true, ...(v === V5 ? { properties: { userProperties: { origin: 'v5' }, contentType: 'text/plain' } } : {}) }
      await pub.client.publishAsync(`keep/${v.label}`, `kept by ${v.label}`, options)
    }
    const subs = await Promise.all(VERSIONS.map((v) => subscriber(t, broker, v, `rsub${v.protocolVersion}`, 'keep/#')))
    const live = await join(t, broker, V311, 'rlive4')
    await live.client.publishAsync('keep/end', 'sentinel', { qos: 1 })
    for (const sub of subs) {
      await sub.inbox.waitFor((m) => m.payload === 'sentinel', `sentinel at the ${sub.v.label} subscriber`)
      const got = sub.inbox.messages.filter((m) => m.payload !== 'sentinel').map((m) => [m.topic, m.payload, m.qos, m.retain, m.props]).sort()
      const v5Props = sub.v === V5 ? { contentType: 'text/plain', userProperties: [['origin', 'v5']] } : undefined
      assert.deepEqual(got, [
        ['keep/v3.1', 'kept by v3.1', 1, true, undefined],
        ['keep/v3.1.1', 'kept by v3.1.1', 1, true, undefined],
        ['keep/v5', 'kept by v5', 1, true, v5Props],
      ], `retained messages at the ${sub.v.label} subscriber`)
    }
  })

  test('the will of a v3.1.1 client reaches a v5 subscriber, without properties [MQTT-3.1.2-8]', async (t) => {
    const broker = await startOutpost(t)
    const watcher = await subscriber(t, broker, V5, 'wwatch5', 'gone/#')
    const dying = await join(t, broker, V311, 'wdie4', { will: { topic: 'gone/v311', payload: Buffer.from('v3.1.1 died'), qos: 1, retain: false } })
    dying.client.stream.destroy()
    const m = await watcher.inbox.waitFor((x) => x.topic === 'gone/v311', 'the will')
    assert.deepEqual(m, { topic: 'gone/v311', payload: 'v3.1.1 died', qos: 1, retain: false, dup: false, props: undefined })
  })

  test('the will of a v5 client carries its properties to a v5 subscriber and arrives plain at v3.1.1 and v3.1 subscribers [MQTT-3.1.2-8] [MQTT-3.3.2-18]', async (t) => {
    const broker = await startOutpost(t)
    const watchers = await Promise.all(VERSIONS.map((v) => subscriber(t, broker, v, `wsub${v.protocolVersion}`, 'gone/#')))
    const dying = await join(t, broker, V5, 'wdie5', {
      will: { topic: 'gone/v5', payload: Buffer.from('v5 died'), qos: 2, retain: false, properties: { ...FULL_PROPS, willDelayInterval: 0 } },
    })
    dying.client.stream.destroy()
    for (const w of watchers) {
      const m = await w.inbox.waitFor((x) => x.topic === 'gone/v5', `the will at the ${w.v.label} subscriber`)
      assert.deepEqual([m.payload, m.qos, m.retain], ['v5 died', 2, false], `will at the ${w.v.label} subscriber`)
      if (w.v === V5) assert.deepEqual(withoutExpiry(m), FULL_PROPS_SEEN, 'will properties at the v5 subscriber')
      else assert.equal(m.props, undefined, `will at the ${w.v.label} subscriber`)
    }
  })

  test('a shared subscription with a v3.1.1 and a v5 member gives each message to exactly one of them [MQTT-4.8.2]', async (t) => {
    const broker = await startOutpost(t)
    const members = [await subscriber(t, broker, V311, 'shr4', '$share/grp/work/t', 1), await subscriber(t, broker, V5, 'shr5', '$share/grp/work/t', 1)]
    for (const m of members) await m.client.subscribeAsync('work/end', { qos: 1 })
    const pub = await join(t, broker, V5, 'shrpub5')
    const n = 10
    for (let i = 0; i < n; i++) await pub.client.publishAsync('work/t', `job ${i}`, { qos: 1, properties: { userProperties: { job: String(i) } } })
    await pub.client.publishAsync('work/end', 'sentinel', { qos: 1 })
    for (const m of members) await m.inbox.waitFor((x) => x.payload === 'sentinel', `sentinel at the ${m.v.label} member`)

    const [v311, v5] = members.map((m) => m.inbox.on('work/t')) as [Received[], Received[]]
    const all = [...v311, ...v5].map((m) => m.payload).sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)))
    assert.deepEqual(all, Array.from({ length: n }, (_, i) => `job ${i}`), 'each message delivered once, to one member')
    assert.ok(v311.length > 0 && v5.length > 0, `both members got messages: v3.1.1 ${v311.length}, v5 ${v5.length}`)
    // Each member gets the message in its own protocol's form, on the topic without the $share prefix.
    for (const m of v311) assert.deepEqual([m.topic, m.qos, m.props], ['work/t', 1, undefined])
    for (const m of v5) assert.deepEqual([m.topic, m.qos, m.props], ['work/t', 1, { userProperties: [['job', m.payload.slice(4)]] }])
  })
})
