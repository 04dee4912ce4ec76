import type { Connection } from '../connection.js'
import { mountFilter } from '../mount.js'
import { ProtocolError, ReasonCode } from '../protocol-error.js'
import { isMalformedSharedFilter, isValidTopicFilter, parseSharedFilter } from '../topics.js'
import { isValidMqttString } from '../utf8.js'
import type { Unsubscribe5 } from '../v5/decode.js'
import { assertPacketId, assertWholePacketRead } from './wire.js'

/**
 * UNSUBSCRIBE: remove each filter that exists (exact match, no wildcard matching
 * [MQTT-3.10.4-1]) and answer UNSUBACK even when nothing matched [MQTT-3.10.4-5]; an MQTT 5
 * client gets a code per filter, 0x11 for one it did not have [MQTT-3.11.3-1].
 */
export async function handleUnsubscribe(conn: Connection, packet: Unsubscribe5, raw: Buffer): Promise<void> {
  const v5 = conn.version === 5
  const id = assertPacketId(packet)
  if (!v5) {
    // At least one filter [MQTT-3.10.3-2].
    if (packet.unsubscriptions.length === 0) throw new ProtocolError('UNSUBSCRIBE without filters', 0x81, 'MQTT-3.10.3-2')
    assertWholePacketRead(conn, packet, raw)
  }
  for (const filter of packet.unsubscriptions) {
    if (!v5 && !isValidMqttString(filter, raw)) throw new ProtocolError('topic filter is not valid UTF-8', 0x81, 'MQTT-1.5.3-1')
    if (isMalformedSharedFilter(filter)) throw new ProtocolError(`malformed shared subscription ${JSON.stringify(filter)}`, 0x82, 'MQTT-4.8.2-2')
    const plain = parseSharedFilter(filter)?.filter ?? filter
    if (!isValidTopicFilter(plain)) throw new ProtocolError(`invalid topic filter ${JSON.stringify(filter)}`, v5 ? 0x81 : 0x8f, 'MQTT-4.7.1-2')
  }
  const session = conn.session
  if (session === undefined) throw new ProtocolError('UNSUBSCRIBE without a session')
  const codes = packet.unsubscriptions.map((filter) => (conn.broker.unsubscribe(session, mountFilter(conn.mount, filter)) ? ReasonCode.Success : ReasonCode.NoSubscriptionExisted))
  // Gone from disk before the UNSUBACK says so [MQTT-3.10.4-2].
  await conn.broker.persistSession(session)
  if (conn.isClosed()) return
  conn.write({ cmd: 'unsuback', messageId: id, granted: v5 ? codes : [] })
}
