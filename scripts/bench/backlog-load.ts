import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Counters,
  HANDSHAKE_TIMEOUT_MS,
  STAMP_BYTES,
  openClient,
  openQos1Publisher,
  subackCode,
  withTimeout,
  writePubacks,
} from './clients.js';
import type { BacklogJob, BacklogPhaseResult } from './load-protocol.js';
import { DISCONNECT_PACKET, PacketType, lastPublish, publishPayload, subscribePacket } from './wire.js';

/**
 * The client side of the backlog run (backlog.ts), inside a load-generator child (load.ts): the
 * same raw-socket clients as the throughput runs, plus a subscriber that comes back to a
 * persistent session and checks off every (publisher, sequence number) it is given.
 */

/** Persistent sessions without a Session Expiry Interval: MQTT 3.1.1, which every broker here speaks. */
const PROTOCOL = 4;
const PROGRESS_EVERY_MS = 5000;
const POLL_MS = 5;
/** After the last expected message, how long to keep listening for repeats. */
const LINGER_MS = 500;

const NOTHING: BacklogPhaseResult = {
  elapsedMs: 0,
  acked: 0,
  refusedAcks: 0,
  sessionPresent: false,
  connackMs: 0,
  firstMessageMs: -1,
  received: 0,
  distinct: 0,
  duplicates: 0,
  outOfOrder: 0,
  dupFlag: 0,
  stalled: false,
  anomalies: 0,
  unexpectedCloses: 0,
  loadCpuPercent: 0,
};

export function runBacklogPhase(job: BacklogJob): Promise<BacklogPhaseResult> {
  if (job.payloadBytes < STAMP_BYTES) throw new Error(`payload must be at least ${STAMP_BYTES} bytes`);
  switch (job.phase) {
    case 'subscribe':
      return subscribe(job);
    case 'publish':
      return publish(job);
    case 'drain':
      return drain(job);
  }
}

/** Messages publisher `index` sends: an even share, the first ones taking the remainder. */
function shareOf(job: BacklogJob, index: number): number {
  return Math.floor(job.messages / job.publishers) + (index < job.messages % job.publishers ? 1 : 0);
}

function progress(what: string, done: number, total: number, sinceMs: number): void {
  const rate = (done * 1000) / Math.max(1, performance.now() - sinceMs);
  process.stderr.write(
    `  backlog ${what}: ${done.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} ` +
      `(${Math.round(rate).toLocaleString('en-US')} msg/s so far)\n`,
  );
}

function cpuPercentSince(start: NodeJS.CpuUsage, elapsedMs: number): number {
  const used = process.cpuUsage(start);
  return ((used.user + used.system) / 1000 / Math.max(1, elapsedMs)) * 100;
}

/** Leaves the way a client that means to come back does: DISCONNECT, then close. */
async function disconnect(socket: Socket): Promise<void> {
  if (socket.destroyed) return;
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.end(DISCONNECT_PACKET);
  await withTimeout(closed, HANDSHAKE_TIMEOUT_MS, 'connection still open after DISCONNECT').catch(() =>
    socket.destroy(),
  );
}

/** Creates the persistent session with its QoS 1 subscription, then goes offline. */
async function subscribe(job: BacklogJob): Promise<BacklogPhaseResult> {
  let onSuback: ((code: number) => void) | undefined;
  const subacked = new Promise<number>((resolve) => {
    onSuback = resolve;
  });
  let stopping = false;
  let closes = 0;
  const { socket, sessionPresent } = await openClient(
    job.port,
    job.clientId,
    PROTOCOL,
    HANDSHAKE_TIMEOUT_MS,
    {
      onFrame: (type, _flags, buf, start, length) => {
        if (type === PacketType.suback && length >= 3) onSuback?.(subackCode(buf, start, length, PROTOCOL));
      },
      onClose: () => {
        if (!stopping) closes++;
      },
    },
    false,
  );
  try {
    socket.write(subscribePacket(job.filter, 1, 1, PROTOCOL));
    const granted = await withTimeout(subacked, HANDSHAKE_TIMEOUT_MS, 'no SUBACK');
    if (granted !== 1) throw new Error(`SUBACK returned 0x${granted.toString(16)} for a QoS 1 subscription`);
  } catch (err) {
    socket.destroy();
    throw err;
  }
  stopping = true;
  await disconnect(socket);
  return { ...NOTHING, sessionPresent, unexpectedCloses: closes };
}

