import { Fifo } from './queue.js'
import type { Queued } from './session.js'

/**
 * Queue entries a persistent session keeps in memory; the rest stay in the store and are read
 * back a page at a time as the client takes them, so a backlog costs disk, not RAM.
 */
export const PAGE = 256

/**
 * What waits behind a session's in-flight window. A clean session's queue is all in memory. A
 * persistent session's entries are in the store already (deliver() comes after the write), and
 * memory holds only the first page: once an entry has spilled, every later one spills too, so
 * memory is always a prefix and the spilled entries are exactly those with seq > frontier.
 */
export class OutboundQueue {
  readonly #items = new Fifo<Queued>()
  #bytes = 0
  #spilled = 0
  #spilledBytes = 0
  /** Highest seq that has been in memory. */
  #frontier = 0
  /** A page read is under way. */
  loading = false

  /** Entries in memory and in the store together. */
  get count(): number {
    return this.#items.length + this.#spilled
  }

  /** Payload bytes of all of them. */
  get bytes(): number {
    return this.#bytes + this.#spilledBytes
  }

  get frontier(): number {
    return this.#frontier
  }

  /** More in the store, and memory below half a page: time to read the next page. */
  get wantsPage(): boolean {
    return !this.loading && this.#spilled > 0 && this.#items.length < PAGE / 2
  }

  peek(): Queued | undefined {
    return this.#items.peek()
  }

  shift(): Queued | undefined {
    const item = this.#items.shift()
    if (item !== undefined) this.#bytes -= item.message.payload.length
    return item
  }

  push(item: Queued): void {
    const size = item.message.payload.length
    if (item.seq !== undefined && (this.#spilled > 0 || this.#items.length >= PAGE)) {
      this.#spilled++
      this.#spilledBytes += size
      return
    }
    if (item.seq !== undefined) this.#frontier = item.seq
    this.#items.push(item)
    this.#bytes += size
  }

  /** After a restart: how much the store holds for this session, none of it in memory yet. */
  setStored(count: number, bytes: number): void {
    this.#spilled = count
    this.#spilledBytes = bytes
  }

  /**
   * Takes a page read from the store: each entry not seen before is offered to `place` (which
   * takes entries that were in flight) and otherwise queued in memory.
   */
  absorb<T extends Queued & { readonly seq: number }>(entries: readonly T[], place: (item: T) => boolean): void {
    for (const e of entries) {
      const seq = e.seq
      if (seq <= this.#frontier) continue
      this.#frontier = seq
      this.#spilled--
      this.#spilledBytes -= e.message.payload.length
      if (place(e)) continue
      const { message, qos, retain, subscriptionIds, share } = e
      this.#items.push({ message, qos, retain, subscriptionIds, share, seq })
      this.#bytes += message.payload.length
    }
  }

  /** Keeps the entries in memory for which `keep` is true, in order; returns whether any went. */
  filter(keep: (item: Queued) => boolean): boolean {
    const kept: Queued[] = []
    for (const q of this.#items) if (keep(q)) kept.push(q)
    if (kept.length === this.#items.length) return false
    this.#items.clear()
    this.#bytes = 0
    for (const q of kept) {
      this.#items.push(q)
      this.#bytes += q.message.payload.length
    }
    return true
  }

  some(test: (item: Queued) => boolean): boolean {
    for (const q of this.#items) if (test(q)) return true
    return false
  }

  clear(): void {
    this.#items.clear()
    this.#bytes = 0
    this.#spilled = 0
    this.#spilledBytes = 0
  }
}
