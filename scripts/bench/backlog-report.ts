import type { BacklogFigures, BacklogReport, BacklogSettings } from './backlog.js';
import type { MemorySample } from './proc.js';
import { formatMb, formatRate, type Table } from './report.js';

/** The backlog run's table, goals and notes. */

/** Outpost's targets for the backlog run. */
export const BACKLOG_GOALS = {
  /** RSS with the backlog queued, minus idle RSS. */
  rssGrowthMb: 20,
  startupMs: 2000,
  drainPerSec: 20_000,
} as const;

export function backlogSettingsLine(s: BacklogSettings): string {
  return (
    `Backlog: 1 persistent subscriber (MQTT 3.1.1, clean session 0, QoS 1 on backlog/#) offline while ` +
    `${s.publishers} publishers queue ${s.messages.toLocaleString('en-US')} × ${s.payloadBytes} B QoS 1 ` +
    `(sequence number + random bytes, window ${s.window} each); broker restarted with SIGTERM on the same ` +
    `data dir; subscriber reconnects and drains. RSS "with the backlog" and "after the drain" read after ` +
    `${s.quietMs / 1000} s without load. Outpost: durability sync, max_queued_messages 0, max_queued_bytes 0. ` +
    `Mosquitto: persistence true, max_queued_messages 0, max_inflight_messages 20`
  );
}

type Cell = (f: BacklogFigures) => string | undefined;

function rssGrowthKb(f: BacklogFigures): number | undefined {
  return f.backlogRss === undefined || f.idleRss === undefined ? undefined : f.backlogRss.rssKb - f.idleRss.rssKb;
}

const seconds = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : (ms / 1000).toFixed(2));
const kb = (v: number | undefined): string | undefined => (v === undefined ? undefined : formatMb(v));
const bytes = (v: number | undefined): string | undefined =>
  v === undefined ? undefined : `${formatMb(v / 1024)} (${v.toLocaleString('en-US')} B)`;
/** "68.9 (anon 23.0 · file 45.9)". */
const split = (m: MemorySample | undefined): string | undefined =>
  m === undefined
    ? undefined
    : `${formatMb(m.rssKb)}${m.rssAnonKb === undefined || m.rssFileKb === undefined ? '' : ` (anon ${formatMb(m.rssAnonKb)} · file ${formatMb(m.rssFileKb)})`}`;
const rate = (v: number | undefined): string | undefined => (v === undefined ? undefined : formatRate(v));
const percent = (v: number | undefined): string | undefined => (v === undefined ? undefined : `${Math.round(v)}%`);

const ROWS: readonly (readonly [string, Cell])[] = [
  ['Publish rate (msg/s acknowledged)', (f) => rate(f.publishPerSec)],
  ['Publish time (s)', (f) => seconds(f.publishMs)],
  ['Broker CPU while publishing (% of a core)', (f) => percent(f.brokerCpuPublishPercent)],
  ['Peak RSS while publishing (MB)', (f) => kb(f.peakRssPublishKb)],
  ['Idle RSS right before the run (MB)', (f) => split(f.idleRss)],
  ['RSS right after publishing (MB)', (f) => kb(f.rssAfterPublishKb)],
  ['RSS with the backlog queued, after a quiet spell (MB)', (f) => split(f.backlogRss)],
  [`RSS with the backlog − idle RSS (MB; Outpost goal ≤ ${BACKLOG_GOALS.rssGrowthMb})`, (f) => kb(rssGrowthKb(f))],
  ['Data dir with the backlog, broker running (MB)', (f) => bytes(f.diskRunningBytes)],
  ['Shutdown, SIGTERM → exit (s)', (f) => seconds(f.shutdownMs)],
  ['Data dir after shutdown (MB)', (f) => bytes(f.diskStoppedBytes)],
  ['Startup on an empty data dir, to listening (s)', (f) => seconds(f.startupEmptyMs)],
  [
    `Startup on the backlog, to listening (s; Outpost goal < ${BACKLOG_GOALS.startupMs / 1000})`,
    (f) => seconds(f.startupListenMs),
  ],
  ['Startup on the backlog, to ready log line (s)', (f) => seconds(f.startupReadyLineMs)],
  ['RSS after restart, backlog still queued (MB)', (f) => split(f.restartRss)],
  ['Session present on reconnect', (f) => (f.drain === undefined ? undefined : f.drain.sessionPresent ? 'yes' : 'NO')],
  ['Reconnect: CONNACK after (ms)', (f) => (f.drain === undefined ? undefined : f.drain.connackMs.toFixed(1))],
  [
    'Reconnect: first message after (ms)',
    (f) => (f.drain === undefined || f.drain.firstMessageMs < 0 ? undefined : f.drain.firstMessageMs.toFixed(1)),
  ],
  [`Drain rate (msg/s; Outpost goal ≥ ${formatRate(BACKLOG_GOALS.drainPerSec)})`, (f) => rate(f.drainPerSec)],
  ['Drain time (s)', (f) => seconds(f.drain?.elapsedMs)],
  ['Broker CPU while draining (% of a core)', (f) => percent(f.brokerCpuDrainPercent)],
  ['Peak RSS while draining (MB)', (f) => kb(f.peakRssDrainKb)],
  ['Received (PUBLISH packets)', (f) => rate(f.drain?.received)],
  ['Missing sequence numbers (gaps)', (f) => rate(f.missing)],
  ['Duplicates', (f) => rate(f.drain?.duplicates)],
  ['Out of order (per publisher)', (f) => rate(f.drain?.outOfOrder)],
  ['RSS after the drain and a quiet spell (MB)', (f) => split(f.afterDrainRss)],
  ['Data dir after the drain (MB)', (f) => bytes(f.diskAfterDrainBytes)],
];

