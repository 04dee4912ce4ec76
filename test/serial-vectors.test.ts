/**
 * The golden vectors firmware-bridge/vectors/frames.json, shared with the C library: every good
 * frame decodes to the frame it describes and encodes back to the same wire bytes, every bad one
 * is refused with the error kind the C side reports, and every stream gives the same events.
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { cobsDecode } from '../src/serial/codecs/cobs.js'
import { OutpostLinkDecoder, type LinkEvent } from '../src/serial/codecs/outpost-link-decoder.js'
import { decodeFrame, encodeFrame, MAX_FRAME, type DataValue, type FieldSpec, type Frame, type LinkErrorKind, type ValueType } from '../src/serial/codecs/outpost-link.js'

// dist/test/ -> project root, so the compiled test reads the committed file, not a copy.
const VECTORS = join(import.meta.dirname, '..', '..', 'firmware-bridge', 'vectors', 'frames.json')

/** The vectors spell receive errors as the C library's ol_status_name does. */
const ERROR_NAMES: Record<string, LinkErrorKind> = {
  cobs: 'bad-cobs',
  too_long: 'overrun',
  crc: 'crc',
  version: 'unknown-version',
  type: 'unknown-type',
  malformed: 'malformed',
}

// The file comes from another toolchain: read it as unknown and narrow, field by field.
function obj(v: unknown, what: string): Record<string, unknown> {
  assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v), `${what}: not an object`)
  return Object.fromEntries(Object.entries(v))
}
function arr(v: unknown, what: string): unknown[] {
  assert.ok(Array.isArray(v), `${what}: not an array`)
  return v
}
function str(v: unknown, what: string): string {
  assert.equal(typeof v, 'string', `${what}: not a string`)
  return String(v)
}
function int(v: unknown, what: string): number {
  assert.ok(typeof v === 'number' && Number.isInteger(v), `${what}: not an integer`)
  return v
}
function hex(v: unknown, what: string): Buffer {
  const s = str(v, what)
  assert.match(s, /^([0-9a-f]{2})*$/, `${what}: not hex`)
  return Buffer.from(s, 'hex')
}
function valueType(v: unknown, what: string): ValueType {
  const t = str(v, what)
  assert.ok(t === 'int32' || t === 'float32' || t === 'bool' || t === 'string' || t === 'uint32', `${what}: value type ${t}`)
  return t
}

/** The Frame a vector describes, in this codec's shape. */
function frameOf(v: Record<string, unknown>, what: string): Frame {
  assert.equal(v['version'], 1, `${what}: version`)
  const seq = int(v['seq'], `${what}.seq`)
  const body = obj(v['body'], `${what}.body`)
  const type = str(v['type'], `${what}.type`)
  switch (type) {
    case 'hello':
      return {
        type,
        seq,
        deviceId: str(body['deviceId'], 'deviceId'),
        firmwareVersion: str(body['firmware'], 'firmware'),
        fields: arr(body['fields'], 'fields').map((f, i): FieldSpec => {
          const o = obj(f, `field ${i}`)
          return { fieldId: int(o['id'], 'id'), type: valueType(o['type'], 'type'), name: str(o['name'], 'name'), unit: str(o['unit'], 'unit') }
        }),
      }
    case 'data':
      return { type, seq, values: arr(body['values'], 'values').map((x, i) => dataValue(obj(x, `value ${i}`), `${what} value ${i}`)) }
    case 'cmd':
      return { type, seq, name: str(body['name'], 'name'), args: hex(body['argsHex'], 'argsHex') }
    case 'ack':
      return { type, seq, cmdSeq: int(body['cmdSeq'], 'cmdSeq') }
    case 'nak':
      return { type, seq, cmdSeq: int(body['cmdSeq'], 'cmdSeq'), code: int(body['code'], 'code'), message: str(body['message'], 'message') }
    case 'ping':
      assert.deepEqual(body, {}, `${what}: ping body`)
      return { type, seq }
    default:
      assert.fail(`${what}: frame type ${type}`)
  }
}

function dataValue(o: Record<string, unknown>, what: string): DataValue {
  const fieldId = int(o['id'], `${what} id`)
  const type = valueType(o['type'], `${what} type`)
  const v = o['value']
  switch (type) {
    case 'int32':
    case 'uint32':
      return { fieldId, type, value: int(v, what) }
    case 'bool':
      assert.equal(typeof v, 'boolean', what)
      return { fieldId, type, value: v === true }
    case 'string':
      return { fieldId, type, value: str(v, what) }
    case 'float32': {
      // "bits" is the authority: it also pins NaN, infinities and the sign of zero.
      const bits = hex(o['bits'], `${what} bits`)
      assert.equal(bits.length, 4, `${what} bits`)
      const value = bits.readFloatBE(0)
      if (typeof v === 'number') assert.ok(Object.is(v, value), `${what}: value ${v} is not bits ${bits.toString('hex')}`)
      else assert.ok(v === 'NaN' ? Number.isNaN(value) : v === String(value), `${what}: value ${String(v)} is not bits ${bits.toString('hex')}`)
      return { fieldId, type, value }
    }
  }
}

