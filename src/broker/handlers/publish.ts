import type { IPublishPacket } from 'mqtt-packet'
import type { Connection } from '../connection.js'
import { ProtocolError } from '../protocol-error.js'
import { isValidTopicName } from '../topics.js'
import type { Message } from '../types.js'
import { isValidMqttString } from '../utf8.js'
import { assertPacketId } from './wire.js'

/**
 * PUBLISH from a client: validate, then route (QoS 0/1) or hold until PUBREL (QoS 2), and
 * acknowledge. Messages refused by policy (size, `$SYS`) are acknowledged and dropped, as
 * Mosquitto does, so the client does not retry them forever.
 */
export function handlePublish(conn: Connection, packet: IPublishPacket, raw: Buffer): void {
  const { topic, qos } = packet
  // Topic names are well-formed UTF-8 without U+0000 [MQTT-1.5.3-1] [MQTT-1.5.3-2].
  if (!isValidMqttString(topic, raw)) throw new ProtocolError('topic is not valid UTF-8', 0x81, 'MQTT-1.5.3-1')
  // Non-empty [MQTT-4.7.3-1] and without wildcards [MQTT-3.3.2-2].
  if (!isValidTopicName(topic)) throw new ProtocolError(`invalid topic name ${JSON.stringify(topic)}`, 0x90, 'MQTT-3.3.2-2')
  // DUP must be 0 for QoS 0 [MQTT-3.3.1-2].
  if (qos === 0 && packet.dup) throw new ProtocolError('DUP set on a QoS 0 PUBLISH', 0x81, 'MQTT-3.3.1-2')
  const id = qos > 0 ? assertPacketId(packet) : 0
  const session = conn.session
  if (session === undefined) throw new ProtocolError('PUBLISH without a session')

  const broker = conn.broker
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
  let accepted = true
  const limit = broker.config.messageSizeLimit
  if (limit > 0 && payload.length > limit) {
    conn.log.warn({ topic, size: payload.length, limit }, 'dropped PUBLISH larger than message_size_limit')
    broker.stats.publishDropped++
    accepted = false
  } else if (topic.startsWith('$SYS')) {
    // $SYS belongs to the broker; a client must not be able to fake its statistics.
    conn.log.debug({ topic }, 'dropped client PUBLISH to $SYS')
    accepted = false
  }
  broker.stats.publishReceived++

  const message: Message = { topic, payload, qos, retain: packet.retain, origin: conn.clientId }
  if (qos === 2) {
    // Held until PUBREL; a retransmission with the same id is acknowledged again but published
    // only once [MQTT-4.3.3-2].
    if (accepted && !session.incomingQos2.has(id)) session.incomingQos2.set(id, message)
    conn.write({ cmd: 'pubrec', messageId: id })
    return
  }
  if (accepted) broker.publish(message, conn)
  // PUBACK after the message is routed [MQTT-4.3.2-2].
  if (qos === 1) conn.write({ cmd: 'puback', messageId: id })
}
