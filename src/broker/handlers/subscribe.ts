import type { ISubscribePacket } from 'mqtt-packet'
import type { Connection } from '../connection.js'
import { ProtocolError } from '../protocol-error.js'
import { isValidTopicFilter } from '../topics.js'
import type { QoS } from '../types.js'
import { isValidMqttString } from '../utf8.js'
import { assertPacketId, assertWholePacketRead } from './wire.js'

/** SUBACK return code for a refused filter [MQTT-3.9.3-2]. */
const FAILURE = 0x80

/**
 * SUBSCRIBE: validate every filter, then grant each one (or refuse it with 0x80), answer one
 * SUBACK with a code per filter in order [MQTT-3.8.4-4] [MQTT-3.9.3-1], then send the retained
 * messages matching the new subscriptions [MQTT-3.3.1-6].
 */
export async function handleSubscribe(conn: Connection, packet: ISubscribePacket, raw: Buffer): Promise<void> {
  const id = assertPacketId(packet)
  // At least one filter [MQTT-3.8.3-3]; mqtt-packet leaves trailing bytes unread otherwise.
  if (packet.subscriptions.length === 0) throw new ProtocolError('SUBSCRIBE without filters', 0x81, 'MQTT-3.8.3-3')
  assertWholePacketRead(conn, packet, raw)
  for (const { topic } of packet.subscriptions) {
    if (!isValidMqttString(topic, raw)) throw new ProtocolError('topic filter is not valid UTF-8', 0x81, 'MQTT-1.5.3-1')
    // Wildcard placement [MQTT-4.7.1-2] [MQTT-4.7.1-3] and non-empty filters [MQTT-4.7.3-1];
    // Mosquitto closes the connection here too, rather than answering 0x80.
    if (!isValidTopicFilter(topic)) throw new ProtocolError(`invalid topic filter ${JSON.stringify(topic)}`, 0x8f, 'MQTT-4.7.1-2')
  }
  const session = conn.session
  if (session === undefined) throw new ProtocolError('SUBSCRIBE without a session')

  const broker = conn.broker
  const granted: number[] = []
  const added: Array<{ filter: string; qos: QoS }> = []
  for (const { topic, qos } of packet.subscriptions) {
    if (!(await broker.authorizeSubscribe(conn, topic))) {
      conn.log.info({ filter: topic }, 'subscription refused')
      granted.push(FAILURE)
      continue
    }
    broker.subscribe(session, topic, qos)
    granted.push(qos)
    added.push({ filter: topic, qos })
  }
  if (conn.isClosed()) return
  conn.write({ cmd: 'suback', messageId: id, granted })
  // Retained messages go out after the SUBACK, flagged retain [MQTT-3.3.1-8], even when the
  // subscription replaced an identical one [MQTT-3.8.4-3].
  await broker.sendRetained(session, added)
}
