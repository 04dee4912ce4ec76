import { encodeIncoming, encodeMessage, encodeQueueEntry, encodeSession, encodeTotals, encodeWill } from './codec.js'
import { clearingKey, entryKey, incomingKey, queuePrefix, retainedKey, seqOfEntryKey, sessionKey, totalsKey, willKey } from './keys.js'
import type { Db } from './level-open.js'
import type { QueueInfo, StoreOp } from './types.js'

/**
 * Turning StoreOps into one LevelDB batch. The store keeps per-client queue totals (count,
 * payload bytes, highest seq) in `m!` keys written in the same batch as the entries, so they are
 * never out of step with the queue on disk and opening needs no scan.
 */

/** An op with its key and encoded value, made when `write()` is called so a bad op fails alone. */
export interface Prepared {
  readonly op: StoreOp
  readonly key: string
  /** undefined: the key is deleted. */
  readonly value: Buffer | undefined
}

function checkSeq(seq: number): void {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`queue seq must be a non-negative integer, got ${seq}`)
}

function checkPacketId(id: number): void {
  if (!Number.isInteger(id) || id < 1 || id > 0xffff) throw new RangeError(`packet id must be 1..65535, got ${id}`)
}

export function prepare(op: StoreOp): Prepared {
  switch (op.op) {
    case 'put-entry':
      checkSeq(op.entry.seq)
      return { op, key: entryKey(op.clientId, op.entry.seq), value: encodeQueueEntry(op.entry) }
    case 'del-entry':
      checkSeq(op.seq)
      return { op, key: entryKey(op.clientId, op.seq), value: undefined }
    case 'put-incoming':
      checkPacketId(op.record.packetId)
      return { op, key: incomingKey(op.record.clientId, op.record.packetId), value: encodeIncoming(op.record) }
    case 'del-incoming':
      checkPacketId(op.packetId)
      return { op, key: incomingKey(op.clientId, op.packetId), value: undefined }
    case 'put-session':
      return { op, key: sessionKey(op.record.clientId), value: encodeSession(op.record) }
    case 'del-session':
      return { op, key: sessionKey(op.clientId), value: undefined }
    case 'set-retained':
      return { op, key: retainedKey(op.message.topic), value: op.message.payload.length === 0 ? undefined : encodeMessage(op.message) }
    case 'put-will':
      return { op, key: willKey(op.record.clientId), value: encodeWill(op.record) }
    case 'del-will':
      return { op, key: willKey(op.clientId), value: undefined }
  }
}

/** The client whose queue or incoming range the op writes to, if any. */
export function rangeClient(op: StoreOp): string | undefined {
  switch (op.op) {
    case 'put-entry':
    case 'del-entry':
    case 'del-incoming':
      return op.clientId
    case 'put-incoming':
      return op.record.clientId
    default:
      return undefined
  }
}

/** The broker's statistics topics, never written to disk. */
export function isSysTopic(topic: string): boolean {
  return topic.startsWith('$SYS/')
}

export type BatchOp = { type: 'put'; key: string; value: Buffer } | { type: 'del'; key: string }

export interface Built {
  readonly ops: BatchOp[]
  /** New totals of each client whose totals changed; undefined = its queue is now empty. */
  readonly totals: Map<string, QueueInfo | undefined>
  /** Clients whose session was deleted: their queue and incoming ranges are cleared after the batch. */
  readonly cleared: string[]
}

const ZERO: QueueInfo = { count: 0, bytes: 0, lastSeq: 0 }

/**
 * Builds the batch for `items`, in order. `committed` holds the totals as on disk. No op in
 * `items` may touch the queue of a client after a del-session of that client (the caller cuts the
 * batch there), because that range is only cleared once this batch is written.
 *
 * Counting looks at whether an entry exists rather than trusting the op: an update of an entry
 * (put-entry of a seq already queued) or a second del-entry of the same seq must not count twice.
 * Entries above a client's highest seq cannot exist on disk, so only updates and deletes cost a
 * lookup, and those are batched into one hasMany call.
 */
