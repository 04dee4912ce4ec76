import type { SubscriptionOptions } from '../broker/subscription-tree.js'
import type { Message, QoS } from '../broker/types.js'

/** What survives of a persistent session while its client is away (subscriptions, expiry). */
export interface SessionRecord {
  readonly clientId: string
  /** Filters with their options (QoS, and for MQTT 5 No Local, Retain As Published, Retain Handling, Subscription Identifier). */
  readonly subscriptions: ReadonlyArray<SubscriptionOptions & { readonly filter: string }>
  /** Unix time in ms after which the session may be discarded; undefined = never. */
  expiresAt?: number
  /** Session Expiry Interval in seconds (0xFFFFFFFF = never); undefined in records from before MQTT 5. */
  readonly expiryInterval?: number
}

/**
 * One QoS 1/2 message for one persistent session: queued, or in flight once it has a packet id.
 * `seq` orders a client's entries; it only grows, so key order is delivery order.
 */
export interface QueueEntry {
  readonly seq: number
  readonly message: Message
  /** The QoS it is delivered at (the lower of the message's and the subscription's). */
  readonly qos: QoS
  readonly retain: boolean
  readonly subscriptionIds?: readonly number[] | undefined
  /** The shared subscription it came through. */
  readonly share?: string | undefined
  /** Set once sent: the packet id it went out with. */
  readonly packetId?: number | undefined
  /** 'pubrel' once a QoS 2 delivery got its PUBREC (only PUBREL is resent then). */
  readonly state?: 'publish' | 'pubrel' | undefined
}

/** An incoming QoS 2 message that got PUBREC and waits for PUBREL [MQTT-4.3.3-2]. */
export interface IncomingRecord {
  readonly clientId: string
  readonly packetId: number
  readonly message: Message
}

/** A will waiting for its Will Delay Interval, or for its client's session to end. */
export interface WillRecord {
  readonly clientId: string
  readonly message: Message
  readonly delay: number
  readonly expiryInterval?: number | undefined
  /** Unix ms when it is due. */
  readonly publishAt: number
}

/**
 * Count, payload bytes and highest seq still queued (0 when empty) of one client's queue. A
 * restored session continues at lastSeq + 1: a seq above it was deleted and may be used again.
 */
export interface QueueInfo {
  readonly count: number
  readonly bytes: number
  readonly lastSeq: number
}

/**
 * One change to broker state. A `write()` applies a list of them atomically, so a PUBLISH and
 * every queue entry it creates become durable together.
 */
export type StoreOp =
  | { readonly op: 'put-entry'; readonly clientId: string; readonly entry: QueueEntry }
  /** `bytes`: the entry's payload length, so a backend can keep its queue totals without reading it back. */
  | { readonly op: 'del-entry'; readonly clientId: string; readonly seq: number; readonly bytes: number }
  | { readonly op: 'put-incoming'; readonly record: IncomingRecord }
  | { readonly op: 'del-incoming'; readonly clientId: string; readonly packetId: number }
  | { readonly op: 'put-session'; readonly record: SessionRecord }
  /** Removes the session record and everything stored for that client: entries, incoming, will. */
  | { readonly op: 'del-session'; readonly clientId: string }
  /** Sets the retained message for its topic; an empty payload deletes it [MQTT-3.3.1-10]. */
  | { readonly op: 'set-retained'; readonly message: Message }
  | { readonly op: 'put-will'; readonly record: WillRecord }
  | { readonly op: 'del-will'; readonly clientId: string }

/**
 * Where broker state lives. Every backend (memory for tests, LevelDB for the gateway) passes the
 * one conformance suite in test/store-conformance.ts. Reads may be served from memory; `write()`
 * resolves only when the ops are as durable as the backend promises (LevelDB with
 * `durability: sync`: on disk and fsynced). Calls made while a write is in progress are joined
 * into the next one (group commit), so many messages share one sync.
 */
export interface Store {
  write(ops: readonly StoreOp[]): Promise<void>

  /** Retained messages whose topic matches `filter`, in no particular order. */
  matchRetained(filter: string): Promise<Message[]>
  retainedCount(): Promise<number>

  getSession(clientId: string): Promise<SessionRecord | undefined>
  listSessions(): Promise<SessionRecord[]>

  /** A client's queue entries with seq > `afterSeq`, in seq order, at most `limit`. */
  readQueue(clientId: string, afterSeq: number, limit: number): Promise<QueueEntry[]>
  /** Payload bytes queued for all clients together, as written so far (for `store.max_bytes`). */
  queuedBytes(): number
  /** Count, bytes and last seq of a client's queue (zeros when it has none). */
  queueInfo(clientId: string): Promise<QueueInfo>
  listIncoming(): Promise<IncomingRecord[]>
  listWills(): Promise<WillRecord[]>

  close(): Promise<void>
}
