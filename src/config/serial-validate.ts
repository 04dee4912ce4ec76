/**
 * Validates the `serial:` section into `SerialPortConfig[]`: which port, how it is framed, and
 * (with serial-validate-mapping.ts) how readings become messages and commands come back.
 * Like `listeners`, the section is taken only when every entry is valid.
 */
import { isMap } from 'yaml'
import type { CsvSeparator, KeyValueSeparator, LineFormat } from '../serial/codecs/line-parsers.js'
import type { PortSelector } from '../serial/resolve.js'
import { defaultSerialPort } from './defaults.js'
import {
  boolean,
  describeValue,
  integer,
  mismatch,
  nonEmptyString,
  nonNegativeNumber,
  numberOf,
  oneOf,
  positiveNumber,
  string,
  type Rule,
} from './rules.js'
import {
  checkFieldTopics,
  echoProblems,
  fieldName,
  find,
  mappingFields,
  readDevices,
  readKeyed,
  readNameList,
  template,
} from './serial-validate-mapping.js'
import type { CommandArgType, DeviceRule, LinesConfig, SerialPortConfig } from './serial-types.js'
import type { OutpostConfig } from './types.js'
// validate.ts imports readSerial from here. The cycle is safe: at load time this module only calls
// `scalar`, a hoisted function declaration, and validate.ts only refers to `readSerial`, another.
import { forEachMapping, plainValue, readMapping, report, scalar, type FieldSpec, type Walk } from './validate.js'

export { SERIAL_DEVICE_KEYS, SERIAL_FIELD_KEYS } from './serial-validate-mapping.js'

const SELECTOR_KEYS = ['path', 'by_id', 'usb'] as const
type SelectorKey = (typeof SELECTOR_KEYS)[number]

const portName: Rule<string> = {
  expected: 'a name of letters, digits, _, . and -',
  accepts: (v): v is string => typeof v === 'string' && /^[A-Za-z0-9_.-]+$/.test(v),
}

const byIdGlob: Rule<string> = {
  expected: 'a name or glob under /dev/serial/by-id, without /',
  accepts: (v): v is string => typeof v === 'string' && v.trim() !== '' && !v.includes('/'),
  hint: (v) => (typeof v === 'string' && v.includes('/') ? 'use path for a full path' : undefined),
}

// YAML reads an unquoted 0403 as the number 403 and 0x0403 as 1027: the digits are gone by then.
const quoteIt = (v: unknown): string | undefined => (typeof v === 'number' ? 'quote it: YAML reads an unquoted id as a number' : undefined)

const usbId: Rule<string> = {
  expected: 'a USB id of 4 hex digits in quotes, e.g. "0403"',
  accepts: (v): v is string => typeof v === 'string' && /^(0x)?[0-9a-f]{4}$/i.test(v),
  hint: quoteIt,
}

const serialNumber: Rule<string> = { ...nonEmptyString, hint: quoteIt }

const delimiter: Rule<string> = {
  expected: 'a string of 1 to 8 bytes',
  // A plain or single-quoted \n is a backslash and an n; no device ends its lines with that.
  accepts: (v): v is string => typeof v === 'string' && Buffer.byteLength(v) >= 1 && Buffer.byteLength(v) <= 8 && !/\\[nrt0]/.test(v),
  hint: (v) => (typeof v === 'string' && /\\[nrt0]/.test(v) ? 'YAML reads \\n as a newline only in double quotes: "\\n"' : undefined),
}

const KEY_VALUE_SEPARATORS: readonly KeyValueSeparator[] = [' ', ',', ';']
const CSV_SEPARATORS: readonly CsvSeparator[] = [',', ';', '\t']
const isKeyValueSeparator = (s: string): s is KeyValueSeparator => KEY_VALUE_SEPARATORS.some((x) => x === s)
const isCsvSeparator = (s: string): s is CsvSeparator => CSV_SEPARATORS.some((x) => x === s)

