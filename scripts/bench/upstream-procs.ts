import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { canConnect, freePort } from './brokers.js';
import { hasExited, stopChild, type Janitor } from './janitor.js';
import type { BenchCerts } from './tls-certs.js';

/**
 * The processes of the upstream run (upstream.ts): the cloud Mosquitto with a TLS listener for
 * the bridges and a plain one for the bench's consumer, Outpost as a child process whose JSON
 * log lines are read as they come, and Mosquitto bridging to the same cloud for comparison.
 */

const HOST = '127.0.0.1';
const OUTPUT_TAIL_BYTES = 4096;
const START_TIMEOUT_MS = 15_000;
/** Mosquitto writes its persistence file on SIGTERM: a million queued messages take a while. */
const STOP_GRACE_MS = 60_000;


/** Polls until every port accepts a connection, or the process exits, or time runs out. */
async function waitForPorts(ports: readonly number[], child: ChildProcess, what: string, tail: () => string): Promise<void> {
  const deadline = performance.now() + START_TIMEOUT_MS;
  for (const port of ports) {
    while (!(await canConnect(port))) {
      if (hasExited(child)) throw new Error(`${what} exited before listening on ${port}: ${tail()}`);
      if (performance.now() > deadline) throw new Error(`${what} not listening on ${HOST}:${port} after ${START_TIMEOUT_MS} ms`);
      await sleep(20);
    }
  }
}

