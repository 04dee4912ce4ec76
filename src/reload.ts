/**
 * Reloading the configuration under a running gateway (SIGHUP): what changed between the config
 * it runs on and the new one, what of that applies live, and what waits for a restart.
 *
 * Two phases. First everything that can fail is done on the side (the new config was validated by
 * the caller; here the listeners' password, ACL and TLS files are read): one failure refuses the
 * whole reload and nothing has changed. Then the changes are applied; the running config object
 * (the broker's own, which sessions read their queue limits from) is updated in place, key by key,
 * so that what it holds is always what runs, and a key that needs a restart keeps its old value
 * and is reported again at the next reload.
 */
import { isDeepStrictEqual } from 'node:util'
import type { Logger } from 'pino'
import { ListenerSecurity } from './auth/listener-security.js'
import type { Broker } from './broker/broker.js'
import { ConfigError, formatProblem } from './config/config-error.js'
import { applyOverrides, loadConfigFile, type ConfigOverrides } from './config/load.js'
import type { ListenerConfig, OutpostConfig } from './config/types.js'
import type { Listener } from './listeners/listener.js'
import { tlsServerOptions } from './listeners/tls-options.js'
import type { SerialBridge, SerialChanges } from './serial/bridge.js'
import type { BridgeChange, UpstreamBridge } from './upstream/bridge.js'

type Handling = 'live' | 'restart' | 'section'

/**
 * How a reload treats each top-level key. Every key is listed (the type says so), so a new key
 * cannot be added to the config without deciding this. `live` keys are read by the broker where
 * they are used (at a connection, a PUBLISH, a SUBSCRIBE, a queue write); `restart` keys are held
 * by something built once at start, or were promised to connected clients in their CONNACK.
 */
export const RELOAD: Readonly<Record<keyof OutpostConfig, Handling>> = {
  listeners: 'section',
  serial: 'section',
  upstream: 'section',
  // Part of each bridge's client id, prefix and notification topic; the bridges take it.
  gatewayId: 'section',
  // The open store and its write mode.
  dataDir: 'restart',
  durability: 'restart',
  // pino's child loggers read their level from the root unless given their own.
  logLevel: 'live',
  allowAnonymous: 'live',
  maxConnections: 'live',
  messageSizeLimit: 'live',
  // Network sessions read these from the broker's config object itself.
  maxInflight: 'live',
  maxQueuedMessages: 'live',
  maxQueuedBytes: 'live',
  queueQos0Messages: 'live',
  queueFullPolicy: 'live',
  maxAwaitingRel: 'live',
  awaitRelTimeout: 'live',
  maxKeepalive: 'live',
  maxTopicLevels: 'live',
  maxTopicLength: 'live',
  maxSubscriptions: 'live',
  // Per connection, from its CONNECT on: connections made after the reload get the new rates.
  maxPublishRate: 'live',
  maxPublishBytesRate: 'live',
  persistentClientExpiration: 'live',
  sharedSubscriptionStrategy: 'live',
  responseInformation: 'live',
  reasonStrings: 'live',
  // max_bytes is checked at each queue write.
  store: 'live',
  // Each listener holds it for its TLS handshake and WebSocket upgrade deadlines.
  connectTimeout: 'restart',
  // Held by the broker's slow-reader watch, made once at start.
  drainTimeout: 'live',
  // The $SYS timer is started once.
  sysInterval: 'restart',
  // Told to MQTT 5 clients in their CONNACK: changing them under a connected client breaks that promise.
  retainAvailable: 'restart',
  receiveMaximum: 'restart',
  topicAliasMaximum: 'restart',
  maxPacketSize: 'restart',
  maxQos: 'restart',
  wildcardSubscriptions: 'restart',
  subscriptionIdentifiers: 'restart',
  sharedSubscriptions: 'restart',
  // The HTTP endpoint is started once, beside the gateway.
  http: 'restart',
}

/** What one reload did. Names are YAML keys, port names and bridge names. */
export interface ReloadReport {
  /** Top-level settings applied live. */
  settings: string[]
  /** Listeners whose TLS files, password file, ACL file and other per-listener settings were reloaded. */
  listeners: number
  serial: SerialChanges
  bridges: Record<BridgeChange | 'added' | 'removed', string[]>
  /** Changed in the file, still running on the old value until a restart. */
  restart: string[]
  /** Parts that failed while being applied (logged each); the rest was applied. */
  failed: string[]
}

/** The new config cannot be taken as it is (a file it names cannot be loaded); nothing was changed. */
export class ReloadRefused extends Error {
  readonly failures: ReadonlyArray<{ readonly listener: string; readonly err: unknown }>

  constructor(failures: ReadonlyArray<{ listener: string; err: unknown }>) {
    super(failures.map((f) => `${f.listener}: ${messageOf(f.err)}`).join('\n'))
    this.name = 'ReloadRefused'
    this.failures = failures
  }
}

