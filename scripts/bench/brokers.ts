import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { hasExited, stopChild, type Janitor } from './janitor.js';

/** Starting and stopping the brokers under test, each as its own process on a fresh port. */

export const BROKER_NAMES = ['outpost', 'mosquitto', 'aedes'] as const;
export type BrokerName = (typeof BROKER_NAMES)[number];

export const BROKER_LABELS: Readonly<Record<BrokerName, string>> = {
  outpost: 'Outpost',
  mosquitto: 'Mosquitto',
  aedes: 'Aedes',
};

/**
 * Brokers to run MQTT 5 rows against. Aedes 1.x speaks 3.1.1 only, so its row says so instead
 * of failing; Outpost is in so that its row fails loudly for as long as it refuses MQTT 5.
 */
export const SPEAKS_MQTT5: Readonly<Record<BrokerName, boolean>> = {
  outpost: true,
  mosquitto: true,
  aedes: false,
};

export function isBrokerName(value: string): value is BrokerName {
  return (BROKER_NAMES as readonly string[]).includes(value);
}

const HOST = '127.0.0.1';
const OUTPUT_TAIL_BYTES = 4096;
const STOP_GRACE_MS = 3000;

/**
 * `default`: how the throughput and idle runs start a broker (Mosquitto without persistence and
 * with its queue capped at 1000). `backlog`: durable, unbounded queues for the backlog run
 * (backlog.ts), data in {@link backlogDataDir}, and a log line that says when it is up.
 */
export type BrokerProfile = 'default' | 'backlog';

export interface StartOptions {
  readonly profile: BrokerProfile;
  /**
   * A directory the caller made and cleans up; stop() leaves it, so that a restart finds the
   * data. Default: a fresh temp dir that stop() removes.
   */
  readonly dir?: string;
  /** Pause between connection attempts while waiting for the port (default 50 ms). */
  readonly pollMs?: number;
  /** SIGTERM to SIGKILL in stop() (default 3 s). */
  readonly stopGraceMs?: number;
}

/** Where a broker started with the backlog profile keeps its persistent state, inside its dir. */
export function backlogDataDir(dir: string): string {
  return join(dir, 'data');
}

/** What each broker prints once it is up, at the log level the backlog profile sets. */
const READY_LINE = /outpost running|mosquitto version \S+ running/;

export interface BrokerPaths {
  /** `dist/src/cli.js`. */
  readonly outpostCli: string;
  /** `dist/scripts/bench/aedes-server.js`. */
  readonly aedesServer: string;
  readonly mosquittoBin: string;
}

export interface RunningBroker {
  readonly name: BrokerName;
  readonly pid: number;
  readonly port: number;
  /** performance.now() at spawn, and when the port first accepted a TCP connection. */
  readonly spawnedAt: number;
  readonly listeningAt: number;
  /**
   * performance.now() when it printed its ready line (backlog profile). It may come a little
   * after the port opens; it never settles if the broker does not print one.
   */
  readonly readyLine: Promise<number>;
  /** Resolves with a description ("exit code 1", "signal SIGSEGV") when the process ends. */
  readonly exited: Promise<string>;
  hasExited(): boolean;
  /** One line of its output that most likely says why it failed, or '' if it printed nothing. */
  failureLine(): string;
  stop(): Promise<void>;
}

export class BrokerStartError extends Error {}

/** A port that was free a moment ago: the kernel's pick for port 0. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port from listen(0)'))));
    });
  });
}

/** Whether something accepts TCP connections on the port now (a broker that finished starting). */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** The first line of `mosquitto -h`, e.g. "2.0.11"; mosquitto has no --version. */
export function mosquittoVersion(bin: string): string {
  const out = spawnSync(bin, ['-h'], { encoding: 'utf8' });
  const text = `${out.stdout ?? ''}${out.stderr ?? ''}`;
  return /mosquitto version (\S+)/.exec(text)?.[1] ?? 'unknown';
}

