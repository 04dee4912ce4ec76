/**
 * The figures behind `/metrics`, `$SYS/outpost/...` and the dashboard that need memory of the
 * past: message rates (a fixed ring of 5-second samples over 15 minutes), frames per second per
 * serial port, drain rate per bridge, event-loop delay, and the disk used by the data directory
 * (walked at most every 10 s). Everything else is read fresh from the gateway when asked.
 */
import { readdir, lstat } from 'node:fs/promises'
import { join } from 'node:path'
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'
import type { Gateway } from '../gateway.js'

export type TelemetryGateway = Pick<Gateway, 'broker' | 'serial' | 'upstream'>

/** One 5-second sample of the message and byte rates, per second. */
export interface RateSample {
  readonly t: number
  readonly messagesIn: number
  readonly messagesOut: number
  readonly bytesIn: number
  readonly bytesOut: number
}

export interface TelemetryOptions {
  /** The data directory whose size is reported; undefined = not reported (0). */
  readonly dataDir?: string | undefined
  /** Sample period; 5 s unless a test wants it shorter. */
  readonly sampleMs?: number
}

const SAMPLE_MS = 5_000
/** 15 minutes of 5-second samples. */
const SAMPLES = 180
const DISK_EVERY_MS = 10_000
/** Sampling every 50 ms rather than Node's 10 ms default: five times fewer wake-ups on an idle Pi, and a stall of a loop long enough to matter still spans a sample. */
const ELD_RESOLUTION_MS = 50

interface Totals {
  at: number
  messagesIn: number
  messagesOut: number
  bytesIn: number
  bytesOut: number
}

export class Telemetry {
  readonly startedAt: number
  readonly dataDir: string | undefined
  readonly #gateway: TelemetryGateway
  readonly #sampleMs: number
  // The rates ring: parallel typed arrays, allocated once.
  readonly #t = new Float64Array(SAMPLES)
  readonly #rates = [new Float64Array(SAMPLES), new Float64Array(SAMPLES), new Float64Array(SAMPLES), new Float64Array(SAMPLES)] as const
  #next = 0
  #count = 0
  #last: Totals
  readonly #frames = new Map<string, { frames: number; perSecond: number }>()
  readonly #drained = new Map<string, { sent: number; perSecond: number }>()
  #histogram: IntervalHistogram | undefined
  #eld = { p50: 0, p99: 0, max: 0 }
  #disk: { at: number; bytes: Promise<number> } | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(gateway: TelemetryGateway, options: TelemetryOptions = {}) {
    this.#gateway = gateway
    this.dataDir = options.dataDir
    this.#sampleMs = options.sampleMs ?? SAMPLE_MS
    this.startedAt = gateway.broker.stats.startedAt
    this.#last = this.#totals()
  }

  start(): void {
    if (this.#timer !== undefined) return
    this.#histogram = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS })
    this.#histogram.enable()
    this.#timer = setInterval(() => this.sample(), this.#sampleMs)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
    this.#histogram?.disable()
    this.#histogram = undefined
  }

  /** Takes one sample now (the timer calls it; tests may too). */
  sample(): void {
    const now = this.#totals()
    const dt = Math.max(1, now.at - this.#last.at) / 1000
    const i = this.#next
    this.#t[i] = now.at
    this.#rates[0][i] = (now.messagesIn - this.#last.messagesIn) / dt
    this.#rates[1][i] = (now.messagesOut - this.#last.messagesOut) / dt
    this.#rates[2][i] = (now.bytesIn - this.#last.bytesIn) / dt
    this.#rates[3][i] = (now.bytesOut - this.#last.bytesOut) / dt
    this.#next = (i + 1) % SAMPLES
    if (this.#count < SAMPLES) this.#count++
    this.#last = now

    for (const port of this.#gateway.serial?.ports ?? []) {
      const frames = framesOf(port.counters())
      const before = this.#frames.get(port.config.name)
      this.#frames.set(port.config.name, { frames, perSecond: before === undefined ? 0 : Math.max(0, frames - before.frames) / dt })
    }
    for (const bridge of this.#gateway.upstream) {
      const sent = bridge.stats().sent
      const before = this.#drained.get(bridge.config.name)
      this.#drained.set(bridge.config.name, { sent, perSecond: before === undefined ? 0 : Math.max(0, sent - before.sent) / dt })
    }

    // One window per sample: the figures say how the loop did lately, not since start.
    const h = this.#histogram
    if (h !== undefined && h.count > 0) {
      // Node 20 records the whole time between two runs of its timer, not how late the run was:
      // an idle loop shows the resolution itself. Taken off when the shortest run says so.
      const res = ELD_RESOLUTION_MS * 1e6
      const base = h.min >= res * 0.9 ? res : 0
      const ms = (ns: number): number => Math.max(0, ns - base) / 1e6
      this.#eld = { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max) }
      h.reset()
    }
  }

  /** Per-second rates, oldest first; one per sample period, up to 15 minutes of them. */
  rates(): RateSample[] {
    const out: RateSample[] = []
    for (let k = this.#count; k > 0; k--) {
      const i = (this.#next - k + SAMPLES) % SAMPLES
      out.push({ t: this.#t[i] ?? 0, messagesIn: this.#rates[0][i] ?? 0, messagesOut: this.#rates[1][i] ?? 0, bytesIn: this.#rates[2][i] ?? 0, bytesOut: this.#rates[3][i] ?? 0 })
    }
    return out
  }

  /** Event-loop delay over the last sample period, in milliseconds. */
  get eventLoopDelayMs(): { p50: number; p99: number; max: number } {
    return { ...this.#eld }
  }

  /** Frames (or lines) per second of a serial port over the last sample period. */
  framesPerSecond(port: string): number {
    return this.#frames.get(port)?.perSecond ?? 0
  }

  /** Messages per second a bridge had acknowledged upstream over the last sample period. */
  drainRate(bridge: string): number {
    return this.#drained.get(bridge)?.perSecond ?? 0
  }

  /** Bytes of the files under the data directory; walked again when the last walk is 10 s old. */
  diskBytes(): Promise<number> {
    const dir = this.dataDir
    if (dir === undefined) return Promise.resolve(0)
    const now = Date.now()
    if (this.#disk === undefined || now - this.#disk.at >= DISK_EVERY_MS) this.#disk = { at: now, bytes: sizeOf(dir) }
    return this.#disk.bytes
  }

  #totals(): Totals {
    const s = this.#gateway.broker.stats
    return { at: Date.now(), messagesIn: s.publishReceived, messagesOut: s.publishSent, bytesIn: s.bytesReceived, bytesOut: s.bytesSent }
  }
}

/** A port's frames: `frames` for outpost-link, `lines` for line framing. */
export function framesOf(counters: Readonly<Record<string, number>>): number {
  return counters.frames ?? counters.lines ?? 0
}

/** Sum of file sizes under `dir`; files that vanish during the walk (LevelDB compaction) count 0. */
async function sizeOf(dir: string): Promise<number> {
  let total = 0
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch {
    return 0
  }
  for (const e of entries) {
    const path = join(dir, e.name)
    if (e.isDirectory()) total += await sizeOf(path)
    else if (e.isFile()) total += await lstat(path).then((s) => s.size, () => 0)
  }
  return total
}
