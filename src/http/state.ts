/**
 * GET /api/state: everything the dashboard shows, in the shape of contract 3 of issue 8's notes.
 * Built on each poll (every 2 s while a page is open) from the gateway's live state; only the
 * rates come from memory (Telemetry's ring).
 */
import type { ClientInfo } from '../broker/broker.js'
import type { LogRing } from '../logger.js'
import type { LastReading } from '../serial/port-bridge.js'
import type { HealthReport } from '../health.js'
import type { RateSample, Telemetry, TelemetryGateway } from './telemetry.js'
import { framesOf } from './telemetry.js'
import { preview } from './text.js'

/** Clients listed; the totals still count all of them. */
export const MAX_CLIENTS = 1000
/** Subscriptions listed per client. */
export const MAX_SUBSCRIPTIONS = 100
export const MAX_RETAINED = 200
export const LOG_LINES = 100

export interface ApiClient {
  clientId: string
  username: string | null
  address: string | null
  listener: string | null
  protocol: string
  connected: boolean
  subscriptions: string[]
  queued: number
  inflight: number
  connectedAt: number | null
}

export interface ApiState {
  version: string
  startedAt: number
  now: number
  uptimeSeconds: number
  memory: { rss: number; heapUsed: number; heapTotal: number }
  eventLoopDelayMs: { p50: number; p99: number; max: number }
  rates: RateSample[]
  totals: { messagesIn: number; messagesOut: number; bytesIn: number; bytesOut: number; dropped: number; clientsConnected: number; clientsTotal: number }
  clients: ApiClient[]
  serial: Array<{
    port: string
    path: string | null
    state: string
    detail: string | null
    framesPerSecond: number
    frames: number
    errors: number
    devices: Array<{ device: string; online: boolean; lastReading: LastReading | null }>
  }>
  bridges: Array<{ name: string; url: string; state: string; backlogMessages: number; backlogBytes: number; oldestAgeSeconds: number | null; drainRate: number }>
  store: { dataDir: string; diskBytes: number; queuedBytes: number; maxBytes: number; retainedCount: number }
  retained: Array<{ topic: string; bytes: number; preview: string }>
  health: HealthReport
  log: Array<{ time: string; level: string; msg: string; component: string | null; clientId: string | null }>
}

export interface StateSources {
  readonly gateway: TelemetryGateway
  readonly telemetry: Telemetry
  readonly health: () => HealthReport
  readonly logLines: LogRing
  readonly version: string
}

const PROTOCOLS: Record<3 | 4 | 5, string> = { 3: '3.1', 4: '3.1.1', 5: '5' }

export async function buildState(src: StateSources): Promise<ApiState> {
  const { broker, serial, upstream } = src.gateway
  const s = broker.stats
  const now = Date.now()
  const mem = process.memoryUsage()
  const clients: ApiClient[] = []
  for (const c of broker.clients()) {
    if (clients.length >= MAX_CLIENTS) break
    clients.push(apiClient(c))
  }
  // Clients' topics first, then `$SYS` (which `#` does not match), so the count and the list agree.
  const byTopic = (a: { topic: string }, b: { topic: string }): number => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0)
  const retained = [...(await broker.store.matchRetained('#')).sort(byTopic), ...(await broker.store.matchRetained('$SYS/#')).sort(byTopic)]
    .slice(0, MAX_RETAINED)
    .map((m) => ({ topic: m.topic, bytes: m.payload.length, preview: preview(m.payload) }))

  return {
    version: src.version,
    startedAt: src.telemetry.startedAt,
    now,
    uptimeSeconds: Math.floor((now - src.telemetry.startedAt) / 1000),
    memory: { rss: mem.rss, heapUsed: mem.heapUsed, heapTotal: mem.heapTotal },
    eventLoopDelayMs: src.telemetry.eventLoopDelayMs,
    rates: src.telemetry.rates(),
    totals: {
      messagesIn: s.publishReceived,
      messagesOut: s.publishSent,
      bytesIn: s.bytesReceived,
      bytesOut: s.bytesSent,
      dropped: s.publishDropped + s.publishDenied,
      clientsConnected: broker.connectedCount,
      clientsTotal: broker.sessionCount,
    },
    clients,
    serial: (serial?.ports ?? []).map((p) => {
      const counters = p.counters()
      const frames = framesOf(counters)
      let errors = 0
      for (const [k, v] of Object.entries(counters)) if (k !== 'frames' && k !== 'lines' && k !== 'commands') errors += v
      const st = p.state
      const selector = p.config.selector
      return {
        port: p.config.name,
        path: 'path' in selector ? selector.path : null,
        state: st.state,
        detail: 'reason' in st ? st.reason : null,
        framesPerSecond: Math.round(src.telemetry.framesPerSecond(p.config.name) * 100) / 100,
        frames,
        errors,
        devices: p.devices().map((d) => ({ device: d.id, online: d.online, lastReading: readingOf(p.lastReading(d.id)) })),
      }
    }),
    bridges: upstream.map((u) => {
      const st = u.stats()
      return {
        name: u.config.name,
        url: withoutCredentials(u.config.url),
        state: st.state,
        backlogMessages: st.backlogMessages,
        backlogBytes: st.backlogBytes,
        oldestAgeSeconds: st.backlogMessages === 0 ? null : st.oldestAgeSeconds,
        drainRate: Math.round(src.telemetry.drainRate(u.config.name) * 100) / 100,
      }
    }),
    store: {
      dataDir: src.telemetry.dataDir ?? '',
      diskBytes: await src.telemetry.diskBytes(),
      queuedBytes: broker.store.queuedBytes(),
      maxBytes: broker.config.store.maxBytes,
      retainedCount: await broker.store.retainedCount(),
    },
    retained,
    health: src.health(),
    log: src.logLines.lines(LOG_LINES),
  }
}

function apiClient(c: ClientInfo): ApiClient {
  const subscriptions: string[] = []
  for (const f of c.subscriptions) {
    if (subscriptions.length >= MAX_SUBSCRIPTIONS) break
    subscriptions.push(f)
  }
  return {
    clientId: c.clientId,
    username: c.username ?? null,
    address: c.remote ?? null,
    listener: c.listener ?? null,
    // Offline sessions: the protocol of their last connection is not kept.
    protocol: c.protocolVersion === undefined ? '' : PROTOCOLS[c.protocolVersion],
    connected: c.remote !== undefined,
    subscriptions,
    queued: c.queued,
    inflight: c.inflight,
    connectedAt: c.connectedAt ?? null,
  }
}

/** A URL as shown: a password in it (user:pass@host) is not for the page. */
function withoutCredentials(url: string): string {
  try {
    const u = new URL(url)
    if (u.password === '' && u.username === '') return url
    u.password = ''
    u.username = ''
    return u.toString()
  } catch {
    return url
  }
}

/** A device's last reading as the dashboard shows it: the payload cut to a preview. */
function readingOf(r: LastReading | undefined): LastReading | null {
  return r === undefined ? null : { topic: r.topic, payload: preview(Buffer.from(r.payload, 'utf8')), at: r.at }
}
