/**
 * One configured serial port at work: the link (reopened on its own), the framing decoder, the
 * devices heard on it with their availability, the mapping of readings to messages, and the
 * commands going back down. Knows nothing of MQTT sessions: it hands publications to its host.
 */
import type { Logger } from 'pino'
import type { SerialPortConfig } from '../config/serial-types.js'
import { LineDecoder } from './codecs/lines.js'
import type { Fields } from './codecs/line-parsers.js'
import { OutpostLinkDecoder } from './codecs/outpost-link-decoder.js'
import { encodeFrame } from './codecs/outpost-link.js'
import { CommandChannel, encodeArgs, type CommandResult } from './commands.js'
import { MAX_DEVICES_PER_PORT, PortDevices } from './devices.js'
import { discoveryMessages, kindOf, MAX_ANNOUNCED_FIELDS, type AnnouncedField } from './discovery.js'
import { LinkSession } from './link-session.js'
import { ReadingMapper, type Publication } from './mapper.js'
import { SerialLink, type LinkState } from './port.js'
import { listCandidates, resolvePort } from './resolve.js'
import { TopicTemplate } from './template.js'

const LOG_EVERY_MS = 10_000

/** A reading as it went out: its topic, its payload, and when. */
export interface LastReading {
  readonly topic: string
  readonly payload: string
  readonly at: number
}

export interface PortHost {
  publish(p: Publication): void
  readonly log: Logger
}

/** Counters a port adds to the decoder's: what the mapping layer refused or noticed. */
export interface BridgeCounters {
  /** DATA for a field id the last HELLO did not declare. */
  'undeclared-field': number
  /** DATA before any HELLO (the gateway asks the device for one). */
  'no-hello': number
  /** Frames a device must not send (CMD), or ACK / NAK for nothing outstanding. */
  'unexpected-frame': number
  /** Frames missing by the device's sequence numbers. */
  lost: number
  /** Readings from devices past MAX_DEVICES_PER_PORT. */
  'too-many-devices': number
  /** Lines whose `device_field` was missing. */
  'no-device': number
  commands: number
  'command-failures': number
}

export class PortBridge {
  #config: SerialPortConfig
  readonly #host: PortHost
  readonly #log: Logger
  readonly #link: SerialLink
  readonly #lines: LineDecoder | undefined
  readonly #frames: OutpostLinkDecoder | undefined
  #mapper: ReadingMapper
  readonly #channel: CommandChannel
  readonly #devices: PortDevices
  #stateTopic: string | undefined
  readonly #counters: BridgeCounters = { 'undeclared-field': 0, 'no-hello': 0, 'unexpected-frame': 0, lost: 0, 'too-many-devices': 0, 'no-device': 0, commands: 0, 'command-failures': 0 }
  readonly #lastLog = new Map<string, { at: number; suppressed: number }>()
  readonly #session: LinkSession
  /** The newest published reading per device; as bounded as the devices (PortDevices refuses more). */
  readonly #lastReadings = new Map<string, LastReading>()
  /** Home Assistant discovery: fields announced per device (reset by a HELLO, which may change them). */
  readonly #announced = new Map<string, Set<string>>()
  #seq = 0
  #closed = false

