/**
 * Bounds-checked reads over one decoded frame body. Every read that would run past the end, and
 * every string that is not valid UTF-8, throws `BodyError`, so a body parser reads as a straight
 * list of fields and the one caller turns the throw into a typed "malformed" result.
 */
export class BodyError extends Error {
  override readonly name = 'BodyError'
}

// fatal: invalid UTF-8 is refused, not patched with U+FFFD; ignoreBOM: a leading BOM is data.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

export class ByteReader {
  readonly #data: Buffer
  #at = 0

  constructor(data: Buffer) {
    this.#data = data
  }

  get remaining(): number {
    return this.#data.length - this.#at
  }

  u8(what: string): number {
    return this.#take(1, what).readUInt8(0)
  }

  i32(what: string): number {
    return this.#take(4, what).readInt32BE(0)
  }

  u32(what: string): number {
    return this.#take(4, what).readUInt32BE(0)
  }

  f32(what: string): number {
    return this.#take(4, what).readFloatBE(0)
  }

  /** A u8 length followed by that many bytes of UTF-8; identifiers pass `nonEmpty`. */
  shortString(what: string, nonEmpty = false): string {
    const length = this.u8(`${what} length`)
    if (nonEmpty && length === 0) throw new BodyError(`${what}: empty`)
    return this.#utf8(this.#take(length, what), what)
  }

  /** Everything left, as UTF-8. */
  restString(what: string): string {
    return this.#utf8(this.rest(), what)
  }

  /** Everything left, as a copy that does not pin the receive buffer. */
  rest(): Buffer {
    return Buffer.from(this.#take(this.remaining, 'rest'))
  }

  #take(n: number, what: string): Buffer {
    if (n > this.remaining) throw new BodyError(`${what}: needs ${n} bytes, ${this.remaining} left`)
    const out = this.#data.subarray(this.#at, this.#at + n)
    this.#at += n
    return out
  }

  #utf8(bytes: Buffer, what: string): string {
    // U+0000 is refused like bad UTF-8 (PROTOCOL.md): these strings become MQTT topics, where
    // it is forbidden, and C strings on the device, where it would cut the string short.
    if (bytes.includes(0)) throw new BodyError(`${what}: contains U+0000`)
    try {
      return utf8.decode(bytes)
    } catch {
      throw new BodyError(`${what}: not valid UTF-8`)
    }
  }
}
