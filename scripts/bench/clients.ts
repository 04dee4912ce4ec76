import { randomFillSync } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { ThroughputJob } from './load-protocol.js';
import {
  FIRST_FAILURE_REASON,
  FrameReader,
  PacketType,
  connectPacket,
  describeConnackCode,
  lastPublish,
  parseConnack,
  publishPayload,
  publishTemplate,
  skipProperties,
  subscribePacket,
  writePuback,
  type FrameHandler,
  type ProtocolVersion,
  type PublishTemplate,
} from './wire.js';

/**
 * The raw-socket MQTT clients of the load generator (load.ts): one connection each, at the
 * protocol level the job asks for, the same bytes for every broker.
 */

const HOST = '127.0.0.1';
export const HANDSHAKE_TIMEOUT_MS = 15_000;
/** QoS 0 publishers write this much per `write()`: ~190 PUBLISHes of 64 bytes, one syscall. */
const QOS0_CHUNK_BYTES = 16 * 1024;
/** Yield to the event loop after this many accepted writes so subscribers get to read. */
const MAX_WRITES_PER_TURN = 16;

interface ClientHandlers {
  /** Packets after the CONNACK. */
  readonly onFrame: FrameHandler;
  /** Runs after each TCP chunk is split, to batch the replies it caused into one write. */
  readonly afterChunk?: (socket: Socket) => void;
  /** The connection ended after a successful CONNACK. */
  readonly onClose: () => void;
}

export interface Connection {
  readonly socket: Socket;
  /** QoS 1 PUBLISHes the broker lets this client have unacknowledged (MQTT 5 CONNACK). */
  readonly receiveMaximum: number;
  /** The CONNACK's Session Present flag. */
  readonly sessionPresent: boolean;
}

/**
 * Connects, sends CONNECT and resolves once a CONNACK with return / reason code 0 arrives.
 * `clean` false asks for a persistent session (see {@link connectPacket}).
 */
export function openClient(
  port: number,
  clientId: string,
  version: ProtocolVersion,
  timeoutMs: number,
  handlers: ClientHandlers,
  clean = true,
): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: HOST, port, noDelay: true });
    let connected = false;
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`no CONNACK within ${timeoutMs} ms`)), timeoutMs);
    const reader = new FrameReader((type, flags, buf, start, length) => {
      if (connected) {
        handlers.onFrame(type, flags, buf, start, length);
        return;
      }
      if (type !== PacketType.connack) {
        fail(new Error(`expected CONNACK, got packet type ${type}`));
        return;
      }
      const connack = parseConnack(buf, start, length, version);
      if (connack.code !== 0) {
        fail(new Error(`broker refused the ${describeConnackCode(connack.code, version)}`));
        return;
      }
      connected = true;
      clearTimeout(timer);
      resolve({ socket, receiveMaximum: connack.receiveMaximum, sessionPresent: connack.sessionPresent });
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        if (connected) socket.destroy(error);
        else fail(error);
        return;
      }
      if (connected) handlers.afterChunk?.(socket);
    });
    socket.on('error', (err) => {
      if (!connected) fail(err);
    });
    socket.on('close', () => {
      if (!connected) fail(new Error('connection closed before CONNACK'));
      else handlers.onClose();
    });
    socket.once('connect', () => socket.write(connectPacket(clientId, version, clean)));
  });
}

/** Rejects after `ms`; clears its timer either way so it cannot hold the process open. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Every payload starts with the publisher's index and a per-publisher sequence number (both
 * uint32 BE), so subscribers can tell loss, duplicates and reordering apart from a slow broker.
 */
export const STAMP_BYTES = 8;

function stamp(target: Buffer, payloadOffset: number, publisher: number, seq: number): void {
  target.writeUInt32BE(publisher, payloadOffset);
  target.writeUInt32BE(seq, payloadOffset + 4);
}

/** Shared by every client of a run; plain fields because they are bumped per packet. */
export class Counters {
  delivered = 0;
  anomalies = 0;
  /** MQTT 5 PUBACKs with a failure reason code. */
  refusedAcks = 0;
  /** Sequence numbers at or below one already seen by the same subscriber. */
  outOfOrder = 0;
  /** Sequence numbers skipped between two that arrived. */
  missing = 0;
  unexpectedCloses = 0;
  stopping = false;
}