  /**
   * `seq`: where this port's frame seq starts. A port reopened by a reload continues where its
   * predecessor stopped: a device that sees the seq of its last CMD again takes it for a retry,
   * repeats its answer and does not run it (a `$hello` would get no HELLO).
   */
  constructor(config: SerialPortConfig, host: PortHost, seq = 0) {
    this.#config = config
    this.#seq = seq % 256
    this.#host = host
    this.#log = host.log.child({ port: config.name })
    this.#stateTopic = stateTopic(config)
    const selector = config.selector
    this.#link = new SerialLink(
      {
        path: 'path' in selector ? selector.path : config.name,
        ...('path' in selector ? {} : { resolvePath: async () => resolvePort(selector, await listCandidates()) }),
        baudRate: config.baudRate,
        dataBits: config.dataBits,
        parity: config.parity,
        stopBits: config.stopBits,
        rtscts: config.rtscts,
      },
      this.#log,
    )
    if (config.framing === 'lines') {
      const l = config.lines
      this.#lines = new LineDecoder({ delimiter: l.delimiter, maxLength: l.maxLength, parser: l.format })
    } else {
      this.#frames = new OutpostLinkDecoder()
    }
    this.#mapper = new ReadingMapper(config, (p, device) => this.#publishReading(p, device))
    this.#devices = new PortDevices({
      config: () => this.#config,
      publish: (p) => host.publish(p),
      log: this.#log,
      refused: (detail) => this.#count('too-many-devices', detail),
    })
    // Getters: a reload (SIGHUP) may change the timeout and attempts of commands still to come.
    const current = (): SerialPortConfig => this.#config
    this.#channel = new CommandChannel({
      get timeoutMs() {
        return current().commandTimeout * 1000
      },
      get attempts() {
        return current().commandAttempts
      },
      encode: (seq, name, args) => encodeFrame({ type: 'cmd', seq, name, args }),
      write: (wire) => this.#link.write(wire),
      nextSeq: () => this.#nextSeq(),
    })
    this.#session = new LinkSession({
      log: this.#log,
      devices: this.#devices,
      channel: this.#channel,
      counters: this.#counters,
      count: (kind, detail) => this.#count(kind, detail),
      push: (device, values) => this.#mapper.push(device, values),
      announce: (device, fields, firmware) => this.#announce(device, fields, firmware),
      forget: (device) => {
        this.#announced.delete(device)
      },
    })
    this.#link.on('state', (s) => this.#onState(s))
    this.#link.on('data', (chunk) => this.#onData(chunk))
  }

  /** Read anew each time: {@link reconfigure} replaces it. */
  get config(): SerialPortConfig {
    return this.#config
  }

  get state(): LinkState {
    return this.#link.state
  }

  /** The seq of the next frame the gateway sends on this port. */
  get seq(): number {
    return this.#seq
  }

  /** Frames or lines decoded, each decoder error kind, and the bridge's own counters. */
  counters(): Record<string, number> {
    const decoder = this.#lines?.counters ?? this.#frames?.counters ?? {}
    return { ...decoder, ...this.#counters }
  }

  /** The newest message a reading of `device` was published as (for the dashboard), if any. */
  lastReading(device: string): LastReading | undefined {
    return this.#lastReadings.get(device)
  }

  /** Devices heard since start (or configured for a `lines` port), and whether each is online now. */
  devices(): Array<{ id: string; online: boolean }> {
    return this.#devices.list()
  }

  /** Whether `device` speaks on this port: the last HELLO's id, or a `lines` device heard or configured. */
  has(device: string): boolean {
    if (this.config.framing === 'outpost-link') return this.#session.deviceId === device
    return this.#devices.has(device) || device === this.config.lines.device
  }

  start(): void {
    if (this.config.framing === 'lines' && this.config.lines.deviceField === undefined) {
      this.#devices.add(this.config.lines.device ?? this.config.name)
    }
    this.#publishState(this.#link.state)
    this.#link.start()
  }

  /**
   * A command for `device` (the one on this port, or a node behind a hub). `name` is what followed the command filter's `#` ('' for the base
   * topic, where a JSON object names several commands).
   */
  command(device: string, name: string, payload: Buffer, reply: (name: string, result: CommandResult) => void): void {
    if (name === '') {
      const many = jsonObject(payload)
      if (many !== undefined) {
        for (const [key, value] of Object.entries(many)) this.#one(device, key, Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), reply)
        return
      }
      if (this.config.framing === 'outpost-link') {
        reply(name, { status: 'invalid', reason: 'name the command in the topic, or send a JSON object of commands' })
        return
      }
    }
    this.#one(device, name, payload, reply)
  }

  /**
   * Takes a new mapping without closing the port (SIGHUP): topics, output, fields, throttle and
   * deadband, QoS and retain, device overrides, Home Assistant, availability and commands. The
   * line settings must be the same (the caller reopens the port otherwise). What was published
   * under an old availability or state topic is left as a stopped port leaves it.
   */
  reconfigure(next: SerialPortConfig): void {
    const before = this.#config
    this.#config = next
    // Pending throttled values belong to the old topics; the next reading brings a fresh one.
    this.#mapper.close()
    this.#mapper = new ReadingMapper(next, (p, device) => this.#publishReading(p, device))
    // Discovery configs name the topics: announced again, with the new ones, at the next reading.
    this.#announced.clear()
    this.#devices.reconfigure(before)
    if (next.stateTopic !== before.stateTopic) {
      this.#writeState({ state: 'stopped' })
      this.#stateTopic = stateTopic(next)
      this.#publishState(this.#link.state)
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#mapper.close()
    this.#channel.fail('gateway stopping')
    this.#devices.allOffline()
    this.#writeState({ state: 'stopped' })
    await this.#link.close()
  }

  #one(device: string, name: string, payload: Buffer, reply: (name: string, result: CommandResult) => void): void {
    this.#counters.commands++
    const done = (result: CommandResult): void => {
      if (result.status !== 'ack' && result.status !== 'sent') this.#counters['command-failures']++
      reply(name, result)
    }
    if (this.config.framing === 'lines') {
      // A hub relaying many nodes needs the node's id in the line: `{device}`.
      const vars: Record<string, string> = { device, command: name, payload: payload.toString('utf8') }
      // One pass, so a payload holding "{command}" is sent as it is.
      const text = this.config.commandLine.replace(/\{(device|command|payload)\}/g, (_m, key: string) => vars[key] ?? '')
      const line = name === '' ? payload.toString('utf8') : text
      done(this.#link.write(Buffer.from(line + this.config.lines.delimiter)) ? { status: 'sent' } : { status: 'offline', reason: `port ${this.#link.state.state}` })
      return
    }
    const declared = this.#session.declared(name)
    const type = this.config.commandArgs[name] ?? declared?.type ?? 'raw'
    const args = encodeArgs(type, payload)
    if (typeof args === 'string') {
      done({ status: 'invalid', reason: `${name}: ${args}` })
      return
    }
    this.#channel.send({ name, args, reply: done })
  }

  #onState(s: LinkState): void {
    this.#publishState(s)
    if (s.state === 'open') return
    // Whatever was half-received belongs to a device that is gone or restarting.
    this.#lines?.reset()
    this.#frames?.reset()
    this.#channel.fail(`port ${s.state}: ${s.reason}`)
    this.#devices.allOffline()
  }

  #onData(chunk: Buffer): void {
    if (this.#closed) return
    if (this.#lines !== undefined) {
      for (const e of this.#lines.push(chunk)) {
        if (e.kind === 'fields') this.#onLine(e.fields)
        else this.#warn(e.error.kind, e.error.detail)
      }
      return
    }
    for (const e of this.#frames?.push(chunk) ?? []) {
      if (e.kind === 'frame') this.#session.onFrame(e.frame)
      else this.#warn(e.error.kind, e.error.detail)
    }
  }

  #onLine(fields: Fields): void {
    const key = this.config.lines.deviceField
    let device = this.config.lines.device ?? this.config.name
    const values = { ...fields }
    if (key !== undefined) {
      const id = values[key]
      if (id === undefined || id === '') {
        this.#count('no-device', `line without its device field "${key}"`)
        return
      }
      device = String(id)
      delete values[key]
    }
    if (!this.#devices.add(device)) return
    this.#devices.seen(device)
    this.#announce(device, Object.entries(values).map(([field, value]) => ({ field, kind: kindOf(value) })))
    this.#mapper.push(device, Object.entries(values).map(([field, value]) => ({ field, value })))
  }

  /** Publishes Home Assistant discovery for fields of `device` not announced yet, when enabled. */
  #announce(device: string, fields: readonly AnnouncedField[], firmware?: string): void {
    if (!this.config.homeassistant) return
    let done = this.#announced.get(device)
    if (done === undefined) this.#announced.set(device, (done = new Set()))
    const fresh = fields.filter((f) => !done.has(f.field)).slice(0, Math.max(0, MAX_ANNOUNCED_FIELDS - done.size))
    if (fresh.length === 0) return
    for (const f of fresh) done.add(f.field)
    const { rule, fields: rules } = this.#mapper.rules(device)
    const availabilityTopic = this.#devices.availabilityTopic(device)
    for (const p of discoveryMessages({ port: this.config.name, device, firmware, rule, fields: rules, availabilityTopic }, fresh)) this.#host.publish(p)
  }

  #publishReading(p: Publication, device: string): void {
    if (this.#lastReadings.has(device) || this.#lastReadings.size < MAX_DEVICES_PER_PORT) this.#lastReadings.set(device, { topic: p.topic, payload: p.payload, at: Date.now() })
    this.#host.publish(p)
  }

  #publishState(s: LinkState): void {
    if (this.#closed) return
    this.#writeState(s)
  }

  /** The port state, retained, on the state topic (rendered once: it has only `{port}`). */
  #writeState(payload: object): void {
    if (this.#stateTopic === undefined) return
    this.#host.publish({ topic: this.#stateTopic, payload: JSON.stringify(payload), qos: 1, retain: true })
  }

  #nextSeq(): number {
    const seq = this.#seq
    this.#seq = (this.#seq + 1) % 256
    return seq
  }

  #count(kind: keyof BridgeCounters, detail: string): void {
    this.#counters[kind]++
    this.#warn(kind, detail)
  }

  /** At most one log line per kind per 10 s, saying how many were not logged: noise must not flood the journal. */
  #warn(kind: string, detail: string): void {
    const now = Date.now()
    const last = this.#lastLog.get(kind)
    if (last !== undefined && now - last.at < LOG_EVERY_MS) {
      last.suppressed++
      return
    }
    this.#log.warn({ kind, detail, ...(last === undefined || last.suppressed === 0 ? {} : { suppressed: last.suppressed }) }, 'serial input refused')
    this.#lastLog.set(kind, { at: now, suppressed: 0 })
  }
}

/** The state topic, rendered once: it has only `{port}`. */
function stateTopic(c: SerialPortConfig): string | undefined {
  return c.stateTopic === '' ? undefined : TopicTemplate.compile(c.stateTopic, ['port', 'device']).render({ port: c.name })
}

function jsonObject(payload: Buffer): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(payload.toString('utf8'))
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}