/** Keeps the last few KiB a child printed, for error messages. */
function keepTail(child: ChildProcess): () => string {
  let tail = '';
  const keep = (chunk: Buffer): void => {
    tail = (tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return () => tail.trim().split('\n').at(-1) ?? '';
}

/** A Mosquitto process on a config file, restartable on the same ports. */
export class MosquittoChild {
  readonly #bin: string;
  readonly #conf: string;
  readonly #janitor: Janitor;
  readonly #ports: readonly number[];
  readonly #what: string;
  #child: ChildProcess | undefined;
  #tail: () => string = () => '';

  constructor(bin: string, conf: string, janitor: Janitor, ports: readonly number[], what: string) {
    this.#bin = bin;
    this.#conf = conf;
    this.#janitor = janitor;
    this.#ports = ports;
    this.#what = what;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined && !hasExited(this.#child);
  }

  dead(): string | undefined {
    return this.running ? undefined : `${this.#what} exited: ${this.#tail()}`;
  }

  /** Resolves once every listener accepts connections. */
  async start(): Promise<void> {
    const child = spawn(this.#bin, ['-c', this.#conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#janitor.track(child);
    this.#child = child;
    this.#tail = keepTail(child);
    await waitForPorts(this.#ports, child, this.#what, this.#tail);
  }

  /** SIGTERM: with persistence, it saves its file (the consumer's session) before exiting. */
  async stop(): Promise<void> {
    if (this.#child !== undefined) await stopChild(this.#child, STOP_GRACE_MS);
  }
}

/** Lines every Mosquitto here starts with: quiet logs (its default `log_type all` logs every PUBLISH). */
function commonLines(maxInflight: number): string[] {
  return [
    // Started as root, Mosquitto drops to its own user, which cannot read our keys or write our dir.
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    'per_listener_settings false',
    'allow_anonymous true',
    // 0: no cap; the default 1000 would drop what waits for an offline client or bridge.
    'max_queued_messages 0',
    `max_inflight_messages ${maxInflight}`,
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'connection_messages false',
  ];
}

/** The cloud: a plain listener for the consumer, a TLS one for the bridges; persistence keeps the consumer's session. */
export class CloudMosquitto extends MosquittoChild {
  readonly port: number;
  readonly tlsPort: number;

  private constructor(bin: string, conf: string, janitor: Janitor, port: number, tlsPort: number) {
    super(bin, conf, janitor, [port, tlsPort], 'the cloud Mosquitto');
    this.port = port;
    this.tlsPort = tlsPort;
  }

  static async create(janitor: Janitor, bin: string, dir: string, certs: BenchCerts, maxInflight: number): Promise<CloudMosquitto> {
    const data = join(dir, 'cloud-data');
    await mkdir(data, { recursive: true });
    await chmod(data, 0o777);
    const [port, tlsPort] = [await freePort(), await freePort()];
    const lines = [
      ...commonLines(maxInflight),
      'persistence true',
      `persistence_location ${data}/`,
      `listener ${port} ${HOST}`,
      `listener ${tlsPort} ${HOST}`,
      `certfile ${certs.serverCert}`,
      `keyfile ${certs.serverKey}`,
      '',
    ];
    const conf = join(dir, 'cloud.conf');
    await writeFile(conf, lines.join('\n'), { mode: 0o644 });
    return new CloudMosquitto(bin, conf, janitor, port, tlsPort);
  }
}

/**
 * Mosquitto's own bridge, for comparison: the same rule, TLS to the same cloud, a persistent
 * session both sides (`cleansession false`), the same window. Without persistence: it queues in
 * memory (with it, Mosquitto writes only at shutdown or every autosave_interval anyway).
 */
export class BridgeMosquitto extends MosquittoChild {
  readonly port: number;

  private constructor(bin: string, conf: string, janitor: Janitor, port: number) {
    super(bin, conf, janitor, [port], 'the bridging Mosquitto');
    this.port = port;
  }

  static async create(janitor: Janitor, bin: string, dir: string, o: { certs: BenchCerts; tlsPort: number; rule: string; maxInflight: number }): Promise<BridgeMosquitto> {
    await mkdir(dir, { recursive: true });
    const port = await freePort();
    const lines = [
      ...commonLines(o.maxInflight),
      'persistence false',
      `listener ${port} ${HOST}`,
      'connection cloud',
      `address localhost:${o.tlsPort}`,
      `bridge_cafile ${o.certs.caCert}`,
      'bridge_protocol_version mqttv311',
      'remote_clientid bench-mosquitto-bridge',
      `topic ${o.rule}`,
      'cleansession false',
      // Whole seconds only; the bench times its drain from the first arrival, not from the restart.
      'restart_timeout 1',
      '',
    ];
    const conf = join(dir, 'bridge.conf');
    await writeFile(conf, lines.join('\n'), { mode: 0o644 });
    return new BridgeMosquitto(bin, conf, janitor, port);
  }
}

/** One of Outpost's JSON log lines: `msg`, `level`, ISO `time`, and its fields. */
export type LogRecord = Readonly<Record<string, unknown>> & { readonly msg: string; readonly level: string; readonly at: number };

const KEPT_RECORDS = 2000;

/** Outpost as a child process, its log lines parsed as they arrive. */
export class OutpostChild {
  readonly port: number;
  readonly pid: number;
  readonly #child: ChildProcess;
  readonly #records: LogRecord[];
  readonly #tail: () => string;

  private constructor(child: ChildProcess, pid: number, port: number, records: LogRecord[], tail: () => string) {
    this.#child = child;
    this.pid = pid;
    this.port = port;
    this.#records = records;
    this.#tail = tail;
  }

  /** Starts `node [nodeArgs] cli.js --config FILE` and resolves once `port` accepts connections. */
  static async start(janitor: Janitor, cli: string, configFile: string, port: number, nodeArgs: readonly string[]): Promise<OutpostChild> {
    // The same V8 flag as the `outpost` bin and the other rows: measure what ships.
    const child = spawn(process.execPath, ['--max-semi-space-size=2', ...nodeArgs, cli, '--config', configFile], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    janitor.track(child);
    const tail = keepTail(child);
    const records: LogRecord[] = [];
    let partial = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      const text = partial + chunk.toString('utf8');
      const lines = text.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        const record = parseRecord(line);
        if (record === undefined) continue;
        records.push(record);
        if (records.length > KEPT_RECORDS) records.splice(0, records.length - KEPT_RECORDS);
      }
    });
    try {
      await waitForPorts([port], child, 'Outpost', tail);
    } catch (err) {
      await stopChild(child, 1000);
      throw err;
    }
    if (child.pid === undefined) throw new Error('Outpost has no pid');
    return new OutpostChild(child, child.pid, port, records, tail);
  }

  /** Why it cannot go on (it exited), or undefined. */
  dead(): string | undefined {
    return hasExited(this.#child) ? `Outpost exited: ${this.#tail()}` : undefined;
  }

  /** Log lines so far, oldest first (the last {@link KEPT_RECORDS}). */
  records(): readonly LogRecord[] {
    return this.#records;
  }

  /** The first line with message `msg` logged at or after `since` (epoch ms), waiting up to `timeoutMs`. */
  async waitForLog(msg: string, since: number, timeoutMs: number): Promise<LogRecord> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const found = this.#records.find((r) => r.msg === msg && r.at >= since);
      if (found !== undefined) return found;
      const why = this.dead();
      if (why !== undefined) throw new Error(`waiting for "${msg}": ${why}`);
      if (performance.now() > deadline) throw new Error(`Outpost did not log "${msg}" within ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /** SIGTERM (a --cpu-prof profile is written on the way out), SIGKILL after `graceMs`. */
  stop(graceMs = 10_000): Promise<void> {
    return stopChild(this.#child, graceMs);
  }
}

function parseRecord(line: string): LogRecord | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    const fields = parsed as Record<string, unknown>;
    const { msg, level, time } = fields;
    if (typeof msg !== 'string' || typeof level !== 'string' || typeof time !== 'string') return undefined;
    return { ...fields, msg, level, at: Date.parse(time) };
  } catch {
    return undefined;
  }
}

