import type { Logger } from 'pino'
import type { StoreOp } from '../store/types.js'
import type { BrokerConfig } from './broker-options.js'
import type { Connection } from './connection.js'
import { ReasonCode } from './protocol-error.js'
import type { Session } from './session.js'
import type { SlowClients } from './slow-clients.js'
import type { BrokerStats } from './stats.js'
import type { WillKeeper } from './wills.js'

/** How often keepalives and session expiry are checked. */
const SWEEP_MS = 500

/** What the sweep looks at and acts on; the collections are the broker's own, read at each sweep. */
export interface SweepParts {
  /** Read at each use: a reload (SIGHUP) updates this object in place. */
  readonly config: Pick<BrokerConfig, 'awaitRelTimeout'>
  readonly log: Logger
  readonly stats: BrokerStats
  readonly connections: ReadonlySet<Connection>
  readonly sessions: ReadonlyMap<string, Session>
  readonly slow: SlowClients
  readonly wills: WillKeeper
  readonly online: (clientId: string) => Connection | undefined
  /** Writes `op` with the next batch without waiting for it. */
  readonly record: (op: StoreOp) => void
  /** Ends a session with everything it holds. */
  readonly discard: (session: Session) => void
}

/** The broker's one periodic timer: keepalives, slow clients, will delays, await_rel_timeout and session expiry. */
export class Sweeper {
  readonly #parts: SweepParts
  #timer: NodeJS.Timeout | undefined

  constructor(parts: SweepParts) {
    this.#parts = parts
  }

  start(): void {
    this.#timer = setInterval(() => this.#sweep(), SWEEP_MS)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
  }

  #sweep(): void {
    const { config, log, connections, sessions } = this.#parts
    const now = Date.now()
    for (const conn of connections) {
      const live = conn.state === 'open' || conn.state === 'connecting'
      // A connection that never finishes CONNECT is closed by its own connect_timeout timer (Connection).
      if (live && conn.keepalive > 0 && !conn.held && now - conn.lastSeen > conn.keepalive * 1500) {
        // Silent for one and a half keepalive periods: [MQTT-3.1.2-24] in 3.1.1, [MQTT-3.1.2-22] in 5.0.
        conn.log.info({ keepalive: conn.keepalive }, 'keepalive timeout')
        // Before CONNACK (an unfinished AUTH exchange) there is no DISCONNECT to send [MQTT-3.14.0-1].
        conn.close('keepalive timeout', true, ReasonCode.KeepAliveTimeout)
      }
    }
    this.#parts.slow.sweep(connections, this.#parts.online, now)
    this.#parts.wills.sweep(now)
    const relTimeout = config.awaitRelTimeout * 1000
    for (const session of sessions.values()) {
      session.checkStall(now)
      if (relTimeout > 0 && session.incomingAt.size > 0) this.#expireAwaitingRel(session, now - relTimeout)
      if (!session.online && session.expiresAt !== undefined && session.expiresAt <= now) {
        log.info({ clientId: session.clientId }, 'persistent session expired')
        this.#parts.discard(session)
      }
    }
  }

  /** Incoming QoS 2 messages whose PUBREL never came within `await_rel_timeout` are dropped, logged once per sweep. */
  #expireAwaitingRel(session: Session, before: number): void {
    let dropped = 0
    for (const [id, at] of session.incomingAt) {
      if (at > before) continue
      session.incomingAt.delete(id)
      session.incomingQos2.delete(id)
      this.#parts.record({ op: 'del-incoming', clientId: session.clientId, packetId: id })
      dropped++
    }
    if (dropped === 0) return
    this.#parts.stats.publishDropped += dropped
    session.droppedCount += dropped
    this.#parts.log.warn({ clientId: session.clientId, dropped, awaitRelTimeout: this.#parts.config.awaitRelTimeout }, 'dropped QoS 2 messages whose PUBREL did not come within await_rel_timeout')
  }
}
