import type { IPingreqPacket } from 'mqtt-packet'
import type { Connection } from '../connection.js'
import { assertLength } from './wire.js'

const PINGRESP = Buffer.from([0xd0, 0x00])

/** PINGREQ: answer PINGRESP [MQTT-3.12.4-1]. */
export function handlePingreq(conn: Connection, packet: IPingreqPacket, raw: Buffer): void {
  assertLength(packet, raw, 2)
  conn.writeRaw(PINGRESP)
}
