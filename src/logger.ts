import { pino } from 'pino'
import type { LogLevel } from './config/types.js'

/**
 * Paths whose values never reach a log line. MQTT CONNECT carries a password, and a packet or
 * options object logged whole, or nested one or two levels down, must not leak it.
 */
export const REDACTED_PATHS: readonly string[] = ['password', '*.password', '*.*.password']

/**
 * The one root logger for the process; components receive it (or a `child()` of it) as a
 * parameter, so tests can pass their own destination and nothing imports a global.
 *
 * Writes JSON lines to stdout (journald keeps them) unless `destination` is given. The default
 * destination is synchronous so that a fatal line is on disk before `process.exit`. With `ring`,
 * every line also goes to it (the dashboard's recent log lines), after redaction.
 */
export function createLogger(level: LogLevel, destination?: pino.DestinationStream, ring?: LogRing): pino.Logger {
  const options: pino.LoggerOptions = {
    name: 'outpost',
    level,
    redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
    // Level names rather than numbers: operators read these with journalctl, not with pino-pretty.
    formatters: { level: (label) => ({ level: label }) },
    timestamp: pino.stdTimeFunctions.isoTime,
  }
  if (ring === undefined) return destination === undefined ? pino(options) : pino(options, destination)
  // What pino itself writes to without a destination: stdout, flushed at exit.
  const out = destination ?? pino.destination()
  // 'trace' on both entries: the logger's own level decides what is written; a stream entry
  // without a level would silently drop everything below info.
  return pino(options, pino.multistream([{ stream: out, level: 'trace' }, { stream: ring, level: 'trace' }]))
}

/** One log line as the dashboard shows it. */
export interface LogEntry {
  readonly time: string
  readonly level: string
  readonly msg: string
  readonly component: string | null
  readonly clientId: string | null
}

/** Characters of a message kept in the ring: a line can carry a whole config or a long error. */
const MAX_MSG = 500

/**
 * The last `capacity` log lines, kept as the few fields the dashboard shows rather than as the
 * JSON text, so a line that logs a whole config costs no more than a short one. A pino
 * destination: `write` gets each line as pino wrote it.
 */
export class LogRing implements pino.DestinationStream {
  readonly capacity: number
  readonly #entries: Array<LogEntry | undefined>
  #next = 0
  #count = 0

  constructor(capacity = 200) {
    this.capacity = capacity
    this.#entries = new Array<LogEntry | undefined>(capacity)
  }

  write(line: string): void {
    const entry = toEntry(line)
    if (entry === undefined) return
    this.#entries[this.#next] = entry
    this.#next = (this.#next + 1) % this.capacity
    if (this.#count < this.capacity) this.#count++
  }

  /** The last `n` lines (all kept when omitted), oldest first. */
  lines(n = this.capacity): LogEntry[] {
    const take = Math.min(n, this.#count)
    const out: LogEntry[] = []
    for (let i = take; i > 0; i--) {
      const e = this.#entries[(this.#next - i + this.capacity) % this.capacity]
      if (e !== undefined) out.push(e)
    }
    return out
  }
}

function toEntry(line: string): LogEntry | undefined {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const r = value as Record<string, unknown>
  let msg = typeof r.msg === 'string' ? r.msg : ''
  // An error's message is what the reader of a short line needs most.
  const err = r.err
  if (typeof err === 'object' && err !== null && 'message' in err && typeof err.message === 'string') msg = msg === '' ? err.message : `${msg}: ${err.message}`
  if (msg.length > MAX_MSG) msg = `${msg.slice(0, MAX_MSG - 1)}…`
  return {
    time: typeof r.time === 'string' ? r.time : new Date().toISOString(),
    level: typeof r.level === 'string' ? r.level : String(r.level ?? ''),
    msg,
    component: typeof r.component === 'string' ? r.component : null,
    clientId: typeof r.clientId === 'string' ? r.clientId : null,
  }
}