/** The `lines:` mapping as read; which keys fit together depends on `format`, checked afterwards. */
interface LinesDraft {
  node: unknown
  /** Keys present, valid or not, so that a bad value is not also reported as missing. */
  seen: ReadonlySet<string>
  delimiter?: string
  maxLength?: number
  format?: LineFormat['format']
  separator?: string
  columns?: string[]
  typed?: boolean
  field?: string
  device?: string
  deviceField?: string
}

const LINES_FIELDS: Readonly<Record<string, FieldSpec<LinesDraft>>> = {
  delimiter: scalar(delimiter, (l, v) => { l.delimiter = v }),
  max_length: scalar(integer(1, 65536), (l, v) => { l.maxLength = v }),
  format: scalar(oneOf(['json', 'key-value', 'csv', 'raw'] as const), (l, v) => { l.format = v }),
  separator: scalar(string, (l, v) => { l.separator = v }),
  columns: { read: (w, node, offset, field, l) => readNameList(w, node, offset, field, (names) => { l.columns = names }) },
  typed: scalar(boolean, (l, v) => { l.typed = v }),
  field: scalar(fieldName, (l, v) => { l.field = v }),
  device: scalar(nonEmptyString, (l, v) => { l.device = v }),
  device_field: scalar(fieldName, (l, v) => { l.deviceField = v }),
}

interface UsbDraft {
  vendorId?: string
  productId?: string
  serialNumber?: string
}

const hex = (id: string): string => id.toLowerCase().replace(/^0x/, '')

const USB_FIELDS: Readonly<Record<string, FieldSpec<UsbDraft>>> = {
  vendor_id: scalar(usbId, (u, v) => { u.vendorId = hex(v) }),
  product_id: scalar(usbId, (u, v) => { u.productId = hex(v) }),
  serial_number: scalar(serialNumber, (u, v) => { u.serialNumber = v }),
}

/** One `serial:` entry under construction. */
interface PortDraft {
  port: SerialPortConfig
  name: string | undefined
  selector: PortSelector | undefined
  /** The port-level mapping keys as given; laid over the defaults once the entry is read. */
  rule: DeviceRule
  lines: LinesDraft | undefined
  /** False when `framing` is there but bad: the keys that depend on it are then left unjudged. */
  framingRead: boolean
}

const COMMAND_ARG_TYPES = oneOf(['raw', 'string', 'int32', 'uint32', 'float32', 'bool'] as const)

// Keys in the order the README documents them.
const PORT_FIELDS: Readonly<Record<string, FieldSpec<PortDraft>>> = {
  name: scalar(portName, (d, v) => { d.name = v }),
  path: scalar(nonEmptyString, (d, v) => { d.selector = { path: v } }),
  by_id: scalar(byIdGlob, (d, v) => { d.selector = { byId: v } }),
  usb: { read: readUsb },
  baud_rate: scalar(integer(50, 4_000_000), (d, v) => { d.port.baudRate = v }),
  data_bits: scalar(numberOf([5, 6, 7, 8] as const), (d, v) => { d.port.dataBits = v }),
  parity: scalar(oneOf(['none', 'even', 'odd'] as const), (d, v) => { d.port.parity = v }),
  stop_bits: scalar(numberOf([1, 2] as const), (d, v) => { d.port.stopBits = v }),
  rtscts: scalar(boolean, (d, v) => { d.port.rtscts = v }),
  framing: scalar(oneOf(['lines', 'outpost-link'] as const), (d, v) => { d.port.framing = v; d.framingRead = true }),
  lines: { read: readLines },
  ...mappingFields<PortDraft>((d) => d.rule),
  devices: { read: (w, node, offset, field, d) => readDevices(w, node, offset, field, (x) => { d.port.devices = x }) },
  availability_topic: template(['port', 'device'], 'publish-or-off', (d, v) => { d.port.availabilityTopic = v }),
  availability_timeout: scalar(nonNegativeNumber, (d, v) => { d.port.availabilityTimeout = v }),
  state_topic: template(['port'], 'publish-or-off', (d, v) => { d.port.stateTopic = v }),
  command_topic: template(['port', 'device'], 'filter-or-off', (d, v) => { d.port.commandTopic = v }),
  response_topic: template(['port', 'device'], 'publish-or-off', (d, v) => { d.port.responseTopic = v }),
  command_timeout: scalar(positiveNumber, (d, v) => { d.port.commandTimeout = v }),
  command_attempts: scalar(integer(1, 10), (d, v) => { d.port.commandAttempts = v }),
  command_args: { read: readCommandArgs },
  command_line: template(['device', 'command', 'payload'], 'text', (d, v) => { d.port.commandLine = v }),
  homeassistant: scalar(boolean, (d, v) => { d.port.homeassistant = v }),
}

