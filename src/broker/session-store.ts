import type { QueueEntry, StoreOp } from '../store/types.js'
import { PAGE, type OutboundQueue } from './outbound-queue.js'
import type { Inflight, Queued, SessionJournal } from './session-types.js'

// What a persistent session reads back from the store: its queue after a restart, and the rest
// of a backlog a page at a time (see OutboundQueue), and the entries it writes for a delivery.

/** Takes a page read from the store into memory: entries that had been sent go in flight. */
export function loadPage(queue: OutboundQueue, inflight: Map<number, Inflight>, entries: readonly QueueEntry[]): void {
  queue.absorb(entries, (e) => {
    if (e.packetId === undefined || inflight.has(e.packetId)) return false
    const { message, qos, retain, subscriptionIds, share, seq } = e
    inflight.set(e.packetId, { message, qos, retain, subscriptionIds, share, seq, state: e.state ?? 'publish' })
    return true
  })
}

/** Reads the next page of `clientId`'s queue from the store (the caller checked queue.wantsPage); `loaded` takes it. */
export function readPage(queue: OutboundQueue, journal: SessionJournal, clientId: string, loaded: (entries: QueueEntry[]) => void): void {
  queue.loading = true
  journal.read(clientId, queue.frontier, PAGE).then(
    (entries) => {
      queue.loading = false
      loaded(entries)
    },
    () => {
      // The store could not be read: try again on the next acknowledgement or delivery.
      queue.loading = false
    },
  )
}

/** A message's place in the store's queue for `clientId` under `seq`: the put goes into `ops`, the seq into the delivery. */
export function prepareEntry(clientId: string, seq: number, item: Queued, ops: StoreOp[]): Queued {
  const { message, qos, retain, subscriptionIds, share } = item
  ops.push({ op: 'put-entry', clientId, entry: { seq, message, qos, retain, subscriptionIds, share } })
  return { message, qos, retain, subscriptionIds, share, seq }
}

/** The store entry of a delivery once it has a packet id: sent ('publish') or past PUBREC ('pubrel'). */
export function entryOp(clientId: string, item: Queued, packetId: number, state: 'publish' | 'pubrel'): StoreOp {
  const { message, qos, retain, subscriptionIds, share } = item
  return { op: 'put-entry', clientId, entry: { seq: item.seq ?? 0, message, qos, retain, subscriptionIds, share, packetId, state } }
}
