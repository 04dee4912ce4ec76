import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  parseParentMessage,
  type ChildMessage,
  type IdleJob,
  type LoadJob,
  type ParentMessage,
  type ThroughputJob,
  type ThroughputResult,
} from './load-protocol.js';
import {
  FrameReader,
  PacketType,
  connectPacket,
  publishTemplate,
  subscribePacket,
  writePuback,
  type FrameHandler,
  type PublishTemplate,
} from './wire.js';

/**
 * Load-generator child process. Forked by bench.ts once per run so that every broker meets a
 * generator with a fresh heap, and so that the generator never shares a process (or an event
 * loop) with the broker it measures. Speaks raw MQTT 3.1.1 over `node:net`: the same bytes for
 * every broker.
 */

const HOST = '127.0.0.1';
const HANDSHAKE_TIMEOUT_MS = 15_000;
/** Clients connected concurrently while setting up a run. */
const SETUP_BATCH = 50;
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

/** Connects, sends CONNECT and resolves once a CONNACK with return code 0 arrives. */
function openClient(port: number, clientId: string, timeoutMs: number, handlers: ClientHandlers): Promise<Socket> {
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
      if (type !== PacketType.connack || length < 2) {
        fail(new Error(`expected CONNACK, got packet type ${type}`));
        return;
      }
      const returnCode = buf.readUInt8(start + 1);
      if (returnCode !== 0) {
        fail(new Error(`CONNACK return code ${returnCode}`));
        return;
      }
      connected = true;
      clearTimeout(timer);
      resolve(socket);
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        socket.destroy(err instanceof Error ? err : new Error(String(err)));
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
    socket.once('connect', () => socket.write(connectPacket(clientId)));
  });
}

/** Rejects after `ms`; clears its timer either way so it cannot hold the process open. */
async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
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
const STAMP_BYTES = 8;

function stamp(target: Buffer, payloadOffset: number, publisher: number, seq: number): void {
  target.writeUInt32BE(publisher, payloadOffset);
  target.writeUInt32BE(seq, payloadOffset + 4);
}

/** Shared by every client of a run; plain fields because they are bumped per packet. */
class Counters {
  delivered = 0;
  anomalies = 0;
  /** Sequence numbers at or below one already seen by the same subscriber. */
  outOfOrder = 0;
  /** Sequence numbers skipped between two that arrived. */
  missing = 0;
  unexpectedCloses = 0;
  stopping = false;
}

async function openSubscriber(
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
  const socket = await openClient(job.port, clientId, HANDSHAKE_TIMEOUT_MS, {
    onFrame: (type, flags, buf, start, length) => {
      if (type === PacketType.publish) {
        const qos = (flags >> 1) & 0x03;
        let header = 2 + buf.readUInt16BE(start);
        if (qos > 0) {
          acks.push(buf.readUInt16BE(start + header));
          header += 2;
        }
        counters.delivered++;
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
        onSuback?.(buf.readUInt8(start + 2));
      }
    },
    afterChunk: (sock) => {
      if (acks.length === 0) return;
      // One write for all PUBACKs a chunk caused: a syscall per PUBACK would cap the subscriber.
      const out = Buffer.allocUnsafe(acks.length * 4);
      for (let i = 0; i < acks.length; i++) writePuback(out, i * 4, acks[i] ?? 0);
      acks.length = 0;
      sock.write(out);
    },
    onClose: () => {
      if (!counters.stopping) counters.unexpectedCloses++;
    },
  });
  socket.write(subscribePacket(filter, job.qos, 1));
  const granted = await withTimeout(subacked, HANDSHAKE_TIMEOUT_MS, 'no SUBACK');
  if (granted !== job.qos) {
    socket.destroy();
    throw new Error(`SUBACK granted ${granted} for a QoS ${job.qos} subscription`);
  }
  return socket;
}

interface Publisher {
  readonly socket: Socket;
  /** QoS 0: PUBLISHes accepted by write(); QoS 1: PUBLISHes acknowledged. */
  count(): number;
  start(): void;
  stop(): void;
}