/** Every key a `serial` entry accepts. */
export const SERIAL_KEYS: readonly string[] = Object.keys(PORT_FIELDS)
/** Every key of `serial[].usb`. */
export const SERIAL_USB_KEYS: readonly string[] = Object.keys(USB_FIELDS)
/** Every key of `serial[].lines`. */
export const SERIAL_LINES_KEYS: readonly string[] = Object.keys(LINES_FIELDS)

function readUsb(w: Walk, node: unknown, offset: number, field: string, d: PortDraft): void {
  if (!isMap(node)) {
    report(w, offset, field, `expected a mapping (for example { vendor_id: "0403", product_id: "6001" }), got ${describeValue(plainValue(node))}`)
    return
  }
  const usb: UsbDraft = {}
  const seen = readMapping(w, node, field, USB_FIELDS, usb)
  for (const key of ['vendor_id', 'product_id']) if (!seen.has(key)) report(w, offset, `${field}.${key}`, `missing; expected ${usbId.expected}`)
  if (usb.vendorId === undefined || usb.productId === undefined) return
  d.selector = usb.serialNumber === undefined
    ? { vendorId: usb.vendorId, productId: usb.productId }
    : { vendorId: usb.vendorId, productId: usb.productId, serialNumber: usb.serialNumber }
}

function readLines(w: Walk, node: unknown, offset: number, field: string, d: PortDraft): void {
  if (!isMap(node)) {
    report(w, offset, field, `expected a mapping (for example { format: csv, columns: [t, h] }), got ${describeValue(plainValue(node))}`)
    return
  }
  const lines: LinesDraft = { node, seen: new Set() }
  lines.seen = readMapping(w, node, field, LINES_FIELDS, lines)
  d.lines = lines
}

function readCommandArgs(w: Walk, node: unknown, offset: number, field: string, d: PortDraft): void {
  const entries: Array<[string, CommandArgType]> = []
  const ok = readKeyed(w, node, offset, field, '{ interval: uint32, led: bool }', (key, value, at, path) => {
    const type = plainValue(value)
    if (COMMAND_ARG_TYPES.accepts(type)) entries.push([key, type])
    else report(w, at, path, mismatch(COMMAND_ARG_TYPES, type))
  })
  if (ok) d.port.commandArgs = Object.fromEntries(entries)
}

/**
 * The `{port}` name when none is given: the last part of the path (`ttyUSB0`), the by-id glob, or
 * `usb-<vendor>-<product>[-<serial>]`, with anything outside [A-Za-z0-9_.-] turned into `_`.
 */
export function derivePortName(selector: PortSelector): string {
  const clean = (s: string): string => s.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^_+|_+$/g, '')
  if ('path' in selector) return clean(selector.path.split(/[\\/]/).at(-1) ?? '')
  if ('byId' in selector) return clean(selector.byId)
  return ['usb', selector.vendorId, selector.productId, selector.serialNumber].filter((p) => p !== undefined).map(clean).join('-')
}

