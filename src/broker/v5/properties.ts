import { ProtocolError } from '../protocol-error.js'
import { ByteReader } from './reader.js'

/**
 * MQTT 5 properties (section 2.2.2): the table of every property, a reader that enforces which
 * packet may carry which property, and an encoder. Our own rather than mqtt-packet's because its
 * decoder folds User Properties into an object keyed by name, which loses their order; the spec
 * requires the server to keep it when forwarding [MQTT-3.3.2-18].
 */

/** Where a property block sits: a packet type, or the will properties inside CONNECT. */
export type PropertyContext =
  | 'connect'
  | 'will'
  | 'publish'
  | 'puback'
  | 'pubrec'
  | 'pubrel'
  | 'pubcomp'
  | 'subscribe'
  | 'unsubscribe'
  | 'disconnect'
  | 'auth'

export type UserProperties = ReadonlyArray<readonly [string, string]>

/** Every property a client may send, decoded. Names follow the specification's table 2-4. */
export interface Properties {
  payloadFormatIndicator?: number
  messageExpiryInterval?: number
  contentType?: string
  responseTopic?: string
  correlationData?: Buffer
  subscriptionIdentifier?: number
  sessionExpiryInterval?: number
  authenticationMethod?: string
  authenticationData?: Buffer
  requestProblemInformation?: number
  willDelayInterval?: number
  requestResponseInformation?: number
  serverReference?: string
  reasonString?: string
  receiveMaximum?: number
  topicAliasMaximum?: number
  topicAlias?: number
  maximumPacketSize?: number
  userProperties?: Array<[string, string]>
}

type Kind = 'byte' | 'u16' | 'u32' | 'varint' | 'string' | 'binary' | 'pair'
type Key = Exclude<keyof Properties, 'userProperties'>
/** Properties only a server sends; a client that sends one breaks the protocol. */
type ServerOnly =
  | 'assignedClientIdentifier'
  | 'serverKeepAlive'
  | 'responseInformation'
  | 'maximumQos'
  | 'retainAvailable'
  | 'wildcardSubscriptionAvailable'
  | 'subscriptionIdentifierAvailable'
  | 'sharedSubscriptionAvailable'

interface Spec {
  readonly key: Key | 'userProperties' | ServerOnly
  readonly kind: Kind
  readonly in: ReadonlySet<PropertyContext>
}

