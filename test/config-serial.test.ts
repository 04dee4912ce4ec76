import * as assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { defaultSerialPort } from '../src/config/defaults.js'
import { parseConfigText } from '../src/config/load.js'
import { FILE, onlyProblem, problems } from './helpers/config-problems.js'
import { SERIAL_DEVICE_KEYS, SERIAL_FIELD_KEYS, SERIAL_KEYS } from '../src/config/serial-validate.js'
import type { SerialPortConfig } from '../src/config/serial-types.js'


const serial = (text: string): SerialPortConfig[] => parseConfigText(text, FILE).serial

/** One entry on /dev/ttyUSB0 with `lines` added at entry level; they start on line 3, column 5. */
const entry = (...lines: string[]): string => `serial:\n  - path: /dev/ttyUSB0\n${lines.map((l) => `    ${l}\n`).join('')}`

const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

describe('serial: valid input', () => {
  test('every key is read from its snake_case spelling', () => {
    const text = `
serial:
  - name: kitchen
    path: /dev/ttyUSB0
    baud_rate: 9600
    data_bits: 7
    parity: even
    stop_bits: 2
    rtscts: true
    framing: lines
    lines:
      delimiter: "\\r\\n"
      max_length: 256
      format: csv
      separator: ";"
      columns: [id, t, h]
      typed: false
      device_field: id
    topic: "home/{port}/{device}"
    field_topic: "home/{port}/{device}/{field}"
    output: both
    qos: 1
    retain: true
    timestamp: epoch_ms
    throttle: 0.5
    deadband: 0.1
    fields:
      t: { name: temperature, scale: 0.1, precision: 1, unit: "°C", throttle: 10, deadband: 0.2, qos: 2, retain: false, ignore: false }
    devices:
      node-1: { output: json, qos: 0, fields: { h: { ignore: true } } }
    availability_topic: ""
    availability_timeout: 60
    state_topic: "home/{port}/state"
    command_topic: "home/{port}/{device}/set/#"
    response_topic: "home/{port}/{device}/response"
    command_timeout: 2
    command_attempts: 1
    command_line: "{command}={payload}"
    homeassistant: true
  - usb: { vendor_id: "0x0403", product_id: "6001", serial_number: "A1B2" }
    framing: outpost-link
    command_args: { interval: uint32, led: bool }
`
    const kitchen: SerialPortConfig = {
      name: 'kitchen',
      selector: { path: '/dev/ttyUSB0' },
      baudRate: 9600,
      dataBits: 7,
      parity: 'even',
      stopBits: 2,
      rtscts: true,
      framing: 'lines',
      lines: {
        delimiter: '\r\n',
        maxLength: 256,
        format: { format: 'csv', columns: ['id', 't', 'h'], separator: ';', typed: false },
        device: undefined,
        deviceField: 'id',
      },
      mapping: {
        topic: 'home/{port}/{device}',
        fieldTopic: 'home/{port}/{device}/{field}',
        output: 'both',
        qos: 1,
        retain: true,
        timestamp: 'epoch_ms',
        throttle: 0.5,
        deadband: 0.1,
        fields: { t: { name: 'temperature', scale: 0.1, precision: 1, unit: '°C', throttle: 10, deadband: 0.2, qos: 2, retain: false, ignore: false } },
      },
      devices: { 'node-1': { output: 'json', qos: 0, fields: { h: { ignore: true } } } },
      availabilityTopic: '',
      availabilityTimeout: 60,
      stateTopic: 'home/{port}/state',
      commandTopic: 'home/{port}/{device}/set/#',
      responseTopic: 'home/{port}/{device}/response',
      commandTimeout: 2,
      commandAttempts: 1,
      commandArgs: {},
      commandLine: '{command}={payload}',
      homeassistant: true,
    }
    const selector = { vendorId: '0403', productId: '6001', serialNumber: 'A1B2' }
    const link: SerialPortConfig = {
      ...defaultSerialPort('usb-0403-6001-A1B2', selector),
      framing: 'outpost-link',
      commandArgs: { interval: 'uint32', led: 'bool' },
    }
    assert.deepEqual(serial(text), [kitchen, link])
  })

  test('a bare path gets every default; a lines port is one device named after the port', () => {
    const base = defaultSerialPort('ttyUSB0', { path: '/dev/ttyUSB0' })
    assert.deepEqual(serial(entry()), [{ ...base, availabilityTimeout: 0, lines: { ...base.lines, device: 'ttyUSB0' } }])
  })

  test('availability_timeout: 15 s by default for outpost-link (3 missed PINGs), 0 for lines, the file wins either way', () => {
    assert.equal(serial(entry('framing: outpost-link'))[0]?.availabilityTimeout, 15)
    assert.equal(serial(entry())[0]?.availabilityTimeout, 0)
    assert.equal(serial(entry('availability_timeout: 15'))[0]?.availabilityTimeout, 15)
    assert.equal(serial(entry('framing: outpost-link', 'availability_timeout: 0'))[0]?.availabilityTimeout, 0)
  })

  test('default names: the last part of the path, the by-id glob cleaned up, or usb-<vendor>-<product>', () => {
    const names = serial(`
serial:
  - path: /dev/serial/by-id/usb-Arduino_Uno_123-if00
  - by_id: "usb-FTDI_*"
  - usb: { vendor_id: "10C4", product_id: "0xEA60" }
  - path: /dev/ttyACM0
    name: bench.2
`).map((p) => p.name)
    assert.deepEqual(names, ['usb-Arduino_Uno_123-if00', 'usb-FTDI', 'usb-10c4-ea60', 'bench.2'])
  })

  test('line formats are filled in with their defaults', () => {
    const format = (lines: string): unknown => serial(entry('lines:', ...lines.split('\n').map((l) => `  ${l}`)))[0]?.lines.format
    assert.deepEqual(format('format: json'), { format: 'json' })
    assert.deepEqual(format('format: key-value'), { format: 'key-value', separator: ' ', typed: true })
    assert.deepEqual(format('format: csv\ncolumns: [a]'), { format: 'csv', columns: ['a'], separator: ',', typed: true })
    assert.deepEqual(format('format: csv\ncolumns: [a]\nseparator: "\\t"'), { format: 'csv', columns: ['a'], separator: '\t', typed: true })
    assert.deepEqual(format('format: raw'), { format: 'raw', field: 'raw' })
    assert.deepEqual(format('format: raw\nfield: line'), { format: 'raw', field: 'line' })
    assert.equal(serial(entry('lines: { device: boiler }'))[0]?.lines.device, 'boiler')
  })

  test('an empty list is no serial ports; anchors and aliases work inside entries', () => {
    assert.deepEqual(serial('serial: []\n'), [])
    const [port] = serial(entry('devices: { a: &r { qos: 1 }, b: *r }'))
    assert.deepEqual(port?.devices, { a: { qos: 1 }, b: { qos: 1 } })
  })

  test('a field named __proto__ is an ordinary key', () => {
    const fields = serial(entry('fields: { __proto__: { scale: 2 } }'))[0]?.mapping.fields ?? {}
    assert.ok(Object.hasOwn(fields, '__proto__'))
    assert.equal(Object.getPrototypeOf(fields), Object.prototype)
  })

  test('every SerialPortConfig field has a YAML key, and no key is extra', () => {
    const port = defaultSerialPort('x', { path: 'x' })
    const fromType = [
      ...Object.keys(port).filter((k) => k !== 'selector' && k !== 'mapping').map(snake),
      ...Object.keys(port.mapping).map(snake),
      'path', 'by_id', 'usb',
    ]
    assert.deepEqual([...SERIAL_KEYS].sort(), fromType.sort())
    for (const key of SERIAL_DEVICE_KEYS) assert.ok(SERIAL_KEYS.includes(key), key)
    assert.deepEqual([...SERIAL_FIELD_KEYS].sort(), ['deadband', 'ignore', 'name', 'precision', 'qos', 'retain', 'scale', 'throttle', 'unit'])
  })
})

