import type { IPubrelPacket } from 'mqtt-packet'
import type { Connection } from '../connection.js'
import type { StoreOp } from '../../store/types.js'
import { ProtocolError } from '../protocol-error.js'
import { assertPacketId } from './wire.js'

/**
 * PUBREL releases an incoming QoS 2 message: it is published now, once, and the id forgotten
 * [MQTT-4.3.3-2]. PUBCOMP is sent whether or not the id was held, so a retried PUBREL completes.
 */
export function handlePubrel(conn: Connection, packet: IPubrelPacket): void {
  const id = assertPacketId(packet)
  const session = conn.session
  if (session === undefined) throw new ProtocolError('PUBREL without a session')
  const message = session.incomingQos2.get(id)
  if (message === undefined) {
    conn.ack(0x70, id)
    return
  }
  session.incomingQos2.delete(id)
  session.incomingAt.delete(id)
  if (session.awaitingRelFull && session.incomingQos2.size * 2 <= conn.broker.config.maxAwaitingRel) {
    session.awaitingRelFull = false
    conn.log.info('client released QoS 2 messages; new ones are accepted again')
  }
  // Routed, and the held copy removed, in one write; PUBCOMP once that is durable.
  const ops: StoreOp[] = session.clean ? [] : [{ op: 'del-incoming', clientId: conn.clientId, packetId: id }]
  conn.broker.publish(message, conn, ops).then(
    () => conn.ack(0x70, id),
    (err: unknown) => conn.log.error({ err, packetId: id }, 'failed to store a released QoS 2 message; PUBCOMP not sent'),
  )
}
