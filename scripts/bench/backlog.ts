import { fork } from 'node:child_process';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BROKER_LABELS,
  backlogDataDir,
  brokerDir,
  startBroker,
  type BrokerName,
  type BrokerPaths,
  type RunningBroker,
} from './brokers.js';
import { stopChild, type Janitor } from './janitor.js';
import { parseChildMessage, type BacklogJob, type BacklogPhaseResult } from './load-protocol.js';
import { PeakRssSampler, readMemory, type MemorySample } from './proc.js';
import { formatRate } from './report.js';
import { cpuMark, cpuPercent, errorMessage, log, waitUntilIdle } from './runner.js';

/**
 * The backlog run: a persistent subscriber goes offline, publishers queue `messages` QoS 1
 * messages for it, the broker is restarted on its data, and the subscriber comes back for them.
 * Measures what an edge box cares about when its consumer is away: publish rate with durable
 * acknowledgements, memory and disk held by the backlog, restart time, drain rate, and loss.
 */

/** `--only` name of the measurement (it queues 100,000 with --quick). */
export const BACKLOG_RUN_ID = 'backlog-1m';

export interface BacklogSettings {
  readonly messages: number;
  readonly publishers: number;
  /** Unacknowledged PUBLISHes per publisher. */
  readonly window: number;
  readonly payloadBytes: number;
  /** Wait before each RSS reading. */
  readonly settleMs: number;
  /**
   * Quiet time before the "with the backlog" and "after the drain" readings: V8 hands back the
   * heap a burst of work grew only after several seconds without allocation.
   */
  readonly quietMs: number;
}

/** Every figure is filled in as the run gets to it; a failed run keeps what it had. */
export interface BacklogFigures {
  /** Spawn to listening on an empty data dir, ms. */
  startupEmptyMs?: number;
  idleRss?: MemorySample;
  publishMs?: number;
  /** PUBACKs per second over the publish phase. */
  publishPerSec?: number;
  brokerCpuPublishPercent?: number;
  generatorCpuPublishPercent?: number;
  peakRssPublishKb?: number;
  /** Broker idle again (CPU) + settleMs, and + quietMs; backlog queued. */
  rssAfterPublishKb?: number;
  backlogRss?: MemorySample;
  diskRunningBytes?: number;
  /** SIGTERM to exit, and how it exited. */
  shutdownMs?: number;
  shutdownExit?: string;
  diskStoppedBytes?: number;
  /** Spawn to listening / to its ready log line, on the data dir holding the backlog, ms. */
  startupListenMs?: number;
  startupReadyLineMs?: number;
  restartRss?: MemorySample;
  drain?: BacklogPhaseResult;
  drainPerSec?: number;
  /** Sequence numbers that never arrived. */
  missing?: number;
  brokerCpuDrainPercent?: number;
  peakRssDrainKb?: number;
  afterDrainRss?: MemorySample;
  diskAfterDrainBytes?: number;
}

export interface BacklogReport {
  readonly name: BrokerName;
  readonly label: string;
  status: 'ok' | 'failed' | 'n/a';
  reason?: string;
  readonly figures: BacklogFigures;
}

export interface BacklogContext {
  readonly janitor: Janitor;
  readonly paths: BrokerPaths;
  readonly loadScript: string;
  readonly settings: BacklogSettings;
}

const CLIENT_ID = 'bench-backlog-sub';
const TOPIC_PREFIX = 'backlog';
/** Nothing acknowledged / delivered for this long ends a phase. */
const STALL_MS = 30_000;
/** Loading a million messages may take Mosquitto a while; the figure says how long. */
const START_TIMEOUT_MS = 300_000;
/** Mosquitto writes its whole database on SIGTERM; let it finish rather than SIGKILL it. */
const STOP_GRACE_MS = 300_000;
const START_POLL_MS = 10;
/** How long after the port opens to wait for the ready log line. */
const READY_LINE_WAIT_MS = 5000;

