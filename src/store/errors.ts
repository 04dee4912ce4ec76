import { OutpostError } from '../errors.js'

/** The operator-facing failures of the LevelDB store (README lists each with what to do). */
export type StoreErrorCode = 'OUTPOST_E_STORE_FORMAT' | 'OUTPOST_E_STORE_LOCKED' | 'OUTPOST_E_STORE_CORRUPT' | 'OUTPOST_E_DATA_DIR'

export function storeError(code: StoreErrorCode, message: string, cause?: unknown): OutpostError {
  return new OutpostError(code, message, cause === undefined ? undefined : { cause })
}

/** The `code` properties along an error's `cause` chain: abstract-level wraps the LevelDB error it got. */
export function codesOf(err: unknown): string[] {
  const codes: string[] = []
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if ('code' in e && typeof e.code === 'string') codes.push(e.code)
  }
  return codes
}

/** The innermost message along the cause chain: the one LevelDB wrote. */
export function rootMessage(err: unknown): string {
  let msg = String(err)
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) msg = e.message
  return msg
}
