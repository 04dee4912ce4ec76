import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { runBacklogPhase } from './backlog-load.js';
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
  Counters,
  STAMP_BYTES,
  openClient,
  openQos0Publisher,
  openQos1Publisher,
  openSubscriber,
} from './clients.js';
import { DEFAULT_RECEIVE_MAXIMUM } from './wire.js';

/**
 * Load-generator child process. Forked by bench.ts once per run so that every broker meets a
 * generator with a fresh heap, and so that the generator never shares a process (or an event
 * loop) with the broker it measures. Speaks raw MQTT 3.1.1 or 5.0 over `node:net` (clients.ts):
 * the same bytes for every broker.
 */

/** Clients connected concurrently while setting up a run. */
const SETUP_BATCH = 50;

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
      refusedAcks: counters.refusedAcks,
      receiveMaximum: publishers.reduce((min, p) => Math.min(min, p.receiveMaximum), DEFAULT_RECEIVE_MAXIMUM),
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
            // Idle RSS is a 3.1.1 measurement: a bare session is what it prices.
            openClient(job.port, `${tag}-${serial++}`, 4, job.connectTimeoutMs, {
              onFrame: () => undefined,
              onClose: () => {
                if (!stopping) dropped++;
              },
            }),
          ),
        );
        for (const r of results) {
          if (r.status === 'fulfilled') sockets.push(r.value.socket);
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
    else if (job.kind === 'backlog') last = { type: 'backlog-result', result: await runBacklogPhase(job) };
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
