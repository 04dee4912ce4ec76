import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { freePort, type BrokerPaths } from './brokers.js';
import { openClient } from './clients.js';
import { hasExited, stopChild, type Janitor } from './janitor.js';
import { clockTicksPerSecond, readCpuTicks } from './proc.js';
import { formatRate } from './report.js';
import { cpuMark, cpuPercent, errorMessage, log, waitUntilIdle, type CpuMark } from './runner.js';
import { Device, FRAME_BYTES, Inbox, READING_TOPIC, dataFrame } from './serial-device.js';
import { PacketType, subscribePacket } from './wire.js';

/**
 * The serial row: Outpost reads outpost-link DATA frames from one end of a socat pty pair while
 * this process plays the device on the other end and subscribes to the readings over MQTT.
 * Paced at what a 115,200 baud UART carries, then unpaced (as fast as the pty takes them).
 * Mosquitto and Aedes have no serial input; their columns say so.
 */

/** `--only` name of the measurement. */
export const SERIAL_RUN_ID = 'serial';

export interface SerialSettings {
  readonly warmupMs: number;
  readonly measureMs: number;
  readonly baudRate: number;
}

export interface SerialPhase {
  /** Frames written during the measured window, and messages received during it. */
  readonly sent: number;
  readonly delivered: number;
  readonly sentPerSec: number;
  readonly deliveredPerSec: number;
  /** Frames written during the window that never reached the subscriber. */
  readonly lost: number;
  readonly duplicates: number;
  /** % of one core over the window. */
  readonly outpostCpuPercent: number;
  readonly socatCpuPercent: number;
  /** This process: the device and the subscriber. */
  readonly benchCpuPercent: number;
  /** Write of the frame to the pty → PUBLISH parsed by the subscriber, ms. */
  readonly latencyMedianMs: number;
  readonly latencyP99Ms: number;
  readonly latencyMaxMs: number;
}

export interface SerialReport {
  status: 'ok' | 'failed' | 'skipped';
  reason?: string;
  readonly frameBytes: number;
  readonly baudRate: number;
  readonly pacedFramesPerSec: number;
  paced?: SerialPhase;
  unpaced?: SerialPhase;
  /** Outpost's `$SYS/broker/serial/bench/...` figures at the end, and what it dropped for the subscriber. */
  counters?: Record<string, string>;
  /** DATA frames written over the whole run, warmups included. */
  framesSent?: number;
  /** Lines Outpost logged at `warn` or above, and the last of them. */
  outpostLogLines?: number;
  outpostLastLine?: string;
}

const HOST = '127.0.0.1';
/** The serial port's name in Outpost's config: `{port}` in its topics. */
export const PORT_NAME = 'bench';
const SUBSCRIBER_ID = 'bench-serial-sub';
/** 8N1: a start bit, 8 data bits and a stop bit per byte. */
export const BITS_PER_BYTE = 10;
/** Frames per write() when unpaced: 1 KiB. */
const FLOOD_BATCH = 32;
const READY_TIMEOUT_MS = 15_000;