/** A selector as one comparable string, to find two entries opening the same port. */
function selectorKey(s: PortSelector): [SelectorKey, string] {
  if ('path' in s) return ['path', s.path]
  if ('byId' in s) return ['by_id', s.byId]
  return ['usb', [s.vendorId, s.productId, s.serialNumber ?? ''].join(':')]
}

/** Builds `lines` once `format` is known; reports keys that do not fit the format. */
function buildLines(w: Walk, l: LinesDraft, path: string, at: number, name: string): LinesConfig | undefined {
  const defaults = defaultSerialPort(name, { path: '' }).lines
  // A bad format is reported already; checking the other keys against a guess would only mislead.
  if (l.seen.has('format') && l.format === undefined) return undefined
  const format = l.format ?? 'json'
  const before = w.problems.length
  const wrong = (key: string, message: string): void => report(w, find(w, l.node, [key], at), `${path}.${key}`, message)
  const only = (key: string, formats: string): void => {
    if (l.seen.has(key)) wrong(key, `only with format ${formats}; this port's format is ${format}`)
  }
  let lineFormat: LineFormat = { format: 'json' }
  if (format === 'key-value' || format === 'csv') {
    const allowed = format === 'csv' ? CSV_SEPARATORS : KEY_VALUE_SEPARATORS
    const sep = l.separator ?? allowed[0] ?? ','
    const typed = l.typed ?? true
    if (!allowed.some((x) => x === sep)) wrong('separator', `expected ${allowed.map((x) => JSON.stringify(x)).join(', ')} for format ${format}, got ${describeValue(sep)}`)
    if (format === 'csv') {
      if (!l.seen.has('columns')) report(w, find(w, l.node, ['format'], at), `${path}.columns`, 'missing; format csv needs the column names, e.g. columns: [time, temperature]')
      if (l.deviceField !== undefined && l.columns !== undefined && !l.columns.includes(l.deviceField)) {
        wrong('device_field', `"${l.deviceField}" is not one of columns (${l.columns.join(', ')})`)
      }
      if (isCsvSeparator(sep)) lineFormat = { format, columns: l.columns ?? [], separator: sep, typed }
    } else if (isKeyValueSeparator(sep)) {
      lineFormat = { format, separator: sep, typed }
    }
  } else {
    only('separator', 'key-value or csv')
    only('typed', 'key-value or csv')
  }
  if (format !== 'csv') only('columns', 'csv')
  if (format === 'raw') lineFormat = { format, field: l.field ?? 'raw' }
  else only('field', 'raw')
  if (format === 'raw' && l.deviceField !== undefined) wrong('device_field', 'not with format raw: a raw line has a single field')
  if (l.device !== undefined && l.deviceField !== undefined) wrong('device_field', 'give device or device_field, not both')
  if (w.problems.length > before) return undefined
  return {
    delimiter: l.delimiter ?? defaults.delimiter,
    maxLength: l.maxLength ?? defaults.maxLength,
    format: lineFormat,
    // A port whose lines carry no device id is one device, named after the port.
    device: l.deviceField === undefined ? (l.device ?? name) : undefined,
    deviceField: l.deviceField,
  }
}

