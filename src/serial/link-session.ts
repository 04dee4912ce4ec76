/**
 * The outpost-link conversation with the device on one port: its HELLO and the field table it
 * declares, the sequence numbers it counts frames by, its DATA turned into readings, and the
 * ACK / NAK it answers commands with.
 */
import type { Logger } from 'pino'
import type { FieldSpec, Frame } from './codecs/outpost-link.js'
import type { CommandChannel } from './commands.js'
import type { PortDevices } from './devices.js'
import type { AnnouncedField } from './discovery.js'
import type { ReadingValue } from './mapper.js'
import type { BridgeCounters } from './port-bridge.js'

interface Hello {
  deviceId: string
  fields: Map<number, FieldSpec>
  lastSeq: number
}

export interface SessionHost {
  readonly log: Logger
  readonly devices: PortDevices
  readonly channel: CommandChannel
  readonly counters: BridgeCounters
  /** Counts something refused and logs it (throttled). */
  count(kind: keyof BridgeCounters, detail: string): void
  /** Readings of `device` for the mapping layer. */
  push(device: string, values: ReadingValue[]): void
  /** Home Assistant discovery for fields of `device` not announced yet. */
  announce(device: string, fields: readonly AnnouncedField[], firmware?: string): void
  /** Discovery for `device` is to be announced anew: a HELLO may change its fields. */
  forget(device: string): void
}

export class LinkSession {
  readonly #host: SessionHost
  #hello: Hello | undefined
  #helloAskedAt = Number.NEGATIVE_INFINITY

  constructor(host: SessionHost) {
    this.#host = host
  }

  /** The id in the last HELLO. */
  get deviceId(): string | undefined {
    return this.#hello?.deviceId
  }

  /** The field the last HELLO declared under `name`. */
  declared(name: string): FieldSpec | undefined {
    return [...(this.#hello?.fields.values() ?? [])].find((f) => f.name === name)
  }

  onFrame(frame: Frame): void {
    const host = this.#host
    switch (frame.type) {
      case 'hello': {
        const previous = this.#hello?.deviceId
        if (previous !== undefined && previous !== frame.deviceId) {
          host.devices.remove(previous)
          host.forget(previous)
        }
        if (!host.devices.add(frame.deviceId)) return
        this.#hello = { deviceId: frame.deviceId, fields: new Map(frame.fields.map((f) => [f.fieldId, f])), lastSeq: frame.seq }
        host.log.info({ device: frame.deviceId, firmware: frame.firmwareVersion, fields: frame.fields.map((f) => f.name) }, 'device said hello')
        host.devices.seen(frame.deviceId)
        host.forget(frame.deviceId)
        const kinds = { int32: 'number', uint32: 'number', float32: 'number', bool: 'bool', string: 'string' } as const
        host.announce(frame.deviceId, frame.fields.map((f) => ({ field: f.name, kind: kinds[f.type], unit: f.unit })), frame.firmwareVersion)
        return
      }
      case 'data':
      case 'ping': {
        const hello = this.#hello
        if (hello === undefined) {
          host.count('no-hello', `${frame.type} before the first HELLO; asking the device for one`)
          this.#askHello()
          return
        }
        this.#sequence(hello, frame.seq)
        host.devices.seen(hello.deviceId)
        if (frame.type === 'ping') return
        const values: ReadingValue[] = []
        for (const v of frame.values) {
          const spec = hello.fields.get(v.fieldId)
          if (spec === undefined) {
            host.count('undeclared-field', `field id ${v.fieldId} is not in the device's HELLO`)
            continue
          }
          values.push({ field: spec.name, value: v.value, unit: spec.unit, float32: v.type === 'float32' })
        }
        host.push(hello.deviceId, values)
        return
      }
      case 'ack':
      case 'nak': {
        if (this.#hello !== undefined) this.#sequence(this.#hello, frame.seq)
        const result = frame.type === 'ack' ? { status: 'ack' as const } : { status: 'nak' as const, code: frame.code, message: frame.message }
        // A late answer to an earlier attempt is normal after a retry; not worth a warning.
        if (!host.channel.answer(frame.cmdSeq, result)) host.counters['unexpected-frame']++
        return
      }
      case 'cmd':
        host.count('unexpected-frame', 'a device sent a CMD; commands only go to devices')
        return
    }
  }

  /** Counts frames lost in between by the device's seq, which wraps at 256. */
  #sequence(hello: Hello, seq: number): void {
    const gap = (seq - hello.lastSeq - 1 + 256) % 256
    // A gap over half the range is a duplicate or reordering, not 200 lost frames.
    if (gap > 0 && gap < 128) this.#host.counters.lost += gap
    hello.lastSeq = seq
  }

  #askHello(): void {
    const now = Date.now()
    if (now - this.#helloAskedAt < 5000) return
    this.#helloAskedAt = now
    this.#host.channel.send({ name: '$hello', args: Buffer.alloc(0), reply: () => undefined })
  }
}
