import { generate } from 'mqtt-packet'
import type { Logger } from 'pino'
import type { OutpostConfig } from '../config/types.js'
import { MemoryStore } from '../store/memory.js'
import type { Store } from '../store/types.js'
import { Connection } from './connection.js'
import { Decoder } from './decoder.js'
import { InternalClient, type InternalMessageHandler } from './internal-client.js'
import { Session, type SessionEvents, type Throttle } from './session.js'
import { BrokerStats } from './stats.js'
import { SubscriptionTree } from './subscription-tree.js'
import { SysPublisher } from './sys.js'
import type { Message, MqttStream, QoS, StreamMeta } from './types.js'

/** The part of the configuration the broker core reads. */
export type BrokerConfig = Pick<
  OutpostConfig,
  | 'allowAnonymous'
  | 'maxConnections'
  | 'messageSizeLimit'
  | 'maxInflight'
  | 'maxQueuedMessages'
  | 'maxQueuedBytes'
  | 'queueQos0Messages'
  | 'maxKeepalive'
  | 'sysInterval'
  | 'retainAvailable'
  | 'persistentClientExpiration'
>

export interface AuthRequest {
  readonly clientId: string
  readonly username: string | undefined
  readonly password: Buffer | undefined
  readonly remote: string
}

export type AuthVerdict = 'ok' | 'bad-credentials' | 'not-authorized'

/** Policy hooks; the password and ACL files of issue 7 plug in here. */
export interface BrokerHooks {
  authenticate?(req: AuthRequest): AuthVerdict | Promise<AuthVerdict>
  authorizeSubscribe?(clientId: string, username: string | undefined, filter: string): boolean | Promise<boolean>
}

export interface BrokerOptions {
  config: BrokerConfig
  log: Logger
  store?: Store
  hooks?: BrokerHooks
  /** Reported in `$SYS/broker/version`. */
  version?: string
}

/** How often keepalives and session expiry are checked. */
const SWEEP_MS = 500
/** A connection that has not sent CONNECT within this time is closed. */
const CONNECT_TIMEOUT_MS = 10_000

/**
 * The MQTT broker core. It never listens: listeners hand it streams with `handle()`, and
 * internal clients (serial bridge, upstream bridge) use `createInternalClient()`; both go
 * through the same sessions, subscription tree and retained store.
 */
export class Broker {
  readonly config: BrokerConfig
  readonly log: Logger
  readonly store: Store
  readonly stats = new BrokerStats()
  /** Shared by every connection (see decoder.ts). */
  readonly decoder = new Decoder()
  readonly version: string

  readonly #hooks: BrokerHooks
  readonly #sessions = new Map<string, Session>()
  /** Connected network clients by client id, for takeover [MQTT-3.1.4-2]. */
  readonly #online = new Map<string, Connection>()
  readonly #connections = new Set<Connection>()
  readonly #internal = new Set<string>()
  readonly #tree = new SubscriptionTree()
  readonly #qos0Cache = new WeakMap<Message, Buffer>()
  readonly #qosCache = new WeakMap<Message, { qos: QoS; bytes: Buffer; headLength: number }>()
  readonly #sessionEvents: SessionEvents
  readonly #sys: SysPublisher
  #sweep: NodeJS.Timeout | undefined
  #atConnectionLimit = false
  #closing = false