/** Reads one entry; undefined (with problems reported) when it is not usable. */
function readPort(w: Walk, item: unknown, at: number, path: string): SerialPortConfig | undefined {
  const draft: PortDraft = { port: defaultSerialPort('', { path: '' }), name: undefined, selector: undefined, rule: {}, lines: undefined, framingRead: false }
  const before = w.problems.length
  const seen = readMapping(w, item, path, PORT_FIELDS, draft)
  const given = SELECTOR_KEYS.filter((k) => seen.has(k))
  if (given.length === 0) report(w, at, path, `no port given; expected one of ${SELECTOR_KEYS.join(', ')}`)
  for (const key of given.slice(1)) report(w, find(w, item, [key], at), `${path}.${key}`, `give only one of ${SELECTOR_KEYS.join(', ')}; this entry already has ${given[0] ?? ''}`)
  // The checks below go on without a usable selector, so that one run lists every problem.
  const { port, selector } = draft
  const name = draft.name ?? (selector === undefined ? '' : derivePortName(selector))
  if (selector !== undefined && name === '') report(w, find(w, item, [given[0] ?? ''], at), path, `cannot make a port name from the ${given[0] ?? ''}; set name`)
  port.name = name
  if (selector !== undefined) port.selector = selector
  port.mapping = { ...port.mapping, ...draft.rule }
  // A bad framing is reported already; which keys fit depends on the framing meant.
  const framingKnown = !seen.has('framing') || draft.framingRead
  if (framingKnown && port.framing === 'outpost-link') {
    if (seen.has('lines')) report(w, find(w, item, ['lines'], at), `${path}.lines`, 'only with framing lines; this port\'s framing is outpost-link')
    if (seen.has('command_line')) report(w, find(w, item, ['command_line'], at), `${path}.command_line`, 'only with framing lines; outpost-link sends commands as CMD frames')
  } else if (framingKnown) {
    if (seen.has('command_args')) report(w, find(w, item, ['command_args'], at), `${path}.command_args`, 'only with framing outpost-link; a lines port writes command_line')
    // Line devices send no heartbeat, so silence says nothing about them unless the file says so.
    if (!seen.has('availability_timeout')) port.availabilityTimeout = 0
    const lines = buildLines(w, draft.lines ?? { node: undefined, seen: new Set() }, `${path}.lines`, find(w, item, ['lines'], at), name)
    if (lines !== undefined) port.lines = lines
    // Commands to a hub's nodes must say which node; the topic is where that name comes from.
    if (port.lines.deviceField !== undefined && port.commandTopic !== '' && !port.commandTopic.includes('{device}')) {
      report(w, find(w, item, ['command_topic'], at), `${path}.command_topic`, 'must contain {device}: with lines.device_field this port carries several devices')
    }
  }
  checkFieldTopics(w, item, at, path, port)
  return w.problems.length > before || selector === undefined ? undefined : port
}

export function readSerial(w: Walk, node: unknown, offset: number, field: string, target: OutpostConfig): void {
  const ports: SerialPortConfig[] = []
  const where: Array<{ item: unknown; at: number; path: string }> = []
  const nameAt = new Map<string, number>()
  const portAt = new Map<string, number>()
  const example = { list: 'a list of serial ports (for example - path: /dev/ttyUSB0)', item: 'a mapping with a port (path, by_id or usb)' }
  const allValid = forEachMapping(w, node, offset, field, example, (item, at, path, i) => {
    const port = readPort(w, item, at, path)
    if (port === undefined) return false
    const [key, id] = selectorKey(port.selector)
    const samePort = portAt.get(`${key} ${id}`)
    const sameName = nameAt.get(port.name)
    if (samePort !== undefined) report(w, find(w, item, [key], at), `${path}.${key}`, `same port as ${field}[${samePort}]`)
    if (sameName !== undefined) {
      const hint = item.has('name') ? '' : ' (derived from the port; set name)'
      report(w, find(w, item, ['name'], at), `${path}.name`, `same name as ${field}[${sameName}] ("${port.name}")${hint}`)
    }
    if (samePort !== undefined || sameName !== undefined) return false
    portAt.set(`${key} ${id}`, i)
    nameAt.set(port.name, i)
    ports.push(port)
    where.push({ item, at, path })
    return true
  })
  if (allValid === undefined) return
  // Among the entries that are valid on their own, so that it is reported along with the rest.
  const echoes = echoProblems(ports, where.map((x) => x.path))
  for (const [i, message] of echoes) {
    const x = where[i]
    if (x !== undefined) report(w, find(w, x.item, ['command_topic'], x.at), `${x.path}.command_topic`, message)
  }
  if (allValid && echoes.size === 0) target.serial = ports
}
