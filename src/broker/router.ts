import type { Logger } from 'pino'
import type { Store, StoreOp } from '../store/types.js'
import type { BrokerConfig } from './broker-options.js'
import type { RetainedSender } from './retained-sender.js'
import type { Queued, Session, SessionEvents, Throttle } from './session.js'
import { SharedDelivery } from './shared-delivery.js'
import { StoreCap } from './store-cap.js'
import type { SubscriptionTree } from './subscription-tree.js'
import type { Message } from './types.js'

/** What became of a routed message: whether anyone subscribed, and whether a full queue refused it. */
export interface PublishResult {
  readonly matched: boolean
  readonly rejected?: boolean
}

const MATCHED: Promise<PublishResult> = Promise.resolve({ matched: true })
const UNMATCHED: Promise<PublishResult> = Promise.resolve({ matched: false })

/** What routing reads and writes; the collections are the broker's own. */
export interface RouterParts {
  /** Read at each use: a reload (SIGHUP) updates this object in place. */
  readonly config: BrokerConfig
  readonly log: Logger
  readonly store: Store
  readonly tree: SubscriptionTree
  readonly sessions: ReadonlyMap<string, Session>
  readonly retained: RetainedSender
  readonly events: SessionEvents
  /** Writes `op` with the next batch without waiting for it. */
  readonly record: (op: StoreOp) => void
}

/** Routing of published messages to sessions, through the store (store.max_bytes, retained writes, shared subscriptions). */
export class Router {
  readonly #config: BrokerConfig
  readonly #log: Logger
  readonly #store: Store
  readonly #tree: SubscriptionTree
  readonly #sessions: ReadonlyMap<string, Session>
  readonly #retained: RetainedSender
  readonly #events: SessionEvents
  readonly #storeCap: StoreCap
  readonly #shared: SharedDelivery

  constructor(parts: RouterParts) {
    this.#config = parts.config
    this.#log = parts.log
    this.#store = parts.store
    this.#tree = parts.tree
    this.#sessions = parts.sessions
    this.#retained = parts.retained
    this.#events = parts.events
    this.#storeCap = new StoreCap(parts.config, parts.store)
    this.#shared = new SharedDelivery(parts.config, parts.sessions, parts.tree, (target, item) => {
      const ops: StoreOp[] = []
      const prepared = this.#prepare(target, item, ops)
      for (const op of ops) parts.record(op)
      target.deliver(prepared)
    })
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
    if (message.retain && this.#config.retainAvailable) ops.push({ op: 'set-retained', message })
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
      if (full || (qos > 0 && this.#storeCap.over(session, message, storedSoFar))) {
        // queue_full_policy reject_new: not stored for this client; the publisher is told (v5 0x97).
        // A full queue is an episode, logged once (store.max_bytes is for all queues, not this one).
        this.#events.dropped(session, 'queue-full', full && session.markFull())
        rejected = true
        continue
      }
      deliveries.push([session, this.#prepare(session, { message, qos, retain: m.retainAsPublished && message.retain, subscriptionIds: m.subscriptionIds }, ops)])
    }
    for (const group of shared) {
      const target = this.#shared.pick(group, message, undefined)
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
    const written = this.#storeCap.writing(unwritten, () => this.#store.write(ops))
    if (message.retain && this.#config.retainAvailable) this.#retained.landing(message.topic, written)
    if (message.qos === 0) {
      // Nobody waits for a QoS 0 message: hand it on now; what it stored (a retained message, a
      // queue_qos0_messages entry) is written with the next batch.
      written.catch((err: unknown) => this.#log.error({ err, topic: message.topic }, 'failed to store a QoS 0 message'))
      this.#hand(deliveries, publisher)
      return result
    }
    return written.then(() => {
      this.#hand(deliveries, publisher)
      return result
    })
  }

  /** Whether `queue_full_policy: reject_new` would refuse `message` for one of the matching sessions (asked before PUBREC). */
  wouldReject(message: Message): boolean {
    if (this.#config.queueFullPolicy !== 'reject_new') return false
    for (const m of this.#tree.match(message.topic, message.origin).direct.values()) {
      if (this.#sessions.get(m.clientId)?.wouldReject(message.payload.length) === true) return true
    }
    return false
  }

  /** The store entry for one delivery, when the session outlives its connection (QoS 0 only offline and asked for). */
  #prepare(session: Session, item: Queued, ops: StoreOp[]): Queued {
    if (item.qos === 0 && (session.online || !this.#config.queueQos0Messages)) return item
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

  /** A leaving member's unacknowledged shared-subscription messages go to another member (shared-delivery.ts). */
  redistributeShared(session: Session): void {
    this.#shared.redistribute(session)
  }
}
