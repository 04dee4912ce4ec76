import type { QueueEntry, QueueInfo, StoreOp } from '../store/types.js'
import { Backpressure } from './backpressure.js'
import { releaseShared, resendInflight } from './session-handover.js'
import { oldestReceivedAt, SessionQueue } from './session-queue.js'
import { entryOp, loadPage, prepareEntry, readPage } from './session-store.js'
import type { AckResult, Inflight, Outlet, Queued, SessionEvents, SessionJournal, SessionLimits, Throttle } from './session-types.js'
import type { SubscriptionOptions } from './subscription-tree.js'
import type { Message } from './types.js'

export type { AckResult, DropReason, Outlet, Queued, SessionEvents, SessionJournal, SessionLimits, Throttle } from './session-types.js'

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
  readonly #queue = new SessionQueue()
  #nextId = 1
  #outlet: Outlet | undefined
  readonly #flow: Backpressure
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
    this.#flow = new Backpressure(limits.maxQueuedMessages, () => this.#events.stalled(this))
  }

  get limits(): SessionLimits {
    return this.#limits
  }

  /** Replaces the limits (a persistent internal session restored at start gets its owner's). */
  setLimits(limits: SessionLimits): void {
    this.#limits = limits
    this.#flow.setLimit(limits.maxQueuedMessages)
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
    return oldestReceivedAt(this.#inflight.values(), this.#queue)
  }

  /** Payload bytes in the queue (in memory and on disk), not counting messages in flight. */
  get queuedBytes(): number {
    return this.#queue.bytes
  }

  /** Connects the session to an outlet: resends what the last connection left unacknowledged, then whatever was queued. */
  attach(outlet: Outlet): void {
    this.#outlet = outlet
    this.expiresAt = undefined
    resendInflight(this.#inflight, outlet, () => this.#events.dropped(this, 'too-large', false))
    this.#pump()
  }

  /** Disconnects `outlet` if it is the one attached (a takeover may have replaced it already). */
  detach(outlet: Outlet): void {
    if (this.#outlet !== outlet) return
    this.#outlet = undefined
    // An offline session is not worth waiting for: its queue caps it instead.
    this.#flow.releaseAll()
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
    return outlet !== undefined && item.qos > 0 && this.#limits.holdPublishers !== false && this.#flow.backedUp(this.#queue.count)
  }

  /**
   * Gives a message bound for this session its place in the store, when the session outlives
   * its connection: the put goes into `ops`, which the broker writes (with the PUBLISH's other
   * changes) before acknowledging the publisher and calling deliver().
   */
  prepare(item: Queued, ops: StoreOp[]): Queued {
    return this.clean ? item : prepareEntry(this.clientId, this.#nextSeq++, item, ops)
  }

  /**
   * Puts back what the store held for this session after a restart: entries that had been sent
   * go in flight again under their packet id (resent with DUP, or PUBREL after PUBREC), the rest
   * are queued, in store order. `entries` is the first page; `info` counts them all.
   */
  restore(entries: readonly QueueEntry[], info: QueueInfo): void {
    this.#queue.setStored(info.count, info.bytes)
    if (info.lastSeq >= this.#nextSeq) this.#nextSeq = info.lastSeq + 1
    loadPage(this.#queue, this.#inflight, entries)
  }

  /** How fit this session is to take one more message now (for shared subscriptions). */
  fitness(): 0 | 1 | 2 {
    const outlet = this.#outlet
    if (outlet === undefined) return this.clean ? 0 : 1
    return this.#queue.count === 0 && this.#inflight.size < this.#window(outlet) ? 2 : 1
  }

  /** Offers what came through shared subscriptions to other members of their groups, as this one goes away (see session-handover.ts). */
  releaseShared(route: (item: Queued) => boolean): void {
    releaseShared(this.#inflight, this.#queue, route, (item) => this.#forget(item))
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
    this.#flow.hold(publisher)
  }

  /** Stops holding publishers for a session backed up too long (see Backpressure.checkStall); for the broker's sweep. */
  checkStall(now: number): void {
    this.#flow.checkStall(now)
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
      this.#journal.commit(entryOp(this.clientId, f, packetId, 'pubrel')).then(release, release)
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

  /** Drops everything: used when a clean session ends or a session expires. */
  clear(): void {
    this.#inflight.clear()
    this.#queue.clear()
    this.incomingQos2.clear()
    this.incomingAt.clear()
    this.subscriptions.clear()
    this.#flow.releaseAll()
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
    return this.#queue.markFull()
  }

  /** Under `reject_new`, whether a message of `size` bytes would be refused now (the publisher is told, v5 0x97). */
  wouldReject(size: number): boolean {
    return this.#limits.queueFullPolicy === 'reject_new' && this.#queue.isFull(this.#limits, size)
  }

  #enqueue(item: Queued): void {
    const size = item.message.payload.length
    while (this.#queue.isFull(this.#limits, size)) {
      // One log line per episode, not one per message: re-armed when the queue drains.
      this.#events.dropped(this, 'queue-full', this.#queue.markFull())
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
    if (!this.#queue.wantsPage) return
    readPage(this.#queue, this.#journal, this.clientId, (entries) => {
      loadPage(this.#queue, this.#inflight, entries)
      this.#pump()
    })
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
    if (this.#queue.roomAgain(this.#limits.maxQueuedMessages)) this.#events.queueRoom(this)
    this.#refill()
    this.#flow.drained(this.#queue.count)
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
      const op = entryOp(this.clientId, item, id, 'publish')
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
