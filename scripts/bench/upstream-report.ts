import { BROKER_LABELS, type BrokerName } from './brokers.js';
import type { MemorySample } from './proc.js';
import { formatMb, formatRate, type Table } from './report.js';
import type { BridgeReport, DrainFigures, QueueFigures, UpstreamReport, UpstreamSettings } from './upstream.js';

/** The upstream run's settings line, table, goals and notes. */

/** Issue 6's targets. */
export const UPSTREAM_GOALS = {
  /** Backlog of 100,000 drained to the TLS upstream on loopback. */
  drainPerSec: 10_000,
  /** RSS with the big backlog queued, minus idle RSS. */
  rssGrowthMb: 20,
} as const;

/** A process at or above this share of a core probably limits the drain. */
const SATURATED_PERCENT = 90;

const count = (n: number): string => n.toLocaleString('en-US');

export function upstreamSettingsLine(s: UpstreamSettings, mosquittoVersion: string, mosquitto: boolean): string {
  return (
    `Upstream: ${mosquitto ? "Outpost's bridge, then Mosquitto's own bridge for comparison" : "Outpost's bridge"}, MQTT 3.1.1 ` +
    `over TLS (EC P-256 certificates from a throwaway CA, verified) to a cloud Mosquitto ${mosquittoVersion} on loopback ` +
    `(persistence true, max_queued_messages 0, max_inflight_messages ${s.cloudMaxInflight}); rule "bench/# out 1", ` +
    `window of ${s.maxInflight} unacknowledged upstream; Outpost with durability sync and reconnect 0.05-0.5 s. With the cloud ` +
    `down, ${s.publishers} local publishers queue QoS 1 messages of ${s.payloadBytes} B (random, window ${s.window} each); then ` +
    `the cloud starts and a consumer on a persistent session (plain listener, QoS 1) ticks off every message. Drain run: ` +
    `${count(s.drainMessages)} messages, timed from Outpost's "upstream connected" log line to the last arrival. Memory run: ` +
    `a fresh process queues ${count(s.rssMessages)}; RSS read after ${s.quietMs / 1000} s without load` +
    `${s.drainRssBacklog ? ', then that backlog is drained too' : ''}`
  );
}

type Who = 'outpost' | 'mosquitto';
type Cell = (f: QueueFigures, who: Who) => string | undefined;

const mb = (kb: number | undefined): string | undefined => (kb === undefined ? undefined : formatMb(kb));
const rate = (v: number | undefined): string | undefined => (v === undefined ? undefined : formatRate(v));
const seconds = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : (ms / 1000).toFixed(2));
const percent = (v: number | undefined): string | undefined => (v === undefined ? undefined : `${Math.round(v)}%`);
/** "68.9 (anon 23.0 · file 45.9)". */
const split = (m: MemorySample | undefined): string | undefined =>
  m === undefined
    ? undefined
    : `${formatMb(m.rssKb)}${m.rssAnonKb === undefined || m.rssFileKb === undefined ? '' : ` (anon ${formatMb(m.rssAnonKb)} · file ${formatMb(m.rssFileKb)})`}`;
const cpu = (d: DrainFigures): string =>
  `${Math.round(d.subjectCpuPercent)}% / ${Math.round(d.cloudCpuPercent)}% / ${Math.round(d.benchCpuPercent)}%`;
const quality = (d: DrainFigures): string => `${count(d.missing)} / ${count(d.tally.duplicates)} / ${count(d.tally.outOfOrder)}`;
const onDrain = (get: (d: DrainFigures) => string | undefined): Cell => (f) => (f.drain === undefined ? undefined : get(f.drain));

function rssGrowthKb(f: QueueFigures | undefined): number | undefined {
  return f?.backlogRss === undefined || f.idleRss === undefined ? undefined : f.backlogRss.rssKb - f.idleRss.rssKb;
}

/** Rows about draining, for whichever run drained. */
function drainRows(prefix: string): (readonly [string, Cell])[] {
  return [
    [`${prefix}: cloud start → bridge connected (s; includes the reconnect backoff)`, onDrain((d) => seconds(d.reconnectMs))],
    [
      `${prefix}: drain rate, bridge connected → last message at the consumer (msg/s; goal ≥ ${formatRate(UPSTREAM_GOALS.drainPerSec)})`,
      onDrain((d) => rate(d.drainPerSec)),
    ],
    [`${prefix}: drain time (s)`, onDrain((d) => seconds(d.drainMs))],
    [`${prefix}: bridge connected → first message at the consumer (ms)`, onDrain((d) => d.firstMessageMs?.toFixed(1))],
    [`${prefix}: rate from the first to the last arrival (msg/s)`, onDrain((d) => rate(d.flowPerSec))],
    [`${prefix}: the bridge's own drain report (msg/s)`, onDrain((d) => rate(d.ownPerSec))],
    [`${prefix}: CPU while draining, bridge / cloud / consumer (% of a core)`, onDrain(cpu)],
    [`${prefix}: peak RSS of the bridge while draining (MB)`, onDrain((d) => mb(d.peakRssKb))],
    [`${prefix}: missing / duplicates / out of order`, onDrain(quality)],
  ];
}

