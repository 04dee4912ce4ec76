import { parser as createParser, type Packet, type Parser } from 'mqtt-packet'
import type { ProtocolVersion } from './types.js'

export type Decoded = { packet: Packet; error?: undefined } | { packet?: undefined; error: Error }

/**
 * Decodes whole packets with mqtt-packet. The framer only hands over complete packets and
 * `parse()` is synchronous, so a parser is idle between calls and one per protocol version can
 * serve every connection: a connection costs no parser of its own (about a kilobyte each, which
 * adds up at thousands of idle clients).
 */
export class Decoder {
  readonly #parsers = new Map<ProtocolVersion, Parser>()
  #packet: Packet | undefined
  #error: Error | undefined

  decode(bytes: Buffer, version: ProtocolVersion): Decoded {
    const parser = this.#parsers.get(version) ?? this.#create(version)
    this.#packet = undefined
    this.#error = undefined
    const left = parser.parse(bytes)
    const packet = this.#packet as Packet | undefined
    const error = this.#error as Error | undefined
    if (error !== undefined || packet === undefined || left !== 0) {
      // A parser that failed, or stopped short of the frame, may hold partial state: replace it.
      this.#parsers.delete(version)
      return { error: error ?? new Error(packet === undefined ? 'incomplete packet' : 'bytes left after the packet') }
    }
    return { packet }
  }

  #create(version: ProtocolVersion): Parser {
    const p = createParser({ protocolVersion: version })
    p.on('packet', (packet: Packet) => {
      this.#packet = packet
    })
    p.on('error', (err: Error) => {
      this.#error = err
    })
    this.#parsers.set(version, p)
    return p
  }
}
