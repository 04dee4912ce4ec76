/**
 * Line framing for devices that print text: bytes in, one parsed line at a time out.
 *
 * Lines are split on bytes, not on decoded text, so a multi-byte character cut by a chunk
 * boundary is whole again before it is decoded, and the length limit is in bytes like the
 * receive buffer. A line longer than `maxLength` is dropped and counted; the splitter then
 * skips to the next delimiter and holds at most `maxLength + delimiter length` bytes at any time.
 */
import { Transform, type TransformCallback } from 'node:stream'
import { createLineParser, type Fields, type LineFormat, type LineParser, type ParseErrorKind } from './line-parsers.js'

export const DEFAULT_MAX_LINE = 1024

export interface LineSplitterOptions {
  /** Default "\n"; a device that ends lines with CRLF wants "\r\n". */
  delimiter?: string
  /** Longest line in bytes, without its delimiter. Default 1024. */
  maxLength?: number
}

/** 'too-long' comes once per over-long line, as soon as it passes the limit. */
export type SplitEvent = { kind: 'line'; line: Buffer } | { kind: 'too-long'; maxLength: number }

export class LineSplitter {
  readonly #delimiter: Buffer
  /** KMP fallback table, so "\r\r\n" still ends a line with delimiter "\r\n". */
  readonly #fallback: number[]
  readonly #maxLength: number
  readonly #buf: Buffer
  #length = 0
  /** Delimiter bytes matched at the end of what has been seen. */
  #matched = 0
  /** Skipping an over-long line up to the next delimiter. */
  #dropping = false

  constructor(options: LineSplitterOptions = {}) {
    const delimiter = options.delimiter ?? '\n'
    const maxLength = options.maxLength ?? DEFAULT_MAX_LINE
    if (delimiter === '' || Buffer.byteLength(delimiter) > 8) throw new RangeError('line delimiter must be 1 to 8 bytes')
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new RangeError('maxLength must be a positive integer')
    this.#delimiter = Buffer.from(delimiter, 'utf8')
    this.#fallback = kmpTable(this.#delimiter)
    this.#maxLength = maxLength
    this.#buf = Buffer.alloc(maxLength + this.#delimiter.length)
  }

  /** Bytes held for the line in progress; never more than maxLength + delimiter length. */
  get buffered(): number {
    return this.#length
  }

  push(chunk: Uint8Array): SplitEvent[] {
    const events: SplitEvent[] = []
    const d = this.#delimiter
    for (const byte of chunk) {
      let m = this.#matched
      while (m > 0 && byte !== d[m]) m = this.#fallback[m - 1] as number
      if (byte === d[m]) m++
      this.#matched = m === d.length ? 0 : m
      if (this.#dropping) {
        if (m === d.length) this.#dropping = false
        continue
      }
      this.#buf[this.#length++] = byte
      if (m === d.length) {
        events.push({ kind: 'line', line: Buffer.from(this.#buf.subarray(0, this.#length - d.length)) })
        this.#length = 0
      } else if (this.#length - m > this.#maxLength) {
        // Bytes that may be the start of the delimiter are not counted: it is too long without them.
        events.push({ kind: 'too-long', maxLength: this.#maxLength })
        this.#dropping = true
        this.#length = 0
      }
    }
    return events
  }

  /** Forgets a partial line, for example when the port is reopened. */
  reset(): void {
    this.#length = 0
    this.#matched = 0
    this.#dropping = false
  }
}

function kmpTable(pattern: Buffer): number[] {
  const table = new Array<number>(pattern.length).fill(0)
  let k = 0
  for (let i = 1; i < pattern.length; i++) {
    while (k > 0 && pattern[i] !== pattern[k]) k = table[k - 1] as number
    if (pattern[i] === pattern[k]) k++
    table[i] = k
  }
  return table
}

export type LineErrorKind = 'too-long' | 'bad-utf8' | ParseErrorKind
export interface LineError {
  kind: LineErrorKind
  detail: string
}
export type LineEvent = { kind: 'fields'; fields: Fields } | { kind: 'error'; error: LineError }
export type LineCounters = { lines: number } & Record<LineErrorKind, number>

export interface LineDecoderOptions extends LineSplitterOptions {
  /** How each line is parsed: a format, or a parser function. */
  parser: LineFormat | LineParser
}

// fatal: a device sending Latin-1 or line noise gets a counted error, not U+FFFD in its fields.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Splitter, UTF-8 check and parser together, with a counter per error kind. */
export class LineDecoder {
  readonly #splitter: LineSplitter
  readonly #parse: LineParser
  readonly #counters: LineCounters = { lines: 0, 'too-long': 0, 'bad-utf8': 0, syntax: 0, shape: 0 }

  constructor(options: LineDecoderOptions) {
    this.#splitter = new LineSplitter(options)
    this.#parse = typeof options.parser === 'function' ? options.parser : createLineParser(options.parser)
  }

  get buffered(): number {
    return this.#splitter.buffered
  }

  /** Lines parsed and errors by kind since construction. Blank lines count as neither. */
  get counters(): Readonly<LineCounters> {
    return { ...this.#counters }
  }

  push(chunk: Uint8Array): LineEvent[] {
    const events: LineEvent[] = []
    for (const split of this.#splitter.push(chunk)) {
      if (split.kind === 'too-long') {
        this.#error(events, 'too-long', `line longer than ${split.maxLength} bytes, skipped to the next delimiter`)
        continue
      }
      let text: string
      try {
        text = utf8.decode(split.line)
      } catch {
        this.#error(events, 'bad-utf8', `line of ${split.line.length} bytes is not valid UTF-8`)
        continue
      }
      // Blank lines are what a device prints between readings or on reset; they carry nothing.
      if (text.trim() === '') continue
      const result = this.#parse(text)
      if (!result.ok) {
        this.#error(events, result.error.kind, result.error.detail)
        continue
      }
      this.#counters.lines++
      events.push({ kind: 'fields', fields: result.fields })
    }
    return events
  }

  reset(): void {
    this.#splitter.reset()
  }

  #error(events: LineEvent[], kind: LineErrorKind, detail: string): void {
    this.#counters[kind]++
    events.push({ kind: 'error', error: { kind, detail } })
  }
}

/**
 * Stream form for serialport pipes: bytes in, `Fields` objects out. Bad lines are emitted as
 * 'line-error' events (and counted) rather than as stream errors, so one garbled line does not
 * end the pipe.
 */
export class LineStream extends Transform {
  readonly decoder: LineDecoder

  constructor(options: LineDecoderOptions) {
    super({ readableObjectMode: true })
    this.decoder = new LineDecoder(options)
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!(chunk instanceof Uint8Array)) {
      callback(new TypeError('LineStream takes bytes'))
      return
    }
    for (const event of this.decoder.push(chunk)) {
      if (event.kind === 'fields') this.push(event.fields)
      else this.emit('line-error', event.error)
    }
    callback()
  }

  // A last line without a delimiter may be cut off mid-reading, so it is dropped, not parsed.
  override _flush(callback: TransformCallback): void {
    this.decoder.reset()
    callback()
  }
}
