import type { Throttle } from './session-types.js'

/** A session above its high-water mark this long is treated as stuck and no longer slows publishers. */
const STALL_MS = 5000

/**
 * A session's hold on its publishers: while its queue is above the high-water mark it holds them
 * (see Session.deliver), until the queue drains below the low-water mark (half of it), or until
 * it has stayed up there for STALL_MS.
 */
export class Backpressure {
  /** Publishers held until this session's queue drains below the low-water mark. */
  readonly #held = new Set<Throttle>()
  /** When the queue last went above the high-water mark; undefined while below it. */
  #highSince: number | undefined
  #stalled = false
  #highWater: number
  readonly #onStall: () => void

  /** `onStall` is called once the session is given up on (see checkStall). */
  constructor(maxQueuedMessages: number, onStall: () => void) {
    this.#highWater = highWater(maxQueuedMessages)
    this.#onStall = onStall
  }

  setLimit(maxQueuedMessages: number): void {
    this.#highWater = highWater(maxQueuedMessages)
  }

  /** Holds `publisher` until this session's queue drains (see Session.deliver()). */
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
    this.releaseAll()
    this.#onStall()
  }

  /** Whether a session with `queued` messages waiting should hold the publisher that sent the last one. */
  backedUp(queued: number): boolean {
    if (queued < this.#highWater) return false
    const now = Date.now()
    this.#highSince ??= now
    this.checkStall(now)
    return !this.#stalled
  }

  /** After the session sent what it could: below the low-water mark, its publishers go free again. */
  drained(queued: number): void {
    if (queued <= this.#highWater / 2) {
      this.#highSince = undefined
      this.#stalled = false
      this.releaseAll()
    }
  }

  releaseAll(): void {
    if (this.#held.size === 0) return
    const held = [...this.#held]
    this.#held.clear()
    for (const p of held) p.release()
  }
}

/** Half the cap leaves room for what held publishers already had on the wire. */
function highWater(maxQueuedMessages: number): number {
  return maxQueuedMessages > 0 ? Math.max(1, Math.ceil(maxQueuedMessages / 2)) : 1000
}
