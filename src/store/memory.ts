import { topicMatches } from '../broker/topics.js'
import type { Message } from '../broker/types.js'
import type { SessionRecord, Store } from './types.js'

/** The in-memory backend: state lasts as long as the process. */
export class MemoryStore implements Store {
  readonly #retained = new Map<string, Message>()
  readonly #sessions = new Map<string, SessionRecord>()

  async setRetained(message: Message): Promise<void> {
    if (message.payload.length === 0) this.#retained.delete(message.topic)
    else this.#retained.set(message.topic, message)
  }

  async matchRetained(filter: string): Promise<Message[]> {
    // A filter without wildcards names one topic: skip the scan.
    if (!filter.includes('+') && !filter.includes('#')) {
      const m = this.#retained.get(filter)
      return m === undefined ? [] : [m]
    }
    const out: Message[] = []
    for (const m of this.#retained.values()) if (topicMatches(filter, m.topic)) out.push(m)
    return out
  }

  async retainedCount(): Promise<number> {
    return this.#retained.size
  }

  async getSession(clientId: string): Promise<SessionRecord | undefined> {
    return this.#sessions.get(clientId)
  }

  async putSession(record: SessionRecord): Promise<void> {
    this.#sessions.set(record.clientId, record)
  }

  async deleteSession(clientId: string): Promise<void> {
    this.#sessions.delete(clientId)
  }

  async listSessions(): Promise<SessionRecord[]> {
    return [...this.#sessions.values()]
  }

  async close(): Promise<void> {
    this.#retained.clear()
    this.#sessions.clear()
  }
}
