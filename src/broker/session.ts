import type { QueueEntry, QueueInfo, StoreOp } from '../store/types.js'
import { OutboundQueue, PAGE } from './outbound-queue.js'
import type { SubscriptionOptions } from './subscription-tree.js'
import type { Message, QoS } from './types.js'

/**
 * Where a session's messages go: a network connection, or an internal client's callback.
 * The session decides what to send and when; the outlet only encodes and writes.
 */
export interface Outlet {
  /**
   * Encodes and writes one PUBLISH. Returns false when it was not sent because it is larger than
   * the client's Maximum Packet Size [MQTT-3.1.2-25], or expired on the way.
   */
  sendPublish(message: Message, qos: QoS, packetId: number | undefined, retain: boolean, dup: boolean, subscriptionIds?: readonly number[]): boolean
  sendPubrel(packetId: number): void
  /** True while the transport has more buffered than it should; QoS 0 is dropped then. */
  readonly congested: boolean
  /** The client's Receive Maximum (MQTT 5): at most this many QoS 1/2 messages unacknowledged [MQTT-3.3.4-9]. */
  readonly receiveMaximum: number
}

/**
 * A publisher that can be slowed down: a network connection stops reading its socket while held,
 * so TCP pushes back on the client instead of the broker dropping what it already acknowledged.
 */
export interface Throttle {
  hold(): void
  release(): void
}

/** A session above its high-water mark this long is treated as stuck and no longer slows publishers. */
const STALL_MS = 5000

/** Limits and callbacks a session gets from its broker. */
export interface SessionLimits {
  maxInflight: number
  maxQueuedMessages: number
  maxQueuedBytes: number
  queueQos0Messages: boolean
  /** A full queue drops its oldest message for the new one, or refuses the new one. */
  queueFullPolicy: 'drop_oldest' | 'reject_new'
  /**
   * Whether a connected session that falls behind holds its publishers (default true). An
   * outbox that is meant to grow on disk (the upstream bridge) must not slow local clients.
   */
  holdPublishers?: boolean
}

export type DropReason = 'queue-full' | 'congested' | 'expired' | 'too-large'

export interface SessionEvents {
  /** A message was dropped for this session; `first` is true once per full-queue episode. */
  dropped(session: Session, reason: DropReason, first: boolean): void
  /** A PUBLISH was handed to the outlet. */
  sent(session: Session): void
  /** The queue was full and has room again (half empty): logged once, as its filling was. */
  queueRoom(session: Session): void
  /** The session stayed above its high-water mark for STALL_MS: publishers are no longer held for it. */
  stalled(session: Session): void
}

export type AckResult = 'ok' | 'unknown' | 'mismatch'

/**
 * Where a persistent session writes its changes: the broker's store. `record` is written with the
 * next batch and not waited for (an ack, a packet id of a QoS 1 delivery: losing one in a crash
 * costs at most a duplicate QoS 1 delivery); `commit` resolves once the op is durable.
 */
export interface SessionJournal {
  record(op: StoreOp): void
  commit(op: StoreOp): Promise<void>
  /** A client's stored queue entries after `afterSeq`, in order (see Session paging). */
  read(clientId: string, afterSeq: number, limit: number): Promise<QueueEntry[]>
}


/** One delivery of a message to this session. */
export interface Queued {
  readonly message: Message
  readonly qos: QoS
  readonly retain: boolean
  readonly subscriptionIds?: readonly number[] | undefined
  /** The shared subscription it came through, so it can go to another member if this one leaves. */
  readonly share?: string | undefined
  /** Its key in the store's queue for this client; undefined for sessions kept in memory only. */
  readonly seq?: number | undefined
}

interface Inflight extends Queued {
  /** 'publish' until PUBREC (QoS 2) or PUBACK (QoS 1); 'pubrel' after PUBREC until PUBCOMP. */
  state: 'publish' | 'pubrel'
}

