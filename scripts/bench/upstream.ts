import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, type BrokerPaths } from './brokers.js';
import type { Janitor } from './janitor.js';
import { errorMessage, log } from './runner.js';
import { makeBenchCerts, type BenchCerts } from './tls-certs.js';
import { Consumer, SysReader } from './upstream-clients.js';
import { afterDrain, drain, fill, type PhaseOptions, type QueueFigures, type Subject } from './upstream-phases.js';
import { BridgeMosquitto, CloudMosquitto, OutpostChild } from './upstream-procs.js';

/**
 * The upstream rows: Outpost's store-and-forward bridge to a cloud Mosquitto over TLS on
 * loopback. With the cloud away, publishers fill the outbox (acknowledged once on disk); then the
 * cloud comes back with a consumer on a persistent session and the bench times the drain from
 * the bridge's "upstream connected" log line to the last message at the consumer, ticking off
 * every message. A second Outpost queues a bigger backlog, for its memory and disk, and drains it.
 * When Mosquitto is among the brokers, its own bridge does the same for comparison.
 */

/** `--only` name of the measurement. */
export const UPSTREAM_RUN_ID = 'upstream';

export interface UpstreamSettings {
  /** The drain run's backlog. */
  readonly drainMessages: number;
  /** The memory run's backlog. */
  readonly rssMessages: number;
  /** Bring the cloud back for the memory run's backlog too, and time that drain. */
  readonly drainRssBacklog: boolean;
  readonly publishers: number;
  /** Unacknowledged PUBLISHes per local publisher. */
  readonly window: number;
  readonly payloadBytes: number;
  /** The bridge's `max_inflight` (Outpost's default), and the cloud's `max_inflight_messages`. */
  readonly maxInflight: number;
  readonly cloudMaxInflight: number;
  /** Wait before the idle RSS reading. */
  readonly settleMs: number;
  /** Time without load before the "with the backlog" RSS reading (V8 gives heap back late). */
  readonly quietMs: number;
  /** Set from OUTPOST_BENCH_CPU_PROF: a directory for V8 CPU profiles of the Outpost children. */
  readonly cpuProfileDir: string | undefined;
}

/** What `npm run bench` runs: 1,000,000 queued and drained, or 100,000 and not drained with --quick. */
export function upstreamSettings(quick: boolean): UpstreamSettings {
  return {
    drainMessages: 100_000,
    rssMessages: quick ? 100_000 : 1_000_000,
    drainRssBacklog: !quick,
    publishers: 4,
    window: 20,
    payloadBytes: 100,
    // Outpost's default max_inflight; the same for the cloud's deliveries to the consumer.
    maxInflight: 100,
    cloudMaxInflight: 100,
    settleMs: quick ? 1000 : 2000,
    quietMs: quick ? 10_000 : 15_000,
    cpuProfileDir: process.env.OUTPOST_BENCH_CPU_PROF,
  };
}

export type { DrainFigures, QueueFigures } from './upstream-phases.js';

export interface BridgeReport {
  status: 'ok' | 'failed';
  reason?: string;
  /** (a) the drain run, (b) the memory run; each filled in as far as it got. */
  drainRun?: QueueFigures;
  rssRun?: QueueFigures;
  /** Log lines at warn or above, other than the expected connection failures (Outpost only). */
  warnings: string[];
}

export interface UpstreamReport {
  outpost: BridgeReport;
  /** Mosquitto's bridge, when Mosquitto is among the brokers. */
  mosquitto?: BridgeReport;
}

export interface UpstreamContext {
  readonly janitor: Janitor;
  readonly paths: BrokerPaths;
  readonly loadScript: string;
  readonly settings: UpstreamSettings;
  /** Also measure Mosquitto's own bridge. */
  readonly mosquitto: boolean;
}

const BRIDGE = 'cloud';
const TOPIC_PREFIX = 'bench';
const RULE = `${TOPIC_PREFIX}/# out 1`;
const CONSUMER_ID = 'bench-upstream-consumer';
const BACKLOG_TOPIC = `$SYS/broker/bridge/${BRIDGE}/backlog/messages`;
/** Expected while the cloud is away; anything else at warn is reported. */
const EXPECTED_WARNINGS = new Set(['upstream connection failed', 'upstream link lost']);

