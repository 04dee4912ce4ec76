/**
 * Is the gateway working, and is it stuck? The monitor checks, every `intervalMs`:
 * - broker: a QoS 0 message published into the broker core on a topic only the monitor's own
 *   internal client subscribes to must come back to that client (routing, subscription tree,
 *   session delivery);
 * - store: a small write through the store's batch queue (deleting the will of a client id that
 *   never exists: a real LevelDB batch, fsynced under `durability: sync`, that changes nothing)
 *   and a read through a LevelDB iterator;
 * - each serial port: its link state (open = ok; waiting for its device, or failing, = not ok);
 * - each upstream bridge: its link (up = ok; connecting or down = not ok).
 *
 * `ok` = working as configured. `wedged` = a check that has not completed after `wedgedAfterMs`:
 * the kind of stuck (a hung disk, a broker that no longer routes) that a restart may fix, so the
 * systemd watchdog stops being pinged. A port waiting for its device or a bridge whose cloud is
 * away is not ok but never wedged: a restart would not bring them back, and they recover by
 * themselves. A serial port's open or write hanging inside the native binding is not visible
 * from here (SerialLink does not expose a pending open), so ports are never reported wedged.
 */
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import type { InternalClient } from './broker/internal-client.js'
import type { Gateway } from './gateway.js'

export interface ComponentHealth {
  component: string
  ok: boolean
  wedged: boolean
  detail: string
}

export interface HealthReport {
  healthy: boolean
  wedged: boolean
  components: ComponentHealth[]
  checkedAt: number
}

export interface HealthMonitorOptions {
  /** How often the checks run; default 5 s. */
  intervalMs?: number
  /** A check still running after this long marks its component wedged; default 30 s. */
  wedgedAfterMs?: number
  /** How often the store is probed (an fsynced write each time); default 60 s, never less than intervalMs. */
  storeIntervalMs?: number
}

const DEFAULT_INTERVAL_MS = 5_000
const DEFAULT_WEDGED_AFTER_MS = 30_000
const STORE_PROBE_MS = 60_000

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/**
 * One check that can hang. At most one runs at a time: while one is pending no other starts, so a
 * hung store does not pile up a check every interval, and the pending one's age tells how long it
 * has been stuck.
 */
class Probe {
  readonly component: string
  readonly #what: string
  readonly #run: () => Promise<void>
  /** Least time between two starts (ms): see the store probe. */
  readonly #everyMs: number
  #pendingSince: number | undefined
  #lastStart = Number.NEGATIVE_INFINITY
  #last: { ok: boolean; detail: string } = { ok: false, detail: 'not checked yet' }

  constructor(component: string, what: string, run: () => Promise<void>, everyMs = 0) {
    this.component = component
    this.#what = what
    this.#run = run
    this.#everyMs = everyMs
  }

