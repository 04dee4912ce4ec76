/**
 * The parts of a `serial:` entry that say how readings become MQTT messages: topic templates,
 * the mapping rule shared by a port and its `devices:` overrides, per-field rules, and the check
 * that no port's command filter catches the bridge's own messages.
 */
import { isMap, isScalar, isSeq } from 'yaml'
import { TopicTemplate, type Placeholder } from '../serial/template.js'
import { boolean, describeValue, integer, nonNegativeNumber, nonZeroNumber, oneOf, qos, string, type Rule } from './rules.js'
import type { DeviceRule, FieldRule, SerialPortConfig } from './serial-types.js'
import { deref, offsetOf, plainValue, readMapping, report, scalar, type FieldSpec, type Walk } from './validate.js'

/**
 * `publish`: a topic Outpost publishes to; `…-or-off`: the same, or '' to turn the feature off;
 * `filter-or-off`: a subscription filter; `text`: not a topic at all (`command_line`).
 */
export type TemplateKind = 'publish' | 'publish-or-off' | 'filter-or-off' | 'text'

/** Why `source` is not a good template of `kind`, or undefined when it is. */
export function templateProblem(source: string, allowed: readonly Placeholder[], kind: TemplateKind): string | undefined {
  if (source === '') return kind.endsWith('-or-off') ? undefined : kind === 'text' ? 'expected a non-empty string' : 'expected a non-empty topic'
  const parsed = TopicTemplate.parse(source, allowed)
  if (typeof parsed === 'string') return parsed
  if (kind === 'text') return undefined
  // The broker keeps $-topics ($SYS) to itself, and a filter starting with $share would turn
  // the bridge into a shared-subscription member.
  if (source.startsWith('$')) return 'topics starting with $ are reserved for the broker'
  if (source.includes('\u0000')) return 'a topic cannot contain U+0000'
  if (kind !== 'filter-or-off') {
    return /[+#]/.test(source) ? 'a topic to publish to cannot contain the wildcards + or #' : undefined
  }
  const levels = source.split('/')
  for (const [i, level] of levels.entries()) {
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return '# must be the last level and alone in it, as in sensors/{device}/set/#'
    if (level.includes('+') && level !== '+') return '+ must fill a whole level, as in sensors/+/set'
  }
  // The filter is subscribed with each placeholder as `+`, and the value read back from that level.
  if (!parsed.wholeLevels) return 'every placeholder must fill a whole topic level (sensors/{device}/set/#, not sensors/dev-{device}/set/#)'
  return undefined
}

export function template<C>(allowed: readonly Placeholder[], kind: TemplateKind, set: (target: C, value: string) => void): FieldSpec<C> {
  return {
    read(w, node, offset, field, target) {
      const value = plainValue(node)
      if (typeof value !== 'string') {
        const what = kind === 'text' ? 'a string' : kind.endsWith('-or-off') ? 'a topic (a string; "" turns it off)' : 'a topic (a string)'
        report(w, offset, field, `expected ${what}, got ${describeValue(value)}`)
        return
      }
      const problem = templateProblem(value, allowed, kind)
      if (problem === undefined) set(target, value)
      else report(w, offset, field, problem)
    },
  }
}

/** Field names become topic levels and JSON keys. */
export const fieldName: Rule<string> = {
  expected: 'a non-empty name without /, + or #',
  accepts: (v): v is string => typeof v === 'string' && v.trim() !== '' && !/[/+#\u0000]/.test(v),
}

/** Where the value of `keys` (a path of mapping keys from `node`) sits; `fallback` when a key is absent. */
export function find(w: Walk, node: unknown, keys: readonly string[], fallback: number): number {
  let at = fallback
  let current = node
  for (const key of keys) {
    if (!isMap(current)) return at
    const pair = current.items.find((p) => isScalar(p.key) && p.key.value === key)
    if (pair === undefined) return at
    at = offsetOf(pair.value, offsetOf(pair.key, at))
    current = deref(w, pair.value)
  }
  return at
}

/**
 * Visits each entry of a mapping keyed by names of the operator's choosing (device ids, field
 * and command names), after checking that each key is a non-empty string.
 * Returns false when `node` is not a mapping (already reported).
 */
export function readKeyed(
  w: Walk,
  node: unknown,
  offset: number,
  field: string,
  example: string,
  visit: (key: string, value: unknown, at: number, path: string) => void,
): boolean {
  if (!isMap(node)) {
    report(w, offset, field, `expected a mapping (for example ${example}), got ${describeValue(plainValue(node))}`)
    return false
  }
  for (const pair of node.items) {
    const keyAt = offsetOf(pair.key, offset)
    const key = isScalar(pair.key) ? pair.key.value : plainValue(pair.key)
    if (typeof key !== 'string' || key === '') {
      const hint = typeof key === 'number' ? ' (quote it: names are strings)' : ''
      report(w, keyAt, `${field}.${describeValue(key)}`, `expected a name, got ${describeValue(key)}${hint}`)
      continue
    }
    const value = deref(w, pair.value)
    const empty = pair.value === null || (isScalar(value) && value.value === null)
    visit(key, value, empty ? keyAt : offsetOf(pair.value, keyAt), `${field}.${key}`)
  }
  return true
}

const FIELD_RULE_FIELDS: Readonly<Record<string, FieldSpec<FieldRule>>> = {
  name: scalar(fieldName, (f, v) => { f.name = v }),
  scale: scalar(nonZeroNumber, (f, v) => { f.scale = v }),
  precision: scalar(integer(0, 10), (f, v) => { f.precision = v }),
  unit: scalar(string, (f, v) => { f.unit = v }),
  throttle: scalar(nonNegativeNumber, (f, v) => { f.throttle = v }),
  deadband: scalar(nonNegativeNumber, (f, v) => { f.deadband = v }),
  qos: scalar(qos, (f, v) => { f.qos = v }),
  retain: scalar(boolean, (f, v) => { f.retain = v }),
  ignore: scalar(boolean, (f, v) => { f.ignore = v }),
}

/** Every key a `fields.<field>` entry accepts. */
export const SERIAL_FIELD_KEYS: readonly string[] = Object.keys(FIELD_RULE_FIELDS)

function readFields(w: Walk, node: unknown, offset: number, field: string, set: (fields: Record<string, FieldRule>) => void): void {
  const entries: Array<[string, FieldRule]> = []
  const byName = new Map<string, string>()
  const ok = readKeyed(w, node, offset, field, 'temperature: { scale: 0.1 }', (key, value, at, path) => {
    if (!isMap(value)) {
      report(w, at, path, `expected a mapping with keys ${SERIAL_FIELD_KEYS.join(', ')}, got ${describeValue(plainValue(value))}`)
      return
    }
    const rule: FieldRule = {}
    readMapping(w, value, path, FIELD_RULE_FIELDS, rule)
    // Two fields under one name would overwrite each other in the JSON object and on the field topic.
    const published = rule.name ?? key
    const other = byName.get(published)
    if (other !== undefined && rule.ignore !== true) report(w, find(w, value, ['name'], at), `${path}.name`, `same name as ${field}.${other} ("${published}")`)
    else if (rule.ignore !== true) byName.set(published, key)
    entries.push([key, rule])
  })
  // fromEntries, not assignment: a field called __proto__ must stay an ordinary key.
  if (ok) set(Object.fromEntries(entries))
}

/** The mapping rule as a port or a device entry spells it; on a device only the keys present count. */
const RULE_FIELDS: Readonly<Record<string, FieldSpec<DeviceRule>>> = {
  topic: template(['port', 'device'], 'publish', (r, v) => { r.topic = v }),
  field_topic: template(['port', 'device', 'field'], 'publish', (r, v) => { r.fieldTopic = v }),
  output: scalar(oneOf(['json', 'fields', 'both'] as const), (r, v) => { r.output = v }),
  qos: scalar(qos, (r, v) => { r.qos = v }),
  retain: scalar(boolean, (r, v) => { r.retain = v }),
  timestamp: scalar(oneOf(['iso', 'epoch_ms', 'none'] as const), (r, v) => { r.timestamp = v }),
  throttle: scalar(nonNegativeNumber, (r, v) => { r.throttle = v }),
  deadband: scalar(nonNegativeNumber, (r, v) => { r.deadband = v }),
  fields: { read: (w, node, offset, field, r) => readFields(w, node, offset, field, (f) => { r.fields = f }) },
}

/** Every key a `devices.<id>` entry accepts; a port accepts them all too. */
export const SERIAL_DEVICE_KEYS: readonly string[] = Object.keys(RULE_FIELDS)

/** The mapping keys for a port: the same specs, reading into the port's draft rule. */
export function mappingFields<C>(rule: (target: C) => DeviceRule): Record<string, FieldSpec<C>> {
  return Object.fromEntries(Object.entries(RULE_FIELDS).map(([key, spec]): [string, FieldSpec<C>] => [
    key,
    { read: (w, node, offset, field, target) => spec.read(w, node, offset, field, rule(target)) },
  ]))
}

export function readDevices(w: Walk, node: unknown, offset: number, field: string, set: (devices: Record<string, DeviceRule>) => void): void {
  const entries: Array<[string, DeviceRule]> = []
  const ok = readKeyed(w, node, offset, field, 'emulated-1: { output: both }', (key, value, at, path) => {
    if (!isMap(value)) {
      report(w, at, path, `expected a mapping with keys ${SERIAL_DEVICE_KEYS.join(', ')}, got ${describeValue(plainValue(value))}`)
      return
    }
    const rule: DeviceRule = {}
    readMapping(w, value, path, RULE_FIELDS, rule)
    entries.push([key, rule])
  })
  if (ok) set(Object.fromEntries(entries))
}

/**
 * `output: fields` or `both` with a field topic lacking `{field}` would publish every field to one
 * topic. Checked for the port and for each device that overrides either key.
 */
export function checkFieldTopics(w: Walk, item: unknown, at: number, path: string, port: SerialPortConfig): void {
  const needsField = (output: string, fieldTopic: string): boolean => output !== 'json' && !fieldTopic.includes('{field}')
  const { output, fieldTopic } = port.mapping
  if (needsField(output, fieldTopic)) {
    report(w, find(w, item, ['field_topic'], find(w, item, ['output'], at)), `${path}.field_topic`, `must contain {field} when output is ${output}, or every field would go to one topic`)
    return
  }
  for (const [id, device] of Object.entries(port.devices)) {
    if (device.output === undefined && device.fieldTopic === undefined) continue
    const o = device.output ?? output
    const ft = device.fieldTopic ?? fieldTopic
    if (!needsField(o, ft)) continue
    const key = device.fieldTopic === undefined ? 'output' : 'field_topic'
    report(w, find(w, item, ['devices', id, key], at), `${path}.devices.${id}.${key}`, `output ${o} needs a field_topic with {field}; this device's is "${ft}"`)
  }
}

/** A template's levels with the known placeholders filled in; null where a value is not known yet. */
function topicLevels(source: string, vars: Readonly<Record<string, string>>): Array<string | null> {
  let filled = source
  for (const [name, value] of Object.entries(vars)) filled = filled.replaceAll(`{${name}}`, value)
  return filled.split('/').map((l) => (l.includes('{') ? null : l))
}

/**
 * Whether `filter` surely matches some topic of the template. A level filled later (a device or
 * field name) is taken to differ from any literal level: `sensors/{device}/{field}` against
 * `sensors/{device}/set/#` only collides for a field named `set`, which is not worth refusing.
 */
function catches(filter: ReadonlyArray<string | null>, topic: ReadonlyArray<string | null>): boolean {
  for (const [i, f] of filter.entries()) {
    if (f === '#') return true
    if (i >= topic.length) return false
    if (f !== null && f !== '+' && f !== topic[i]) return false
  }
  return filter.length === topic.length
}

/**
 * Refuses a command filter that catches what the bridge itself publishes (say `sensors/#` with
 * readings on `sensors/{device}`): each reading or response would go back down the wire as a
 * command, and a NAK's response would loop forever. Returns, per port index, the problem found.
 */
export function echoProblems(ports: readonly SerialPortConfig[], paths: readonly string[]): Map<number, string> {
  const published: Array<{ label: string; source: string; levels: Array<string | null> }> = []
  ports.forEach((p, i) => {
    const own: Array<[string, string, Record<string, string>]> = [
      ['topic', p.mapping.topic, {}],
      ['field_topic', p.mapping.fieldTopic, {}],
      ['availability_topic', p.availabilityTopic, {}],
      ['state_topic', p.stateTopic, {}],
      ['response_topic', p.responseTopic, {}],
    ]
    for (const [id, d] of Object.entries(p.devices)) {
      if (d.topic !== undefined) own.push([`devices.${id}.topic`, d.topic, { device: id }])
      if (d.fieldTopic !== undefined) own.push([`devices.${id}.field_topic`, d.fieldTopic, { device: id }])
    }
    for (const [key, source, vars] of own) {
      if (source !== '') published.push({ label: `${paths[i] ?? ''}.${key}`, source, levels: topicLevels(source, { port: p.name, ...vars }) })
    }
  })
  const problems = new Map<number, string>()
  ports.forEach((p, i) => {
    if (p.commandTopic === '') return
    const filter = topicLevels(p.commandTopic, { port: p.name })
    const hit = published.find((t) => catches(filter, t.levels))
    if (hit !== undefined) {
      problems.set(i, `catches ${hit.label} ("${hit.source}"), so Outpost would take its own messages as commands; give commands a level of their own, e.g. sensors/{device}/set/#`)
    }
  })
  return problems
}

/** A YAML list of unique field names (CSV columns). */
export function readNameList(w: Walk, node: unknown, offset: number, field: string, set: (names: string[]) => void): void {
  if (!isSeq(node) || node.items.length === 0) {
    report(w, offset, field, `expected a non-empty list of names (for example [time, temperature]), got ${describeValue(plainValue(node))}`)
    return
  }
  const firstAt = new Map<string, number>()
  let ok = true
  node.items.forEach((raw, i) => {
    const value = plainValue(deref(w, raw))
    const at = offsetOf(raw, offset)
    const earlier = typeof value === 'string' ? firstAt.get(value) : undefined
    if (!fieldName.accepts(value)) {
      report(w, at, `${field}[${i}]`, `expected ${fieldName.expected}, got ${describeValue(value)}`)
      ok = false
    } else if (earlier !== undefined) {
      report(w, at, `${field}[${i}]`, `"${value}" is already ${field}[${earlier}]`)
      ok = false
    } else {
      firstAt.set(value, i)
    }
  })
  if (ok) set([...firstAt.keys()])
}
