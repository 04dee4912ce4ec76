import type { BrokerName } from './brokers.js';
import type { ThroughputResult } from './load-protocol.js';
import type { ProtocolVersion } from './wire.js';

/** Result records and their rendering as markdown tables. */

export type RunId = 'qos0-fan-in' | 'qos1-fan-in' | 'qos1-fan-in-v5' | 'qos0-fan-out' | 'qos1-fan-out';

export interface RunSpec {
  readonly id: RunId;
  readonly label: string;
  /** Protocol level of every client in the run. */
  readonly protocol: ProtocolVersion;
  readonly qos: 0 | 1;
  readonly publishers: number;
  readonly subscribers: number;
  /**
   * The same load at another protocol level. Each broker's rate in this run is shown as a share
   * of its rate in `run`; `goal` is the lowest share that meets the target.
   */
  readonly compareTo?: { readonly run: RunId; readonly goal: number };
}

export type RunOutcome =
  | {
      readonly status: 'ok';
      readonly result: ThroughputResult;
      /** Broker CPU (all threads) over the measured window, % of one core. */
      readonly brokerCpuPercent: number;
      /** CPU used by neither the broker nor the load generator (other tenants, steal), % of one core. */
      readonly otherCpuPercent: number;
      /** Delivered msg/s of every attempt when the run was repeated; the result is their median. */
      readonly attemptsPerSec: readonly number[];
    }
  | { readonly status: 'failed'; readonly reason: string }
  /** Not run because the broker lacks what the run needs (MQTT 5). */
  | { readonly status: 'unsupported'; readonly reason: string };

export interface IdleOutcome {
  readonly clients: number;
  readonly rssKb?: number;
  readonly connected?: number;
  readonly failed?: number;
  readonly dropped?: number;
  readonly error?: string;
}

export interface BrokerReport {
  readonly name: BrokerName;
  readonly label: string;
  status: 'ok' | 'failed to start';
  startError?: string;
  readonly runs: Partial<Record<RunId, RunOutcome>>;
  /** Highest of VmHWM and sampled VmRSS over the throughput runs. */
  peakRssKb?: number;
  readonly idle: IdleOutcome[];
  readonly notes: string[];
}

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly kernel: string;
  readonly node: string;
  readonly mosquitto: string;
  readonly aedes: string;
  /** 1-minute load average when the bench started: others' work on a shared box. */
  readonly loadAverage: number;
}

