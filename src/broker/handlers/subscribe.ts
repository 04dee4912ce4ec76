import { checkSubscriptionCount, checkTopicLimits } from '../client-limits.js'
import type { Connection } from '../connection.js'
import { mountFilter } from '../mount.js'
import { ProtocolError, ReasonCode } from '../protocol-error.js'
import type { SubscriptionOptions } from '../subscription-tree.js'
import { isMalformedSharedFilter, isValidTopicFilter, parseSharedFilter } from '../topics.js'
import type { QoS } from '../types.js'
import { isValidMqttString } from '../utf8.js'
import type { Subscribe5 } from '../v5/decode.js'
import { assertPacketId, assertWholePacketRead } from './wire.js'

/** SUBACK return code for a refused filter in 3.1.1 [MQTT-3.9.3-2]. */
const FAILURE = 0x80

/**
 * SUBSCRIBE: validate every filter, then grant each one (or refuse it), answer one SUBACK with a
 * code per filter in order [MQTT-3.8.4-4] [MQTT-3.9.3-1], then send the retained messages
 * matching the new subscriptions [MQTT-3.3.1-6].
 */
export async function handleSubscribe(conn: Connection, packet: Subscribe5, raw: Buffer): Promise<void> {
  const v5 = conn.version === 5
  const id = assertPacketId(packet)
  if (!v5) {
    // At least one filter [MQTT-3.8.3-3]; mqtt-packet leaves trailing bytes unread otherwise.
    if (packet.subscriptions.length === 0) throw new ProtocolError('SUBSCRIBE without filters', 0x81, 'MQTT-3.8.3-3')
    assertWholePacketRead(conn, packet, raw)
  }
  for (const { topic, nl } of packet.subscriptions) {
    if (!v5 && !isValidMqttString(topic, raw)) throw new ProtocolError('topic filter is not valid UTF-8', 0x81, 'MQTT-1.5.3-1')
    // `$share/{group}/{filter}` with a group name and a filter (section 4.8.2), and No Local is
    // not allowed on it [MQTT-3.8.3-4].
    if (isMalformedSharedFilter(topic)) throw new ProtocolError(`malformed shared subscription ${JSON.stringify(topic)}`, 0x82, 'MQTT-4.8.2-2')
    const shared = parseSharedFilter(topic)
    if (shared !== undefined && nl === true) throw new ProtocolError('No Local on a shared subscription', 0x82, 'MQTT-3.8.3-4')
    // Wildcard placement [MQTT-4.7.1-2] [MQTT-4.7.1-3] and non-empty filters [MQTT-4.7.3-1];
    // Mosquitto closes the connection here too, rather than answering 0x80 / 0x8F.
    if (!isValidTopicFilter(shared?.filter ?? topic)) throw new ProtocolError(`invalid topic filter ${JSON.stringify(topic)}`, v5 ? 0x81 : 0x8f, 'MQTT-4.7.1-2')
    checkTopicLimits(conn.broker.config, shared?.filter ?? topic, 'filter')
  }
  const subscriptionId = packet.props?.subscriptionIdentifier
  const config = conn.broker.config
  if (subscriptionId !== undefined && !config.subscriptionIdentifiers) {
    throw new ProtocolError('Subscription Identifier, but Subscription Identifier Available is 0', ReasonCode.SubscriptionIdentifiersNotSupported)
  }
  const session = conn.session
  if (session === undefined) throw new ProtocolError('SUBSCRIBE without a session')

  const broker = conn.broker
  // The broker's filters: under the listener's mount point, if it has one.
  const filters = packet.subscriptions.map(({ topic }) => mountFilter(conn.mount, topic))
  if (config.maxSubscriptions > 0) {
    // Counted before anything changes, so a refused SUBSCRIBE leaves the session as it was.
    const adding = new Set(filters.filter((f) => !session.subscriptions.has(f))).size
    checkSubscriptionCount(config, session.subscriptions.size, adding)
  }
  const granted: number[] = []
  const added: Array<{ filter: string; options: SubscriptionOptions; isNew: boolean }> = []
  for (const [i, { qos, nl, rap, rh }] of packet.subscriptions.entries()) {
    const topic = filters[i] as string
    const refusal = await refusalOf(conn, topic)
    if (refusal !== undefined) {
      conn.log.info({ filter: topic, reasonCode: refusal }, 'subscription refused')
      granted.push(v5 ? refusal : FAILURE)
      continue
    }
    // Granted at most at the server's Maximum QoS (section 3.2.2.3.4).
    const grantedQos = (qos > config.maxQos ? config.maxQos : qos) as QoS
    const options: SubscriptionOptions = v5
      ? { qos: grantedQos, noLocal: nl === true, retainAsPublished: rap === true, retainHandling: (rh ?? 0) as 0 | 1 | 2, ...(subscriptionId === undefined ? {} : { subscriptionId }) }
      : { qos: grantedQos }
    const isNew = broker.subscribe(session, topic, options)
    granted.push(grantedQos)
    added.push({ filter: topic, options, isNew })
  }
  // The subscriptions are on disk before the SUBACK says they exist.
  await broker.persistSession(session)
  if (conn.isClosed()) return
  conn.write({ cmd: 'suback', messageId: id, granted })
  // Retained messages go out after the SUBACK, flagged retain [MQTT-3.3.1-8], even when the
  // subscription replaced an identical one [MQTT-3.8.4-3] (unless Retain Handling says otherwise).
  await broker.sendRetained(session, added)
}

/** The reason code refusing one filter (MQTT 5 codes; a 3.1.1 client gets 0x80), or undefined. */
async function refusalOf(conn: Connection, filter: string): Promise<number | undefined> {
  const config = conn.broker.config
  const shared = parseSharedFilter(filter)
  if (shared !== undefined && !config.sharedSubscriptions) return ReasonCode.SharedSubscriptionsNotSupported
  const plain = shared?.filter ?? filter
  if (!config.wildcardSubscriptions && (plain.includes('+') || plain.includes('#'))) return ReasonCode.WildcardSubscriptionsNotSupported
  if (!(await conn.broker.authorizeSubscribe(conn, filter))) return ReasonCode.NotAuthorized
  return undefined
}