export async function build(db: Db, committed: ReadonlyMap<string, QueueInfo>, items: readonly Prepared[]): Promise<Built> {
  const lastOnDisk = (clientId: string): number => committed.get(clientId)?.lastSeq ?? 0
  const lookups: string[] = []
  for (const { op, key } of items) {
    if ((op.op === 'put-entry' && op.entry.seq <= lastOnDisk(op.clientId)) || (op.op === 'del-entry' && op.seq <= lastOnDisk(op.clientId))) lookups.push(key)
  }
  const onDisk = new Map<string, boolean>()
  if (lookups.length > 0) {
    const found = await db.hasMany(lookups)
    lookups.forEach((k, i) => onDisk.set(k, found[i] === true))
  }
  /** Entry keys written in this batch: true = put, false = deleted. */
  const here = new Map<string, boolean>()
  const exists = (key: string): boolean => here.get(key) ?? onDisk.get(key) ?? false

  const work = new Map<string, { count: number; bytes: number; lastSeq: number }>()
  const totalsOf = (clientId: string): { count: number; bytes: number; lastSeq: number } => {
    let t = work.get(clientId)
    if (t === undefined) {
      t = { ...(committed.get(clientId) ?? ZERO) }
      work.set(clientId, t)
    }
    return t
  }

  const ops: BatchOp[] = []
  const cleared: string[] = []
  for (const { op, key, value } of items) {
    // `$SYS/...` retained messages are the broker's own figures, published again every
    // sys_interval and at start: kept in memory only, so an idle Pi does not fsync its SD card
    // for them (Mosquitto does not persist them either).
    if (op.op === 'set-retained' && isSysTopic(op.message.topic)) continue
    if (value === undefined) ops.push({ type: 'del', key })
    else ops.push({ type: 'put', key, value })
    if (op.op === 'put-entry') {
      const t = totalsOf(op.clientId)
      if (!exists(key)) {
        t.count++
        t.bytes += op.entry.message.payload.length
        if (op.entry.seq > t.lastSeq) t.lastSeq = op.entry.seq
      }
      here.set(key, true)
    } else if (op.op === 'del-entry') {
      if (!exists(key)) continue
      here.set(key, false)
      const t = totalsOf(op.clientId)
      t.count--
      t.bytes = Math.max(0, t.bytes - op.bytes)
      if (t.count <= 0) Object.assign(t, ZERO)
      else if (op.seq === t.lastSeq) t.lastSeq = await highestBelow(db, op.clientId, op.seq, here)
    } else if (op.op === 'del-session') {
      Object.assign(totalsOf(op.clientId), ZERO)
      ops.push({ type: 'del', key: willKey(op.clientId) }, { type: 'put', key: clearingKey(op.clientId), value: Buffer.alloc(0) })
      cleared.push(op.clientId)
    }
  }

  const totals = new Map<string, QueueInfo | undefined>()
  for (const [clientId, t] of work) {
    const before = committed.get(clientId) ?? ZERO
    if (t.count === before.count && t.bytes === before.bytes && t.lastSeq === before.lastSeq) continue
    if (t.count === 0) {
      totals.set(clientId, undefined)
      ops.push({ type: 'del', key: totalsKey(clientId) })
    } else {
      totals.set(clientId, { ...t })
      ops.push({ type: 'put', key: totalsKey(clientId), value: encodeTotals(t) })
    }
  }
  return { ops, totals, cleared }
}

/**
 * The highest seq still queued below `seq`, once `seq` (the highest) is deleted: the queue's
 * entries on disk and those written in this batch, less those deleted in it. Rare: acks mostly
 * delete from the front of a queue.
 */
async function highestBelow(db: Db, clientId: string, seq: number, here: ReadonlyMap<string, boolean>): Promise<number> {
  const prefix = queuePrefix(clientId)
  let best = 0
  for (const [k, present] of here) {
    if (present && k.startsWith(prefix)) {
      const s = seqOfEntryKey(k)
      if (s < seq && s > best) best = s
    }
  }
  for await (const k of db.keys({ gt: prefix, lt: entryKey(clientId, seq), reverse: true })) {
    if (here.get(k) === false) continue
    const s = seqOfEntryKey(k)
    if (s > best) best = s
    break
  }
  return best
}