  /** Starts a check unless one is still pending or ran too recently; the promise settles when it completes (never rejects). */
  start(): Promise<void> | undefined {
    const started = Date.now()
    if (this.#pendingSince !== undefined || started - this.#lastStart < this.#everyMs) return undefined
    this.#lastStart = started
    this.#pendingSince = started
    let running: Promise<void>
    try {
      running = this.#run()
    } catch (err) {
      running = Promise.reject(err)
    }
    return running.then(
      () => {
        this.#pendingSince = undefined
        this.#last = { ok: true, detail: `${this.#what} in ${Date.now() - started} ms` }
      },
      (err: unknown) => {
        this.#pendingSince = undefined
        this.#last = { ok: false, detail: `${this.#what} failed: ${describe(err)}` }
      },
    )
  }

  health(now: number, wedgedAfterMs: number): ComponentHealth {
    const since = this.#pendingSince
    if (since !== undefined && now - since >= wedgedAfterMs) {
      const seconds = Math.round((now - since) / 1000)
      return { component: this.component, ok: false, wedged: true, detail: `${this.#what} has not completed for ${seconds} s` }
    }
    return { component: this.component, ok: this.#last.ok, wedged: false, detail: this.#last.detail }
  }
}

export class HealthMonitor {
  readonly #gateway: Pick<Gateway, 'broker' | 'serial' | 'upstream'>
  readonly #log: Logger
  readonly #intervalMs: number
  readonly #wedgedAfterMs: number
  /** Random per process: no network client or stored record can have this id or topic. */
  readonly #clientId = `outpost-health-${randomBytes(6).toString('hex')}`
  readonly #topic: string
  readonly #probes: Probe[]
  readonly #listeners: Array<(r: HealthReport) => void> = []
  #client: InternalClient | undefined
  #timer: NodeJS.Timeout | undefined
  #seq = 0
  /** The payload the broker round trip waits for, and what to call when it arrives. */
  #expected: { payload: string; arrived: () => void } | undefined
  #report: HealthReport
  /** Components reported wedged last time, so a wedge is logged once when it starts and once when it ends. */
  #wedged = new Set<string>()

  constructor(gateway: Pick<Gateway, 'broker' | 'serial' | 'upstream'>, log: Logger, options: HealthMonitorOptions = {}) {
    this.#gateway = gateway
    this.#log = log
    this.#intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS
    this.#wedgedAfterMs = options.wedgedAfterMs ?? DEFAULT_WEDGED_AFTER_MS
    // A `$` topic: `#` and `+` subscriptions of other clients never match it [MQTT-4.7.2-1].
    this.#topic = `$outpost/health/${this.#clientId}`
    this.#probes = [
      new Probe('broker', 'broker round trip', () => this.#brokerRoundTrip()),
      // Once a minute, not every interval: each probe is an fsynced write, and an idle Pi's SD card
      // should not take 17,000 of them a day. A hung disk is still seen within about 90 s (the
      // next probe queues behind the stuck writes and stays pending for wedgedAfterMs).
      new Probe('store', 'store write and read', () => this.#storeWriteRead(), Math.max(options.storeIntervalMs ?? STORE_PROBE_MS, this.#intervalMs)),
    ]
    this.#report = this.#build()
  }

  /** Subscribes the monitor's internal client and runs the first check now, then every interval. */
  start(): void {
    if (this.#timer !== undefined) return
    const client = this.#gateway.broker.createInternalClient(this.#clientId, (m) => {
      const expected = this.#expected
      if (expected !== undefined && m.payload.toString() === expected.payload) {
        this.#expected = undefined
        expected.arrived()
      }
    })
    this.#client = client
    // The subscription is in the tree synchronously; what stays async is sending retained
    // messages, of which this topic has none.
    client.subscribe(this.#topic, 0).catch((err: unknown) => this.#log.error({ err }, 'health monitor could not subscribe'))
    this.#timer = setInterval(() => this.#tick(), this.#intervalMs)
    // The listeners keep the process alive; a forgotten monitor must not.
    this.#timer.unref()
    this.#tick()
  }

  /** Stops checking (before the gateway closes); report() keeps the last result. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
    this.#client?.close()
    this.#client = undefined
  }

  report(): HealthReport {
    return this.#report
  }

  onReport(listener: (r: HealthReport) => void): void {
    this.#listeners.push(listener)
  }

  /**
   * Starts the probes that are not still pending, then reports once those complete. A probe that
   * hangs is not awaited by later ticks, so they keep reporting it (wedged once old enough).
   */
  #tick(): void {
    const started = this.#probes.map((p) => p.start()).filter((p): p is Promise<void> => p !== undefined)
    void Promise.all(started).then(() => {
      if (this.#timer === undefined) return
      this.#publish(this.#build())
    })
  }

  #publish(report: HealthReport): void {
    this.#report = report
    const now = new Set(report.components.filter((c) => c.wedged).map((c) => c.component))
    for (const c of report.components) {
      if (c.wedged && !this.#wedged.has(c.component)) this.#log.error({ component: c.component, detail: c.detail }, 'component wedged')
    }
    for (const name of this.#wedged) if (!now.has(name)) this.#log.warn({ component: name }, 'component no longer wedged')
    this.#wedged = now
    for (const listener of this.#listeners) {
      try {
        listener(report)
      } catch (err) {
        this.#log.error({ err }, 'health report listener failed')
      }
    }
  }

  #build(): HealthReport {
    const now = Date.now()
    const components: ComponentHealth[] = this.#probes.map((p) => p.health(now, this.#wedgedAfterMs))
    for (const port of this.#gateway.serial?.ports ?? []) {
      const s = port.state
      const component = `serial:${port.config.name}`
      components.push(s.state === 'open' ? { component, ok: true, wedged: false, detail: 'open' } : { component, ok: false, wedged: false, detail: `${s.state}: ${s.reason}` })
    }
    for (const bridge of this.#gateway.upstream) {
      const s = bridge.stats()
      const component = `upstream:${bridge.config.name}`
      const backlog = `${s.backlogMessages} messages waiting`
      components.push(
        s.state === 'connected'
          ? { component, ok: true, wedged: false, detail: `connected, ${backlog}` }
          : { component, ok: false, wedged: false, detail: `${s.state} (${bridge.config.url}), ${backlog}` },
      )
    }
    return { healthy: components.every((c) => c.ok), wedged: components.some((c) => c.wedged), components, checkedAt: now }
  }

  /** Resolves when the message is delivered back to the monitor's own client; never if the broker does not route it. */
  #brokerRoundTrip(): Promise<void> {
    const client = this.#client
    if (client === undefined) return Promise.reject(new Error('the health monitor is stopped'))
    const payload = String(++this.#seq)
    return new Promise<void>((resolve, reject) => {
      this.#expected = { payload, arrived: resolve }
      // broker.publish, as $SYS publishing does: the broker's own message, not counted as a client's PUBLISH.
      const message = { topic: this.#topic, payload: Buffer.from(payload), qos: 0 as const, retain: false, origin: this.#clientId, receivedAt: Date.now() }
      this.#gateway.broker.publish(message).then((r) => {
        if (!r.matched) reject(new Error(`the broker found no subscriber for ${this.#topic}`))
      }, reject)
    })
  }

  async #storeWriteRead(): Promise<void> {
    const store = this.#gateway.broker.store
    await store.write([{ op: 'del-will', clientId: this.#clientId }])
    const entries = await store.readQueue(this.#clientId, 0, 1)
    if (entries.length !== 0) throw new Error(`read back ${entries.length} queue entries for ${this.#clientId}, expected none`)
  }
}
