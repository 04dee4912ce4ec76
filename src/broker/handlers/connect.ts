import { randomUUID } from 'node:crypto'
import type { IConnackPacket } from 'mqtt-packet'
import { NEVER } from '../broker.js'
import { checkTopicLimits } from '../client-limits.js'
import type { Connection } from '../connection.js'
import { mountTopic } from '../mount.js'
import { ProtocolError } from '../protocol-error.js'
import { isValidTopicName } from '../topics.js'
import type { MessageProperties, QoS } from '../types.js'
import { isValidMqttString } from '../utf8.js'
import type { Connect5 } from '../v5/decode.js'
import { NO_PROPERTIES, type Properties } from '../v5/properties.js'
import type { Will } from '../wills.js'
import { startEnhancedAuth } from './auth.js'
import { assertWholePacketRead } from './wire.js'

/** Why a CONNECT is refused, with the code each protocol family uses for it (sections 3.2.2.3 and 3.2.2.2). */
const REFUSALS = {
  identifierRejected: [0x02, 0x85],
  badCredentials: [0x04, 0x86],
  notAuthorized: [0x05, 0x87],
  badAuthMethod: [0x05, 0x8c],
  qosNotSupported: [0x05, 0x9b],
  retainNotSupported: [0x05, 0x9a],
} as const

export type Refusal = keyof typeof REFUSALS

/** What CONNECT decided before authentication finished; the CONNACK needs it afterwards. */
export interface PendingConnect {
  readonly packet: Connect5
  readonly clientId: string
  readonly assigned: boolean
  readonly serverKeepAlive: number | undefined
  /** Set while an MQTT 5 enhanced authentication exchange is under way (section 4.12). */
  authMethod?: string
  /** The username authentication settled on (a certificate identity replaces the packet's). */
  username?: string | undefined
}

/**
 * CONNECT, in the order of section 3.1.4: validate the packet, check the client id and keepalive,
 * authenticate, take over any existing connection with the same id, set up or resume the session,
 * CONNACK, then resend what the session left unacknowledged.
 */
export async function handleConnect(conn: Connection, packet: Connect5, raw: Buffer): Promise<void> {
  conn.state = 'connecting'
  const broker = conn.broker
  const v5 = conn.version === 5
  const props: Properties = packet.props ?? {}
  let clientId = packet.clientId
  const clean = packet.clean !== false
  let assigned = false
  if (clientId.length === 0) {
    // A zero-length id is allowed only with clean session in 3.1.1 [MQTT-3.1.3-7] [MQTT-3.1.3-8];
    // 3.1 required 1 to 23 characters. Checked first: mqtt-packet cannot re-encode such a CONNECT.
    // MQTT 5 allows it either way, and the CONNACK names the id we assign [MQTT-3.1.3-6] [MQTT-3.2.2-16].
    if (!v5 && (!clean || conn.version === 3)) return refuse(conn, 'identifierRejected', 'empty client id needs clean session')
    clientId = `auto-${randomUUID()}`
    assigned = true
  }
  if (v5) conn.applyClientProperties(props)
  else validate(conn, packet, raw)
  const will = packet.will
  if (will !== undefined) {
    if (!isValidTopicName(will.topic)) throw new ProtocolError('invalid will topic', v5 ? 0x90 : 0x81, 'MQTT-3.1.3-11')
    checkTopicLimits(broker.config, will.topic, 'topic')
    // From here on the will topic is the broker's: the ACL check and the will itself use it.
    will.topic = mountTopic(conn.mount, will.topic)
  }
  conn.clientId = clientId
  conn.log = conn.log.child({ clientId, remote: conn.remote })

  let keepalive = packet.keepalive ?? 0
  let serverKeepAlive: number | undefined
  const maxKeepalive = broker.config.maxKeepalive
  // Keepalive 0 (never time out) counts as above the cap only when the operator lowered it from
  // the default 65535: otherwise every client that disables keepalive would be refused.
  const capped = maxKeepalive > 0 && maxKeepalive < 65535
  if ((maxKeepalive > 0 && keepalive > maxKeepalive) || (capped && keepalive === 0)) {
    // A 3.x client cannot be told another keepalive, so it is refused, as Mosquitto does; an
    // MQTT 5 client is told the one to use in Server Keep Alive [MQTT-3.2.2-21].
    if (!v5) return refuse(conn, 'identifierRejected', `keepalive ${keepalive} outside max_keepalive ${maxKeepalive}`)
    keepalive = maxKeepalive
    serverKeepAlive = maxKeepalive
  }
  conn.keepalive = keepalive
  if (v5 && will !== undefined) {
    // A will the server could not publish is refused up front [MQTT-3.2.2-12] [MQTT-3.2.2-13].
    if ((will.qos ?? 0) > broker.config.maxQos) return refuse(conn, 'qosNotSupported', `will QoS ${will.qos ?? 0} above max_qos ${broker.config.maxQos}`)
    if (will.retain === true && !broker.config.retainAvailable) return refuse(conn, 'retainNotSupported', 'retained will, but retain_available is false')
  }

  const pending: PendingConnect = { packet, clientId, assigned, serverKeepAlive }
  if (props.authenticationMethod !== undefined) {
    await startEnhancedAuth(conn, pending, props.authenticationMethod, props.authenticationData)
    return
  }
  const { verdict, username } = await broker.authenticate({ clientId, username: packet.username, password: packet.password, remote: conn.remote }, conn.meta)
  if (conn.isClosed()) return
  const address = conn.meta.remoteAddress ?? conn.remote
  if (verdict !== 'ok') {
    const { delayMs, log, unlogged } = broker.loginThrottle.failed(address)
    if (log) conn.log.warn({ clientId, remote: conn.remote, username: packet.username, listener: conn.meta.listener, verdict, ...(unlogged > 0 ? { unloggedSince: unlogged } : {}) }, 'login failed')
    // Answering later makes guessing slow from one address without holding anything but a timer.
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs).unref())
    if (conn.isClosed()) return
    return refuse(conn, verdict === 'bad-credentials' ? 'badCredentials' : 'notAuthorized', `authentication: ${verdict}`)
  }
  broker.loginThrottle.succeeded(address)
  // A will this client may not publish is dropped here rather than refused at its time.
  if (packet.will !== undefined && !broker.allows(conn.meta, 'write', clientId, username, packet.will.topic)) {
    conn.log.info({ clientId, topic: packet.will.topic }, 'the ACL does not let this client publish its will; it is dropped')
    packet.will = undefined
  }
  await completeConnect(conn, { ...pending, username }, {})
}

