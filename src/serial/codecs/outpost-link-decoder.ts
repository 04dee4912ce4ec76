/**
 * Receiving side of outpost-link: bytes from a UART in, frames and error events out.
 *
 * COBS is undone byte by byte into one fixed MAX_FRAME buffer, so memory is bounded by
 * construction: a sender that never sends 0x00 costs one overrun count and nothing else.
 * After any error the decoder drops bytes up to the next 0x00 and starts over there, which is
 * also how it finds its footing when it is attached in the middle of a frame.
 */
import { Transform, type TransformCallback } from 'node:stream'
import { decodeFrame, MAX_FRAME, type Frame, type LinkError, type LinkErrorKind } from './outpost-link.js'

export type LinkEvent = { kind: 'frame'; frame: Frame } | { kind: 'error'; error: LinkError }

export type LinkCounters = { frames: number } & Record<LinkErrorKind, number>

export class OutpostLinkDecoder {
  readonly #buf = Buffer.alloc(MAX_FRAME)
  #length = 0
  /** Data bytes still to come in the current COBS block; 0 means the next byte is a code byte. */
  #blockLeft = 0
  /** The previous block was shorter than 254 bytes, so a zero follows it if another block comes. */
  #zeroOwed = false
  /** Any byte since the last delimiter, to tell an empty frame (ignored) from a frame. */
  #inFrame = false
  /** An error ended this frame already: skip to the next delimiter. */
  #discarding = false
  readonly #counters: LinkCounters = { frames: 0, 'bad-cobs': 0, overrun: 0, crc: 0, 'unknown-version': 0, 'unknown-type': 0, malformed: 0 }

  /** Decoded bytes held for the frame in progress; never more than MAX_FRAME. */
  get buffered(): number {
    return this.#length
  }

  /** Totals since construction: frames delivered and each kind of error. */
  get counters(): Readonly<LinkCounters> {
    return { ...this.#counters }
  }

  /** Feeds bytes; returns what they completed, in order. Output is bounded by the chunk size. */
  push(chunk: Uint8Array): LinkEvent[] {
    const events: LinkEvent[] = []
    for (let i = 0; i < chunk.length; i++) {
      if (this.#discarding) {
        // Noise floods are the common case here; jump straight to the next delimiter.
        const next = chunk.indexOf(0, i)
        if (next === -1) break
        i = next
      }
      const byte = chunk[i] as number
      if (byte === 0) this.#endFrame(events)
      else this.#frameByte(byte, events)
    }
    return events
  }

  /** Forgets a partial frame, for example when the port is reopened. Counters are kept. */
  reset(): void {
    this.#length = 0
    this.#blockLeft = 0
    this.#zeroOwed = false
    this.#inFrame = false
    this.#discarding = false
  }

  #frameByte(byte: number, events: LinkEvent[]): void {
    this.#inFrame = true
    if (this.#blockLeft > 0) {
      this.#blockLeft--
      this.#append(byte, events)
      return
    }
    // A code byte: the block before it, if short, stood for data followed by a zero.
    if (this.#zeroOwed && !this.#append(0, events)) return
    this.#blockLeft = byte - 1
    this.#zeroOwed = byte !== 0xff
  }

  #append(byte: number, events: LinkEvent[]): boolean {
    if (this.#length === MAX_FRAME) {
      this.#error(events, 'overrun', `more than ${MAX_FRAME} decoded bytes before a delimiter`)
      return false
    }
    this.#buf[this.#length++] = byte
    return true
  }

  #endFrame(events: LinkEvent[]): void {
    const wasDiscarding = this.#discarding
    const inFrame = this.#inFrame
    const blockLeft = this.#blockLeft
    const length = this.#length
    this.reset()
    // Senders may put a 0x00 before a frame to flush the receiver; an empty frame is not an error.
    if (wasDiscarding || !inFrame) return
    if (blockLeft > 0) {
      this.#report(events, { kind: 'bad-cobs', detail: `delimiter with ${blockLeft} bytes of a COBS block missing` })
      return
    }
    // decodeFrame copies what it keeps (strings, args), so the buffer can be reused at once.
    const result = decodeFrame(this.#buf.subarray(0, length))
    if (!result.ok) {
      this.#report(events, result.error)
      return
    }
    this.#counters.frames++
    events.push({ kind: 'frame', frame: result.frame })
  }

  /** An error in the middle of a frame: report it and skip to the next delimiter. */
  #error(events: LinkEvent[], kind: LinkErrorKind, detail: string): void {
    this.#report(events, { kind, detail })
    this.#length = 0
    this.#discarding = true
  }

  #report(events: LinkEvent[], error: LinkError): void {
    this.#counters[error.kind]++
    events.push({ kind: 'error', error })
  }
}

/**
 * Stream form for serialport pipes: bytes in, `Frame` objects out. Errors are line noise, not
 * stream failures, so they are emitted as 'link-error' events (and counted) and the stream
 * keeps going.
 */
export class OutpostLinkStream extends Transform {
  readonly decoder = new OutpostLinkDecoder()

  constructor() {
    super({ readableObjectMode: true })
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!(chunk instanceof Uint8Array)) {
      callback(new TypeError('OutpostLinkStream takes bytes'))
      return
    }
    for (const event of this.decoder.push(chunk)) {
      if (event.kind === 'frame') this.push(event.frame)
      else this.emit('link-error', event.error)
    }
    callback()
  }

  // A frame cut off by the end of the stream has no delimiter and is dropped without a count.
  override _flush(callback: TransformCallback): void {
    this.decoder.reset()
    callback()
  }
}
