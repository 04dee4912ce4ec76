/**
 * Readings to MQTT messages: the mapping rules of one port. A reading is a device's named values;
 * the mapper applies the field rules (rename, scale, precision, ignore), then for each output
 * topic the deadband and throttle, and hands finished publications to `send`.
 *
 * Throttle keeps the last value (zigbee2mqtt's debounce): within an interval a newer reading
 * replaces the pending one, so what is published at the end of the interval is current, and
 * at most one message per topic leaves per interval. Deadband compares with what was last
 * *published*: a value that wanders back within the band cancels a pending change.
 */
import type { DeviceRule, FieldRule, MappingRule, QoS, SerialPortConfig } from '../config/serial-types.js'
import type { FieldValue } from './codecs/line-parsers.js'
import { TopicTemplate } from './template.js'

export interface ReadingValue {
  /** The device's own field name. */
  readonly field: string
  readonly value: FieldValue
  /** Announced by HELLO; a field rule's `unit` wins. */
  readonly unit?: string | undefined
  /** A float32 on the wire: shown to 7 significant digits, not as 21.299999237060547. */
  readonly float32?: boolean
}

export interface Publication {
  readonly topic: string
  readonly payload: string
  readonly qos: QoS
  readonly retain: boolean
  readonly userProperties?: ReadonlyArray<readonly [string, string]>
}

interface Effective {
  rule: Omit<MappingRule, 'fields'>
  topic: TopicTemplate
  fieldTopic: TopicTemplate
  fields: Record<string, FieldRule>
}

type Json = Record<string, FieldValue>
/** `device`: whose reading it is (a topic without `{device}` may carry several devices' readings). */
interface JsonCandidate {
  values: Json
  at: number
  device: string
}
interface FieldCandidate {
  value: FieldValue
  at: number
  device: string
}

export class ReadingMapper {
  readonly #port: SerialPortConfig
  readonly #send: (p: Publication, device: string) => void
  readonly #now: () => number
  readonly #effective = new Map<string, Effective>()
  readonly #jsonGates = new Map<string, Gate<JsonCandidate>>()
  readonly #fieldGates = new Map<string, Gate<FieldCandidate>>()

  /** `send` gets each message with the device whose reading it carries. */
  constructor(port: SerialPortConfig, send: (p: Publication, device: string) => void, now: () => number = Date.now) {
    this.#port = port
    this.#send = send
    this.#now = now
  }

  /** Maps one reading of `device`; publications go out now or when a throttle interval ends. */
  push(device: string, values: readonly ReadingValue[]): void {
    const e = this.#rules(device)
    const at = this.#now()
    const json: Json = {}
    const perField: Array<{ name: string; value: FieldValue; rule: FieldRule; unit: string | undefined }> = []
    for (const v of values) {
      const rule = e.fields[v.field] ?? {}
      if (rule.ignore === true) continue
      const name = rule.name ?? v.field
      const value = transform(v, rule)
      json[name] = value
      perField.push({ name, value, rule, unit: rule.unit ?? (v.unit === '' ? undefined : v.unit) })
    }
    if (perField.length === 0) return
    const vars = { port: this.#port.name, device }
    if (e.rule.output !== 'fields') this.#offerJson(e, vars, json, at)
    if (e.rule.output === 'json') return
    for (const f of perField) this.#offerField(e, { ...vars, field: f.name }, f, at)
  }

  /** Cancels pending throttled messages (the port went away, or the gateway is stopping). */
  close(): void {
    for (const g of this.#jsonGates.values()) g.cancel()
    for (const g of this.#fieldGates.values()) g.cancel()
    this.#jsonGates.clear()
    this.#fieldGates.clear()
  }

  #offerJson(e: Effective, vars: { port: string; device: string }, json: Json, at: number): void {
    const topic = e.topic.render(vars)
    let gate = this.#jsonGates.get(topic)
    if (gate === undefined) {
      // By output name (a field rule may rename), built once: checked for every key of every reading.
      const byName = new Map(Object.entries(e.fields).map(([field, r]) => [r.name ?? field, r.deadband]))
      const deadband = (name: string): number => byName.get(name) ?? e.rule.deadband
      gate = new Gate<JsonCandidate>(
        e.rule.throttle,
        (c, last) => last === undefined || Object.entries(c.values).some(([k, v]) => moved(v, last.values[k], deadband(k))),
        (c) => this.#send({ topic, payload: JSON.stringify(withTime(c, e.rule.timestamp)), qos: e.rule.qos, retain: e.rule.retain }, c.device),
        this.#now,
      )
      this.#jsonGates.set(topic, gate)
    }
    // A device that sends fields in separate lines still gets one object per interval: the
    // pending object collects them, the newest value of each field winning.
    const merged = gate.pending === undefined ? json : { ...gate.pending.values, ...json }
    gate.offer({ values: merged, at, device: vars.device })
  }

  #offerField(
    e: Effective,
    vars: { port: string; device: string; field: string },
    f: { name: string; value: FieldValue; rule: FieldRule; unit: string | undefined },
    at: number,
  ): void {
    const topic = e.fieldTopic.render(vars)
    let gate = this.#fieldGates.get(topic)
    if (gate === undefined) {
      const deadband = f.rule.deadband ?? e.rule.deadband
      const qos = f.rule.qos ?? e.rule.qos
      const retain = f.rule.retain ?? e.rule.retain
      const unit = f.unit
      gate = new Gate<FieldCandidate>(
        f.rule.throttle ?? e.rule.throttle,
        (c, last) => last === undefined || moved(c.value, last.value, deadband),
        (c) => this.#send({ topic, payload: String(c.value), qos, retain, ...(unit === undefined ? {} : { userProperties: [['unit', unit]] }) }, c.device),
        this.#now,
      )
      this.#fieldGates.set(topic, gate)
    }
    gate.offer({ value: f.value, at, device: vars.device })
  }

  /** The port's rule with the device's overrides on top; field rules merge per key. */
  rules(device: string): { rule: Omit<MappingRule, 'fields'>; fields: Record<string, FieldRule> } {
    const e = this.#rules(device)
    return { rule: e.rule, fields: e.fields }
  }

  #rules(device: string): Effective {
    const cached = this.#effective.get(device)
    if (cached !== undefined) return cached
    const base = this.#port.mapping
    const over: DeviceRule = this.#port.devices[device] ?? {}
    const { fields: overFields, ...overRest } = over
    const rule = { ...withoutFields(base), ...definedOnly(overRest) }
    const fields: Record<string, FieldRule> = { ...base.fields }
    for (const [name, r] of Object.entries(overFields ?? {})) fields[name] = { ...base.fields[name], ...r }
    const e: Effective = { rule, topic: TopicTemplate.compile(rule.topic, ['port', 'device', 'field']), fieldTopic: TopicTemplate.compile(rule.fieldTopic, ['port', 'device', 'field']), fields }
    this.#effective.set(device, e)
    return e
  }
}

