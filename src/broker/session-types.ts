import type { QueueEntry, StoreOp } from '../store/types.js'
import type { Session } from './session.js'
import type { Message, QoS } from './types.js'

// The types a session shares with its broker and outlets, apart from the Session class so the
// modules it is split into can use them too. Callers import them from session.js (re-exported).

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
  /** A client's stored queue entries after `afterSeq`, in order (see session-store.ts). */
  read(clientId: string, afterSeq: number, limit: number): Promise<QueueEntry[]>
}

/** One delivery of a message to a session. */
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

export interface Inflight extends Queued {
  /** 'publish' until PUBREC (QoS 2) or PUBACK (QoS 1); 'pubrel' after PUBREC until PUBCOMP. */
  state: 'publish' | 'pubrel'
}