  constructor(options: BrokerOptions) {
    this.config = options.config
    this.log = options.log
    this.store = options.store ?? new MemoryStore()
    this.#hooks = options.hooks ?? {}
    this.version = options.version ?? '0.0.0'
    this.#sessionEvents = {
      dropped: (session, reason, first) => {
        this.stats.publishDropped++
        if (first) {
          this.log.warn(
            { clientId: session.clientId, reason, queued: session.queuedCount, inflight: session.inflightCount },
            'client queue full, dropping messages until it drains',
          )
        }
      },
      sent: () => undefined,
      stalled: (session) => {
        this.log.warn({ clientId: session.clientId, queued: session.queuedCount }, 'client is not draining its queue; publishers are no longer slowed for it')
      },
    }
    this.#sys = new SysPublisher(this)
  }

  /** Restores persistent sessions from the store and starts the timers. */
  async start(): Promise<void> {
    for (const record of await this.store.listSessions()) {
      const session = this.#newSession(record.clientId, false)
      session.expiresAt = record.expiresAt
      for (const { filter, qos } of record.subscriptions) this.#addSubscription(session, filter, qos)
      this.#sessions.set(record.clientId, session)
    }
    this.#sweep = setInterval(() => this.#sweepTimers(), SWEEP_MS)
    this.#sweep.unref()
    this.#sys.start(this.config.sysInterval)
  }

  /** Serves MQTT over one stream until either side closes it. */
  handle(stream: MqttStream, meta: StreamMeta = {}): void {
    const max = this.config.maxConnections
    if (this.#closing || (max > 0 && this.#connections.size >= max)) {
      this.stats.connectionsRefused++
      if (!this.#closing && !this.#atConnectionLimit) {
        this.log.warn({ maxConnections: max, remote: meta.remoteAddress }, 'max_connections reached, refusing new connections')
        this.#atConnectionLimit = true
      }
      stream.destroy()
      return
    }
    this.stats.connectionsTotal++
    this.#connections.add(new Connection(this, stream, meta))
  }

  get connectionCount(): number {
    return this.#connections.size
  }

  /** Clients with an open MQTT session on a connection. */
  get connectedCount(): number {
    return this.#online.size
  }

  /** Persistent sessions whose client is offline. */
  get disconnectedCount(): number {
    let n = 0
    for (const s of this.#sessions.values()) if (!s.online && !this.#internal.has(s.clientId)) n++
    return n
  }

  get sessionCount(): number {
    return this.#sessions.size - this.#internal.size
  }

  get subscriptionCount(): number {
    return this.#tree.size
  }

  /**
   * Routes a message to every matching session at the lower of its QoS and the subscription's
   * [MQTT-3.8.4-6], with the retain flag cleared for existing subscriptions [MQTT-3.3.1-9], and
   * updates the retained store [MQTT-3.3.1-5].
   */
  publish(message: Message, publisher?: { session: Session | undefined } & Throttle): void {
    if (message.retain && this.config.retainAvailable) {
      this.store.setRetained(message).catch((err: unknown) => this.log.error({ err, topic: message.topic }, 'failed to store retained message'))
    }
    const matches = this.#tree.match(message.topic)
    for (const sub of matches.values()) {
      const session = this.#sessions.get(sub.clientId)
      if (session === undefined) continue
      const backedUp = session.deliver(message, sub.qos < message.qos ? sub.qos : message.qos, false)
      // A connected subscriber that cannot keep up slows its publishers (not itself: it would stop
      // reading its own acks) rather than letting the queue cap drop acknowledged messages.
      if (backedUp && publisher !== undefined && publisher.session !== session) session.hold(publisher)
    }
  }

  /** The v3/v4 encoding of a QoS 0 PUBLISH, made once per message however many clients get it. */
  encodeQos0(message: Message): Buffer {
    let bytes = this.#qos0Cache.get(message)
    if (bytes === undefined) {
      bytes = generate({ cmd: 'publish', topic: message.topic, payload: message.payload, qos: 0, retain: false, dup: false }, { protocolVersion: 4 })
      this.#qos0Cache.set(message, bytes)
    }
    return bytes
  }

  /**
   * The v3/v4 encoding of a QoS 1/2 PUBLISH as a small per-delivery head (fixed header, topic,
   * packet id) and the payload shared by every delivery. The bytes come from mqtt-packet once per
   * message; each delivery copies only the head and patches flags and packet id.
   */
  encodePublish(message: Message, qos: QoS, packetId: number, retain: boolean, dup: boolean): [Buffer, Buffer] {
    let template = this.#qosCache.get(message)
    if (template === undefined || template.qos !== qos) {
      const bytes = generate({ cmd: 'publish', topic: message.topic, payload: message.payload, qos, messageId: 1, retain: false, dup: false }, { protocolVersion: 4 })
      template = { qos, bytes, headLength: bytes.length - message.payload.length }
      this.#qosCache.set(message, template)
    }
    const head = Buffer.allocUnsafe(template.headLength)
    template.bytes.copy(head, 0, 0, template.headLength)
    head[0] = 0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 0x01 : 0)
    head.writeUInt16BE(packetId, template.headLength - 2)
    return [head, template.bytes.subarray(template.headLength)]
  }

  async authenticate(req: AuthRequest): Promise<AuthVerdict> {
    if (this.#internal.has(req.clientId)) return 'not-authorized'
    const hook = this.#hooks.authenticate
    if (hook !== undefined) return hook(req)
    // Without a password file, anonymous access is all there is: on or off.
    return this.config.allowAnonymous ? 'ok' : 'not-authorized'
  }

  async authorizeSubscribe(conn: Connection, filter: string): Promise<boolean> {
    const hook = this.#hooks.authorizeSubscribe
    return hook === undefined ? true : hook(conn.clientId, conn.username, filter)
  }

  /**
   * Finds or creates the session for a connecting client. An existing connection with the same
   * id is closed first [MQTT-3.1.4-2]; a clean session discards what was there [MQTT-3.1.2-6].
   */
  openSession(conn: Connection, clientId: string, clean: boolean): { session: Session; present: boolean } {
    const previous = this.#online.get(clientId)
    if (previous !== undefined && previous !== conn) {
      previous.log.info({ by: conn.remote }, 'session taken over by a new connection')
      previous.close('session taken over', true)
    }
    let session = this.#sessions.get(clientId)
    if (session !== undefined && clean) {
      this.#discard(session)
      session = undefined
    }
    const present = session !== undefined
    if (session === undefined) {
      session = this.#newSession(clientId, clean)
      this.#sessions.set(clientId, session)
    }
    session.clean = clean
    this.#online.set(clientId, conn)
    const connected = this.#online.size
    if (connected > this.stats.clientsMaximum) this.stats.clientsMaximum = connected
    return { session, present }
  }

  subscribe(session: Session, filter: string, qos: QoS): void {
    this.#addSubscription(session, filter, qos)
    this.#persist(session)
  }

  unsubscribe(session: Session, filter: string): void {
    if (session.subscriptions.delete(filter)) {
      this.#tree.remove(session.clientId, filter)
      this.#persist(session)
    }
  }

  /** Sends the retained messages matching newly added subscriptions, flagged retain [MQTT-3.3.1-8]. */
  async sendRetained(session: Session, subs: ReadonlyArray<{ filter: string; qos: QoS }>): Promise<void> {
    for (const { filter, qos } of subs) {
      for (const message of await this.store.matchRetained(filter)) {
        session.deliver(message, qos < message.qos ? qos : message.qos, true)
      }
    }
  }

  /** Called once by every connection as it closes. */
  connectionClosed(conn: Connection, reason: string, publishWill: boolean): void {
    this.#connections.delete(conn)
    if (this.#atConnectionLimit && this.#connections.size < this.config.maxConnections) this.#atConnectionLimit = false
    const session = conn.session
    if (session === undefined) {
      conn.log.debug({ reason }, 'connection closed before CONNECT completed')
      return
    }
    if (this.#online.get(conn.clientId) === conn) this.#online.delete(conn.clientId)
    session.detach(conn)
    conn.log.info({ protocolVersion: conn.version, reason }, 'client disconnected')
    // The will goes out after the connection is gone [MQTT-3.1.2-8]; never after DISCONNECT [MQTT-3.1.2-10].
    const will = conn.will
    conn.will = undefined
    if (publishWill && will !== undefined) this.publish(will)
    if (session.online) return
    if (session.clean) {
      this.#discard(session)
    } else {
      const ttl = this.config.persistentClientExpiration
      session.expiresAt = ttl > 0 ? Date.now() + ttl * 1000 : undefined
      this.#persist(session)
    }
  }

  /**
   * A client inside the process (serial bridge, upstream bridge): same routing, sessions and
   * QoS handling as a network client, with a callback in place of a socket.
   */
  createInternalClient(clientId: string, onMessage?: InternalMessageHandler): InternalClient {
    if (this.#sessions.has(clientId)) throw new Error(`client id ${clientId} is already in use`)
    const session = this.#newSession(clientId, true)
    this.#sessions.set(clientId, session)
    this.#internal.add(clientId)
    return new InternalClient(this, session, onMessage, () => {
      this.#internal.delete(clientId)
      this.#discard(session)
    })
  }

  /** Stops accepting, closes every client, stops timers. The store is the caller's to close. */
  async close(reason = 'server shutting down'): Promise<void> {
    this.#closing = true
    if (this.#sweep !== undefined) clearInterval(this.#sweep)
    this.#sys.stop()
    for (const conn of [...this.#connections]) conn.close(reason, true)
  }

  #newSession(clientId: string, clean: boolean): Session {
    return new Session(clientId, clean, this.config, this.#sessionEvents)
  }

  #addSubscription(session: Session, filter: string, qos: QoS): void {
    session.subscriptions.set(filter, qos)
    this.#tree.add({ clientId: session.clientId, filter, qos })
  }

  #discard(session: Session): void {
    for (const filter of session.subscriptions.keys()) this.#tree.remove(session.clientId, filter)
    session.clear()
    this.#sessions.delete(session.clientId)
    if (!session.clean) {
      this.store.deleteSession(session.clientId).catch((err: unknown) => this.log.error({ err }, 'failed to delete session'))
    }
  }

  #persist(session: Session): void {
    if (session.clean) return
    const subscriptions = [...session.subscriptions].map(([filter, qos]) => ({ filter, qos }))
    const record = session.expiresAt === undefined
      ? { clientId: session.clientId, subscriptions }
      : { clientId: session.clientId, subscriptions, expiresAt: session.expiresAt }
    this.store.putSession(record).catch((err: unknown) => this.log.error({ err, clientId: session.clientId }, 'failed to save session'))
  }

  #sweepTimers(): void {
    const now = Date.now()
    for (const conn of this.#connections) {
      if (conn.state === 'new' && now - conn.lastSeen > CONNECT_TIMEOUT_MS) {
        conn.close('no CONNECT within 10 s', false)
      } else if (conn.state === 'open' && conn.keepalive > 0 && !conn.held && now - conn.lastSeen > conn.keepalive * 1500) {
        // Silent for one and a half keepalive periods [MQTT-3.1.2-24].
        conn.log.info({ keepalive: conn.keepalive }, 'keepalive timeout')
        conn.close('keepalive timeout', true)
      }
    }
    for (const session of this.#sessions.values()) {
      session.checkStall(now)
      if (!session.online && session.expiresAt !== undefined && session.expiresAt <= now) {
        this.log.info({ clientId: session.clientId }, 'persistent session expired')
        this.#discard(session)
      }
    }
  }
}
