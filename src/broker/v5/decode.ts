import type {
  IAuthPacket,
  IConnectPacket,
  IDisconnectPacket,
  IPingreqPacket,
  IPubackPacket,
  IPubcompPacket,
  IPublishPacket,
  IPubrecPacket,
  IPubrelPacket,
  ISubscribePacket,
  ISubscription,
  IUnsubscribePacket,
} from 'mqtt-packet'
import { ProtocolError } from '../protocol-error.js'
import type { QoS } from '../types.js'
import { NO_PROPERTIES, readProperties, type Properties } from './properties.js'
import { ByteReader, bodyStart } from './reader.js'

/**
 * MQTT 5 packets as a server receives them, in mqtt-packet's shapes so the handlers serve both
 * protocol families, plus `props`: the properties as read by properties.ts, in wire order.
 *
 * Why not mqtt-packet's v5 parser: it folds User Properties into an object (losing their order,
 * which a server must keep [MQTT-3.3.2-18]), and it accepts packets the specification calls
 * malformed (bytes left after the last field, reserved option bits). Reading the few packet types
 * a client may send is short, and lets every error carry the reason code the spec gives it.
 */
export type WithProps<P> = P & { props?: Properties }
export type Connect5 = WithProps<IConnectPacket> & { willProps?: Properties }
export type Publish5 = WithProps<IPublishPacket>
export type Ack5 = WithProps<IPubackPacket | IPubrecPacket | IPubrelPacket | IPubcompPacket>
export type Subscribe5 = WithProps<ISubscribePacket>
export type Unsubscribe5 = WithProps<IUnsubscribePacket>
export type Disconnect5 = WithProps<IDisconnectPacket>
export type Auth5 = WithProps<IAuthPacket>
export type Packet5 = Connect5 | Publish5 | Ack5 | Subscribe5 | Unsubscribe5 | IPingreqPacket | Disconnect5 | Auth5

/** Reason codes a client may put in each packet (tables of sections 3.4.2.1 to 3.15.2.1). */
const ACK_CODES = new Set([0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99])
const REL_CODES = new Set([0x00, 0x92])
const DISCONNECT_CODES = new Set([0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99])
const AUTH_CODES = new Set([0x00, 0x18, 0x19])

/** Packet types only a server sends: receiving one is a protocol error [MQTT-2.1.3]. */
const SERVER_ONLY = new Map([[2, 'CONNACK'], [9, 'SUBACK'], [11, 'UNSUBACK'], [13, 'PINGRESP']])

/** Fixed-header flags each type must carry, by type [MQTT-2.1.3-1]; -1 for none (PUBLISH has its own). */
const FLAGS: readonly number[] = [-1, 0, -1, -1, 0, 0, 2, 0, 2, 0, 2, 0, 0, -1, 0, 0]
/** Server-only types whose flags are checked first, as Mosquitto does (its vectors want 0x81 there). */
const FLAGS_FIRST = new Set([9, 11])

/** Decodes one whole packet (as cut by the framer). Throws ProtocolError with the right reason code. */
export function decodeV5(raw: Buffer): Packet5 {
  const first = raw[0] as number
  const type = first >> 4
  const flags = first & 0x0f
  if (type === 3) {
    // PUBLISH, most of the traffic, skips the checks below: none of them concerns it.
    return publish(new ByteReader(raw, bodyStart(raw), raw.length), flags)
  }
  const expected = FLAGS[type] as number
  const badFlags = expected >= 0 && flags !== expected
  if (badFlags && FLAGS_FIRST.has(type)) throw new ProtocolError(`packet type ${type} with reserved flags 0x${flags.toString(16)}`, 0x81, 'MQTT-2.1.3-1')
  const serverOnly = SERVER_ONLY.get(type)
  if (serverOnly !== undefined) throw new ProtocolError(`${serverOnly} is not allowed from a client`, 0x82)
  if (type === 0) throw new ProtocolError('reserved packet type 0', 0x82)
  if (badFlags) throw new ProtocolError(`packet type ${type} with reserved flags 0x${flags.toString(16)}`, 0x81, 'MQTT-2.1.3-1')
  const r = new ByteReader(raw, bodyStart(raw), raw.length)
  let packet: Packet5
  switch (type) {
    case 1:
      packet = connect(r)
      break
    case 4:
    case 5:
    case 6:
    case 7:
      packet = ack(r, type)
      break
    case 8:
      packet = subscribe(r)
      break
    case 10:
      packet = unsubscribe(r)
      break
    case 12:
      packet = { cmd: 'pingreq' }
      break
    case 14:
      packet = disconnect(r)
      break
    default:
      packet = auth(r)
  }
  if (r.remaining !== 0) throw new ProtocolError(`${packet.cmd}: ${r.remaining} bytes after the last field`, 0x81)
  return packet
}