/**
 * One client's session state [MQTT-3.1.2-4]: subscriptions, outgoing QoS 1/2 messages in flight
 * and queued behind the window, and incoming QoS 2 messages awaiting PUBREL. It lives on while a
 * persistent client is offline, so it knows nothing about sockets.
 */
export class Session {
  readonly clientId: string
  /** Discarded when the connection ends: clean session (3.1.1) or Session Expiry Interval 0 (MQTT 5). */
  clean: boolean
  /** Session Expiry Interval in seconds; 0xFFFFFFFF = never (3.1.1 persistent sessions). */
  expiryInterval = 0
  /** Messages dropped for this client (full queue, expiry, too large), for `$SYS`. */
  droppedCount = 0
  /** filter (shared ones with their `$share/g/` prefix) -> granted QoS and options; mirrored into the subscription tree. */
  readonly subscriptions = new Map<string, SubscriptionOptions>()
  /** Incoming QoS 2 messages held until PUBREL, then published once [MQTT-4.3.3-2]. */
  readonly incomingQos2 = new Map<number, Message>()
  /** When each of those arrived (Unix ms), for `await_rel_timeout`. */
  readonly incomingAt = new Map<number, number>()
  /** Set while over `max_awaiting_rel`, so the refusal is logged once per episode. */
  awaitingRelFull = false
  /** Unix ms when an offline session expires; undefined while connected or never. */
  expiresAt: number | undefined
  /** The client's ACL on receiving a topic, bound at CONNECT; undefined = no ACL. */
  canRead: ((topic: string) => boolean) | undefined

  readonly #inflight = new Map<number, Inflight>()
  readonly #queue = new OutboundQueue()
  #nextId = 1
  #outlet: Outlet | undefined
  #full = false
  /** Publishers held until this session's queue drains below the low-water mark. */
  readonly #held = new Set<Throttle>()
  /** When the queue last went above the high-water mark; undefined while below it. */
  #highSince: number | undefined
  #stalled = false
  #highWater: number
  #limits: SessionLimits
  readonly #events: SessionEvents
  readonly #journal: SessionJournal
  /** Next store key for this client's queue; only grows. */
  #nextSeq = 1
  /**
   * Set while a QoS 2 PUBLISH waits for its packet id to be durable before it is sent: sending
   * first and crashing before the write would resend it after a restart under a new packet id,
   * which the client would take as a second message. Everything after it waits too, in order.
   */
  #barrier: Promise<void> | undefined

  constructor(clientId: string, clean: boolean, limits: SessionLimits, events: SessionEvents, journal: SessionJournal) {
    this.clientId = clientId
    this.clean = clean
    this.#limits = limits
    this.#events = events
    this.#journal = journal
    // Half the cap leaves room for what held publishers already had on the wire.
    this.#highWater = limits.maxQueuedMessages > 0 ? Math.max(1, Math.ceil(limits.maxQueuedMessages / 2)) : 1000
  }

  get limits(): SessionLimits {
    return this.#limits
  }

  /** Replaces the limits (a persistent internal session restored at start gets its owner's). */
  setLimits(limits: SessionLimits): void {
    this.#limits = limits
    this.#highWater = limits.maxQueuedMessages > 0 ? Math.max(1, Math.ceil(limits.maxQueuedMessages / 2)) : 1000
  }

  get online(): boolean {
    return this.#outlet !== undefined
  }

  get inflightCount(): number {
    return this.#inflight.size
  }

  get queuedCount(): number {
    return this.#queue.count
  }

  /** When the oldest message waiting here (in flight or first in the queue) was received; undefined when none or unknown. */
  get oldestReceivedAt(): number | undefined {
    let oldest: number | undefined
    for (const f of this.#inflight.values()) {
      const at = f.message.receivedAt
      if (at !== undefined && (oldest === undefined || at < oldest)) oldest = at
    }
    const head = this.#queue.peek()?.message.receivedAt
    return head !== undefined && (oldest === undefined || head < oldest) ? head : oldest
  }

