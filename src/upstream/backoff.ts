/**
 * Decorrelated jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"): each delay is
 * random between the minimum and three times the previous one, capped. A fleet of gateways that
 * lost the same cloud broker at the same moment does not come back at the same moment.
 */
export class DecorrelatedJitter {
  readonly #minMs: number
  readonly #maxMs: number
  readonly #random: () => number
  #lastMs: number

  constructor(minMs: number, maxMs: number, random: () => number = Math.random) {
    if (!(minMs > 0) || maxMs < minMs) throw new RangeError(`backoff needs 0 < min <= max, got ${minMs}..${maxMs}`)
    this.#minMs = minMs
    this.#maxMs = maxMs
    this.#random = random
    this.#lastMs = minMs
  }

  /** The next delay in ms. */
  next(): number {
    const upper = Math.min(this.#maxMs, this.#lastMs * 3)
    this.#lastMs = Math.min(this.#maxMs, this.#minMs + this.#random() * (upper - this.#minMs))
    return Math.round(this.#lastMs)
  }

  /** After a link that held: start again from the minimum. */
  reset(): void {
    this.#lastMs = this.#minMs
  }
}