const ALL_WITH_PROPERTIES: PropertyContext[] = ['connect', 'will', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp', 'subscribe', 'unsubscribe', 'disconnect', 'auth']
const ACKS: PropertyContext[] = ['puback', 'pubrec', 'pubrel', 'pubcomp']

function spec(key: Spec['key'], kind: Kind, contexts: PropertyContext[]): Spec {
  return { key, kind, in: new Set(contexts) }
}

/**
 * Properties a server may receive, by identifier. Server-only ones (Assigned Client Identifier,
 * Server Keep Alive, Response Information, Maximum QoS, Retain Available, Topic Alias / Wildcard /
 * Subscription Identifier / Shared Subscription Available) are known identifiers allowed nowhere a
 * client writes, so sending one is a protocol error rather than an unknown property.
 */
const SPECS = new Map<number, Spec>([
  [0x01, spec('payloadFormatIndicator', 'byte', ['publish', 'will'])],
  [0x02, spec('messageExpiryInterval', 'u32', ['publish', 'will'])],
  [0x03, spec('contentType', 'string', ['publish', 'will'])],
  [0x08, spec('responseTopic', 'string', ['publish', 'will'])],
  [0x09, spec('correlationData', 'binary', ['publish', 'will'])],
  [0x0b, spec('subscriptionIdentifier', 'varint', ['publish', 'subscribe'])],
  [0x11, spec('sessionExpiryInterval', 'u32', ['connect', 'disconnect'])],
  [0x12, spec('assignedClientIdentifier', 'string', [])],
  [0x13, spec('serverKeepAlive', 'u16', [])],
  [0x15, spec('authenticationMethod', 'string', ['connect', 'auth'])],
  [0x16, spec('authenticationData', 'binary', ['connect', 'auth'])],
  [0x17, spec('requestProblemInformation', 'byte', ['connect'])],
  [0x18, spec('willDelayInterval', 'u32', ['will'])],
  [0x19, spec('requestResponseInformation', 'byte', ['connect'])],
  [0x1a, spec('responseInformation', 'string', [])],
  [0x1c, spec('serverReference', 'string', ['disconnect'])],
  [0x1f, spec('reasonString', 'string', [...ACKS, 'disconnect', 'auth'])],
  [0x21, spec('receiveMaximum', 'u16', ['connect'])],
  [0x22, spec('topicAliasMaximum', 'u16', ['connect'])],
  [0x23, spec('topicAlias', 'u16', ['publish'])],
  [0x24, spec('maximumQos', 'byte', [])],
  [0x25, spec('retainAvailable', 'byte', [])],
  [0x26, spec('userProperties', 'pair', ALL_WITH_PROPERTIES)],
  [0x27, spec('maximumPacketSize', 'u32', ['connect'])],
  [0x28, spec('wildcardSubscriptionAvailable', 'byte', [])],
  [0x29, spec('subscriptionIdentifierAvailable', 'byte', [])],
  [0x2a, spec('sharedSubscriptionAvailable', 'byte', [])],
])

/** An empty property block; shared, so nobody may write to it. */
export const NO_PROPERTIES: Properties = Object.freeze({})

/** Byte-valued properties that may only be 0 or 1. */
const BOOLEAN_BYTES = new Set<Key>(['payloadFormatIndicator', 'requestProblemInformation', 'requestResponseInformation'])

/**
 * Section 2.2.2.2 calls a property the packet type may not carry malformed (0x81). Mosquitto, the
 * reference our conformance vectors come from, answers 0x81 for SUBSCRIBE and UNSUBSCRIBE and
 * 0x82 for the other packets; both close the connection, and clients see the codes they know.
 */
const MALFORMED_WHEN_DISALLOWED = new Set<PropertyContext>(['subscribe', 'unsubscribe'])

/**
 * Reads the property block at the reader's position (its varint length, then the properties)
 * for `context`. The whole block is read first, so an unknown identifier or a truncated value
 * anywhere is malformed (0x81); then a property the packet may not carry (see above), a repeated
 * one, or a value outside its range is refused, as a protocol error (0x82) [MQTT-2.2.2-2].
 */
export function readProperties(r: ByteReader, context: PropertyContext): Properties {
  const length = r.varint('property length')
  // Most packets carry none: no reader, no list, one shared empty object (nobody writes to it).
  if (length === 0) return NO_PROPERTIES
  const end = r.pos + length
  if (end > r.end) throw new ProtocolError(`property length ${length} runs past the end of the packet`, 0x81)
  const sub = r.slice(end)
  const read: Array<[Spec, unknown]> = []
  while (sub.pos < end) {
    const id = sub.varint('property identifier')
    const s = SPECS.get(id)
    if (s === undefined) throw new ProtocolError(`unknown property identifier 0x${id.toString(16)}`, 0x81)
    read.push([s, readValue(sub, s.kind, s.key)])
  }
  r.pos = end
  const props: Properties = {}
  for (const [s, value] of read) {
    if (!s.in.has(context)) {
      throw new ProtocolError(`property ${s.key} is not allowed in ${context}`, MALFORMED_WHEN_DISALLOWED.has(context) ? 0x81 : 0x82)
    }
    if (s.key === 'userProperties') {
      ;(props.userProperties ??= []).push(value as [string, string])
      continue
    }
    // Server-only identifiers are allowed in no client context, so s.key is a client property here.
    const key = s.key as Key
    if (props[key] !== undefined) throw new ProtocolError(`property ${key} appears twice`, 0x82, 'MQTT-2.2.2-2')
    // Sections 3.1.2.11.6, 3.1.2.11.7 and 3.3.2.3.2: any value but 0 or 1 is a protocol error.
    if (BOOLEAN_BYTES.has(key) && (value as number) > 1) throw new ProtocolError(`${key} must be 0 or 1`, 0x82)
    ;(props as Record<Key, unknown>)[key] = value
  }
  // Zero is not a valid value for these (sections 3.1.2.11.3, 3.1.2.11.4, 3.8.2.1.2); the spec
  // gives these no numbered rule, and Mosquitto's vectors call a zero identifier malformed.
  if (props.receiveMaximum === 0) throw new ProtocolError('Receive Maximum 0', 0x82)
  if (props.maximumPacketSize === 0) throw new ProtocolError('Maximum Packet Size 0', 0x82)
  if (props.subscriptionIdentifier === 0) throw new ProtocolError('Subscription Identifier 0', 0x81)
  // Section 3.1.2.11.10: Authentication Data without a method is a protocol error.
  if (props.authenticationData !== undefined && props.authenticationMethod === undefined && context === 'connect') {
    throw new ProtocolError('Authentication Data without Authentication Method', 0x82)
  }
  return props
}

function readValue(r: ByteReader, kind: Kind, name: string): unknown {
  switch (kind) {
    case 'byte':
      return r.u8(name)
    case 'u16':
      return r.u16(name)
    case 'u32':
      return r.u32(name)
    case 'varint':
      return r.varint(name)
    case 'string':
      return r.string(name)
    case 'binary':
      return r.binary(name)
    case 'pair':
      return [r.string(name), r.string(name)]
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** Writes identifier-value pairs into one buffer; the caller prefixes the length. */
export class PropertyWriter {
  readonly #parts: Buffer[] = []
  #length = 0

  get length(): number {
    return this.#length
  }

  byte(id: number, value: number): this {
    return this.#push(Buffer.from([id, value]))
  }

  u16(id: number, value: number): this {
    const b = Buffer.allocUnsafe(3)
    b[0] = id
    b.writeUInt16BE(value, 1)
    return this.#push(b)
  }

  u32(id: number, value: number): this {
    const b = Buffer.allocUnsafe(5)
    b[0] = id
    b.writeUInt32BE(value, 1)
    return this.#push(b)
  }

  varint(id: number, value: number): this {
    return this.#push(Buffer.concat([Buffer.from([id]), encodeVarint(value)]))
  }

  string(id: number, value: string): this {
    return this.binary(id, Buffer.from(value, 'utf8'))
  }

  binary(id: number, value: Buffer): this {
    const head = Buffer.allocUnsafe(3)
    head[0] = id
    head.writeUInt16BE(value.length, 1)
    this.#push(head)
    return this.#push(value)
  }

  pair(id: number, name: string, value: string): this {
    const n = Buffer.from(name, 'utf8')
    const v = Buffer.from(value, 'utf8')
    const b = Buffer.allocUnsafe(5 + n.length + v.length)
    b[0] = id
    b.writeUInt16BE(n.length, 1)
    n.copy(b, 3)
    b.writeUInt16BE(v.length, 3 + n.length)
    v.copy(b, 5 + n.length)
    return this.#push(b)
  }

  /** The properties without the length prefix. */
  bytes(): Buffer {
    return this.#parts.length === 1 ? (this.#parts[0] as Buffer) : Buffer.concat(this.#parts, this.#length)
  }

  #push(b: Buffer): this {
    this.#parts.push(b)
    this.#length += b.length
    return this
  }
}

export function encodeVarint(value: number): Buffer {
  const out: number[] = []
  let v = value
  do {
    let byte = v % 128
    v = Math.floor(v / 128)
    if (v > 0) byte |= 0x80
    out.push(byte)
  } while (v > 0)
  return Buffer.from(out)
}

export function varintSize(value: number): number {
  return value < 128 ? 1 : value < 16_384 ? 2 : value < 2_097_152 ? 3 : 4
}

/** Writes a variable byte integer into `buf` at `at`; returns the position after it. */
export function writeVarint(buf: Buffer, at: number, value: number): number {
  let v = value
  let pos = at
  do {
    let byte = v % 128
    v = Math.floor(v / 128)
    if (v > 0) byte |= 0x80
    buf[pos++] = byte
  } while (v > 0)
  return pos
}
