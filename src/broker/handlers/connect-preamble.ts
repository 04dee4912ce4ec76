import type { Connection } from '../connection.js'
import { ProtocolError } from '../protocol-error.js'

/**
 * Reads the start of the first packet before mqtt-packet decodes it. Returns the bytes to decode,
 * or undefined when the connection was refused or closed here.
 */
export function checkConnectPreamble(conn: Connection, raw: Buffer): Buffer | undefined {
  // The first packet from a client MUST be CONNECT [MQTT-3.1.0-1].
  if (((raw[0] as number) >> 4) !== 1) {
    conn.fail(new ProtocolError('first packet is not CONNECT', 0x82, 'MQTT-3.1.0-1'))
    return undefined
  }
  let pos = 1
  while (pos < raw.length && ((raw[pos] as number) & 0x80) !== 0) pos++
  pos++
  if (pos + 2 > raw.length) return raw // too short: the decoder reports it as malformed
  const nameLength = raw.readUInt16BE(pos)
  const name = raw.subarray(pos + 2, pos + 2 + nameLength).toString('latin1')
  const levelByte = raw[pos + 2 + nameLength]
  if (levelByte === undefined) return raw
  // Bit 7 of the level marks a Mosquitto-style bridge; the level itself is the low bits.
  const level = levelByte & 0x7f

  if (name === 'MQIsdp') {
    if (level !== 3) return refuseVersion(conn, level)
    conn.setVersion(3)
    // MQTT 3.1 reserved neither the CONNECT header flags nor bit 0 of the connect flags, and
    // Mosquitto ignores both there; clear them so the 3.1.1 rules of the decoder do not apply.
    const flagsAt = pos + 3 + nameLength
    const headerFlags = (raw[0] as number) & 0x0f
    const reservedFlag = (raw[flagsAt] ?? 0) & 0x01
    if (headerFlags === 0 && reservedFlag === 0) return raw
    const copy = Buffer.from(raw)
    copy[0] = 0x10
    if (flagsAt < copy.length) copy[flagsAt] = (copy[flagsAt] as number) & 0xfe
    return copy
  }
  if (name !== 'MQTT') {
    // Not MQTT at all: close without CONNACK [MQTT-3.1.2-1].
    conn.fail(new ProtocolError(`unknown protocol name ${JSON.stringify(name)}`, 0x82, 'MQTT-3.1.2-1'))
    return undefined
  }
  if (level === 4 || level === 5) {
    conn.setVersion(level)
    return raw
  }
  return refuseVersion(conn, level)
}

/** CONNACK "unacceptable protocol version" (0x01, in the 3.1.1 form every client reads), then close [MQTT-3.1.2-2]. */
function refuseVersion(conn: Connection, level: number): undefined {
  conn.write({ cmd: 'connack', sessionPresent: false, returnCode: 0x01 })
  conn.log.info({ ...conn.logContext(), level }, 'refused CONNECT with unsupported protocol level')
  conn.close(`unsupported protocol level ${level}`, false)
  return undefined
}
