/**
 * The MQTT 5 encoder side: PublishEncoder5, checked against mqtt-packet's v5 parser and against a
 * reading of the raw bytes, and the topic alias tables of both directions. The decoder is in
 * v5-codec.test.ts.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parser, type IPublishPacket, type Packet } from 'mqtt-packet'
import type { Message, MessageProperties, QoS } from '../src/broker/types.js'
import { varintSize } from '../src/broker/v5/properties.js'
import { PublishEncoder5, type Delivery5 } from '../src/broker/v5/publish-encoder.js'
import { ByteReader } from '../src/broker/v5/reader.js'
import { InboundAliases, OutboundAliases } from '../src/broker/v5/topic-aliases.js'
import { B, outcome } from './helpers/v5-bytes.js'
import { seededRandom } from './helpers/prng.js'

function parse5(buf: Buffer): Packet {
  const p = parser({ protocolVersion: 5 })
  const packets: Packet[] = []
  const errors: string[] = []
  p.on('packet', (x) => packets.push(x))
  p.on('error', (e: unknown) => errors.push(String(e)))
  p.parse(buf)
  assert.deepEqual(errors, [])
  const [first] = packets
  assert.ok(first !== undefined && packets.length === 1, 'one packet')
  return first
}

const KINDS = new Map<number, 'u8' | 'u16' | 'u32' | 'varint' | 'string' | 'binary' | 'pair'>([[0x01, 'u8'], [0x02, 'u32'], [0x23, 'u16'], [0x0b, 'varint'], [0x03, 'string'], [0x08, 'string'], [0x09, 'binary'], [0x26, 'pair']])

/** The properties on the wire, in wire order, each as [identifier, value]. */
function wireProps(buf: Buffer, qos: number): Array<[number, unknown]> {
  const r = new ByteReader(buf, 1, buf.length)
  assert.equal(r.varint('remaining length'), r.remaining, 'remaining length is the rest of the packet')
  r.string('topic')
  if (qos > 0) r.u16('id')
  const props = r.slice(r.varint('property length') + r.pos)
  const out: Array<[number, unknown]> = []
  while (props.remaining > 0) {
    const id = props.u8('id')
    const k = KINDS.get(id)
    if (k === 'u8' || k === 'u16' || k === 'u32' || k === 'varint' || k === 'string') out.push([id, props[k]('v')])
    else if (k === 'binary') out.push([id, Buffer.from(props.binary('v'))])
    else if (k === 'pair') out.push([id, [props.string('n'), props.string('v')]])
    else assert.fail(`unexpected property 0x${id.toString(16)}`)
  }
  return out
}

/** User Properties the way mqtt-packet's parser folds them: one key per name, repeats as an array. */
function folded(list: MessageProperties['userProperties']): Record<string, string | string[]> | undefined {
  if (list === undefined || list.length === 0) return undefined
  const out: Record<string, string | string[]> = Object.create(null)
  for (const [n, v] of list) {
    const prev = out[n]
    out[n] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v]
  }
  return out
}

function check(enc: PublishEncoder5, m: Message, d: Delivery5, name: string): void {
  const [head, payload] = enc.encode(m, d)
  const buf = Buffer.concat([head, payload])
  assert.equal(enc.size(m, d), buf.length, `${name}: size()`)
  const pk = parse5(buf)
  if (pk.cmd !== 'publish') return assert.fail(`${name}: ${pk.cmd}`)
  assert.equal(pk.topic, d.sendTopic ? m.topic : '', `${name}: topic`)
  assert.deepEqual(pk.payload, m.payload, `${name}: payload`)
  assert.deepEqual([pk.qos, pk.retain, pk.dup, pk.messageId], [d.qos, d.retain, d.dup, d.qos > 0 ? d.packetId : undefined], `${name}: header`)
  const p: MessageProperties = m.properties ?? {}
  const pp: NonNullable<IPublishPacket['properties']> = pk.properties ?? {}
  assert.equal(pp.messageExpiryInterval, d.expiry, `${name}: expiry`)
  assert.equal(pp.topicAlias, d.alias, `${name}: alias`)
  assert.equal(pp.contentType, p.contentType, `${name}: content type`)
  assert.equal(pp.responseTopic, p.responseTopic, `${name}: response topic`)
  assert.deepEqual(pp.correlationData, p.correlationData, `${name}: correlation data`)
  assert.equal(pp.payloadFormatIndicator, p.payloadFormatIndicator === undefined ? undefined : p.payloadFormatIndicator === 1, `${name}: format`)
  assert.deepEqual(pp.userProperties, folded(p.userProperties), `${name}: user properties as mqtt-packet folds them`)
  const ids = d.subscriptionIds ?? []
  assert.deepEqual(pp.subscriptionIdentifier, ids.length === 0 ? undefined : ids.length === 1 ? ids[0] : ids, `${name}: subscription ids`)
  // Our own reading: every User Property in the publisher's order [MQTT-3.3.2-18], nothing else added.
  const wire = wireProps(buf, d.qos)
  assert.deepEqual(wire.filter(([id]) => id === 0x26).map(([, v]) => v), (p.userProperties ?? []).map(([n, v]) => [n, v]), `${name}: user properties`)
  assert.deepEqual(wire.filter(([id]) => id === 0x0b).map(([, v]) => v), [...ids], `${name}: subscription ids on the wire`)
  const expected = [d.expiry, d.alias, p.payloadFormatIndicator, p.contentType, p.responseTopic, p.correlationData].filter((v) => v !== undefined).length
  assert.equal(wire.length, expected + ids.length + (p.userProperties ?? []).length, `${name}: property count`)
}

