import { parser as createParser, type IPublishPacket, type Packet, type Parser } from 'mqtt-packet'
import { ProtocolError } from './protocol-error.js'
import type { ProtocolVersion, QoS } from './types.js'
import { ByteReader, bodyStart } from './v5/reader.js'

export type Decoded = { packet: Packet; error?: undefined } | { packet?: undefined; error: Error }

/**
 * Decodes whole 3.1 / 3.1.1 packets. PUBLISH and its acks, nearly all the traffic, are read by
 * hand (as the MQTT 5 decoder reads them): mqtt-packet's streaming parser costs about twice as
 * much per packet (880 against 420 ns here), most of it in its debug calls and buffer list.
 *
 * Everything else goes to mqtt-packet. The framer only hands over complete packets and
 * `parse()` is synchronous, so a parser is idle between calls and one per protocol version can
 * serve every connection: a connection costs no parser of its own (about a kilobyte each, which
 * adds up at thousands of idle clients).
 */
export class Decoder {
  readonly #parsers = new Map<ProtocolVersion, Parser>()
  #packet: Packet | undefined
  #error: Error | undefined

  decode(bytes: Buffer, version: ProtocolVersion): Decoded {
    const type = (bytes[0] as number) >> 4
    if (type >= 3 && type <= 7) {
      try {
        return { packet: type === 3 ? publish(bytes) : ack(bytes, type) }
      } catch (err) {
        return { error: err as Error }
      }
    }
    const parser = this.#parsers.get(version) ?? this.#create(version)
    this.#packet = undefined
    this.#error = undefined
    const left = parser.parse(bytes)
    const packet = this.#packet as Packet | undefined
    const error = this.#error as Error | undefined
    if (error !== undefined || packet === undefined || left !== 0) {
      // A parser that failed, or stopped short of the frame, may hold partial state: replace it.
      this.#parsers.delete(version)
      return { error: error ?? new Error(packet === undefined ? 'incomplete packet' : 'bytes left after the packet') }
    }
    return { packet }
  }

  #create(version: ProtocolVersion): Parser {
    const p = createParser({ protocolVersion: version })
    p.on('packet', (packet: Packet) => {
      this.#packet = packet
    })
    p.on('error', (err: Error) => {
      this.#error = err
    })
    this.#parsers.set(version, p)
    return p
  }
}

/** A 3.1 / 3.1.1 PUBLISH: topic, packet id for QoS 1 and 2, payload. */
function publish(raw: Buffer): IPublishPacket {
  const flags = (raw[0] as number) & 0x0f
  const qos = (flags >> 1) & 0x03
  // QoS 3 is malformed [MQTT-3.3.1-4].
  if (qos === 3) throw new ProtocolError('PUBLISH with QoS 3', 0x81, 'MQTT-3.3.1-4')
  const r = new ByteReader(raw, bodyStart(raw), raw.length)
  // Topic names are well-formed UTF-8 without U+0000 [MQTT-1.5.3-1] [MQTT-1.5.3-2].
  const topic = r.string('topic name')
  const messageId = qos > 0 ? r.u16('packet identifier') : undefined
  return { cmd: 'publish', topic, qos: qos as QoS, dup: (flags & 0x08) !== 0, retain: (flags & 0x01) !== 0, messageId, payload: r.rest() }
}

/** PUBACK, PUBREC, PUBREL, PUBCOMP: exactly a packet id [MQTT-3.4.2-1], with fixed flags [MQTT-2.2.2-2]. */
function ack(raw: Buffer, type: number): Packet {
  const flags = (raw[0] as number) & 0x0f
  if (flags !== (type === 6 ? 2 : 0)) throw new ProtocolError(`packet type ${type} with reserved flags 0x${flags.toString(16)}`, 0x81, 'MQTT-2.2.2-2')
  if (raw.length !== 4) throw new ProtocolError(`acknowledgement of ${raw.length} bytes, expected 4`, 0x81)
  const messageId = raw.readUInt16BE(2)
  const cmd = type === 4 ? 'puback' : type === 5 ? 'pubrec' : type === 6 ? 'pubrel' : 'pubcomp'
  return { cmd, messageId }
}