/** The first return / reason code of the SUBACK body handed over by the FrameReader; -1 if cut short. */
export function subackCode(buf: Buffer, start: number, length: number, version: ProtocolVersion): number {
  // v5: the reason codes follow a property block.
  const codes = version === 5 ? skipProperties(buf, start + 2, start + length) : start + 2;
  return codes >= 0 && codes < start + length ? buf.readUInt8(codes) : -1;
}

/** Sends the PUBACKs one TCP chunk caused in one write (a syscall each would cap a subscriber); empties `acks`. */
export function writePubacks(socket: Socket, acks: number[]): void {
  if (acks.length === 0) return;
  const out = Buffer.allocUnsafe(acks.length * 4);
  for (let i = 0; i < acks.length; i++) writePuback(out, i * 4, acks[i] ?? 0);
  acks.length = 0;
  socket.write(out);
}

export async function openSubscriber(
  job: ThroughputJob,
  clientId: string,
  filter: string,
  counters: Counters,
): Promise<Socket> {
  const acks: number[] = [];
  const lastSeq = new Float64Array(job.publishers).fill(-1);
  let onSuback: ((granted: number) => void) | undefined;
  const subacked = new Promise<number>((resolve) => {
    onSuback = resolve;
  });
  const { socket } = await openClient(job.port, clientId, job.protocol, HANDSHAKE_TIMEOUT_MS, {
    onFrame: (type, flags, buf, start, length) => {
      if (type === PacketType.publish) {
        const payload = publishPayload(flags, buf, start, length, job.protocol);
        if (lastPublish.packetId !== 0) acks.push(lastPublish.packetId);
        counters.delivered++;
        if (payload < 0) {
          counters.anomalies++;
          return;
        }
        const header = payload - start;
        if (length - header !== job.payloadBytes) {
          counters.anomalies++;
          return;
        }
        const publisher = buf.readUInt32BE(start + header);
        const seq = buf.readUInt32BE(start + header + 4);
        const last = lastSeq[publisher];
        if (last === undefined) counters.anomalies++;
        else if (seq <= last) counters.outOfOrder++;
        else {
          counters.missing += seq - last - 1;
          lastSeq[publisher] = seq;
        }
      } else if (type === PacketType.suback && length >= 3) {
        // -1 (never a QoS) if it is cut short.
        onSuback?.(subackCode(buf, start, length, job.protocol));
      }
    },
    afterChunk: (sock) => writePubacks(sock, acks),
    onClose: () => {
      if (!counters.stopping) counters.unexpectedCloses++;
    },
  });
  socket.write(subscribePacket(filter, job.qos, 1, job.protocol));
  const granted = await withTimeout(subacked, HANDSHAKE_TIMEOUT_MS, 'no SUBACK');
  if (granted !== job.qos) {
    socket.destroy();
    throw new Error(`SUBACK returned 0x${granted.toString(16)} for a QoS ${job.qos} subscription`);
  }
  return socket;
}

export interface Publisher {
  readonly socket: Socket;
  /** From the broker's CONNACK; see {@link Connection.receiveMaximum}. */
  readonly receiveMaximum: number;
  /** QoS 0: PUBLISHes accepted by write(); QoS 1: PUBLISHes acknowledged with success. */
  count(): number;
  start(): void;
  stop(): void;
}

/** Writes chunks of PUBLISHes until write() reports a full buffer, then waits for 'drain'. */
export async function openQos0Publisher(
  job: ThroughputJob,
  index: number,
  clientId: string,
  topic: string,
  counters: Counters,
): Promise<Publisher> {
  const template = publishTemplate(topic, Buffer.alloc(job.payloadBytes, 0x61), 0, job.protocol);
  const size = template.bytes.length;
  const perChunk = Math.max(1, Math.floor(QOS0_CHUNK_BYTES / size));
  let seq = 0;
  const nextChunk = (): Buffer => {
    // A fresh buffer per write: queued chunks must not change under the socket.
    const chunk = Buffer.allocUnsafe(perChunk * size);
    for (let i = 0; i < perChunk; i++) {
      template.bytes.copy(chunk, i * size);
      stamp(chunk, i * size + template.payloadOffset, index, seq++);
    }
    return chunk;
  };
  const { socket, receiveMaximum } = await openClient(job.port, clientId, job.protocol, HANDSHAKE_TIMEOUT_MS, {
    onFrame: () => undefined,
    onClose: () => {
      if (!counters.stopping) counters.unexpectedCloses++;
    },
  });
  let written = 0;
  let stopped = false;
  const pump = (): void => {
    for (let i = 0; i < MAX_WRITES_PER_TURN; i++) {
      if (stopped || socket.destroyed) return;
      written += perChunk;
      if (!socket.write(nextChunk())) {
        socket.once('drain', pump);
        return;
      }
    }
    setImmediate(pump);
  };
  return {
    socket,
    receiveMaximum,
    count: () => written,
    start: pump,
    stop: () => {
      stopped = true;
    },
  };
}

