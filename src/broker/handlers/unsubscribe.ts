import type { IUnsubscribePacket } from 'mqtt-packet'
import type { Connection } from '../connection.js'
import { ProtocolError } from '../protocol-error.js'
import { isValidTopicFilter } from '../topics.js'
import { isValidMqttString } from '../utf8.js'
import { assertPacketId, assertWholePacketRead } from './wire.js'

/**
 * UNSUBSCRIBE: remove each filter that exists (exact match, no wildcard matching
 * [MQTT-3.10.4-1]) and answer UNSUBACK even when nothing matched [MQTT-3.10.4-5].
 */
export function handleUnsubscribe(conn: Connection, packet: IUnsubscribePacket, raw: Buffer): void {
  const id = assertPacketId(packet)
  // At least one filter [MQTT-3.10.3-2].
  if (packet.unsubscriptions.length === 0) throw new ProtocolError('UNSUBSCRIBE without filters', 0x81, 'MQTT-3.10.3-2')
  assertWholePacketRead(conn, packet, raw)
  for (const filter of packet.unsubscriptions) {
    if (!isValidMqttString(filter, raw)) throw new ProtocolError('topic filter is not valid UTF-8', 0x81, 'MQTT-1.5.3-1')
    if (!isValidTopicFilter(filter)) throw new ProtocolError(`invalid topic filter ${JSON.stringify(filter)}`, 0x8f, 'MQTT-4.7.1-2')
  }
  const session = conn.session
  if (session === undefined) throw new ProtocolError('UNSUBSCRIBE without a session')
  for (const filter of packet.unsubscriptions) conn.broker.unsubscribe(session, filter)
  conn.write({ cmd: 'unsuback', messageId: id, granted: [] })
}