async function until(check: () => boolean, what: string, ms: number, dead: () => string | undefined): Promise<void> {
  const deadline = performance.now() + ms;
  while (!check()) {
    const why = dead();
    if (why !== undefined) throw new Error(`${what}: ${why}`);
    if (performance.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(20);
  }
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

interface Mark {
  readonly seq: number;
  readonly received: number;
  readonly duplicates: number;
  readonly outpost: CpuMark;
  readonly socatTicks: number;
  readonly bench: NodeJS.CpuUsage;
}

interface Run {
  readonly outpostPid: number;
  readonly socatPid: number;
  readonly device: Device;
  readonly inbox: Inbox;
  readonly settings: SerialSettings;
  /** Why the run cannot go on (a child exited), or undefined. */
  readonly dead: () => string | undefined;
}

async function mark(run: Run): Promise<Mark> {
  const { device, inbox } = run;
  const snapshot = { seq: device.next, received: inbox.received, duplicates: inbox.duplicates, bench: process.cpuUsage() };
  const [outpost, socatTicks] = await Promise.all([cpuMark(run.outpostPid), readCpuTicks(run.socatPid)]);
  return { ...snapshot, outpost, socatTicks };
}

/** Runs a sender for warmup + measure, then waits for the stragglers and works out the window. */
async function phase(run: Run, label: string, startSending: () => () => Promise<void>): Promise<SerialPhase> {
  const s = run.settings;
  log(`[outpost] serial, ${label} ...`);
  const stop = startSending();
  let from: Mark;
  let to: Mark;
  try {
    await sleep(s.warmupMs);
    from = await mark(run);
    await sleep(s.measureMs);
    to = await mark(run);
  } finally {
    await stop();
  }
  const why = run.dead();
  if (why !== undefined) throw new Error(`${label}: ${why}`);
  // Whatever is still in the pty, Outpost or the socket arrives now; stop at 500 ms of silence.
  for (let last = -1; last !== run.inbox.received; ) {
    last = run.inbox.received;
    await sleep(500);
  }
  const seconds = (to.outpost.at - from.outpost.at) / 1000;
  const latencies = new Float64Array(to.seq - from.seq);
  let n = 0;
  for (let seq = from.seq; seq < to.seq; seq++) {
    const ms = run.inbox.receivedAt.get(seq) - run.device.sentAt.get(seq);
    if (!Number.isNaN(ms)) latencies[n++] = ms;
  }
  const sorted = latencies.subarray(0, n).sort();
  const cpu = process.cpuUsage(from.bench);
  const result: SerialPhase = {
    sent: to.seq - from.seq,
    delivered: to.received - from.received,
    sentPerSec: (to.seq - from.seq) / seconds,
    deliveredPerSec: (to.received - from.received) / seconds,
    lost: to.seq - from.seq - n,
    duplicates: to.duplicates - from.duplicates,
    outpostCpuPercent: cpuPercent(from.outpost, to.outpost),
    socatCpuPercent: ((to.socatTicks - from.socatTicks) / clockTicksPerSecond() / seconds) * 100,
    // cpuUsage covers until now, a little past the window; near enough for a saturation check.
    benchCpuPercent: ((cpu.user + cpu.system) / 1e6 / seconds) * 100,
    latencyMedianMs: percentile(sorted, 50),
    latencyP99Ms: percentile(sorted, 99),
    latencyMaxMs: sorted[n - 1] ?? Number.NaN,
  };
  log(
    `[outpost] serial, ${label}: ${formatRate(result.deliveredPerSec)} frames/s delivered of ${formatRate(result.sentPerSec)} sent, ` +
      `${result.lost} lost; CPU: Outpost ${Math.round(result.outpostCpuPercent)}%, socat ${Math.round(result.socatCpuPercent)}%, ` +
      `bench ${Math.round(result.benchCpuPercent)}%; latency median ` +
      `${result.latencyMedianMs.toFixed(2)} ms, p99 ${result.latencyP99Ms.toFixed(2)} ms`,
  );
  return result;
}

/** A frame whenever one is due at `framesPerSec`, as a UART at that rate would hand them over. */
function paced(device: Device, framesPerSec: number): () => () => Promise<void> {
  return () => {
    const started = performance.now();
    const first = device.next;
    const timer = setInterval(() => {
      const due = first + Math.floor(((performance.now() - started) * framesPerSec) / 1000) - device.next;
      if (due > 0) device.send(due);
    }, 1);
    return async () => clearInterval(timer);
  };
}

/** As fast as the pty takes them: the next batch as soon as the port's buffer drains. */
function unpaced(run: Run): () => () => Promise<void> {
  return () => {
    let stopping = false;
    let failure: unknown;
    const loop = (async () => {
      while (!stopping && run.dead() === undefined) {
        if (run.device.send(FLOOD_BATCH)) await nextTurn();
        else await once(run.device.port, 'drain');
      }
    })().catch((err: unknown) => {
      // Kept for stop(): rejecting here, mid-phase, would be an unhandled rejection.
      failure = err;
    });
    return async () => {
      stopping = true;
      const stalled = sleep(10_000, 'stalled', { ref: false });
      if ((await Promise.race([loop, stalled])) === 'stalled') throw new Error('writes to the pty stalled for 10 s');
      if (failure !== undefined) throw failure;
    };
  };
}

function outpostConfig(dir: string, port: number, tty: string, baudRate: number): string {
  return [
    `listeners:\n  - { port: ${port}, bind: ${HOST} }`,
    `data_dir: ${JSON.stringify(join(dir, 'data'))}`,
    'log_level: warn',
    // Outpost's serial counters, read at the end of the run.
    'sys_interval: 1',
    `serial:\n  - name: ${PORT_NAME}\n    path: ${JSON.stringify(tty)}\n    framing: outpost-link\n    baud_rate: ${baudRate}`,
    '',
  ].join('\n');
}

interface Tracked {
  readonly child: ChildProcess;
  /** The last line it printed, '' if none. */
  output(): string;
  lines(): number;
}

function spawnTracked(janitor: Janitor, command: string, args: readonly string[]): Tracked {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  janitor.track(child);
  let tail = '';
  let lines = 0;
  const keep = (chunk: Buffer): void => {
    const text = chunk.toString('utf8');
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) lines++;
    tail = (tail + text).slice(-2000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return { child, output: () => tail.trim().split('\n').at(-1) ?? '', lines: () => lines };
}

/** The whole serial measurement: socat, Outpost with one serial port, the device and a subscriber. */
export async function runSerial(janitor: Janitor, paths: BrokerPaths, settings: SerialSettings): Promise<SerialReport> {
  const framesPerSec = settings.baudRate / BITS_PER_BYTE / FRAME_BYTES;
  const report: SerialReport = { status: 'ok', frameBytes: FRAME_BYTES, baudRate: settings.baudRate, pacedFramesPerSec: framesPerSec };
  if (spawnSync('socat', ['-V'], { stdio: 'ignore' }).error !== undefined) {
    report.status = 'skipped';
    report.reason = 'socat is not installed (sudo apt-get install socat)';
    log(`[outpost] serial: skipped, ${report.reason}`);
    return report;
  }
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-serial-'));
  janitor.trackDir(dir);
  const children: ChildProcess[] = [];
  let device: Device | undefined;
  let subscriber: Socket | undefined;
  try {
    // Throws, before anything starts, if the fields no longer make a frame of FRAME_BYTES.
    dataFrame(0, 0xffff_ffff);
    const ttyOutpost = join(dir, 'ttyOutpost');
    const ttyDevice = join(dir, 'ttyDevice');
    const socat = spawnTracked(janitor, 'socat', [`pty,raw,echo=0,link=${ttyOutpost}`, `pty,raw,echo=0,link=${ttyDevice}`]);
    children.push(socat.child);
    const socatDead = (): string | undefined => (hasExited(socat.child) ? `socat exited: ${socat.output()}` : undefined);
    await until(() => existsSync(ttyOutpost) && existsSync(ttyDevice), 'socat making the pty pair', 5000, socatDead);

    const port = await freePort();
    const file = join(dir, 'outpost.yaml');
    await writeFile(file, outpostConfig(dir, port, ttyOutpost, settings.baudRate));
    // The same V8 flag as the other rows' Outpost and the `outpost` bin.
    const outpost = spawnTracked(janitor, process.execPath, ['--max-semi-space-size=2', paths.outpostCli, '--config', file]);
    children.push(outpost.child);
    const dead = (): string | undefined =>
      socatDead() ?? (hasExited(outpost.child) ? `Outpost exited: ${outpost.output()}` : undefined);
    const inbox = new Inbox();
    const deadline = performance.now() + READY_TIMEOUT_MS;
    while (subscriber === undefined) {
      try {
        const conn = await openClient(port, SUBSCRIBER_ID, 4, 5000, {
          onFrame: (type, flags, buf, start, length) => {
            if (type === PacketType.publish) inbox.onPublish(flags, buf, start, length);
          },
          onClose: () => undefined,
        });
        subscriber = conn.socket;
      } catch (err) {
        const why = dead();
        if (why !== undefined || performance.now() > deadline) throw new Error(`Outpost not ready: ${why ?? errorMessage(err)}`);
        await sleep(50);
      }
    }
    const filters = [READING_TOPIC, `${READING_TOPIC}/availability`, `outpost/serial/${PORT_NAME}/state`, `$SYS/broker/serial/${PORT_NAME}/+`, '$SYS/broker/clients/+/dropped'];
    // QoS 0 throughout; the retained port state and availability arrive as soon as they are granted.
    for (const [i, filter] of filters.entries()) subscriber.write(subscribePacket(filter, 0, i + 1, 4));
    const pid = outpost.child.pid;
    if (pid === undefined) throw new Error('Outpost has no pid');
    await until(() => inbox.latest.get(`outpost/serial/${PORT_NAME}/state`)?.includes('"open"') === true, 'Outpost opening the pty', 10_000, dead);
    device = await Device.open(ttyDevice);
    device.hello();
    await until(() => inbox.latest.get(`${READING_TOPIC}/availability`) === 'online', 'the device coming online', 10_000, dead);

    const socatPid = socat.child.pid ?? 0;
    const run: Run = { outpostPid: pid, socatPid, device, inbox, settings, dead };
    await waitUntilIdle(pid);
    report.paced = await phase(run, `paced at ${formatRate(settings.baudRate)} baud (${formatRate(framesPerSec)} frames/s)`, paced(device, framesPerSec));
    await waitUntilIdle(pid);
    report.unpaced = await phase(run, 'unpaced', unpaced(run));
    if (inbox.anomalies > 0) throw new Error(`${inbox.anomalies} readings without a leading "seq" in their JSON`);
    report.framesSent = device.next;
    report.outpostLogLines = outpost.lines();
    if (outpost.lines() > 0) report.outpostLastLine = outpost.output();
    // Two $SYS rounds, so that the counters include the last frames.
    await sleep(2100);
    report.counters = Object.fromEntries(
      [...inbox.latest].filter(([topic]) => topic.startsWith('$SYS/')).map(([topic, value]) => [topic.replace('$SYS/broker/', ''), value]),
    );
  } catch (err) {
    report.status = 'failed';
    report.reason = errorMessage(err);
    log(`[outpost] serial: failed: ${report.reason}`);
  } finally {
    subscriber?.destroy();
    await device?.close();
    // Outpost first, so that it closes its end of the pty before socat goes.
    for (const child of children.reverse()) await stopChild(child, 3000);
    await janitor.removeDir(dir);
  }
  return report;
}