  /** Payload bytes in the queue (in memory and on disk), not counting messages in flight. */
  get queuedBytes(): number {
    return this.#queue.bytes
  }

  /**
   * Connects the session to an outlet and resends what the last connection left unacknowledged:
   * PUBLISH with DUP for messages without PUBREC, PUBREL for the rest, in their original
   * order [MQTT-4.4.0-1], then whatever was queued.
   */
  attach(outlet: Outlet): void {
    this.#outlet = outlet
    this.expiresAt = undefined
    for (const [id, f] of this.#inflight) {
      if (f.state === 'pubrel') {
        outlet.sendPubrel(id)
      } else if (!outlet.sendPublish(f.message, f.qos, id, f.retain, true, f.subscriptionIds)) {
        // Only a client whose new Maximum Packet Size is smaller than the message gets here.
        this.#inflight.delete(id)
        this.#events.dropped(this, 'too-large', false)
      }
    }
    this.#pump()
  }

  /** Disconnects `outlet` if it is the one attached (a takeover may have replaced it already). */
  detach(outlet: Outlet): void {
    if (this.#outlet !== outlet) return
    this.#outlet = undefined
    // An offline session is not worth waiting for: its queue caps it instead.
    this.#releaseHeld()
  }

  /**
   * Delivers or queues one message at the QoS already downgraded to the subscription's. Returns
   * true when the session is connected but backed up, so the publisher should be held.
   */
  deliver(item: Queued): boolean {
    const outlet = this.#outlet
    if (this.#barrier !== undefined) {
      // Behind a QoS 2 send that waits for the store: queue, to keep the order.
      this.#enqueue(item)
      return false
    }
    if (item.qos === 0) {
      if (outlet !== undefined) {
        if (outlet.congested) {
          this.#events.dropped(this, 'congested', false)
          return false
        }
        this.#sendQos0(outlet, item)
        return false
      }
      // Offline: QoS 0 is not part of session state unless the operator asks for it.
      if (!this.#limits.queueQos0Messages) return false
    } else if (outlet !== undefined && this.#queue.count === 0 && this.#inflight.size < this.#window(outlet)) {
      this.#send(outlet, item)
      return false
    }
    this.#enqueue(item)
    return outlet !== undefined && item.qos > 0 && this.#limits.holdPublishers !== false && this.#backedUp()
  }

  /**
   * Gives a message bound for this session its place in the store, when the session outlives
   * its connection: the put goes into `ops`, which the broker writes (with the PUBLISH's other
   * changes) before acknowledging the publisher and calling deliver().
   */
  prepare(item: Queued, ops: StoreOp[]): Queued {
    if (this.clean) return item
    const seq = this.#nextSeq++
    const { message, qos, retain, subscriptionIds, share } = item
    ops.push({ op: 'put-entry', clientId: this.clientId, entry: { seq, message, qos, retain, subscriptionIds, share } })
    return { message, qos, retain, subscriptionIds, share, seq }
  }

  /**
   * Puts back what the store held for this session after a restart: entries that had been sent
   * go in flight again under their packet id (resent with DUP, or PUBREL after PUBREC), the rest
   * are queued, in store order. `entries` is the first page; `info` counts them all.
   */
  restore(entries: readonly QueueEntry[], info: QueueInfo): void {
    this.#queue.setStored(info.count, info.bytes)
    if (info.lastSeq >= this.#nextSeq) this.#nextSeq = info.lastSeq + 1
    this.#load(entries)
  }

  /** Takes a page read from the store into memory: entries that had been sent go in flight. */
  #load(entries: readonly QueueEntry[]): void {
    this.#queue.absorb(entries, (e) => {
      if (e.packetId === undefined || this.#inflight.has(e.packetId)) return false
      const { message, qos, retain, subscriptionIds, share, seq } = e
      this.#inflight.set(e.packetId, { message, qos, retain, subscriptionIds, share, seq, state: e.state ?? 'publish' })
      return true
    })
  }

  /** How fit this session is to take one more message now (for shared subscriptions). */
  fitness(): 0 | 1 | 2 {
    const outlet = this.#outlet
    if (outlet === undefined) return this.clean ? 0 : 1
    return this.#queue.count === 0 && this.#inflight.size < this.#window(outlet) ? 2 : 1
  }

  /**
   * Offers the messages that came through shared subscriptions and that the client has not taken
   * to another member of their group, as this one goes away: those still queued, and QoS 1 ones
   * sent without a PUBACK. A QoS 2 PUBLISH already sent stays: only this client may complete it
   * [MQTT-4.8.2-4] [MQTT-4.8.2-5]. `route` returns true when another member took the message; a
   * message nobody else can take stays here, unchanged (same packet id, DUP on resend).
   */
  releaseShared(route: (item: Queued) => boolean): void {
    for (const [id, f] of this.#inflight) {
      if (f.share !== undefined && f.state === 'publish' && f.qos === 1 && route(f)) {
        this.#inflight.delete(id)
        this.#forget(f)
      }
    }
    if (!this.#queue.some((q) => q.share !== undefined)) return
    this.#queue.filter((q) => {
      if (q.share === undefined || !route(q)) return true
      this.#forget(q)
      return false
    })
  }