/** `job.messages` QoS 1 PUBLISHes, `job.window` in flight per publisher; done at the last PUBACK. */
async function publish(job: BacklogJob): Promise<BacklogPhaseResult> {
  const counters = new Counters();
  const publishers = await Promise.all(
    Array.from({ length: job.publishers }, (_, i) =>
      openQos1Publisher({ ...job, protocol: PROTOCOL }, i, `${job.clientId}-pub${i}`, `${job.topicPrefix}/p${i}`, counters, {
        limit: shareOf(job, i),
        randomPayload: true,
      }),
    ),
  );
  const answered = (): number => publishers.reduce((sum, p) => sum + p.count(), 0) + counters.refusedAcks;
  try {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (const p of publishers) p.start();
    let last = 0;
    let lastChange = t0;
    let lastLog = t0;
    while (answered() < job.messages) {
      await sleep(POLL_MS);
      const now = performance.now();
      const n = answered();
      if (counters.unexpectedCloses > 0) throw new Error(`a publisher's connection closed after ${n} PUBACKs`);
      if (n !== last) {
        last = n;
        lastChange = now;
      } else if (now - lastChange > job.stallMs) {
        throw new Error(`publishing stalled: ${n} of ${job.messages} acknowledged, none for ${job.stallMs} ms`);
      }
      if (now - lastLog >= PROGRESS_EVERY_MS) {
        progress('publish', n, job.messages, t0);
        lastLog = now;
      }
    }
    const elapsedMs = performance.now() - t0;
    return {
      ...NOTHING,
      elapsedMs,
      acked: answered() - counters.refusedAcks,
      refusedAcks: counters.refusedAcks,
      anomalies: counters.anomalies,
      unexpectedCloses: counters.unexpectedCloses,
      loadCpuPercent: cpuPercentSince(cpu0, elapsedMs),
    };
  } finally {
    counters.stopping = true;
    await Promise.all(publishers.map((p) => disconnect(p.socket)));
  }
}

/** Comes back to the session and takes its queue, acknowledging each PUBLISH, ticking off each sequence number. */
async function drain(job: BacklogJob): Promise<BacklogPhaseResult> {
  const seen = Array.from({ length: job.publishers }, (_, i) => new Uint8Array(shareOf(job, i)));
  const lastSeq = new Float64Array(job.publishers).fill(-1);
  const acks: number[] = [];
  const r = { received: 0, distinct: 0, duplicates: 0, outOfOrder: 0, dupFlag: 0, anomalies: 0, closes: 0 };
  let stopping = false;
  let firstAt = -1;
  let lastAt = -1;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const { socket, sessionPresent } = await openClient(
    job.port,
    job.clientId,
    PROTOCOL,
    HANDSHAKE_TIMEOUT_MS,
    {
      onFrame: (type, flags, buf, start, length) => {
        if (type !== PacketType.publish) return;
        const payload = publishPayload(flags, buf, start, length, PROTOCOL);
        if (lastPublish.packetId !== 0) acks.push(lastPublish.packetId);
        r.received++;
        lastAt = performance.now();
        if (firstAt < 0) firstAt = lastAt;
        if ((flags & 0x08) !== 0) r.dupFlag++;
        if (payload < 0 || start + length - payload !== job.payloadBytes) {
          r.anomalies++;
          return;
        }
        const publisher = buf.readUInt32BE(payload);
        const seq = buf.readUInt32BE(payload + 4);
        const marks = seen[publisher];
        if (marks === undefined || seq >= marks.length) {
          r.anomalies++;
          return;
        }
        if (marks[seq] === 1) {
          r.duplicates++;
          return;
        }
        marks[seq] = 1;
        r.distinct++;
        if (seq < (lastSeq[publisher] ?? -1)) r.outOfOrder++;
        else lastSeq[publisher] = seq;
      },
      afterChunk: (sock) => writePubacks(sock, acks),
      onClose: () => {
        if (!stopping) r.closes++;
      },
    },
    false,
  );
  const connackMs = performance.now() - t0;
  let stalled = false;
  let lastLog = t0;
  while (r.distinct < job.messages && r.closes === 0) {
    await sleep(POLL_MS * 10);
    const now = performance.now();
    if (now - Math.max(lastAt, t0 + connackMs) > job.stallMs) {
      stalled = true;
      break;
    }
    if (now - lastLog >= PROGRESS_EVERY_MS) {
      progress('drain', r.distinct, job.messages, t0);
      lastLog = now;
    }
  }
  const elapsedMs = (lastAt < 0 ? performance.now() : lastAt) - t0;
  const loadCpuPercent = cpuPercentSince(cpu0, elapsedMs);
  // Repeats after the last new message still count, and the broker gets the last PUBACKs.
  await sleep(LINGER_MS);
  stopping = true;
  await disconnect(socket);
  return {
    ...NOTHING,
    elapsedMs,
    sessionPresent,
    connackMs,
    firstMessageMs: firstAt < 0 ? -1 : firstAt - t0,
    received: r.received,
    distinct: r.distinct,
    duplicates: r.duplicates,
    outOfOrder: r.outOfOrder,
    dupFlag: r.dupFlag,
    stalled,
    anomalies: r.anomalies,
    unexpectedCloses: r.closes,
    loadCpuPercent,
  };
}
