import { performance } from 'node:perf_hooks';
import { SerialPort } from 'serialport';
import { OutpostLinkDecoder } from '../../src/serial/codecs/outpost-link-decoder.js';
import { encodeFrame, type FieldSpec } from '../../src/serial/codecs/outpost-link.js';
import { publishPayload } from './wire.js';

/**
 * The two ends of the serial run that live in the bench process (serial.ts): the device writing
 * outpost-link frames into the pty, and what the MQTT subscriber makes of the readings.
 */

export const DEVICE_ID = 'bench-1';
/** Where Outpost's default mapping publishes the device's readings. */
export const READING_TOPIC = `sensors/${DEVICE_ID}`;
/** On the wire, COBS and delimiter included: 30 decoded bytes (3 header + 25 body + 2 CRC). */
export const FRAME_BYTES = 32;

const FIELDS: FieldSpec[] = [
  { fieldId: 1, type: 'uint32', name: 'seq', unit: '' },
  { fieldId: 2, type: 'float32', name: 'temperature', unit: '°C' },
  { fieldId: 3, type: 'float32', name: 'humidity', unit: '%' },
  { fieldId: 4, type: 'string', name: 'state', unit: '' },
];

/** `seq` first, so that it leads the JSON payload and the subscriber reads it without JSON.parse. */
export function dataFrame(linkSeq: number, seq: number): Buffer {
  const wire = encodeFrame({
    type: 'data',
    seq: linkSeq,
    values: [
      { fieldId: 1, type: 'uint32', value: seq },
      { fieldId: 2, type: 'float32', value: 20 + (seq % 100) / 10 },
      { fieldId: 3, type: 'float32', value: 40 + (seq % 200) / 10 },
      { fieldId: 4, type: 'string', value: 'idle' },
    ],
  });
  if (wire.length !== FRAME_BYTES) throw new Error(`DATA frame is ${wire.length} bytes on the wire, expected ${FRAME_BYTES}`);
  return wire;
}

/** performance.now() per sequence number; NaN where nothing happened yet. */
export class Times {
  #data = new Float64Array(1 << 16).fill(Number.NaN);

  get(i: number): number {
    return this.#data[i] ?? Number.NaN;
  }

  set(i: number, at: number): void {
    if (i >= this.#data.length) {
      const grown = new Float64Array(Math.max(i + 1, this.#data.length * 2)).fill(Number.NaN);
      grown.set(this.#data);
      this.#data = grown;
    }
    this.#data[i] = at;
  }
}

/** The far end of the pty: announces itself, sends readings, acknowledges commands. */
export class Device {
  readonly sentAt = new Times();
  /** The next reading's `seq` field; the frame header's seq is the link's own u8 counter. */
  next = 0;
  readonly #port: SerialPort;
  readonly #decoder = new OutpostLinkDecoder();
  #linkSeq = 0;

  constructor(port: SerialPort) {
    this.#port = port;
    port.on('data', (chunk: Buffer) => this.#onData(chunk));
  }

  static async open(path: string): Promise<Device> {
    // A small write buffer keeps the unpaced latency about the pty and Outpost, not this queue.
    const port = new SerialPort({ path, baudRate: 115200, autoOpen: false, highWaterMark: 4096 });
    await new Promise<void>((resolve, reject) => port.open((err) => (err === null ? resolve() : reject(err))));
    return new Device(port);
  }

  get port(): SerialPort {
    return this.#port;
  }

  /** A 0x00 first (PROTOCOL.md: ends whatever half-frame the receiver holds), then HELLO. */
  hello(): void {
    const frame = encodeFrame({ type: 'hello', seq: this.#link(), deviceId: DEVICE_ID, firmwareVersion: 'bench', fields: FIELDS });
    this.#port.write(Buffer.concat([Buffer.of(0), frame]));
  }

  /** `count` readings in one write; false when the port's buffer is full (wait for 'drain'). */
  send(count: number): boolean {
    const frames: Buffer[] = [];
    const at = performance.now();
    for (let i = 0; i < count; i++) {
      this.sentAt.set(this.next, at);
      frames.push(dataFrame(this.#link(), this.next++));
    }
    return this.#port.write(Buffer.concat(frames, count * FRAME_BYTES));
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.#port.isOpen ? this.#port.close(() => resolve()) : resolve()));
  }

  #link(): number {
    const seq = this.#linkSeq;
    this.#linkSeq = (seq + 1) % 256;
    return seq;
  }

  #onData(chunk: Buffer): void {
    for (const e of this.#decoder.push(chunk)) {
      if (e.kind !== 'frame' || e.frame.type !== 'cmd') continue;
      // Outpost asks for a HELLO when it missed ours; any command is acknowledged.
      if (e.frame.name === '$hello') this.hello();
      this.#port.write(encodeFrame({ type: 'ack', seq: this.#link(), cmdSeq: e.frame.seq }));
    }
  }
}

/** What the subscriber saw. */
export class Inbox {
  readonly receivedAt = new Times();
  received = 0;
  duplicates = 0;
  anomalies = 0;
  /** Last payload per topic other than the readings (port state, availability, $SYS). */
  readonly latest = new Map<string, string>();

  onPublish(flags: number, buf: Buffer, start: number, length: number): void {
    const at = performance.now();
    const topicEnd = start + 2 + buf.readUInt16BE(start);
    const topic = buf.toString('utf8', start + 2, topicEnd);
    const payload = publishPayload(flags, buf, start, length, 4);
    if (topic !== READING_TOPIC) {
      this.latest.set(topic, buf.toString('utf8', payload, start + length));
      return;
    }
    this.received++;
    const seq = readSeq(buf, payload, start + length);
    if (seq < 0) this.anomalies++;
    else if (!Number.isNaN(this.receivedAt.get(seq))) this.duplicates++;
    else this.receivedAt.set(seq, at);
  }
}

const SEQ_PREFIX = Buffer.from('{"seq":');

/** The digits after `{"seq":` at the start of the JSON payload; -1 if it is not there. */
function readSeq(buf: Buffer, from: number, end: number): number {
  if (end - from <= SEQ_PREFIX.length || buf.compare(SEQ_PREFIX, 0, SEQ_PREFIX.length, from, from + SEQ_PREFIX.length) !== 0) return -1;
  let value = 0;
  let i = from + SEQ_PREFIX.length;
  for (; i < end; i++) {
    const digit = (buf[i] ?? 0) - 0x30;
    if (digit < 0 || digit > 9) break;
    value = value * 10 + digit;
  }
  return i === from + SEQ_PREFIX.length ? -1 : value;
}

