import type { IDisconnectPacket } from 'mqtt-packet'
import type { Connection } from '../connection.js'
import { assertLength } from './wire.js'

/** DISCONNECT: drop the will without publishing it [MQTT-3.14.4-3] and close [MQTT-3.14.4-1]. */
export function handleDisconnect(conn: Connection, packet: IDisconnectPacket, raw: Buffer): void {
  if (conn.version !== 5) assertLength(packet, raw, 2)
  conn.will = undefined
  conn.close('client sent DISCONNECT', false)
}
