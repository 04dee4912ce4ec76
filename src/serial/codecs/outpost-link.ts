/**
 * outpost-link v1 frames (firmware-bridge/PROTOCOL.md): pure encode and decode.
 *
 * Decoded frame: [version u8 = 1][type u8][seq u8][body ...][crc16 u16 BE], at most 254 bytes,
 * CRC-16/CCITT-FALSE over version..end of body. On the wire each frame is COBS-encoded and
 * followed by 0x00 (see `OutpostLinkDecoder` for the receiving side).
 *
 * The codec enforces every rule PROTOCOL.md puts on a single frame, including its additions to
 * the grammar: device id, field names and command names are non-empty, no string holds U+0000,
 * HELLO field ids are unique. What needs state (is a DATA field id declared by the last HELLO,
 * may this side receive a CMD) belongs to the layer that maps frames to MQTT.
 */
import { cobsEncode } from './cobs.js'
import { crc16 } from './crc16.js'
import { BodyError, ByteReader } from './byte-reader.js'
import { ByteWriter, checkInt } from './byte-writer.js'

export const LINK_VERSION = 1
/** Largest decoded frame (header + body + CRC): COBS then needs at most one code byte. */
export const MAX_FRAME = 254
/** version, type, seq before the body; CRC after it. */
export const HEADER_SIZE = 3
export const CRC_SIZE = 2
export const MAX_BODY = MAX_FRAME - HEADER_SIZE - CRC_SIZE

export const FRAME_TYPES = { hello: 0x01, data: 0x02, cmd: 0x03, ack: 0x04, nak: 0x05, ping: 0x06 } as const
export type FrameType = keyof typeof FRAME_TYPES

export const VALUE_TYPES = { int32: 0x01, float32: 0x02, bool: 0x03, string: 0x04, uint32: 0x05 } as const
export type ValueType = keyof typeof VALUE_TYPES

