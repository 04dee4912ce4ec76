import { existsSync } from 'node:fs'
import { Level } from 'level'
import { decodeIncoming, decodeMessage, decodeQueueEntry, decodeSession, decodeTotals, decodeWill, encodeTotals, FORMAT } from './codec.js'
import { codesOf, rootMessage, storeError } from './errors.js'
import { CLEARING, clientOfRangeKey, entryKey, FORMAT_KEY, incomingKey, retainedKey, sessionKey, willKey } from './keys.js'
import { type Db, openDb, storeLocation } from './level-open.js'

/** What `repairStore` did, for the operator. */
export interface RepairReport {
  readonly location: string
  /** Records that did not decode, or sat under the wrong key, and were deleted. */
  readonly dropped: number
  /** Queue entries and incoming records of deleted sessions, cleared as the broker would have. */
  readonly cleared: number
  /** Keys outside the layout, left alone. */
  readonly unknown: number
  /** Queue entries kept, and the clients whose queue totals were recounted from them. */
  readonly entries: number
  readonly queues: number
}

interface WithRepair {
  repair(location: string): Promise<void>
}

// `level` re-exports classic-level's class, whose static repair() its typings leave out.
function hasRepair(x: unknown): x is WithRepair {
  return typeof x === 'function' && 'repair' in x && typeof x.repair === 'function'
}

/**
 * The way out of OUTPOST_E_STORE_CORRUPT: LevelDB's repair (rebuilds the MANIFEST from the table
 * and log files it finds; what cannot be read is lost), then one pass over every record that
 * deletes those that do not decode and recounts the queue totals from the entries that are left.
 * The broker must not be running on this data directory.
 */
export async function repairStore(dir: string): Promise<RepairReport> {
  const location = storeLocation(dir)
  if (!existsSync(location)) throw storeError('OUTPOST_E_DATA_DIR', `There is no store in ${location} to repair.`)
  await refuseIfLocked(dir, location)
  if (!hasRepair(Level)) throw new Error('the installed level package has no repair()')
  try {
    await Level.repair(location)
  } catch (err) {
    throw storeError('OUTPOST_E_STORE_CORRUPT', `LevelDB could not repair the store in ${location}: ${rootMessage(err)}. Start with --move-aside-store to keep it aside and start with an empty store.`, err)
  }
  await restoreFormatKey(location)
  const db = await openDb(dir)
  try {
    return await recheck(db, location)
  } finally {
    await db.close()
  }
}

/** Repair takes no lock of its own: make sure no broker has the store open. */
async function refuseIfLocked(dir: string, location: string): Promise<void> {
  const probe = new Level(location, { createIfMissing: false })
  try {
    await probe.open()
    await probe.close()
  } catch (err) {
    if (codesOf(err).includes('LEVEL_LOCKED')) {
      throw storeError('OUTPOST_E_STORE_LOCKED', `The store in ${location} is in use by another process: stop the outpost using data_dir ${dir} before repairing it.`, err)
    }
  }
}

/** A repair can lose the version key with the file that held it; the records will be checked one by one anyway. */
async function restoreFormatKey(location: string): Promise<void> {
  const db: Db = new Level<string, Buffer>(location, { keyEncoding: 'utf8', valueEncoding: 'buffer' })
  await db.open()
  try {
    if ((await db.get(FORMAT_KEY)) === undefined) await db.put(FORMAT_KEY, Buffer.from(String(FORMAT)), { sync: true })
  } finally {
    await db.close()
  }
}

async function recheck(db: Db, location: string): Promise<RepairReport> {
  const clearing = new Set<string>()
  for (const k of await db.keys(CLEARING).all()) clearing.add(k.slice(2))
  let batch = db.batch()
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return
    await batch.write({ sync: true })
    batch = db.batch()
  }
  const totals = new Map<string, { count: number; bytes: number; lastSeq: number }>()
  const oldTotals = new Set<string>()
  let dropped = 0
  let cleared = 0
  let unknown = 0
  let entries = 0

  const it = db.iterator()
  try {
    for (let chunk = await it.nextv(1000); chunk.length > 0; chunk = await it.nextv(1000)) {
      for (const [key, value] of chunk) {
        const verdict = check(key, value, clearing)
        if (verdict === 'totals') oldTotals.add(key.slice(2))
        else if (verdict === 'unknown') unknown++
        else if (verdict === 'bad' || verdict === 'cleared') {
          if (verdict === 'bad') dropped++
          else cleared++
          batch.del(key)
        } else if (verdict !== 'ok') {
          entries++
          let t = totals.get(verdict.clientId)
          if (t === undefined) totals.set(verdict.clientId, (t = { count: 0, bytes: 0, lastSeq: 0 }))
          t.count++
          t.bytes += verdict.bytes
          if (verdict.seq > t.lastSeq) t.lastSeq = verdict.seq
        }
        if (batch.length >= 10_000) await flush()
      }
    }
  } finally {
    await it.close()
  }
  for (const clientId of oldTotals) if (!totals.has(clientId)) batch.del(`m!${clientId}`)
  for (const [clientId, t] of totals) batch.put(`m!${clientId}`, encodeTotals(t))
  for (const clientId of clearing) batch.del(`x!${clientId}`)
  await flush()
  return { location, dropped, cleared, unknown, entries, queues: totals.size }
}

type Verdict = 'ok' | 'bad' | 'cleared' | 'unknown' | 'totals' | { clientId: string; seq: number; bytes: number }

/** Does the record decode, and does it sit under the key its content names? */
function check(key: string, value: Buffer, clearing: ReadonlySet<string>): Verdict {
  try {
    switch (key.slice(0, 2)) {
      case 'me':
        return key === FORMAT_KEY ? 'ok' : 'unknown'
      case 's!':
        return sessionKey(decodeSession(value).clientId) === key ? 'ok' : 'bad'
      case 'r!':
        return retainedKey(decodeMessage(value).topic) === key ? 'ok' : 'bad'
      case 'w!':
        return willKey(decodeWill(value).clientId) === key ? 'ok' : 'bad'
      case 'x!':
        return 'ok'
      case 'm!':
        decodeTotals(value)
        return 'totals'
      case 'i!': {
        const rec = decodeIncoming(value)
        if (incomingKey(rec.clientId, rec.packetId) !== key) return 'bad'
        return clearing.has(rec.clientId) ? 'cleared' : 'ok'
      }
      case 'q!': {
        const clientId = clientOfRangeKey(key)
        if (clientId === undefined) return 'bad'
        const e = decodeQueueEntry(value)
        if (entryKey(clientId, e.seq) !== key) return 'bad'
        return clearing.has(clientId) ? 'cleared' : { clientId, seq: e.seq, bytes: e.message.payload.length }
      }
      default:
        return 'unknown'
    }
  } catch {
    // An m! value that does not decode is rewritten from the recount like any other.
    return key.startsWith('m!') ? 'totals' : 'bad'
  }
}
