import { OutboundQueue } from './outbound-queue.js'
import type { Queued, SessionLimits } from './session-types.js'

/**
 * A session's queue under its caps (`max_queued_messages`, `max_queued_bytes`), and whether it is
 * in a full-queue episode: the broker logs the filling once and the "room again" once, not once
 * per message.
 */
export class SessionQueue extends OutboundQueue {
  #full = false

  /** True when one more message of `size` bytes does not fit under `max_queued_messages` / `max_queued_bytes`. */
  isFull(limits: SessionLimits, size: number): boolean {
    const { maxQueuedMessages, maxQueuedBytes } = limits
    return (maxQueuedMessages > 0 && this.count >= maxQueuedMessages) || (maxQueuedBytes > 0 && this.bytes + size > maxQueuedBytes)
  }

  /** Marks the queue full; true the first time in an episode. */
  markFull(): boolean {
    if (this.#full) return false
    this.#full = true
    return true
  }

  /** True once the queue of a full-queue episode is half empty again, which ends the episode. */
  roomAgain(maxQueuedMessages: number): boolean {
    if (!this.#full || this.count * 2 > maxQueuedMessages) return false
    this.#full = false
    return true
  }
}

/** When the oldest message waiting (in flight or first in the queue) was received; undefined when none or unknown. */
export function oldestReceivedAt(inflight: Iterable<Queued>, queue: OutboundQueue): number | undefined {
  let oldest: number | undefined
  for (const f of inflight) {
    const at = f.message.receivedAt
    if (at !== undefined && (oldest === undefined || at < oldest)) oldest = at
  }
  const head = queue.peek()?.message.receivedAt
  return head !== undefined && (oldest === undefined || head < oldest) ? head : oldest
}