/** Authentication passed: open the session and answer CONNACK with the server's limits. */
export async function completeConnect(conn: Connection, pending: PendingConnect, auth: { method?: string; data?: Buffer }): Promise<void> {
  const broker = conn.broker
  const { packet, clientId } = pending
  const v5 = conn.version === 5
  const props = packet.props ?? {}
  const clean = packet.clean !== false
  conn.username = pending.username ?? packet.username
  conn.will = willOf(packet, clientId)
  const requested = v5 ? (props.sessionExpiryInterval ?? 0) : clean ? 0 : NEVER
  const expiry = broker.grantedExpiry(requested)
  const { session, present } = broker.openSession(conn, clientId, clean, expiry)
  conn.session = session
  const security = conn.meta.security
  const username = conn.username
  // Deliveries (live and retained) are checked against this client's ACL, also while it is offline.
  session.canRead = security?.hasAcl === true ? (topic) => security.allows('read', clientId, username, topic) : undefined
  // A persistent session (and any will) is on disk before the CONNACK says it exists, so a crash
  // right after cannot take back what the client was told (its incoming QoS 2 messages hang on it
  // too, and its will must still go out).
  await Promise.all([broker.persistSession(session), conn.will === undefined ? undefined : broker.armWill(conn, conn.will)])
  if (conn.isClosed()) return
  conn.state = 'open'
  // Session Present is 0 for a clean session [MQTT-3.2.2-1], else whether one was resumed
  // [MQTT-3.2.2-2]. MQTT 3.1 has no such flag: that byte is reserved and stays 0.
  if (v5) {
    const sent = conn.write({ cmd: 'connack', reasonCode: 0, sessionPresent: present, properties: connackProperties(conn, pending, requested, expiry, auth) })
    if (!sent) {
      conn.log.info({ maximumPacketSize: conn.maxPacketSize }, 'CONNACK is larger than the client accepts, closing')
      conn.close('CONNACK larger than the client\'s Maximum Packet Size', false)
      return
    }
  } else {
    conn.write({ cmd: 'connack', returnCode: 0, sessionPresent: present && conn.version >= 4 })
  }
  conn.log.info(
    { protocolVersion: conn.version, clean, keepalive: conn.keepalive, username: packet.username, sessionPresent: present, sessionExpiry: v5 ? expiry : undefined },
    'client connected',
  )
  session.attach(conn)
}

