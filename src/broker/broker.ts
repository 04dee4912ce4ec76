import type { Logger } from 'pino'
import { MemoryStore } from '../store/memory.js'
import type { SessionRecord, Store, StoreOp } from '../store/types.js'
import type { AuthRequest, AuthVerdict, BrokerConfig, BrokerHooks, BrokerOptions } from './broker-options.js'
import { ClientList, type ClientInfo } from './client-list.js'
import { Connection } from './connection.js'
import { Decoder } from './decoder.js'
import { InternalClient, type InternalClientOptions, type InternalMessageHandler } from './internal-client.js'
import { ReasonCode } from './protocol-error.js'
import { PublishEncoder4 } from './publish-encoder.js'
import { PAGE } from './outbound-queue.js'
import { RetainedSender } from './retained-sender.js'
import { Router, type PublishResult } from './router.js'
import { Session, type SessionEvents, type SessionJournal, type SessionLimits, type Throttle } from './session.js'
import { SlowClients } from './slow-clients.js'
import { LoginThrottle } from '../auth/login-throttle.js'
import { BrokerStats } from './stats.js'
import { SubscriptionTree, type SubscriptionOptions } from './subscription-tree.js'
import { Sweeper } from './sweep.js'
import { SysPublisher } from './sys.js'
import { parseSharedFilter } from './topics.js'
import type { AccessKind, Message, MqttStream, StreamMeta } from './types.js'
import { PublishEncoder5 } from './v5/publish-encoder.js'
import { WillKeeper, type Will } from './wills.js'

// The types callers import from here; they live in the files the broker is made of.
export type { AuthRequest, AuthVerdict, BrokerConfig, BrokerHooks, BrokerOptions, EnhancedAuthExchange, EnhancedAuthMethod, EnhancedAuthStep } from './broker-options.js'
export type { ClientInfo } from './client-list.js'
export type { PublishResult } from './router.js'