  /** Our own cap and the client's Receive Maximum, whichever is lower [MQTT-3.3.4-9]. */
  #window(outlet: Outlet): number {
    const max = this.#limits.maxInflight
    return outlet.receiveMaximum < max ? outlet.receiveMaximum : max
  }

  /** True when the message's expiry interval ran out before it could be sent [MQTT-3.3.2-5]. */
  #expired(item: Queued): boolean {
    const at = item.message.expiresAt
    if (at === undefined || at > Date.now()) return false
    this.#events.dropped(this, 'expired', false)
    return true
  }

  /** Holds `publisher` until this session's queue drains (see deliver()). */
  hold(publisher: Throttle): void {
    if (this.#held.has(publisher)) return
    this.#held.add(publisher)
    publisher.hold()
  }

  /**
   * Gives up on a session that has stayed backed up for STALL_MS, so a client that stops reading
   * cannot hold its publishers forever; the queue cap applies to it from then on. Called on each
   * delivery and by the broker's sweep (held publishers send nothing that would call deliver).
   */
  checkStall(now: number): void {
    if (this.#stalled || this.#highSince === undefined || now - this.#highSince <= STALL_MS) return
    this.#stalled = true
    this.#releaseHeld()
    this.#events.stalled(this)
  }

  #backedUp(): boolean {
    if (this.#queue.count < this.#highWater) return false
    const now = Date.now()
    this.#highSince ??= now
    this.checkStall(now)
    return !this.#stalled
  }

  #releaseHeld(): void {
    if (this.#held.size === 0) return
    const held = [...this.#held]
    this.#held.clear()
    for (const p of held) p.release()
  }

  /**
   * PUBACK for a QoS 1 message. 'unknown' ids are tolerated (the client may answer a delivery
   * from before a restart); an ack of the wrong kind for a known id is 'mismatch'.
   */
  puback(packetId: number): AckResult {
    const f = this.#inflight.get(packetId)
    if (f === undefined) return 'unknown'
    if (f.qos !== 1) return 'mismatch'
    this.#inflight.delete(packetId)
    this.#forget(f)
    this.#pump()
    return 'ok'
  }

  /**
   * PUBREC for a QoS 2 message: `release` sends the PUBREL. For a persistent session it waits until
   * the new state is durable: a PUBREL sent before that, then a crash, would make the restarted
   * broker resend the PUBLISH to a client that has already completed it, and it would take it
   * as a new message. A repeated or unknown PUBREC is answered at once.
   */
  pubrec(packetId: number, release: () => void): AckResult {
    const f = this.#inflight.get(packetId)
    if (f === undefined) {
      release()
      return 'unknown'
    }
    if (f.qos !== 2) return 'mismatch'
    if (f.state !== 'pubrel' && f.seq !== undefined) {
      f.state = 'pubrel'
      this.#journal.commit(this.#entryOp(f, packetId, 'pubrel')).then(release, release)
      return 'ok'
    }
    f.state = 'pubrel'
    release()
    return 'ok'
  }

  /** An MQTT 5 PUBREC with a failure code: the client refused the message, and the exchange ends. */
  pubrecFailed(packetId: number): AckResult {
    const f = this.#inflight.get(packetId)
    if (f === undefined) return 'unknown'
    if (f.qos !== 2) return 'mismatch'
    this.#inflight.delete(packetId)
    this.#forget(f)
    this.#pump()
    return 'ok'
  }

  /** PUBCOMP ends a QoS 2 delivery; valid only after PUBREC. */
  pubcomp(packetId: number): AckResult {
    const f = this.#inflight.get(packetId)
    if (f === undefined) return 'unknown'
    if (f.state !== 'pubrel') return 'mismatch'
    this.#inflight.delete(packetId)
    this.#forget(f)
    this.#pump()
    return 'ok'
  }

  /** Acknowledges a delivery in one step, whatever its QoS: for internal clients. */
  complete(packetId: number): void {
    const f = this.#inflight.get(packetId)
    if (f === undefined) return
    this.#inflight.delete(packetId)
    this.#forget(f)
    this.#pump()
  }

  /** A delivery is over (acknowledged, dropped or handed on): its store entry goes. */
  #forget(item: Queued): void {
    if (item.seq !== undefined) this.#journal.record({ op: 'del-entry', clientId: this.clientId, seq: item.seq, bytes: item.message.payload.length })
  }

  #entryOp(item: Queued, packetId: number, state: 'publish' | 'pubrel'): StoreOp {
    const { message, qos, retain, subscriptionIds, share } = item
    return { op: 'put-entry', clientId: this.clientId, entry: { seq: item.seq ?? 0, message, qos, retain, subscriptionIds, share, packetId, state } }
  }

  /** Drops everything: used when a clean session ends or a session expires. */
  clear(): void {
    this.#inflight.clear()
    this.#queue.clear()
    this.incomingQos2.clear()
    this.incomingAt.clear()
    this.subscriptions.clear()
    this.#releaseHeld()
  }

  /** True when one more message of `size` bytes does not fit under `max_queued_messages` / `max_queued_bytes`. */
  #isFull(size: number): boolean {
    const { maxQueuedMessages, maxQueuedBytes } = this.#limits
    return (maxQueuedMessages > 0 && this.#queue.count >= maxQueuedMessages) || (maxQueuedBytes > 0 && this.#queue.bytes + size > maxQueuedBytes)
  }

  /** Drops the oldest queued message (not one in flight) to make room: `store.max_bytes` under drop_oldest. */
  dropOldest(): boolean {
    const oldest = this.#queue.shift()
    if (oldest === undefined) return false
    this.#forget(oldest)
    this.#events.dropped(this, 'queue-full', false)
    return true
  }

  /**
   * Marks the queue full, for a message `reject_new` refused before it reached deliver() (see
   * wouldReject); true the first time in an episode, so the broker logs the episode once, and
   * the "room again" line closes it as for a queue that filled in #enqueue.
   */
  markFull(): boolean {
    if (this.#full) return false
    this.#full = true
    return true
  }

  /** Under `reject_new`, whether a message of `size` bytes would be refused now (the publisher is told, v5 0x97). */
  wouldReject(size: number): boolean {
    return this.#limits.queueFullPolicy === 'reject_new' && this.#isFull(size)
  }

  #enqueue(item: Queued): void {
    const size = item.message.payload.length
    while (this.#isFull(size)) {
      // One log line per episode, not one per message: re-armed when the queue drains.
      this.#events.dropped(this, 'queue-full', !this.#full)
      this.#full = true
      const oldest = this.#limits.queueFullPolicy === 'drop_oldest' ? this.#queue.shift() : undefined
      if (oldest === undefined) {
        this.#forget(item)
        return
      }
      this.#forget(oldest)
    }
    this.#queue.push(item)
  }

  /** Reads the next page from the store when memory runs low and the store holds more. */
  #refill(): void {
    const queue = this.#queue
    if (!queue.wantsPage) return
    queue.loading = true
    this.#journal.read(this.clientId, queue.frontier, PAGE).then(
      (entries) => {
        queue.loading = false
        this.#load(entries)
        this.#pump()
      },
      () => {
        // The store could not be read: try again on the next acknowledgement or delivery.
        queue.loading = false
      },
    )
  }

  #pump(): void {
    const outlet = this.#outlet
    if (outlet === undefined || this.#barrier !== undefined) return
    for (let head = this.#queue.peek(); head !== undefined; head = this.#queue.peek()) {
      if (head.qos > 0 && this.#inflight.size >= this.#window(outlet)) break
      this.#queue.shift()
      if (head.qos === 0) this.#sendQos0(outlet, head)
      else this.#send(outlet, head)
      if (this.#barrier !== undefined) break
    }
    if (this.#full && this.#queue.count * 2 <= this.#limits.maxQueuedMessages) {
      this.#full = false
      this.#events.queueRoom(this)
    }
    this.#refill()
    if (this.#queue.count <= this.#highWater / 2) {
      this.#highSince = undefined
      this.#stalled = false
      this.#releaseHeld()
    }
  }

  #sendQos0(outlet: Outlet, item: Queued): void {
    this.#forget(item)
    if (this.#expired(item)) return
    if (outlet.sendPublish(item.message, 0, undefined, item.retain, false, item.subscriptionIds)) this.#events.sent(this)
    else this.#events.dropped(this, 'too-large', false)
  }

  #send(outlet: Outlet, item: Queued): void {
    if (this.#expired(item)) {
      this.#forget(item)
      return
    }
    const id = this.#allocateId()
    // Spelled out rather than spread: this runs once per QoS 1/2 delivery.
    const f: Inflight = { message: item.message, qos: item.qos, retain: item.retain, subscriptionIds: item.subscriptionIds, share: item.share, seq: item.seq, state: 'publish' }
    this.#inflight.set(id, f)
    if (item.seq !== undefined) {
      const op = this.#entryOp(item, id, 'publish')
      if (item.qos === 2) {
        this.#sendWhenDurable(op, id, f)
        return
      }
      this.#journal.record(op)
    }
    this.#transmit(outlet, id, f)
  }

  #transmit(outlet: Outlet, id: number, f: Inflight): void {
    if (outlet.sendPublish(f.message, f.qos, id, f.retain, false, f.subscriptionIds)) {
      this.#events.sent(this)
      return
    }
    // Too large for this client: dropped for it alone, and its packet id is free again.
    this.#inflight.delete(id)
    this.#forget(f)
    this.#events.dropped(this, 'too-large', false)
  }

  /** A QoS 2 delivery of a persistent session: its packet id on disk first (see #barrier). */
  #sendWhenDurable(op: StoreOp, id: number, f: Inflight): void {
    const done = (): void => {
      this.#barrier = undefined
      const outlet = this.#outlet
      // Still ours and not yet sent; if the client left meanwhile, attach() resends it.
      if (outlet !== undefined && this.#inflight.get(id) === f) this.#transmit(outlet, id, f)
      this.#pump()
    }
    this.#barrier = this.#journal.commit(op).then(done, done)
  }

  /** Packet ids are 1..65535 and unique among this session's unacknowledged messages [MQTT-2.3.1-2]. */
  #allocateId(): number {
    for (;;) {
      const id = this.#nextId
      this.#nextId = id === 65535 ? 1 : id + 1
      if (!this.#inflight.has(id)) return id
    }
  }
}
