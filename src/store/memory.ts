import { matchRetainedIn } from './retained.js'
import type { Message } from '../broker/types.js'
import type { IncomingRecord, QueueEntry, QueueInfo, SessionRecord, Store, StoreOp, WillRecord } from './types.js'

/** The in-memory backend: state lasts as long as the process. For tests and `data_dir`-less runs. */
export class MemoryStore implements Store {
  readonly #retained = new Map<string, Message>()
  readonly #sessions = new Map<string, SessionRecord>()
  /** clientId -> seq -> entry; Maps keep insertion order, and seqs are inserted in order. */
  readonly #queues = new Map<string, Map<number, QueueEntry>>()
  readonly #incoming = new Map<string, IncomingRecord>()
  readonly #wills = new Map<string, WillRecord>()

  async write(ops: readonly StoreOp[]): Promise<void> {
    for (const o of ops) this.#apply(o)
  }

  #apply(o: StoreOp): void {
    switch (o.op) {
      case 'put-entry': {
        let q = this.#queues.get(o.clientId)
        if (q === undefined) {
          q = new Map()
          this.#queues.set(o.clientId, q)
        }
        q.set(o.entry.seq, o.entry)
        return
      }
      case 'del-entry':
        this.#queues.get(o.clientId)?.delete(o.seq)
        return
      case 'put-incoming':
        this.#incoming.set(`${o.record.clientId}\u0000${o.record.packetId}`, o.record)
        return
      case 'del-incoming':
        this.#incoming.delete(`${o.clientId}\u0000${o.packetId}`)
        return
      case 'put-session':
        this.#sessions.set(o.record.clientId, o.record)
        return
      case 'del-session':
        this.#sessions.delete(o.clientId)
        this.#queues.delete(o.clientId)
        this.#wills.delete(o.clientId)
        for (const [k, r] of this.#incoming) if (r.clientId === o.clientId) this.#incoming.delete(k)
        return
      case 'set-retained':
        if (o.message.payload.length === 0) this.#retained.delete(o.message.topic)
        else this.#retained.set(o.message.topic, o.message)
        return
      case 'put-will':
        this.#wills.set(o.record.clientId, o.record)
        return
      case 'del-will':
        this.#wills.delete(o.clientId)
    }
  }

  async matchRetained(filter: string): Promise<Message[]> {
    return matchRetainedIn(this.#retained, filter)
  }

  async retainedCount(): Promise<number> {
    return this.#retained.size
  }

  async getSession(clientId: string): Promise<SessionRecord | undefined> {
    return this.#sessions.get(clientId)
  }

  async listSessions(): Promise<SessionRecord[]> {
    return [...this.#sessions.values()]
  }

  async readQueue(clientId: string, afterSeq: number, limit: number): Promise<QueueEntry[]> {
    const out: QueueEntry[] = []
    for (const e of this.#queues.get(clientId)?.values() ?? []) {
      if (out.length >= limit) break
      if (e.seq > afterSeq) out.push(e)
    }
    return out
  }

  queuedBytes(): number {
    let bytes = 0
    for (const q of this.#queues.values()) for (const e of q.values()) bytes += e.message.payload.length
    return bytes
  }

  async queueInfo(clientId: string): Promise<QueueInfo> {
    let count = 0
    let bytes = 0
    let lastSeq = 0
    for (const e of this.#queues.get(clientId)?.values() ?? []) {
      count++
      bytes += e.message.payload.length
      if (e.seq > lastSeq) lastSeq = e.seq
    }
    return { count, bytes, lastSeq }
  }

  async listIncoming(): Promise<IncomingRecord[]> {
    return [...this.#incoming.values()]
  }

  async listWills(): Promise<WillRecord[]> {
    return [...this.#wills.values()]
  }

  async close(): Promise<void> {
    this.#retained.clear()
    this.#sessions.clear()
    this.#queues.clear()
    this.#incoming.clear()
    this.#wills.clear()
  }
}