function rowsFor(s: UpstreamSettings): readonly (readonly [string, 'drainRun' | 'rssRun', Cell])[] {
  const a = `Drain run (${count(s.drainMessages)})`;
  const b = `Memory run (${count(s.rssMessages)})`;
  const inRun = <R extends 'drainRun' | 'rssRun'>(run: R, rows: readonly (readonly [string, Cell])[]): (readonly [string, R, Cell])[] =>
    rows.map(([label, cell]) => [label, run, cell] as const);
  return [
    ...inRun('drainRun', [
      [`${a}: publish with the cloud down (msg/s acknowledged)`, (f) => rate(f.publishPerSec)],
      [`${a}: backlog the bridge reported before the cloud returned`, (f) => rate(f.reportedBacklog)],
      ...drainRows(a),
    ]),
    ...inRun('rssRun', [
      [`${b}: idle RSS, bridge retrying a cloud that is down (MB)`, (f) => split(f.idleRss)],
      [`${b}: publish with the cloud down (msg/s acknowledged)`, (f) => rate(f.publishPerSec)],
      [`${b}: CPU while publishing (% of a core)`, (f) => percent(f.cpuPublishPercent)],
      [`${b}: peak RSS while publishing (MB)`, (f) => mb(f.peakRssPublishKb)],
      [`${b}: RSS with the backlog queued, after a quiet spell (MB)`, (f) => split(f.backlogRss)],
      [`${b}: RSS with the backlog − idle RSS (MB; goal ≤ ${UPSTREAM_GOALS.rssGrowthMb})`, (f) => mb(rssGrowthKb(f))],
      [
        `${b}: data dir with the backlog (MB)`,
        (f, who) => (who === 'mosquitto' ? 'none (in memory)' : f.diskBytes === undefined ? undefined : `${formatMb(f.diskBytes / 1024)} (${count(f.diskBytes)} B)`),
      ],
      ...(s.drainRssBacklog ? [...drainRows(b), [`${b}: RSS after the drain and a quiet spell (MB)`, (f: QueueFigures) => split(f.afterDrainRss)] as const] : []),
    ]),
  ];
}

function reportOf(report: UpstreamReport, broker: BrokerName): BridgeReport | undefined {
  return broker === 'outpost' ? report.outpost : broker === 'mosquitto' ? report.mosquitto : undefined;
}

export function upstreamTable(report: UpstreamReport, s: UpstreamSettings, brokers: readonly BrokerName[]): Table {
  const header = [`Upstream bridge to a TLS cloud broker, ${s.payloadBytes} B QoS 1`, ...brokers.map((b) => BROKER_LABELS[b])];
  const rows = rowsFor(s).map(([label, run, cell], row) => [
    label,
    ...brokers.map((b) => {
      const r = reportOf(report, b);
      if (r === undefined || b === 'aedes') return row === 0 ? 'n/a (no bridge)' : 'n/a';
      const who: Who = b === 'outpost' ? 'outpost' : 'mosquitto';
      const f = r[run];
      return (f === undefined ? undefined : cell(f, who)) ?? (r.status === 'failed' ? 'failed' : '—');
    }),
  ]);
  return { header, rows };
}

/** Outpost against issue 6's targets, one line. */
export function upstreamGoalLine(report: UpstreamReport, s: UpstreamSettings): string[] {
  const verdict = (value: number | undefined, ok: (v: number) => boolean, shown: (v: number) => string): string =>
    value === undefined ? 'not measured' : `${shown(value)} (${ok(value) ? 'meets' : 'misses'} it)`;
  const r = report.outpost;
  const d = r.drainRun?.drain;
  const growthKb = rssGrowthKb(r.rssRun);
  const lost = [r.drainRun?.drain, r.rssRun?.drain].flatMap((x) => (x === undefined ? [] : [x.missing]));
  return [
    `Outpost upstream goals: drain of ${count(s.drainMessages)} to the TLS upstream ≥ ${formatRate(UPSTREAM_GOALS.drainPerSec)} msg/s: ` +
      `${verdict(d?.drainPerSec, (v) => v >= UPSTREAM_GOALS.drainPerSec, (v) => `${formatRate(v)} msg/s`)}; ` +
      `RSS with ${count(s.rssMessages)} queued ≤ ${UPSTREAM_GOALS.rssGrowthMb} MB over idle: ` +
      `${verdict(growthKb === undefined ? undefined : growthKb / 1024, (v) => v <= UPSTREAM_GOALS.rssGrowthMb, (v) => `+${v.toFixed(1)} MB`)}; ` +
      `no loss: ${lost.length === 0 ? 'not measured' : lost.every((n) => n === 0) ? 'none missing (meets it)' : `${lost.join(' + ')} missing (misses it)`}`,
  ];
}