/** The server's limits, told to an MQTT 5 client (section 3.2.2.3); defaults are left out. */
function connackProperties(
  conn: Connection,
  pending: PendingConnect,
  requested: number,
  granted: number,
  auth: { method?: string; data?: Buffer },
): NonNullable<IConnackPacket['properties']> {
  const c = conn.broker.config
  const p: NonNullable<IConnackPacket['properties']> = {}
  if (c.receiveMaximum < 65535) p.receiveMaximum = c.receiveMaximum
  if (c.topicAliasMaximum > 0) p.topicAliasMaximum = c.topicAliasMaximum
  if (c.maxQos < 2) p.maximumQoS = c.maxQos
  if (!c.retainAvailable) p.retainAvailable = false
  if (c.maxPacketSize > 0) p.maximumPacketSize = c.maxPacketSize
  if (!c.wildcardSubscriptions) p.wildcardSubscriptionAvailable = false
  if (!c.subscriptionIdentifiers) p.subscriptionIdentifiersAvailable = false
  if (!c.sharedSubscriptions) p.sharedSubscriptionAvailable = false
  if (pending.serverKeepAlive !== undefined) p.serverKeepAlive = pending.serverKeepAlive
  if (pending.assigned) p.assignedClientIdentifier = pending.clientId
  // A shorter expiry than asked is told to the client (section 3.2.2.3.2).
  if (granted !== requested) p.sessionExpiryInterval = granted
  const props = pending.packet.props ?? {}
  if (props.requestResponseInformation === 1 && c.responseInformation !== '') p.responseInformation = `${c.responseInformation}${pending.clientId}`
  if (auth.method !== undefined) p.authenticationMethod = auth.method
  if (auth.data !== undefined) p.authenticationData = auth.data
  return p
}

function validate(conn: Connection, packet: Connect5, raw: Buffer): void {
  // Password only with a user name in 3.1.1 [MQTT-3.1.2-22].
  if (conn.version === 4 && packet.password !== undefined && packet.username === undefined) {
    throw new ProtocolError('password flag set without user name flag', 0x81, 'MQTT-3.1.2-22')
  }
  // Every byte belongs to a field the flags announce [MQTT-3.1.2-18] [MQTT-3.1.2-20].
  assertWholePacketRead(conn, packet, raw)
  const strings = [packet.clientId, packet.username, packet.will?.topic]
  for (const s of strings) {
    if (s !== undefined && !isValidMqttString(s, raw)) {
      throw new ProtocolError('CONNECT string is not valid UTF-8', 0x81, 'MQTT-1.5.3-1')
    }
  }
  // Will QoS 3 is malformed [MQTT-3.1.2-14].
  if ((packet.will?.qos ?? 0) > 2) throw new ProtocolError('will QoS 3', 0x81, 'MQTT-3.1.2-14')
}

function willOf(packet: Connect5, clientId: string): Will | undefined {
  const will = packet.will
  if (will === undefined) return undefined
  const payload = typeof will.payload === 'string' ? Buffer.from(will.payload) : will.payload
  const wp = packet.willProps ?? {}
  const properties = messageProperties(wp)
  const message = { topic: will.topic, payload, qos: (will.qos ?? 0) as QoS, retain: will.retain === true, origin: clientId, ...(properties === undefined ? {} : { properties }) }
  return { message, delay: wp.willDelayInterval ?? 0, expiryInterval: wp.messageExpiryInterval }
}

/** The properties a message carries on to its subscribers, or undefined when there are none. */
export function messageProperties(p: Properties): MessageProperties | undefined {
  if (p === NO_PROPERTIES) return undefined
  const { payloadFormatIndicator, contentType, responseTopic, correlationData, userProperties } = p
  if (payloadFormatIndicator === undefined && contentType === undefined && responseTopic === undefined && correlationData === undefined && userProperties === undefined) {
    return undefined
  }
  const out: { -readonly [K in keyof MessageProperties]: MessageProperties[K] } = {}
  if (payloadFormatIndicator !== undefined) out.payloadFormatIndicator = payloadFormatIndicator
  if (contentType !== undefined) out.contentType = contentType
  if (responseTopic !== undefined) out.responseTopic = responseTopic
  if (correlationData !== undefined) out.correlationData = correlationData
  if (userProperties !== undefined) out.userProperties = userProperties
  return out
}

/** CONNACK with a refusal code, then close without a will [MQTT-3.2.2-5]. */
export function refuse(conn: Connection, why: Refusal, reason: string): void {
  const [v3, v5] = REFUSALS[why]
  if (conn.version === 5) {
    const properties = conn.broker.config.reasonStrings ? { reasonString: reason } : undefined
    conn.write({ cmd: 'connack', reasonCode: v5, sessionPresent: false, properties })
  } else {
    conn.write({ cmd: 'connack', returnCode: v3, sessionPresent: false })
  }
  conn.log.info({ ...conn.logContext(), protocolVersion: conn.version, returnCode: conn.version === 5 ? v5 : v3, reason }, 'connection refused')
  conn.close(`refused: ${reason}`, false)
}
