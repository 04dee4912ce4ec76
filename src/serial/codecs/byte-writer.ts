/**
 * Builds one frame body from parts, refusing with RangeError anything the receiving side would
 * refuse (a number out of range, a string over 255 bytes, U+0000, a lone surrogate), so this
 * gateway never sends a frame it would count as malformed itself.
 */
export class ByteWriter {
  readonly #max: number
  readonly #parts: Buffer[] = []
  #length = 0

  /** `max`: the most bytes this writer will ever hold. */
  constructor(max: number) {
    this.#max = max
  }

  u8(n: number, what: string): void {
    this.bytes(Buffer.of(checkInt(n, 0, 255, what)))
  }

  shortString(s: string, what: string, nonEmpty = false): void {
    if (nonEmpty && s === '') throw new RangeError(`${what} cannot be empty`)
    const bytes = utf8Bytes(s, what)
    if (bytes.length > 255) throw new RangeError(`${what} is ${bytes.length} bytes of UTF-8, the maximum is 255`)
    this.u8(bytes.length, `${what} length`)
    this.bytes(bytes)
  }

  /** Everything to the end of the frame, as UTF-8 with no length before it. */
  restString(s: string, what: string): void {
    this.bytes(utf8Bytes(s, what))
  }

  fixed(n: number, write: (b: Buffer) => void): void {
    const b = Buffer.alloc(n)
    write(b)
    this.bytes(b)
  }

  bytes(b: Uint8Array): void {
    // Stop collecting once the frame is certainly too big, so a huge argument is not copied.
    if (this.#length + b.length > this.#max) throw new RangeError(`frame exceeds ${this.#max} bytes`)
    this.#parts.push(Buffer.from(b))
    this.#length += b.length
  }

  finish(): Buffer {
    return Buffer.concat(this.#parts, this.#length)
  }
}

/** UTF-8 of `s`, refusing what the receiver would refuse rather than sending a U+FFFD in its place. */
function utf8Bytes(s: string, what: string): Buffer {
  if (s.includes('\0')) throw new RangeError(`${what} cannot contain U+0000`)
  if (/\p{Cs}/u.test(s)) throw new RangeError(`${what} has a lone surrogate, which is not UTF-8`)
  return Buffer.from(s, 'utf8')
}

export function checkInt(n: number, min: number, max: number, what: string): number {
  if (!Number.isInteger(n) || n < min || n > max) throw new RangeError(`${what} must be an integer ${min}..${max}, got ${n}`)
  return n
}
