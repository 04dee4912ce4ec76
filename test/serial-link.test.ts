import assert from 'node:assert/strict'
import { test } from 'node:test'
import { cobsDecode, cobsEncode } from '../src/serial/codecs/cobs.js'
import { crc16 } from '../src/serial/codecs/crc16.js'
import { decodeFrame, encodeFrame, encodeFrameBody, MAX_BODY, MAX_FRAME, type Frame, type LinkErrorKind } from '../src/serial/codecs/outpost-link.js'

/** header + body + CRC, as a sender would build it by hand. */
function raw(version: number, type: number, seq: number, body: number[] | Buffer): Buffer {
  const head = Buffer.concat([Buffer.of(version, type, seq), Buffer.from(body)])
  const crc = Buffer.alloc(2)
  crc.writeUInt16BE(crc16(head))
  return Buffer.concat([head, crc])
}

const str = (s: string): number[] => [Buffer.byteLength(s), ...Buffer.from(s)]

const EVERY_TYPE: Frame[] = [
  {
    type: 'hello',
    seq: 0,
    deviceId: 'greenhouse-7',
    firmwareVersion: '1.4.2',
    fields: [
      { fieldId: 1, type: 'float32', name: 'temperature', unit: '°C' },
      { fieldId: 2, type: 'int32', name: 'rssi', unit: 'dBm' },
      { fieldId: 3, type: 'bool', name: 'door', unit: '' },
      { fieldId: 4, type: 'string', name: 'state', unit: '' },
      { fieldId: 5, type: 'uint32', name: 'uptime', unit: 's' },
    ],
  },
  { type: 'hello', seq: 1, deviceId: 'x', firmwareVersion: '', fields: [] },
  {
    type: 'data',
    seq: 2,
    values: [
      { fieldId: 1, type: 'float32', value: Math.fround(21.37) },
      { fieldId: 2, type: 'int32', value: -2_147_483_648 },
      { fieldId: 3, type: 'bool', value: true },
      { fieldId: 4, type: 'string', value: 'ok ✓' },
      { fieldId: 5, type: 'uint32', value: 4_294_967_295 },
      { fieldId: 6, type: 'bool', value: false },
      { fieldId: 7, type: 'int32', value: 2_147_483_647 },
      { fieldId: 8, type: 'float32', value: -0 },
      { fieldId: 9, type: 'float32', value: Infinity },
    ],
  },
  { type: 'data', seq: 3, values: [] },
  { type: 'cmd', seq: 4, name: 'relay', args: Buffer.of(0x01, 0x00, 0xff) },
  { type: 'cmd', seq: 5, name: 'reboot', args: Buffer.alloc(0) },
  { type: 'ack', seq: 6, cmdSeq: 4 },
  { type: 'nak', seq: 7, cmdSeq: 5, code: 3, message: 'busy: try later' },
  { type: 'nak', seq: 8, cmdSeq: 255, code: 0, message: '' },
  { type: 'ping', seq: 255 },
]

function decodeWire(wire: Buffer): Frame {
  assert.equal(wire[wire.length - 1], 0, 'wire bytes end with the delimiter')
  assert.equal(wire.indexOf(0), wire.length - 1, 'no 0x00 before the delimiter')
  const cobs = cobsDecode(wire.subarray(0, -1))
  assert.ok(cobs.ok)
  const r = decodeFrame(cobs.data)
  assert.ok(r.ok, r.ok ? '' : r.error.detail)
  return r.frame
}

test('link: every frame type round trips through the wire bytes', () => {
  for (const frame of EVERY_TYPE) assert.deepEqual(decodeWire(encodeFrame(frame)), frame, frame.type)
})

test('link: firmware version, unit, string values, arguments and NAK message may be empty', () => {
  const frames: Frame[] = [
    { type: 'hello', seq: 0, deviceId: 'd', firmwareVersion: '', fields: [{ fieldId: 0, type: 'string', name: 'n', unit: '' }, { fieldId: 255, type: 'bool', name: 'm', unit: '' }] },
    { type: 'data', seq: 0, values: [{ fieldId: 0, type: 'string', value: '' }, { fieldId: 0, type: 'string', value: 'same id twice is the mapping layer\'s call' }] },
    { type: 'cmd', seq: 0, name: '$hello', args: Buffer.alloc(0) },
    { type: 'nak', seq: 0, cmdSeq: 0, code: 0x81, message: '' },
  ]
  for (const frame of frames) assert.deepEqual(decodeWire(encodeFrame(frame)), frame)
})