export type Value =
  | { type: 'int32'; value: number }
  | { type: 'float32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'uint32'; value: number }

/** One field a device announces in HELLO; `unit` may be empty. */
export interface FieldSpec {
  fieldId: number
  type: ValueType
  name: string
  unit: string
}

/** One reading in DATA. */
export type DataValue = { fieldId: number } & Value

export interface HelloFrame {
  type: 'hello'
  seq: number
  deviceId: string
  firmwareVersion: string
  fields: FieldSpec[]
}
export interface DataFrame {
  type: 'data'
  seq: number
  values: DataValue[]
}
export interface CmdFrame {
  type: 'cmd'
  seq: number
  name: string
  args: Buffer
}
export interface AckFrame {
  type: 'ack'
  seq: number
  /** seq of the CMD being acknowledged. */
  cmdSeq: number
}
export interface NakFrame {
  type: 'nak'
  seq: number
  /** seq of the CMD being refused. */
  cmdSeq: number
  code: number
  /** Empty when the device sent no message. */
  message: string
}
export interface PingFrame {
  type: 'ping'
  seq: number
}
export type Frame = HelloFrame | DataFrame | CmdFrame | AckFrame | NakFrame | PingFrame

/** Every way a received frame can be refused; each has its own counter in the decoder. */
export type LinkErrorKind = 'bad-cobs' | 'overrun' | 'crc' | 'unknown-version' | 'unknown-type' | 'malformed'
export const LINK_ERROR_KINDS: readonly LinkErrorKind[] = ['bad-cobs', 'overrun', 'crc', 'unknown-version', 'unknown-type', 'malformed']

export interface LinkError {
  kind: LinkErrorKind
  /** For logs: what exactly was wrong. */
  detail: string
}

export type DecodeResult = { ok: true; frame: Frame } | { ok: false; error: LinkError }

const TYPE_BY_CODE = invert(FRAME_TYPES)
const VALUE_TYPE_BY_CODE = invert(VALUE_TYPES)

function invert<K extends string>(table: Record<K, number>): Map<number, K> {
  const byCode = new Map<number, K>()
  for (const name in table) byCode.set(table[name], name)
  return byCode
}

/**
 * Decodes one COBS-decoded frame. Checks run in PROTOCOL.md's order: length (under 5 bytes is
 * malformed, over 254 an overrun), CRC, version, type, body. The CRC comes before the version
 * because it covers the version byte: line noise then counts as a CRC error rather than as a
 * flood of "unknown versions".
 */
export function decodeFrame(decoded: Buffer): DecodeResult {
  if (decoded.length > MAX_FRAME) return fail('overrun', `${decoded.length} bytes, the maximum is ${MAX_FRAME}`)
  if (decoded.length < HEADER_SIZE + CRC_SIZE) return fail('malformed', `${decoded.length} bytes, too short to hold a header and CRC`)
  const end = decoded.length - CRC_SIZE
  const want = decoded.readUInt16BE(end)
  const got = crc16(decoded.subarray(0, end))
  if (got !== want) return fail('crc', `CRC ${hex16(want)} in the frame, ${hex16(got)} computed`)
  const version = decoded[0] as number
  if (version !== LINK_VERSION) return fail('unknown-version', `version ${version}`)
  const typeCode = decoded[1] as number
  const type = TYPE_BY_CODE.get(typeCode)
  if (type === undefined) return fail('unknown-type', `type 0x${typeCode.toString(16).padStart(2, '0')}`)
  const seq = decoded[2] as number
  const body = new ByteReader(decoded.subarray(HEADER_SIZE, end))
  try {
    const frame = decodeBody(type, seq, body)
    if (body.remaining > 0) return fail('malformed', `${type}: ${body.remaining} bytes after the body`)
    return { ok: true, frame }
  } catch (err) {
    if (err instanceof BodyError) return fail('malformed', `${type}: ${err.message}`)
    throw err
  }
}

function decodeBody(type: FrameType, seq: number, r: ByteReader): Frame {
  switch (type) {
    case 'hello': {
      const deviceId = r.shortString('device id', true)
      const firmwareVersion = r.shortString('firmware version')
      const count = r.u8('field count')
      const fields: FieldSpec[] = []
      const ids = new Set<number>()
      for (let i = 0; i < count; i++) {
        const fieldId = r.u8(`field ${i} id`)
        // Two declarations for one id would make every DATA value for it ambiguous.
        if (ids.has(fieldId)) throw new BodyError(`field id ${fieldId} declared twice`)
        ids.add(fieldId)
        const valueType = readValueType(r, `field ${i}`)
        const name = r.shortString(`field ${i} name`, true)
        const unit = r.shortString(`field ${i} unit`)
        fields.push({ fieldId, type: valueType, name, unit })
      }
      return { type, seq, deviceId, firmwareVersion, fields }
    }
    case 'data': {
      const values: DataValue[] = []
      while (r.remaining > 0) {
        const fieldId = r.u8('field id')
        values.push({ fieldId, ...readValue(r, readValueType(r, `field ${fieldId}`), `field ${fieldId}`) })
      }
      return { type, seq, values }
    }
    case 'cmd':
      return { type, seq, name: r.shortString('command name', true), args: r.rest() }
    case 'ack':
      return { type, seq, cmdSeq: r.u8('CMD seq') }
    case 'nak': {
      const cmdSeq = r.u8('CMD seq')
      const code = r.u8('error code')
      return { type, seq, cmdSeq, code, message: r.restString('message') }
    }
    case 'ping':
      return { type, seq }
  }
}

function readValueType(r: ByteReader, what: string): ValueType {
  const code = r.u8(`${what} value type`)
  const valueType = VALUE_TYPE_BY_CODE.get(code)
  if (valueType === undefined) throw new BodyError(`${what}: unknown value type 0x${code.toString(16).padStart(2, '0')}`)
  return valueType
}

function readValue(r: ByteReader, type: ValueType, what: string): Value {
  switch (type) {
    case 'int32':
      return { type, value: r.i32(what) }
    case 'float32':
      return { type, value: r.f32(what) }
    case 'uint32':
      return { type, value: r.u32(what) }
    case 'string':
      return { type, value: r.shortString(what) }
    case 'bool': {
      const b = r.u8(what)
      // Only 0 and 1 are booleans; anything else is a sender bug worth seeing, not "true".
      if (b > 1) throw new BodyError(`${what}: bool ${b}, must be 0 or 1`)
      return { type, value: b === 1 }
    }
  }
}

/**
 * The decoded frame (header, body, CRC) for `frame`, without COBS. Throws RangeError for a frame
 * `decodeFrame` would refuse: a number out of range, an empty identifier, a repeated field id, a
 * string with U+0000, or more than MAX_FRAME bytes.
 */
export function encodeFrameBody(frame: Frame): Buffer {
  const w = new ByteWriter(MAX_FRAME)
  w.u8(LINK_VERSION, 'version')
  w.u8(FRAME_TYPES[frame.type], 'type')
  w.u8(frame.seq, 'seq')
  switch (frame.type) {
    case 'hello':
      w.shortString(frame.deviceId, 'device id', true)
      w.shortString(frame.firmwareVersion, 'firmware version')
      w.u8(frame.fields.length, 'field count')
      for (const f of frame.fields) {
        w.u8(f.fieldId, 'field id')
        w.u8(VALUE_TYPES[f.type], 'value type')
        w.shortString(f.name, 'field name', true)
        w.shortString(f.unit, 'field unit')
      }
      if (new Set(frame.fields.map((f) => f.fieldId)).size !== frame.fields.length) throw new RangeError('HELLO field ids must be unique')
      break
    case 'data':
      for (const v of frame.values) {
        w.u8(v.fieldId, 'field id')
        w.u8(VALUE_TYPES[v.type], 'value type')
        writeValue(w, v)
      }
      break
    case 'cmd':
      w.shortString(frame.name, 'command name', true)
      w.bytes(frame.args)
      break
    case 'ack':
      w.u8(frame.cmdSeq, 'CMD seq')
      break
    case 'nak':
      w.u8(frame.cmdSeq, 'CMD seq')
      w.u8(frame.code, 'error code')
      w.restString(frame.message, 'NAK message')
      break
    case 'ping':
      break
  }
  const body = w.finish()
  if (body.length + CRC_SIZE > MAX_FRAME) throw new RangeError(`${frame.type} frame is ${body.length + CRC_SIZE} bytes, the maximum is ${MAX_FRAME}`)
  const out = Buffer.allocUnsafe(body.length + CRC_SIZE)
  body.copy(out)
  out.writeUInt16BE(crc16(body), body.length)
  return out
}

/** Wire bytes for `frame`: COBS-encoded, followed by the 0x00 delimiter. */
export function encodeFrame(frame: Frame): Buffer {
  const encoded = cobsEncode(encodeFrameBody(frame))
  return Buffer.concat([encoded, Buffer.of(0)], encoded.length + 1)
}

function writeValue(w: ByteWriter, v: Value): void {
  switch (v.type) {
    case 'int32':
      w.fixed(4, (b) => b.writeInt32BE(checkInt(v.value, -0x8000_0000, 0x7fff_ffff, 'int32')))
      break
    case 'uint32':
      w.fixed(4, (b) => b.writeUInt32BE(checkInt(v.value, 0, 0xffff_ffff, 'uint32')))
      break
    case 'float32':
      w.fixed(4, (b) => b.writeFloatBE(v.value))
      break
    case 'bool':
      w.u8(v.value ? 1 : 0, 'bool')
      break
    case 'string':
      w.shortString(v.value, 'string value')
      break
  }
}

function fail(kind: LinkErrorKind, detail: string): DecodeResult {
  return { ok: false, error: { kind, detail } }
}

function hex16(n: number): string {
  return `0x${n.toString(16).padStart(4, '0')}`
}
