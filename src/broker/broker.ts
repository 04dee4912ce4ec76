import type { Logger } from 'pino'
import type { OutpostConfig } from '../config/types.js'
import { MemoryStore } from '../store/memory.js'
import type { SessionRecord, Store, StoreOp } from '../store/types.js'
import { Connection } from './connection.js'
import { Decoder } from './decoder.js'
import { InternalClient, type InternalClientOptions, type InternalMessageHandler } from './internal-client.js'
import { ReasonCode } from './protocol-error.js'
import { PublishEncoder4 } from './publish-encoder.js'
import { PAGE } from './outbound-queue.js'
import { Session, type Queued, type SessionEvents, type SessionJournal, type SessionLimits, type Throttle } from './session.js'
import { pickMember } from './shared.js'
import { SlowClients } from './slow-clients.js'
import { LoginThrottle } from '../auth/login-throttle.js'
import { BrokerStats } from './stats.js'
import { SubscriptionTree, type SharedGroup, type SubscriptionOptions } from './subscription-tree.js'
import { SysPublisher } from './sys.js'
import { parseSharedFilter, topicMatches } from './topics.js'
import type { AccessKind, Message, MqttStream, StreamMeta } from './types.js'
import { PublishEncoder5 } from './v5/publish-encoder.js'
import { WillKeeper, type Will } from './wills.js'

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
  | 'connectTimeout'
  | 'maxTopicLevels'
  | 'maxTopicLength'
  | 'maxSubscriptions'
  | 'maxPublishRate'
  | 'maxPublishBytesRate'
  | 'drainTimeout'
  | 'sysInterval'
  | 'retainAvailable'
  | 'persistentClientExpiration'
  | 'receiveMaximum'
  | 'topicAliasMaximum'
  | 'maxPacketSize'
  | 'maxQos'
  | 'wildcardSubscriptions'
  | 'subscriptionIdentifiers'
  | 'sharedSubscriptions'
  | 'sharedSubscriptionStrategy'
  | 'responseInformation'
  | 'reasonStrings'
  | 'queueFullPolicy'
  | 'maxAwaitingRel'
  | 'awaitRelTimeout'
  | 'store'
>

export interface AuthRequest {
  readonly clientId: string
  readonly username: string | undefined
  readonly password: Buffer | undefined
  readonly remote: string
}

export type AuthVerdict = 'ok' | 'bad-credentials' | 'not-authorized'

/**
 * One step of MQTT 5 enhanced authentication (section 4.12): the client's Authentication Data in,
 * and either success, a challenge to send back in an AUTH packet, or failure.
 */
export type EnhancedAuthStep =
  | { readonly result: 'success'; readonly data?: Buffer }
  | { readonly result: 'continue'; readonly data?: Buffer }
  | { readonly result: 'fail'; readonly reasonCode?: number }

/** A SASL-like method such as SCRAM; one `exchange` per connection, fed every step in turn. */
export interface EnhancedAuthMethod {
  start(req: AuthRequest & { readonly data: Buffer | undefined }): EnhancedAuthExchange
}

export interface EnhancedAuthExchange {
  step(data: Buffer | undefined): EnhancedAuthStep | Promise<EnhancedAuthStep>
}

/** Policy hooks; the password and ACL files of issue 7 plug in here. */
export interface BrokerHooks {
  authenticate?(req: AuthRequest): AuthVerdict | Promise<AuthVerdict>
  authorizeSubscribe?(clientId: string, username: string | undefined, filter: string): boolean | Promise<boolean>
  /** MQTT 5 Authentication Methods the broker supports, by name; any other gets CONNACK 0x8C. */
  enhancedAuth?: ReadonlyMap<string, EnhancedAuthMethod>
}

export interface BrokerOptions {
  config: BrokerConfig
  log: Logger
  store?: Store
  hooks?: BrokerHooks
  /** Reported in `$SYS/broker/version`. */
  version?: string
}

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

/** How often keepalives and session expiry are checked. */
const SWEEP_MS = 500
/** What became of a routed message: whether anyone subscribed, and whether a full queue refused it. */
export interface PublishResult {
  readonly matched: boolean
  readonly rejected?: boolean
}

