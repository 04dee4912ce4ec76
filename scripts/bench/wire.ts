import { generate } from 'mqtt-packet';

/**
 * MQTT 3.1.1 wire helpers for the load generator.
 *
 * Outgoing packets are built once with mqtt-packet's `generate` and then copied, so the
 * generator spends its CPU on the socket and not on encoding. Incoming packets go through a
 * fixed-header scanner instead of mqtt-packet's parser: a full parse allocates an object per
 * PUBLISH, and at a few hundred thousand deliveries per second on a 2-core box that would make
 * the generator, not the broker, the thing being measured.
 */

/** MQTT control packet types (high nibble of the first byte). */
export const PacketType = {
  connack: 2,
  publish: 3,
  puback: 4,
  suback: 9,
  pingresp: 13,
} as const;

/** Protocol level 4 = MQTT 3.1.1, which all three brokers speak. */
const PROTOCOL_VERSION = 4;

/** Long enough that no broker expects a PINGREQ during a bench, short of "never" (0). */
export const KEEPALIVE_SECONDS = 600;

export function connectPacket(clientId: string): Buffer {
  return generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: PROTOCOL_VERSION,
    clientId,
    clean: true,
    keepalive: KEEPALIVE_SECONDS,
  });
}

export function subscribePacket(filter: string, qos: 0 | 1, messageId: number): Buffer {
  return generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic: filter, qos }] });
}

/**
 * One PUBLISH. For QoS 1 the packet identifier is a placeholder; callers patch it in at
 * {@link PublishTemplate.idOffset} for each copy.
 */
export interface PublishTemplate {
  readonly bytes: Buffer;
  /** Offset of the 2-byte packet identifier, or -1 for QoS 0. */
  readonly idOffset: number;
  /** Offset of the first payload byte. */
  readonly payloadOffset: number;
}

export function publishTemplate(topic: string, payload: Buffer, qos: 0 | 1): PublishTemplate {
  const bytes = generate({
    cmd: 'publish',
    topic,
    payload,
    qos,
    dup: false,
    retain: false,
    ...(qos === 1 ? { messageId: 1 } : {}),
  });
  const payloadOffset = bytes.length - payload.length;
  // The identifier sits right before the payload in a 3.1.1 PUBLISH.
  return { bytes, idOffset: qos === 0 ? -1 : payloadOffset - 2, payloadOffset };
}

/** PUBACK for packet identifier `id`, written into `target` at `offset` (4 bytes). */
export function writePuback(target: Buffer, offset: number, id: number): void {
  target[offset] = 0x40;
  target[offset + 1] = 0x02;
  target.writeUInt16BE(id, offset + 2);
}

/**
 * Receives one complete control packet: its type and flags nibbles and the bounds of its
 * variable header + payload inside `buf`. `buf` is only valid during the call.
 */
export type FrameHandler = (type: number, flags: number, buf: Buffer, start: number, length: number) => void;

/** Thrown when the remaining-length field is longer than the 4 bytes MQTT allows. */
export class MalformedFrameError extends Error {}

/**
 * Splits a TCP byte stream into MQTT control packets by reading only the fixed header. Keeps
 * the tail of an incomplete packet until the next chunk arrives.
 */
export class FrameReader {
  readonly #onFrame: FrameHandler;
  #pending: Buffer | undefined;

  constructor(onFrame: FrameHandler) {
    this.#onFrame = onFrame;
  }

  push(chunk: Buffer): void {
    const buf = this.#pending === undefined ? chunk : Buffer.concat([this.#pending, chunk]);
    this.#pending = undefined;
    const end = buf.length;
    let offset = 0;
    while (end - offset >= 2) {
      const first = buf.readUInt8(offset);
      let remaining = 0;
      let multiplier = 1;
      let cursor = offset + 1;
      let complete = false;
      for (let n = 0; n < 4 && cursor < end; n++) {
        const byte = buf.readUInt8(cursor++);
        remaining += (byte & 0x7f) * multiplier;
        multiplier *= 128;
        if ((byte & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (cursor - offset > 4) throw new MalformedFrameError('remaining length longer than 4 bytes');
        break;
      }
      if (cursor + remaining > end) break;
      this.#onFrame(first >> 4, first & 0x0f, buf, cursor, remaining);
      offset = cursor + remaining;
    }
    // Copy the tail: `chunk` may be a slice of a pooled buffer that the stream reuses.
    if (offset < end) this.#pending = Buffer.from(buf.subarray(offset));
  }
}
