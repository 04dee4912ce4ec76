import type { SubscriptionOptions } from '../broker/subscription-tree.js'
import type { Message, MessageProperties, QoS } from '../broker/types.js'
import { Reader, Writer } from './codec-io.js'
import type { IncomingRecord, QueueEntry, QueueInfo, SessionRecord, WillRecord } from './types.js'

/**
 * The binary form of every value the LevelDB store writes. Each value starts with the format
 * version and a kind letter, so a value from another format or under the wrong key is refused
 * instead of misread. Optional fields are announced by flag bits and absent ones cost nothing;
 * decoding gives back exactly the fields that were set (no `key: undefined`).
 *
 * Bump FORMAT when any layout here or in keys.ts changes, and teach the store to migrate.
 */
export const FORMAT = 1

const KIND_MESSAGE = 0x4d // 'M': a retained message
const KIND_ENTRY = 0x51 // 'Q'
const KIND_SESSION = 0x53 // 'S'
const KIND_INCOMING = 0x49 // 'I'
const KIND_WILL = 0x57 // 'W'
const KIND_TOTALS = 0x54 // 'T': a client's queue totals

const w = new Writer()

function header(kind: number): Writer {
  w.start()
  w.u8(FORMAT)
  w.u8(kind)
  return w
}

function open(buf: Buffer, kind: number, what: string): Reader {
  const r = new Reader(buf, what)
  const version = r.u8()
  if (version !== FORMAT) r.fail(`format version ${version}, expected ${FORMAT}`)
  const k = r.u8()
  if (k !== kind) r.fail(`kind 0x${k.toString(16)}, expected 0x${kind.toString(16)}`)
  return r
}

function qos(v: number, r: Reader): QoS {
  if (v === 0 || v === 1 || v === 2) return v
  return r.fail(`QoS ${v}`)
}

// Message: flags, topic, payload, then the optional fields in flag order.
const M_RETAIN = 0x04
const M_ORIGIN = 0x08
const M_PROPERTIES = 0x10
const M_EXPIRES = 0x20
// Added after format 1 shipped: older records simply lack it, so the format version stays.
const M_RECEIVED = 0x40

function writeMessage(m: Message): void {
  let flags = m.qos | (m.retain ? M_RETAIN : 0)
  if (m.origin !== undefined) flags |= M_ORIGIN
  if (m.properties !== undefined) flags |= M_PROPERTIES
  if (m.expiresAt !== undefined) flags |= M_EXPIRES
  if (m.receivedAt !== undefined) flags |= M_RECEIVED
  w.u8(flags)
  w.string(m.topic)
  w.bytes(m.payload)
  if (m.origin !== undefined) w.string(m.origin)
  if (m.properties !== undefined) writeProperties(m.properties)
  if (m.expiresAt !== undefined) w.varuint(m.expiresAt, 'expiresAt')
  if (m.receivedAt !== undefined) w.varuint(m.receivedAt, 'receivedAt')
}

function readMessage(r: Reader): Message {
  const flags = r.u8()
  if ((flags & 0x80) !== 0) r.fail(`unknown message flags 0x${flags.toString(16)}`)
  const q = qos(flags & 0x03, r)
  const topic = r.string()
  const payload = r.bytes()
  const origin = (flags & M_ORIGIN) !== 0 ? r.string() : undefined
  const properties = (flags & M_PROPERTIES) !== 0 ? readProperties(r) : undefined
  const expiresAt = (flags & M_EXPIRES) !== 0 ? r.varuint() : undefined
  const receivedAt = (flags & M_RECEIVED) !== 0 ? r.varuint() : undefined
  const m: { -readonly [K in keyof Message]: Message[K] } = { topic, payload, qos: q, retain: (flags & M_RETAIN) !== 0 }
  if (origin !== undefined) m.origin = origin
  if (properties !== undefined) m.properties = properties
  if (expiresAt !== undefined) m.expiresAt = expiresAt
  if (receivedAt !== undefined) m.receivedAt = receivedAt
  return m
}

const P_FORMAT = 0x01
const P_CONTENT_TYPE = 0x02
const P_RESPONSE_TOPIC = 0x04
const P_CORRELATION = 0x08
const P_USER = 0x10

function writeProperties(p: MessageProperties): void {
  let flags = 0
  if (p.payloadFormatIndicator !== undefined) flags |= P_FORMAT
  if (p.contentType !== undefined) flags |= P_CONTENT_TYPE
  if (p.responseTopic !== undefined) flags |= P_RESPONSE_TOPIC
  if (p.correlationData !== undefined) flags |= P_CORRELATION
  if (p.userProperties !== undefined) flags |= P_USER
  w.u8(flags)
  if (p.payloadFormatIndicator !== undefined) {
    const v = p.payloadFormatIndicator
    if (!Number.isInteger(v) || v < 0 || v > 255) throw new RangeError(`payloadFormatIndicator must be a byte, got ${v}`)
    w.u8(v)
  }
  if (p.contentType !== undefined) w.string(p.contentType)
  if (p.responseTopic !== undefined) w.string(p.responseTopic)
  if (p.correlationData !== undefined) w.bytes(p.correlationData)
  if (p.userProperties !== undefined) {
    w.varuint(p.userProperties.length, 'userProperties length')
    for (const [k, v] of p.userProperties) {
      w.string(k)
      w.string(v)
    }
  }
}

