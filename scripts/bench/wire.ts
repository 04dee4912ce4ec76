import { generate, parser, type Packet } from 'mqtt-packet';

/**
 * MQTT 3.1.1 and 5.0 wire helpers for the load generator.
 *
 * Outgoing packets are built once with mqtt-packet's `generate` and then copied, so the
 * generator spends its CPU on the socket and not on encoding. Incoming packets go through a
 * fixed-header scanner instead of mqtt-packet's parser: a full parse allocates an object per
 * PUBLISH, and at a few hundred thousand deliveries per second on a 2-core box that would make
 * the generator, not the broker, the thing being measured. Only the CONNACK, once per client,
 * is worth a full parse.
 */

/** MQTT control packet types (high nibble of the first byte). */
export const PacketType = {
  connack: 2,
  publish: 3,
  puback: 4,
  suback: 9,
  pingresp: 13,
} as const;

/** Protocol level in CONNECT: 4 = MQTT 3.1.1, which all three brokers speak; 5 = MQTT 5.0. */
export type ProtocolVersion = 4 | 5;

/** MQTT 5 reason codes from 0x80 up are failures; below are successes (0x10 = no subscribers). */
export const FIRST_FAILURE_REASON = 0x80;

/** What MQTT 5 assumes when the CONNACK carries no Receive Maximum: no limit worth the name. */
export const DEFAULT_RECEIVE_MAXIMUM = 65535;

/** Long enough that no broker expects a PINGREQ during a bench, short of "never" (0). */
export const KEEPALIVE_SECONDS = 600;

/**
 * `clean` false asks for a persistent session (3.1.1 Clean Session 0); the bench only does that
 * at 3.1.1, where no Session Expiry Interval is needed to keep it.
 */
export function connectPacket(clientId: string, version: ProtocolVersion, clean = true): Buffer {
  // No properties: mqtt-packet writes the empty property block a v5 CONNECT needs.
  return generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: version,
    clientId,
    clean,
    keepalive: KEEPALIVE_SECONDS,
  });
}

/** DISCONNECT, valid at both protocol levels (v5: remaining length 0 means reason code 0). */
export const DISCONNECT_PACKET: Buffer = Buffer.from([0xe0, 0x00]);

export function subscribePacket(filter: string, qos: 0 | 1, messageId: number, version: ProtocolVersion): Buffer {
  // v5 adds an empty property block and uses the QoS byte as the options byte (all other options 0).
  return generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic: filter, qos }] }, { protocolVersion: version });
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

export function publishTemplate(topic: string, payload: Buffer, qos: 0 | 1, version: ProtocolVersion): PublishTemplate {
  const bytes = generate(
    { cmd: 'publish', topic, payload, qos, dup: false, retain: false, ...(qos === 1 ? { messageId: 1 } : {}) },
    { protocolVersion: version },
  );
  // Counted from the front: in v5 a property block sits between the identifier and the payload.
  const fixedHeader = bytes.length - remainingLength(bytes);
  const idOffset = qos === 0 ? -1 : fixedHeader + 2 + Buffer.byteLength(topic);
  return { bytes, idOffset, payloadOffset: bytes.length - payload.length };
}

/** Remaining length of the single packet in `packet`, which must be complete. */
function remainingLength(packet: Buffer): number {
  if (!decodeVarint(packet, 1, packet.length)) throw new MalformedFrameError('truncated fixed header');
  return varint.value;
}

/**
 * PUBACK for packet identifier `id`, written into `target` at `offset` (4 bytes). Also a valid
 * MQTT 5 PUBACK: remaining length 2 means reason code 0 and no properties.
 */
export function writePuback(target: Buffer, offset: number, id: number): void {
  target[offset] = 0x40;
  target[offset + 1] = 0x02;
  target.writeUInt16BE(id, offset + 2);
}

/** A CONNACK's return code (3.1.1) or reason code (5.0), and in v5 the broker's Receive Maximum. */
export interface Connack {
  readonly code: number;
  readonly receiveMaximum: number;
  /** The broker kept a session for this client id (Session Present flag). */
  readonly sessionPresent: boolean;
}

/** Reads the CONNACK body `buf[start, start + length)` handed over by {@link FrameReader}. */
export function parseConnack(buf: Buffer, start: number, length: number, version: ProtocolVersion): Connack {
  if (length < 2) throw new MalformedFrameError(`CONNACK of ${length} bytes`);
  const code = buf.readUInt8(start + 1);
  const sessionPresent = (buf.readUInt8(start) & 0x01) === 1;
  if (version === 4 || code !== 0 || length === 2) {
    return { code, receiveMaximum: DEFAULT_RECEIVE_MAXIMUM, sessionPresent };
  }
  // mqtt-packet wants the whole packet, fixed header included.
  const header = Buffer.from([PacketType.connack << 4]);
  const packet = Buffer.concat([header, encodeVarint(length), buf.subarray(start, start + length)]);
  let parsed: Packet | undefined;
  let error: unknown;
  const v5 = parser({ protocolVersion: 5 });
  v5.on('packet', (decoded: Packet) => (parsed = decoded));
  v5.on('error', (err: unknown) => (error = err));
  // Synchronous: 'packet' or 'error' has fired by the time parse() returns.
  v5.parse(packet);
  if (parsed?.cmd !== 'connack') {
    throw new MalformedFrameError(`unparsable MQTT 5 CONNACK${error instanceof Error ? `: ${error.message}` : ''}`);
  }
  return { code, receiveMaximum: parsed.properties?.receiveMaximum ?? DEFAULT_RECEIVE_MAXIMUM, sessionPresent };
}

