/**
 * Mosquitto-compatible password files: `user:$7$ITERATIONS$SALT$HASH` (PBKDF2-HMAC-SHA512, what
 * mosquitto_passwd 2.0 writes) and the older `user:$6$SALT$HASH` (one SHA-512 of password + salt,
 * Mosquitto 1.x), so an existing Mosquitto file works as it is and a file written here works in
 * Mosquitto. test/auth-passwd.test.ts checks both directions against Debian's Mosquitto 2.0.11.
 */
import { createHash, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Stats } from 'node:fs'
import { open, readFile, realpath, rename, stat, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { promisify } from 'node:util'
import { OutpostError } from '../errors.js'

const pbkdf2Async = promisify(pbkdf2)

/** mosquitto_passwd 2.0's PW_DEFAULT_ITERATIONS. */
export const DEFAULT_ITERATIONS = 101
/** Mosquitto reads the count with atoi() into a C int; OpenSSL's PBKDF2 takes an int too. */
export const MAX_ITERATIONS = 2 ** 31 - 1
/** mosquitto_passwd 2.0's SALT_LEN. Mosquitto 2.0 refuses every other salt length when it reads. */
const SALT_BYTES = 12
/** Mosquitto 2.1 writes 64-byte salts and reads 12 or 64; accepting both keeps its files usable. */
const SALT_LENGTHS_READ = [SALT_BYTES, 64]
/** SHA-512's output, for both hash types. */
const HASH_BYTES = 64

type StoredHash =
  | { readonly kind: 'sha512'; readonly salt: Buffer; readonly hash: Buffer }
  | { readonly kind: 'pbkdf2-sha512'; readonly iterations: number; readonly salt: Buffer; readonly hash: Buffer }

/** What {@link updatePasswordFile} did. */
export type PasswordFileChange = 'created' | 'added' | 'changed' | 'deleted'

function passwdError(message: string, cause?: unknown): OutpostError {
  return new OutpostError('OUTPOST_E_PASSWD', message, cause === undefined ? undefined : { cause })
}

/**
 * The user name and hash of one line, or undefined for a blank line or a comment. Mosquitto skips
 * lines starting with '#' and trims blanks around both fields; a '#' after leading blanks is taken
 * as a comment too, which Mosquitto also ignores (such a line has no ':' or names no real user).
 */
function splitLine(raw: string): { user: string; encoded: string } | { problem: string } | undefined {
  const line = raw.trim()
  if (line === '' || line.startsWith('#')) return undefined
  const colon = line.indexOf(':')
  if (colon < 0) return { problem: "no ':' between user name and password hash" }
  const user = line.slice(0, colon).trim()
  const encoded = line.slice(colon + 1).trim()
  if (user === '') return { problem: "empty user name before ':'" }
  return { user, encoded }
}

/**
 * Standard base64 (OpenSSL's alphabet, '+' and '/'), with or without '=' padding. Node's own
 * decoder skips characters it does not know, so a typo would silently give different bytes.
 */
function decodeBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined
  const bytes = Buffer.from(text, 'base64')
  // Re-encoding catches a wrong length and stray bits in the last character.
  return bytes.toString('base64').replace(/=+$/, '') === text.replace(/=+$/, '') ? bytes : undefined
}

