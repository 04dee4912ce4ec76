/**
 * MQTT 3.1.1 has no No Local: a cloud broker sends a `both` rule's messages straight back to the
 * bridge that published them, and they would be published locally a second time. This remembers
 * what was sent recently on `both` rules and drops the echo once. (MQTT 5 links subscribe with
 * No Local instead; Mosquitto's own bridges use a private protocol flag for the same purpose.)
 */
const CAPACITY = 1024
const WINDOW_MS = 30_000

export class EchoFilter {
  /** Insertion-ordered: the oldest entries are the first to go. */
  readonly #recent = new Map<string, { count: number; at: number }>()
  suppressed = 0

  sent(topic: string, payload: Buffer): void {
    const key = keyOf(topic, payload)
    const e = this.#recent.get(key)
    if (e !== undefined) {
      e.count++
      e.at = Date.now()
      return
    }
    if (this.#recent.size >= CAPACITY) {
      const oldest = this.#recent.keys().next().value
      if (oldest !== undefined) this.#recent.delete(oldest)
    }
    this.#recent.set(key, { count: 1, at: Date.now() })
  }

  /** True (once per send) when `topic` / `payload` is what we published moments ago. */
  isEcho(topic: string, payload: Buffer): boolean {
    if (this.#recent.size === 0) return false
    const key = keyOf(topic, payload)
    const e = this.#recent.get(key)
    if (e === undefined || Date.now() - e.at > WINDOW_MS) return false
    if (--e.count === 0) this.#recent.delete(key)
    this.suppressed++
    return true
  }
}

function keyOf(topic: string, payload: Buffer): string {
  // Payloads are small on these links; a hash would cost more than the string for most of them.
  return `${topic}\u0000${payload.toString('base64')}`
}