/** Refusals a bench is likely to meet; 3.1.1 return codes first, then their MQTT 5 reason codes. */
const CONNACK_REFUSALS: ReadonlyMap<number, string> = new Map([
  [0x01, 'unacceptable protocol version'],
  [0x02, 'identifier rejected'],
  [0x03, 'server unavailable'],
  [0x05, 'not authorized'],
  [0x80, 'unspecified error'],
  [0x81, 'malformed packet'],
  [0x82, 'protocol error'],
  [0x84, 'unsupported protocol version'],
  [0x85, 'client identifier not valid'],
  [0x87, 'not authorized'],
  [0x88, 'server unavailable'],
  [0x89, 'server busy'],
]);

/** "MQTT 5 CONNECT: CONNACK reason code 0x84 (unsupported protocol version)". */
export function describeConnackCode(code: number, version: ProtocolVersion): string {
  const hex = `0x${code.toString(16).padStart(2, '0')}`;
  // 3.1.1 refusals are 1-5, MQTT 5 ones 0x80 and up: the same number means nothing in the other.
  const meaning = (version === 4) === code < 0x80 ? CONNACK_REFUSALS.get(code) : undefined;
  return (
    `${version === 5 ? 'MQTT 5' : 'MQTT 3.1.1'} CONNECT: CONNACK ${version === 5 ? 'reason' : 'return'} code ` +
    `${hex}${meaning === undefined ? '' : ` (${meaning})`}`
  );
}

function encodeVarint(value: number): Buffer {
  const out: number[] = [];
  do {
    const byte = value % 128;
    value = Math.floor(value / 128);
    out.push(value > 0 ? byte | 0x80 : byte);
  } while (value > 0);
  return Buffer.from(out);
}

/**
 * The last variable byte integer {@link decodeVarint} read. One reused object because the
 * subscriber decodes a property length per delivered PUBLISH and must not allocate there.
 */
const varint = { value: 0, bytes: 0 };

/**
 * Decodes the variable byte integer at `offset` into {@link varint}. Returns false if `end`
 * cuts it short; throws if it runs past the 4 bytes MQTT allows.
 */
function decodeVarint(buf: Buffer, offset: number, end: number): boolean {
  let value = 0;
  let multiplier = 1;
  for (let n = 0; n < 4; n++) {
    if (offset + n >= end) return false;
    const byte = buf.readUInt8(offset + n);
    value += (byte & 0x7f) * multiplier;
    multiplier *= 128;
    if ((byte & 0x80) === 0) {
      varint.value = value;
      varint.bytes = n + 1;
      return true;
    }
  }
  throw new MalformedFrameError('variable byte integer longer than 4 bytes');
}

/**
 * Offset just past the MQTT 5 property block (length varint + properties) at `offset`, or -1
 * if the block runs past `end`. The bench sends no properties, but a broker may add some to
 * what it delivers, so nothing after a property block sits at a fixed position.
 */
export function skipProperties(buf: Buffer, offset: number, end: number): number {
  if (!decodeVarint(buf, offset, end)) return -1;
  const next = offset + varint.bytes + varint.value;
  return next <= end ? next : -1;
}

/** The packet identifier the last {@link publishPayload} read; 0 for QoS 0. Reused: no allocation per PUBLISH. */
export const lastPublish = { packetId: 0 };

/**
 * Reads the PUBLISH body `buf[start, start + length)` with fixed-header `flags`: sets
 * {@link lastPublish}.packetId and returns the offset of the payload in `buf`, or -1 if a v5
 * property block runs past the end (the packet id is read even then, so it can be acknowledged).
 */
export function publishPayload(flags: number, buf: Buffer, start: number, length: number, version: ProtocolVersion): number {
  let offset = start + 2 + buf.readUInt16BE(start);
  lastPublish.packetId = 0;
  if (((flags >> 1) & 0x03) > 0) {
    lastPublish.packetId = buf.readUInt16BE(offset);
    offset += 2;
  }
  return version === 5 ? skipProperties(buf, offset, start + length) : offset;
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
      if (!decodeVarint(buf, offset + 1, end)) break;
      const cursor = offset + 1 + varint.bytes;
      const remaining = varint.value;
      if (cursor + remaining > end) break;
      this.#onFrame(first >> 4, first & 0x0f, buf, cursor, remaining);
      offset = cursor + remaining;
    }
    // Copy the tail: `chunk` may be a slice of a pooled buffer that the stream reuses.
    if (offset < end) this.#pending = Buffer.from(buf.subarray(offset));
  }
}
