import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { diskBytes } from './backlog.js';
import { stopChild, type Janitor } from './janitor.js';
import { parseChildMessage, type BacklogJob, type BacklogPhaseResult } from './load-protocol.js';
import { PeakRssSampler, readMemory, type MemorySample } from './proc.js';
import { formatRate } from './report.js';
import { cpuMark, cpuPercent, log, waitUntilIdle, type CpuMark } from './runner.js';
import { Consumer, epochNow, type ConsumerTally } from './upstream-clients.js';
import type { CloudMosquitto } from './upstream-procs.js';

/**
 * The two phases of every upstream measurement, whichever broker bridges: fill (publish a
 * backlog locally while the cloud is down, then read memory and disk) and drain (start the cloud
 * with the consumer attached and time until every message has arrived).
 */

/** The bridging broker under test, as the phases see it. */
export interface Subject {
  readonly pid: number;
  /** Its local MQTT listener. */
  readonly port: number;
  /** Why it cannot go on (it exited), or undefined. */
  dead(): string | undefined;
  /** Messages it reports waiting for the upstream; undefined if it does not say. */
  backlog(): number | undefined;
  /** Where it keeps the backlog on disk; undefined if it keeps it in memory. */
  readonly dataDir: string | undefined;
  /** Epoch ms its bridge said it connected, at or after `since`; undefined if it does not say precisely. */
  connectedAt(since: number): Promise<number | undefined>;
  /** Seconds its own "drained" report gives, after `since`; undefined if it has none. */
  drainedSeconds(since: number): Promise<number | undefined>;
}

export interface DrainFigures {
  readonly messages: number;
  /** Cloud process start → the bridge's "connected" report. */
  readonly reconnectMs?: number;
  /** Connected → the last message's arrival at the consumer, and the rate over that. */
  readonly drainMs?: number;
  readonly drainPerSec?: number;
  /** Connected → the first arrival. */
  readonly firstMessageMs?: number;
  /** First to last arrival: the rate once messages flow. */
  readonly flowMs: number;
  readonly flowPerSec: number;
  /** From the broker's own drain report (Outpost's "outbox drained": first send to last PUBACK). */
  readonly ownPerSec?: number;
  readonly missing: number;
  readonly tally: ConsumerTally;
  /** Nothing new reached the consumer for {@link PhaseOptions.stallMs}. */
  readonly stalled: boolean;
  /** % of one core each, from the first arrival to the last. */
  readonly subjectCpuPercent: number;
  readonly cloudCpuPercent: number;
  /** This process: the consumer (and the RSS sampler). */
  readonly benchCpuPercent: number;
  readonly peakRssKb: number;
}

export interface QueueFigures {
  readonly messages: number;
  idleRss?: MemorySample;
  publishPerSec?: number;
  publishMs?: number;
  cpuPublishPercent?: number;
  peakRssPublishKb?: number;
  /** The backlog the broker reported once publishing ended (Outpost's `$SYS/.../backlog/messages`). */
  reportedBacklog?: number;
  backlogRss?: MemorySample;
  diskBytes?: number;
  drain?: DrainFigures;
  /** After the drain and a quiet spell. */
  afterDrainRss?: MemorySample;
}

export interface PhaseOptions {
  readonly janitor: Janitor;
  readonly loadScript: string;
  readonly topicPrefix: string;
  readonly consumerId: string;
  readonly publishers: number;
  readonly window: number;
  readonly payloadBytes: number;
  readonly settleMs: number;
  readonly quietMs: number;
  /** Nothing new for this long ends a phase. */
  readonly stallMs: number;
}

const POLL_MS = 100;
/** After the last new message, how long to keep counting repeats. */
const LINGER_MS = 500;

const mb = (kb: number): string => `${(kb / 1024).toFixed(1)} MB`;

/** Messages publisher `index` sends: as backlog-load.ts splits them. */
function shares(messages: number, publishers: number): number[] {
  return Array.from({ length: publishers }, (_, i) => Math.floor(messages / publishers) + (i < messages % publishers ? 1 : 0));
}

async function until(check: () => boolean, what: string, ms: number, dead: () => string | undefined): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    const why = dead();
    if (why !== undefined) throw new Error(`${what}: ${why}`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(20);
  }
}

