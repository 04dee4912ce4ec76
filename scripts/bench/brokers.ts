import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

function canConnect(port: number): Promise<boolean> {
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

function mosquittoConfig(port: number): string {
  return [
    `listener ${port} ${HOST}`,
    'allow_anonymous true',
    'max_queued_messages 1000',
    'max_inflight_messages 20',
    'persistence false',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    '',
  ].join('\n');
}

interface Launch {
  readonly command: string;
  readonly args: readonly string[];
  readonly stdio: StdioOptions;
}

async function prepare(name: BrokerName, port: number, dir: string, paths: BrokerPaths): Promise<Launch> {
  switch (name) {
    case 'mosquitto': {
      const file = join(dir, 'mosquitto.conf');
      await writeFile(file, mosquittoConfig(port), { mode: 0o644 });
      return { command: paths.mosquittoBin, args: ['-c', file], stdio: ['ignore', 'pipe', 'pipe'] };
    }
    case 'aedes':
      // stdin stays a pipe: aedes-server exits when it closes (see there).
      return {
        command: process.execPath,
        args: [paths.aedesServer, '--port', String(port), '--host', HOST],
        stdio: ['pipe', 'pipe', 'pipe'],
      };
    case 'outpost':
      if (!existsSync(paths.outpostCli)) throw new BrokerStartError(`${paths.outpostCli} does not exist`);
      return {
        command: process.execPath,
        // The same V8 flag as the `outpost` bin's shebang and `npm start`: measure what ships.
        args: ['--max-semi-space-size=2', paths.outpostCli, '--port', String(port), '--bind', HOST, '--data-dir', dir, '--log-level', 'warn'],
        stdio: ['ignore', 'pipe', 'pipe'],
      };
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

/**
 * Spawns a broker in its own temp dir on a free port and resolves once the port accepts TCP
 * connections. Throws {@link BrokerStartError} (after killing what it spawned) if the process
 * fails to spawn, exits, or does not listen within `readyTimeoutMs`.
 */
export async function startBroker(
  name: BrokerName,
  paths: BrokerPaths,
  janitor: Janitor,
  readyTimeoutMs: number,
): Promise<RunningBroker> {
  const dir = await mkdtemp(join(tmpdir(), `outpost-bench-${name}-`));
  janitor.trackDir(dir);
  const port = await freePort();
  let launch: Launch;
  try {
    launch = await prepare(name, port, dir, paths);
  } catch (err) {
    await janitor.removeDir(dir);
    throw err;
  }

  const child: ChildProcess = spawn(launch.command, launch.args, { stdio: launch.stdio });
  janitor.track(child);
  // Both ends: a crash prints its error first and then a stack trace longer than the tail.
  let head = '';
  let tail = '';
  const keepTail = (chunk: Buffer): void => {
    const text = chunk.toString('utf8');
    if (head.length < OUTPUT_TAIL_BYTES) head += text.slice(0, OUTPUT_TAIL_BYTES - head.length);
    tail = (tail + text).slice(-OUTPUT_TAIL_BYTES);
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
    await stopChild(child, STOP_GRACE_MS);
    await janitor.removeDir(dir);
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
    await sleep(50);
  }

  const pid = child.pid;
  if (pid === undefined) {
    await stop();
    throw new BrokerStartError('no pid');
  }
  return {
    name,
    pid,
    port,
    exited,
    hasExited: () => exitDescription !== undefined || hasExited(child),
    failureLine: () => failureLine(`${head}\n${tail}`),
    stop,
  };
}
