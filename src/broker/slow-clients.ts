import type { Logger } from 'pino'
import type { Connection } from './connection.js'
import { ReasonCode } from './protocol-error.js'
import type { Session } from './session.js'
import type { BrokerStats } from './stats.js'

/**
 * Slow readers. A client that does not read what it is sent cannot make the broker buffer without
 * bound: QoS 0 to a socket with more than 512 KiB unsent is dropped (Connection.congested), QoS 1
 * and 2 wait behind the in-flight window in a queue capped by `max_queued_messages` /
 * `max_queued_bytes` (Session). This adds what the log says about the QoS 0 drops, and
 * `drain_timeout`: a connection that stays behind that long without taking anything is closed.

 * Behind means its socket has more than 512 KiB unsent, or messages wait in its queue beyond the
 * in-flight window; it is looked at on every sweep of the broker. The clock restarts whenever the
 * client makes progress: a PUBLISH goes out to it (it acknowledged one, freeing the window), or
 * its unsent bytes went down since the last sweep. So a client that reads, however slowly, or a
 * persistent session working through a long backlog at full speed, is never closed for this:
 * only one that takes nothing for drain_timeout is. Internal clients (bridges) have no connection
 * and are never closed for this: their outbox is meant to grow.
 */
export class SlowClients {
  /**
   * Since when each connected session has been behind without progress (Unix ms), and its unsent
   * bytes at the last sweep; kept only while drain_timeout is on.
   */
  readonly #behindSince = new Map<Session, { since: number; buffered: number }>()
  /**
   * Sessions whose QoS 0 messages are being dropped because their outlet is backed up: how many
   * so far, and whether one was dropped since the last sweep (how an internal client's episode
   * ends, having no socket to look at).
   */
  readonly #qos0 = new Map<Session, { dropped: number; recent: boolean }>()
  /** drain_timeout in seconds (0 = off), read at each use so a reload (SIGHUP) applies at once. */
  readonly #drainTimeoutOf: () => number
  readonly #log: Logger
  readonly #stats: BrokerStats

  constructor(drainTimeout: () => number, log: Logger, stats: BrokerStats) {
    this.#drainTimeoutOf = drainTimeout
    this.#log = log
    this.#stats = stats
  }