const MATCHED: Promise<PublishResult> = Promise.resolve({ matched: true })
const UNMATCHED: Promise<PublishResult> = Promise.resolve({ matched: false })

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
  readonly #onlineConnection = (clientId: string): Connection | undefined => this.#online.get(clientId)
  #sweep: NodeJS.Timeout | undefined
  /** Payload bytes of queue entries handed to the store and not yet written (store.max_bytes). */
  #unwrittenBytes = 0
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

  /** What waits for one connected or offline client, or undefined if it has no session. */
  clientBacklog(clientId: string): { queued: number; queuedBytes: number; inflight: number; buffered: number | undefined } | undefined {
    const session = this.#sessions.get(clientId)
    if (session === undefined) return undefined
    return { queued: session.queuedCount, queuedBytes: session.queuedBytes, inflight: session.inflightCount, buffered: this.#online.get(clientId)?.bufferedBytes }
  }

  /**
   * Network clients with a session, connected or offline (internal clients left out), for the
   * dashboard. Offline ones have no address, listener or protocol any more.
   */
  *clients(): Iterable<ClientInfo> {
    for (const s of this.#sessions.values()) {
      if (this.#internal.has(s.clientId)) continue
      const conn = this.#online.get(s.clientId)
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

  /** Clients that lost messages (full queue, expiry, too large), with how many: for `$SYS`. */
  *droppedByClient(): Iterable<[string, number]> {
    for (const s of this.#sessions.values()) if (s.droppedCount > 0) yield [s.clientId, s.droppedCount]
  }

  /** When each connection's CONNECT was accepted (a WeakMap: nothing to clean up when it goes). */
  readonly #connectedAt = new WeakMap<Connection, number>()

  /** Retained messages on their way to the store, by topic: `sendRetained` waits for them. */
  readonly #retainedWrites = new Map<string, Promise<void>>()

  #retainedLanding(topic: string, written: Promise<void>): void {
    const settled = written.then(
      () => undefined,
      () => undefined,
    )
    this.#retainedWrites.set(topic, settled)
    void settled.then(() => {
      if (this.#retainedWrites.get(topic) === settled) this.#retainedWrites.delete(topic)
    })
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
   * Routes a message to every matching session at the lower of its QoS and the subscription's
   * [MQTT-3.8.4-8], with the retain flag cleared unless the subscription asked for Retain As
   * Published [MQTT-3.3.1-12], to one member of each matching shared subscription
   * [MQTT-4.8.2-3], and updates the retained store [MQTT-3.3.1-5].
   *
   * In two steps: the routing decides which sessions get it and their store entries; those
   * (with the retained update and the caller's `ops`) are written in one batch; only then are the
   * messages handed to the sessions, and the returned promise resolves, so the caller's PUBACK /
   * PUBREC / PUBCOMP follows a durable write. Many publishes share a batch (group commit).
   * QoS 0 with nothing to store skips the store and resolves at once.
   */
  publish(message: Message, publisher?: { session: Session | undefined } & Throttle, ops: StoreOp[] = []): Promise<PublishResult> {
    if (message.retain && this.config.retainAvailable) ops.push({ op: 'set-retained', message })
    const { direct, shared } = this.#tree.match(message.topic, message.origin)
    const deliveries: Array<[Session, Queued]> = []
    let rejected = false
    const opsBefore = ops.length
    for (const m of direct.values()) {
      const session = this.#sessions.get(m.clientId)
      if (session === undefined) continue
      // The subscriber's ACL decides per message too: `read` on this topic [acl_file].
      if (session.canRead !== undefined && !session.canRead(message.topic)) continue
      const qos = m.qos < message.qos ? m.qos : message.qos
      const storedSoFar = (ops.length - opsBefore) * message.payload.length
      const full = qos > 0 && session.wouldReject(message.payload.length)
      if (full || (qos > 0 && this.#overStoreCap(session, message, storedSoFar))) {
        // queue_full_policy reject_new: not stored for this client; the publisher is told (v5 0x97).
        // A full queue is an episode, logged once (store.max_bytes is for all queues, not this one).
        this.#sessionEvents.dropped(session, 'queue-full', full && session.markFull())
        rejected = true
        continue
      }
      deliveries.push([session, this.#prepare(session, { message, qos, retain: m.retainAsPublished && message.retain, subscriptionIds: m.subscriptionIds }, ops)])
    }
    for (const group of shared) {
      const target = this.#pickShared(group, message, undefined)
      if (target !== undefined) deliveries.push([target[0], this.#prepare(target[0], target[1], ops)])
    }
    const matched = direct.size > 0 || shared.length > 0
    // Settled promises made once: the QoS 0 path allocates nothing for its result.
    const result = rejected ? Promise.resolve({ matched, rejected }) : matched ? MATCHED : UNMATCHED
    if (ops.length === 0) {
      this.#hand(deliveries, publisher)
      return result
    }
    // Bytes on their way to the store count against store.max_bytes until the write lands.
    const unwritten = (ops.length - opsBefore) * message.payload.length
    this.#unwrittenBytes += unwritten
    const written = this.store.write(ops)
    const landed = (): void => {
      this.#unwrittenBytes -= unwritten
    }
    written.then(landed, landed)
    if (message.retain && this.config.retainAvailable) this.#retainedLanding(message.topic, written)
    if (message.qos === 0) {
      // Nobody waits for a QoS 0 message: hand it on now; what it stored (a retained message, a
      // queue_qos0_messages entry) is written with the next batch.
      written.catch((err: unknown) => this.log.error({ err, topic: message.topic }, 'failed to store a QoS 0 message'))
      this.#hand(deliveries, publisher)
      return result
    }
    return written.then(() => {
      this.#hand(deliveries, publisher)
      return result
    })
  }

  /** The store entry for one delivery, when the session outlives its connection (QoS 0 only offline and asked for). */
  /** Whether `queue_full_policy: reject_new` would refuse `message` for any matching session (asked before PUBREC). */
  wouldReject(message: Message): boolean {
    if (this.config.queueFullPolicy !== 'reject_new') return false
    for (const m of this.#tree.match(message.topic, message.origin).direct.values()) {
      if (this.#sessions.get(m.clientId)?.wouldReject(message.payload.length) === true) return true
    }
    return false
  }

  /**
   * `store.max_bytes`: whether one more stored message would pass the cap for all queues. With
   * drop_oldest the receiving session gives up its oldest queued message (if it has one) to make
   * room; with reject_new (or nothing to give up) the message is refused for it.
   */
  #overStoreCap(session: Session, message: Message, alsoPending: number): boolean {
    const max = this.config.store.maxBytes
    if (max === 0 || session.clean) return false
    if (this.store.queuedBytes() + this.#unwrittenBytes + alsoPending + message.payload.length <= max) return false
    if (this.config.queueFullPolicy === 'drop_oldest' && session.dropOldest()) return false
    return true
  }

  #prepare(session: Session, item: Queued, ops: StoreOp[]): Queued {
    if (item.qos === 0 && (session.online || !this.config.queueQos0Messages)) return item
    return session.prepare(item, ops)
  }

  #hand(deliveries: ReadonlyArray<[Session, Queued]>, publisher: ({ session: Session | undefined } & Throttle) | undefined): void {
    for (const [session, item] of deliveries) {
      const backedUp = session.deliver(item)
      // A connected subscriber that cannot keep up slows its publishers (not itself: it would stop
      // reading its own acks) rather than letting the queue cap drop acknowledged messages.
      if (backedUp && publisher !== undefined && publisher.session !== session) session.hold(publisher)
    }
  }

  /**
   * The member of a shared subscription that gets the message; `exclude` is a member that just
   * left. A member whose ACL does not let it read the topic is passed over like one that cannot
   * take the message at all [acl_file], so the group's other members get it; when none may read
   * it, no one does, as for a plain subscription.
   */
  #pickShared(group: SharedGroup, message: Message, exclude: string | undefined): [Session, Queued] | undefined {
    const sub = pickMember(group, this.config.sharedSubscriptionStrategy, message.topic, message.origin, (s) => {
      if (s.clientId === exclude) return 0
      const member = this.#sessions.get(s.clientId)
      if (member === undefined || (member.canRead !== undefined && !member.canRead(message.topic))) return 0
      return member.fitness()
    })
    const session = sub === undefined ? undefined : this.#sessions.get(sub.clientId)
    if (sub === undefined || session === undefined) return undefined
    const id = sub.subscriptionId
    return [session, {
      message,
      qos: sub.qos < message.qos ? sub.qos : message.qos,
      retain: sub.retainAsPublished === true && message.retain,
      subscriptionIds: id === undefined ? undefined : [id],
      share: group.key,
    }]
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
    this.#connectedAt.set(conn, Date.now())
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

  /**
   * Sends the retained messages matching new subscriptions, flagged retain [MQTT-3.3.1-8], as
   * Retain Handling says [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]; none for shared
   * subscriptions (section 4.8.2) and none that have expired [MQTT-3.3.2-5].
   */
  async sendRetained(session: Session, subs: ReadonlyArray<{ filter: string; options: SubscriptionOptions; isNew: boolean }>): Promise<void> {
    for (const { filter, options, isNew } of subs) {
      const rh = options.retainHandling ?? 0
      if (rh === 2 || (rh === 1 && !isNew) || parseSharedFilter(filter) !== undefined) continue
      // A retained message routed just before this subscription, whose write has not landed,
      // would otherwise reach neither the live path nor the store lookup.
      const landing = [...this.#retainedWrites].filter(([topic]) => topicMatches(filter, topic)).map(([, p]) => p)
      if (landing.length > 0) await Promise.all(landing)
      const id = options.subscriptionId
      const now = Date.now()
      for (const message of await this.store.matchRetained(filter)) {
        if (message.expiresAt !== undefined && message.expiresAt <= now) continue
        if (session.canRead !== undefined && !session.canRead(message.topic)) continue
        session.deliver({ message, qos: options.qos < message.qos ? options.qos : message.qos, retain: true, subscriptionIds: id === undefined ? undefined : [id] })
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
    this.#slow.forget(session)
    conn.log.info({ protocolVersion: conn.version, reason }, 'client disconnected')
    // Messages a shared subscription gave this client, not yet acknowledged, go to another member.
    if (!session.online) this.#redistributeShared(session)
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

  #redistributeShared(session: Session): void {
    session.releaseShared((item) => {
      const group = item.share === undefined ? undefined : this.#tree.sharedGroup(item.share)
      const target = group === undefined ? undefined : this.#pickShared(group, item.message, session.clientId)
      if (target === undefined) return false
      const ops: StoreOp[] = []
      const prepared = this.#prepare(target[0], target[1], ops)
      for (const op of ops) this.#record(op)
      target[0].deliver(prepared)
      return true
    })
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
    if (this.#sweep !== undefined) clearInterval(this.#sweep)
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

  /** Incoming QoS 2 messages whose PUBREL never came within `await_rel_timeout` are dropped, logged once per sweep. */
  #expireAwaitingRel(session: Session, before: number): void {
    let dropped = 0
    for (const [id, at] of session.incomingAt) {
      if (at > before) continue
      session.incomingAt.delete(id)
      session.incomingQos2.delete(id)
      this.#record({ op: 'del-incoming', clientId: session.clientId, packetId: id })
      dropped++
    }
    if (dropped === 0) return
    this.stats.publishDropped += dropped
    session.droppedCount += dropped
    this.log.warn({ clientId: session.clientId, dropped, awaitRelTimeout: this.config.awaitRelTimeout }, 'dropped QoS 2 messages whose PUBREL did not come within await_rel_timeout')
  }

  #sweepTimers(): void {
    const now = Date.now()
    for (const conn of this.#connections) {
      const live = conn.state === 'open' || conn.state === 'connecting'
      // A connection that never finishes CONNECT is closed by its own connect_timeout timer (Connection).
      if (live && conn.keepalive > 0 && !conn.held && now - conn.lastSeen > conn.keepalive * 1500) {
        // Silent for one and a half keepalive periods: [MQTT-3.1.2-24] in 3.1.1, [MQTT-3.1.2-22] in 5.0.
        conn.log.info({ keepalive: conn.keepalive }, 'keepalive timeout')
        // Before CONNACK (an unfinished AUTH exchange) there is no DISCONNECT to send [MQTT-3.14.0-1].
        conn.close('keepalive timeout', true, ReasonCode.KeepAliveTimeout)
      }
    }
    this.#slow.sweep(this.#connections, this.#onlineConnection, now)
    this.#wills.sweep(now)
    const relTimeout = this.config.awaitRelTimeout * 1000
    for (const session of this.#sessions.values()) {
      session.checkStall(now)
      if (relTimeout > 0 && session.incomingAt.size > 0) this.#expireAwaitingRel(session, now - relTimeout)
      if (!session.online && session.expiresAt !== undefined && session.expiresAt <= now) {
        this.log.info({ clientId: session.clientId }, 'persistent session expired')
        this.#discard(session)
      }
    }
  }
}
