/**
 * `$SYS/outpost/...`: the figures of `/metrics` over MQTT, for a box watched by an MQTT client
 * rather than by Prometheus. Published the way `$SYS/broker/...` is (src/broker/sys.ts): every
 * `sys_interval` seconds, retained, QoS 0, only the values that changed since the last round.
 */
import type { Logger } from 'pino'
import type { HealthReport } from '../health.js'
import { collectFamilies, type FigureSources } from './metrics.js'
import { Telemetry, type TelemetryGateway } from './telemetry.js'

export const SYS_OUTPOST = '$SYS/outpost/'

export class OutpostSysPublisher {
  readonly #src: FigureSources
  readonly #log: Logger
  readonly #last = new Map<string, string>()
  #timer: NodeJS.Timeout | undefined
  #running = false

  constructor(src: FigureSources, log: Logger) {
    this.#src = src
    this.#log = log
  }

  /** Publishes now and then every `intervalSec`; 0 disables it, as it disables `$SYS/broker`. */
  start(intervalSec: number): void {
    if (intervalSec <= 0 || this.#timer !== undefined) return
    const round = (): void => {
      this.publishNow().catch((err: unknown) => this.#log.warn({ err }, 'could not publish $SYS/outpost'))
    }
    round()
    this.#timer = setInterval(round, intervalSec * 1000)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** One round; a round still running (a slow disk walk) makes the next one skip. */
  async publishNow(): Promise<void> {
    if (this.#running) return
    this.#running = true
    try {
      const broker = this.#src.gateway.broker
      for (const family of await collectFamilies(this.#src)) {
        for (const sample of family.samples) {
          const t = family.sys(sample)
          if (t === undefined) continue
          const topic = SYS_OUTPOST + t[0]
          const text = typeof t[1] === 'number' ? formatNumber(t[1]) : t[1]
          if (this.#last.get(topic) === text) continue
          this.#last.set(topic, text)
          void broker.publish({ topic, payload: Buffer.from(text), qos: 0, retain: true })
        }
      }
    } finally {
      this.#running = false
    }
  }
}

/** Integers as they are, fractions to 6 significant digits: enough, and fewer needless changes. */
function formatNumber(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(6)))
}

export interface Figures {
  readonly telemetry: Telemetry
  readonly sys: OutpostSysPublisher
  stop(): void
}

/**
 * Starts what `/metrics`, the dashboard and `$SYS/outpost` share: the sampler and, when the
 * broker's `sys_interval` is not 0, the `$SYS/outpost` rounds. Runs with or without the HTTP
 * endpoint; `startHttpServer` takes the Telemetry so both read the same samples.
 */
export function startFigures(options: {
  gateway: TelemetryGateway
  dataDir: string | undefined
  log: Logger
  health?: (() => HealthReport) | undefined
  /** The rates' sample period; 5 s unless a test takes its samples by hand. */
  sampleMs?: number
}): Figures {
  const { gateway, log } = options
  const telemetry = new Telemetry(gateway, { dataDir: options.dataDir, ...(options.sampleMs === undefined ? {} : { sampleMs: options.sampleMs }) })
  telemetry.start()
  const sys = new OutpostSysPublisher({ gateway, telemetry, health: options.health, version: gateway.broker.version }, log)
  sys.start(gateway.broker.config.sysInterval)
  return {
    telemetry,
    sys,
    stop: () => {
      sys.stop()
      telemetry.stop()
    },
  }
}