function connect(r: ByteReader): Connect5 {
  // Name and level were checked by the connect preamble before the version was known.
  r.string('protocol name')
  r.u8('protocol level')
  const flags = r.u8('connect flags')
  // Reserved bit 0 must be 0 [MQTT-3.1.2-3].
  if ((flags & 0x01) !== 0) throw new ProtocolError('reserved connect flag set', 0x81, 'MQTT-3.1.2-3')
  const willFlag = (flags & 0x04) !== 0
  const willQos = (flags >> 3) & 0x03
  const willRetain = (flags & 0x20) !== 0
  if (!willFlag && (willQos !== 0 || willRetain)) {
    // Without a will, Will QoS and Will Retain are 0 [MQTT-3.1.2-11] [MQTT-3.1.2-13].
    throw new ProtocolError('will QoS or retain set without a will', 0x81, 'MQTT-3.1.2-11')
  }
  if (willQos === 3) throw new ProtocolError('will QoS 3', 0x81, 'MQTT-3.1.2-12')
  const keepalive = r.u16('keep alive')
  const props = readProperties(r, 'connect')
  const clientId = r.string('client identifier')
  const packet: Connect5 = { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: (flags & 0x02) !== 0, keepalive, clientId, props }
  if (willFlag) {
    packet.willProps = readProperties(r, 'will')
    const topic = r.string('will topic')
    const payload = Buffer.from(r.binary('will payload'))
    packet.will = { topic, payload, qos: willQos as QoS, retain: willRetain }
  }
  if ((flags & 0x80) !== 0) packet.username = r.string('user name')
  if ((flags & 0x40) !== 0) packet.password = Buffer.from(r.binary('password'))
  return packet
}

function publish(r: ByteReader, flags: number): Publish5 {
  const qos = (flags >> 1) & 0x03
  const dup = (flags & 0x08) !== 0
  // QoS 3 is malformed [MQTT-3.3.1-4]; so is DUP on QoS 0 [MQTT-3.3.1-2].
  if (qos === 3) throw new ProtocolError('PUBLISH with QoS 3', 0x81, 'MQTT-3.3.1-4')
  if (qos === 0 && dup) throw new ProtocolError('DUP set on a QoS 0 PUBLISH', 0x81, 'MQTT-3.3.1-2')
  const topic = r.string('topic name')
  let messageId: number | undefined
  if (qos > 0) {
    messageId = r.u16('packet identifier')
    if (messageId === 0) throw new ProtocolError('PUBLISH with packet identifier 0', 0x82, 'MQTT-2.2.1-3')
  }
  const props = readProperties(r, 'publish')
  return { cmd: 'publish', topic, qos: qos as QoS, dup, retain: (flags & 0x01) !== 0, messageId, props, payload: r.rest() }
}