const delivery = (over: Partial<Delivery5> = {}): Delivery5 => ({ qos: 0, packetId: undefined, retain: false, dup: false, expiry: undefined, alias: undefined, sendTopic: true, subscriptionIds: undefined, ...over })

test('PublishEncoder5: properties forwarded, expiry, alias with and without topic, subscription ids [MQTT-3.3.2-6] [MQTT-3.3.2-12] [MQTT-3.3.4-3]', () => {
  const enc = new PublishEncoder5()
  const bare: Message = { topic: 'a/b', payload: Buffer.from('x'), qos: 1, retain: false }
  const properties: MessageProperties = { payloadFormatIndicator: 1, contentType: 'text/plain', responseTopic: 'r/é', correlationData: B(0, 9), userProperties: [['a', '1'], ['b', '2'], ['a', '3']] }
  const rich: Message = { topic: 'ü/😀', payload: Buffer.from('payload'), qos: 2, retain: true, properties }
  check(enc, bare, delivery(), 'no properties')
  check(enc, bare, delivery({ qos: 1, packetId: 1, dup: true }), 'QoS 1 DUP')
  check(enc, rich, delivery({ qos: 2, packetId: 65535, retain: true }), 'forwarded properties')
  check(enc, rich, delivery({ expiry: 0xffffffff }), 'expiry')
  check(enc, rich, delivery({ alias: 7, sendTopic: true }), 'alias with topic')
  check(enc, rich, delivery({ alias: 7, sendTopic: false }), 'alias without topic')
  check(enc, rich, delivery({ subscriptionIds: [1] }), 'one subscription id')
  check(enc, bare, delivery({ subscriptionIds: [1, 268_435_455, 128, 16_384] }), 'several subscription ids')
  check(enc, rich, delivery({ qos: 1, packetId: 3, expiry: 10, alias: 2, sendTopic: false, subscriptionIds: [5, 6] }), 'everything')
  // The template is cached per message: a second delivery of the same message is not disturbed by the first.
  check(enc, rich, delivery(), 'cached template, no per-delivery properties')
  assert.equal(enc.encode(bare, delivery())[0].toString('hex'), '3007' + '0003612f62' + '00', 'QoS 0 without properties, byte-exact')
})

test('PublishEncoder5: size() is the encoded length across every remaining-length boundary', () => {
  const enc = new PublishEncoder5()
  for (const rl of [127, 128, 16_383, 16_384, 2_097_151, 2_097_152]) {
    // Remaining length = topic "t" (3) + property length (1) + payload.
    const m: Message = { topic: 't', payload: Buffer.alloc(rl - 4, 0x61), qos: 0, retain: false }
    assert.equal(enc.size(m, delivery()), 1 + varintSize(rl) + rl, `rl ${rl}`)
    check(enc, m, delivery(), `rl ${rl}`)
  }
})


