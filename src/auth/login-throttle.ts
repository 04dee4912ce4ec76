/**
 * Slows password guessing per address: after a few failures from one address, its next refusals
 * are answered later and later (up to 8 s), and its failures are logged once per 10 s with a
 * count instead of once per attempt. A success clears the address. Memory is bounded: the map
 * forgets its oldest addresses past MAX_ADDRESSES.
 */
const FREE_FAILURES = 3
const MAX_DELAY_MS = 8000
const FORGET_MS = 10 * 60_000
const LOG_EVERY_MS = 10_000
const MAX_ADDRESSES = 10_000

interface Record {
  failures: number
  lastAt: number
  loggedAt: number
  unlogged: number
}

export class LoginThrottle {
  readonly #byAddress = new Map<string, Record>()

  /** Counts a failure; returns how long to wait before answering, and whether to log it now (with how many went unlogged). */
  failed(address: string, now = Date.now()): { delayMs: number; log: boolean; unlogged: number } {
    let r = this.#byAddress.get(address)
    if (r === undefined || now - r.lastAt > FORGET_MS) r = { failures: 0, lastAt: now, loggedAt: 0, unlogged: 0 }
    this.#byAddress.delete(address) // re-inserted last: the map's order is its age
    r.failures++
    r.lastAt = now
    this.#byAddress.set(address, r)
    if (this.#byAddress.size > MAX_ADDRESSES) {
      const oldest = this.#byAddress.keys().next().value
      if (oldest !== undefined) this.#byAddress.delete(oldest)
    }
    const over = r.failures - FREE_FAILURES
    const delayMs = over <= 0 ? 0 : Math.min(MAX_DELAY_MS, 250 * 2 ** (over - 1))
    const log = now - r.loggedAt >= LOG_EVERY_MS
    const unlogged = r.unlogged
    if (log) {
      r.loggedAt = now
      r.unlogged = 0
    } else {
      r.unlogged++
    }
    return { delayMs, log, unlogged }
  }

  succeeded(address: string): void {
    this.#byAddress.delete(address)
  }
}
