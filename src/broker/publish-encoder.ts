import { generate } from 'mqtt-packet'
import type { Message, QoS } from './types.js'

/**
 * Encodes MQTT 3.1 / 3.1.1 PUBLISH packets, once per message however many clients get it
 * (the v5 counterpart is v5/publish-encoder.ts).
 */
export class PublishEncoder4 {
  readonly #qos0 = new WeakMap<Message, Buffer>()
  readonly #templates = new WeakMap<Message, { qos: QoS; bytes: Buffer; headLength: number }>()

  /** A QoS 0 PUBLISH without the retain flag: the same bytes for every subscriber. */
  qos0(message: Message): Buffer {
    let bytes = this.#qos0.get(message)
    if (bytes === undefined) {
      bytes = generate({ cmd: 'publish', topic: message.topic, payload: message.payload, qos: 0, retain: false, dup: false }, { protocolVersion: 4 })
      this.#qos0.set(message, bytes)
    }
    return bytes
  }

  /**
   * Any PUBLISH as a small per-delivery head (fixed header, topic, packet id) and the payload
   * shared by every delivery. The bytes come from mqtt-packet once per message; each delivery
   * copies only the head and patches flags and packet id.
   */
  encode(message: Message, qos: QoS, packetId: number | undefined, retain: boolean, dup: boolean): [Buffer, Buffer] {
    let template = this.#templates.get(message)
    if (template === undefined || template.qos !== qos) {
      const packet = { cmd: 'publish' as const, topic: message.topic, payload: message.payload, qos, retain: false, dup: false, messageId: qos > 0 ? 1 : undefined }
      const bytes = generate(packet, { protocolVersion: 4 })
      template = { qos, bytes, headLength: bytes.length - message.payload.length }
      this.#templates.set(message, template)
    }
    const head = Buffer.allocUnsafe(template.headLength)
    template.bytes.copy(head, 0, 0, template.headLength)
    head[0] = 0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 0x01 : 0)
    if (packetId !== undefined) head.writeUInt16BE(packetId, template.headLength - 2)
    return [head, template.bytes.subarray(template.headLength)]
  }
}