function outpostConfig(dir: string, port: number, tlsPort: number, certs: BenchCerts, s: UpstreamSettings): string {
  return [
    'gateway_id: bench',
    `listeners:\n  - { port: ${port}, bind: 127.0.0.1 }`,
    `data_dir: ${JSON.stringify(join(dir, 'data'))}`,
    // info: "upstream connected" and "outbox drained", a handful of lines per run.
    'log_level: info',
    'sys_interval: 1',
    'upstream:',
    `  - name: ${BRIDGE}`,
    `    url: mqtts://localhost:${tlsPort}`,
    `    tls: { ca_file: ${JSON.stringify(certs.caCert)} }`,
    `    topics: ["${RULE}"]`,
    `    max_inflight: ${s.maxInflight}`,
    // No cap: the default (1,000,000) would be just reached by the memory run.
    '    max_queued_messages: 0',
    '    reconnect_min: 0.05',
    '    reconnect_max: 0.5',
    '',
  ].join('\n');
}

/** A running bridging broker: the phases' view of it, and how to stop it. */
interface Running {
  readonly subject: Subject;
  stop(): Promise<void>;
}

/** A fresh Outpost on its own data dir, up, with the local `$SYS` reader attached and a first report in. */
async function startOutpost(ctx: UpstreamContext, dir: string, cloud: CloudMosquitto, certs: BenchCerts, label: string, report: BridgeReport): Promise<Running> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const file = join(dir, 'outpost.yaml');
  await writeFile(file, outpostConfig(dir, port, cloud.tlsPort, certs, ctx.settings));
  const prof = ctx.settings.cpuProfileDir;
  const profArgs = prof === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', prof, '--cpu-prof-name', `outpost-upstream-${label}.cpuprofile`];
  const outpost = await OutpostChild.start(ctx.janitor, ctx.paths.outpostCli, file, port, profArgs);
  const sys = new SysReader();
  const stop = async (): Promise<void> => {
    collectWarnings(outpost, report);
    sys.close();
    await outpost.stop();
  };
  try {
    await sys.attach(port, `$SYS/broker/bridge/${BRIDGE}/#`);
    const deadline = Date.now() + 5000;
    while (sys.number(BACKLOG_TOPIC) === undefined) {
      const why = outpost.dead();
      if (why !== undefined || Date.now() > deadline) throw new Error(`the bridge not in $SYS: ${why ?? 'not within 5 s'}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const subject: Subject = {
    pid: outpost.pid,
    port,
    dead: () => outpost.dead(),
    backlog: () => sys.number(BACKLOG_TOPIC),
    dataDir: join(dir, 'data'),
    connectedAt: async (since) => (await outpost.waitForLog('upstream connected', since, 1000)).at,
    drainedSeconds: async (since) => {
      const line = await outpost.waitForLog('outbox drained', since, 5000).catch(() => undefined);
      return typeof line?.seconds === 'number' ? line.seconds : undefined;
    },
  };
  return { subject, stop };
}

async function startMosquittoBridge(ctx: UpstreamContext, dir: string, cloud: CloudMosquitto, certs: BenchCerts): Promise<Running> {
  const s = ctx.settings;
  const bridge = await BridgeMosquitto.create(ctx.janitor, ctx.paths.mosquittoBin, dir, { certs, tlsPort: cloud.tlsPort, rule: RULE, maxInflight: s.maxInflight });
  await bridge.start();
  const pid = bridge.pid;
  if (pid === undefined) throw new Error('the bridging Mosquitto has no pid');
  const subject: Subject = {
    pid,
    port: bridge.port,
    dead: () => bridge.dead(),
    backlog: () => undefined,
    dataDir: undefined,
    // It logs its bridge connecting to the second only; its drain is timed from the first arrival.
    connectedAt: async () => undefined,
    drainedSeconds: async () => undefined,
  };
  return { subject, stop: () => bridge.stop() };
}

/** Outpost's unexpected warn-or-worse lines, once each, into the report. */
function collectWarnings(outpost: OutpostChild, report: BridgeReport): void {
  for (const r of outpost.records()) {
    if ((r.level !== 'warn' && r.level !== 'error' && r.level !== 'fatal') || EXPECTED_WARNINGS.has(r.msg)) continue;
    const line = `${r.level}: ${r.msg}${typeof r.reason === 'string' ? ` (${r.reason})` : ''}`;
    if (!report.warnings.includes(line) && report.warnings.length < 5) report.warnings.push(line);
  }
}

/** The drain run and the memory run of one bridging broker, each on a fresh process. */
async function measure(o: PhaseOptions, s: UpstreamSettings, cloud: CloudMosquitto, report: BridgeReport, tag: string, start: (label: string) => Promise<Running>): Promise<void> {
  let running: Running | undefined;
  try {
    const a: QueueFigures = { messages: s.drainMessages };
    report.drainRun = a;
    running = await start('drain');
    await fill(o, running.subject, a, `${tag}, drain run`, false);
    a.drain = await drain(o, running.subject, cloud, a.messages, `${tag}, drain run`);
    await running.stop();
    running = undefined;
    await cloud.stop();

    const b: QueueFigures = { messages: s.rssMessages };
    report.rssRun = b;
    running = await start('rss');
    await fill(o, running.subject, b, `${tag}, memory run`, true);
    if (s.drainRssBacklog) {
      b.drain = await drain(o, running.subject, cloud, b.messages, `${tag}, memory run`);
      await afterDrain(o, running.subject, b);
    }
  } catch (err) {
    report.status = 'failed';
    report.reason = errorMessage(err);
    log(`${tag}: failed: ${report.reason}`);
  } finally {
    await running?.stop();
    await cloud.stop();
  }
}

/** Outpost's runs, then Mosquitto's if asked, against one cloud whose consumer session outlives them all. */
export async function runUpstream(ctx: UpstreamContext): Promise<UpstreamReport> {
  const s = ctx.settings;
  const report: UpstreamReport = { outpost: { status: 'ok', warnings: [] } };
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-upstream-'));
  ctx.janitor.trackDir(dir);
  const o: PhaseOptions = {
    janitor: ctx.janitor, loadScript: ctx.loadScript, topicPrefix: TOPIC_PREFIX, consumerId: CONSUMER_ID, publishers: s.publishers,
    window: s.window, payloadBytes: s.payloadBytes, settleMs: s.settleMs, quietMs: s.quietMs, stallMs: 30_000,
  };
  try {
    const certs = await makeBenchCerts(dir);
    const cloud = await CloudMosquitto.create(ctx.janitor, ctx.paths.mosquittoBin, dir, certs, s.cloudMaxInflight);
    // The consumer's session and subscription exist before a bridge can send anything, so
    // nothing depends on whether the consumer or the bridge reconnects first.
    await cloud.start();
    await Consumer.makeSession(cloud.port, CONSUMER_ID, `${TOPIC_PREFIX}/#`);
    await cloud.stop();
    const outpost = report.outpost;
    await measure(o, s, cloud, outpost, '[outpost] upstream', (label) => startOutpost(ctx, join(dir, `outpost-${label}`), cloud, certs, label, outpost));
    if (ctx.mosquitto) {
      report.mosquitto = { status: 'ok', warnings: [] };
      await measure(o, s, cloud, report.mosquitto, '[mosquitto] bridge', (label) => startMosquittoBridge(ctx, join(dir, `mosquitto-${label}`), cloud, certs));
    }
  } catch (err) {
    // Before any run: certificates or the cloud.
    report.outpost.status = 'failed';
    report.outpost.reason = errorMessage(err);
    log(`[outpost] upstream: failed: ${report.outpost.reason}`);
  } finally {
    await ctx.janitor.removeDir(dir);
  }
  return report;
}
