/**
 * The LevelDB key layout (UTF-8 keys, compared bytewise):
 *
 *   meta!format                      store format version, decimal text
 *   s!<clientId>                     session record
 *   r!<topic>                        retained message
 *   w!<clientId>                     will
 *   m!<clientId>                     queue totals (only while the queue is not empty)
 *   x!<clientId>                     a deleted session whose entries are still being cleared
 *   q!<n>:<clientId>!<seq, 16 hex>   queue entry; key order is seq order
 *   i!<n>:<clientId>!<packetId, 4 hex>  incoming QoS 2 message awaiting PUBREL
 *
 * Where the id is the whole rest of the key, any character is fine. Where something follows it,
 * it is prefixed with its length `n` (UTF-16 code units): a client id containing `!` or `:` then
 * cannot make one client's range overlap another's, because two ids with the same length and
 * the same characters are the same id. Every range ends at its prefix with the closing `!`
 * (0x21) replaced by `"` (0x22), which sorts after every key under the prefix.
 */

export const FORMAT_KEY = 'meta!format'

export const sessionKey = (clientId: string): string => `s!${clientId}`
export const retainedKey = (topic: string): string => `r!${topic}`
export const willKey = (clientId: string): string => `w!${clientId}`
export const totalsKey = (clientId: string): string => `m!${clientId}`
export const clearingKey = (clientId: string): string => `x!${clientId}`

/** A range of keys for an iterator or clear(). */
export type KeyRange = { readonly gte: string; readonly lt: string } | { readonly gt: string; readonly lt: string }

/** Every key starting with `prefix`, which must end in `!` (`gte`: `s!` itself is the session of the empty client id). */
function under(prefix: string): { readonly gte: string; readonly lt: string } {
  return { gte: prefix, lt: `${prefix.slice(0, -1)}"` }
}

export const SESSIONS = under('s!')
export const RETAINED = under('r!')
export const WILLS = under('w!')
export const TOTALS = under('m!')
export const CLEARING = under('x!')
export const INCOMING = under('i!')

const SEQ_DIGITS = 16

function hex(n: number, digits: number): string {
  return n.toString(16).padStart(digits, '0')
}

export const queuePrefix = (clientId: string): string => `q!${clientId.length}:${clientId}!`
const incomingPrefix = (clientId: string): string => `i!${clientId.length}:${clientId}!`

export const entryKey = (clientId: string, seq: number): string => queuePrefix(clientId) + hex(seq, SEQ_DIGITS)
export const incomingKey = (clientId: string, packetId: number): string => incomingPrefix(clientId) + hex(packetId, 4)

export const queueRange = (clientId: string): KeyRange => under(queuePrefix(clientId))
export const incomingRange = (clientId: string): KeyRange => under(incomingPrefix(clientId))

/** The entries of a client's queue with seq > `afterSeq`. */
export function queueAfter(clientId: string, afterSeq: number): KeyRange {
  const all = queueRange(clientId)
  return afterSeq < 0 ? all : { gt: entryKey(clientId, Math.floor(afterSeq)), lt: all.lt }
}

/** The seq at the end of a queue entry key; NaN when the key is not one. */
export function seqOfEntryKey(key: string): number {
  const tail = key.slice(-SEQ_DIGITS)
  return /^[0-9a-f]{16}$/.test(tail) ? parseInt(tail, 16) : Number.NaN
}

/** The client id inside a `q!` or `i!` key; undefined when the key is not well formed. */
export function clientOfRangeKey(key: string): string | undefined {
  const colon = key.indexOf(':', 2)
  if (colon < 0) return undefined
  const digits = key.slice(2, colon)
  if (!/^[0-9]{1,6}$/.test(digits)) return undefined
  const n = Number(digits)
  if (key[colon + 1 + n] !== '!') return undefined
  return key.slice(colon + 1, colon + 1 + n)
}
