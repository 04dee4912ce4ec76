/**
 * MQTT 5 packets and fields written byte by byte for the codec tests, independently of the
 * encoders under test, so a shared mistake cannot hide itself.
 */
import { ProtocolError } from '../../src/broker/protocol-error.js'
import { encodeVarint } from '../../src/broker/v5/properties.js'

export const B = (...bytes: number[]): Buffer => Buffer.from(bytes)
export const h = (hex: string): Buffer => Buffer.from(hex.replace(/\s/g, ''), 'hex')
export const n16 = (v: number): Buffer => B(v >> 8, v & 0xff)
export const n32 = (v: number): Buffer => B(v >>> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)
/** An MQTT string or binary field: two length bytes, then the bytes. */
export const s = (v: string | Buffer): Buffer => {
  const bytes = typeof v === 'string' ? Buffer.from(v, 'utf8') : v
  return Buffer.concat([n16(bytes.length), bytes])
}
export const prop = (id: number, ...value: Buffer[]): Buffer => Buffer.concat([encodeVarint(id), ...value])
export const up = (name: string, value: string): Buffer => prop(0x26, s(name), s(value))
/** A property block: its Variable Byte Integer length, then the properties. */
export const P = (...props: Buffer[]): Buffer => {
  const body = Buffer.concat(props)
  return Buffer.concat([encodeVarint(body.length), body])
}
export const pkt = (first: number, ...body: Buffer[]): Buffer => {
  const b = Buffer.concat(body)
  return Buffer.concat([B(first), encodeVarint(b.length), b])
}

/** The reason code a call throws, 'ok' when it returns, or the text of an error that is not a ProtocolError. */
export function outcome(fn: () => unknown): number | string {
  try {
    fn()
    return 'ok'
  } catch (e) {
    return e instanceof ProtocolError ? e.reasonCode : `not a ProtocolError: ${String(e)}`
  }
}
