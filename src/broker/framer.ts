/**
 * Splits a byte stream into whole MQTT control packets by the fixed header's Remaining Length,
 * so the decoder only ever sees complete packets and an oversized packet is refused from its
 * header, before its body is buffered.
 */
export type FrameResult = { ok: true } | { ok: false; error: 'malformed-length' | 'too-large'; size?: number }

export class Framer {
  readonly #maxPacketSize: number
  #chunks: Buffer[] = []
  #buffered = 0
  /** Total size of the packet being collected, once its header is complete. */
  #need = 0

  constructor(maxPacketSize: number) {
    this.#maxPacketSize = maxPacketSize
  }

  /** Feeds bytes; calls `onPacket` for every complete packet, in order. */
  push(chunk: Buffer, onPacket: (packet: Buffer) => boolean): FrameResult {
    if (this.#need > 0 && this.#buffered + chunk.length < this.#need) {
      // Still collecting a large packet: keep the pieces, join once.
      this.#chunks.push(chunk)
      this.#buffered += chunk.length
      return { ok: true }
    }
    let data = chunk
    if (this.#chunks.length > 0) {
      this.#chunks.push(chunk)
      data = Buffer.concat(this.#chunks, this.#buffered + chunk.length)
      this.#chunks = []
      this.#buffered = 0
    }
    this.#need = 0
    let off = 0
    while (off < data.length) {
      const header = readRemainingLength(data, off + 1)
      if (header === 'short') break
      if (header === 'malformed') return { ok: false, error: 'malformed-length' }
      const total = header.offset - off + header.length
      if (total > this.#maxPacketSize) return { ok: false, error: 'too-large', size: total }
      if (data.length - off < total) {
        this.#need = total
        break
      }
      if (!onPacket(data.subarray(off, off + total))) return { ok: true }
      off += total
    }
    if (off < data.length) {
      const rest = data.subarray(off)
      this.#chunks.push(rest)
      this.#buffered = rest.length
    }
    return { ok: true }
  }
}

/** Decodes the variable byte integer at `at`: at most 4 bytes [MQTT-1.5.5]. */
function readRemainingLength(data: Buffer, at: number): { length: number; offset: number } | 'short' | 'malformed' {
  let value = 0
  let multiplier = 1
  for (let i = 0; i < 4; i++) {
    const pos = at + i
    if (pos >= data.length) return 'short'
    const byte = data[pos] as number
    value += (byte & 0x7f) * multiplier
    if ((byte & 0x80) === 0) return { length: value, offset: pos + 1 }
    multiplier *= 128
  }
  return 'malformed'
}
