import type { Message, QoS } from './types.js'
import { varintSize, writeVarint } from './v5/properties.js'

/**
 * Encodes MQTT 3.1 / 3.1.1 PUBLISH packets by hand (the v5 counterpart is
 * v5/publish-encoder.ts): a small head per delivery (fixed header, topic, packet id) and the
 * payload shared by every delivery. mqtt-packet's generate() cost a full encode per message.
 */
export class PublishEncoder4 {
  readonly #qos0 = new WeakMap<Message, Buffer>()

  /** A QoS 0 PUBLISH without the retain flag: one buffer for every subscriber, made once. */
  qos0(message: Message): Buffer {
    let bytes = this.#qos0.get(message)
    if (bytes === undefined) {
      const [head, payload] = this.encode(message, 0, undefined, false, false)
      bytes = Buffer.concat([head, payload])
      this.#qos0.set(message, bytes)
    }
    return bytes
  }

  /** Any PUBLISH, as its head and the payload it shares with every other delivery. */
  encode(message: Message, qos: QoS, packetId: number | undefined, retain: boolean, dup: boolean): [Buffer, Buffer] {
    const payload = message.payload
    const topicLength = Buffer.byteLength(message.topic, 'utf8')
    const rl = 2 + topicLength + (qos > 0 ? 2 : 0) + payload.length
    const head = Buffer.allocUnsafe(1 + varintSize(rl) + rl - payload.length)
    head[0] = 0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 0x01 : 0)
    let at = writeVarint(head, 1, rl)
    head.writeUInt16BE(topicLength, at)
    at += 2
    at += head.write(message.topic, at, 'utf8')
    if (qos > 0) head.writeUInt16BE(packetId ?? 0, at)
    return [head, payload]
  }
}