test('link: NaN float32 decodes as NaN', () => {
  const f = decodeWire(encodeFrame({ type: 'data', seq: 0, values: [{ fieldId: 1, type: 'float32', value: NaN }] }))
  assert.ok(f.type === 'data' && Number.isNaN(f.values[0]?.value))
})

test('link: byte layout pinned by hand-built frames (header, big-endian values, CRC, COBS, delimiter)', () => {
  const vectors: [Frame, string][] = [
    [{ type: 'ping', seq: 7 }, '06 01 06 07 21 ed 00'],
    // The two worked examples in firmware-bridge/PROTOCOL.md.
    [{ type: 'ping', seq: 3 }, '06 01 06 03 61 69 00'],
    [
      { type: 'data', seq: 1, values: [{ fieldId: 1, type: 'float32', value: 21.5 }, { fieldId: 2, type: 'float32', value: 48.25 }, { fieldId: 3, type: 'uint32', value: 42 }] },
      '08 01 02 01 01 02 41 ac 01 05 02 02 42 41 01 03 03 05 01 01 04 2a 01 f2 00',
    ],
    [{ type: 'ack', seq: 0, cmdSeq: 42 }, '03 01 04 04 2a ab 9c 00'],
    [{ type: 'data', seq: 16, values: [{ fieldId: 3, type: 'bool', value: true }, { fieldId: 5, type: 'uint32', value: 0 }] }, '09 01 02 10 03 03 01 05 05 01 01 01 03 8e af 00'],
  ]
  for (const [frame, hex] of vectors) assert.equal(encodeFrame(frame).toString('hex').match(/../g)?.join(' '), hex, frame.type)
  assert.deepEqual(encodeFrameBody({ type: 'data', seq: 1, values: [{ fieldId: 9, type: 'int32', value: -2 }, { fieldId: 10, type: 'float32', value: 1.5 }] }),
    raw(1, 2, 1, [9, 1, 0xff, 0xff, 0xff, 0xfe, 10, 2, 0x3f, 0xc0, 0, 0]))
  assert.deepEqual(encodeFrameBody({ type: 'hello', seq: 9, deviceId: 'd', firmwareVersion: 'v1', fields: [{ fieldId: 1, type: 'string', name: 'st', unit: '' }] }),
    raw(1, 1, 9, [...str('d'), ...str('v1'), 1, 1, 4, ...str('st'), 0]))
  assert.deepEqual(encodeFrameBody({ type: 'nak', seq: 2, cmdSeq: 1, code: 7, message: 'no' }), raw(1, 5, 2, [1, 7, ...Buffer.from('no')]))
  assert.deepEqual(encodeFrameBody({ type: 'cmd', seq: 3, name: 'go', args: Buffer.of(0, 1) }), raw(1, 3, 3, [...str('go'), 0, 1]))
})

test('link: the largest frame is 254 decoded bytes and 255 on the wire before the delimiter', () => {
  const frame: Frame = { type: 'cmd', seq: 1, name: 'x', args: Buffer.alloc(MAX_BODY - 2, 0x55) }
  assert.equal(encodeFrameBody(frame).length, MAX_FRAME)
  const wire = encodeFrame(frame)
  assert.equal(wire.length, 256)
  assert.deepEqual(decodeWire(wire), frame)
  assert.throws(() => encodeFrame({ ...frame, args: Buffer.alloc(MAX_BODY - 1, 0x55) }), RangeError)
})

