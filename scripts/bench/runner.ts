import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BROKER_LABELS,
  BrokerStartError,
  SPEAKS_MQTT5,
  startBroker,
  type BrokerName,
  type BrokerPaths,
  type RunningBroker,
} from './brokers.js';
import { stopChild, type Janitor } from './janitor.js';
import { parseChildMessage, type IdleJob, type ThroughputJob } from './load-protocol.js';
import { PeakRssSampler, clockTicksPerSecond, readCpuTicks, readMemory, readSystemTicks } from './proc.js';
import { formatRate, type BrokerReport, type IdleOutcome, type RunOutcome, type RunSpec } from './report.js';

/**
 * The measurement sequence for one broker: throughput runs on one broker process (load from a
 * forked load.js per run), then idle RSS on a second, fresh process.
 */

/** How long and how hard each measurement runs. */
export interface Settings {
  readonly quick: boolean;
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly payloadBytes: number;
  /** Unacknowledged QoS 1 PUBLISHes per publisher. */
  readonly window: number;
  /** Whether to measure idle RSS at all (`--only` can leave it out). */
  readonly idleRss: boolean;
  /** Idle client counts after the 0-client reading. */
  readonly idleSteps: readonly number[];
  /** Wait before each idle RSS reading, for the broker to finish allocating and collecting. */
  readonly settleMs: number;
  /** Concurrent connection attempts while opening idle clients: below every listen backlog. */
  readonly idleBatch: number;
  readonly readyTimeoutMs: number;
  /** Attempts per throughput run on the same broker process; the table shows their median. */
  readonly repeat: number;
}

/** Progress goes to stderr; stdout carries only the final tables. */
export function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export interface CpuMark {
  /** Broker process ticks. */
  readonly ticks: number;
  /** Whole-machine busy ticks. */
  readonly systemBusy: number;
  readonly at: number;
}

export async function cpuMark(pid: number): Promise<CpuMark> {
  const at = performance.now();
  const [ticks, system] = await Promise.all([readCpuTicks(pid), readSystemTicks()]);
  return { ticks, systemBusy: system.busy, at };
}

/** % of one core. */
function ticksPercent(ticks: number, from: CpuMark, to: CpuMark): number {
  return (ticks / clockTicksPerSecond() / ((to.at - from.at) / 1000)) * 100;
}

