import { matchRetainedIn } from './retained.js'
import type { Message } from '../broker/types.js'
import { CodecError } from './codec-io.js'
import { decodeIncoming, decodeMessage, decodeQueueEntry, decodeSession, decodeTotals, decodeWill } from './codec.js'
import { storeError } from './errors.js'
import {
  CLEARING,
  clearingKey,
  INCOMING,
  incomingKey,
  incomingRange,
  type KeyRange,
  queueAfter,
  queueRange,
  RETAINED,
  retainedKey,
  SESSIONS,
  seqOfEntryKey,
  sessionKey,
  TOTALS,
  WILLS,
  willKey,
} from './keys.js'
import { type Built, build, isSysTopic, type Prepared, prepare, rangeClient } from './level-batch.js'
import { type Db, openDb, storeLocation } from './level-open.js'
import type { IncomingRecord, QueueEntry, QueueInfo, SessionRecord, Store, StoreOp, WillRecord } from './types.js'

export { moveStoreAside } from './level-open.js'
export { repairStore, type RepairReport } from './level-repair.js'

export interface LevelStoreOptions {
  /** 'sync': a write resolves once fsynced; 'os': once handed to the OS (lost on power failure, not on a crash). */
  readonly durability: 'sync' | 'os'
}

interface Call {
  readonly items: readonly Prepared[]
  readonly resolve: () => void
  readonly reject: (err: unknown) => void
}

/**
 * The LevelDB backend (key layout in keys.ts, values in codec.ts). Retained messages, session
 * records and queue totals are loaded at open and served from memory; queue entries, incoming
 * QoS 2 records and wills are read from disk when asked for, so opening does not scan queues.
 *
 * Writes are group-committed: the calls made while one batch is being written go together into
 * the next, so a burst of messages shares one fsync. Memory is updated only once a batch is on
 * disk, so reads never show what a crash could still take back.
 */
export class LevelStore implements Store {
  readonly #db: Db
  readonly #dir: string
  readonly #sync: boolean
  readonly #retained = new Map<string, Message>()
  readonly #sessions = new Map<string, SessionRecord>()
  readonly #totals = new Map<string, QueueInfo>()
  /** Sum of the totals' bytes, kept as they change (store.max_bytes). */
  #queuedBytes = 0
  /** Deleted sessions whose queue and incoming ranges are not cleared yet: they read as empty. */
  readonly #clearing = new Set<string>()
  #calls: Call[] = []
  #draining: Promise<void> | undefined
  #closed = false
  #batches = 0

  private constructor(db: Db, dir: string, options: LevelStoreOptions) {
    this.#db = db
    this.#dir = dir
    this.#sync = options.durability === 'sync'
  }

  /** Opens the store of data directory `dir` (the database is `${dir}/store`), creating it if needed. */
  static async open(dir: string, options: LevelStoreOptions): Promise<LevelStore> {
    const store = new LevelStore(await openDb(dir), dir, options)
    try {
      await store.#load()
    } catch (err) {
      await store.#db.close()
      throw err
    }
    return store
  }

  /** How many batches have been written: fewer than write() calls when group commit joins them. */
  get batchesWritten(): number {
    return this.#batches
  }