test('PublishEncoder5: random messages decode with mqtt-packet and size() matches, seeded', () => {
  const random = seededRandom(0x5eed)
  const r = (n: number): number => Math.floor(random() * n)
  const chars = ['a', 'b', '/', ' ', 'é', '€', '😀', 'Z', '-']
  const str = (max: number, min = 0): string => Array.from({ length: min + r(max - min + 1) }, () => chars[r(chars.length)]).join('')
  const varint = (): number => [1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455, 1 + r(268_435_455)][r(9)] as number
  const maybe = <T>(v: () => T): T | undefined => (r(2) === 0 ? undefined : v())
  const enc = new PublishEncoder5()
  for (let i = 0; i < 500; i++) {
    const qos = r(3) as QoS
    const props: MessageProperties = {
      payloadFormatIndicator: maybe(() => r(2)),
      contentType: maybe(() => str(40)),
      responseTopic: maybe(() => str(40, 1)),
      correlationData: maybe(() => Buffer.from(Array.from({ length: r(64) }, () => r(256)))),
      // Non-empty values: mqtt-packet folds a repeated name with an empty first value into one.
      userProperties: maybe(() => Array.from({ length: r(6) }, () => [str(5), str(20, 1)] as const)),
    }
    const m: Message = { topic: str(300, 1), payload: Buffer.alloc(r(4) === 0 ? r(40_000) : r(200), i), qos, retain: r(2) === 1, ...(r(3) === 0 ? {} : { properties: props }) }
    const alias = maybe(() => 1 + r(65_535))
    const d = delivery({
      qos,
      packetId: qos > 0 ? 1 + r(65_535) : undefined,
      retain: r(2) === 1,
      dup: qos > 0 && r(2) === 1,
      expiry: maybe(() => r(2 ** 32)),
      alias,
      sendTopic: alias === undefined || r(2) === 1,
      subscriptionIds: maybe(() => Array.from({ length: r(4) }, varint)),
    })
    check(enc, m, d, `random #${i}`)
  }
})

test('InboundAliases: 0 and above our maximum are 0x94, an unknown alias with an empty topic 0x82 [MQTT-3.3.2-8] [MQTT-3.3.2-9] [MQTT-3.3.2-7]', () => {
  const a = new InboundAliases(3)
  assert.equal(a.resolve('plain', undefined), 'plain')
  assert.equal(outcome(() => a.resolve('t', 0)), 0x94, 'alias 0')
  assert.equal(outcome(() => a.resolve('t', 4)), 0x94, 'alias above the maximum')
  assert.equal(outcome(() => a.resolve('', 2)), 0x82, 'never set')
  assert.equal(a.resolve('t/1', 2), 't/1')
  assert.equal(a.resolve('', 2), 't/1')
  assert.equal(a.resolve('t/2', 2), 't/2', 'remapped')
  assert.equal(a.resolve('', 2), 't/2')
  assert.equal(a.resolve('x', 3), 'x')
  assert.equal(a.resolve('', 2), 't/2', 'other aliases untouched')
  // Section 3.3.2.1 calls an empty topic without an alias a Protocol Error; the code says 0x81 (in the report).
  assert.equal(outcome(() => a.resolve('', undefined)), 0x81)
  // Aliases belong to one network connection [MQTT-3.3.2-7]: a new one knows none.
  assert.equal(outcome(() => new InboundAliases(3).resolve('', 2)), 0x82)
  assert.equal(outcome(() => new InboundAliases(0).resolve('t', 1)), 0x94, 'maximum 0: no alias at all [MQTT-3.2.2-17]')
  assert.equal(new InboundAliases(65_535).resolve('t', 65_535), 't')
})

test('OutboundAliases: up to the client maximum, least recently used alias reused [MQTT-3.3.2-10]', () => {
  const o = new OutboundAliases(2)
  assert.deepEqual(o.take('a'), { alias: 1, sendTopic: true })
  assert.deepEqual(o.take('b'), { alias: 2, sendTopic: true })
  assert.deepEqual(o.take('a'), { alias: 1, sendTopic: false })
  assert.equal(o.peek('b'), 2)
  // peek does not refresh b: it is still the least recently used.
  assert.deepEqual(o.take('c'), { alias: 2, sendTopic: true })
  assert.equal(o.peek('b'), undefined)
  assert.deepEqual(o.take('b'), { alias: 1, sendTopic: true }, 'a was least recently used now')
  assert.deepEqual(o.take('c'), { alias: 2, sendTopic: false })

  // Random traffic against a model of the client: an alias sent without a topic must be the
  // mapping the client last learned, and never above the maximum.
  const random7 = seededRandom(7)
  const r = (n: number): number => Math.floor(random7() * n)
  for (const max of [1, 3, 10]) {
    const out = new OutboundAliases(max)
    const client = new Map<number, string>()
    for (let i = 0; i < 2000; i++) {
      const topic = `t/${r(max * 2)}`
      const { alias, sendTopic } = out.take(topic)
      assert.ok(alias >= 1 && alias <= max, `alias ${alias} within 1..${max}`)
      if (sendTopic) client.set(alias, topic)
      else assert.equal(client.get(alias), topic, `alias ${alias} still means ${topic}`)
    }
  }
})