export function findMosquitto(explicit: string | undefined): string {
  if (explicit !== undefined) return explicit;
  // /usr/sbin is not on every user's PATH; Debian installs the broker there.
  return existsSync('/usr/sbin/mosquitto') ? '/usr/sbin/mosquitto' : 'mosquitto';
}

/** `backlogData`: the backlog profile's persistence directory. */
function mosquittoConfig(port: number, backlogData: string | undefined): string {
  const backlog = backlogData !== undefined;
  return [
    `listener ${port} ${HOST}`,
    'allow_anonymous true',
    // 0: no limit, for a million messages queued to one offline client (max_queued_bytes is 0 by default).
    `max_queued_messages ${backlog ? 0 : 1000}`,
    ...(backlog ? ['max_queued_bytes 0'] : []),
    'max_inflight_messages 20',
    // Written on SIGTERM (and every autosave_interval, 1800 s by default), read back at start.
    ...(backlog ? ['persistence true', `persistence_location ${backlogData}/`] : ['persistence false']),
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    // "mosquitto version ... running" and the persistence save / restore lines.
    ...(backlog ? ['log_type notice', 'log_type information'] : []),
    '',
  ].join('\n');
}

/** The backlog run's Outpost: no queue caps, QoS 1 acknowledged once fsynced (the default). */
const OUTPOST_BACKLOG_CONFIG = ['max_queued_messages: 0', 'max_queued_bytes: 0', 'durability: sync', ''].join('\n');

interface Launch {
  readonly command: string;
  readonly args: readonly string[];
  readonly stdio: StdioOptions;
}

async function prepare(
  name: BrokerName,
  port: number,
  dir: string,
  paths: BrokerPaths,
  profile: BrokerProfile,
): Promise<Launch> {
  const data = profile === 'backlog' ? backlogDataDir(dir) : undefined;
  if (data !== undefined) await mkdir(data, { recursive: true });
  switch (name) {
    case 'mosquitto': {
      if (data !== undefined) {
        // Started as root, mosquitto drops to its own user before it writes its persistence file.
        await chmod(dir, 0o711);
        await chmod(data, 0o777);
      }
      const file = join(dir, 'mosquitto.conf');
      await writeFile(file, mosquittoConfig(port, data), { mode: 0o644 });
      return { command: paths.mosquittoBin, args: ['-c', file], stdio: ['ignore', 'pipe', 'pipe'] };
    }
    case 'aedes':
      // stdin stays a pipe: aedes-server exits when it closes (see there).
      return {
        command: process.execPath,
        args: [paths.aedesServer, '--port', String(port), '--host', HOST],
        stdio: ['pipe', 'pipe', 'pipe'],
      };
    case 'outpost': {
      if (!existsSync(paths.outpostCli)) throw new BrokerStartError(`${paths.outpostCli} does not exist`);
      if (data !== undefined) {
        const file = join(dir, 'outpost.yaml');
        await writeFile(file, OUTPOST_BACKLOG_CONFIG);
        return {
          command: process.execPath,
          args: [
            '--max-semi-space-size=2',
            paths.outpostCli,
            '--config',
            file,
            '--port',
            String(port),
            '--bind',
            HOST,
            '--data-dir',
            data,
            // info: for its "outpost running" line.
            '--log-level',
            'info',
          ],
          stdio: ['ignore', 'pipe', 'pipe'],
        };
      }
      return {
        command: process.execPath,
        // The same V8 flag as the `outpost` bin's shebang and `npm start`: measure what ships.
        args: ['--max-semi-space-size=2', paths.outpostCli, '--port', String(port), '--bind', HOST, '--data-dir', dir, '--log-level', 'warn'],
        stdio: ['ignore', 'pipe', 'pipe'],
      };
    }
  }
}

const ERROR_LINE = /\b(\w*Error|FATAL|[Ff]atal|[Pp]anic|[Ee]rror)\b/;