/** Writes chunks of PUBLISHes until write() reports a full buffer, then waits for 'drain'. */
async function openQos0Publisher(
  job: ThroughputJob,
  index: number,
  clientId: string,
  topic: string,
  counters: Counters,
): Promise<Publisher> {
  const template = publishTemplate(topic, Buffer.alloc(job.payloadBytes, 0x61), 0);
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
  const socket = await openClient(job.port, clientId, HANDSHAKE_TIMEOUT_MS, {
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
    count: () => written,
    start: pump,
    stop: () => {
      stopped = true;
    },
  };
}

/** Keeps `job.window` PUBLISHes unacknowledged; each PUBACK releases one more. */
async function openQos1Publisher(
  job: ThroughputJob,
  index: number,
  clientId: string,
  topic: string,
  counters: Counters,
): Promise<Publisher> {
  const template: PublishTemplate = publishTemplate(topic, Buffer.alloc(job.payloadBytes, 0x61), 1);
  const size = template.bytes.length;
  const inflight = new Uint8Array(65536);
  let nextId = 1;
  let seq = 0;
  let credits = job.window;
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
    if (stopped || credits === 0 || sock.destroyed) return;
    const out = Buffer.allocUnsafe(credits * size);
    for (let i = 0; i < credits; i++) {
      const id = allocateId();
      inflight[id] = 1;
      template.bytes.copy(out, i * size);
      out.writeUInt16BE(id, i * size + template.idOffset);
      stamp(out, i * size + template.payloadOffset, index, seq++);
    }
    credits = 0;
    sock.write(out);
  };
  const socket = await openClient(job.port, clientId, HANDSHAKE_TIMEOUT_MS, {
    onFrame: (type, _flags, buf, start, length) => {
      if (type !== PacketType.puback || length < 2) return;
      const id = buf.readUInt16BE(start);
      if (inflight[id] === 1) {
        inflight[id] = 0;
        credits++;
        acked++;
      } else {
        counters.anomalies++;
      }
    },
    afterChunk: fill,
    onClose: () => {
      if (!counters.stopping) counters.unexpectedCloses++;
    },
  });
  return {
    socket,
    count: () => acked,
    start: () => fill(socket),
    stop: () => {
      stopped = true;
    },
  };
}

async function inBatches<T>(count: number, batch: number, open: (index: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let first = 0; first < count; first += batch) {
    const indexes = Array.from({ length: Math.min(batch, count - first) }, (_, k) => first + k);
    out.push(...(await Promise.all(indexes.map(open))));
  }
  return out;
}