test('link: encode refuses values the wire cannot carry', () => {
  const bad: [string, Frame][] = [
    ['seq 256', { type: 'ping', seq: 256 }],
    ['seq -1', { type: 'ping', seq: -1 }],
    ['seq 1.5', { type: 'ping', seq: 1.5 }],
    ['cmdSeq 300', { type: 'ack', seq: 0, cmdSeq: 300 }],
    ['int32 too big', { type: 'data', seq: 0, values: [{ fieldId: 1, type: 'int32', value: 2 ** 31 }] }],
    ['int32 fraction', { type: 'data', seq: 0, values: [{ fieldId: 1, type: 'int32', value: 0.5 }] }],
    ['uint32 negative', { type: 'data', seq: 0, values: [{ fieldId: 1, type: 'uint32', value: -1 }] }],
    ['field id 256', { type: 'data', seq: 0, values: [{ fieldId: 256, type: 'bool', value: true }] }],
    ['string of 256 bytes', { type: 'cmd', seq: 0, name: 'x'.repeat(256), args: Buffer.alloc(0) }],
    ['frame too big', { type: 'nak', seq: 0, cmdSeq: 0, code: 0, message: 'm'.repeat(248) }],
    ['empty device id', { type: 'hello', seq: 0, deviceId: '', firmwareVersion: '', fields: [] }],
    ['empty field name', { type: 'hello', seq: 0, deviceId: 'd', firmwareVersion: '', fields: [{ fieldId: 1, type: 'bool', name: '', unit: '' }] }],
    ['duplicate field id', { type: 'hello', seq: 0, deviceId: 'd', firmwareVersion: '', fields: [{ fieldId: 1, type: 'bool', name: 'a', unit: '' }, { fieldId: 1, type: 'int32', name: 'b', unit: '' }] }],
    ['empty command name', { type: 'cmd', seq: 0, name: '', args: Buffer.alloc(0) }],
    ['U+0000 in a string value', { type: 'data', seq: 0, values: [{ fieldId: 1, type: 'string', value: 'a\0b' }] }],
    ['U+0000 in a NAK message', { type: 'nak', seq: 0, cmdSeq: 0, code: 1, message: '\0' }],
    ['lone surrogate in a unit', { type: 'hello', seq: 0, deviceId: 'd', firmwareVersion: '', fields: [{ fieldId: 1, type: 'bool', name: 'a', unit: '\ud800' }] }],
    ['256 fields', { type: 'hello', seq: 0, deviceId: '', firmwareVersion: '', fields: new Array(256).fill({ fieldId: 1, type: 'bool', name: '', unit: '' }) }],
  ]
  for (const [name, frame] of bad) assert.throws(() => encodeFrame(frame), RangeError, name)
})

