import { isUtf8 } from 'node:buffer'
import { checkTopicLimits } from '../client-limits.js'
import type { Connection } from '../connection.js'
import { mountTopic } from '../mount.js'
import { ProtocolError, ReasonCode } from '../protocol-error.js'
import { isValidTopicName } from '../topics.js'
import type { Message } from '../types.js'
import type { Publish5 } from '../v5/decode.js'
import { messageProperties } from './connect.js'
import { assertPacketId } from './wire.js'

/**
 * PUBLISH from a client: validate, then route (QoS 0/1) or hold until PUBREL (QoS 2), and
 * acknowledge. Messages refused by policy (size, `$SYS`) are acknowledged and dropped, as
 * Mosquitto does, so the client does not retry them forever; an MQTT 5 client learns why
 * from the reason code.
 */
export function handlePublish(conn: Connection, packet: Publish5): void {
  const { qos } = packet
  const v5 = conn.version === 5
  const props = packet.props ?? {}
  let topic = packet.topic
  if (v5) {
    topic = (conn.inAliases as NonNullable<Connection['inAliases']>).resolve(topic, props.topicAlias)
    // Wildcards are not allowed in a topic name [MQTT-3.3.2-2]; Mosquitto's vectors want 0x81.
    if (!isValidTopicName(topic)) throw new ProtocolError(`invalid topic name ${JSON.stringify(topic)}`, 0x81, 'MQTT-3.3.2-2')
    // The Response Topic is a topic name too [MQTT-3.3.2-14].
    if (props.responseTopic !== undefined && !isValidTopicName(props.responseTopic)) {
      throw new ProtocolError('Response Topic is not a valid topic name', 0x82, 'MQTT-3.3.2-14')
    }
    checkServerLimits(conn, packet)
  } else {
    // The decoder checked the topic is well-formed UTF-8 without U+0000 [MQTT-1.5.3-1] [MQTT-1.5.3-2].
    // Non-empty [MQTT-4.7.3-1] and without wildcards [MQTT-3.3.2-2].
    if (!isValidTopicName(topic)) throw new ProtocolError(`invalid topic name ${JSON.stringify(topic)}`, 0x90, 'MQTT-3.3.2-2')
    // DUP must be 0 for QoS 0 [MQTT-3.3.1-2].
    if (qos === 0 && packet.dup) throw new ProtocolError('DUP set on a QoS 0 PUBLISH', 0x81, 'MQTT-3.3.1-2')
  }
  const id = qos > 0 ? assertPacketId(packet) : 0
  const session = conn.session
  if (session === undefined) throw new ProtocolError('PUBLISH without a session')

  const broker = conn.broker
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
  // The operator's per-client limits, on the topic as the client wrote it; over one, nothing of
  // this PUBLISH is taken on (no ack) and the client is closed.
  checkTopicLimits(broker.config, topic, 'topic')
  conn.publishRate?.take(payload.length)
  topic = mountTopic(conn.mount, topic)
  broker.stats.publishReceived++
  const refusal = refusalOf(conn, topic, payload, props.payloadFormatIndicator)
  if (refusal !== undefined) {
    if (qos > 0) conn.ack(qos === 1 ? 0x40 : 0x50, id, refusal.code, refusal.reason)
    return
  }
  if (!broker.allows(conn.meta, 'write', conn.clientId, conn.username, topic)) {
    // The ACL says no: a 3.1.1 client cannot be told, so it is acknowledged and dropped (as
    // Mosquitto does) and counted; an MQTT 5 client gets 0x87 Not authorized.
    broker.stats.publishDenied++
    if (qos > 0) conn.ack(qos === 1 ? 0x40 : 0x50, id, ReasonCode.NotAuthorized, `not authorized to publish to ${topic}`)
    return
  }

  const expiry = props.messageExpiryInterval
  const properties = v5 ? messageProperties(props) : undefined
  // Every message has the same fields, present or undefined, so V8 sees one object shape on the hot path.
  const message: Message = {
    topic,
    payload,
    qos,
    retain: packet.retain,
    origin: conn.clientId,
    properties,
    // An interval of 0 is taken as none, as Mosquitto does.
    expiresAt: expiry === undefined || expiry === 0 ? undefined : Date.now() + expiry * 1000,
    receivedAt: Date.now(),
  }
  if (qos === 2) {
    // Held until PUBREL; a retransmission with the same id is acknowledged again but published
    // only once [MQTT-4.3.3-2]. A persistent session keeps it on disk first, so exactly-once
    // holds across a restart.
    if (session.incomingQos2.has(id)) {
      conn.ack(0x50, id)
      return
    }
    if (broker.wouldReject(message)) {
      // queue_full_policy reject_new: refused before it is taken on (v5 0x97; a v3 client sees a plain PUBREC).
      conn.ack(0x50, id, ReasonCode.QuotaExceeded, 'a subscriber queue is full')
      return
    }
    const maxAwaiting = broker.config.maxAwaitingRel
    if (maxAwaiting > 0 && session.incomingQos2.size >= maxAwaiting) {
      // Not taken on, and not acknowledged: the client keeps it and may send it again later.
      broker.stats.publishDropped++
      session.droppedCount++
      if (!session.awaitingRelFull) conn.log.warn({ maxAwaitingRel: maxAwaiting }, 'client has too many QoS 2 messages awaiting PUBREL, refusing new ones until it releases some')
      session.awaitingRelFull = true
      if (v5) conn.ack(0x50, id, ReasonCode.QuotaExceeded, 'too many QoS 2 messages awaiting PUBREL')
      return
    }
    session.incomingQos2.set(id, message)
    session.incomingAt.set(id, Date.now())
    if (session.clean) {
      conn.ack(0x50, id)
      return
    }
    broker.store.write([{ op: 'put-incoming', record: { clientId: conn.clientId, packetId: id, message } }]).then(
      () => conn.ack(0x50, id),
      (err: unknown) => conn.log.error({ err, packetId: id }, 'failed to store an incoming QoS 2 message; not acknowledged'),
    )
    return
  }
  const routed = broker.publish(message, conn)
  if (qos === 0) return
  // PUBACK once the message is routed [MQTT-4.3.2-2] and on disk; MQTT 5 says when nobody got it (0x10).
  // Acks leave in the order of the PUBLISHes [MQTT-4.6.0-2]: the store resolves writes in order.
  routed.then(
    ({ matched, rejected }) => conn.ack(0x40, id, !v5 ? 0 : rejected === true ? ReasonCode.QuotaExceeded : matched ? 0 : ReasonCode.NoMatchingSubscribers, 'a subscriber queue is full'),
    (err: unknown) => conn.log.error({ err, packetId: id }, 'failed to store a QoS 1 message; not acknowledged'),
  )
}