  async #load(): Promise<void> {
    for (const key of await this.#db.keys(CLEARING).all()) this.#clearing.add(key.slice(2))
    await this.#finishClears()
    await this.#scan(SESSIONS, (key, value) => {
      const s = this.#decode(key, value, decodeSession)
      if (sessionKey(s.clientId) !== key) throw this.#corrupt(key, 'the record names another client')
      this.#sessions.set(s.clientId, s)
    })
    const staleSys: string[] = []
    await this.#scan(RETAINED, (key, value) => {
      const m = this.#decode(key, value, decodeMessage)
      if (retainedKey(m.topic) !== key) throw this.#corrupt(key, 'the message has another topic')
      // Written by versions that persisted `$SYS` figures: stale now, and published again at start.
      if (isSysTopic(m.topic)) staleSys.push(key)
      else this.#retained.set(m.topic, m)
    })
    if (staleSys.length > 0) await this.#db.batch(staleSys.map((key) => ({ type: 'del' as const, key })), { sync: this.#sync })
    await this.#scan(TOTALS, (key, value) => {
      const t = this.#decode(key, value, decodeTotals)
      this.#totals.set(key.slice(2), t)
      this.#queuedBytes += t.bytes
    })
  }

  /** Every record in `range`, a thousand at a time, so a large range is never all in memory twice. */
  async #scan(range: KeyRange, each: (key: string, value: Buffer) => void): Promise<void> {
    const it = this.#db.iterator(range)
    try {
      for (let chunk = await it.nextv(1000); chunk.length > 0; chunk = await it.nextv(1000)) {
        for (const [key, value] of chunk) each(key, value)
      }
    } finally {
      await it.close()
    }
  }

  #decode<T>(key: string, value: Buffer, decode: (b: Buffer) => T): T {
    try {
      return decode(value)
    } catch (err) {
      if (err instanceof CodecError) throw this.#corrupt(key, err.message, err)
      throw err
    }
  }

  #corrupt(key: string, problem: string, cause?: unknown): Error {
    return storeError(
      'OUTPOST_E_STORE_CORRUPT',
      `The store in ${storeLocation(this.#dir)} has a bad record under ${JSON.stringify(key)}: ${problem}. Run "outpost store repair --data-dir ${this.#dir}" to drop bad records, or start with --move-aside-store to start with an empty store.`,
      cause,
    )
  }

  write(ops: readonly StoreOp[]): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('the store is closed'))
    let items: Prepared[]
    try {
      items = ops.map(prepare)
    } catch (err) {
      return Promise.reject(err)
    }
    return new Promise((resolve, reject) => {
      this.#calls.push({ items, resolve, reject })
      // Start on a microtask, so that every call made in this turn of the event loop joins the first batch.
      this.#draining ??= Promise.resolve().then(() => this.#drain())
    })
  }

  async #drain(): Promise<void> {
    try {
      while (this.#calls.length > 0) {
        const calls = this.#calls
        this.#calls = []
        await this.#commit(calls)
      }
    } finally {
      this.#draining = undefined
    }
  }

  /**
   * Writes one group of calls: usually one batch. A del-session clears its client's ranges only
   * after its batch is written, so an op on that client's queue later in the group starts the
   * next batch. Each call settles once its last batch has.
   */
  async #commit(calls: readonly Call[]): Promise<void> {
    const segments: Prepared[][] = []
    let current: Prepared[] = []
    let deleted = new Set<string>()
    /** Each call with the index of the last segment holding its ops. */
    const settles: Array<[Call, number]> = []
    for (const call of calls) {
      for (const item of call.items) {
        const client = rangeClient(item.op)
        if (client !== undefined && deleted.has(client)) {
          segments.push(current)
          current = []
          deleted = new Set()
        }
        current.push(item)
        if (item.op.op === 'del-session') deleted.add(item.op.clientId)
      }
      settles.push([call, segments.length])
    }
    segments.push(current)
    let i = 0
    try {
      for (const segment of segments) {
        await this.#finishClears()
        await this.#writeSegment(segment)
        for (const [call, last] of settles) if (last === i) call.resolve()
        i++
      }
    } catch (err) {
      // A failed batch takes its callers with it, and every call not yet written.
      for (const [call, last] of settles) if (last >= i) call.reject(err)
    }
  }

  async #writeSegment(items: readonly Prepared[]): Promise<void> {
    if (items.length === 0) return
    const built = await build(this.#db, this.#totals, items)
    // Nothing for the disk (only `$SYS` figures): no write and no fsync.
    if (built.ops.length > 0) await this.#db.batch(built.ops, { sync: this.#sync })
    this.#batches++
    this.#apply(items, built)
    await this.#finishClears()
  }

  /** Brings memory in line with a batch that is now on disk. */
  #apply(items: readonly Prepared[], built: Built): void {
    for (const { op, value } of items) {
      if (op.op === 'put-session' && value !== undefined) this.#sessions.set(op.record.clientId, decodeSession(value))
      else if (op.op === 'del-session') this.#sessions.delete(op.clientId)
      else if (op.op === 'set-retained') {
        // What is served is what a restart would load: decoded from the bytes just written.
        if (value === undefined) this.#retained.delete(op.message.topic)
        else this.#retained.set(op.message.topic, decodeMessage(value))
      }
    }
    for (const [clientId, t] of built.totals) {
      this.#queuedBytes -= this.#totals.get(clientId)?.bytes ?? 0
      if (t === undefined) {
        this.#totals.delete(clientId)
      } else {
        this.#totals.set(clientId, t)
        this.#queuedBytes += t.bytes
      }
    }
    for (const clientId of built.cleared) this.#clearing.add(clientId)
  }

  /**
   * Clears the ranges of deleted sessions, then their markers. Until the marker is gone nothing is
   * written to those ranges, so a restart that finds a marker may clear the ranges again safely.
   */
  async #finishClears(): Promise<void> {
    for (const clientId of this.#clearing) {
      await this.#db.clear(queueRange(clientId))
      await this.#db.clear(incomingRange(clientId))
      await this.#db.del(clearingKey(clientId))
      this.#clearing.delete(clientId)
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
    if (!(limit >= 1) || !(afterSeq < Number.MAX_SAFE_INTEGER) || this.#clearing.has(clientId)) return []
    // LevelDB takes the limit as a 32-bit int: a larger one means no limit.
    const range: KeyRange & { limit: number } = { ...queueAfter(clientId, afterSeq), limit: limit > 0x7fffffff ? Infinity : Math.floor(limit) }
    const out: QueueEntry[] = []
    for (const [key, value] of await this.#db.iterator(range).all()) {
      const e = this.#decode(key, value, decodeQueueEntry)
      if (e.seq !== seqOfEntryKey(key)) throw this.#corrupt(key, `the entry has seq ${e.seq}`)
      out.push(e)
    }
    return out
  }

  queuedBytes(): number {
    return this.#queuedBytes
  }

  async queueInfo(clientId: string): Promise<QueueInfo> {
    const t = this.#totals.get(clientId)
    return t === undefined ? { count: 0, bytes: 0, lastSeq: 0 } : { ...t }
  }

  async listIncoming(): Promise<IncomingRecord[]> {
    const out: IncomingRecord[] = []
    await this.#scan(INCOMING, (key, value) => {
      const r = this.#decode(key, value, decodeIncoming)
      if (incomingKey(r.clientId, r.packetId) !== key) throw this.#corrupt(key, 'the record names another client or packet id')
      out.push(r)
    })
    return out
  }

  async listWills(): Promise<WillRecord[]> {
    const out: WillRecord[] = []
    await this.#scan(WILLS, (key, value) => {
      const w = this.#decode(key, value, decodeWill)
      if (willKey(w.clientId) !== key) throw this.#corrupt(key, 'the will names another client')
      out.push(w)
    })
    return out
  }

  /** Waits for the writes already made, then closes the database. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#draining
    await this.#db.close()
  }
}
