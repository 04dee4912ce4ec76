import type { IPubackPacket, IPubcompPacket, IPubrecPacket } from 'mqtt-packet'
import type { Connection } from '../connection.js'
import { ProtocolError } from '../protocol-error.js'
import type { AckResult, Session } from '../session.js'
import { assertPacketId } from './wire.js'

type Ack = IPubackPacket | IPubrecPacket | IPubcompPacket

/** Shared checks (the decoders checked the length): non-zero id, an open session. */
function begin(conn: Connection, packet: Ack): { id: number; session: Session } {
  const id = assertPacketId(packet)
  const session = conn.session
  if (session === undefined) throw new ProtocolError(`${packet.cmd} without a session`)
  return { id, session }
}

function check(result: AckResult, packet: Ack, id: number): void {
  // An ack of the wrong kind for a message in flight breaks the QoS flow [MQTT-4.3.2], [MQTT-4.3.3].
  if (result === 'mismatch') throw new ProtocolError(`${packet.cmd} for packet ${id} does not match its QoS flow`, 0x82, 'MQTT-4.3')
}

/** PUBACK ends a QoS 1 delivery [MQTT-4.3.2-2]; an unknown id is ignored. */
export function handlePuback(conn: Connection, packet: IPubackPacket): void {
  const { id, session } = begin(conn, packet)
  check(session.puback(id), packet, id)
}

/**
 * PUBREC: answer PUBREL [MQTT-4.3.3-1], also for an id we no longer hold, so the client can finish.
 * An MQTT 5 PUBREC with a failure code (0x80 and up) ends the exchange there (section 4.3.3).
 */
export function handlePubrec(conn: Connection, packet: IPubrecPacket): void {
  const { id, session } = begin(conn, packet)
  if ((packet.reasonCode ?? 0) >= 0x80) {
    check(session.pubrecFailed(id), packet, id)
    return
  }
  check(session.pubrec(id, () => conn.sendPubrel(id)), packet, id)
}

/** PUBCOMP ends a QoS 2 delivery; an unknown id is ignored. */
export function handlePubcomp(conn: Connection, packet: IPubcompPacket): void {
  const { id, session } = begin(conn, packet)
  check(session.pubcomp(id), packet, id)
}