  get #drainTimeout(): number {
    return this.#drainTimeoutOf()
  }

  /** For log lines: what happens to a client that stays behind. */
  get #drainTimeoutText(): string {
    return this.#drainTimeout > 0 ? `${this.#drainTimeout} s` : 'off'
  }

  /**
   * A client's queue filled: logged once per episode (Session), naming what happens now: which
   * messages queue_full_policy drops, and for a `connected` network client whether drain_timeout
   * will close it (an offline session or an internal client only has its cap).
   */
  queueFull(session: Session, connected: boolean): void {
    const { queueFullPolicy: policy, maxQueuedMessages, maxQueuedBytes } = session.limits
    const what = policy === 'drop_oldest' ? 'dropping its oldest queued messages' : 'refusing new messages for it'
    this.#log.warn(
      { clientId: session.clientId, queued: session.queuedCount, inflight: session.inflightCount, policy, maxQueuedMessages, maxQueuedBytes, ...(connected ? { drainTimeout: this.#drainTimeout } : {}) },
      `client queue full, ${what} until it drains (queue_full_policy ${policy}${connected ? `; drain_timeout ${this.#drainTimeoutText}` : ''})`,
    )
  }

  /** A connected session stayed backed up too long to go on holding its publishers (Session.checkStall). */
  stalled(session: Session): void {
    const policy = session.limits.queueFullPolicy
    this.#log.warn(
      { clientId: session.clientId, queued: session.queuedCount, policy, drainTimeout: this.#drainTimeout },
      `client is not draining its queue; publishers are no longer slowed for it, and queue_full_policy ${policy} applies (drain_timeout ${this.#drainTimeoutText})`,
    )
  }

  /** A QoS 0 message dropped because `conn` (undefined for an internal client) is backed up: warned once per episode. */
  congestedDrop(session: Session, conn: Connection | undefined): void {
    const episode = this.#qos0.get(session)
    if (episode !== undefined) {
      episode.dropped++
      episode.recent = true
      return
    }
    this.#qos0.set(session, { dropped: 1, recent: true })
    this.#log.warn(
      { clientId: session.clientId, buffered: conn?.bufferedBytes, drainTimeout: this.#drainTimeout },
      `dropping QoS 0 messages while the client's socket is backed up (drain_timeout ${this.#drainTimeoutText})`,
    )
  }

  /**
   * A PUBLISH went out to `session`: it is taking messages, so its drain_timeout clock starts
   * again (at the next sweep, if it is still behind). On every send, so the common case (nobody
   * behind) costs one size check.
   */
  sent(session: Session): void {
    if (this.#behindSince.size === 0) return
    this.#behindSince.delete(session)
  }

  /** The session's connection ended: whatever was tracked for it goes (a new connection starts afresh). */
  forget(session: Session): void {
    this.#behindSince.delete(session)
    this.#qos0.delete(session)
  }

  /**
   * Every broker sweep. Ends the QoS 0 episodes of clients no longer backed up, and closes the
   * connections that have been behind for longer than drain_timeout. `online` finds the network
   * connection of a client id.
   */
  sweep(connections: Iterable<Connection>, online: (clientId: string) => Connection | undefined, now: number): void {
    for (const [session, episode] of this.#qos0) {
      const conn = online(session.clientId)
      const backedUp = conn !== undefined && conn.session === session ? conn.congested : episode.recent
      episode.recent = false
      if (backedUp) continue
      this.#qos0.delete(session)
      this.#log.info({ clientId: session.clientId, dropped: episode.dropped }, 'client caught up; QoS 0 messages are delivered to it again')
    }
    if (this.#drainTimeout === 0) return
    const limit = this.#drainTimeout * 1000
    for (const conn of connections) {
      const session = conn.session
      if (conn.state !== 'open' || session === undefined) continue
      if (!conn.congested && session.queuedCount === 0) {
        this.#behindSince.delete(session)
        continue
      }
      const buffered = conn.bufferedBytes
      const behind = this.#behindSince.get(session)
      if (behind === undefined) {
        this.#behindSince.set(session, { since: now, buffered })
      } else if (buffered < behind.buffered) {
        // It read some of what was waiting on its socket: progress.
        behind.since = now
        behind.buffered = buffered
      } else if (now - behind.since > limit) {
        this.#close(conn, session, now - behind.since)
      } else {
        behind.buffered = buffered
      }
    }
  }

  #close(conn: Connection, session: Session, behindMs: number): void {
    const seconds = this.#drainTimeout
    conn.log.warn(
      { drainTimeout: seconds, behindSeconds: Math.round(behindMs / 100) / 10, queued: session.queuedCount, inflight: session.inflightCount, buffered: conn.bufferedBytes },
      `closing the client: it took nothing of what waits for it within drain_timeout (${seconds} s)`,
    )
    this.#stats.drainTimeouts++
    // 0x97 Quota exceeded, "an implementation or administrative imposed limit has been exceeded"
    // (MQTT 5, 3.14.2.1): drain_timeout is the operator's limit on how long a client may leave
    // what it was sent unread. 0x89 Server busy would blame the server, 0x96 Message rate too high
    // is about what the client publishes, and 0x98 Administrative action means an operator's own
    // act. The will goes out, as for every close the client did not ask for [MQTT-3.1.2-8]. A
    // slow reader may never see the DISCONNECT, queued behind everything it did not read.
    conn.close(`took nothing within drain_timeout (${seconds} s)`, true, ReasonCode.QuotaExceeded)
  }
}