describe('serial: each bad value is one problem with field, line and column', () => {
  // [yaml, field, line, column, message]
  const cases: Array<[string, string, number, number, string]> = [
    ['serial: 5\n', 'serial', 1, 9, 'expected a list of serial ports (for example - path: /dev/ttyUSB0), got 5'],
    ['serial:\n  - 5\n', 'serial[0]', 2, 5, 'expected a mapping with a port (path, by_id or usb), got 5'],
    [entry('name: "my port"'), 'serial[0].name', 3, 11, 'expected a name of letters, digits, _, . and -, got "my port"'],
    [entry('baud_rate: 10'), 'serial[0].baud_rate', 3, 16, 'expected an integer 50..4000000, got 10'],
    [entry('baud_rate: "9600"'), 'serial[0].baud_rate', 3, 16, 'expected an integer 50..4000000, got "9600" (remove the quotes: a quoted number is a string)'],
    [entry('data_bits: 9'), 'serial[0].data_bits', 3, 16, 'expected 5, 6, 7 or 8, got 9'],
    [entry('parity: mark'), 'serial[0].parity', 3, 13, 'expected one of none, even, odd, got "mark"'],
    [entry('stop_bits: 1.5'), 'serial[0].stop_bits', 3, 16, 'expected 1 or 2, got 1.5'],
    [entry('rtscts: yes'), 'serial[0].rtscts', 3, 13, 'expected true or false, got "yes" (YAML 1.2 booleans are only true and false)'],
    [entry('framing: binary'), 'serial[0].framing', 3, 14, 'expected one of lines, outpost-link, got "binary"'],
    ['serial:\n  - by_id: /dev/serial/by-id/x\n', 'serial[0].by_id', 2, 12, 'expected a name or glob under /dev/serial/by-id, without /, got "/dev/serial/by-id/x" (use path for a full path)'],
    ['serial:\n  - usb: { vendor_id: 0403, product_id: "6001" }\n', 'serial[0].usb.vendor_id', 2, 23, 'expected a USB id of 4 hex digits in quotes, e.g. "0403", got 403 (quote it: YAML reads an unquoted id as a number)'],
    ['serial:\n  - usb: { vendor_id: "403", product_id: "6001" }\n', 'serial[0].usb.vendor_id', 2, 23, 'expected a USB id of 4 hex digits in quotes, e.g. "0403", got "403"'],
    ['serial:\n  - usb: { product_id: "6001" }\n', 'serial[0].usb.vendor_id', 2, 10, 'missing; expected a USB id of 4 hex digits in quotes, e.g. "0403"'],
    ['serial:\n  - name: a\n', 'serial[0]', 2, 5, 'no port given; expected one of path, by_id, usb'],
    [entry('usb: { vendor_id: "0403", product_id: "6001" }'), 'serial[0].usb', 3, 10, 'give only one of path, by_id, usb; this entry already has path'],
    ['serial:\n  - by_id: "*"\n', 'serial[0]', 2, 12, 'cannot make a port name from the by_id; set name'],
    [entry('lines:', '  delimiter: ""'), 'serial[0].lines.delimiter', 4, 18, 'expected a string of 1 to 8 bytes, got ""'],
    [entry('lines:', '  delimiter: "123456789"'), 'serial[0].lines.delimiter', 4, 18, 'expected a string of 1 to 8 bytes, got "123456789"'],
    [entry('lines:', "  delimiter: '\\n'"), 'serial[0].lines.delimiter', 4, 18, 'expected a string of 1 to 8 bytes, got "\\\\n" (YAML reads \\n as a newline only in double quotes: "\\n")'],
    [entry('lines:', '  max_length: 0'), 'serial[0].lines.max_length', 4, 19, 'expected an integer 1..65536, got 0'],
    [entry('lines:', '  format: xml'), 'serial[0].lines.format', 4, 15, 'expected one of json, key-value, csv, raw, got "xml"'],
    [entry('lines:', '  separator: ","'), 'serial[0].lines.separator', 4, 18, "only with format key-value or csv; this port's format is json"],
    [entry('lines:', '  format: key-value', '  separator: "\\t"'), 'serial[0].lines.separator', 5, 18, 'expected " ", ",", ";" for format key-value, got "\\t"'],
    [entry('lines:', '  format: csv'), 'serial[0].lines.columns', 4, 15, 'missing; format csv needs the column names, e.g. columns: [time, temperature]'],
    [entry('lines:', '  format: csv', '  columns: [t, t]'), 'serial[0].lines.columns[1]', 5, 20, '"t" is already serial[0].lines.columns[0]'],
    [entry('lines:', '  format: csv', '  columns: []'), 'serial[0].lines.columns', 5, 16, 'expected a non-empty list of names (for example [time, temperature]), got a list'],
    [entry('lines:', '  format: raw', '  typed: true'), 'serial[0].lines.typed', 5, 14, "only with format key-value or csv; this port's format is raw"],
    [entry('lines:', '  field: line'), 'serial[0].lines.field', 4, 14, "only with format raw; this port's format is json"],
    [entry('lines:', '  device: a', '  device_field: id'), 'serial[0].lines.device_field', 5, 21, 'give device or device_field, not both'],
    [entry('lines:', '  format: csv', '  columns: [t]', '  device_field: id'), 'serial[0].lines.device_field', 6, 21, '"id" is not one of columns (t)'],
    [entry('lines:', '  format: raw', '  device_field: id'), 'serial[0].lines.device_field', 5, 21, 'not with format raw: a raw line has a single field'],
    [entry('framing: outpost-link', 'lines:', '  format: csv'), 'serial[0].lines', 5, 7, "only with framing lines; this port's framing is outpost-link"],
    [entry('topic: ""'), 'serial[0].topic', 3, 12, 'expected a non-empty topic'],
    [entry('topic: sensors/+/x'), 'serial[0].topic', 3, 12, 'a topic to publish to cannot contain the wildcards + or #'],
    [entry('topic: $SYS/x'), 'serial[0].topic', 3, 12, 'topics starting with $ are reserved for the broker'],
    [entry('topic: "sensors/{field}"'), 'serial[0].topic', 3, 12, 'unknown placeholder {field}; this key takes {port}, {device}'],
    [entry('topic: "sensors/{device"'), 'serial[0].topic', 3, 12, 'unbalanced { or }'],
    [entry('topic: 5'), 'serial[0].topic', 3, 12, 'expected a topic (a string), got 5'],
    [entry('output: fields', 'field_topic: "s/{device}"'), 'serial[0].field_topic', 4, 18, 'must contain {field} when output is fields, or every field would go to one topic'],
    [entry('field_topic: "s/{device}"', 'devices: { d: { output: both } }'), 'serial[0].devices.d.output', 4, 29, 'output both needs a field_topic with {field}; this device\'s is "s/{device}"'],
    [entry('output: xml'), 'serial[0].output', 3, 13, 'expected one of json, fields, both, got "xml"'],
    [entry('qos: 3'), 'serial[0].qos', 3, 10, 'expected 0, 1 or 2, got 3'],
    [entry('timestamp: unix'), 'serial[0].timestamp', 3, 16, 'expected one of iso, epoch_ms, none, got "unix"'],
    [entry('throttle: -1'), 'serial[0].throttle', 3, 15, 'expected a number >= 0, got -1'],
    [entry('deadband: .nan'), 'serial[0].deadband', 3, 15, 'expected a number >= 0, got NaN'],
    [entry('fields: { t: { scale: 0 } }'), 'serial[0].fields.t.scale', 3, 27, 'expected a number other than 0, got 0'],
    [entry('fields: { t: { precision: 11 } }'), 'serial[0].fields.t.precision', 3, 31, 'expected an integer 0..10, got 11'],
    [entry('fields: { t: { name: "a+b" } }'), 'serial[0].fields.t.name', 3, 26, 'expected a non-empty name without /, + or #, got "a+b"'],
    [entry('fields: { a: { name: x }, b: { name: x } }'), 'serial[0].fields.b.name', 3, 42, 'same name as serial[0].fields.a ("x")'],
    [entry('fields: [t]'), 'serial[0].fields', 3, 13, 'expected a mapping (for example temperature: { scale: 0.1 }), got a list'],
    [entry('fields: { t: 5 }'), 'serial[0].fields.t', 3, 18, 'expected a mapping with keys name, scale, precision, unit, throttle, deadband, qos, retain, ignore, got 5'],
    [entry('devices: { d: { qos: 5 } }'), 'serial[0].devices.d.qos', 3, 26, 'expected 0, 1 or 2, got 5'],
    [entry('devices: { 1: { qos: 1 } }'), 'serial[0].devices.1', 3, 16, 'expected a name, got 1 (quote it: names are strings)'],
    [entry('availability_topic: "a/#"'), 'serial[0].availability_topic', 3, 25, 'a topic to publish to cannot contain the wildcards + or #'],
    [entry('availability_timeout: -1'), 'serial[0].availability_timeout', 3, 27, 'expected a number >= 0, got -1'],
    [entry('state_topic: "s/{device}"'), 'serial[0].state_topic', 3, 18, 'unknown placeholder {device}; this key takes {port}'],
    [entry('command_topic: "c/dev-{device}/#"'), 'serial[0].command_topic', 3, 20, 'every placeholder must fill a whole topic level (sensors/{device}/set/#, not sensors/dev-{device}/set/#)'],
    [entry('command_topic: "c/#/x"'), 'serial[0].command_topic', 3, 20, '# must be the last level and alone in it, as in sensors/{device}/set/#'],
    [entry('command_topic: "c/a+/x"'), 'serial[0].command_topic', 3, 20, '+ must fill a whole level, as in sensors/+/set'],
    [entry('command_topic: "$share/g/c/#"'), 'serial[0].command_topic', 3, 20, 'topics starting with $ are reserved for the broker'],
    [entry('lines: { device_field: id }', 'command_topic: "c/set/#"'), 'serial[0].command_topic', 4, 20, 'must contain {device}: with lines.device_field this port carries several devices'],
    [entry('response_topic: "r/+"'), 'serial[0].response_topic', 3, 21, 'a topic to publish to cannot contain the wildcards + or #'],
    [entry('command_timeout: 0'), 'serial[0].command_timeout', 3, 22, 'expected a number > 0, got 0'],
    [entry('command_attempts: 11'), 'serial[0].command_attempts', 3, 23, 'expected an integer 1..10, got 11'],
    [entry('framing: outpost-link', 'command_args: { led: boolean }'), 'serial[0].command_args.led', 4, 26, 'expected one of raw, string, int32, uint32, float32, bool, got "boolean"'],
    [entry('command_args: { led: bool }'), 'serial[0].command_args', 3, 19, 'only with framing outpost-link; a lines port writes command_line'],
    [entry('command_line: "{cmd}"'), 'serial[0].command_line', 3, 19, 'unknown placeholder {cmd}; this key takes {device}, {command}, {payload}'],
    [entry('framing: outpost-link', 'command_line: "{command}"'), 'serial[0].command_line', 4, 19, 'only with framing lines; outpost-link sends commands as CMD frames'],
  ]
  for (const [text, field, line, column, message] of cases) {
    test(`${field}: ${JSON.stringify(text.split('\n').slice(2).join(' ').trim() || text)}`, () => {
      assert.deepEqual(onlyProblem(text), { file: FILE, line, column, field, message })
    })
  }
})