function readProperties(r: Reader): MessageProperties {
  const flags = r.u8()
  if ((flags & 0xe0) !== 0) r.fail(`unknown property flags 0x${flags.toString(16)}`)
  const p: { -readonly [K in keyof MessageProperties]: MessageProperties[K] } = {}
  if ((flags & P_FORMAT) !== 0) p.payloadFormatIndicator = r.u8()
  if ((flags & P_CONTENT_TYPE) !== 0) p.contentType = r.string()
  if ((flags & P_RESPONSE_TOPIC) !== 0) p.responseTopic = r.string()
  if ((flags & P_CORRELATION) !== 0) p.correlationData = r.bytes()
  if ((flags & P_USER) !== 0) {
    const n = r.count(2)
    const pairs: Array<readonly [string, string]> = []
    for (let i = 0; i < n; i++) pairs.push([r.string(), r.string()])
    p.userProperties = pairs
  }
  return p
}

/** A retained message, stored under its topic. */
export function encodeMessage(m: Message): Buffer {
  header(KIND_MESSAGE)
  writeMessage(m)
  return w.finish()
}

/** The message's payload is a view into `buf`, not a copy. */
export function decodeMessage(buf: Buffer): Message {
  const r = open(buf, KIND_MESSAGE, 'retained message')
  const m = readMessage(r)
  r.end()
  return m
}

// Queue entry: flags, seq, optional subscription ids / share / packet id, the message.
const E_RETAIN = 0x04
const E_SUB_IDS = 0x08
const E_SHARE = 0x10
const E_PACKET_ID = 0x20
const E_STATE_SHIFT = 6 // 2 bits: 0 none, 1 'publish', 2 'pubrel'

export function encodeQueueEntry(e: QueueEntry): Buffer {
  header(KIND_ENTRY)
  let flags = e.qos | (e.retain ? E_RETAIN : 0)
  if (e.subscriptionIds !== undefined) flags |= E_SUB_IDS
  if (e.share !== undefined) flags |= E_SHARE
  if (e.packetId !== undefined) flags |= E_PACKET_ID
  if (e.state !== undefined) flags |= (e.state === 'publish' ? 1 : 2) << E_STATE_SHIFT
  w.u8(flags)
  w.varuint(e.seq, 'seq')
  if (e.subscriptionIds !== undefined) {
    w.varuint(e.subscriptionIds.length, 'subscriptionIds length')
    for (const id of e.subscriptionIds) w.varuint(id, 'subscription id')
  }
  if (e.share !== undefined) w.string(e.share)
  if (e.packetId !== undefined) w.u16(e.packetId)
  writeMessage(e.message)
  return w.finish()
}

export function decodeQueueEntry(buf: Buffer): QueueEntry {
  const r = open(buf, KIND_ENTRY, 'queue entry')
  const flags = r.u8()
  const state = flags >>> E_STATE_SHIFT
  if (state === 3) r.fail('unknown delivery state 3')
  const seq = r.varuint()
  let subscriptionIds: number[] | undefined
  if ((flags & E_SUB_IDS) !== 0) {
    const n = r.count(1)
    subscriptionIds = []
    for (let i = 0; i < n; i++) subscriptionIds.push(r.varuint())
  }
  const share = (flags & E_SHARE) !== 0 ? r.string() : undefined
  const packetId = (flags & E_PACKET_ID) !== 0 ? r.u16() : undefined
  const message = readMessage(r)
  r.end()
  const e: { -readonly [K in keyof QueueEntry]: QueueEntry[K] } = { seq, message, qos: qos(flags & 0x03, r), retain: (flags & E_RETAIN) !== 0 }
  if (subscriptionIds !== undefined) e.subscriptionIds = subscriptionIds
  if (share !== undefined) e.share = share
  if (packetId !== undefined) e.packetId = packetId
  if (state !== 0) e.state = state === 1 ? 'publish' : 'pubrel'
  return e
}

// Session: flags, client id, optional expiry fields, subscriptions.
const S_EXPIRES = 0x01
const S_INTERVAL = 0x02

type StoredSubscription = SubscriptionOptions & { readonly filter: string }

export function encodeSession(s: SessionRecord): Buffer {
  header(KIND_SESSION)
  w.u8((s.expiresAt !== undefined ? S_EXPIRES : 0) | (s.expiryInterval !== undefined ? S_INTERVAL : 0))
  w.string(s.clientId)
  if (s.expiresAt !== undefined) w.varuint(s.expiresAt, 'expiresAt')
  if (s.expiryInterval !== undefined) w.varuint(s.expiryInterval, 'expiryInterval')
  w.varuint(s.subscriptions.length, 'subscriptions length')
  for (const sub of s.subscriptions) writeSubscription(sub)
  return w.finish()
}

