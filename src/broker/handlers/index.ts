import type { Packet } from 'mqtt-packet'
import type { Connection } from '../connection.js'
import { ProtocolError } from '../protocol-error.js'
import type { Packet5 } from '../v5/decode.js'
import { handleAuth } from './auth.js'
import { handleConnect } from './connect.js'
import { handleDisconnect } from './disconnect.js'
import { handlePingreq } from './pingreq.js'
import { handlePuback, handlePubcomp, handlePubrec } from './acks.js'
import { handlePublish } from './publish.js'
import { handlePubrel } from './pubrel.js'
import { handleSubscribe } from './subscribe.js'
import { handleUnsubscribe } from './unsubscribe.js'

/**
 * Routes one decoded packet to its handler. Handlers throw ProtocolError for violations; the
 * connection turns that into a close. A returned promise holds back the next packet.
 */
export function dispatch(conn: Connection, packet: Packet | Packet5, raw: Buffer): void | Promise<void> {
  if (conn.state === 'new') {
    if (packet.cmd !== 'connect') throw new ProtocolError('first packet is not CONNECT', 0x82, 'MQTT-3.1.0-1')
    return handleConnect(conn, packet, raw)
  }
  if (conn.state === 'connecting') {
    // Only the enhanced authentication exchange may run before CONNACK (section 4.12).
    if (packet.cmd === 'auth') return handleAuth(conn, packet)
    throw new ProtocolError(`${packet.cmd} before authentication finished`, 0x82)
  }
  switch (packet.cmd) {
    case 'publish':
      return handlePublish(conn, packet)
    case 'puback':
      return handlePuback(conn, packet)
    case 'pubrec':
      return handlePubrec(conn, packet)
    case 'pubrel':
      return handlePubrel(conn, packet)
    case 'pubcomp':
      return handlePubcomp(conn, packet)
    case 'subscribe':
      return handleSubscribe(conn, packet, raw)
    case 'unsubscribe':
      return handleUnsubscribe(conn, packet, raw)
    case 'pingreq':
      return handlePingreq(conn, packet, raw)
    case 'disconnect':
      return handleDisconnect(conn, packet, raw)
    case 'auth':
      if (conn.version === 5) return handleAuth(conn, packet)
      throw new ProtocolError('AUTH is not part of MQTT 3.1.1', 0x82, 'MQTT-2.2.1')
    default:
      // CONNACK, SUBACK, UNSUBACK, PINGRESP only flow server to client; AUTH is v5 only. A second
      // CONNECT never gets here: Connection refuses it before decoding [MQTT-3.1.0-2].
      throw new ProtocolError(`${packet.cmd} is not allowed from a client`, 0x82, 'MQTT-2.2.1')
  }
}