describe('serial: unknown keys, duplicates and loops', () => {
  test('an unknown key anywhere is named by its full path, with a suggestion', () => {
    assert.deepEqual(onlyProblem(entry('baudrate: 9600')), {
      file: FILE, line: 3, column: 5, field: 'serial[0].baudrate', message: 'unknown key; did you mean serial[0].baud_rate?',
    })
    assert.equal(onlyProblem(entry('lines:', '  max_lenght: 5')).message, 'unknown key; did you mean serial[0].lines.max_length?')
    assert.equal(onlyProblem(entry('ubs: 5')).message, 'unknown key; did you mean serial[0].usb?')
    assert.deepEqual(onlyProblem(entry('devices:', '  emulated-1:', '    fields:', '      temperature: { scal: 0.1 }')), {
      file: FILE,
      line: 6,
      column: 26,
      field: 'serial[0].devices.emulated-1.fields.temperature.scal',
      message: 'unknown key; did you mean serial[0].devices.emulated-1.fields.temperature.scale?',
    })
  })

  test('two entries on one port, or with one name, are refused naming the earlier entry', () => {
    assert.deepEqual(onlyProblem('serial:\n  - path: /dev/ttyUSB0\n  - path: /dev/ttyUSB0\n    name: other\n'), {
      file: FILE, line: 3, column: 11, field: 'serial[1].path', message: 'same port as serial[0]',
    })
    assert.deepEqual(onlyProblem('serial:\n  - path: /dev/ttyUSB0\n  - path: /dev/serial/ttyUSB0\n'), {
      file: FILE, line: 3, column: 5, field: 'serial[1].name', message: 'same name as serial[0] ("ttyUSB0") (derived from the port; set name)',
    })
    assert.deepEqual(onlyProblem('serial:\n  - path: /dev/ttyUSB0\n    name: a\n  - usb: { vendor_id: "0403", product_id: "6001" }\n    name: a\n'), {
      file: FILE, line: 5, column: 11, field: 'serial[1].name', message: 'same name as serial[0] ("a")',
    })
  })

  test('a command filter that catches what the bridge publishes is refused (its messages would loop back as commands)', () => {
    const p = onlyProblem(entry('command_topic: "sensors/#"'))
    assert.equal(p.field, 'serial[0].command_topic')
    assert.match(p.message, /^catches serial\[0\]\.topic \("sensors\/\{device\}"\), so Outpost would take its own messages as commands/)
    // Across ports too, with {port} filled in.
    const across = onlyProblem('serial:\n  - path: /dev/a\n    state_topic: "x/{port}"\n  - path: /dev/b\n    command_topic: "x/a/#"\n')
    assert.deepEqual([across.field, across.line], ['serial[1].command_topic', 5])
    // The defaults do not collide, and neither do a port's own topics with another port's name.
    assert.equal(serial('serial:\n  - path: /dev/a\n  - path: /dev/b\n    command_topic: "x/{port}/#"\n    state_topic: "x/b2/state"\n').length, 2)
  })

  test('every problem of an entry is listed at once, and an invalid entry leaves no serial ports', () => {
    const found = problems(entry('baud_rate: 1', 'lines: { format: csv }', 'qos: 9', 'framing: outpost-link'))
    assert.deepEqual(found.map((p) => p.field), ['serial[0].baud_rate', 'serial[0].lines', 'serial[0].qos'])
    assert.ok(problems('serial:\n  - name: x\n  - path: /dev/a\n    parity: odd\n').length === 1)
    // A bad framing is one problem: which other keys fit depends on the framing meant.
    assert.equal(onlyProblem(entry('framing: binary', 'command_args: { led: bool }')).field, 'serial[0].framing')
  })
})
