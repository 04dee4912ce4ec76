/**
 * A hung disk, on demand. An SD card that stops answering cannot be produced in a test, so this
 * is the one simulated fault of the health and watchdog tests: the gateway's real LevelDB store
 * is wrapped, and while `hang()` is in effect its writes are held and never complete. Everything
 * else (the broker, the listeners, reads) is the real gateway. `release()` is the disk coming
 * back: the held writes go through to the real store, in order.
 */
import type { Broker } from '../../src/broker/broker.js'
import type { IncomingRecord, QueueEntry, QueueInfo, SessionRecord, Store, StoreOp, WillRecord } from '../../src/store/types.js'
import type { Message } from '../../src/broker/types.js'

interface Held {
  readonly ops: readonly StoreOp[]
  readonly resolve: () => void
  readonly reject: (err: unknown) => void
}

export class HungStore implements Store {
  readonly inner: Store
  #hung = false
  #held: Held[] = []

  constructor(inner: Store) {
    this.inner = inner
  }

  /** Writes from now on never complete, until release(). */
  hang(): void {
    this.#hung = true
  }

  /** Writes held so far (the ones a hung disk would have swallowed). */
  get heldWrites(): number {
    return this.#held.length
  }

  release(): void {
    this.#hung = false
    const held = this.#held
    this.#held = []
    for (const h of held) this.inner.write(h.ops).then(h.resolve, h.reject)
  }

  write(ops: readonly StoreOp[]): Promise<void> {
    if (!this.#hung) return this.inner.write(ops)
    return new Promise((resolve, reject) => this.#held.push({ ops, resolve, reject }))
  }

  matchRetained(filter: string): Promise<Message[]> {
    return this.inner.matchRetained(filter)
  }

  retainedCount(): Promise<number> {
    return this.inner.retainedCount()
  }

  getSession(clientId: string): Promise<SessionRecord | undefined> {
    return this.inner.getSession(clientId)
  }

  listSessions(): Promise<SessionRecord[]> {
    return this.inner.listSessions()
  }

  readQueue(clientId: string, afterSeq: number, limit: number): Promise<QueueEntry[]> {
    return this.inner.readQueue(clientId, afterSeq, limit)
  }

  queuedBytes(): number {
    return this.inner.queuedBytes()
  }

  queueInfo(clientId: string): Promise<QueueInfo> {
    return this.inner.queueInfo(clientId)
  }

  listIncoming(): Promise<IncomingRecord[]> {
    return this.inner.listIncoming()
  }

  listWills(): Promise<WillRecord[]> {
    return this.inner.listWills()
  }

  close(): Promise<void> {
    this.release()
    return this.inner.close()
  }
}

/**
 * Puts a HungStore in front of `broker.store` (a running gateway's broker). The gateway closes
 * its real store itself; call release() before closing the gateway, or its last writes wait.
 */
export function wrapStore(broker: Broker): HungStore {
  const store = new HungStore(broker.store)
  // `store` is readonly to the code, not to the object: the broker reads this.store on every write.
  Object.defineProperty(broker, 'store', { value: store })
  return store
}
