import type { SubscriptionOptions } from '../broker/subscription-tree.js'
import type { Message } from '../broker/types.js'

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
 * Where broker state lives. Every backend (memory now, LevelDB with issue 4) passes the one
 * conformance suite in test/store-conformance.ts. Methods are async so a disk backend fits the
 * same shape; the memory backend resolves at once.
 */
export interface Store {
  /** Sets the retained message for `message.topic`; an empty payload deletes it [MQTT-3.3.1-10]. */
  setRetained(message: Message): Promise<void>
  /** Retained messages whose topic matches `filter`, in no particular order. */
  matchRetained(filter: string): Promise<Message[]>
  retainedCount(): Promise<number>

  getSession(clientId: string): Promise<SessionRecord | undefined>
  putSession(record: SessionRecord): Promise<void>
  deleteSession(clientId: string): Promise<void>
  listSessions(): Promise<SessionRecord[]>

  close(): Promise<void>
}
