import type { Connection } from './connection.js'
import type { Session } from './session.js'

/** One client as `Broker.clients()` lists it; the connection's fields are undefined while it is offline. */
export interface ClientInfo {
  readonly clientId: string
  readonly username: string | undefined
  /** `address:port` */
  readonly remote: string | undefined
  readonly listener: string | undefined
  readonly protocolVersion: 3 | 4 | 5 | undefined
  /** Unix ms of the CONNECT. */
  readonly connectedAt: number | undefined
  readonly subscriptions: Iterable<string>
  readonly queued: number
  readonly inflight: number
}

/** The client listing of the dashboard, and the one thing only it needs: when each client connected. */
export class ClientList {
  /** When each connection's CONNECT was accepted (a WeakMap: nothing to clean up when it goes). */
  readonly #connectedAt = new WeakMap<Connection, number>()

  connected(conn: Connection, at: number): void {
    this.#connectedAt.set(conn, at)
  }

  /**
   * Network clients with a session, connected or offline (internal clients left out), for the
   * dashboard. Offline ones have no address, listener or protocol now.
   */
  *list(sessions: Iterable<Session>, internal: ReadonlySet<string>, online: ReadonlyMap<string, Connection>): Iterable<ClientInfo> {
    for (const s of sessions) {
      if (internal.has(s.clientId)) continue
      const conn = online.get(s.clientId)
      yield {
        clientId: s.clientId,
        username: conn?.username,
        remote: conn?.remote,
        listener: conn?.meta.listener,
        protocolVersion: conn?.version,
        connectedAt: conn === undefined ? undefined : this.#connectedAt.get(conn),
        subscriptions: s.subscriptions.keys(),
        queued: s.queuedCount,
        inflight: s.inflightCount,
      }
    }
  }
}
