/**
 * The serial bridge: every configured port, speaking to the broker as one internal client.
 * Readings enter through the same core as a network client's PUBLISH (retained messages, QoS,
 * durable queues and later ACLs and the upstream bridge apply to them); command topics are
 * ordinary subscriptions of that client.
 */
import { isDeepStrictEqual } from 'node:util'
import type { Logger } from 'pino'
import type { Broker } from '../broker/broker.js'
import type { InternalClient } from '../broker/internal-client.js'
import type { Message, MessageProperties, QoS } from '../broker/types.js'
import type { SerialPortConfig } from '../config/serial-types.js'
import type { CommandResult } from './commands.js'
import type { Publication } from './mapper.js'
import { PortBridge, type PortHost } from './port-bridge.js'
import { TopicTemplate } from './template.js'

export const SERIAL_CLIENT_ID = 'outpost-serial'

/** What a reload did to the ports, by name. */
export interface SerialChanges {
  /** Mapping changed, port left open. */
  changed: string[]
  /** Line settings changed: closed and opened again. */
  reopened: string[]
  added: string[]
  removed: string[]
}

/**
 * Whether going from `a` to `b` needs the port closed and opened again: the name (logs, `{port}`,
 * the state topic), which device it is, the line settings and the framing with its options.
 * Everything else is mapping, taken by {@link PortBridge.reconfigure} with the port open.
 */
export function needsReopen(a: SerialPortConfig, b: SerialPortConfig): boolean {
  const line = (c: SerialPortConfig): unknown[] => [c.name, c.selector, c.baudRate, c.dataBits, c.parity, c.stopBits, c.rtscts, c.framing, c.lines]
  return !isDeepStrictEqual(line(a), line(b))
}

interface Route {
  readonly port: PortBridge
  readonly commands: TopicTemplate | undefined
  readonly response: TopicTemplate | undefined
}

export class SerialBridge {
  readonly #broker: Broker
  readonly #log: Logger
  readonly #host: PortHost
  #routes: Route[]
  readonly #client: InternalClient
  readonly #pending = new Set<Promise<void>>()
  /** Command filters the client is subscribed to. */
  readonly #filters = new Set<string>()

  constructor(broker: Broker, ports: readonly SerialPortConfig[], log: Logger) {
    this.#broker = broker
    this.#log = log
    this.#client = broker.createInternalClient(SERIAL_CLIENT_ID, (m) => this.#onMessage(m))
    this.#host = { publish: (p: Publication) => this.#publish(p), log }
    this.#routes = ports.map((c) => route(new PortBridge(c, this.#host)))
  }

  get ports(): readonly PortBridge[] {
    return this.#routes.map((r) => r.port)
  }

  /** Opens every port (a missing one waits) and subscribes to the command topics. */
  async start(): Promise<void> {
    await this.#clearStaleAvailability()
    for (const r of this.#routes) r.port.start()
    await this.#subscribeCommands()
    this.#broker.addSysSource(() => this.#sys())
  }

  /**
   * Takes a new `serial:` section (SIGHUP). Ports are matched by name, then by the same path or
   * selector: a mapping change is applied with the port open; new line settings close and reopen
   * it; new ports are opened, ports gone are closed (their devices marked offline, as at stop).
   */
  async reconfigure(ports: readonly SerialPortConfig[]): Promise<SerialChanges> {
    const changes: SerialChanges = { changed: [], reopened: [], added: [], removed: [] }
    const unmatched = new Set(this.#routes)
    const next: Route[] = []
    const opening: PortBridge[] = []
    for (const c of ports) {
      const old = [...unmatched].find((r) => r.port.config.name === c.name) ?? [...unmatched].find((r) => isDeepStrictEqual(r.port.config.selector, c.selector))
      if (old !== undefined) unmatched.delete(old)
      if (old !== undefined && !needsReopen(old.port.config, c)) {
        if (!isDeepStrictEqual(old.port.config, c)) {
          old.port.reconfigure(c)
          changes.changed.push(c.name)
        }
        next.push(route(old.port))
        continue
      }
      if (old !== undefined) {
        // Closed before the new one opens: it may be the same device.
        await old.port.close()
        changes.reopened.push(c.name)
      } else {
        changes.added.push(c.name)
      }
      const port = new PortBridge(c, this.#host, old?.port.seq)
      next.push(route(port))
      opening.push(port)
    }
    for (const r of unmatched) {
      await r.port.close()
      changes.removed.push(r.port.config.name)
    }
    this.#routes = next
    for (const port of opening) port.start()
    await this.#subscribeCommands()
    return changes
  }

  /** Marks devices offline and ports stopped, waits for those messages to be stored, closes the ports. */
  async close(): Promise<void> {
    await Promise.all(this.#routes.map((r) => r.port.close()))
    await Promise.all([...this.#pending])
    this.#client.close()
  }

  /** Subscribes to the command filters of the ports now configured, and drops those no port has now. */
  async #subscribeCommands(): Promise<void> {
    const wanted = new Set<string>()
    for (const r of this.#routes) if (r.commands !== undefined) wanted.add(r.commands.toFilter({ port: r.port.config.name }))
    for (const f of [...this.#filters]) {
      if (wanted.has(f)) continue
      await this.#client.unsubscribe(f)
      this.#filters.delete(f)
    }
    for (const f of wanted) {
      if (this.#filters.has(f)) continue
      // QoS 1 so a command sent at QoS 1 is not downgraded on its way to the device.
      await this.#client.subscribe(f, 1)
      this.#filters.add(f)
    }
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
      this.#reply(route, device, message.topic, { status: 'offline', reason: `no serial port has a device ${device}` }, message)
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

/** A port with its command and response topics compiled from its current config. */
function route(port: PortBridge): Route {
  const c = port.config
  return {
    port,
    commands: c.commandTopic === '' ? undefined : TopicTemplate.compile(c.commandTopic, ['port', 'device']),
    response: c.responseTopic === '' ? undefined : TopicTemplate.compile(c.responseTopic, ['port', 'device']),
  }
}