export function backlogTable(reports: readonly BacklogReport[], s: BacklogSettings): Table {
  const header = [
    `Backlog of ${s.messages.toLocaleString('en-US')} × ${s.payloadBytes} B, QoS 1, offline persistent session`,
    ...reports.map((r) => r.label),
  ];
  const rows = ROWS.map(([label, cell], row) => [
    label,
    ...reports.map((r) => {
      // The reason once, at the top of the column.
      if (r.status === 'n/a') return row === 0 && r.reason !== undefined ? `n/a (${r.reason})` : 'n/a';
      return cell(r.figures) ?? (r.status === 'failed' ? 'failed' : '—');
    }),
  ]);
  return { header, rows };
}

/** Outpost against its goals, one line; empty if Outpost was not in the run. */
export function backlogGoalLine(reports: readonly BacklogReport[]): string[] {
  const f = reports.find((r) => r.name === 'outpost')?.figures;
  if (f === undefined) return [];
  const verdict = (value: number | undefined, ok: (v: number) => boolean, shown: (v: number) => string): string =>
    value === undefined ? 'not measured' : `${shown(value)} (${ok(value) ? 'meets' : 'misses'} it)`;
  const growthKb = rssGrowthKb(f);
  const growth = growthKb === undefined ? undefined : growthKb / 1024;
  return [
    `Outpost backlog goals: RSS growth ≤ ${BACKLOG_GOALS.rssGrowthMb} MB: ` +
      `${verdict(growth, (v) => v <= BACKLOG_GOALS.rssGrowthMb, (v) => `${v.toFixed(1)} MB`)}; ` +
      `startup < ${BACKLOG_GOALS.startupMs / 1000} s: ` +
      `${verdict(f.startupListenMs, (v) => v < BACKLOG_GOALS.startupMs, (v) => `${(v / 1000).toFixed(2)} s`)}; ` +
      `drain ≥ ${formatRate(BACKLOG_GOALS.drainPerSec)} msg/s: ` +
      `${verdict(f.drainPerSec, (v) => v >= BACKLOG_GOALS.drainPerSec, (v) => `${formatRate(v)} msg/s`)}; ` +
      `no loss: ${f.missing === undefined ? 'not measured' : f.missing === 0 ? 'none missing (meets it)' : `${f.missing} missing (misses it)`}`,
  ];
}

export function backlogNotes(reports: readonly BacklogReport[]): string[] {
  const out: string[] = [];
  for (const r of reports) {
    const f = r.figures;
    const who = `${r.label}, backlog`;
    if (r.status === 'failed') out.push(`${who}: failed: ${r.reason ?? 'unknown'}`);
    if (r.name === 'mosquitto' && f.publishPerSec !== undefined) {
      out.push(
        `${who}: Mosquitto acknowledges QoS 1 before anything reaches disk (it writes its persistence file only ` +
          'on shutdown or every autosave_interval), Outpost after an fsync (durability sync): the publish rates ' +
          'price different guarantees',
      );
    }
    if (f.shutdownExit !== undefined && f.shutdownExit !== 'exit code 0') {
      out.push(`${who}: the broker ended with ${f.shutdownExit} on SIGTERM`);
    }
    const fileGrowthKb = (f.afterDrainRss?.rssFileKb ?? 0) - (f.idleRss?.rssFileKb ?? 0);
    if (r.name === 'outpost' && fileGrowthKb > 10 * 1024) {
      out.push(
        `${who}: ${formatMb(fileGrowthKb)} MB more of its RSS is file-backed after the drain than when idle: ` +
          "LevelDB's memory-mapped table files it read the queue from (clean page cache the kernel can take back)",
      );
    }
    const d = f.drain;
    if (d === undefined) continue;
    const left = f.diskAfterDrainBytes;
    if (left !== undefined && f.diskRunningBytes !== undefined && (f.missing ?? 1) === 0 && left > 1024 * 1024) {
      const why =
        r.name === 'outpost'
          ? `${formatMb(f.diskRunningBytes / 1024)} MB with the backlog): LevelDB gives the space of deleted ` +
            'entries back only when compaction rewrites their tables'
          : 'its persistence file, written at the shutdown, keeps the drained messages until its next save)';
      out.push(`${who}: the data dir still holds ${formatMb(left / 1024)} MB after the queue drained (${why}`);
    }
    if (!d.sessionPresent) out.push(`${who}: CONNACK said no session was present after the restart`);
    if (d.stalled) out.push(`${who}: the drain stopped: nothing arrived for 30 s`);
    if ((f.missing ?? 0) > 0) out.push(`${who}: ${formatRate(f.missing ?? 0)} acknowledged messages never arrived`);
    if (d.dupFlag > 0) out.push(`${who}: ${formatRate(d.dupFlag)} PUBLISHes came with the DUP flag (redelivered)`);
    if (d.anomalies > 0) out.push(`${who}: ${d.anomalies} PUBLISHes with a payload the bench did not send`);
    if (d.unexpectedCloses > 0) out.push(`${who}: the broker closed the subscriber's connection during the drain`);
  }
  return out;
}
