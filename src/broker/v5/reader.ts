import { ProtocolError } from '../protocol-error.js'

// ignoreBOM: a leading U+FEFF is part of the string and must not be stripped [MQTT-1.5.4-3].
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

// U+0000 is forbidden [MQTT-1.5.4-2]; U+0001..U+001F and U+007F..U+009F are "SHOULD NOT"
// (section 1.5.4), and Mosquitto refuses them, as the 3.1.1 path does (utf8.ts).
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f]/

/**
 * Reads the fields of one MQTT 5 packet body. Every read checks the bounds, so a short packet
 * is malformed (0x81) wherever it ends, and strings are checked as well-formed UTF-8 without
 * surrogates or forbidden code points [MQTT-1.5.4-1] [MQTT-1.5.4-2].
 */
export class ByteReader {
  readonly buf: Buffer
  pos: number
  readonly end: number

  constructor(buf: Buffer, pos: number, end: number) {
    this.buf = buf
    this.pos = pos
    this.end = end
  }

  get remaining(): number {
    return this.end - this.pos
  }

  /** A reader over the next bytes up to `end`, sharing the buffer. */
  slice(end: number): ByteReader {
    return new ByteReader(this.buf, this.pos, end)
  }

  u8(what: string): number {
    this.#need(1, what)
    return this.buf[this.pos++] as number
  }

  u16(what: string): number {
    this.#need(2, what)
    const v = this.buf.readUInt16BE(this.pos)
    this.pos += 2
    return v
  }

  u32(what: string): number {
    this.#need(4, what)
    const v = this.buf.readUInt32BE(this.pos)
    this.pos += 4
    return v
  }

  /** Variable byte integer: at most four bytes [MQTT-1.5.5-1]. */
  varint(what: string): number {
    let value = 0
    let multiplier = 1
    for (let i = 0; i < 4; i++) {
      const byte = this.u8(what)
      value += (byte & 0x7f) * multiplier
      if ((byte & 0x80) === 0) return value
      multiplier *= 128
    }
    throw new ProtocolError(`${what}: variable byte integer longer than 4 bytes`, 0x81)
  }

  binary(what: string): Buffer {
    const n = this.u16(what)
    this.#need(n, what)
    const b = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return b
  }

  string(what: string): string {
    const bytes = this.binary(what)
    let s: string
    if (isPlainAscii(bytes)) {
      s = bytes.toString('latin1')
    } else {
      try {
        // fatal: ill-formed sequences and encoded surrogates throw instead of becoming U+FFFD.
        s = utf8.decode(bytes)
      } catch {
        throw new ProtocolError(`${what} is not well-formed UTF-8`, 0x81, 'MQTT-1.5.4-1')
      }
    }
    if (FORBIDDEN.test(s)) throw new ProtocolError(`${what} contains a control character`, 0x81, 'MQTT-1.5.4-2')
    return s
  }

  /** Everything left in the packet, as a view (the payload). */
  rest(): Buffer {
    const b = this.buf.subarray(this.pos, this.end)
    this.pos = this.end
    return b
  }

  #need(n: number, what: string): void {
    if (this.pos + n > this.end) throw new ProtocolError(`packet ends inside ${what}`, 0x81)
  }
}

/** Where a whole packet's variable header starts: after the type byte and the Remaining Length. */
export function bodyStart(raw: Buffer): number {
  let at = 1
  while (((raw[at] as number) & 0x80) !== 0) at++
  return at + 1
}

/** Printable ASCII only: the common case, decoded without TextDecoder. */
function isPlainAscii(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) {
    const c = b[i] as number
    if (c < 0x20 || c > 0x7e) return false
  }
  return true
}