export function decodeSession(buf: Buffer): SessionRecord {
  const r = open(buf, KIND_SESSION, 'session')
  const flags = r.u8()
  if ((flags & 0xfc) !== 0) r.fail(`unknown session flags 0x${flags.toString(16)}`)
  const clientId = r.string()
  const expiresAt = (flags & S_EXPIRES) !== 0 ? r.varuint() : undefined
  const expiryInterval = (flags & S_INTERVAL) !== 0 ? r.varuint() : undefined
  const n = r.count(3)
  const subscriptions: StoredSubscription[] = []
  for (let i = 0; i < n; i++) subscriptions.push(readSubscription(r))
  r.end()
  const s: { -readonly [K in keyof SessionRecord]: SessionRecord[K] } = { clientId, subscriptions }
  if (expiresAt !== undefined) s.expiresAt = expiresAt
  if (expiryInterval !== undefined) s.expiryInterval = expiryInterval
  return s
}

// Subscription options, first byte: qos (2 bits), then three 2-bit fields where 0 = absent.
// Second byte: bit 0 = a subscription identifier follows.
function tri(v: boolean | undefined): number {
  return v === undefined ? 0 : v ? 2 : 1
}

function writeSubscription(s: StoredSubscription): void {
  w.string(s.filter)
  const rh = s.retainHandling === undefined ? 0 : s.retainHandling + 1
  w.u8(s.qos | (tri(s.noLocal) << 2) | (tri(s.retainAsPublished) << 4) | (rh << 6))
  w.u8(s.subscriptionId !== undefined ? 1 : 0)
  if (s.subscriptionId !== undefined) w.varuint(s.subscriptionId, 'subscriptionId')
}

const RETAIN_HANDLING = [undefined, 0, 1, 2] as const

function readTri(v: number, r: Reader): boolean | undefined {
  if (v === 3) r.fail('unknown subscription option value 3')
  return v === 0 ? undefined : v === 2
}

function readSubscription(r: Reader): StoredSubscription {
  const filter = r.string()
  const a = r.u8()
  const b = r.u8()
  if ((b & 0xfe) !== 0) r.fail(`unknown subscription flags 0x${b.toString(16)}`)
  const s: { -readonly [K in keyof StoredSubscription]: StoredSubscription[K] } = { filter, qos: qos(a & 0x03, r) }
  const noLocal = readTri((a >>> 2) & 0x03, r)
  const rap = readTri((a >>> 4) & 0x03, r)
  const rh = a >>> 6
  if (noLocal !== undefined) s.noLocal = noLocal
  if (rap !== undefined) s.retainAsPublished = rap
  const retainHandling = RETAIN_HANDLING[rh]
  if (retainHandling !== undefined) s.retainHandling = retainHandling
  if ((b & 0x01) !== 0) s.subscriptionId = r.varuint()
  return s
}

export function encodeIncoming(rec: IncomingRecord): Buffer {
  header(KIND_INCOMING)
  w.string(rec.clientId)
  w.u16(rec.packetId)
  writeMessage(rec.message)
  return w.finish()
}

export function decodeIncoming(buf: Buffer): IncomingRecord {
  const r = open(buf, KIND_INCOMING, 'incoming QoS 2 record')
  const clientId = r.string()
  const packetId = r.u16()
  const message = readMessage(r)
  r.end()
  return { clientId, packetId, message }
}

const W_INTERVAL = 0x01

export function encodeWill(rec: WillRecord): Buffer {
  header(KIND_WILL)
  w.u8(rec.expiryInterval !== undefined ? W_INTERVAL : 0)
  w.string(rec.clientId)
  w.varuint(rec.delay, 'will delay')
  if (rec.expiryInterval !== undefined) w.varuint(rec.expiryInterval, 'will expiryInterval')
  w.varuint(rec.publishAt, 'will publishAt')
  writeMessage(rec.message)
  return w.finish()
}

export function decodeWill(buf: Buffer): WillRecord {
  const r = open(buf, KIND_WILL, 'will')
  const flags = r.u8()
  if ((flags & 0xfe) !== 0) r.fail(`unknown will flags 0x${flags.toString(16)}`)
  const clientId = r.string()
  const delay = r.varuint()
  const expiryInterval = (flags & W_INTERVAL) !== 0 ? r.varuint() : undefined
  const publishAt = r.varuint()
  const message = readMessage(r)
  r.end()
  return expiryInterval === undefined ? { clientId, message, delay, publishAt } : { clientId, message, delay, expiryInterval, publishAt }
}

export function encodeTotals(t: QueueInfo): Buffer {
  header(KIND_TOTALS)
  w.varuint(t.count, 'queue count')
  w.varuint(t.bytes, 'queue bytes')
  w.varuint(t.lastSeq, 'queue lastSeq')
  return w.finish()
}

export function decodeTotals(buf: Buffer): QueueInfo {
  const r = open(buf, KIND_TOTALS, 'queue totals')
  const t = { count: r.varuint(), bytes: r.varuint(), lastSeq: r.varuint() }
  r.end()
  return t
}
