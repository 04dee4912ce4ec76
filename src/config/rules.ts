import { closeSync, openSync, readFileSync, statSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'
import type { ListenerProtocol, LogLevel } from './types.js'

/**
 * One check on a single value, shared by the YAML validator and the command-line flags so that
 * `--port 70000` and `port: 70000` are refused with the same words.
 */
export interface Rule<T> {
  /** Completes "expected …", e.g. `an integer 0..65535`. */
  readonly expected: string
  accepts(value: unknown): value is T
  /** A short extra explanation for a value that is close to right, e.g. `yes` for a boolean. */
  hint?(value: unknown): string | undefined
}

/** The protocol's own PUBLISH limit: the largest Remaining Length a fixed header can encode. */
export const MQTT_MAX_PACKET_SIZE = 268_435_455

export function integer(min: number, max: number = Number.MAX_SAFE_INTEGER): Rule<number> {
  const expected = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer ${min}..${max}`
  return {
    expected,
    accepts: (v): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max,
    hint: (v) => (typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? 'remove the quotes: a quoted number is a string' : undefined),
  }
}

/** A quoted number is the commonest way to get a string where a number belongs. */
function quotedNumberHint(v: unknown): string | undefined {
  return typeof v === 'string' && /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v.trim()) ? 'remove the quotes: a quoted number is a string' : undefined
}

/** A finite number >= 0, fractions allowed (seconds, distances); `.inf` and `.nan` are refused. */
export const nonNegativeNumber: Rule<number> = {
  expected: 'a number >= 0',
  accepts: (v): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0,
  hint: quotedNumberHint,
}

/** A finite number > 0, for timeouts where 0 would mean "never wait". */
export const positiveNumber: Rule<number> = {
  expected: 'a number > 0',
  accepts: (v): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0,
  hint: quotedNumberHint,
}

/** A finite number other than 0, for factors where 0 would erase the value. */
export const nonZeroNumber: Rule<number> = {
  expected: 'a number other than 0',
  accepts: (v): v is number => typeof v === 'number' && Number.isFinite(v) && v !== 0,
  hint: quotedNumberHint,
}

/** One of a few numbers, e.g. data bits 5, 6, 7 or 8. */
export function numberOf<const T extends number>(values: readonly T[]): Rule<T> {
  const expected = values.length === 1 ? String(values[0]) : `${values.slice(0, -1).join(', ')} or ${String(values.at(-1))}`
  return {
    expected,
    accepts: (v): v is T => typeof v === 'number' && values.some((x) => x === v),
    hint: quotedNumberHint,
  }
}

export const boolean: Rule<boolean> = {
  expected: 'true or false',
  accepts: (v): v is boolean => typeof v === 'boolean',
  // YAML 1.1 read these as booleans; YAML 1.2 (what the parser speaks) reads them as strings,
  // which surprises anyone coming from older configs.
  hint: (v) => (typeof v === 'string' && /^(yes|no|on|off|y|n)$/i.test(v) ? 'YAML 1.2 booleans are only true and false' : undefined),
}

export const nonEmptyString: Rule<string> = {
  expected: 'a non-empty string',
  accepts: (v): v is string => typeof v === 'string' && v.trim() !== '',
}

export function oneOf<const T extends string>(values: readonly T[]): Rule<T> {
  return {
    expected: `one of ${values.join(', ')}`,
    accepts: (v): v is T => typeof v === 'string' && values.some((x) => x === v),
  }
}

// A record rather than an array so the compiler fails here if LogLevel gains a member.
const LOG_LEVEL_SET = {
  fatal: true,
  error: true,
  warn: true,
  info: true,
  debug: true,
  trace: true,
  silent: true,
} as const satisfies Record<LogLevel, true>

export function isLogLevel(v: unknown): v is LogLevel {
  return typeof v === 'string' && Object.hasOwn(LOG_LEVEL_SET, v)
}

export const LOG_LEVELS: readonly LogLevel[] = Object.keys(LOG_LEVEL_SET).filter(isLogLevel)

export const logLevel: Rule<LogLevel> = {
  expected: `one of ${LOG_LEVELS.join(', ')}`,
  accepts: isLogLevel,
}

/** Any string, empty included (for prefixes and the like, where empty means "none"). */
export const string: Rule<string> = {
  expected: 'a string',
  accepts: (v): v is string => typeof v === 'string',
}

/** For a string value that YAML read as a number or boolean (`password: 123456`). */
export function quoteIt(v: unknown): string | undefined {
  return typeof v === 'number' || typeof v === 'boolean' ? `quote it: YAML read a ${typeof v}` : undefined
}

/** The longest string MQTT can carry (client ids, user names, passwords, topics): a 16-bit length. */
export const MQTT_MAX_STRING_BYTES = 65535

/** A string of at most `maxBytes` UTF-8 bytes, optionally non-empty; numbers get a "quote it" hint. */
export function utf8String(maxBytes: number, nonEmpty: boolean): Rule<string> {
  return {
    expected: `a ${nonEmpty ? 'non-empty ' : ''}string of at most ${maxBytes} bytes`,
    accepts: (v): v is string => typeof v === 'string' && (!nonEmpty || v !== '') && Buffer.byteLength(v) <= maxBytes,
    hint: quoteIt,
  }
}

/** A name that goes into topics as one level (and into client ids): `gateway_id`. */
export const topicLevelName: Rule<string> = {
  expected: 'a non-empty name without /, +, # or spaces',
  accepts: (v): v is string => typeof v === 'string' && /^[^\s/+#\u0000]+$/.test(v),
  hint: quoteIt,
}

/** Names that appear in logs, `$SYS` and topics: bridge names. */
export const simpleName: Rule<string> = {
  expected: 'a name of letters, digits, _, . and -',
  accepts: (v): v is string => typeof v === 'string' && /^[A-Za-z0-9_.-]+$/.test(v),
}

/** Why `text` is not a valid MQTT topic filter (a topic without wildcards is one too), or undefined. */
export function topicFilterProblem(text: string): string | undefined {
  if (text.includes('\u0000')) return 'a topic cannot contain U+0000'
  if (Buffer.byteLength(text) > MQTT_MAX_STRING_BYTES) return `longer than ${MQTT_MAX_STRING_BYTES} bytes`
  const levels = text.split('/')
  for (const [i, level] of levels.entries()) {
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return '# must be the last level and alone in it, as in sensors/#'
    if (level.includes('+') && level !== '+') return '+ must fill a whole level, as in sensors/+/temperature'
  }
  return undefined
}

export const qos: Rule<0 | 1 | 2> = {
  expected: '0, 1 or 2',
  accepts: (v): v is 0 | 1 | 2 => v === 0 || v === 1 || v === 2,
}

export const port = integer(0, 65535)

// A record rather than an array so the compiler fails here if ListenerProtocol gains a member.
const PROTOCOL_SET = { mqtt: true, mqtts: true, ws: true, wss: true } as const satisfies Record<ListenerProtocol, true>
const PROTOCOLS = Object.keys(PROTOCOL_SET).filter((p): p is ListenerProtocol => Object.hasOwn(PROTOCOL_SET, p))
// Other brokers' and URL spellings, pointed at ours; Mosquitto's `protocol websockets` is the likeliest.
const PROTOCOL_ALIASES: Readonly<Record<string, string>> = {
  tcp: 'mqtt',
  ssl: 'mqtts',
  tls: 'mqtts',
  websocket: 'ws, or wss for TLS',
  websockets: 'ws, or wss for TLS',
  http: 'ws',
  https: 'wss',
}

export const protocol: Rule<ListenerProtocol> = {
  expected: `one of ${PROTOCOLS.join(', ')}`,
  accepts: (v): v is ListenerProtocol => typeof v === 'string' && Object.hasOwn(PROTOCOL_SET, v),
  hint: (v) => {
    if (typeof v !== 'string') return undefined
    const lower = v.toLowerCase()
    if (Object.hasOwn(PROTOCOL_SET, lower)) return `write ${lower} in lower case`
    const alias = Object.hasOwn(PROTOCOL_ALIASES, lower) ? PROTOCOL_ALIASES[lower] : undefined
    return alias === undefined ? undefined : `write ${alias}`
  },
}

/** How a path from the config appears in messages: relative ones also as resolved, since the working directory is rarely obvious. */
function describePath(path: string): string {
  return isAbsolute(path) ? path : `${path} (${resolve(path)}: relative to the working directory)`
}

/** Why an I/O error stopped a file from being read, in an operator's words. */
function readFailure(err: unknown, where: string): string {
  const code = err instanceof Error && 'code' in err ? err.code : undefined
  if (code === 'ENOENT') return `no such file: ${where}`
  return code === 'EACCES' ? `cannot read ${where}: permission denied` : `cannot read ${where}: ${err instanceof Error ? err.message : String(err)}`
}

/**
 * Why `path` is not a regular file this process can read, or undefined. Only readability is
 * checked: the modules that use the file (password and ACL files) parse it themselves.
 */
export function readableFileProblem(path: string): string | undefined {
  const where = describePath(path)
  try {
    if (statSync(path).isDirectory()) return `${where} is a directory; expected a file`
    // Opening is the only honest test: permissions, ACLs and read-only mounts all have a say.
    closeSync(openSync(path, 'r'))
  } catch (err) {
    return readFailure(err, where)
  }
  return undefined
}

/**
 * Why `path` is not a PEM file of `kind` that can be loaded, naming the path as resolved: a
 * missing or swapped TLS file is the commonest TLS problem, and better found by check-config than
 * at 3 a.m. Only the BEGIN lines are looked at; whether the contents parse is the caller's check.
 */
export function pemProblem(path: string, kind: 'certificate' | 'key'): string | undefined {
  const where = describePath(path)
  let text: string
  try {
    if (statSync(path).isDirectory()) return `${where} is a directory; expected a PEM file`
    text = readFileSync(path, 'latin1')
  } catch (err) {
    return readFailure(err, where)
  }
  const convert = kind === 'key' ? 'openssl pkey -inform der -in FILE -out FILE.pem' : 'openssl x509 -inform der -in FILE -out FILE.pem'
  if (!text.includes('-----BEGIN ')) return `${where} is not a PEM file (no -----BEGIN line); a DER file converts with ${convert}`
  if (kind === 'certificate') {
    if (text.includes('-----BEGIN CERTIFICATE-----')) return undefined
    return `${where} holds no -----BEGIN CERTIFICATE-----${/PRIVATE KEY-----/.test(text) ? '; it holds a private key, which belongs in key_file' : ''}`
  }
  // There is no passphrase option: Outpost starts, reloads and reconnects unattended.
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text)) return `${where} holds an encrypted key; decrypt it with openssl pkey -in FILE -out FILE.key`
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) return undefined
  return `${where} holds no private key${text.includes('-----BEGIN CERTIFICATE-----') ? '; it holds a certificate: are cert_file and key_file swapped?' : ''}`
}

/** How a found value is quoted in a message: strings in double quotes so `"1883"` and `1883` look different. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'an empty value'
  if (typeof v === 'string') return JSON.stringify(v)
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v)
  if (Array.isArray(v)) return 'a list'
  return 'a mapping'
}

/** `expected X, got Y` plus the rule's hint; call it once `rule.accepts(value)` has said no. */
export function mismatch<T>(rule: Rule<T>, value: unknown): string {
  const hint = rule.hint?.(value)
  return `expected ${rule.expected}, got ${describeValue(value)}${hint === undefined ? '' : ` (${hint})`}`
}