/** `du -sb`: apparent sizes of every file and directory under `path`. */
export async function diskBytes(path: string): Promise<number> {
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    // LevelDB deletes compacted files while we walk.
    if (err instanceof Error && 'code' in err && err.code === 'ENOENT') return 0;
    throw err;
  }
  if (!st.isDirectory()) return st.size;
  let total = st.size;
  for (const entry of await readdir(path)) total += await diskBytes(join(path, entry));
  return total;
}

/** Runs one phase in a fresh load-generator child; rejects with what went wrong. */
function runPhase(ctx: BacklogContext, broker: RunningBroker, job: BacklogJob, limitMs: number): Promise<BacklogPhaseResult> {
  const child = fork(ctx.loadScript, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  ctx.janitor.track(child);
  return new Promise<BacklogPhaseResult>((resolve, reject) => {
    let settled = false;
    const finish = (result: BacklogPhaseResult | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void stopChild(child, 1000);
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const timer = setTimeout(() => finish(new Error(`${job.phase}: no result within ${limitMs} ms`)), limitMs);
    child.on('message', (raw: unknown) => {
      const msg = parseChildMessage(raw);
      if (msg?.type === 'backlog-result') finish(msg.result);
      else if (msg?.type === 'error') finish(new Error(`${job.phase}: ${msg.message}`));
    });
    child.once('exit', (code, signal) =>
      finish(new Error(`${job.phase}: load generator exited (${signal ?? `code ${String(code)}`})`)),
    );
    void broker.exited.then((why) => finish(new Error(`${job.phase}: broker ${why}`)));
    child.send({ type: 'job', job });
  });
}

function mb(kb: number): string {
  return `${(kb / 1024).toFixed(1)} MB`;
}

/** The whole run against one broker, on one data dir that outlives the restart. */
export async function runBacklog(name: BrokerName, ctx: BacklogContext): Promise<BacklogReport> {
  const report: BacklogReport = { name, label: BROKER_LABELS[name], status: 'ok', figures: {} };
  if (name === 'aedes') {
    // Aedes keeps sessions in memory unless given a persistence module (aedes-persistence-*).
    report.status = 'n/a';
    report.reason = 'no persistence by default';
    log(`[${name}] backlog: skipped, ${report.reason}`);
    return report;
  }
  const s = ctx.settings;
  const f = report.figures;
  const dir = await brokerDir(name, ctx.janitor);
  const data = backlogDataDir(dir);
  const start = (): Promise<RunningBroker> =>
    startBroker(name, ctx.paths, ctx.janitor, START_TIMEOUT_MS, {
      profile: 'backlog',
      dir,
      pollMs: START_POLL_MS,
      stopGraceMs: STOP_GRACE_MS,
    });
  const job = (phase: BacklogJob['phase'], port: number): BacklogJob => ({
    kind: 'backlog',
    phase,
    port,
    clientId: CLIENT_ID,
    filter: `${TOPIC_PREFIX}/#`,
    topicPrefix: TOPIC_PREFIX,
    messages: s.messages,
    publishers: s.publishers,
    payloadBytes: s.payloadBytes,
    window: s.window,
    stallMs: STALL_MS,
  });
  // Generous: the children give up on their own after STALL_MS without progress.
  const phaseLimitMs = 120_000 + s.messages * 2;
  const tag = `[${name}] backlog`;
  let broker: RunningBroker | undefined;
  try {
    broker = await start();
    f.startupEmptyMs = broker.listeningAt - broker.spawnedAt;
    await Promise.race([broker.readyLine, sleep(READY_LINE_WAIT_MS, undefined, { ref: false })]);
    await sleep(s.settleMs);
    f.idleRss = await readMemory(broker.pid);
    log(`${tag}: idle RSS ${mb(f.idleRss.rssKb)}; making the persistent session ...`);
    const made = await runPhase(ctx, broker, job('subscribe', broker.port), 60_000);
    if (made.sessionPresent) throw new Error(`${CLIENT_ID} already had a session on an empty data dir`);

    log(`${tag}: publishing ${s.messages.toLocaleString('en-US')} messages ...`);
    let sampler = new PeakRssSampler(broker.pid, 100);
    let cpu0 = await cpuMark(broker.pid);
    const pub = await runPhase(ctx, broker, job('publish', broker.port), phaseLimitMs);
    f.brokerCpuPublishPercent = cpuPercent(cpu0, await cpuMark(broker.pid));
    f.peakRssPublishKb = await sampler.stop();
    f.publishMs = pub.elapsedMs;
    f.publishPerSec = (pub.acked * 1000) / pub.elapsedMs;
    f.generatorCpuPublishPercent = pub.loadCpuPercent;
    if (pub.refusedAcks > 0) throw new Error(`${pub.refusedAcks} PUBLISHes refused`);

    await waitUntilIdle(broker.pid);
    await sleep(s.settleMs);
    f.rssAfterPublishKb = (await readMemory(broker.pid)).rssKb;
    log(`${tag}: ${formatRate(f.publishPerSec)} msg/s acknowledged; RSS ${mb(f.rssAfterPublishKb)}, quiet ...`);
    await sleep(Math.max(0, s.quietMs - s.settleMs));
    f.backlogRss = await readMemory(broker.pid);
    f.diskRunningBytes = await diskBytes(data);
    log(
      `${tag}: RSS ${mb(f.backlogRss.rssKb)} with the backlog (idle ${mb(f.idleRss.rssKb)}), ` +
        `data dir ${formatRate(f.diskRunningBytes)} B; restarting ...`,
    );

    const stopAt = performance.now();
    await broker.stop();
    f.shutdownMs = performance.now() - stopAt;
    f.shutdownExit = await broker.exited;
    broker = undefined;
    f.diskStoppedBytes = await diskBytes(data);
    broker = await start();
    f.startupListenMs = broker.listeningAt - broker.spawnedAt;
    const ready = await Promise.race([broker.readyLine, sleep(READY_LINE_WAIT_MS, undefined, { ref: false })]);
    if (ready !== undefined) f.startupReadyLineMs = ready - broker.spawnedAt;
    await sleep(s.settleMs);
    f.restartRss = await readMemory(broker.pid);
    log(
      `${tag}: stopped in ${(f.shutdownMs / 1000).toFixed(2)} s (${f.shutdownExit}), listening again after ` +
        `${(f.startupListenMs / 1000).toFixed(2)} s, RSS ${mb(f.restartRss.rssKb)}; draining ...`,
    );

    sampler = new PeakRssSampler(broker.pid, 100);
    cpu0 = await cpuMark(broker.pid);
    const drain = await runPhase(ctx, broker, job('drain', broker.port), phaseLimitMs);
    f.brokerCpuDrainPercent = cpuPercent(cpu0, await cpuMark(broker.pid));
    f.peakRssDrainKb = await sampler.stop();
    f.drain = drain;
    f.drainPerSec = drain.elapsedMs > 0 ? (drain.received * 1000) / drain.elapsedMs : 0;
    f.missing = s.messages - drain.distinct;
    await waitUntilIdle(broker.pid);
    await sleep(s.quietMs);
    f.afterDrainRss = await readMemory(broker.pid);
    f.diskAfterDrainBytes = await diskBytes(data);
    log(
      `${tag}: drained ${drain.distinct.toLocaleString('en-US')} of ${s.messages.toLocaleString('en-US')} at ` +
        `${formatRate(f.drainPerSec)} msg/s; ${f.missing} missing, ${drain.duplicates} duplicates` +
        `${drain.sessionPresent ? '' : ', session NOT present on reconnect'}`,
    );
  } catch (err) {
    report.status = 'failed';
    report.reason = errorMessage(err);
    const line = broker?.failureLine() ?? '';
    log(`${tag}: failed: ${report.reason}${line === '' ? '' : ` (broker said: ${line})`}`);
  } finally {
    await broker?.stop();
    await ctx.janitor.removeDir(dir);
  }
  return report;
}
