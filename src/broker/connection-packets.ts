import { generate, type Packet } from 'mqtt-packet'
import type { Message, ProtocolVersion, QoS } from './types.js'
import { encodeVarint } from './v5/properties.js'
import type { Delivery5, PublishEncoder5 } from './v5/publish-encoder.js'
import type { OutboundAliases } from './v5/topic-aliases.js'

// The packets a connection encodes under its client's Maximum Packet Size (0 = the protocol
// limit); Connection writes them.

/**
 * Encodes one packet with the connection's protocol version. Undefined when it is larger than the
 * client's Maximum Packet Size even without its Reason String, and so must not be sent
 * [MQTT-3.1.2-24] [MQTT-3.1.2-25].
 */
export function encodePacket(packet: Packet, version: ProtocolVersion, maxPacketSize: number): Buffer | undefined {
  let bytes = generate(packet, { protocolVersion: version })
  const props = 'properties' in packet ? (packet.properties as { reasonString?: string } | undefined) : undefined
  if (maxPacketSize > 0 && bytes.length > maxPacketSize && props?.reasonString !== undefined) {
    bytes = generate({ ...packet, properties: { ...props, reasonString: undefined } } as Packet, { protocolVersion: version })
  }
  return maxPacketSize > 0 && bytes.length > maxPacketSize ? undefined : bytes
}

/**
 * A packet made of `body` (packet id and/or reason code) and, when there is one, a Reason String
 * property; without it the property length is left out too, as sections 3.4.2.2 and 3.14.2.2
 * allow, which is what clients (and Mosquitto's test vectors) expect. A Reason String that would
 * make the packet larger than the client accepts is dropped [MQTT-3.1.2-25].
 */
export function reasonPacket(type: number, body: Buffer, reason: string | undefined, maxPacketSize: number): Buffer {
  const bare = Buffer.concat([Buffer.from([type]), encodeVarint(body.length), body])
  if (reason === undefined) return bare
  const text = Buffer.from(reason, 'utf8')
  const props = Buffer.concat([Buffer.from([0x1f, text.length >> 8, text.length & 0xff]), text])
  const rest = Buffer.concat([body, encodeVarint(props.length), props])
  const full = Buffer.concat([Buffer.from([type]), encodeVarint(rest.length), rest])
  return maxPacketSize > 0 && full.length > maxPacketSize ? bare : full
}

/**
 * The MQTT 5 PUBLISH, as a head and the shared payload: the expiry left [MQTT-3.3.2-6], a topic
 * alias when the client takes them (`aliases`), the subscription identifiers; undefined, and not
 * to be sent, when larger than the client's Maximum Packet Size [MQTT-3.1.2-25] or expired.
 */
export function encodePublish5(
  encoder: PublishEncoder5,
  aliases: OutboundAliases | undefined,
  maxPacketSize: number,
  message: Message,
  qos: QoS,
  packetId: number | undefined,
  retain: boolean,
  dup: boolean,
  subscriptionIds: readonly number[] | undefined,
): [Buffer, Buffer] | undefined {
  let expiry: number | undefined
  if (message.expiresAt !== undefined) {
    const left = message.expiresAt - Date.now()
    // A resend (DUP) continues a delivery that had started, which expiry does not stop
    // (section 3.3.2.3.3); it goes out with no lifetime left.
    if (left <= 0 && !dup) return undefined
    expiry = left <= 0 ? 0 : Math.ceil(left / 1000)
  }
  const known = aliases?.peek(message.topic)
  const d: { -readonly [K in keyof Delivery5]: Delivery5[K] } = {
    qos,
    packetId,
    retain,
    dup,
    expiry,
    // Sized as sent: with an alias (new or known) when the client takes them.
    alias: aliases === undefined ? undefined : (known ?? 1),
    sendTopic: known === undefined,
    subscriptionIds,
  }
  if (maxPacketSize > 0 && encoder.size(message, d) > maxPacketSize) return undefined
  if (aliases !== undefined) {
    const taken = aliases.take(message.topic)
    d.alias = taken.alias
    d.sendTopic = taken.sendTopic
  }
  return encoder.encode(message, d)
}