/** `$6$SALT$HASH` or `$7$ITERATIONS$SALT$HASH`; a string says what is wrong. */
function decodeHash(encoded: string): StoredHash | string {
  if (encoded === '') return 'no password hash after the user name'
  if (encoded.startsWith('$argon2')) return 'unknown hash type "$argon2id$" (Mosquitto 2.1); only $6$ and $7$ are supported, set the password again with outpost passwd'
  if (!encoded.startsWith('$')) return 'the password is not hashed (plain text?); set it with outpost passwd or hash the file with mosquitto_passwd -U'
  const fields = encoded.split('$').slice(1)
  const [type] = fields
  let iterations: number | undefined
  let rest: string[]
  if (type === '6') {
    if (fields.length !== 3) return `a $6$ hash has 2 fields after the type ($6$SALT$HASH), found ${fields.length - 1}`
    rest = fields.slice(1)
  } else if (type === '7') {
    if (fields.length !== 4) return `a $7$ hash has 3 fields after the type ($7$ITERATIONS$SALT$HASH), found ${fields.length - 1}`
    const text = fields[1] ?? ''
    if (!/^\d+$/.test(text)) return `iterations ${JSON.stringify(text)} is not a number`
    iterations = Number(text)
    if (iterations < 1 || iterations > MAX_ITERATIONS) return `iterations ${text} is outside 1..${MAX_ITERATIONS}`
    rest = fields.slice(2)
  } else {
    return `unknown hash type ${JSON.stringify(`$${type ?? ''}$`)}; expected $6$ (SHA-512) or $7$ (PBKDF2-SHA512)`
  }
  const [saltText = '', hashText = ''] = rest
  const salt = decodeBase64(saltText)
  if (salt === undefined) return `salt ${JSON.stringify(saltText)} is not valid base64`
  if (!SALT_LENGTHS_READ.includes(salt.length)) return `salt is ${salt.length} bytes, expected ${SALT_LENGTHS_READ.join(' or ')}`
  const hash = decodeBase64(hashText)
  if (hash === undefined) return `hash ${JSON.stringify(hashText)} is not valid base64`
  if (hash.length !== HASH_BYTES) return `hash is ${hash.length} bytes, expected ${HASH_BYTES} (SHA-512)`
  return iterations === undefined ? { kind: 'sha512', salt, hash } : { kind: 'pbkdf2-sha512', iterations, salt, hash }
}

async function digest(stored: StoredHash, password: Buffer): Promise<Buffer> {
  if (stored.kind === 'sha512') return createHash('sha512').update(password).update(stored.salt).digest()
  // The async form runs in libuv's thread pool: a file with 100,000 iterations costs tens of
  // milliseconds per login, which must not stall every other client's traffic.
  return pbkdf2Async(password, stored.salt, stored.iterations, HASH_BYTES, 'sha512')
}

/**
 * The hash an unknown user is checked against, so a refusal takes as long for a user that does
 * not exist as for a wrong password: the file's most common hash type and iteration count.
 */
function dummyFor(hashes: Iterable<StoredHash>): StoredHash {
  const counts = new Map<string, { n: number; sample: StoredHash }>()
  for (const h of hashes) {
    const key = h.kind === 'sha512' ? '6' : `7/${h.iterations}`
    const c = counts.get(key)
    counts.set(key, { n: (c?.n ?? 0) + 1, sample: h })
  }
  let best: StoredHash = { kind: 'pbkdf2-sha512', iterations: DEFAULT_ITERATIONS, salt: Buffer.alloc(0), hash: Buffer.alloc(0) }
  let bestN = 0
  for (const { n, sample } of counts.values()) if (n > bestN) [best, bestN] = [sample, n]
  const salt = randomBytes(SALT_BYTES)
  const hash = randomBytes(HASH_BYTES)
  return best.kind === 'sha512' ? { kind: 'sha512', salt, hash } : { kind: 'pbkdf2-sha512', iterations: best.iterations, salt, hash }
}

/** A parsed password file. Immutable: a changed file is loaded again into a new instance. */
export class PasswordFile {
  readonly #entries: ReadonlyMap<string, StoredHash>
  readonly #dummy: StoredHash
  /** Users in file order. */
  readonly users: readonly string[]
  /**
   * Things that work but deserve a log line, each `FILE:LINE: ...`. Today: a user listed twice.
   * Mosquitto 2.0.11 lets the later line win (tested), later Mosquitto releases keep the first
   * or refuse the file, so such a file means different things to different brokers.
   */
  readonly warnings: readonly string[]

  private constructor(entries: ReadonlyMap<string, StoredHash>, warnings: readonly string[]) {
    this.#entries = entries
    this.users = [...entries.keys()]
    this.warnings = warnings
    this.#dummy = dummyFor(entries.values())
  }

