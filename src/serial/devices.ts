/**
 * The devices one serial port keeps track of, and their availability: online from their first
 * frame or line, offline after `availability_timeout` of silence or when the port goes down,
 * published retained on the availability topic.
 */
import type { Logger } from 'pino'
import type { SerialPortConfig } from '../config/serial-types.js'
import type { Publication } from './mapper.js'
import { TopicTemplate } from './template.js'

/** Devices one port keeps track of; a line stream inventing ids cannot grow memory past this. */
export const MAX_DEVICES_PER_PORT = 256

interface DeviceState {
  online: boolean
  timer: NodeJS.Timeout | undefined
}

export interface DevicesHost {
  /** The port's config, read anew each time: a reload replaces it. */
  config(): SerialPortConfig
  publish(p: Publication): void
  readonly log: Logger
  /** A device past MAX_DEVICES_PER_PORT was refused. */
  refused(detail: string): void
}

export class PortDevices {
  readonly #host: DevicesHost
  readonly #devices = new Map<string, DeviceState>()
  #availability: TopicTemplate | undefined

  constructor(host: DevicesHost) {
    this.#host = host
    this.#availability = availabilityTemplate(host.config())
  }

  list(): Array<{ id: string; online: boolean }> {
    return [...this.#devices].map(([id, d]) => ({ id, online: d.online }))
  }

  has(id: string): boolean {
    return this.#devices.has(id)
  }

  /** The availability topic of `device`, when there is one. */
  availabilityTopic(device: string): string | undefined {
    return this.#availability?.render({ port: this.#host.config().name, device })
  }

  /** Registers a device; false when the port already tracks as many as it may. */
  add(id: string): boolean {
    if (this.#devices.has(id)) return true
    if (this.#devices.size >= MAX_DEVICES_PER_PORT) {
      this.#host.refused(`more than ${MAX_DEVICES_PER_PORT} devices on one port; ignoring ${id}`)
      return false
    }
    this.#devices.set(id, { online: false, timer: undefined })
    return true
  }

  /** Marks a device offline and forgets it (another one now speaks on the port). */
  remove(id: string): void {
    this.setOnline(id, false)
    this.#devices.delete(id)
  }

  seen(id: string): void {
    const d = this.#devices.get(id)
    if (d === undefined) return
    if (!d.online) this.setOnline(id, true)
    const timeout = this.#host.config().availabilityTimeout
    if (timeout <= 0) return
    if (d.timer !== undefined) d.timer.refresh()
    else {
      d.timer = setTimeout(() => {
        d.timer = undefined
        this.#host.log.warn({ device: id, seconds: timeout }, 'device silent; marking it offline')
        this.setOnline(id, false)
      }, timeout * 1000)
      d.timer.unref()
    }
  }

  /** Every device offline: the port went down or is closing. */
  allOffline(): void {
    for (const id of this.#devices.keys()) this.setOnline(id, false)
  }

  setOnline(id: string, online: boolean): void {
    const d = this.#devices.get(id)
    if (d === undefined) return
    if (!online && d.timer !== undefined) {
      clearTimeout(d.timer)
      d.timer = undefined
    }
    if (d.online === online) return
    d.online = online
    this.#host.log.info({ device: id, online }, 'device availability')
    this.#publishAvailability(id, online)
  }

  /** A reload changed the port's config from `before` to the host's current one. */
  reconfigure(before: SerialPortConfig): void {
    const next = this.#host.config()
    if (next.availabilityTimeout !== before.availabilityTimeout) {
      // A timer keeps its duration; the next frame of each device starts one with the new timeout.
      for (const d of this.#devices.values()) {
        clearTimeout(d.timer)
        d.timer = undefined
      }
    }
    if (next.availabilityTopic !== before.availabilityTopic) {
      const online = [...this.#devices].filter(([, d]) => d.online).map(([id]) => id)
      for (const id of online) this.#publishAvailability(id, false)
      this.#availability = availabilityTemplate(next)
      for (const id of online) this.#publishAvailability(id, true)
    }
  }

  #publishAvailability(id: string, online: boolean): void {
    if (this.#availability === undefined) return
    this.#host.publish({ topic: this.#availability.render({ port: this.#host.config().name, device: id }), payload: online ? 'online' : 'offline', qos: 1, retain: true })
  }
}

function availabilityTemplate(c: SerialPortConfig): TopicTemplate | undefined {
  return c.availabilityTopic === '' ? undefined : TopicTemplate.compile(c.availabilityTopic, ['port', 'device'])
}
