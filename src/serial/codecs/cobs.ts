/**
 * Consistent Overhead Byte Stuffing (Cheshire & Baker): removes every 0x00 from a frame so 0x00
 * can delimit frames on the wire, at a cost of one byte per 254.
 *
 * The encoder is canonical: a final block of 254 non-zero bytes is not followed by an empty
 * 0x01 block. Some encoders (PacketSerial) add that block; `cobsDecode` and the streaming
 * decoder accept both, because a trailing 0x01 decodes to nothing.
 */

/** Largest encoded size for `n` data bytes (without the 0x00 delimiter). */
export function cobsMaxEncodedLength(n: number): number {
  return n + Math.floor(n / 254) + 1
}

/** Encodes `data`; the result holds no 0x00 and has no delimiter appended. */
export function cobsEncode(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(cobsMaxEncodedLength(data.length))
  let codeAt = 0
  let code = 1
  let w = 1
  for (let i = 0; i < data.length; i++) {
    const byte = data[i] as number
    if (byte !== 0) {
      out[w++] = byte
      code++
    }
    if (byte === 0 || code === 0xff) {
      out[codeAt] = code
      code = 1
      // A full block at the very end needs no further block: it implies no zero after it.
      if (byte !== 0 && i === data.length - 1) return out.subarray(0, w)
      codeAt = w++
    }
  }
  out[codeAt] = code
  return out.subarray(0, w)
}

/** Why `cobsDecode` refused its input. */
export type CobsError = 'zero-byte' | 'truncated'

/** Decodes one encoded frame (without its delimiter). */
export function cobsDecode(encoded: Uint8Array): { ok: true; data: Buffer } | { ok: false; error: CobsError } {
  const out = Buffer.allocUnsafe(encoded.length)
  let w = 0
  let r = 0
  while (r < encoded.length) {
    const code = encoded[r++] as number
    if (code === 0) return { ok: false, error: 'zero-byte' }
    const end = r + code - 1
    if (end > encoded.length) return { ok: false, error: 'truncated' }
    for (; r < end; r++) {
      const byte = encoded[r] as number
      if (byte === 0) return { ok: false, error: 'zero-byte' }
      out[w++] = byte
    }
    if (code !== 0xff && r < encoded.length) out[w++] = 0
  }
  return { ok: true, data: out.subarray(0, w) }
}