  /**
   * Parses the text of a password file. Blank lines and lines starting with '#' are skipped, as
   * Mosquitto does. `file` only names the file in messages.
   *
   * @throws OutpostError OUTPOST_E_PASSWD `FILE:LINE: ...` for the first malformed line. Mosquitto
   *   logs such a line and drops that user; refusing the file makes the mistake impossible to miss.
   */
  static parse(text: string, file: string): PasswordFile {
    const entries = new Map<string, StoredHash>()
    const lineOf = new Map<string, number>()
    const warnings: string[] = []
    const lines = text.split('\n')
    for (const [i, raw] of lines.entries()) {
      const where = `${file}:${i + 1}`
      const parts = splitLine(raw)
      if (parts === undefined) continue
      if ('problem' in parts) throw passwdError(`${where}: ${parts.problem}`)
      const stored = decodeHash(parts.encoded)
      if (typeof stored === 'string') throw passwdError(`${where}: user ${JSON.stringify(parts.user)}: ${stored}`)
      const previous = lineOf.get(parts.user)
      if (previous !== undefined) {
        warnings.push(`${where}: user ${JSON.stringify(parts.user)} is also on line ${previous}; this later line wins, as in Mosquitto 2.0`)
      }
      entries.set(parts.user, stored)
      lineOf.set(parts.user, i + 1)
    }
    return new PasswordFile(entries, warnings)
  }

  /** @throws OutpostError OUTPOST_E_PASSWD naming the path when it cannot be read or parsed. */
  static async load(path: string): Promise<PasswordFile> {
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      throw passwdError(`${path}: cannot read the password file: ${err instanceof Error ? err.message : String(err)}`, err)
    }
    return PasswordFile.parse(text, path)
  }

  /**
   * True when `password` is `user`'s. The hashes are compared in constant time, and an unknown
   * user is hashed against a dummy of the file's usual cost, so neither the comparison nor the
   * time taken tells which users exist. A string password is taken as UTF-8.
   */
  async verify(user: string, password: string | Uint8Array): Promise<boolean> {
    const entry = this.#entries.get(user)
    const stored = entry ?? this.#dummy
    const candidate = await digest(stored, typeof password === 'string' ? Buffer.from(password, 'utf8') : Buffer.from(password))
    const same = timingSafeEqual(candidate, stored.hash)
    return entry !== undefined && same
  }
}

function checkIterations(iterations: number): void {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
    throw passwdError(`iterations must be a whole number in 1..${MAX_ITERATIONS}, got ${iterations}`)
  }
}

/**
 * `$7$ITERATIONS$SALT$HASH` exactly as mosquitto_passwd 2.0 writes it: PBKDF2-HMAC-SHA512 over the
 * UTF-8 password, a random 12-byte salt, a 64-byte hash, both in standard padded base64.
 */
export async function hashPassword(password: string, options: { iterations?: number } = {}): Promise<string> {
  const iterations = options.iterations ?? DEFAULT_ITERATIONS
  checkIterations(iterations)
  const salt = randomBytes(SALT_BYTES)
  const hash = await pbkdf2Async(Buffer.from(password, 'utf8'), salt, iterations, HASH_BYTES, 'sha512')
  return `$7$${iterations}$${salt.toString('base64')}$${hash.toString('base64')}`
}

/** Why `user` cannot go into a password file, or undefined when it can. */
export function usernameProblem(user: string): string | undefined {
  if (user === '') return 'must not be empty'
  if (user.includes(':')) return "must not contain ':' (it separates the user name from the hash)"
  // C0, DEL and C1 controls: mosquitto_passwd refuses the C0 ones; none belongs in a name.
  if (/[\u0000-\u001f\u007f-\u009f]/.test(user)) return 'must not contain control characters'
  // U+FFFD is what Node makes of bytes that are not UTF-8 on the command line.
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]|\uFFFD/.test(user)) return 'must be valid UTF-8'
  if (user.trim() !== user) return 'must not start or end with blanks (Mosquitto trims them when it reads the file)'
  if (user.startsWith('#')) return "must not start with '#' (Mosquitto reads such a line as a comment)"
  if (Buffer.byteLength(user, 'utf8') > 65_535) return 'must be at most 65,535 bytes of UTF-8 (MQTT\'s limit)'
  return undefined
}

async function statIfExists(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path)
  } catch (err) {
    if (err instanceof Error && 'code' in err && err.code === 'ENOENT') return undefined
    throw passwdError(`${path}: ${err instanceof Error ? err.message : String(err)}`, err)
  }
}

