/**
 * The serial bridge: every configured port, speaking to the broker as one internal client.
 * Readings enter through the same core as a network client's PUBLISH (retained messages, QoS,
 * durable queues and later ACLs and the upstream bridge apply to them); command topics are
 * ordinary subscriptions of that client.
 */
import type { Logger } from 'pino'
import type { Broker } from '../broker/broker.js'
import type { InternalClient } from '../broker/internal-client.js'
import type { Message, MessageProperties, QoS } from '../broker/types.js'
import type { SerialPortConfig } from '../config/serial-types.js'
import type { CommandResult } from './commands.js'
import type { Publication } from './mapper.js'
import { PortBridge } from './port-bridge.js'
import { TopicTemplate } from './template.js'

export const SERIAL_CLIENT_ID = 'outpost-serial'

interface Route {
  readonly port: PortBridge
  readonly commands: TopicTemplate | undefined
  readonly response: TopicTemplate | undefined
}

export class SerialBridge {
  readonly #broker: Broker
  readonly #log: Logger
  readonly #routes: Route[]
  readonly #client: InternalClient
  readonly #pending = new Set<Promise<void>>()

  constructor(broker: Broker, ports: readonly SerialPortConfig[], log: Logger) {
    this.#broker = broker
    this.#log = log
    this.#client = broker.createInternalClient(SERIAL_CLIENT_ID, (m) => this.#onMessage(m))
    const host = { publish: (p: Publication) => this.#publish(p), log }
    this.#routes = ports.map((c) => ({
      port: new PortBridge(c, host),
      commands: c.commandTopic === '' ? undefined : TopicTemplate.compile(c.commandTopic, ['port', 'device']),
      response: c.responseTopic === '' ? undefined : TopicTemplate.compile(c.responseTopic, ['port', 'device']),
    }))
  }

  get ports(): readonly PortBridge[] {
    return this.#routes.map((r) => r.port)
  }

  /** Opens every port (a missing one waits) and subscribes to the command topics. */
  async start(): Promise<void> {
    await this.#clearStaleAvailability()
    const filters = new Set<string>()
    for (const r of this.#routes) {
      r.port.start()
      if (r.commands !== undefined) filters.add(r.commands.toFilter({ port: r.port.config.name }))
    }
    // QoS 1 so a command sent at QoS 1 is not downgraded on its way to the device.
    for (const f of filters) await this.#client.subscribe(f, 1)
    this.#broker.addSysSource(() => this.#sys())
  }

  /** Marks devices offline and ports stopped, waits for those messages to be stored, closes the ports. */
  async close(): Promise<void> {
    await Promise.all(this.#routes.map((r) => r.port.close()))
    await Promise.all([...this.#pending])
    this.#client.close()
  }

  #publish(p: Publication, properties?: MessageProperties): void {
    const userProperties = p.userProperties
    const props = userProperties === undefined ? properties : { ...properties, userProperties }
    const done = this.#client.publish(p.topic, p.payload, { qos: p.qos, retain: p.retain, ...(props === undefined ? {} : { properties: props }) })
    this.#pending.add(done)
    void done.finally(() => this.#pending.delete(done))
  }

  #onMessage(message: Message): void {
    // Our own readings never come back as commands, whatever the topics overlap.
    if (message.origin === SERIAL_CLIENT_ID) return
    let handled = false
    let unknown: { route: Route; device: string } | undefined
    for (const route of this.#routes) {
      const vars = route.commands?.match(message.topic)
      if (vars === undefined) continue
      if (vars.port !== undefined && vars.port !== route.port.config.name) continue
      const device = vars.device ?? route.port.config.lines.device ?? route.port.config.name
      if (vars.device !== undefined && !route.port.has(vars.device)) {
        unknown ??= { route, device }
        continue
      }
      handled = true
      route.port.command(device, vars.rest ?? '', message.payload, (name, result) => this.#reply(route, device, name, result, message))
    }
    if (!handled && unknown !== undefined) {
      const { route, device } = unknown
      this.#reply(route, device, message.topic, { status: 'offline', reason: `no device ${device} on any serial port` }, message)
    }
  }

  /** The result goes to the request's v5 Response Topic with its Correlation Data, else to the port's response topic. */
  #reply(route: Route, device: string, name: string, result: CommandResult, request: Message): void {
    const topic = request.properties?.responseTopic ?? route.response?.render({ port: route.port.config.name, device })
    if (topic === undefined) return
    if (result.status !== 'ack' && result.status !== 'sent') this.#log.warn({ port: route.port.config.name, device, command: name, ...result }, 'command failed')
    const correlationData = request.properties?.correlationData
    const qos: QoS = request.qos
    this.#publish(
      { topic, payload: JSON.stringify({ device, command: name, ...result }), qos, retain: false },
      correlationData === undefined ? undefined : { correlationData },
    )
  }

  /**
   * A crash (or SIGKILL) leaves `online` retained for devices nobody is watching any more. At
   * start, every device still marked online is marked offline until it speaks again.
   */
  async #clearStaleAvailability(): Promise<void> {
    const stale: string[] = []
    const filters = new Map<string, Route>()
    for (const r of this.#routes) {
      const t = r.port.config.availabilityTopic
      if (t === '') continue
      const template = TopicTemplate.compile(t, ['port', 'device'])
      if (template.wholeLevels) filters.set(template.toFilter({ port: r.port.config.name }), r)
    }
    if (filters.size === 0) return
    const probe = this.#broker.createInternalClient(`${SERIAL_CLIENT_ID}-start`, (m, _qos, retain) => {
      if (retain && m.payload.toString() === 'online') stale.push(m.topic)
    })
    try {
      for (const f of filters.keys()) await probe.subscribe(f, 0)
    } finally {
      probe.close()
    }
    for (const topic of stale) this.#publish({ topic, payload: 'offline', qos: 1, retain: true })
    await Promise.all([...this.#pending])
  }

  #sys(): Record<string, string | number> {
    const values: Record<string, string | number> = {}
    for (const port of this.ports) {
      const base = `serial/${port.config.name}`
      values[`${base}/state`] = port.state.state
      for (const [k, v] of Object.entries(port.counters())) values[`${base}/${k}`] = v
      values[`${base}/devices/online`] = port.devices().filter((d) => d.online).length
    }
    return values
  }
}