/** The load generator's backlog `publish` phase, to `<topicPrefix>/p<i>` on the subject. */
function publish(o: PhaseOptions, subject: Subject, messages: number): Promise<BacklogPhaseResult> {
  const job: BacklogJob = {
    kind: 'backlog', phase: 'publish', port: subject.port, clientId: 'bench-upstream', filter: `${o.topicPrefix}/#`,
    topicPrefix: o.topicPrefix, messages, publishers: o.publishers, payloadBytes: o.payloadBytes, window: o.window, stallMs: o.stallMs,
  };
  const child = fork(o.loadScript, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  o.janitor.track(child);
  return new Promise<BacklogPhaseResult>((resolve, reject) => {
    let settled = false;
    const finish = (result: BacklogPhaseResult | Error): void => {
      if (settled) return;
      settled = true;
      clearInterval(watch);
      void stopChild(child, 1000);
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const watch = setInterval(() => {
      const why = subject.dead();
      if (why !== undefined) finish(new Error(`publishing: ${why}`));
    }, 200);
    child.on('message', (raw: unknown) => {
      const msg = parseChildMessage(raw);
      if (msg?.type === 'backlog-result') finish(msg.result);
      else if (msg?.type === 'error') finish(new Error(`publishing: ${msg.message}`));
    });
    child.once('exit', (code, signal) => finish(new Error(`publishing: load generator exited (${signal ?? `code ${String(code)}`})`)));
    child.send({ type: 'job', job });
  });
}

/** Publishes the backlog with the cloud away and reads what it costs; `quiet`: wait quietMs before the RSS reading. */
export async function fill(o: PhaseOptions, subject: Subject, f: QueueFigures, tag: string, quiet: boolean): Promise<void> {
  await waitUntilIdle(subject.pid);
  await sleep(o.settleMs);
  f.idleRss = await readMemory(subject.pid);
  log(`${tag}: idle RSS ${mb(f.idleRss.rssKb)}, the cloud down; publishing ${f.messages.toLocaleString('en-US')} messages ...`);
  const sampler = new PeakRssSampler(subject.pid, 100);
  const cpu0 = await cpuMark(subject.pid);
  const pub = await publish(o, subject, f.messages);
  f.cpuPublishPercent = cpuPercent(cpu0, await cpuMark(subject.pid));
  f.peakRssPublishKb = await sampler.stop();
  f.publishMs = pub.elapsedMs;
  f.publishPerSec = (pub.acked * 1000) / pub.elapsedMs;
  if (pub.refusedAcks > 0 || pub.acked !== f.messages) throw new Error(`${pub.acked} of ${f.messages} PUBLISHes acknowledged`);
  if (subject.backlog() !== undefined) {
    // Every PUBACK came after the message was queued, so the next report shows them all.
    await until(() => (subject.backlog() ?? 0) >= f.messages, `the reported backlog reaching ${f.messages}`, 10_000, () => subject.dead());
    f.reportedBacklog = subject.backlog();
  }
  await waitUntilIdle(subject.pid);
  await sleep(quiet ? o.quietMs : o.settleMs);
  f.backlogRss = await readMemory(subject.pid);
  if (subject.dataDir !== undefined) f.diskBytes = await diskBytes(subject.dataDir);
  log(
    `${tag}: ${formatRate(f.publishPerSec)} msg/s acknowledged; RSS ${mb(f.backlogRss.rssKb)} with the backlog ` +
      `(idle ${mb(f.idleRss.rssKb)})${f.diskBytes === undefined ? '' : `, data dir ${formatRate(f.diskBytes)} B`}`,
  );
}

/** Waits until every message reached the consumer; true if it stopped because nothing new came for stallMs. */
async function untilDrained(o: PhaseOptions, t: ConsumerTally, messages: number, subject: Subject, cloud: CloudMosquitto): Promise<boolean> {
  let lastDistinct = 0;
  let lastChange = Date.now();
  while (t.distinct < messages && !t.closed) {
    await sleep(POLL_MS);
    const why = subject.dead() ?? cloud.dead();
    if (why !== undefined) throw new Error(`draining: ${why}`);
    if (t.distinct !== lastDistinct) {
      lastDistinct = t.distinct;
      lastChange = Date.now();
    } else if (Date.now() - lastChange > o.stallMs) {
      return true;
    }
  }
  return false;
}

interface CpuMarks {
  readonly subject: CpuMark;
  readonly cloud: CpuMark;
  /** This process, and when. */
  readonly bench: NodeJS.CpuUsage;
  readonly at: number;
}

async function cpuMarks(subjectPid: number, cloudPid: number): Promise<CpuMarks> {
  const bench = process.cpuUsage();
  const at = performance.now();
  const [subject, cloud] = await Promise.all([cpuMark(subjectPid), cpuMark(cloudPid)]);
  return { subject, cloud, bench, at };
}

function benchPercent(from: CpuMarks, to: CpuMarks): number {
  const us = to.bench.user + to.bench.system - from.bench.user - from.bench.system;
  return (us / 1000 / Math.max(1, to.at - from.at)) * 100;
}

/** Brings the cloud back with the consumer attached and times the drain of `messages`. */
export async function drain(o: PhaseOptions, subject: Subject, cloud: CloudMosquitto, messages: number, tag: string): Promise<DrainFigures> {
  const consumer = new Consumer(shares(messages, o.publishers), o.payloadBytes);
  const sampler = new PeakRssSampler(subject.pid, 100);
  const cloudStartedAt = epochNow();
  await cloud.start();
  const cloudPid = cloud.pid ?? 0;
  // CPU from the first arrival to the last: a bridge's reconnect delay is no part of its drain.
  let firstMarks: Promise<CpuMarks> | undefined;
  let lastMarks: Promise<CpuMarks> | undefined;
  consumer.onFirstMessage = () => {
    firstMarks = cpuMarks(subject.pid, cloudPid);
  };
  consumer.onAllArrived = () => {
    lastMarks = cpuMarks(subject.pid, cloudPid);
  };
  const detach = await consumer.attach(cloud.port, o.consumerId);
  const t = consumer.tally;
  let stalled: boolean;
  try {
    stalled = await untilDrained(o, t, messages, subject, cloud);
  } catch (err) {
    detach();
    throw err;
  }
  const to = (await lastMarks) ?? (await cpuMarks(subject.pid, cloudPid));
  const start = (await firstMarks) ?? to;
  await sleep(LINGER_MS);
  detach();
  const connected = await subject.connectedAt(Math.floor(cloudStartedAt));
  const ownSeconds = stalled || connected === undefined ? undefined : await subject.drainedSeconds(connected);
  const end = t.lastNewAt > 0 ? t.lastNewAt : t.latestAt;
  const flowMs = end - t.firstAt;
  const drainMs = connected === undefined ? undefined : end - connected;
  const figures: DrainFigures = {
    messages,
    ...(connected === undefined || drainMs === undefined
      ? {}
      : {
          reconnectMs: connected - cloudStartedAt,
          drainMs,
          drainPerSec: (t.distinct * 1000) / Math.max(1, drainMs),
          firstMessageMs: t.firstAt - connected,
        }),
    flowMs,
    flowPerSec: (t.distinct * 1000) / Math.max(1, flowMs),
    ...(ownSeconds === undefined ? {} : { ownPerSec: messages / Math.max(ownSeconds, 0.001) }),
    missing: messages - t.distinct,
    tally: { ...t },
    stalled,
    subjectCpuPercent: cpuPercent(start.subject, to.subject),
    cloudCpuPercent: cpuPercent(start.cloud, to.cloud),
    benchCpuPercent: benchPercent(start, to),
    peakRssKb: await sampler.stop(),
  };
  const ms = drainMs ?? flowMs;
  log(
    `${tag}: drained ${t.distinct.toLocaleString('en-US')} of ${messages.toLocaleString('en-US')} in ${(ms / 1000).toFixed(2)} s ` +
      `${drainMs === undefined ? 'from the first arrival' : 'from the bridge connecting'} = ${formatRate((t.distinct * 1000) / Math.max(1, ms))} msg/s ` +
      `(CPU: bridge ${Math.round(figures.subjectCpuPercent)}%, cloud ${Math.round(figures.cloudCpuPercent)}%, consumer ${Math.round(figures.benchCpuPercent)}%); ` +
      `${figures.missing} missing, ${t.duplicates} duplicates, ${t.outOfOrder} out of order`,
  );
  return figures;
}

/** After a drain: idle again, a quiet spell, RSS. */
export async function afterDrain(o: PhaseOptions, subject: Subject, f: QueueFigures): Promise<void> {
  await waitUntilIdle(subject.pid);
  await sleep(o.quietMs);
  f.afterDrainRss = await readMemory(subject.pid);
}