export interface Table {
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

/** A generator at or above this CPU share is probably what limits the run. */
const GENERATOR_SATURATED_PERCENT = 90;
const BROKER_SATURATED_PERCENT = 85;
/** QoS 1 deliveries below this share of acknowledged publishes (× subscribers) get a note. */
const LOSS_NOTE_RATIO = 0.9;
/** Other processes above this share of a core during a window make its number suspect. */
const NOISY_OTHER_PERCENT = 15;

export function formatRate(perSecond: number): string {
  return Math.round(perSecond).toLocaleString('en-US');
}

export function formatMb(kb: number): string {
  return (kb / 1024).toFixed(1);
}

function throughputCell(report: BrokerReport, run: RunSpec, comparisons: readonly ProtocolComparison[]): string {
  if (report.status === 'failed to start') return 'failed to start';
  const outcome = report.runs[run.id];
  if (outcome === undefined) return '—';
  if (outcome.status === 'unsupported') return `n/a (${outcome.reason})`;
  if (outcome.status === 'failed') return 'failed';
  const rate = formatRate(outcome.result.deliveredPerSec);
  const comparison = comparisons.find((c) => c.broker === report.name && c.run === run.id);
  if (comparison === undefined || comparison.ratio === null) return rate;
  return `${rate} (${comparison.ratio.toFixed(2)}× ${comparison.baselineProtocol})`;
}

function deliveredPerSec(report: BrokerReport | undefined, id: RunId): number | undefined {
  const outcome = report?.runs[id];
  return outcome?.status === 'ok' ? outcome.result.deliveredPerSec : undefined;
}

/** One broker's rate in a run with `compareTo` against its rate in the baseline run. */
export interface ProtocolComparison {
  readonly broker: BrokerName;
  readonly run: RunId;
  readonly baseline: RunId;
  /** "v3.1.1": what the table cell says the ratio is against. */
  readonly baselineProtocol: string;
  readonly perSec: number | null;
  readonly baselinePerSec: number | null;
  /** perSec / baselinePerSec; null when either run did not complete. */
  readonly ratio: number | null;
  /** Why `ratio` is null: "n/a (no MQTT 5)", "failed (see notes)", "no qos1-fan-in rate". */
  readonly missing: string | null;
  readonly goal: number;
  readonly meetsGoal: boolean | null;
}

function whyMissing(report: BrokerReport, run: RunId, baseline: RunId): string | null {
  const outcome = report.runs[run];
  if (report.status === 'failed to start') return 'failed to start';
  if (outcome?.status === 'unsupported') return `n/a (${outcome.reason})`;
  if (outcome?.status === 'failed') return 'failed (see notes)';
  if (outcome === undefined) return 'not run';
  const base = report.runs[baseline];
  return base?.status === 'ok' && base.result.deliveredPerSec > 0 ? null : `no ${baseline} rate`;
}

const PROTOCOL_NAMES: Readonly<Record<ProtocolVersion, string>> = { 4: 'v3.1.1', 5: 'v5' };

function comparisonFor(report: BrokerReport, run: RunSpec, runs: readonly RunSpec[]): ProtocolComparison | undefined {
  if (run.compareTo === undefined) return undefined;
  const { run: baseline, goal } = run.compareTo;
  const baselineSpec = runs.find((r) => r.id === baseline);
  const perSec = deliveredPerSec(report, run.id) ?? null;
  const baselinePerSec = deliveredPerSec(report, baseline) ?? null;
  const missing = whyMissing(report, run.id, baseline);
  const ratio = missing === null && perSec !== null && baselinePerSec !== null ? perSec / baselinePerSec : null;
  return {
    broker: report.name,
    run: run.id,
    baseline,
    baselineProtocol: baselineSpec === undefined ? baseline : PROTOCOL_NAMES[baselineSpec.protocol],
    perSec,
    baselinePerSec,
    ratio,
    missing,
    goal,
    meetsGoal: ratio === null ? null : ratio >= goal,
  };
}

/** Every broker × every run that has a baseline, including the ones that could not be compared. */
export function protocolComparisons(reports: readonly BrokerReport[], runs: readonly RunSpec[]): ProtocolComparison[] {
  return runs.flatMap((run) => reports.flatMap((r) => comparisonFor(r, run, runs) ?? []));
}

/** One line per compared run: each broker's share and whether it meets the goal. */
export function comparisonLines(
  comparisons: readonly ProtocolComparison[],
  reports: readonly BrokerReport[],
  runs: readonly RunSpec[],
): string[] {
  return runs.flatMap((run) => {
    const mine = comparisons.filter((c) => c.run === run.id);
    const first = mine[0];
    if (first === undefined) return [];
    const cells = mine.map((c) => {
      const label = reports.find((r) => r.name === c.broker)?.label ?? c.broker;
      if (c.ratio === null) return `${label} ${c.missing ?? '—'}`;
      return `${label} ${c.ratio.toFixed(2)}× (${c.meetsGoal === true ? 'meets' : 'misses'} it)`;
    });
    return [`${run.label} ÷ its ${first.baselineProtocol} row (goal ≥ ${first.goal.toFixed(2)}×): ${cells.join(', ')}`];
  });
}

function ratioCell(reports: readonly BrokerReport[], id: RunId): string {
  const outpost = deliveredPerSec(reports.find((r) => r.name === 'outpost'), id);
  const mosquitto = deliveredPerSec(reports.find((r) => r.name === 'mosquitto'), id);
  if (outpost === undefined || mosquitto === undefined || mosquitto === 0) return '—';
  return `${(outpost / mosquitto).toFixed(2)}×`;
}

function idleCell(report: BrokerReport, clients: number): string {
  if (report.status === 'failed to start') return 'failed to start';
  const outcome = report.idle.find((o) => o.clients === clients);
  if (outcome === undefined) return '—';
  if (outcome.rssKb === undefined) return 'failed';
  const mb = formatMb(outcome.rssKb);
  const connected = outcome.connected ?? clients;
  return connected === clients ? mb : `${mb} (${connected.toLocaleString('en-US')} connected)`;
}

export function resultsTable(
  reports: readonly BrokerReport[],
  runs: readonly RunSpec[],
  idleClients: readonly number[],
): Table {
  const withRatio = reports.some((r) => r.name === 'outpost') && reports.some((r) => r.name === 'mosquitto');
  const header = ['Measurement', ...reports.map((r) => r.label), ...(withRatio ? ['Outpost / Mosquitto'] : [])];
  const comparisons = protocolComparisons(reports, runs);
  const rows: string[][] = [];
  for (const run of runs) {
    rows.push([
      `${run.label} (msg/s delivered)`,
      ...reports.map((r) => throughputCell(r, run, comparisons)),
      ...(withRatio ? [ratioCell(reports, run.id)] : []),
    ]);
  }
  const noRatio = withRatio ? ['—'] : [];
  if (runs.length > 0) {
    rows.push([
      'Peak RSS during throughput runs (MB)',
      ...reports.map((r) =>
        r.status === 'failed to start' ? 'failed to start' : r.peakRssKb === undefined ? '—' : formatMb(r.peakRssKb),
      ),
      ...noRatio,
    ]);
  }
  for (const clients of idleClients) {
    rows.push([
      `Idle RSS, ${clients.toLocaleString('en-US')} clients (MB)`,
      ...reports.map((r) => idleCell(r, clients)),
      ...noRatio,
    ]);
  }
  return { header, rows };
}

/**
 * What went in and where the CPU went in each run: tells a broker limit from a load-generator
 * limit, and shows when a broker accepted more than it delivered.
 */
export function detailTable(reports: readonly BrokerReport[], runs: readonly RunSpec[]): Table {
  const header = [
    'Per run: published msg/s · CPU of broker · generator · other processes',
    ...reports.map((r) => r.label),
  ];
  const rows = runs.map((run) => [
    run.label,
    ...reports.map((r) => {
      const outcome = r.runs[run.id];
      if (outcome?.status !== 'ok') return '—';
      const { result } = outcome;
      return (
        `${formatRate(result.publishedPerSec)} · ${Math.round(outcome.brokerCpuPercent)}% · ` +
        `${Math.round(result.loadCpuPercent)}% · ${Math.round(outcome.otherCpuPercent)}%`
      );
    }),
  ]);
  return { header, rows };
}

/** Facts a reader needs to trust (or distrust) a number, one line each. */
export function notes(reports: readonly BrokerReport[], runs: readonly RunSpec[], window: number): string[] {
  const out: string[] = [];
  for (const r of reports) {
    if (r.startError !== undefined) out.push(`${r.label} failed to start: ${r.startError}`);
    for (const run of runs) {
      const outcome = r.runs[run.id];
      // 'unsupported' says all there is to say in its cell.
      if (outcome === undefined || outcome.status === 'unsupported') continue;
      if (outcome.status === 'failed') {
        out.push(`${r.label}, ${run.label}: failed: ${outcome.reason}`);
        continue;
      }
      const { result, brokerCpuPercent, otherCpuPercent } = outcome;
      if (otherCpuPercent > NOISY_OTHER_PERCENT) {
        out.push(
          `${r.label}, ${run.label}: other processes used ${Math.round(otherCpuPercent)}% of a core during the ` +
            `window; the number is noisy`,
        );
      }
      if (outcome.attemptsPerSec.length > 1) {
        out.push(
          `${r.label}, ${run.label}: median of ${outcome.attemptsPerSec.map(formatRate).join(' / ')} msg/s`,
        );
      }
      if (result.loadCpuPercent >= GENERATOR_SATURATED_PERCENT && brokerCpuPercent < BROKER_SATURATED_PERCENT) {
        out.push(
          `${r.label}, ${run.label}: load generator saturated (${Math.round(result.loadCpuPercent)}% CPU, broker ` +
            `${Math.round(brokerCpuPercent)}%): the broker may do more than measured`,
        );
      }
      // QoS 1 only: at QoS 0 "published" counts bytes the kernel took, not what the broker read.
      const expected = result.publishedPerSec * run.subscribers;
      if (run.qos === 1 && expected > 0 && result.deliveredPerSec < expected * LOSS_NOTE_RATIO) {
        out.push(
          `${r.label}, ${run.label}: acknowledged ${formatRate(result.publishedPerSec)} msg/s from publishers ` +
            `but delivered ${formatRate(result.deliveredPerSec)} (${formatRate(expected)} expected); ` +
            (result.missing > 0 ? 'it dropped messages (see below)' : 'the rest was still queued'),
        );
      }
      if (result.missing > 0) {
        const share = (result.missing / (result.missing + result.receivedTotal)) * 100;
        out.push(
          `${r.label}, ${run.label}: ${result.missing.toLocaleString('en-US')} messages (${share.toFixed(1)}%) ` +
            `never reached a subscriber (gaps in sequence numbers)` +
            (run.qos === 0 ? '; QoS 0 allows this' : '; a per-client queue limit (Mosquitto: max_queued_messages 1000)'),
        );
      }
      if (result.outOfOrder > 0) {
        out.push(
          `${r.label}, ${run.label}: ${result.outOfOrder.toLocaleString('en-US')} PUBLISHes arrived twice or ` +
            'out of order (per publisher)',
        );
      }
      if (result.unexpectedCloses > 0) {
        out.push(`${r.label}, ${run.label}: ${result.unexpectedCloses} connection(s) closed during the run`);
      }
      if (result.anomalies > 0) {
        out.push(`${r.label}, ${run.label}: ${result.anomalies} malformed PUBLISH / unknown PUBACK`);
      }
      if (run.qos === 1 && result.receiveMaximum < window) {
        out.push(
          `${r.label}, ${run.label}: the broker's CONNACK set Receive Maximum ${result.receiveMaximum}, so each ` +
            `publisher kept ${result.receiveMaximum} PUBLISHes in flight, not ${window}`,
        );
      }
      if (result.refusedAcks > 0) {
        out.push(
          `${r.label}, ${run.label}: ${result.refusedAcks.toLocaleString('en-US')} PUBACKs carried a failure ` +
            'reason code (>= 0x80); those PUBLISHes are not counted as published',
        );
      }
    }
    for (const idle of r.idle) {
      if (idle.error !== undefined) out.push(`${r.label}, idle ${idle.clients} clients: ${idle.error}`);
      if ((idle.failed ?? 0) > 0 || (idle.dropped ?? 0) > 0) {
        out.push(
          `${r.label}, idle ${idle.clients} clients: ${idle.connected ?? 0} connected, ` +
            `${idle.failed ?? 0} failed to connect, ${idle.dropped ?? 0} dropped after CONNACK`,
        );
      }
    }
    for (const note of r.notes) out.push(`${r.label}: ${note}`);
  }
  return out;
}

function isNumericCell(cell: string): boolean {
  return /^[\d,.]+(×| \(.*\))?$/.test(cell) || /^[\d,]+( · \d+%)+$/.test(cell);
}

/** Markdown with padded columns so it also reads well in a terminal. */
export function renderMarkdown(table: Table): string {
  const widths = table.header.map((h, i) => Math.max(h.length, ...table.rows.map((row) => (row[i] ?? '').length)));
  const rightAligned = table.header.map((_, i) => i > 0 && table.rows.some((row) => isNumericCell(row[i] ?? '')));
  const line = (cells: readonly string[]): string =>
    `| ${cells
      .map((cell, i) => {
        const width = widths[i] ?? 0;
        return rightAligned[i] === true ? cell.padStart(width) : cell.padEnd(width);
      })
      .join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (rightAligned[i] === true ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(table.header), rule, ...table.rows.map(line)].join('\n');
}

export function machineLine(machine: MachineInfo): string {
  return (
    `Machine: ${machine.cpuModel}, ${machine.cores} cores, Linux ${machine.kernel}; ` +
    `Node ${machine.node}; mosquitto ${machine.mosquitto}; aedes ${machine.aedes}; ` +
    `load average ${machine.loadAverage.toFixed(2)} at start`
  );
}

