import { randomUUID } from 'node:crypto'
import type { IConnectPacket } from 'mqtt-packet'
import type { Connection } from '../connection.js'
import { ProtocolError } from '../protocol-error.js'
import { isValidTopicName } from '../topics.js'
import type { Message, QoS } from '../types.js'
import { isValidMqttString } from '../utf8.js'
import { assertWholePacketRead } from './wire.js'

/** CONNACK return codes of MQTT 3.1 / 3.1.1 (section 3.2.2.3). */
const RC = { identifierRejected: 0x02, badUsernameOrPassword: 0x04, notAuthorized: 0x05 } as const

/**
 * CONNECT, in the order of section 3.1.4: validate the packet, check the client id, authenticate,
 * take over any existing connection with the same id, set up or resume the session, CONNACK,
 * then resend what the session left unacknowledged.
 */
export async function handleConnect(conn: Connection, packet: IConnectPacket, raw: Buffer): Promise<void> {
  conn.state = 'connecting'
  const broker = conn.broker
  let clientId = packet.clientId
  const clean = packet.clean !== false
  if (clientId.length === 0) {
    // A zero-length id is allowed only with clean session in 3.1.1 [MQTT-3.1.3-7] [MQTT-3.1.3-8];
    // 3.1 required 1 to 23 characters. Checked first: mqtt-packet cannot re-encode such a CONNECT.
    if (!clean || conn.version === 3) return refuse(conn, RC.identifierRejected, 'empty client id needs clean session')
    clientId = `auto-${randomUUID()}`
  }
  validate(conn, packet, raw)
  conn.clientId = clientId
  conn.log = conn.log.child({ clientId, remote: conn.remote })

  const keepalive = packet.keepalive ?? 0
  const maxKeepalive = broker.config.maxKeepalive
  // A 3.x client cannot be told another keepalive, so one above the cap is refused, as Mosquitto
  // does. Keepalive 0 (never time out) counts as above the cap only when the operator lowered it
  // from the default 65535: otherwise every client that disables keepalive would be refused.
  const capped = maxKeepalive > 0 && maxKeepalive < 65535
  if ((maxKeepalive > 0 && keepalive > maxKeepalive) || (capped && keepalive === 0)) {
    return refuse(conn, RC.identifierRejected, `keepalive ${keepalive} outside max_keepalive ${maxKeepalive}`)
  }

  const verdict = await broker.authenticate({
    clientId,
    username: packet.username,
    password: packet.password,
    remote: conn.remote,
  })
  if (conn.isClosed()) return
  if (verdict !== 'ok') {
    return refuse(conn, verdict === 'bad-credentials' ? RC.badUsernameOrPassword : RC.notAuthorized, `authentication: ${verdict}`)
  }

  conn.username = packet.username
  conn.keepalive = keepalive
  conn.will = willOf(packet, clientId)
  const { session, present } = broker.openSession(conn, clientId, clean)
  conn.session = session
  conn.state = 'open'
  // Session Present is 0 for a clean session [MQTT-3.2.2-1], else whether one was resumed
  // [MQTT-3.2.2-2]. MQTT 3.1 has no such flag: that byte is reserved and stays 0.
  conn.write({ cmd: 'connack', returnCode: 0, sessionPresent: present && conn.version >= 4 })
  conn.log.info(
    { protocolVersion: conn.version, clean, keepalive, username: packet.username, sessionPresent: present },
    'client connected',
  )
  session.attach(conn)
}

function validate(conn: Connection, packet: IConnectPacket, raw: Buffer): void {
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
  const will = packet.will
  if (will !== undefined) {
    // Will QoS 3 is malformed [MQTT-3.1.2-14]; the will topic is a topic name [MQTT-3.1.3-10].
    if ((will.qos ?? 0) > 2) throw new ProtocolError('will QoS 3', 0x81, 'MQTT-3.1.2-14')
    if (!isValidTopicName(will.topic)) throw new ProtocolError('invalid will topic', 0x81, 'MQTT-3.1.3-10')
  }
}

function willOf(packet: IConnectPacket, clientId: string): Message | undefined {
  const will = packet.will
  if (will === undefined) return undefined
  const payload = typeof will.payload === 'string' ? Buffer.from(will.payload) : will.payload
  return { topic: will.topic, payload, qos: (will.qos ?? 0) as QoS, retain: will.retain === true, origin: clientId }
}

/** CONNACK with a refusal code, then close without a will [MQTT-3.2.2-5]. */
function refuse(conn: Connection, returnCode: number, reason: string): void {
  conn.write({ cmd: 'connack', returnCode, sessionPresent: false })
  conn.log.info({ ...conn.logContext(), protocolVersion: conn.version, returnCode, reason }, 'connection refused')
  conn.close(`refused: ${reason}`, false)
}