/** Session Expiry Interval 0xFFFFFFFF: the session never expires (section 3.1.2.11.2). */
export const NEVER = 0xffff_ffff

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
  readonly encoder4 = new PublishEncoder4()
  readonly encoder5 = new PublishEncoder5()
  readonly version: string
  readonly hooks: BrokerHooks

  readonly #sessions = new Map<string, Session>()
  /** Connected network clients by client id, for takeover [MQTT-3.1.4-2]. */
  readonly #online = new Map<string, Connection>()
  readonly #connections = new Set<Connection>()
  readonly #internal = new Set<string>()
  readonly #tree = new SubscriptionTree()
  readonly #wills = new WillKeeper({
    publish: (message, ops) => this.publish(message, undefined, ops),
    write: (ops) => this.store.write(ops),
    record: (op) => this.#record(op),
    logError: (err, clientId) => this.log.error({ err, clientId }, 'failed to publish a will'),
  })
  readonly #sessionEvents: SessionEvents
  readonly #journal: SessionJournal = {
    record: (op) => this.#record(op),
    commit: (op) => this.store.write([op]),
    read: (clientId, afterSeq, limit) => this.store.readQueue(clientId, afterSeq, limit),
  }
  readonly #sys: SysPublisher
  /** drain_timeout, and the log lines about clients that fall behind. */
  readonly #slow: SlowClients
  readonly #sweeper: Sweeper
  readonly #clientList = new ClientList()
  readonly #retained: RetainedSender
  readonly #router: Router
  #atConnectionLimit = false
  #closing = false

  constructor(options: BrokerOptions) {
    this.config = options.config
    this.log = options.log
    this.store = options.store ?? new MemoryStore()
    this.hooks = options.hooks ?? {}
    this.version = options.version ?? '0.0.0'
    this.#slow = new SlowClients(() => this.config.drainTimeout, this.log, this.stats)
    this.#sessionEvents = {
      dropped: (session, reason, first) => {
        this.stats.publishDropped++
        session.droppedCount++
        if (reason === 'expired') this.stats.publishExpired++
        if (reason === 'too-large') this.stats.publishTooLarge++
        if (reason === 'congested') this.#slow.congestedDrop(session, this.#online.get(session.clientId))
        if (first) this.#slow.queueFull(session, this.#online.has(session.clientId))
      },
      sent: (session) => this.#slow.sent(session),
      queueRoom: (session) => {
        this.log.info({ clientId: session.clientId, queued: session.queuedCount }, 'client queue has room again')
      },
      stalled: (session) => this.#slow.stalled(session),
    }
    this.#retained = new RetainedSender(this.store)
    this.#router = new Router({
      config: this.config,
      log: this.log,
      store: this.store,
      tree: this.#tree,
      sessions: this.#sessions,
      retained: this.#retained,
      events: this.#sessionEvents,
      record: (op) => this.#record(op),
    })
    this.#sweeper = new Sweeper({
      config: this.config,
      log: this.log,
      stats: this.stats,
      connections: this.#connections,
      sessions: this.#sessions,
      slow: this.#slow,
      wills: this.#wills,
      online: (clientId) => this.#online.get(clientId),
      record: (op) => this.#record(op),
      discard: (session) => this.#discard(session),
    })
    this.#sys = new SysPublisher(this)
  }

  /**
   * Restores what the store holds (persistent sessions with their subscriptions and queues,
   * incoming QoS 2 messages awaiting PUBREL, wills waiting to go out) and starts the timers.
   */
  async start(): Promise<void> {
    const store = this.store
    for (const record of await store.listSessions()) {
      const session = this.#newSession(record.clientId, false)
      session.expiresAt = record.expiresAt
      session.expiryInterval = record.expiryInterval ?? NEVER
      for (const { filter, ...options } of record.subscriptions) this.#addSubscription(session, filter, options)
      // The first page only: the rest is read as the client takes it (Session paging).
      session.restore(await store.readQueue(record.clientId, 0, PAGE), await store.queueInfo(record.clientId))
      this.#sessions.set(record.clientId, session)
    }
    const now = Date.now()
    for (const { clientId, packetId, message } of await store.listIncoming()) {
      const session = this.#sessions.get(clientId)
      session?.incomingQos2.set(packetId, message)
      session?.incomingAt.set(packetId, now)
    }
    this.#wills.restore(await store.listWills(), now)
    this.#sweeper.start()
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

  /** What waits for one connected or offline client, or undefined if it has no session. */
  clientBacklog(clientId: string): { queued: number; queuedBytes: number; inflight: number; buffered: number | undefined } | undefined {
    const session = this.#sessions.get(clientId)
    if (session === undefined) return undefined
    return { queued: session.queuedCount, queuedBytes: session.queuedBytes, inflight: session.inflightCount, buffered: this.#online.get(clientId)?.bufferedBytes }
  }

  /**
   * Network clients with a session, connected or offline (internal clients left out), for the
   * dashboard. Offline ones have no address, listener or protocol now.
   */
  clients(): Iterable<ClientInfo> {
    return this.#clientList.list(this.#sessions.values(), this.#internal, this.#online)
  }

  /** Clients that lost messages (full queue, expiry, too large), with how many: for `$SYS`. */
  *droppedByClient(): Iterable<[string, number]> {
    for (const s of this.#sessions.values()) if (s.droppedCount > 0) yield [s.clientId, s.droppedCount]
  }

  /** Extra `$SYS/broker/...` figures (serial ports, bridges), read at every `$SYS` round. */
  readonly #sysSources: Array<() => Record<string, string | number>> = []

  get sysSources(): ReadonlyArray<() => Record<string, string | number>> {
    return this.#sysSources
  }

  addSysSource(source: () => Record<string, string | number>): void {
    this.#sysSources.push(source)
  }

  get sessionCount(): number {
    return this.#sessions.size - this.#internal.size
  }

  get subscriptionCount(): number {
    return this.#tree.size
  }

  /** Wills waiting for their Will Delay Interval. */
  get pendingWillCount(): number {
    return this.#wills.pendingCount
  }

  /**
   * Routes a message to every matching session and shared subscription, and updates the retained
   * store; resolves once what it stored is durable, so the caller's acknowledgement follows a
   * durable write (router.ts).
   */
  publish(message: Message, publisher?: { session: Session | undefined } & Throttle, ops: StoreOp[] = []): Promise<PublishResult> {
    return this.#router.publish(message, publisher, ops)
  }

  /** Whether `queue_full_policy: reject_new` would refuse `message` for one of the matching sessions (asked before PUBREC). */
  wouldReject(message: Message): boolean {
    return this.#router.wouldReject(message)
  }

  /**
   * The verdict and the username the client is known by from now on (a certificate identity
   * replaces the one in CONNECT). A hook wins; then the listener's rules; then, for streams
   * without a listener (tests, in-memory pipes), `allow_anonymous` alone.
   */
  async authenticate(req: AuthRequest, meta: StreamMeta = {}): Promise<{ verdict: AuthVerdict; username: string | undefined }> {
    if (this.#internal.has(req.clientId)) return { verdict: 'not-authorized', username: req.username }
    const hook = this.hooks.authenticate
    if (hook !== undefined) return { verdict: await hook(req), username: req.username }
    const security = meta.security
    if (security !== undefined) {
      const v = await security.authenticate({ username: req.username, password: req.password, certificateIdentity: meta.certificateIdentity })
      return v.verdict === 'ok' ? { verdict: 'ok', username: v.username ?? req.username } : { verdict: v.verdict, username: req.username }
    }
    return { verdict: this.config.allowAnonymous ? 'ok' : 'not-authorized', username: req.username }
  }

  /** Failed logins per address: delays and log throttling (src/auth/login-throttle.ts). */
  readonly loginThrottle = new LoginThrottle()

  /** The listener's ACL (if any) on one access; streams without a listener are not restricted. */
  allows(meta: StreamMeta, access: AccessKind, clientId: string, username: string | undefined, topic: string): boolean {
    return meta.security === undefined || meta.security.allows(access, clientId, username, topic)
  }

  /**
   * The ACL decides on the filter a shared subscription covers, without its `$share/GROUP/`
   * (or `$queue/`) prefix: the prefix picks who in a group gets a message, not which topics
   * (src/auth/acl.ts asks for it stripped). The hook sees the filter as the client wrote it.
   */
  async authorizeSubscribe(conn: Connection, filter: string): Promise<boolean> {
    const topics = parseSharedFilter(filter)?.filter ?? filter
    if (!this.allows(conn.meta, 'subscribe', conn.clientId, conn.username, topics)) return false
    const hook = this.hooks.authorizeSubscribe
    return hook === undefined ? true : hook(conn.clientId, conn.username, filter)
  }

  /**
   * Finds or creates the session for a connecting client. An existing connection with the same
   * id is closed first [MQTT-3.1.4-2]; Clean Start / clean session discards what was there
   * [MQTT-3.1.2-4]; otherwise a will still waiting for its delay is cancelled [MQTT-3.1.3-9].
   * `expiryInterval` is in seconds: 0 ends the session with the connection, NEVER keeps it.
   */
  openSession(conn: Connection, clientId: string, cleanStart: boolean, expiryInterval: number): { session: Session; present: boolean } {
    const previous = this.#online.get(clientId)
    if (previous !== undefined && previous !== conn) {
      previous.log.info({ by: conn.remote }, 'session taken over by a new connection')
      previous.close('session taken over', true, ReasonCode.SessionTakenOver)
    }
    let session = this.#sessions.get(clientId)
    if (session !== undefined && cleanStart) {
      this.#discard(session)
      session = undefined
    }
    this.#wills.resumed(clientId, session !== undefined)
    const present = session !== undefined
    if (session === undefined) {
      session = this.#newSession(clientId, expiryInterval === 0)
      this.#sessions.set(clientId, session)
    }
    session.clean = expiryInterval === 0
    session.expiryInterval = expiryInterval
    this.#online.set(clientId, conn)
    this.#clientList.connected(conn, Date.now())
    const connected = this.#online.size
    if (connected > this.stats.clientsMaximum) this.stats.clientsMaximum = connected
    return { session, present }
  }

  /**
   * Adds or replaces a subscription; true when it is new (for Retain Handling 1). The caller
   * stores the session once for all the filters of a SUBSCRIBE (persistSession).
   */
  subscribe(session: Session, filter: string, options: SubscriptionOptions): boolean {
    const isNew = !session.subscriptions.has(filter)
    this.#addSubscription(session, filter, options)
    return isNew
  }

  /** True when the session had that subscription. The caller stores the session (persistSession). */
  unsubscribe(session: Session, filter: string): boolean {
    if (!session.subscriptions.delete(filter)) return false
    this.#tree.remove(session.clientId, filter)
    return true
  }

  /** Sends the retained messages matching new subscriptions, as their options say (retained-sender.ts). */
  sendRetained(session: Session, subs: ReadonlyArray<{ filter: string; options: SubscriptionOptions; isNew: boolean }>): Promise<void> {
    return this.#retained.send(session, subs)
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
    this.#slow.forget(session)
    conn.log.info({ protocolVersion: conn.version, reason }, 'client disconnected')
    // Messages a shared subscription gave this client, not yet acknowledged, go to another member.
    if (!session.online) this.#router.redistributeShared(session)
    // The will goes out after the connection is gone [MQTT-3.1.2-8]; never after DISCONNECT [MQTT-3.1.2-10].
    const will = conn.will
    conn.will = undefined
    if (publishWill && will !== undefined) this.#wills.start(session.clientId, will, session.clean)
    else if (conn.willStored) this.#wills.drop(session.clientId)
    if (session.online) return
    if (session.clean) {
      this.#discard(session)
      return
    }
    const seconds = this.#expirySeconds(session.expiryInterval)
    session.expiresAt = seconds === NEVER ? undefined : Date.now() + seconds * 1000
    this.#persist(session)
  }

  /** The session expiry the broker grants: the client's, capped by `persistent_client_expiration`. */
  grantedExpiry(requested: number): number {
    return this.#expirySeconds(requested)
  }

  #expirySeconds(requested: number): number {
    const cap = this.config.persistentClientExpiration
    return cap > 0 && (requested === NEVER || requested > cap) ? cap : requested
  }

  /**
   * Stores a connected client's will, so that if the process dies with the connection open the
   * will still goes out after a restart (publishAt 0: armed, not yet started).
   */
  armWill(conn: Connection, will: Will): Promise<void> {
    conn.willStored = true
    return this.#wills.arm(conn.clientId, will)
  }

  /** Writes `op` with the next batch without waiting for it; a failure is logged. */
  #record(op: StoreOp): void {
    this.store.write([op]).catch((err: unknown) => this.log.error({ err, op: op.op }, 'store write failed'))
  }

  /**
   * A client inside the process (serial bridge, upstream bridge): same routing, sessions and
   * QoS handling as a network client, with a callback in place of a socket.
   *
   * With `persistent`, the session is kept in the store like a persistent network client's: what
   * its subscriptions match while it is paused, or while the process is down, waits on disk in
   * its queue. That is the upstream bridge's outbox. A persistent session restored from the
   * store at start is taken over here, with its queue and unacknowledged messages.
   */
  createInternalClient(clientId: string, onMessage?: InternalMessageHandler, options: InternalClientOptions = {}): InternalClient {
    const persistent = options.persistent === true
    const limits: SessionLimits = { ...this.config, ...options.limits }
    let session = this.#sessions.get(clientId)
    if (session !== undefined && (!persistent || session.clean || session.online || this.#internal.has(clientId))) {
      throw new Error(`client id ${clientId} is already in use`)
    }
    if (session === undefined) {
      session = new Session(clientId, !persistent, limits, this.#sessionEvents, this.#journal)
      this.#sessions.set(clientId, session)
    } else {
      session.setLimits(limits)
    }
    if (persistent) {
      session.expiryInterval = NEVER
      session.expiresAt = undefined
    }
    const own = session
    this.#internal.add(clientId)
    return new InternalClient(this, own, onMessage, options, () => {
      this.#internal.delete(clientId)
      // A persistent internal session outlives its client, as a network one outlives its socket.
      if (own.clean) this.#discard(own)
    })
  }

  /** Client ids of the sessions whose id starts with `prefix` (outboxes of bridges, found at start). */
  sessionIdsWithPrefix(prefix: string): string[] {
    return [...this.#sessions.keys()].filter((id) => id.startsWith(prefix))
  }

  /**
   * Ends an offline session with everything it holds (an outbox whose bridge left the config);
   * returns how many messages were dropped with it, or undefined if there is no such session or
   * it is in use.
   */
  endOfflineSession(clientId: string): number | undefined {
    const session = this.#sessions.get(clientId)
    if (session === undefined || session.online || this.#internal.has(clientId)) return undefined
    const dropped = session.queuedCount + session.inflightCount
    this.#discard(session)
    return dropped
  }

  /** Stops accepting, closes every client, stops timers. The store is the caller's to close. */
  async close(reason = 'server shutting down'): Promise<void> {
    this.#closing = true
    this.#sweeper.stop()
    this.#sys.stop()
    for (const conn of [...this.#connections]) conn.close(reason, true, ReasonCode.ServerShuttingDown)
  }

  #newSession(clientId: string, clean: boolean): Session {
    return new Session(clientId, clean, this.config, this.#sessionEvents, this.#journal)
  }

  #addSubscription(session: Session, filter: string, options: SubscriptionOptions): void {
    session.subscriptions.set(filter, options)
    this.#tree.add({ clientId: session.clientId, filter, ...options })
  }

  /** Ends a session: its subscriptions, queues and any will still waiting, which goes out now. */
  #discard(session: Session): void {
    for (const filter of session.subscriptions.keys()) this.#tree.remove(session.clientId, filter)
    session.clear()
    this.#sessions.delete(session.clientId)
    this.#wills.sessionEnded(session.clientId)
    // Also for a session that was persistent once (a DISCONNECT may have set its expiry to 0).
    if (!this.#internal.has(session.clientId)) this.#record({ op: 'del-session', clientId: session.clientId })
  }

  /** Writes the session record; resolves once it is durable (SUBACK waits for it). */
  persistSession(session: Session): Promise<void> {
    if (session.clean) return Promise.resolve()
    const subscriptions = [...session.subscriptions].map(([filter, options]) => ({ filter, ...options }))
    const record: SessionRecord = { clientId: session.clientId, subscriptions, expiryInterval: session.expiryInterval }
    if (session.expiresAt !== undefined) record.expiresAt = session.expiresAt
    return this.store.write([{ op: 'put-session', record }])
  }

  #persist(session: Session): void {
    this.persistSession(session).catch((err: unknown) => this.log.error({ err, clientId: session.clientId }, 'failed to save session'))
  }
}
