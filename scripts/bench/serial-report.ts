import { BROKER_LABELS, type BrokerName } from './brokers.js';
import { formatRate, type Table } from './report.js';
import { BITS_PER_BYTE, PORT_NAME, type SerialPhase, type SerialReport, type SerialSettings } from './serial.js';
import { FRAME_BYTES } from './serial-device.js';

/** The serial run's settings line, table and notes. */

/** The bench process at or above this CPU share probably limits the run. */
const GENERATOR_SATURATED_PERCENT = 90;

export function serialSettingsLine(s: SerialSettings): string {
  const framesPerSec = s.baudRate / BITS_PER_BYTE / FRAME_BYTES;
  return (
    `Serial: Outpost with one outpost-link port (mapping defaults: JSON with an ISO timestamp, QoS 0) on a socat pty ` +
    `pair; the bench plays the device (HELLO, then DATA frames of ${FRAME_BYTES} B on the wire: a uint32 sequence ` +
    `number, 2 float32, a 4-character string) and subscribes to the readings (MQTT 3.1.1, QoS 0). Paced at ` +
    `${formatRate(s.baudRate)} baud 8N1 (${formatRate(s.baudRate / BITS_PER_BYTE)} B/s = ${formatRate(framesPerSec)} frames/s), ` +
    `then unpaced (each write as soon as the previous drained); ${s.warmupMs / 1000} s warmup + ${s.measureMs / 1000} s measured each`
  );
}

type Cell = (p: SerialPhase) => string;
const ms = (v: number): string => (Number.isNaN(v) ? '—' : v.toFixed(2));
const ROWS: readonly (readonly [string, 'paced' | 'unpaced', Cell])[] = [
  ['frames/s delivered', 'paced', (p) => formatRate(p.deliveredPerSec)],
  ['frames lost', 'paced', (p) => `${formatRate(p.lost)} of ${formatRate(p.sent)}`],
  ['Outpost CPU (% of a core)', 'paced', (p) => `${Math.round(p.outpostCpuPercent)}%`],
  ['latency serial → subscriber, median / p99 (ms)', 'paced', (p) => `${ms(p.latencyMedianMs)} / ${ms(p.latencyP99Ms)}`],
  ['frames/s delivered', 'unpaced', (p) => formatRate(p.deliveredPerSec)],
  ['frames lost', 'unpaced', (p) => `${formatRate(p.lost)} of ${formatRate(p.sent)}`],
  ['Outpost CPU (% of a core)', 'unpaced', (p) => `${Math.round(p.outpostCpuPercent)}%`],
  ['latency, median / p99 (ms; mostly queueing)', 'unpaced', (p) => `${ms(p.latencyMedianMs)} / ${ms(p.latencyP99Ms)}`],
];

export function serialTable(report: SerialReport, brokers: readonly BrokerName[]): Table {
  const paced = `Paced at ${formatRate(report.pacedFramesPerSec)} frames/s`;
  const header = [`Serial → MQTT, outpost-link frames of ${report.frameBytes} B`, ...brokers.map((b) => BROKER_LABELS[b])];
  const rows = ROWS.map(([label, which, cell], row) => [
    `${which === 'paced' ? paced : 'Unpaced'}: ${label}`,
    ...brokers.map((b) => {
      if (b !== 'outpost') return row === 0 ? 'n/a (no serial input)' : 'n/a';
      const p = report[which];
      if (p !== undefined) return cell(p);
      return report.status === 'ok' ? '—' : report.status;
    }),
  ]);
  return { header, rows };
}

export function serialNotes(report: SerialReport): string[] {
  const out: string[] = [];
  const who = 'Outpost, serial';
  if (report.status !== 'ok') out.push(`${who}: ${report.status}: ${report.reason ?? 'unknown'}`);
  for (const [name, p] of [['paced', report.paced], ['unpaced', report.unpaced]] as const) {
    if (p === undefined) continue;
    if (name === 'unpaced') {
      out.push(
        `${who}, unpaced: the other ends used ${Math.round(p.socatCpuPercent)}% (socat) and ` +
          `${Math.round(p.benchCpuPercent)}% (this process: device + subscriber) of a core`,
      );
    }
    if (p.benchCpuPercent >= GENERATOR_SATURATED_PERCENT) {
      out.push(`${who}, ${name}: the bench process (device + subscriber) used ${Math.round(p.benchCpuPercent)}% CPU: Outpost may do more than measured`);
    }
    if (p.socatCpuPercent >= GENERATOR_SATURATED_PERCENT) out.push(`${who}, ${name}: socat used ${Math.round(p.socatCpuPercent)}% CPU`);
    if (p.duplicates > 0) out.push(`${who}, ${name}: ${formatRate(p.duplicates)} readings arrived twice`);
  }
  const c = report.counters;
  if (c !== undefined) {
    const shown = Object.entries(c).filter(([k, v]) => v !== '0' && !k.endsWith('/state') && !k.endsWith('/frames') && !k.endsWith('/online'));
    out.push(
      `${who}: Outpost decoded ${formatRate(Number(c[`serial/${PORT_NAME}/frames`] ?? 0))} frames ` +
        `(${formatRate(report.framesSent ?? 0)} DATA + 1 HELLO sent)` +
        (shown.length === 0 ? ', no errors or drops counted' : `; counted ${shown.map(([k, v]) => `${k} ${v}`).join(', ')}`),
    );
  }
  if ((report.outpostLogLines ?? 0) > 0) {
    out.push(`${who}: Outpost logged ${report.outpostLogLines} line(s) at warn or above; the last: ${report.outpostLastLine ?? ''}`);
  }
  if (report.paced !== undefined) {
    out.push(
      `${who}: a pty has no baud rate and no transmission time; on a real UART each ${report.frameBytes}-byte frame adds ` +
        `${((report.frameBytes * BITS_PER_BYTE * 1000) / report.baudRate).toFixed(1)} ms at ${formatRate(report.baudRate)} baud before Outpost sees its last byte`,
    );
  }
  return out;
}