/** What a reload works on: the gateway's parts. `upstream` and `serial` are changed in place. */
export interface GatewayParts {
  readonly broker: Broker
  /** The root logger: its level is `log_level`. */
  readonly log: Logger
  /** The config the gateway runs on (the broker's own object), updated in place. */
  readonly config: OutpostConfig
  readonly listeners: readonly Listener[]
  readonly upstream: UpstreamBridge[]
  serial: SerialBridge | undefined
}

export function emptyReport(): ReloadReport {
  return {
    settings: [],
    listeners: 0,
    serial: { changed: [], reopened: [], added: [], removed: [] },
    bridges: { rules: [], link: [], outbox: [], added: [], removed: [] },
    restart: [],
    failed: [],
  }
}

/** `maxQueuedMessages` -> `max_queued_messages`, as the operator wrote it. */
const yamlKey = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

const listenerName = (l: ListenerConfig): string => `${l.protocol} ${l.bind}:${l.port}`

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function assign<K extends keyof OutpostConfig>(to: OutpostConfig, from: OutpostConfig, key: K): void {
  to[key] = from[key]
}

/**
 * Applies `next` to the running gateway. Throws {@link ReloadRefused} (nothing changed) when a
 * listener's files cannot be loaded; otherwise applies what it can and reports the rest.
 */
export async function applyConfig(parts: GatewayParts, next: OutpostConfig): Promise<ReloadReport> {
  const { config: running, log } = parts
  const report = emptyReport()

  // Phase 1: load what can fail, change nothing.
  const { kept, restart } = matchListeners(parts.listeners, next.listeners)
  const failures: Array<{ listener: string; err: unknown }> = []
  const loaded: Array<{ listener: Listener; entry: ListenerConfig; security: ListenerSecurity }> = []
  for (const { listener, entry } of kept) {
    try {
      if (entry.tls !== undefined) tlsServerOptions(entry.tls)
      loaded.push({ listener, entry, security: await ListenerSecurity.load(entry, next.allowAnonymous) })
    } catch (err) {
      failures.push({ listener: listenerName(entry), err })
    }
  }
  if (failures.length > 0) throw new ReloadRefused(failures)

  // Phase 2: apply.
  for (const key of Object.keys(RELOAD) as Array<keyof OutpostConfig>) {
    const handling = RELOAD[key]
    if (handling === 'section' || isDeepStrictEqual(running[key], next[key])) continue
    if (handling === 'restart') {
      report.restart.push(yamlKey(key))
      log.warn({ key: yamlKey(key), running: running[key], configured: next[key] }, `${yamlKey(key)} changed: needs a restart; running on the old value until then`)
      continue
    }
    assign(running, next, key)
    report.settings.push(yamlKey(key))
    if (key === 'logLevel') log.level = running.logLevel
  }
  for (const r of restart) {
    report.restart.push(r)
    log.warn({ listener: r }, `listener ${r}: needs a restart; listeners are not opened, closed or moved while running`)
  }
  for (const { listener, entry, security } of loaded) {
    Object.assign(listener.config, entry)
    listener.reloadTls()
    listener.security = security
  }
  report.listeners = loaded.length
  log.info({ listeners: loaded.length }, 'reloaded TLS certificates, password and ACL files')

  // Bridges before serial ports, as at start: a new `out` rule sees a new port's first readings.
  await attempt(report, log, 'upstream', () => updateBridges(parts, next, report))
  await attempt(report, log, 'serial', () => updateSerial(parts, next, report))
  await attempt(report, log, 'upstream', () => removeBridges(parts, next, report))
  running.gatewayId = next.gatewayId
  running.upstream = next.upstream
  running.serial = next.serial

  log.info({ ...report }, summarize(report))
  return report
}

async function attempt(report: ReloadReport, log: Logger, part: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn()
  } catch (err) {
    report.failed.push(part)
    log.error({ err, part }, `reload of ${part} failed; the rest was applied`)
  }
}

/**
 * Pairs each running listener with its entry in the new config, by protocol, bind and port. The
 * entry comes back with the settings that need a restart (WebSocket path, require_certificate)
 * kept as they run; those, and listeners added or gone, are reported for a restart.
 */
export function matchListeners(running: readonly Listener[], next: readonly ListenerConfig[]): { kept: Array<{ listener: Listener; entry: ListenerConfig }>; restart: string[] } {
  const key = (l: ListenerConfig): string => `${l.protocol}|${l.bind}|${l.port}`
  const kept: Array<{ listener: Listener; entry: ListenerConfig }> = []
  const restart: string[] = []
  for (const listener of running) {
    const old = listener.config
    const entry = next.find((n) => key(n) === key(old))
    if (entry === undefined) {
      restart.push(`${listenerName(old)} removed`)
      continue
    }
    if (entry.path !== old.path) restart.push(`${listenerName(old)} path`)
    // Node asks for client certificates per server, not per secure context. The identity setting
    // goes with it: without a verified certificate there is no identity to use.
    let tls = entry.tls
    if (tls !== undefined && old.tls !== undefined && tls.requireCertificate !== old.tls.requireCertificate) {
      restart.push(`${listenerName(old)} tls.require_certificate`)
      tls = { ...tls, requireCertificate: old.tls.requireCertificate, useIdentityAsUsername: old.tls.useIdentityAsUsername }
    }
    kept.push({ listener, entry: { ...entry, path: old.path, tls } })
  }
  for (const entry of next) if (!running.some((l) => key(l.config) === key(entry))) restart.push(`${listenerName(entry)} added`)
  return { kept, restart }
}