interface Vectors {
  good: { name: string; frame: Frame; decoded: Buffer; wire: Buffer }[]
  bad: { name: string; wire: Buffer; error: LinkErrorKind }[]
  streams: { name: string; wire: Buffer; events: ({ frame: Frame } | { error: LinkErrorKind })[] }[]
}

function load(): Vectors {
  const doc = obj(JSON.parse(readFileSync(VECTORS, 'utf8')), 'frames.json')
  assert.equal(doc['protocol'], 'outpost-link')
  assert.equal(doc['version'], 1)
  const limits = obj(doc['limits'], 'limits')
  assert.equal(limits['frameMax'], MAX_FRAME, 'limits.frameMax')
  assert.equal(limits['wireMax'], MAX_FRAME + 2, 'limits.wireMax')
  const good = arr(doc['good'], 'good').map((g, i) => {
    const o = obj(g, `good ${i}`)
    const name = str(o['name'], `good ${i} name`)
    return { name, frame: frameOf(obj(o['frame'], name), name), decoded: hex(o['decodedHex'], name), wire: hex(o['wireHex'], name) }
  })
  const errorKind = (e: unknown, what: string): LinkErrorKind => {
    const kind = ERROR_NAMES[str(e, what)]
    assert.ok(kind !== undefined, `${what}: unknown error name ${String(e)}`)
    return kind
  }
  const bad = arr(doc['bad'], 'bad').map((b, i) => {
    const o = obj(b, `bad ${i}`)
    const name = str(o['name'], `bad ${i} name`)
    return { name, wire: hex(o['wireHex'], name), error: errorKind(o['error'], name) }
  })
  const byName = new Map(good.map((g) => [g.name, g.frame]))
  const streams = arr(doc['streams'], 'streams').map((s, i) => {
    const o = obj(s, `stream ${i}`)
    const name = str(o['name'], `stream ${i} name`)
    const events = arr(o['events'], name).map((e, j) => {
      const ev = obj(e, `${name} event ${j}`)
      if ('frame' in ev) {
        const frame = byName.get(str(ev['frame'], `${name} event ${j}`))
        assert.ok(frame !== undefined, `${name} event ${j}: no good vector ${String(ev['frame'])}`)
        return { frame }
      }
      return { error: errorKind(ev['error'], `${name} event ${j}`) }
    })
    return { name, wire: hex(o['wireHex'], name), events }
  })
  return { good, bad, streams }
}

function simple(events: LinkEvent[]): ({ frame: Frame } | { error: LinkErrorKind })[] {
  return events.map((e) => (e.kind === 'frame' ? { frame: e.frame } : { error: e.error.kind }))
}

const present = existsSync(VECTORS)
const skip = present ? false : `${VECTORS} does not exist yet`
const vectors = present ? load() : { good: [], bad: [], streams: [] }

test('vectors: the file has good, bad and stream vectors', { skip }, () => {
  assert.ok(vectors.good.length > 0 && vectors.bad.length > 0 && vectors.streams.length > 0)
})

test('vectors: every good frame decodes from its wire bytes to the frame it describes', { skip }, () => {
  for (const v of vectors.good) {
    const cobs = cobsDecode(v.wire.subarray(0, -1))
    assert.ok(cobs.ok, v.name)
    assert.deepEqual(cobs.data, v.decoded, `${v.name}: COBS`)
    assert.deepEqual(simple(new OutpostLinkDecoder().push(v.wire)), [{ frame: v.frame }], v.name)
    const d = new OutpostLinkDecoder()
    assert.deepEqual(simple([...v.wire].flatMap((b) => d.push(Buffer.of(b)))), [{ frame: v.frame }], `${v.name}, byte by byte`)
    assert.deepEqual(decodeFrame(v.decoded), { ok: true, frame: v.frame }, v.name)
  }
})

test('vectors: every good frame encodes to exactly its wire bytes', { skip }, () => {
  for (const v of vectors.good) assert.equal(encodeFrame(v.frame).toString('hex'), v.wire.toString('hex'), v.name)
})

test('vectors: every bad input is refused once, with the same error kind as the C side', { skip }, () => {
  const mismatches: string[] = []
  for (const v of vectors.bad) {
    const want = JSON.stringify([{ error: v.error }])
    const whole = simple(new OutpostLinkDecoder().push(v.wire))
    if (JSON.stringify(whole) !== want) mismatches.push(`${v.name}: want ${v.error}, got ${JSON.stringify(whole)}`)
    const d = new OutpostLinkDecoder()
    const bytewise = simple([...v.wire].flatMap((b) => d.push(Buffer.of(b))))
    if (JSON.stringify(bytewise) !== want) mismatches.push(`${v.name} byte by byte: want ${v.error}, got ${JSON.stringify(bytewise)}`)
  }
  assert.deepEqual(mismatches, [])
})

test('vectors: every stream gives the listed events, whole and split at every position', { skip }, () => {
  for (const v of vectors.streams) {
    assert.deepEqual(simple(new OutpostLinkDecoder().push(v.wire)), v.events, v.name)
    for (let cut = 0; cut <= v.wire.length; cut++) {
      const d = new OutpostLinkDecoder()
      const events = [...d.push(v.wire.subarray(0, cut)), ...d.push(v.wire.subarray(cut))]
      assert.deepEqual(simple(events), v.events, `${v.name} cut at ${cut}`)
    }
  }
})