/**
 * Limits an MQTT 5 client was told in CONNACK; breaking one ends the connection with its code:
 * QoS above Maximum QoS [MQTT-3.2.2-11], retain when Retain Available is 0 [MQTT-3.2.2-14], and
 * more unacknowledged QoS 2 messages than our Receive Maximum [MQTT-3.3.4-7].
 */
function checkServerLimits(conn: Connection, packet: Publish5): void {
  const config = conn.broker.config
  if (packet.qos > config.maxQos) throw new ProtocolError(`PUBLISH QoS ${packet.qos} above Maximum QoS ${config.maxQos}`, ReasonCode.QoSNotSupported, 'MQTT-3.2.2-11')
  if (packet.retain && !config.retainAvailable) throw new ProtocolError('retained PUBLISH, but Retain Available is 0', ReasonCode.RetainNotSupported, 'MQTT-3.2.2-14')
  const incoming = conn.session?.incomingQos2
  if (packet.qos === 2 && incoming !== undefined && incoming.size >= config.receiveMaximum && !incoming.has(packet.messageId ?? 0)) {
    throw new ProtocolError(`more than Receive Maximum ${config.receiveMaximum} QoS 2 messages unacknowledged`, ReasonCode.ReceiveMaximumExceeded, 'MQTT-3.3.4-7')
  }
}

/** A message the broker takes but does not route, with the reason code an MQTT 5 client gets. */
function refusalOf(conn: Connection, topic: string, payload: Buffer, payloadFormat: number | undefined): { code: number; reason: string } | undefined {
  const broker = conn.broker
  const limit = broker.config.messageSizeLimit
  if (limit > 0 && payload.length > limit) {
    conn.log.warn({ topic, size: payload.length, limit }, 'dropped PUBLISH larger than message_size_limit')
    broker.stats.publishDropped++
    return { code: ReasonCode.QuotaExceeded, reason: `payload of ${payload.length} bytes exceeds message_size_limit ${limit}` }
  }
  if (topic.startsWith('$SYS')) {
    // $SYS belongs to the broker; a client must not be able to fake its statistics.
    conn.log.debug({ topic }, 'dropped client PUBLISH to $SYS')
    return { code: 0, reason: '' }
  }
  if (payloadFormat === 1 && !isUtf8(payload)) {
    // Marked as UTF-8 but is not (section 3.3.2.3.2): refused with 0x99, as Mosquitto does.
    conn.log.info({ topic }, 'dropped PUBLISH whose payload is marked UTF-8 but is not')
    broker.stats.publishDropped++
    return { code: ReasonCode.PayloadFormatInvalid, reason: 'payload is marked UTF-8 but is not valid UTF-8' }
  }
  return undefined
}
