import type { Connection } from '../connection.js'
import { ProtocolError, ReasonCode } from '../protocol-error.js'
import type { Disconnect5 } from '../v5/decode.js'
import { assertLength } from './wire.js'

/**
 * DISCONNECT: drop the will without publishing it [MQTT-3.14.4-3], unless an MQTT 5 client asks
 * for it with 0x04, and close [MQTT-3.14.4-1]. An MQTT 5 client may change its Session Expiry
 * Interval here, but not from 0 to anything else [MQTT-3.14.2-2].
 */
export function handleDisconnect(conn: Connection, packet: Disconnect5, raw: Buffer): void {
  if (conn.version !== 5) assertLength(packet, raw, 2)
  const expiry = packet.props?.sessionExpiryInterval
  const session = conn.session
  if (expiry !== undefined && session !== undefined) {
    if (conn.connectExpiry === 0 && expiry !== 0) {
      throw new ProtocolError('Session Expiry Interval set at DISCONNECT after 0 in CONNECT', 0x82, 'MQTT-3.14.2-2')
    }
    session.expiryInterval = conn.broker.grantedExpiry(expiry)
    session.clean = expiry === 0
  }
  const withWill = packet.reasonCode === ReasonCode.DisconnectWithWill
  if (!withWill) conn.will = undefined
  conn.close(withWill ? 'client sent DISCONNECT with will' : 'client sent DISCONNECT', withWill)
}
