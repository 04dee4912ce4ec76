import { existsSync, readdirSync, renameSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import { FORMAT } from './codec.js'
import { codesOf, rootMessage, storeError } from './errors.js'
import { FORMAT_KEY } from './keys.js'

/** The LevelDB handle as the store uses it: UTF-8 keys, values as Buffers. */
export type Db = Level<string, Buffer>

/** Where the database lives inside the data directory. */
export function storeLocation(dir: string): string {
  return join(dir, 'store')
}

const WAYS_OUT = (dir: string): string =>
  `Run "outpost store repair --data-dir ${dir}" to salvage what can be read, or start with --move-aside-store to rename it aside and start with an empty store.`

/**
 * Opens (creating if needed) the database of data directory `dir` and checks its format, turning
 * every way that can fail into an OutpostError that names the directory and what to do.
 */
export async function openDb(dir: string): Promise<Db> {
  try {
    await mkdir(dir, { recursive: true })
  } catch (err) {
    throw storeError('OUTPOST_E_DATA_DIR', `The data directory ${dir} could not be created: ${rootMessage(err)}`, err)
  }
  const location = storeLocation(dir)
  refuseHeadless(dir, location)
  const db: Db = new Level<string, Buffer>(location, { keyEncoding: 'utf8', valueEncoding: 'buffer' })
  try {
    await db.open()
  } catch (err) {
    throw openError(dir, location, err)
  }
  try {
    await checkFormat(db, location)
  } catch (err) {
    await db.close()
    throw err
  }
  return db
}

/**
 * LevelDB treats a directory without CURRENT as no database and would create a fresh one in it,
 * then delete the table files it does not know as obsolete: refuse instead, so repair can still
 * rebuild from them.
 */
function refuseHeadless(dir: string, location: string): void {
  if (!existsSync(location)) return
  const files = readdirSync(location)
  if (files.includes('CURRENT')) return
  if (files.some((f) => /^(MANIFEST-\d+|\d+\.(ldb|sst|log))$/.test(f))) {
    throw storeError('OUTPOST_E_STORE_CORRUPT', `The store in ${location} is damaged: its CURRENT file is missing. ${WAYS_OUT(dir)}`)
  }
}

function openError(dir: string, location: string, err: unknown): Error {
  const codes = codesOf(err)
  const detail = rootMessage(err)
  if (codes.includes('LEVEL_LOCKED')) {
    return storeError(
      'OUTPOST_E_STORE_LOCKED',
      `The store in ${location} is in use by another process (${detail}). Is another outpost running with data_dir ${dir}? Stop it, or give this one another data_dir.`,
      err,
    )
  }
  // A file that CURRENT or the MANIFEST names but that is gone is damage too, not a permissions problem.
  if (codes.includes('LEVEL_CORRUPTION') || (codes.includes('LEVEL_IO_ERROR') && /No such file or directory/.test(detail))) {
    return storeError('OUTPOST_E_STORE_CORRUPT', `The store in ${location} is damaged (${detail}). ${WAYS_OUT(dir)}`, err)
  }
  return storeError('OUTPOST_E_DATA_DIR', `The store in ${location} could not be opened: ${detail}`, err)
}

/** A new, empty database gets the current format; anything else must already have it. */
async function checkFormat(db: Db, location: string): Promise<void> {
  const raw = await db.get(FORMAT_KEY)
  if (raw === undefined) {
    const firstKey = await db.keys({ limit: 1 }).all()
    if (firstKey.length === 0) {
      await db.put(FORMAT_KEY, Buffer.from(String(FORMAT)), { sync: true })
      return
    }
    throw storeError(
      'OUTPOST_E_STORE_FORMAT',
      `The store in ${location} holds records but no format version: it was not written by Outpost, or lost its version key. Point data_dir elsewhere, or start with --move-aside-store.`,
    )
  }
  const text = raw.toString('latin1')
  const version = /^[0-9]{1,9}$/.test(text) ? Number(text) : Number.NaN
  if (version === FORMAT) return
  const which = Number.isNaN(version) ? `an unreadable format version ${JSON.stringify(text)}` : `format ${version}`
  const hint = version > FORMAT ? 'It was written by a newer Outpost: upgrade, or' : 'Either'
  throw storeError(
    'OUTPOST_E_STORE_FORMAT',
    `The store in ${location} has ${which}; this Outpost reads format ${FORMAT}. ${hint} start with --move-aside-store to keep it aside and start with an empty store.`,
  )
}

/**
 * Renames the store of data directory `dir` aside (to `store.broken-<time>`) so the next start
 * begins with an empty one; returns the new path. Nothing is deleted.
 */
export function moveStoreAside(dir: string): string {
  const from = storeLocation(dir)
  if (!existsSync(from)) throw storeError('OUTPOST_E_DATA_DIR', `There is no store in ${from} to move aside.`)
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  let to = `${from}.broken-${stamp}`
  for (let i = 1; existsSync(to); i++) to = `${from}.broken-${stamp}-${i}`
  try {
    renameSync(from, to)
  } catch (err) {
    throw storeError('OUTPOST_E_DATA_DIR', `The store in ${from} could not be moved aside to ${to}: ${rootMessage(err)}`, err)
  }
  return to
}