function ack(r: ByteReader, type: number): Ack5 {
  const cmd = type === 4 ? 'puback' : type === 5 ? 'pubrec' : type === 6 ? 'pubrel' : 'pubcomp'
  if (r.remaining === 2) {
    // The usual form, a bare packet id (success): one ack per QoS 1 message, so kept short.
    const messageId = r.u16('packet identifier')
    if (messageId === 0) throw new ProtocolError(`${cmd} with packet identifier 0`, 0x82, 'MQTT-2.2.1-3')
    return { cmd, messageId, reasonCode: 0, props: NO_PROPERTIES }
  }
  const messageId = r.u16('packet identifier')
  if (messageId === 0) throw new ProtocolError(`${cmd} with packet identifier 0`, 0x82, 'MQTT-2.2.1-3')
  // Reason code and properties may be left out when they are 0 and empty (section 3.4.2.1).
  const reasonCode = r.remaining > 0 ? r.u8('reason code') : 0
  const allowed = type === 6 || type === 7 ? REL_CODES : ACK_CODES
  if (!allowed.has(reasonCode)) throw new ProtocolError(`${cmd} with reason code 0x${reasonCode.toString(16)}`, 0x82)
  const props = r.remaining > 0 ? readProperties(r, cmd) : NO_PROPERTIES
  return { cmd, messageId, reasonCode, props }
}

function subscribe(r: ByteReader): Subscribe5 {
  const messageId = r.u16('packet identifier')
  if (messageId === 0) throw new ProtocolError('SUBSCRIBE with packet identifier 0', 0x82, 'MQTT-2.2.1-3')
  const props = readProperties(r, 'subscribe')
  const subscriptions: ISubscription[] = []
  while (r.remaining > 0) {
    const topic = r.string('topic filter')
    const options = r.u8('subscription options')
    const qos = options & 0x03
    const rh = (options >> 4) & 0x03
    // Reserved bits 6-7 make the packet malformed [MQTT-3.8.3-5]. Section 3.8.3.1 calls QoS 3
    // and Retain Handling 3 protocol errors; Mosquitto, whose vectors we pass, answers 0x81 for
    // all three, and either code closes the connection.
    if (qos === 3) throw new ProtocolError('subscription QoS 3', 0x81)
    if (rh === 3) throw new ProtocolError('Retain Handling 3', 0x81)
    if ((options & 0xc0) !== 0) throw new ProtocolError('reserved subscription option bits set', 0x81, 'MQTT-3.8.3-5')
    subscriptions.push({ topic, qos: qos as QoS, nl: (options & 0x04) !== 0, rap: (options & 0x08) !== 0, rh })
  }
  // At least one filter [MQTT-3.8.3-2].
  if (subscriptions.length === 0) throw new ProtocolError('SUBSCRIBE without filters', 0x81, 'MQTT-3.8.3-2')
  return { cmd: 'subscribe', messageId, subscriptions, props }
}

function unsubscribe(r: ByteReader): Unsubscribe5 {
  const messageId = r.u16('packet identifier')
  if (messageId === 0) throw new ProtocolError('UNSUBSCRIBE with packet identifier 0', 0x82, 'MQTT-2.2.1-3')
  const props = readProperties(r, 'unsubscribe')
  const unsubscriptions: string[] = []
  while (r.remaining > 0) unsubscriptions.push(r.string('topic filter'))
  // At least one filter [MQTT-3.10.3-2].
  if (unsubscriptions.length === 0) throw new ProtocolError('UNSUBSCRIBE without filters', 0x81, 'MQTT-3.10.3-2')
  return { cmd: 'unsubscribe', messageId, unsubscriptions, props }
}

function disconnect(r: ByteReader): Disconnect5 {
  const reasonCode = r.remaining > 0 ? r.u8('reason code') : 0
  if (!DISCONNECT_CODES.has(reasonCode)) throw new ProtocolError(`DISCONNECT with reason code 0x${reasonCode.toString(16)}`, 0x82)
  const props = r.remaining > 0 ? readProperties(r, 'disconnect') : NO_PROPERTIES
  return { cmd: 'disconnect', reasonCode, props }
}

function auth(r: ByteReader): Auth5 {
  const reasonCode = r.remaining > 0 ? r.u8('reason code') : 0
  if (!AUTH_CODES.has(reasonCode)) throw new ProtocolError(`AUTH with reason code 0x${reasonCode.toString(16)}`, 0x82)
  const props = r.remaining > 0 ? readProperties(r, 'auth') : NO_PROPERTIES
  return { cmd: 'auth', reasonCode, props }
}