export function cpuPercent(from: CpuMark, to: CpuMark): number {
  return ticksPercent(to.ticks - from.ticks, from, to);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** The attempt with the median delivered rate, carrying every attempt's rate. */
function medianOutcome(attempts: readonly RunOutcome[]): RunOutcome {
  const ok = attempts.flatMap((a) => (a.status === 'ok' ? [a] : []));
  const last = attempts.at(-1);
  if (ok.length === 0) return last ?? { status: 'failed', reason: 'not run' };
  const rates = ok.map((a) => a.result.deliveredPerSec);
  const target = median(rates);
  const closest = ok.reduce((best, a) =>
    Math.abs(a.result.deliveredPerSec - target) < Math.abs(best.result.deliveredPerSec - target) ? a : best,
  );
  return { ...closest, result: { ...closest.result, deliveredPerSec: target }, attemptsPerSec: rates };
}

/** Lets a broker finish off the previous run (backlogs, disconnects) before the next starts. */
export async function waitUntilIdle(pid: number): Promise<void> {
  const sliceMs = 250;
  const deadline = performance.now() + 10_000;
  await sleep(300);
  while (performance.now() < deadline) {
    try {
      const from = await cpuMark(pid);
      await sleep(sliceMs);
      if (cpuPercent(from, await cpuMark(pid)) < 10) return;
    } catch {
      return;
    }
  }
}

function brokerExitNote(broker: RunningBroker, why: string, after: string | undefined): string {
  const line = broker.failureLine();
  return `broker died (${why}) during or right after ${after ?? 'start'}${line === '' ? '' : `: ${line}`}`;
}

/** Runs every measurement against one broker at a time. */
export class Bench {
  readonly #janitor: Janitor;
  readonly #paths: BrokerPaths;
  readonly #loadScript: string;
  readonly #settings: Settings;
  readonly #runs: readonly RunSpec[];
  #runSerial = 0;

  constructor(janitor: Janitor, paths: BrokerPaths, loadScript: string, settings: Settings, runs: readonly RunSpec[]) {
    this.#janitor = janitor;
    this.#paths = paths;
    this.#loadScript = loadScript;
    this.#settings = settings;
    this.#runs = runs;
  }

  start(name: BrokerName): Promise<RunningBroker> {
    return startBroker(name, this.#paths, this.#janitor, this.#settings.readyTimeoutMs);
  }

  async broker(name: BrokerName): Promise<BrokerReport> {
    const report: BrokerReport = { name, label: BROKER_LABELS[name], status: 'ok', runs: {}, idle: [], notes: [] };
    try {
      if (this.#runs.length > 0) await this.#throughput(report);
      if (report.status === 'ok' && this.#settings.idleRss) await this.#idle(report);
    } catch (err) {
      if (!(err instanceof BrokerStartError)) throw err;
      report.status = 'failed to start';
      report.startError = err.message;
      log(`[${name}] failed to start: ${err.message}`);
    }
    return report;
  }

  /** All throughput runs on one broker process; a fresh one if a run kills it. */
  async #throughput(report: BrokerReport): Promise<void> {
    let broker = await this.start(report.name);
    let sampler = new PeakRssSampler(broker.pid, 100);
    let peakKb = 0;
    let previous: string | undefined;
    let noted: RunningBroker | undefined;
    const noteDeath = async (): Promise<void> => {
      if (noted === broker || !broker.hasExited()) return;
      noted = broker;
      report.notes.push(brokerExitNote(broker, await broker.exited, previous));
    };
    try {
      for (const spec of this.#runs) {
        if (spec.protocol === 5 && !SPEAKS_MQTT5[report.name]) {
          report.runs[spec.id] = { status: 'unsupported', reason: 'no MQTT 5' };
          log(`[${report.name}] ${spec.label}: skipped, no MQTT 5`);
          continue;
        }
        if (broker.hasExited()) {
          await noteDeath();
          peakKb = Math.max(peakKb, await sampler.stop());
          try {
            broker = await this.start(report.name);
          } catch (err) {
            report.runs[spec.id] = { status: 'failed', reason: `broker restart failed: ${errorMessage(err)}` };
            continue;
          }
          sampler = new PeakRssSampler(broker.pid, 100);
          report.notes.push(`restarted for ${spec.label}`);
        }
        const attempts: RunOutcome[] = [];
        for (let attempt = 0; attempt < this.#settings.repeat && !broker.hasExited(); attempt++) {
          if (attempt > 0) await waitUntilIdle(broker.pid);
          log(`[${report.name}] ${spec.label} ...`);
          attempts.push(await this.#run(broker, spec));
        }
        const outcome = medianOutcome(attempts);
        report.runs[spec.id] = outcome;
        if (outcome.status === 'ok') {
          log(
            `[${report.name}] ${spec.label}: ${formatRate(outcome.result.deliveredPerSec)} msg/s delivered, ` +
              `${formatRate(outcome.result.publishedPerSec)} msg/s published, broker CPU ` +
              `${Math.round(outcome.brokerCpuPercent)}%, generator CPU ${Math.round(outcome.result.loadCpuPercent)}%, ` +
              `other processes ${Math.round(outcome.otherCpuPercent)}%`,
          );
        } else {
          log(`[${report.name}] ${spec.label}: failed: ${outcome.reason}`);
        }
        previous = spec.label;
        if (!broker.hasExited()) await waitUntilIdle(broker.pid);
      }
      await noteDeath();
    } finally {
      peakKb = Math.max(peakKb, await sampler.stop());
      await broker.stop();
    }
    report.peakRssKb = peakKb;
  }

  #run(broker: RunningBroker, spec: RunSpec): Promise<RunOutcome> {
    const s = this.#settings;
    const job: ThroughputJob = {
      kind: 'throughput',
      port: broker.port,
      protocol: spec.protocol,
      qos: spec.qos,
      publishers: spec.publishers,
      subscribers: spec.subscribers,
      payloadBytes: s.payloadBytes,
      window: s.window,
      warmupMs: s.warmupMs,
      measureMs: s.measureMs,
      tag: `b${process.pid}r${this.#runSerial++}`,
    };
    const limitMs = s.warmupMs + s.measureMs + 60_000;
    const child = fork(this.#loadScript, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.#janitor.track(child);
    return new Promise<RunOutcome>((resolvePromise) => {
      let windowStart: Promise<CpuMark> | undefined;
      let windowEnd: Promise<CpuMark> | undefined;
      let haveResult = false;
      let settled = false;
      const finish = (outcome: RunOutcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        void stopChild(child, 1000);
        resolvePromise(outcome);
      };
      const timer = setTimeout(() => finish({ status: 'failed', reason: `no result within ${limitMs} ms` }), limitMs);
      child.on('message', (raw: unknown) => {
        const msg = parseChildMessage(raw);
        if (msg === undefined) return;
        switch (msg.type) {
          case 'window-start':
            windowStart = cpuMark(broker.pid);
            break;
          case 'window-end':
            windowEnd = cpuMark(broker.pid);
            break;
          case 'result': {
            haveResult = true;
            const result = msg.result;
            const from = windowStart;
            const to = windowEnd;
            if (from === undefined || to === undefined) {
              finish({ status: 'failed', reason: 'result without a measured window' });
              break;
            }
            Promise.all([from, to]).then(
              ([a, b]) => {
                const brokerCpuPercent = cpuPercent(a, b);
                const busyPercent = ticksPercent(b.systemBusy - a.systemBusy, a, b);
                finish({
                  status: 'ok',
                  result,
                  brokerCpuPercent,
                  otherCpuPercent: Math.max(0, busyPercent - brokerCpuPercent - result.loadCpuPercent),
                  attemptsPerSec: [result.deliveredPerSec],
                });
              },
              (err: unknown) => finish({ status: 'failed', reason: `broker CPU unreadable: ${errorMessage(err)}` }),
            );
            break;
          }
          case 'error':
            finish({ status: 'failed', reason: msg.message });
            break;
          default:
            break;
        }
      });
      child.once('exit', (code, signal) => {
        if (!haveResult) {
          finish({ status: 'failed', reason: `load generator exited (${signal ?? `code ${String(code)}`})` });
        }
      });
      void broker.exited.then((why) => finish({ status: 'failed', reason: `broker ${why}` }));
      child.send({ type: 'job', job });
    });
  }

  /** RSS of a fresh broker process with 0 and then `idleSteps` idle clients connected. */
  async #idle(report: BrokerReport): Promise<void> {
    const s = this.#settings;
    const broker = await this.start(report.name);
    try {
      log(`[${report.name}] idle RSS ...`);
      await sleep(s.settleMs);
      report.idle.push({ clients: 0, rssKb: (await readMemory(broker.pid)).rssKb });
      if (s.idleSteps.length > 0) report.idle.push(...(await this.#idleClients(broker)));
      log(
        `[${report.name}] idle RSS: ${report.idle
          .map((o) => `${o.clients} clients ${o.rssKb === undefined ? 'failed' : `${(o.rssKb / 1024).toFixed(1)} MB`}`)
          .join(', ')}`,
      );
    } finally {
      await broker.stop();
    }
  }

  #idleClients(broker: RunningBroker): Promise<IdleOutcome[]> {
    const s = this.#settings;
    const job: IdleJob = {
      kind: 'idle',
      port: broker.port,
      steps: s.idleSteps,
      batchSize: s.idleBatch,
      connectTimeoutMs: 10_000,
    };
    const limitMs = s.idleSteps.length * (job.connectTimeoutMs + s.settleMs) + 60_000;
    const child = fork(this.#loadScript, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.#janitor.track(child);
    const outcomes: IdleOutcome[] = [];
    return new Promise<IdleOutcome[]>((resolvePromise) => {
      let settled = false;
      const finish = (error?: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        void stopChild(child, 1000);
        // Steps never reached still get a row, so the table shows they failed.
        for (const clients of s.idleSteps) {
          if (!outcomes.some((o) => o.clients === clients)) outcomes.push({ clients, error: error ?? 'not reached' });
        }
        resolvePromise(outcomes);
      };
      const timer = setTimeout(() => finish(`no result within ${limitMs} ms`), limitMs);
      child.on('message', (raw: unknown) => {
        const msg = parseChildMessage(raw);
        if (msg === undefined) return;
        if (msg.type === 'idle-step') {
          const step = msg.step;
          void (async () => {
            await sleep(s.settleMs);
            try {
              const mem = await readMemory(broker.pid);
              outcomes.push({
                clients: step.target,
                rssKb: mem.rssKb,
                connected: step.connected,
                failed: step.failed,
                dropped: step.dropped,
              });
              child.send({ type: 'continue' });
            } catch (err) {
              finish(`broker RSS unreadable: ${errorMessage(err)}`);
            }
          })();
        } else if (msg.type === 'done') {
          finish();
        } else if (msg.type === 'error') {
          finish(msg.message);
        }
      });
      child.once('exit', (code, signal) => finish(`load generator exited (${signal ?? `code ${String(code)}`})`));
      void broker.exited.then((why) => finish(`broker ${why}`));
      child.send({ type: 'job', job });
    });
  }
}