function drainNotes(who: string, d: DrainFigures, cores: number): string[] {
  const out: string[] = [];
  if (d.stalled) out.push(`${who}: the drain stopped: nothing new reached the consumer for 30 s`);
  if (d.missing > 0) out.push(`${who}: ${count(d.missing)} acknowledged messages never reached the cloud consumer`);
  if (d.tally.dupFlag > 0) out.push(`${who}: ${count(d.tally.dupFlag)} PUBLISHes reached the consumer with the DUP flag`);
  if (d.tally.anomalies > 0) out.push(`${who}: ${count(d.tally.anomalies)} PUBLISHes with a payload the bench did not send`);
  if (d.tally.closed) out.push(`${who}: the cloud closed the consumer's connection during the drain`);
  if (d.benchCpuPercent >= SATURATED_PERCENT) out.push(`${who}: the consumer (this process) used ${Math.round(d.benchCpuPercent)}% CPU and may limit the drain`);
  if (d.cloudCpuPercent >= SATURATED_PERCENT) out.push(`${who}: the cloud Mosquitto used ${Math.round(d.cloudCpuPercent)}% CPU and may limit the drain`);
  const total = d.subjectCpuPercent + d.cloudCpuPercent + d.benchCpuPercent;
  if (total >= cores * 100 * 0.85) {
    out.push(`${who}: the bridge, the cloud and the consumer together used ${Math.round(total)}% of ${cores} cores: they compete for CPU here`);
  }
  return out;
}

function bridgeNotes(label: string, r: BridgeReport, cores: number): string[] {
  const out: string[] = [];
  if (r.status === 'failed') out.push(`${label}: failed: ${r.reason ?? 'unknown'}`);
  for (const line of r.warnings) out.push(`${label}: logged ${line}`);
  if (r.drainRun?.drain !== undefined) out.push(...drainNotes(`${label}, drain run`, r.drainRun.drain, cores));
  if (r.rssRun?.drain !== undefined) out.push(...drainNotes(`${label}, memory run`, r.rssRun.drain, cores));
  return out;
}

export function upstreamNotes(report: UpstreamReport, cores: number): string[] {
  const who = 'Outpost, upstream';
  const r = report.outpost;
  const out = bridgeNotes(who, r, cores);
  if (r.drainRun?.drain?.ownPerSec !== undefined) {
    out.push(
      `${who}: the bridge's own report is Outpost's "outbox drained" log line, from its first send after the CONNACK to the ` +
        `last PUBACK; the drain rate above runs on to the last message at the consumer`,
    );
  }
  if (r.rssRun?.idleRss !== undefined) {
    out.push(`${who}: idle RSS includes MQTT.js and Node's TLS, loaded for the bridge; the backlog's growth is read against that idle`);
  }
  const fileGrowthKb = (r.rssRun?.afterDrainRss?.rssFileKb ?? 0) - (r.rssRun?.idleRss?.rssFileKb ?? 0);
  if (fileGrowthKb > 10 * 1024) {
    out.push(
      `${who}, memory run: ${formatMb(fileGrowthKb)} MB more of its RSS is file-backed after the drain than when idle: ` +
        "LevelDB's memory-mapped table files it read the outbox from (clean page cache the kernel can take back)",
    );
  }
  const m = report.mosquitto;
  if (m !== undefined) {
    const label = 'Mosquitto, bridge';
    out.push(...bridgeNotes(label, m, cores));
    out.push(
      `${label}: its own bridge (cleansession false, the same rule, TLS, max_inflight_messages, cloud and consumer), with ` +
        'persistence false: it acknowledges and queues in memory, so a crash or power cut loses the backlog; Outpost ' +
        'acknowledges after an fsync. Its drain is timed from the first arrival: it logs its bridge connecting to the ' +
        'second only, and restart_timeout takes whole seconds',
    );
    const ratio = (x: number | undefined, y: number | undefined): string => (x === undefined || y === undefined || y === 0 ? '—' : `${(x / y).toFixed(2)}×`);
    const growth = (f: QueueFigures | undefined): string => mb(rssGrowthKb(f)) ?? '—';
    out.push(
      `Outpost / Mosquitto bridge: drain (first to last arrival) ${ratio(r.drainRun?.drain?.flowPerSec, m.drainRun?.drain?.flowPerSec)} ` +
        `on ${count(r.drainRun?.messages ?? 0)}, ${ratio(r.rssRun?.drain?.flowPerSec, m.rssRun?.drain?.flowPerSec)} on ${count(r.rssRun?.messages ?? 0)}; ` +
        `RSS growth with the backlog ${growth(r.rssRun)} MB against ${growth(m.rssRun)} MB`,
    );
  }
  return out;
}