function cpuMicros(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

async function runThroughput(job: ThroughputJob): Promise<ThroughputResult> {
  if (job.payloadBytes < STAMP_BYTES) throw new Error(`payload must be at least ${STAMP_BYTES} bytes`);
  const counters = new Counters();
  const prefix = `bench/${job.tag}`;
  const sockets: Socket[] = [];
  try {
    sockets.push(
      ...(await inBatches(job.subscribers, SETUP_BATCH, (i) =>
        openSubscriber(job, `${job.tag}-s${i}`, `${prefix}/+`, counters),
      )),
    );
    const open = job.qos === 0 ? openQos0Publisher : openQos1Publisher;
    const publishers = await inBatches(job.publishers, SETUP_BATCH, (i) =>
      open(job, i, `${job.tag}-p${i}`, `${prefix}/p${i}`, counters),
    );
    sockets.push(...publishers.map((p) => p.socket));
    const published = (): number => publishers.reduce((sum, p) => sum + p.count(), 0);

    for (const p of publishers) p.start();
    await sleep(job.warmupMs);

    send({ type: 'window-start' });
    const t0 = performance.now();
    const cpu0 = cpuMicros();
    const delivered0 = counters.delivered;
    const published0 = published();
    const samples: number[] = [];
    let sliceStart = t0;
    let sliceDelivered = delivered0;
    const sampler = setInterval(() => {
      const now = performance.now();
      samples.push(((counters.delivered - sliceDelivered) * 1000) / (now - sliceStart));
      sliceStart = now;
      sliceDelivered = counters.delivered;
    }, 1000);
    await sleep(job.measureMs);
    clearInterval(sampler);
    const elapsedMs = performance.now() - t0;
    const cpu1 = cpuMicros();
    const delivered1 = counters.delivered;
    const published1 = published();
    send({ type: 'window-end' });

    counters.stopping = true;
    for (const p of publishers) p.stop();
    return {
      deliveredPerSec: ((delivered1 - delivered0) * 1000) / elapsedMs,
      publishedPerSec: ((published1 - published0) * 1000) / elapsedMs,
      samplesPerSec: samples,
      loadCpuPercent: ((cpu1 - cpu0) / 1000 / elapsedMs) * 100,
      measuredMs: elapsedMs,
      unexpectedCloses: counters.unexpectedCloses,
      anomalies: counters.anomalies,
      receivedTotal: counters.delivered,
      outOfOrder: counters.outOfOrder,
      missing: counters.missing,
    };
  } finally {
    counters.stopping = true;
    for (const s of sockets) s.destroy();
  }
}

async function runIdle(job: IdleJob): Promise<void> {
  const sockets: Socket[] = [];
  let failed = 0;
  let dropped = 0;
  let stopping = false;
  let serial = 0;
  const tag = `idle-${process.pid}`;
  try {
    for (const target of job.steps) {
      const missing = Math.max(0, target - (sockets.length - dropped));
      for (let first = 0; first < missing; first += job.batchSize) {
        const size = Math.min(job.batchSize, missing - first);
        const results = await Promise.allSettled(
          Array.from({ length: size }, () =>
            openClient(job.port, `${tag}-${serial++}`, job.connectTimeoutMs, {
              onFrame: () => undefined,
              onClose: () => {
                if (!stopping) dropped++;
              },
            }),
          ),
        );
        for (const r of results) {
          if (r.status === 'fulfilled') sockets.push(r.value);
          else failed++;
        }
      }
      send({ type: 'idle-step', step: { target, connected: sockets.length - dropped, failed, dropped } });
      const reply = await nextMessage();
      if (reply.type !== 'continue') throw new Error(`expected 'continue', got '${reply.type}'`);
    }
  } finally {
    stopping = true;
    for (const s of sockets) s.destroy();
  }
}

const inbox: ParentMessage[] = [];
const waiters: ((msg: ParentMessage) => void)[] = [];

function nextMessage(): Promise<ParentMessage> {
  const queued = inbox.shift();
  if (queued !== undefined) return Promise.resolve(queued);
  return new Promise((resolve) => waiters.push(resolve));
}

function send(msg: ChildMessage): void {
  process.send?.(msg);
}

async function main(): Promise<void> {
  if (process.send === undefined) {
    throw new Error('load.js is started by bench.js over an IPC channel, not by hand');
  }
  let finished = false;
  // The parent died or gave up on us: don't linger holding thousands of sockets.
  process.on('disconnect', () => {
    if (!finished) process.exit(1);
  });
  process.on('message', (raw: unknown) => {
    const msg = parseParentMessage(raw);
    if (msg === undefined) return;
    const waiter = waiters.shift();
    if (waiter !== undefined) waiter(msg);
    else inbox.push(msg);
  });

  const first = await nextMessage();
  if (first.type !== 'job') throw new Error(`expected a job, got '${first.type}'`);
  const job: LoadJob = first.job;
  let last: ChildMessage;
  try {
    if (job.kind === 'throughput') last = { type: 'result', result: await runThroughput(job) };
    else {
      await runIdle(job);
      last = { type: 'done' };
    }
  } catch (err) {
    last = { type: 'error', message: err instanceof Error ? err.message : String(err) };
  }
  finished = true;
  // Disconnect only once the last message is on the wire, or the parent may never see it.
  process.send(last, undefined, undefined, () => process.disconnect());
}

await main();
