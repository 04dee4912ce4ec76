/**
 * The last reading of each serial device, for the dashboard. The serial bridge does not keep
 * readings (it hands them to the broker and forgets them), so an internal client subscribes to
 * each port's reading topics at QoS 0 (nothing stored for it) and keeps the newest message per
 * device. Bounded: MAX_DEVICES_PER_PORT devices per port, a short preview of each payload. The
 * subscriptions follow the config (`update`, at each poll), as a SIGHUP reload may change it.
 *
 * Its deliveries count in `messages sent` as every internal client's do (the serial command
 * subscription, a bridge's outbox).
 */
import type { Broker } from '../broker/broker.js'
import type { InternalClient } from '../broker/internal-client.js'
import type { MappingRule, SerialPortConfig } from '../config/serial-types.js'
import { MAX_DEVICES_PER_PORT } from '../serial/port-bridge.js'
import { TopicTemplate } from '../serial/template.js'
import { preview } from './text.js'

export const READINGS_CLIENT_ID = 'outpost-http-readings'

export interface Reading {
  readonly topic: string
  readonly payload: string
  readonly at: number
}

interface Watch {
  readonly port: string
  readonly template: TopicTemplate
  /** The device a template without `{device}` stands for (a per-device override, or the port's only device). */
  readonly device: string | undefined
}

/** Key for readings of a template without `{device}`: they belong to the port's devices. */
const PORT_LEVEL = ''

export class LastReadings {
  readonly #broker: Broker
  readonly #byPort = new Map<string, Map<string, Reading>>()
  #watches: Watch[] = []
  #filters = new Set<string>()
  #client: InternalClient | undefined
  /** What the watches were made from; a SIGHUP reload may change mappings or ports. */
  #signature = ''

  constructor(broker: Broker) {
    this.#broker = broker
  }

  /**
   * Follows the ports' reading topics: subscribes to those of templates that are whole topic
   * levels, and drops what is no longer there. Cheap when nothing changed (called per poll).
   */
  async update(ports: readonly SerialPortConfig[]): Promise<void> {
    const signature = JSON.stringify(ports.map((p) => [p.name, p.mapping.topic, p.mapping.fieldTopic, p.mapping.output, p.devices]))
    if (signature === this.#signature) return
    this.#signature = signature
    const watches: Watch[] = []
    const filters = new Set<string>()
    for (const p of ports) {
      const rules: Array<{ rule: Partial<Pick<MappingRule, 'topic' | 'fieldTopic' | 'output'>>; device: string | undefined }> = [
        { rule: p.mapping, device: undefined },
        ...Object.entries(p.devices).map(([device, rule]) => ({ rule, device })),
      ]
      for (const { rule, device } of rules) {
        const output = rule.output ?? p.mapping.output
        const sources: Array<[string | undefined, readonly ('port' | 'device' | 'field')[]]> = []
        if (output !== 'fields') sources.push([rule.topic, ['port', 'device']])
        if (output !== 'json') sources.push([rule.fieldTopic, ['port', 'device', 'field']])
        for (const [source, allowed] of sources) {
          if (source === undefined || source === '') continue
          const template = TopicTemplate.parse(source, allowed)
          // A placeholder inside a level (`t/{device}-x`) has no subscription filter; no reading shown then.
          if (typeof template === 'string' || !template.wholeLevels) continue
          watches.push({ port: p.name, template, device })
          filters.add(template.toFilter({ port: p.name, ...(device === undefined ? {} : { device }) }))
        }
      }
      if (!this.#byPort.has(p.name)) this.#byPort.set(p.name, new Map())
    }
    for (const name of this.#byPort.keys()) if (!ports.some((p) => p.name === name)) this.#byPort.delete(name)
    this.#watches = watches
    if (filters.size > 0 && this.#client === undefined) {
      this.#client = this.#broker.createInternalClient(READINGS_CLIENT_ID, (m) => this.#onMessage(m.topic, m.payload, m.receivedAt))
    }
    const client = this.#client
    if (client === undefined) return
    for (const f of this.#filters) if (!filters.has(f)) await client.unsubscribe(f)
    for (const f of filters) if (!this.#filters.has(f)) await client.subscribe(f, 0)
    this.#filters = filters
  }

  close(): void {
    this.#client?.close()
    this.#client = undefined
  }

  /** The newest reading of `device` on `port`: its own, else one of a topic that names no device. */
  get(port: string, device: string): Reading | null {
    const readings = this.#byPort.get(port)
    return readings?.get(device) ?? readings?.get(PORT_LEVEL) ?? null
  }

  #onMessage(topic: string, payload: Buffer, receivedAt: number | undefined): void {
    for (const w of this.#watches) {
      const vars = w.template.match(topic)
      if (vars === undefined || (vars.port !== undefined && vars.port !== w.port)) continue
      const device = vars.device ?? w.device ?? PORT_LEVEL
      const readings = this.#byPort.get(w.port)
      if (readings === undefined || (readings.size >= MAX_DEVICES_PER_PORT && !readings.has(device))) continue
      readings.set(device, { topic, payload: preview(payload), at: receivedAt ?? Date.now() })
      return
    }
  }
}