/**
 * Replaces `target` in one step: a temp file in the same directory, flushed, then renamed over
 * it, so a crash or power cut leaves the old file or the new one, never half of each. An
 * existing file keeps its mode and owner (a broker running as another user must still read it);
 * a new one is 0600.
 */
async function replaceFile(target: string, data: string, previous: Stats | undefined): Promise<void> {
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`)
  let fh
  try {
    fh = await open(tmp, 'wx', 0o600)
  } catch (err) {
    throw passwdError(`${target}: cannot create a temporary file next to it: ${err instanceof Error ? err.message : String(err)}`, err)
  }
  try {
    await fh.writeFile(data, 'utf8')
    // chmod, not open()'s mode, which the umask could narrow.
    await fh.chmod(previous === undefined ? 0o600 : previous.mode & 0o7777)
    if (previous !== undefined) {
      const now = await fh.stat()
      if (now.uid !== previous.uid || now.gid !== previous.gid) await fh.chown(previous.uid, previous.gid)
    }
    await fh.sync()
    await fh.close()
    await rename(tmp, target)
  } catch (err) {
    await fh.close().catch(() => undefined)
    await unlink(tmp).catch(() => undefined)
    throw passwdError(`${target}: cannot write the password file: ${err instanceof Error ? err.message : String(err)}`, err)
  }
  // The rename is only durable once the directory is flushed; a failure here changes nothing
  // the caller could act on, so it is not reported.
  const dir = await open(dirname(target), 'r').catch(() => undefined)
  await dir?.sync().catch(() => undefined)
  await dir?.close().catch(() => undefined)
}

/**
 * Adds or changes `user` (hashed as `$7$`), or deletes it when `password` is undefined, keeping
 * every other line, comments included, as it was. With `create`, the file is replaced by one
 * holding only this user (mosquitto_passwd -c). A symlink is followed, so the file it points at
 * is what gets replaced.
 *
 * @throws OutpostError OUTPOST_E_PASSWD for a bad user name, a missing file without `create`, a
 *   malformed existing file (`FILE:LINE: ...`), deleting a user that is not there, or a write error.
 */
export async function updatePasswordFile(
  path: string,
  user: string,
  password: string | undefined,
  options: { create?: boolean; iterations?: number } = {},
): Promise<PasswordFileChange> {
  const problem = usernameProblem(user)
  if (problem !== undefined) throw passwdError(`user name ${JSON.stringify(user)} ${problem}`)
  if (password === undefined && options.create === true) throw passwdError('cannot create a new file and delete a user from it at once')
  const newLine = password === undefined ? undefined : `${user}:${await hashPassword(password, { iterations: options.iterations ?? DEFAULT_ITERATIONS })}`

  const previous = await statIfExists(path)
  const target = previous === undefined ? path : await realpath(path)
  if (options.create === true) {
    await replaceFile(target, `${newLine ?? ''}\n`, previous)
    return 'created'
  }
  if (previous === undefined) throw passwdError(`${path}: no such file; use -c to create it`)
  let text: string
  try {
    text = await readFile(target, 'utf8')
  } catch (err) {
    throw passwdError(`${path}: cannot read the password file: ${err instanceof Error ? err.message : String(err)}`, err)
  }
  // Refuse to edit a file the broker could not use: the mistake is reported where it is.
  PasswordFile.parse(text, path)

  const lines = text.split('\n')
  if (lines.at(-1) === '') lines.pop()
  // A file edited on Windows keeps its CRLF line ends, the new line included.
  const eol = lines.length > 0 && lines.every((l) => l.endsWith('\r')) ? '\r' : ''
  const out: string[] = []
  let found = false
  for (const raw of lines) {
    const parts = splitLine(raw)
    if (parts === undefined || 'problem' in parts || parts.user !== user) {
      out.push(raw)
      continue
    }
    // The first line of the user gets the new hash; any later duplicate goes, so every
    // Mosquitto version reads the same password for this user afterwards.
    if (!found && newLine !== undefined) out.push(newLine + eol)
    found = true
  }
  if (!found) {
    if (newLine === undefined) throw passwdError(`${path}: user ${JSON.stringify(user)} not found`)
    out.push(newLine + eol)
  }
  await replaceFile(target, out.map((l) => `${l}\n`).join(''), previous)
  return password === undefined ? 'deleted' : found ? 'changed' : 'added'
}
