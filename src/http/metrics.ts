/**
 * Every figure of `/metrics` and `$SYS/outpost/...`, gathered once as metric families and
 * rendered two ways: the Prometheus text exposition format 0.0.4, and MQTT topics (each family
 * says which topic a sample becomes). One list, so the two cannot drift apart.
 */
import type { HealthReport } from '../health.js'
import { framesOf, type Telemetry, type TelemetryGateway } from './telemetry.js'

export interface Sample {
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** `$SYS/outpost/` + topic, and the payload; undefined = this sample has no topic. */
export type SysTopic = readonly [topic: string, payload: string | number] | undefined

export interface Family {
  readonly name: string
  readonly type: 'counter' | 'gauge'
  readonly help: string
  readonly samples: Sample[]
  readonly sys: (s: Sample) => SysTopic
}

const PREFIX = 'outpost_'
/** Serial port states, each a sample of outpost_serial_port_state (1 for the current one). */
const PORT_STATES = ['open', 'waiting', 'failed', 'stopped'] as const
/** Port counters that are not errors. */
const NOT_ERRORS = new Set(['frames', 'lines', 'commands'])

/** A label value as one topic level: `/`, `+` and `#` would split or break it (as $SYS/broker does). */
export function topicLevel(value: string): string {
  return value.replace(/[/+#]/g, '_')
}

class Families {
  readonly list: Family[] = []

  add(name: string, type: Family['type'], help: string, sys: Family['sys']): Sample[] {
    const samples: Sample[] = []
    this.list.push({ name: PREFIX + name, type, help, samples, sys })
    return samples
  }

  /** A family of one unlabelled sample whose topic is `topic`. */
  one(name: string, type: Family['type'], help: string, value: number, topic: string): void {
    this.add(name, type, help, (s) => [topic, s.value]).push({ labels: {}, value })
  }
}

export interface FigureSources {
  readonly gateway: TelemetryGateway
  readonly telemetry: Telemetry
  /** The last health report, when there is a monitor. */
  readonly health?: (() => HealthReport) | undefined
  readonly version: string
}

/** Reads every figure now (the disk walk is cached by Telemetry). */
export async function collectFamilies(src: FigureSources): Promise<Family[]> {
  const { broker, serial, upstream } = src.gateway
  const s = broker.stats
  const f = new Families()

  f.one('clients_connected', 'gauge', 'Clients connected now.', broker.connectedCount, 'clients/connected')
  f.one('clients_sessions', 'gauge', 'Client sessions, connected and offline persistent ones ($SYS/broker/clients/total).', broker.sessionCount, 'clients/sessions')
  f.one('clients_maximum', 'gauge', 'Most clients connected at once since start.', s.clientsMaximum, 'clients/maximum')
  f.one('connections_total', 'counter', 'Connections accepted since start.', s.connectionsTotal, 'connections/accepted')
  f.one('connections_refused_total', 'counter', 'Connections refused by max_connections.', s.connectionsRefused, 'connections/refused')
  f.one('connect_timeouts_total', 'counter', 'Connections closed because no CONNECT came within connect_timeout.', s.connectTimeouts, 'connections/connect-timeouts')
  f.one('drain_timeouts_total', 'counter', 'Clients closed for staying behind longer than drain_timeout.', s.drainTimeouts, 'clients/drain-timeouts')
  f.one('limits_exceeded_total', 'counter', 'Clients closed for going over a per-client limit (max_topic_levels, max_publish_rate...).', s.limitsExceeded, 'clients/limits-exceeded')

  f.one('messages_received_total', 'counter', 'PUBLISH messages taken in, from network and internal clients.', s.publishReceived, 'messages/received')
  f.one('messages_sent_total', 'counter', 'PUBLISH messages delivered, to network and internal clients.', s.publishSent, 'messages/sent')
  f.one('packets_received_total', 'counter', 'MQTT packets of every type received from network clients.', s.messagesReceived, 'packets/received')
  f.one('packets_sent_total', 'counter', 'MQTT packets of every type sent to network clients.', s.messagesSent, 'packets/sent')
  f.one('bytes_received_total', 'counter', 'Bytes received from network clients.', s.bytesReceived, 'bytes/received')
  f.one('bytes_sent_total', 'counter', 'Bytes sent to network clients.', s.bytesSent, 'bytes/sent')
  const drops = f.add(
    'messages_dropped_total',
    'counter',
    'Messages dropped, by reason: expired (Message Expiry Interval), too_large (over the receiver\'s Maximum Packet Size), queue (a full queue or store.max_bytes, a congested connection, or a QoS 2 message whose PUBREL never came), denied (the ACL refused the PUBLISH).',
    (x) => [`messages/dropped/${x.labels.reason ?? ''}`, x.value],
  )
  drops.push({ labels: { reason: 'expired' }, value: s.publishExpired })
  drops.push({ labels: { reason: 'too_large' }, value: s.publishTooLarge })
  drops.push({ labels: { reason: 'queue' }, value: Math.max(0, s.publishDropped - s.publishExpired - s.publishTooLarge) })
  drops.push({ labels: { reason: 'denied' }, value: s.publishDenied })
  f.one('subscriptions', 'gauge', 'Subscriptions held by all sessions.', broker.subscriptionCount, 'subscriptions/count')

  f.one('store_queued_bytes', 'gauge', 'Payload bytes queued in the store for all clients together.', broker.store.queuedBytes(), 'store/queued-bytes')
  f.one('store_max_bytes', 'gauge', 'store.max_bytes, the cap on queued payload bytes; 0 = no cap.', broker.config.store.maxBytes, 'store/max-bytes')
  f.one('store_disk_bytes', 'gauge', 'Bytes of the files in data_dir (measured at most every 10 s).', await src.telemetry.diskBytes(), 'store/disk-bytes')
  f.one('retained_messages', 'gauge', 'Retained messages held.', await broker.store.retainedCount(), 'store/retained')

  const ports = serial?.ports ?? []
  const frames = f.add('serial_frames_total', 'counter', 'Frames (outpost-link) or lines (line framing) decoded per serial port.', (x) => [`serial/${topicLevel(x.labels.port ?? '')}/frames`, x.value])
  const errors = f.add('serial_errors_total', 'counter', 'Serial port errors by kind: decoder errors (crc, bad-cobs, too-long...) and frames the bridge refused (lost, no-hello...).', (x) => [
    `serial/${topicLevel(x.labels.port ?? '')}/errors/${topicLevel(x.labels.kind ?? '')}`,
    x.value,
  ])
  const commands = f.add('serial_commands_total', 'counter', 'Commands sent to devices per serial port.', (x) => [`serial/${topicLevel(x.labels.port ?? '')}/commands`, x.value])
  const state = f.add('serial_port_state', 'gauge', 'Serial port state: 1 for the current state, 0 for the others.', (x) =>
    x.value === 1 ? [`serial/${topicLevel(x.labels.port ?? '')}/state`, x.labels.state ?? ''] : undefined,
  )
  const online = f.add('serial_devices_online', 'gauge', 'Devices online per serial port.', (x) => [`serial/${topicLevel(x.labels.port ?? '')}/devices/online`, x.value])
  const known = f.add('serial_devices', 'gauge', 'Devices heard (or configured) per serial port since start.', (x) => [`serial/${topicLevel(x.labels.port ?? '')}/devices/known`, x.value])
  for (const p of ports) {
    const port = p.config.name
    const counters = p.counters()
    frames.push({ labels: { port }, value: framesOf(counters) })
    commands.push({ labels: { port }, value: counters.commands ?? 0 })
    for (const [kind, value] of Object.entries(counters)) if (!NOT_ERRORS.has(kind)) errors.push({ labels: { port, kind }, value })
    const current = p.state.state
    for (const st of PORT_STATES) state.push({ labels: { port, state: st }, value: st === current ? 1 : 0 })
    const devices = p.devices()
    online.push({ labels: { port }, value: devices.filter((d) => d.online).length })
    known.push({ labels: { port }, value: devices.length })
  }

  const b = (suffix: string) => (x: Sample): SysTopic => [`bridge/${topicLevel(x.labels.bridge ?? '')}/${suffix}`, x.value]
  const up = f.add('bridge_up', 'gauge', 'Upstream bridge link: 1 when connected to the cloud broker.', b('up'))
  const backlogMessages = f.add('bridge_backlog_messages', 'gauge', 'Messages waiting in the bridge\'s outbox.', b('backlog/messages'))
  const backlogBytes = f.add('bridge_backlog_bytes', 'gauge', 'Payload bytes waiting in the bridge\'s outbox.', b('backlog/bytes'))
  const oldest = f.add('bridge_oldest_age_seconds', 'gauge', 'Age of the oldest message waiting in the outbox; 0 when empty.', b('backlog/oldest-age'))
  const drain = f.add('bridge_drain_rate', 'gauge', 'Messages per second acknowledged upstream over the last 5 s.', b('drain-rate'))
  const reconnects = f.add('bridge_reconnects_total', 'counter', 'Times the bridge connected again after losing its link.', b('reconnects'))
  const bDropped = f.add('bridge_dropped_total', 'counter', 'Messages the outbox dropped (its caps, expiry).', b('dropped'))
  const bSent = f.add('bridge_messages_sent_total', 'counter', 'Messages acknowledged by the cloud broker.', b('messages/sent'))
  const bReceived = f.add('bridge_messages_received_total', 'counter', 'Messages received from the cloud broker.', b('messages/received'))
  for (const u of upstream) {
    const bridge = u.config.name
    const st = u.stats()
    const labels = { bridge }
    up.push({ labels, value: st.state === 'connected' ? 1 : 0 })
    backlogMessages.push({ labels, value: st.backlogMessages })
    backlogBytes.push({ labels, value: st.backlogBytes })
    oldest.push({ labels, value: st.oldestAgeSeconds })
    drain.push({ labels, value: round3(src.telemetry.drainRate(bridge)) })
    reconnects.push({ labels, value: st.reconnects })
    bDropped.push({ labels, value: st.dropped })
    bSent.push({ labels, value: st.sent })
    bReceived.push({ labels, value: st.received })
  }

  const mem = process.memoryUsage()
  f.one('process_resident_memory_bytes', 'gauge', 'Resident set size of the process.', mem.rss, 'process/resident-memory-bytes')
  f.one('process_heap_used_bytes', 'gauge', 'V8 heap in use.', mem.heapUsed, 'process/heap-used-bytes')
  f.one('process_heap_total_bytes', 'gauge', 'V8 heap allocated.', mem.heapTotal, 'process/heap-total-bytes')
  const eld = src.telemetry.eventLoopDelayMs
  const quantiles = f.add('event_loop_delay_seconds', 'gauge', 'Event-loop delay over the last 5 s, by quantile.', (x) => [`process/event-loop-delay/p${x.labels.quantile === '0.5' ? '50' : '99'}`, x.value])
  quantiles.push({ labels: { quantile: '0.5' }, value: eld.p50 / 1000 })
  quantiles.push({ labels: { quantile: '0.99' }, value: eld.p99 / 1000 })
  f.one('event_loop_delay_max_seconds', 'gauge', 'Longest event-loop delay over the last 5 s.', eld.max / 1000, 'process/event-loop-delay/max')
  f.one('uptime_seconds', 'gauge', 'Seconds since the broker started.', Math.floor((Date.now() - src.telemetry.startedAt) / 1000), 'process/uptime')
  f.one('start_time_seconds', 'gauge', 'Unix time the broker started, in seconds.', Math.floor(src.telemetry.startedAt / 1000), 'process/start-time')
  f.add('info', 'gauge', 'Always 1; the version in a label.', (x) => ['version', x.labels.version ?? '']).push({ labels: { version: src.version }, value: 1 })

  const report = src.health?.()
  if (report !== undefined) {
    f.one('healthy', 'gauge', '1 when every component works as configured (/healthz answers 200).', report.healthy ? 1 : 0, 'health/healthy')
    const comp = f.add('component_healthy', 'gauge', 'Per component: 1 when it works as configured.', (x) => [`health/${topicLevel(x.labels.component ?? '')}`, x.value])
    for (const c of report.components) comp.push({ labels: { component: c.component }, value: c.ok ? 1 : 0 })
  }
  return f.list
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000
}

/** HELP text: backslash and newline escaped (format 0.0.4). */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

/** Label values: backslash, double quote and newline escaped (format 0.0.4). */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN'
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf'
  return String(v)
}

/** The Prometheus text exposition format 0.0.4 (`text/plain; version=0.0.4`). */
export function renderPrometheus(families: readonly Family[]): string {
  const out: string[] = []
  for (const fam of families) {
    out.push(`# HELP ${fam.name} ${escapeHelp(fam.help)}`, `# TYPE ${fam.name} ${fam.type}`)
    for (const s of fam.samples) {
      const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`)
      out.push(`${fam.name}${labels.length === 0 ? '' : `{${labels.join(',')}}`} ${formatValue(s.value)}`)
    }
  }
  return `${out.join('\n')}\n`
}