function failureLine(output: string): string {
  const lines = output
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return lines.find((l) => ERROR_LINE.test(l) && !l.startsWith('at ')) ?? lines.at(-1) ?? '';
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal !== null ? `signal ${signal}` : `exit code ${String(code)}`;
}

/** A fresh temp dir for one broker, removed by the janitor at the latest. */
export async function brokerDir(name: BrokerName, janitor: Janitor): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `outpost-bench-${name}-`));
  janitor.trackDir(dir);
  return dir;
}

/**
 * Spawns a broker in its own temp dir (or `options.dir`) on a free port and resolves once the
 * port accepts TCP connections. Throws {@link BrokerStartError} (after killing what it spawned)
 * if the process fails to spawn, exits, or does not listen within `readyTimeoutMs`.
 */
export async function startBroker(
  name: BrokerName,
  paths: BrokerPaths,
  janitor: Janitor,
  readyTimeoutMs: number,
  options: StartOptions = { profile: 'default' },
): Promise<RunningBroker> {
  const ownDir = options.dir === undefined;
  const dir = options.dir ?? (await brokerDir(name, janitor));
  const removeOwnDir = async (): Promise<void> => {
    if (ownDir) await janitor.removeDir(dir);
  };
  const port = await freePort();
  let launch: Launch;
  try {
    launch = await prepare(name, port, dir, paths, options.profile);
  } catch (err) {
    await removeOwnDir();
    throw err;
  }

  const spawnedAt = performance.now();
  const child: ChildProcess = spawn(launch.command, launch.args, { stdio: launch.stdio });
  janitor.track(child);
  // Both ends: a crash prints its error first and then a stack trace longer than the tail.
  let head = '';
  let tail = '';
  let readyAt: number | undefined;
  let onReady: (at: number) => void = () => undefined;
  const readyLine = new Promise<number>((resolve) => {
    onReady = resolve;
  });
  const keepTail = (chunk: Buffer): void => {
    const text = chunk.toString('utf8');
    if (head.length < OUTPUT_TAIL_BYTES) head += text.slice(0, OUTPUT_TAIL_BYTES - head.length);
    tail = (tail + text).slice(-OUTPUT_TAIL_BYTES);
    // The tail, not the chunk: the line may arrive in two pieces.
    if (readyAt === undefined && READY_LINE.test(tail.slice(-(text.length + 64)))) {
      readyAt = performance.now();
      onReady(readyAt);
    }
  };
  child.stdout?.on('data', keepTail);
  child.stderr?.on('data', keepTail);
  let exitDescription: string | undefined;
  const exited = new Promise<string>((resolve) => {
    child.once('error', (err) => {
      exitDescription = `spawn failed: ${err.message}`;
      resolve(exitDescription);
    });
    child.once('exit', (code, signal) => {
      exitDescription = describeExit(code, signal);
      resolve(exitDescription);
    });
  });

  const stop = async (): Promise<void> => {
    await stopChild(child, options.stopGraceMs ?? STOP_GRACE_MS);
    await removeOwnDir();
  };

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exitDescription !== undefined || hasExited(child)) {
      await stop();
      const why = exitDescription ?? 'exited';
      const line = failureLine(`${head}\n${tail}`);
      throw new BrokerStartError(`${why} before listening${line === '' ? '' : `: ${line}`}`);
    }
    if (await canConnect(port)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new BrokerStartError(`not listening on ${HOST}:${port} after ${readyTimeoutMs} ms`);
    }
    await sleep(options.pollMs ?? 50);
  }
  const listeningAt = performance.now();

  const pid = child.pid;
  if (pid === undefined) {
    await stop();
    throw new BrokerStartError('no pid');
  }
  return {
    name,
    pid,
    port,
    spawnedAt,
    listeningAt,
    readyLine,
    exited,
    hasExited: () => exitDescription !== undefined || hasExited(child),
    failureLine: () => failureLine(`${head}\n${tail}`),
    stop,
  };
}
