/**
 * Commands to an outpost-link device: one CMD outstanding at a time (PROTOCOL.md, "Sequence
 * numbers, commands and retries"), the same bytes resent on timeout, and the answer matched
 * by the CMD's seq. Requests behind it wait in a short bounded queue; more than that is
 * refused at once rather than piling up behind a device that does not answer.
 */
import type { CommandArgType } from '../config/serial-types.js'
import type { ValueType } from './codecs/outpost-link.js'

export type CommandResult =
  | { status: 'ack'; attempts: number }
  | { status: 'nak'; attempts: number; code: number; message: string }
  | { status: 'timeout'; attempts: number }
  /** The port is not open, or the device went away while the command waited. */
  | { status: 'offline'; reason: string }
  /** Too many commands already waiting for this device. */
  | { status: 'busy' }
  /** The payload cannot be encoded for this command (a `bool` that is "maybe"). */
  | { status: 'invalid'; reason: string }
  /** `lines` framing: written to the port; text devices do not answer. */
  | { status: 'sent' }

export interface CommandRequest {
  readonly name: string
  readonly args: Buffer
  readonly reply: (result: CommandResult) => void
}

export const MAX_WAITING = 16

interface Outstanding {
  readonly request: CommandRequest
  readonly wire: Buffer
  readonly seq: number
  attempts: number
  timer: NodeJS.Timeout | undefined
}

export interface ChannelOptions {
  readonly timeoutMs: number
  readonly attempts: number
  /** Wire bytes of the CMD frame with this seq. */
  readonly encode: (seq: number, name: string, args: Buffer) => Buffer
  /** Writes to the port; false when the port is not open. */
  readonly write: (wire: Buffer) => boolean
  /** The gateway's next frame seq on this port. */
  readonly nextSeq: () => number
}

export class CommandChannel {
  readonly #o: ChannelOptions
  readonly #waiting: CommandRequest[] = []
  #outstanding: Outstanding | undefined

  constructor(options: ChannelOptions) {
    this.#o = options
  }

  get waiting(): number {
    return this.#waiting.length + (this.#outstanding === undefined ? 0 : 1)
  }

  send(request: CommandRequest): void {
    if (this.#outstanding !== undefined) {
      if (this.#waiting.length >= MAX_WAITING) request.reply({ status: 'busy' })
      else this.#waiting.push(request)
      return
    }
    this.#start(request)
  }

  /** An ACK or NAK arrived; answers for any other seq are late answers to earlier attempts. */
  answer(cmdSeq: number, result: { status: 'ack' } | { status: 'nak'; code: number; message: string }): boolean {
    const o = this.#outstanding
    if (o === undefined || o.seq !== cmdSeq) return false
    this.#finish({ ...result, attempts: o.attempts })
    return true
  }

  /** The port closed: everything outstanding and waiting is answered `offline`. */
  fail(reason: string): void {
    const all = [...(this.#outstanding === undefined ? [] : [this.#outstanding.request]), ...this.#waiting.splice(0)]
    if (this.#outstanding !== undefined) clearTimeout(this.#outstanding.timer)
    this.#outstanding = undefined
    for (const r of all) r.reply({ status: 'offline', reason })
  }

  #start(request: CommandRequest): void {
    const seq = this.#o.nextSeq()
    let wire: Buffer
    try {
      wire = this.#o.encode(seq, request.name, request.args)
    } catch (err) {
      request.reply({ status: 'invalid', reason: err instanceof Error ? err.message : String(err) })
      this.#next()
      return
    }
    const o: Outstanding = { request, wire, seq, attempts: 0, timer: undefined }
    this.#outstanding = o
    this.#attempt(o)
  }

  #attempt(o: Outstanding): void {
    if (!this.#o.write(o.wire)) {
      this.#finish({ status: 'offline', reason: 'port not open' })
      return
    }
    o.attempts++
    clearTimeout(o.timer)
    o.timer = setTimeout(() => {
      if (this.#outstanding !== o) return
      if (o.attempts >= this.#o.attempts) this.#finish({ status: 'timeout', attempts: o.attempts })
      else this.#attempt(o)
    }, this.#o.timeoutMs)
    o.timer.unref()
  }

  #finish(result: CommandResult): void {
    const o = this.#outstanding
    if (o === undefined) return
    clearTimeout(o.timer)
    this.#outstanding = undefined
    o.request.reply(result)
    this.#next()
  }

  #next(): void {
    const request = this.#waiting.shift()
    if (request !== undefined) this.#start(request)
  }
}

/**
 * The argument bytes for a command from an MQTT payload, by type: numbers and booleans are
 * written as text (`mosquitto_pub -m 1`), as MQTT users send them; `raw` passes the payload on
 * untouched. Returns the reason as a string when the payload does not fit the type.
 */
export function encodeArgs(type: CommandArgType | ValueType, payload: Buffer): Buffer | string {
  if (type === 'raw') return payload
  const text = payload.toString('utf8').trim()
  switch (type) {
    case 'string':
      return Buffer.from(unquote(text), 'utf8')
    case 'bool': {
      const t = unquote(text).toLowerCase()
      if (['1', 'true', 'on', 'yes'].includes(t)) return Buffer.of(1)
      if (['0', 'false', 'off', 'no'].includes(t)) return Buffer.of(0)
      return `expected true/false, 1/0 or on/off, got ${JSON.stringify(text)}`
    }
    case 'int32':
    case 'uint32': {
      const n = Number(unquote(text))
      const [min, max] = type === 'int32' ? [-0x8000_0000, 0x7fff_ffff] : [0, 0xffff_ffff]
      if (text === '' || !Number.isInteger(n) || n < min || n > max) return `expected an integer ${min}..${max}, got ${JSON.stringify(text)}`
      const b = Buffer.alloc(4)
      if (type === 'int32') b.writeInt32BE(n)
      else b.writeUInt32BE(n)
      return b
    }
    case 'float32': {
      const n = Number(unquote(text))
      if (text === '' || !Number.isFinite(n)) return `expected a number, got ${JSON.stringify(text)}`
      const b = Buffer.alloc(4)
      b.writeFloatBE(n)
      return b
    }
  }
}

/** `"on"` sent as a JSON string is `on`. */
function unquote(text: string): string {
  return text.length >= 2 && text.startsWith('"') && text.endsWith('"') ? text.slice(1, -1) : text
}