test('link: decode refuses each kind of bad frame with its kind', () => {
  const ok = raw(1, 6, 0, [])
  const flipped = Buffer.from(ok)
  flipped[2] = 1
  const cases: [string, Buffer, LinkErrorKind][] = [
    ['empty', Buffer.alloc(0), 'malformed'],
    ['4 bytes: too short for header and CRC', Buffer.of(1, 6, 0, 0), 'malformed'],
    ['a changed byte', flipped, 'crc'],
    ['CRC byte order swapped', Buffer.concat([ok.subarray(0, 3), Buffer.of(ok[4] as number, ok[3] as number)]), 'crc'],
    ['over 254 bytes', Buffer.alloc(255, 1), 'overrun'],
    ['version 0', raw(0, 6, 0, []), 'unknown-version'],
    ['version 2', raw(2, 6, 0, []), 'unknown-version'],
    ['type 0', raw(1, 0, 0, []), 'unknown-type'],
    ['type 7', raw(1, 7, 0, []), 'unknown-type'],
    ['type 0xff', raw(1, 0xff, 0, []), 'unknown-type'],
    ['ping with a body', raw(1, 6, 0, [0]), 'malformed'],
    ['ack without seq', raw(1, 4, 0, []), 'malformed'],
    ['ack with 2 bytes', raw(1, 4, 0, [1, 2]), 'malformed'],
    ['nak without code', raw(1, 5, 0, [1]), 'malformed'],
    ['nak message not UTF-8', raw(1, 5, 0, [1, 2, 0xc3]), 'malformed'],
    ['cmd without name length', raw(1, 3, 0, []), 'malformed'],
    ['cmd name cut short', raw(1, 3, 0, [5, 0x61]), 'malformed'],
    ['cmd name not UTF-8', raw(1, 3, 0, [2, 0xff, 0xfe]), 'malformed'],
    ['cmd name empty', raw(1, 3, 0, [0, 1, 2]), 'malformed'],
    ['cmd name with U+0000', raw(1, 3, 0, [2, 0x61, 0x00]), 'malformed'],
    ['nak message with U+0000', raw(1, 5, 0, [1, 2, 0x61, 0x00]), 'malformed'],
    ['hello device id empty', raw(1, 1, 0, [...str(''), ...str('1'), 0]), 'malformed'],
    ['hello firmware with U+0000', raw(1, 1, 0, [...str('d'), 1, 0x00, 0]), 'malformed'],
    ['hello field name empty', raw(1, 1, 0, [...str('d'), ...str('1'), 1, 1, 1, ...str(''), 0]), 'malformed'],
    ['hello unit with U+0000', raw(1, 1, 0, [...str('d'), ...str('1'), 1, 1, 1, ...str('a'), 1, 0x00]), 'malformed'],
    ['hello field id declared twice', raw(1, 1, 0, [...str('d'), ...str(''), 2, 1, 1, ...str('a'), 0, 1, 2, ...str('b'), 0]), 'malformed'],
    ['hello without anything', raw(1, 1, 0, []), 'malformed'],
    ['hello without field count', raw(1, 1, 0, [...str('d'), ...str('1')]), 'malformed'],
    ['hello with fewer fields than counted', raw(1, 1, 0, [...str('d'), ...str('1'), 2, 1, 1, ...str('a'), 0]), 'malformed'],
    ['hello with bytes after the fields', raw(1, 1, 0, [...str('d'), ...str('1'), 0, 9]), 'malformed'],
    ['hello field of unknown value type', raw(1, 1, 0, [...str('d'), ...str('1'), 1, 1, 6, ...str('a'), 0]), 'malformed'],
    ['hello field without unit length', raw(1, 1, 0, [...str('d'), ...str('1'), 1, 1, 1, ...str('a')]), 'malformed'],
    ['hello device id with an overlong encoding', raw(1, 1, 0, [2, 0xc0, 0x80, ...str('1'), 0]), 'malformed'],
    ['data value type 0', raw(1, 2, 0, [1, 0]), 'malformed'],
    ['data value type 6', raw(1, 2, 0, [1, 6, 0]), 'malformed'],
    ['data int32 cut short', raw(1, 2, 0, [1, 1, 0, 0, 0]), 'malformed'],
    ['data float32 cut short', raw(1, 2, 0, [1, 2, 0]), 'malformed'],
    ['data uint32 cut short', raw(1, 2, 0, [1, 5]), 'malformed'],
    ['data bool 2', raw(1, 2, 0, [1, 3, 2]), 'malformed'],
    ['data bool missing', raw(1, 2, 0, [1, 3]), 'malformed'],
    ['data string cut short', raw(1, 2, 0, [1, 4, 3, 0x61]), 'malformed'],
    ['data lone field id', raw(1, 2, 0, [1, 1, 0, 0, 0, 1, 2]), 'malformed'],
    ['data string lone surrogate', raw(1, 2, 0, [1, 4, 3, 0xed, 0xa0, 0x80]), 'malformed'],
  ]
  for (const [name, bytes, kind] of cases) {
    const r = decodeFrame(bytes)
    assert.ok(!r.ok, name)
    assert.equal(r.error.kind, kind, `${name}: ${r.error.detail}`)
    assert.ok(r.error.detail.length > 0)
  }
})

test('link: random bodies under a valid header and CRC either decode and re-encode identically or are "malformed"', () => {
  let seed = 7
  const rand = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / 2 ** 24
  const seen = { ok: 0, malformed: 0 }
  for (let n = 0; n < 20_000; n++) {
    const type = 1 + Math.floor(rand() * 6)
    const body = Array.from({ length: Math.floor(rand() * 24) }, () => (rand() < 0.5 ? Math.floor(rand() * 8) : Math.floor(rand() * 256)))
    const bytes = raw(1, type, Math.floor(rand() * 256), body)
    const r = decodeFrame(bytes)
    if (r.ok) {
      seen.ok++
      // A float32 NaN may come back with other payload bits, so compare decoded frames instead.
      assert.deepEqual(decodeFrame(encodeFrameBody(r.frame)), r)
    } else {
      seen.malformed++
      assert.equal(r.error.kind, 'malformed')
    }
  }
  assert.ok(seen.ok > 1000 && seen.malformed > 1000, JSON.stringify(seen))
})

test('link: decoded strings and arguments do not share memory with the receive buffer', () => {
  const bytes = raw(1, 3, 0, [...str('go'), 1, 2, 3])
  const r = decodeFrame(bytes)
  assert.ok(r.ok && r.frame.type === 'cmd')
  bytes.fill(0)
  assert.deepEqual(r.frame.args, Buffer.of(1, 2, 3))
})

test('link: COBS of the frame is what goes on the wire', () => {
  for (const frame of EVERY_TYPE) assert.deepEqual(encodeFrame(frame), Buffer.concat([cobsEncode(encodeFrameBody(frame)), Buffer.of(0)]))
})