/** What a QoS 1 publisher takes from its job. */
export type PublisherJob = Pick<ThroughputJob, 'port' | 'protocol' | 'payloadBytes' | 'window'>;

export interface PublisherOptions {
  /** PUBLISHes to send in all (sequence numbers 0..limit-1); default no end. */
  readonly limit?: number;
  /** Fill each payload after the stamp with fresh random bytes, so a store cannot compress it away. */
  readonly randomPayload?: boolean;
}

/**
 * Keeps `job.window` PUBLISHes unacknowledged (fewer if the broker's Receive Maximum says so);
 * each PUBACK releases one more.
 */
export async function openQos1Publisher(
  job: PublisherJob,
  index: number,
  clientId: string,
  topic: string,
  counters: Counters,
  options: PublisherOptions = {},
): Promise<Publisher> {
  const limit = options.limit ?? Infinity;
  const random = options.randomPayload === true;
  const template: PublishTemplate = publishTemplate(topic, Buffer.alloc(job.payloadBytes, 0x61), 1, job.protocol);
  const size = template.bytes.length;
  const inflight = new Uint8Array(65536);
  let nextId = 1;
  let seq = 0;
  /** PUBLISHes that may go out now; the window is set once the CONNACK says how big it may be. */
  let credits = 0;
  let acked = 0;
  let stopped = false;

  const allocateId = (): number => {
    // Terminates: at most `window` (< 65535) ids are in flight.
    for (;;) {
      const id = nextId;
      nextId = nextId === 65535 ? 1 : nextId + 1;
      if (inflight[id] === 0) return id;
    }
  };
  const fill = (sock: Socket): void => {
    const n = Math.min(credits, limit - seq);
    if (stopped || n <= 0 || sock.destroyed) return;
    const out = Buffer.allocUnsafe(n * size);
    for (let i = 0; i < n; i++) {
      const id = allocateId();
      inflight[id] = 1;
      template.bytes.copy(out, i * size);
      out.writeUInt16BE(id, i * size + template.idOffset);
      stamp(out, i * size + template.payloadOffset, index, seq++);
      if (random) randomFillSync(out, i * size + template.payloadOffset + STAMP_BYTES, job.payloadBytes - STAMP_BYTES);
    }
    credits -= n;
    sock.write(out);
  };
  const { socket, receiveMaximum } = await openClient(job.port, clientId, job.protocol, HANDSHAKE_TIMEOUT_MS, {
    onFrame: (type, _flags, buf, start, length) => {
      if (type !== PacketType.puback || length < 2) return;
      const id = buf.readUInt16BE(start);
      if (inflight[id] !== 1) {
        counters.anomalies++;
        return;
      }
      // A refused PUBLISH still frees its identifier, so the window keeps moving.
      inflight[id] = 0;
      credits++;
      // Remaining length 2 is success in v5 too; only a longer PUBACK carries a reason code.
      if (length > 2 && buf.readUInt8(start + 2) >= FIRST_FAILURE_REASON) counters.refusedAcks++;
      else acked++;
    },
    afterChunk: fill,
    onClose: () => {
      if (!counters.stopping) counters.unexpectedCloses++;
    },
  });
  // An MQTT 5 client must not exceed the broker's Receive Maximum (Mosquitto 2.0 sends its
  // max_inflight_messages, 20). Measured, that cost Mosquitto nothing: it is CPU-bound at 20 too.
  credits = Math.min(job.window, receiveMaximum);
  return {
    socket,
    receiveMaximum,
    count: () => acked,
    start: () => fill(socket),
    stop: () => {
      stopped = true;
    },
  };
}
