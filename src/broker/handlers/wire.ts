import { generate, type Packet } from 'mqtt-packet'
import type { Connection } from '../connection.js'
import { ProtocolError } from '../protocol-error.js'

/**
 * mqtt-packet stops reading once it has the fields it expects and ignores trailing bytes.
 * Re-encoding the decoded packet and comparing lengths catches bytes it skipped, which the
 * spec treats as a malformed packet (for example [MQTT-3.1.2-18], [MQTT-3.1.2-20]).
 */
export function assertWholePacketRead(conn: Connection, packet: Packet, raw: Buffer): void {
  let canonical: number
  try {
    canonical = generate(packet, { protocolVersion: conn.version }).length
  } catch (err) {
    throw new ProtocolError(`malformed ${packet.cmd}: ${(err as Error).message}`, 0x81)
  }
  if (canonical !== raw.length) {
    throw new ProtocolError(`malformed ${packet.cmd}: ${raw.length - canonical} unexpected bytes`, 0x81)
  }
}

/** Fixed-size packets of v3/v4 (acks: 4 bytes, PINGREQ/DISCONNECT: 2) must be exactly that long. */
export function assertLength(packet: Packet, raw: Buffer, expected: number): void {
  if (raw.length !== expected) {
    throw new ProtocolError(`malformed ${packet.cmd}: ${raw.length} bytes, expected ${expected}`, 0x81)
  }
}

/** Packet identifiers are non-zero [MQTT-2.3.1-1]. */
export function assertPacketId(packet: Packet): number {
  const id = packet.messageId
  if (id === undefined || id === 0) {
    throw new ProtocolError(`${packet.cmd} with packet identifier 0`, 0x81, 'MQTT-2.3.1-1')
  }
  return id
}