async function updateBridges(parts: GatewayParts, next: OutpostConfig, report: ReloadReport): Promise<void> {
  for (const u of next.upstream) {
    const bridge = parts.upstream.find((b) => b.config.name === u.name)
    if (bridge !== undefined) {
      for (const change of await bridge.reconfigure(u, next.gatewayId)) report.bridges[change].push(u.name)
      continue
    }
    // MQTT.js is loaded only once a bridge is configured, as at start.
    const { UpstreamBridge } = await import('./upstream/bridge.js')
    const added = new UpstreamBridge(parts.broker, u, next.gatewayId, parts.log.child({ component: 'upstream' }))
    try {
      await added.start()
    } catch (err) {
      await added.close()
      report.failed.push(`upstream ${u.name}`)
      parts.log.error({ err, bridge: u.name }, 'could not start the new bridge')
      continue
    }
    parts.upstream.push(added)
    report.bridges.added.push(u.name)
  }
}

/** Bridges no longer configured: stopped, and their outboxes removed with what they held, as at start. */
async function removeBridges(parts: GatewayParts, next: OutpostConfig, report: ReloadReport): Promise<void> {
  for (const bridge of [...parts.upstream]) {
    if (next.upstream.some((u) => u.name === bridge.config.name)) continue
    await bridge.close()
    parts.upstream.splice(parts.upstream.indexOf(bridge), 1)
    report.bridges.removed.push(bridge.config.name)
    const dropped = parts.broker.endOfflineSession(bridge.outboxId)
    parts.log.warn({ outbox: bridge.outboxId, droppedMessages: dropped }, 'removed the outbox of a bridge that is no longer configured')
  }
}

async function updateSerial(parts: GatewayParts, next: OutpostConfig, report: ReloadReport): Promise<void> {
  if (parts.serial !== undefined) {
    report.serial = await parts.serial.reconfigure(next.serial)
    return
  }
  if (next.serial.length === 0) return
  // serialport's native binding is loaded only once a port is configured, as at start.
  const { SerialBridge } = await import('./serial/bridge.js')
  const serial = new SerialBridge(parts.broker, next.serial, parts.log.child({ component: 'serial' }))
  await serial.start()
  parts.serial = serial
  report.serial.added = next.serial.map((p) => p.name)
}

/** "reloaded: listeners 2, serial ports 1 changed, bridges 1 rules changed; needs restart: data_dir" */
export function summarize(r: ReloadReport): string {
  const counted = (what: Record<string, string[]>, label: (k: string) => string): string =>
    Object.entries(what)
      .filter(([, names]) => names.length > 0)
      .map(([k, names]) => `${names.length} ${label(k)}`)
      .join(', ')
  const parts = [`listeners ${r.listeners}`]
  if (r.settings.length > 0) parts.push(`settings ${r.settings.join(' ')}`)
  const serial = counted({ ...r.serial }, (k) => k)
  if (serial !== '') parts.push(`serial ports ${serial}`)
  const bridges = counted({ ...r.bridges }, (k) => (k === 'added' || k === 'removed' ? k : `${k} changed`))
  if (bridges !== '') parts.push(`bridges ${bridges}`)
  const tail = r.restart.length > 0 ? `; needs restart: ${r.restart.join(', ')}` : ''
  const failed = r.failed.length > 0 ? `; failed: ${r.failed.join(', ')}` : ''
  return `reloaded: ${parts.join(', ')}${tail}${failed}`
}

/**
 * SIGHUP with `--config FILE`: reads and validates FILE again (with the same command-line
 * overrides as at start) and applies it. An invalid file, or one naming a file that cannot be
 * loaded, is refused whole: every problem is logged, one error line each, and the gateway keeps
 * running on what it had. Resolves with the report, or undefined when refused; never rejects.
 */
export async function reloadFromFile(
  gateway: { reload(next: OutpostConfig): Promise<ReloadReport> },
  file: string,
  overrides: ConfigOverrides,
  log: Logger,
): Promise<ReloadReport | undefined> {
  try {
    const next = applyOverrides(loadConfigFile(file), overrides)
    return await gateway.reload(next)
  } catch (err) {
    let count = 1
    if (err instanceof ConfigError) {
      count = err.problems.length
      for (const p of err.problems) log.error({ code: err.code, file: p.file, line: p.line, column: p.column, field: p.field }, `reload failed: ${formatProblem(p)}`)
    } else if (err instanceof ReloadRefused) {
      count = err.failures.length
      for (const f of err.failures) log.error({ err: f.err, listener: f.listener }, `reload failed: listener ${f.listener}: ${messageOf(f.err)}`)
    } else {
      log.error({ err }, `reload failed: ${messageOf(err)}`)
    }
    log.error({ file, problems: count }, 'config not reloaded; still running the previous one')
    return undefined
  }
}
