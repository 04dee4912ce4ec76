import { isUtf8 } from 'node:buffer'

/**
 * The byte-level reader and writer under codec.ts. Numbers are unsigned LEB128 varints up to
 * 2^53 - 1 (timestamps, sequence numbers and intervals are all non-negative safe integers), strings
 * and byte strings are a varint length and the bytes. Nothing here knows about MQTT.
 */

/** Bytes read back from disk that do not decode: the value is corrupt or from another format. */
export class CodecError extends Error {
  constructor(what: string, offset: number, problem: string) {
    super(`cannot decode ${what}: ${problem} at byte ${offset}`)
    this.name = 'CodecError'
  }
}

/**
 * Appends to one scratch buffer that is reused for every value, so encoding allocates only the
 * copy that `finish()` returns. Not re-entrant: one value at a time.
 */
export class Writer {
  #buf = Buffer.allocUnsafe(4096)
  #pos = 0

  start(): this {
    this.#pos = 0
    return this
  }

  #room(n: number): void {
    if (this.#pos + n <= this.#buf.length) return
    const bigger = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#pos + n))
    this.#buf.copy(bigger, 0, 0, this.#pos)
    this.#buf = bigger
  }

  u8(v: number): void {
    this.#room(1)
    this.#buf[this.#pos++] = v
  }

  u16(v: number): void {
    this.#room(2)
    this.#buf.writeUInt16BE(v, this.#pos)
    this.#pos += 2
  }

  /** A non-negative safe integer; anything else is a bug upstream and throws rather than being stored wrong. */
  varuint(v: number, field: string): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${field} must be a non-negative integer, got ${v}`)
    this.#room(8)
    const b = this.#buf
    let p = this.#pos
    // Bitwise operators only work on 32 bits: divide for the high part.
    while (v > 0x7fffffff) {
      b[p++] = (v % 128) | 0x80
      v = Math.floor(v / 128)
    }
    while (v > 0x7f) {
      b[p++] = (v & 0x7f) | 0x80
      v >>>= 7
    }
    b[p++] = v
    this.#pos = p
  }

  string(s: string): void {
    // Short strings (the usual topic or client id) fit a one-byte length: write the text first,
    // then its length in front, and measure nothing.
    if (s.length * 3 < 128) {
      this.#room(1 + s.length * 3)
      const n = this.#buf.write(s, this.#pos + 1)
      this.#buf[this.#pos] = n
      this.#pos += 1 + n
      return
    }
    const n = Buffer.byteLength(s)
    this.varuint(n, 'string length')
    this.#room(n)
    this.#buf.write(s, this.#pos)
    this.#pos += n
  }

  bytes(b: Uint8Array): void {
    this.varuint(b.length, 'byte string length')
    this.#room(b.length)
    this.#buf.set(b, this.#pos)
    this.#pos += b.length
  }

  /** A copy of what was written since `start()`: the scratch buffer is reused by the next value. */
  finish(): Buffer {
    const out = Buffer.allocUnsafe(this.#pos)
    this.#buf.copy(out, 0, 0, this.#pos)
    return out
  }
}

/** Reads one value; every read checks bounds and throws CodecError instead of returning garbage. */
export class Reader {
  readonly #buf: Buffer
  readonly #what: string
  #pos = 0

  constructor(buf: Buffer, what: string) {
    this.#buf = buf
    this.#what = what
  }

  fail(problem: string): never {
    throw new CodecError(this.#what, this.#pos, problem)
  }

  #need(n: number): void {
    if (this.#pos + n > this.#buf.length) this.fail(`needs ${n} more bytes, has ${this.#buf.length - this.#pos}`)
  }

  u8(): number {
    this.#need(1)
    return this.#buf[this.#pos++] as number
  }

  u16(): number {
    this.#need(2)
    const v = this.#buf.readUInt16BE(this.#pos)
    this.#pos += 2
    return v
  }

  varuint(): number {
    const b = this.#buf
    let v = 0
    let scale = 1
    for (let i = 0; i < 8; i++) {
      if (this.#pos >= b.length) this.fail('varint runs past the end')
      const byte = b[this.#pos++] as number
      v += (byte & 0x7f) * scale
      if (byte < 0x80) {
        if (!Number.isSafeInteger(v) || (byte === 0 && i > 0)) this.fail('varint out of range or not minimal')
        return v
      }
      scale *= 128
    }
    return this.fail('varint longer than 8 bytes')
  }

  /** At most what the rest of the value could hold, so garbage cannot make us allocate gigabytes. */
  count(minBytesEach: number): number {
    const n = this.varuint()
    if (n * minBytesEach > this.#buf.length - this.#pos) this.fail(`count ${n} larger than the value`)
    return n
  }

  /** A view into the value, not a copy: messages keep their payload without copying it again. */
  bytes(): Buffer {
    const n = this.varuint()
    this.#need(n)
    const out = this.#buf.subarray(this.#pos, this.#pos + n)
    this.#pos += n
    return out
  }

  string(): string {
    const n = this.varuint()
    this.#need(n)
    const start = this.#pos
    const end = start + n
    const b = this.#buf
    // ASCII (most topics and client ids) needs no UTF-8 check.
    let ascii = true
    for (let i = start; i < end; i++) {
      if ((b[i] as number) > 0x7f) {
        ascii = false
        break
      }
    }
    if (!ascii && !isUtf8(b.subarray(start, end))) this.fail('string is not valid UTF-8')
    this.#pos = end
    return b.toString(ascii ? 'latin1' : 'utf8', start, end)
  }

  /** Trailing bytes mean the value is not what we think it is. */
  end(): void {
    if (this.#pos !== this.#buf.length) this.fail(`${this.#buf.length - this.#pos} bytes left over`)
  }
}