/** One output topic's throttle and deadband state. */
class Gate<V> {
  readonly #throttleMs: number
  readonly #passes: (candidate: V, last: V | undefined) => boolean
  readonly #send: (v: V) => void
  readonly #now: () => number
  #last: V | undefined
  #lastAt = Number.NEGATIVE_INFINITY
  #pending: V | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(throttleSec: number, passes: (candidate: V, last: V | undefined) => boolean, send: (v: V) => void, now: () => number) {
    this.#throttleMs = throttleSec * 1000
    this.#passes = passes
    this.#send = send
    this.#now = now
  }

  get pending(): V | undefined {
    return this.#pending
  }

  offer(v: V): void {
    if (!this.#passes(v, this.#last)) {
      // Back within the band of what subscribers already have: nothing to tell them.
      this.#pending = undefined
      return
    }
    const wait = this.#lastAt + this.#throttleMs - this.#now()
    if (wait <= 0 && this.#timer === undefined) {
      this.#publish(v)
      return
    }
    this.#pending = v
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.#flush(), Math.max(0, wait))
      this.#timer.unref()
    }
  }

  cancel(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#pending = undefined
  }

  #flush(): void {
    this.#timer = undefined
    const v = this.#pending
    this.#pending = undefined
    if (v !== undefined) this.#publish(v)
  }

  #publish(v: V): void {
    this.#last = v
    this.#lastAt = this.#now()
    this.#send(v)
  }
}

function transform(v: ReadingValue, rule: FieldRule): FieldValue {
  if (typeof v.value !== 'number') return v.value
  const scale = rule.scale ?? 1
  let n = v.value * scale
  if (rule.precision !== undefined) n = Number(n.toFixed(rule.precision))
  // float32 holds about 7 significant digits; printing more shows conversion noise, not data.
  else if (v.float32 === true) n = Number(n.toPrecision(7))
  // 3 * 0.1 is 0.30000000000000004 in binary floating point; 12 digits hides that and nothing real.
  else if (scale !== 1) n = Number(n.toPrecision(12))
  return n
}

/** Whether `value` differs enough from `last` to publish. Non-numbers: any change. */
function moved(value: FieldValue, last: FieldValue | undefined, deadband: number): boolean {
  if (deadband <= 0 || last === undefined) return true
  if (typeof value === 'number' && typeof last === 'number') return Math.abs(value - last) >= deadband
  return value !== last
}

function withTime(c: JsonCandidate, format: MappingRule['timestamp']): Json {
  if (format === 'none') return c.values
  return { ...c.values, time: format === 'iso' ? new Date(c.at).toISOString() : c.at }
}


function withoutFields(rule: MappingRule): Omit<MappingRule, 'fields'> {
  const { fields: _fields, ...rest } = rule
  return rest
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}
