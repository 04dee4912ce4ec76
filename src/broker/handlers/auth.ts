import type { EnhancedAuthExchange } from '../broker.js'
import type { Connection } from '../connection.js'
import { ProtocolError, ReasonCode } from '../protocol-error.js'
import type { Auth5 } from '../v5/decode.js'
import { completeConnect, refuse, type PendingConnect } from './connect.js'

/** An MQTT 5 enhanced authentication in progress or done (section 4.12). */
export interface AuthState {
  readonly method: string
  exchange: EnhancedAuthExchange
  /** The CONNECT waiting for the exchange to succeed; undefined once connected. */
  pending: PendingConnect | undefined
  /** An exchange (at CONNECT or a re-authentication) is waiting for the client's next AUTH. */
  active: boolean
}

const CONTINUE = 0x18
const REAUTHENTICATE = 0x19

/**
 * CONNECT named an Authentication Method: run it if the broker has it (hooks.enhancedAuth), else
 * refuse with 0x8C Bad authentication method [MQTT-4.12.0-1].
 */
export async function startEnhancedAuth(conn: Connection, pending: PendingConnect, method: string, data: Buffer | undefined): Promise<void> {
  const m = conn.broker.hooks.enhancedAuth?.get(method)
  if (m === undefined) return refuse(conn, 'badAuthMethod', `authentication method ${JSON.stringify(method)} is not supported`)
  const { packet, clientId } = pending
  const exchange = m.start({ clientId, username: packet.username, password: packet.password, remote: conn.remote, data })
  conn.auth = { method, exchange, pending, active: true }
  await step(conn, conn.auth, data)
}

/**
 * AUTH from a client: the next step of the exchange CONNECT began, or a re-authentication once
 * connected (0x19) [MQTT-4.12.1-1]. Without an Authentication Method in CONNECT the client may not
 * send AUTH at all [MQTT-4.12.0-7]; the method may not change [MQTT-4.12.1-1].
 */
export async function handleAuth(conn: Connection, packet: Auth5): Promise<void> {
  const auth = conn.auth
  if (auth === undefined) throw new ProtocolError('AUTH without an Authentication Method in CONNECT', 0x82, 'MQTT-4.12.0-7')
  const props = packet.props ?? {}
  if (props.authenticationMethod !== auth.method) throw new ProtocolError('AUTH with a different Authentication Method', 0x82, 'MQTT-4.12.1-1')
  const connecting = auth.pending !== undefined
  if (connecting && packet.reasonCode !== CONTINUE) throw new ProtocolError('AUTH during CONNECT must continue the exchange (0x18)', 0x82)
  if (!connecting && packet.reasonCode === REAUTHENTICATE) {
    const m = conn.broker.hooks.enhancedAuth?.get(auth.method)
    if (m === undefined) throw new ProtocolError('Authentication Method no longer supported', ReasonCode.NotAuthorized)
    auth.exchange = m.start({ clientId: conn.clientId, username: conn.username, password: undefined, remote: conn.remote, data: props.authenticationData })
    auth.active = true
  } else if (packet.reasonCode !== CONTINUE) {
    throw new ProtocolError('AUTH with reason code 0x00 from a client', 0x82)
  } else if (!auth.active) {
    // 0x18 answers a challenge; with no exchange under way there is none to answer (section 4.12).
    throw new ProtocolError('AUTH 0x18 outside an authentication exchange', 0x82)
  }
  await step(conn, auth, props.authenticationData)
}

async function step(conn: Connection, auth: AuthState, data: Buffer | undefined): Promise<void> {
  const outcome = await auth.exchange.step(data)
  if (conn.isClosed()) return
  const pending = auth.pending
  switch (outcome.result) {
    case 'continue':
      // The server's challenge [MQTT-4.12.0-2].
      conn.write({ cmd: 'auth', reasonCode: CONTINUE, properties: { authenticationMethod: auth.method, authenticationData: outcome.data } })
      return
    case 'success':
      auth.active = false
      if (pending !== undefined) {
        auth.pending = undefined
        await completeConnect(conn, pending, { method: auth.method, data: outcome.data })
      } else {
        conn.write({ cmd: 'auth', reasonCode: 0, properties: { authenticationMethod: auth.method, authenticationData: outcome.data } })
      }
      return
    case 'fail':
      if (pending !== undefined) return refuse(conn, 'notAuthorized', 'enhanced authentication failed')
      // A failed re-authentication ends the connection (section 4.12.1).
      conn.close('re-authentication failed', true, outcome.reasonCode ?? ReasonCode.NotAuthorized)
  }
}
