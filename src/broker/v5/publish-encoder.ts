import type { Message, QoS } from '../types.js'
import { PropertyWriter, varintSize, writeVarint } from './properties.js'

/** What differs between deliveries of one message to v5 clients. */
export interface Delivery5 {
  readonly qos: QoS
  readonly packetId: number | undefined
  readonly retain: boolean
  readonly dup: boolean
  /** Seconds of Message Expiry Interval left [MQTT-3.3.2-6]; undefined when the message has none. */
  readonly expiry: number | undefined
  /** Topic Alias to send; with `sendTopic` false the topic name is left empty [MQTT-3.3.2-12]. */
  readonly alias: number | undefined
  readonly sendTopic: boolean
  /** Subscription Identifiers of the matching subscriptions [MQTT-3.3.4-3]. */
  readonly subscriptionIds: readonly number[] | undefined
}

/** The parts of a v5 PUBLISH that are the same for every delivery. */
interface Template {
  readonly topicLength: number
  readonly props: Buffer
}

/**
 * Encodes MQTT 5 PUBLISH packets. The forwarded properties are encoded once per message (cached
 * by message) and the payload is shared, so a delivery costs one small head buffer, as on the
 * 3.1.1 path. Messages without properties, the common case, skip the cache: a WeakMap entry per
 * message costs the garbage collector more than writing the topic again.
 */
export class PublishEncoder5 {
  readonly #templates = new WeakMap<Message, Template>()

  /** Size in bytes of the whole packet, to compare with the client's Maximum Packet Size [MQTT-3.1.2-24]. */
  size(message: Message, d: Delivery5): number {
    const rl = this.#remainingLength(this.#template(message), message, d)
    return 1 + varintSize(rl) + rl
  }

  /** The packet as a head and the payload it shares with every other delivery. */
  encode(message: Message, d: Delivery5): [Buffer, Buffer] {
    const t = this.#template(message)
    const propsLength = perDeliveryLength(d) + t.props.length
    const rl = this.#remainingLength(t, message, d)
    const topicLength = d.sendTopic ? t.topicLength : 0
    const head = Buffer.allocUnsafe(1 + varintSize(rl) + rl - message.payload.length)
    let at = 0
    head[at++] = 0x30 | (d.dup ? 0x08 : 0) | (d.qos << 1) | (d.retain ? 0x01 : 0)
    at = writeVarint(head, at, rl)
    head.writeUInt16BE(topicLength, at)
    at += 2
    if (d.sendTopic) at += head.write(message.topic, at, 'utf8')
    if (d.qos > 0) {
      head.writeUInt16BE(d.packetId ?? 0, at)
      at += 2
    }
    at = writeVarint(head, at, propsLength)
    // Per-delivery properties are written in place: this runs once per message per subscriber.
    if (d.expiry !== undefined) {
      head[at++] = 0x02
      head.writeUInt32BE(d.expiry, at)
      at += 4
    }
    if (d.alias !== undefined) {
      head[at++] = 0x23
      head.writeUInt16BE(d.alias, at)
      at += 2
    }
    for (const id of d.subscriptionIds ?? []) {
      head[at++] = 0x0b
      at = writeVarint(head, at, id)
    }
    t.props.copy(head, at)
    return [head, message.payload]
  }

  #remainingLength(t: Template, message: Message, d: Delivery5): number {
    const propsLength = perDeliveryLength(d) + t.props.length
    return 2 + (d.sendTopic ? t.topicLength : 0) + (d.qos > 0 ? 2 : 0) + varintSize(propsLength) + propsLength + message.payload.length
  }

  #template(message: Message): Template {
    if (message.properties === undefined) return { topicLength: Buffer.byteLength(message.topic, 'utf8'), props: EMPTY }
    let t = this.#templates.get(message)
    if (t === undefined) {
      t = { topicLength: Buffer.byteLength(message.topic, 'utf8'), props: forwardedProps(message) }
      this.#templates.set(message, t)
    }
    return t
  }
}

/** The properties passed on unchanged, User Properties in the publisher's order [MQTT-3.3.2-18]. */
function forwardedProps(message: Message): Buffer {
  const p = message.properties
  if (p === undefined) return EMPTY
  const w = new PropertyWriter()
  if (p.payloadFormatIndicator !== undefined) w.byte(0x01, p.payloadFormatIndicator)
  if (p.contentType !== undefined) w.string(0x03, p.contentType)
  if (p.responseTopic !== undefined) w.string(0x08, p.responseTopic)
  if (p.correlationData !== undefined) w.binary(0x09, p.correlationData)
  for (const [name, value] of p.userProperties ?? []) w.pair(0x26, name, value)
  return w.length === 0 ? EMPTY : w.bytes()
}

function perDeliveryLength(d: Delivery5): number {
  let n = 0
  if (d.expiry !== undefined) n += 5
  if (d.alias !== undefined) n += 3
  for (const id of d.subscriptionIds ?? []) n += 1 + varintSize(id)
  return n
}

const EMPTY = Buffer.alloc(0)
