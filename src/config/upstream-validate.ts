/**
 * Validates `gateway_id` and the `upstream:` section into `UpstreamConfig[]`: where each cloud
 * broker is, how to log in, TLS, Mosquitto-style topic rules and the outbox caps. Placeholders
 * (`{gateway_id}`, `{name}`) are checked here but kept as written: the bridge renders them.
 * Like `serial`, the section is taken only when every entry is valid.
 */
import { isMap, isScalar, isSeq, type Scalar, type YAMLMap } from 'yaml'
import { TopicTemplate, type Placeholder } from '../serial/template.js'
import { defaultUpstream } from './defaults.js'
import {
  boolean,
  describeValue,
  integer,
  mismatch,
  MQTT_MAX_STRING_BYTES,
  oneOf,
  pemProblem,
  positiveNumber,
  qos,
  quoteIt,
  simpleName,
  topicFilterProblem,
  utf8String,
  type Rule,
} from './rules.js'
// validate.ts imports readUpstream from here. The cycle is safe as long as validate.ts refers only
// to hoisted function declarations from here, and this module's top level calls only `scalar` and `checked` (both hoisted) from it.
// It comes before serial-validate-mapping.js so that, when this module is loaded first, the serial
// modules are still entered the way validate.ts enters them.
import { checked, deref, forEachMapping, offsetOf, plainValue, readMapping, report, scalar, type FieldSpec, type Walk } from './validate.js'
import { find, templateProblem } from './serial-validate-mapping.js'
import type { OutpostConfig } from './types.js'
import type { Direction, TopicRule, UpstreamConfig, UpstreamTls } from './upstream-types.js'

const PLACEHOLDERS: readonly Placeholder[] = ['gateway_id', 'name']
const URL_EXAMPLE = 'a URL such as mqtts://broker.example.com:8883 (mqtt://, mqtts://, ws:// or wss://)'
/** Each scheme's default port, and whether it is TLS. */
const SCHEMES: Readonly<Record<string, [number, boolean]>> = { mqtt: [1883, false], mqtts: [8883, true], ws: [80, false], wss: [443, true] }
// What other clients (mqtt.js, Paho, Mosquitto's tools) accept, pointed at the spelling used here.
const SCHEME_ALIASES: Readonly<Record<string, string>> = { tcp: 'mqtt', ssl: 'mqtts', tls: 'mqtts', 'mqtt+ssl': 'mqtts', http: 'ws', https: 'wss' }

const protocolVersion: Rule<4 | 5> = {
  expected: '4 (MQTT 3.1.1) or 5',
  accepts: (v): v is 4 | 5 => v === 4 || v === 5,
  hint: (v) => {
    if (v === '3.1.1' || v === 311) return 'MQTT 3.1.1 is protocol level 4: write 4'
    if (v === '5' || v === '5.0') return 'write 5 without quotes'
    return v === 3 || v === 3.1 || v === '3.1' ? 'MQTT 3.1 (level 3) is not supported; write 4 for 3.1.1' : undefined
  },
}

const keepalive: Rule<number> = {
  ...integer(1, 65535),
  hint: (v) => (v === 0 ? '0 turns keepalive off, and a half-open link would then go unnoticed' : integer(1, 65535).hint?.(v)),
}

const serverName: Rule<string> = {
  expected: 'a host name, without spaces or /',
  accepts: (v): v is string => typeof v === 'string' && /^[^\s/]+$/.test(v),
}

const mqttString = utf8String(MQTT_MAX_STRING_BYTES, false)
const pathString = utf8String(4096, true)
const topicString: Rule<string> = { expected: 'a string', accepts: (v): v is string => typeof v === 'string', hint: quoteIt }
const DIRECTIONS = oneOf(['out', 'in', 'both'] as const)

interface UrlParts {
  scheme: string
  host: string
  /** The scheme's default when the URL has none. */
  port: number
}

/** One `upstream:` entry under construction. */
interface Draft {
  up: UpstreamConfig
  name: string | undefined
  /** The URL's parts once it was found valid. */
  url: UrlParts | undefined
  tlsSeen: ReadonlySet<string>
}

/** The URL's scheme, host and port, or why it is not one Outpost can connect to. */
function parseUrl(text: string): UrlParts | string {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text)?.[1]?.toLowerCase()
  if (scheme === undefined) return `expected ${URL_EXAMPLE}`
  const known = SCHEMES[scheme]
  if (known === undefined) {
    const alias = SCHEME_ALIASES[scheme]
    return `${scheme}:// is not supported${alias === undefined ? '' : `; write ${alias}://${text.slice(scheme.length + 3)}`}; expected mqtt://, mqtts://, ws:// or wss://`
  }
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return `not a valid URL (is the port 1..65535?); expected ${URL_EXAMPLE}`
  }
  if (url.hostname === '') return 'no host; expected e.g. mqtts://broker.example.com:8883'
  if (url.username !== '' || url.password !== '') return 'put the user name and password in username and password, not in the URL'
  if (url.search !== '' || url.hash !== '') return 'a broker URL takes no ?query or #fragment'
  if (!scheme.startsWith('ws') && url.pathname !== '' && url.pathname !== '/') return `only ws:// and wss:// URLs take a path; this is ${scheme}://`
  if (url.port === '0') return 'port 0 is not a port a broker listens on'
  return { scheme, host: url.hostname, port: url.port === '' ? known[0] : Number(url.port) }
}

/** A remote prefix may start with `$` (AWS IoT's `$aws/...`), but not turn a filter into a shared subscription. */
const shared = (text: string): boolean => /^\$(share|queue)\//.test(text)

/** `problem`, after checking that the only placeholders are `{gateway_id}` and `{name}`. */
function templated(problem: (v: string) => string | undefined): (v: string) => string | undefined {
  return (v) => {
    const parsed = TopicTemplate.parse(v, PLACEHOLDERS)
    return typeof parsed === 'string' ? parsed : problem(v)
  }
}

/** Mosquitto's check on a prefix: a topic, not a filter. */
function prefixProblem(v: string): string | undefined {
  if (/[+#\u0000]/.test(v)) return 'a prefix cannot contain the wildcards + or #'
  return shared(v) ? 'a prefix cannot start with $share/ or $queue/' : undefined
}

const TLS_FIELDS: Readonly<Record<string, FieldSpec<UpstreamTls>>> = {
  ca_file: checked(pathString, (v) => pemProblem(v, 'certificate'), (t, v) => { t.caFile = v }),
  cert_file: checked(pathString, (v) => pemProblem(v, 'certificate'), (t, v) => { t.certFile = v }),
  key_file: checked(pathString, (v) => pemProblem(v, 'key'), (t, v) => { t.keyFile = v }),
  server_name: scalar(serverName, (t, v) => { t.serverName = v }),
  verify: scalar(boolean, (t, v) => { t.verify = v }),
}

const RULE_FIELDS: Readonly<Record<string, FieldSpec<Partial<TopicRule>>>> = {
  pattern: scalar(topicString, (r, v) => { r.pattern = v }),
  direction: scalar(DIRECTIONS, (r, v) => { r.direction = v }),
  qos: scalar(qos, (r, v) => { r.qos = v }),
  local_prefix: scalar(topicString, (r, v) => { r.localPrefix = v }),
  remote_prefix: scalar(topicString, (r, v) => { r.remotePrefix = v }),
}

/** The parts a whole-rule problem is blamed on. */
type RulePart = 'pattern' | 'local_prefix' | 'remote_prefix'
const RULE_SYNTAX = 'PATTERN [DIRECTION [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]'

/** Mosquitto's checks on a whole rule, each with the part to blame. */
function ruleProblems(r: TopicRule): Array<[RulePart, string]> {
  const found: Array<[RulePart, string]> = []
  const { pattern, localPrefix, remotePrefix } = r
  for (const [part, prefix] of [['local_prefix', localPrefix], ['remote_prefix', remotePrefix]] as const) {
    const why = prefixProblem(prefix)
    if (why !== undefined) found.push([part, why])
  }
  if (pattern === '') {
    // Mosquitto's `topic "" out 0 local/topic remote/topic`: the prefixes are then the topics.
    if (localPrefix === '' || remotePrefix === '') found.push(['pattern', 'an empty pattern needs both local_prefix and remote_prefix, which are then the whole topics'])
  } else if (shared(pattern)) {
    found.push(['pattern', 'a shared subscription ($share/, $queue/) cannot be a bridge pattern'])
  } else {
    const alone = topicFilterProblem(pattern)
    if (alone !== undefined) found.push(['pattern', alone])
  }
  if (found.length > 0) return found
  for (const [part, prefix] of [['local_prefix', localPrefix], ['remote_prefix', remotePrefix]] as const) {
    const why = topicFilterProblem(prefix + pattern)
    if (why !== undefined) found.push([part, `${part} + pattern gives "${prefix + pattern}": ${why}`])
  }
  const local = localPrefix + pattern
  if (r.direction !== 'out' && local.startsWith('$')) {
    found.push([localPrefix === '' ? 'pattern' : 'local_prefix', `direction ${r.direction} would publish to local topics "${local}"; topics starting with $ are reserved for the broker`])
  }
  return found
}

/** Where a string's character `index` sits in the file, when the scalar is written without escapes. */
function charOffset(node: Scalar, index: number): number {
  const [start, end] = node.range ?? [0, 0]
  const quoted = node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE'
  const plain = node.type === 'PLAIN'
  const text = String(node.value)
  return (plain || quoted) && end - start === text.length + (quoted ? 2 : 0) ? start + (quoted ? 1 : 0) + index : start
}

/** Splits a Mosquitto `topic` line into words: `""` is an empty one, `"a b"` one with a space. */
function splitWords(text: string): Array<{ word: string; index: number }> | { problem: string; index: number } {
  const words: Array<{ word: string; index: number }> = []
  for (const m of text.matchAll(/"([^"]*)"(?!\S)|[^\s"]\S*|"/g)) {
    if (m[0] === '"') return { problem: 'a quote must enclose a whole word, as in "" or "a b"', index: m.index }
    words.push({ word: m[1] ?? m[0], index: m.index })
  }
  return words
}

/** A rule written as Mosquitto writes it; problems are reported on the item, naming the part. */
function ruleFromString(w: Walk, node: Scalar, path: string): TopicRule | undefined {
  const text = String(node.value)
  const bad = (index: number, message: string): undefined => {
    report(w, charOffset(node, index), path, message)
    return undefined
  }
  const split = splitWords(text)
  if (!Array.isArray(split)) return bad(split.index, `${split.problem}; expected ${RULE_SYNTAX}`)
  const [pattern, direction, level, local, remote, extra] = split
  if (pattern === undefined) return bad(0, `empty rule; expected ${RULE_SYNTAX}`)
  if (extra !== undefined) return bad(extra.index, `too many words; expected ${RULE_SYNTAX} (quote a word with spaces: "a b")`)
  if (local !== undefined && remote === undefined) return bad(local.index, 'a local prefix needs a remote prefix after it (write "" for none)')
  // Mosquitto reads the direction without regard to case.
  const dir = direction?.word.toLowerCase() ?? 'out'
  if (!DIRECTIONS.accepts(dir)) return bad(direction?.index ?? 0, `direction: ${mismatch(DIRECTIONS, direction?.word)}`)
  const q = level === undefined ? 0 : /^[0-2]$/.test(level.word) ? Number(level.word) : undefined
  if (!qos.accepts(q)) return bad(level?.index ?? 0, `qos: ${mismatch(qos, level?.word)}`)
  const rule: TopicRule = { pattern: pattern.word, direction: dir, qos: q, localPrefix: local?.word ?? '', remotePrefix: remote?.word ?? '' }
  const at: Record<RulePart, number> = { pattern: pattern.index, local_prefix: local?.index ?? 0, remote_prefix: remote?.index ?? 0 }
  const found = ruleProblems(rule)
  for (const [part, message] of found) bad(at[part], `${part}: ${message}`)
  return found.length > 0 ? undefined : rule
}

function ruleFromMapping(w: Walk, item: YAMLMap, at: number, path: string): TopicRule | undefined {
  const draft: Partial<TopicRule> = {}
  const before = w.problems.length
  const seen = readMapping(w, item, path, RULE_FIELDS, draft)
  if (!seen.has('pattern')) report(w, at, `${path}.pattern`, 'missing; expected a topic filter such as sensors/#')
  if (w.problems.length > before || draft.pattern === undefined) return undefined
  const rule: TopicRule = { pattern: draft.pattern, direction: draft.direction ?? 'out', qos: draft.qos ?? 0, localPrefix: draft.localPrefix ?? '', remotePrefix: draft.remotePrefix ?? '' }
  const found = ruleProblems(rule)
  for (const [part, message] of found) report(w, find(w, item, [part], at), `${path}.${part}`, message)
  return found.length > 0 ? undefined : rule
}

function readTopics(w: Walk, node: unknown, offset: number, field: string, d: Draft): void {
  if (!isSeq(node)) {
    report(w, offset, field, `expected a list of topic rules (for example - "sensors/# out 1"), got ${describeValue(plainValue(node))}`)
    return
  }
  const rules: TopicRule[] = []
  const firstAt = new Map<string, Array<{ i: number; direction: Direction }>>()
  let ok = true
  node.items.forEach((raw, i) => {
    const path = `${field}[${i}]`
    const item = deref(w, raw)
    const at = offsetOf(raw, offset)
    let rule: TopicRule | undefined
    if (isMap(item)) rule = ruleFromMapping(w, item, at, path)
    else if (isScalar(item) && typeof item.value === 'string') rule = ruleFromString(w, item, path)
    else report(w, at, path, `expected "${RULE_SYNTAX}" or a mapping with pattern, got ${describeValue(plainValue(item))}`)
    if (rule === undefined) {
      ok = false
      return
    }
    // Mosquitto skips a repeated rule silently; an overlapping one here would forward a message twice.
    const key = [rule.pattern, rule.localPrefix, rule.remotePrefix].join('\u0000')
    const same = firstAt.get(key) ?? []
    const { direction } = rule
    const clash = same.find((x) => x.direction === direction || x.direction === 'both' || direction === 'both')
    if (clash !== undefined) {
      report(w, at, path, `repeats ${field}[${clash.i}]: same pattern and prefixes, and directions ${clash.direction} and ${direction} overlap; keep one`)
      ok = false
      return
    }
    firstAt.set(key, [...same, { i, direction }])
    rules.push(rule)
  })
  if (ok) d.up.topics = rules
}

function readTls(w: Walk, node: unknown, offset: number, field: string, d: Draft): void {
  if (!isMap(node)) {
    report(w, offset, field, `expected a mapping (for example { ca_file: /etc/outpost/ca.pem }), got ${describeValue(plainValue(node))}`)
    return
  }
  const tls = { ...d.up.tls }
  d.tlsSeen = readMapping(w, node, field, TLS_FIELDS, tls)
  d.up.tls = tls
}

const ENTRY_FIELDS: Readonly<Record<string, FieldSpec<Draft>>> = {
  name: scalar(simpleName, (d, v) => { d.name = v }),
  url: {
    read(w, node, offset, field, d) {
      const value = plainValue(node)
      if (typeof value !== 'string') return report(w, offset, field, `expected ${URL_EXAMPLE}, got ${describeValue(value)}`)
      const url = parseUrl(value)
      if (typeof url === 'string') report(w, offset, field, url)
      else [d.url, d.up.url] = [url, value]
    },
  },
  client_id: checked(utf8String(MQTT_MAX_STRING_BYTES, true), templated((v) => (v.includes('\u0000') ? 'a client id cannot contain U+0000' : undefined)), (d, v) => { d.up.clientId = v }),
  username: scalar(mqttString, (d, v) => { d.up.username = v }),
  password: {
    // The value is never repeated in a message: problems end up in logs.
    read(w, node, offset, field, d) {
      const value = plainValue(node)
      if (mqttString.accepts(value)) d.up.password = value
      else report(w, offset, field, `expected ${mqttString.expected}, got ${value === null || typeof value === 'object' ? describeValue(value) : `a ${typeof value} (not shown)`}`)
    },
  },
  protocol_version: scalar(protocolVersion, (d, v) => { d.up.protocolVersion = v }),
  keepalive: scalar(keepalive, (d, v) => { d.up.keepalive = v }),
  clean_session: scalar(boolean, (d, v) => { d.up.cleanSession = v }),
  tls: { read: readTls },
  topics: { read: readTopics },
  prefix: checked(topicString, templated((v) => prefixProblem(v) ?? (v === '' || v.endsWith('/') ? undefined : `must end with / (a mount point is whole topic levels), as in "${v}/"`)), (d, v) => { d.up.prefix = v }),
  reconnect_min: scalar(positiveNumber, (d, v) => { d.up.reconnectMin = v }),
  reconnect_max: scalar(positiveNumber, (d, v) => { d.up.reconnectMax = v }),
  max_inflight: scalar(integer(1, 65535), (d, v) => { d.up.maxInflight = v }),
  max_queued_messages: scalar(integer(0), (d, v) => { d.up.maxQueuedMessages = v }),
  max_queued_bytes: scalar(integer(0), (d, v) => { d.up.maxQueuedBytes = v }),
  queue_full_policy: scalar(oneOf(['drop_oldest', 'reject_new'] as const), (d, v) => { d.up.queueFullPolicy = v }),
  notification_topic: checked(topicString, (v) => templateProblem(v, PLACEHOLDERS, 'publish-or-off'), (d, v) => { d.up.notificationTopic = v }),
}

/** Every key an `upstream` entry accepts. */
export const UPSTREAM_KEYS: readonly string[] = Object.keys(ENTRY_FIELDS)
/** Every key of `upstream[].tls`. */
export const UPSTREAM_TLS_KEYS: readonly string[] = Object.keys(TLS_FIELDS)
/** Every key of a `upstream[].topics` entry written as a mapping. */
export const UPSTREAM_TOPIC_KEYS: readonly string[] = Object.keys(RULE_FIELDS)

/** Reads one entry; undefined (with problems reported) when it is not usable. */
function readEntry(w: Walk, item: YAMLMap, at: number, path: string): { up: UpstreamConfig; broker: string } | undefined {
  const d: Draft = { up: defaultUpstream('', ''), name: undefined, url: undefined, tlsSeen: new Set() }
  const before = w.problems.length
  const seen = readMapping(w, item, path, ENTRY_FIELDS, d)
  if (!seen.has('url')) report(w, at, `${path}.url`, `missing; expected ${URL_EXAMPLE}`)
  // The checks below need the keys they compare to be valid; a bad one is reported already.
  const bad = new Set(w.problems.slice(before).map((p) => p.field))
  const ok = (key: string): boolean => !bad.has(`${path}.${key}`)
  const blame = (keys: string[], message: string): void => report(w, find(w, item, keys, at), `${path}.${keys.join('.')}`, message)
  const { up, url } = d
  // The default: the URL's host with anything outside [A-Za-z0-9_.-] turned into `_`.
  up.name = d.name ?? (url?.host ?? '').replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^_+|_+$/g, '')
  if (url !== undefined && up.name === '') blame(['url'], 'cannot make a bridge name from this host; set name')
  if (url !== undefined && SCHEMES[url.scheme]?.[1] !== true && seen.has('tls')) {
    blame(['tls'], `only with mqtts:// or wss://; this bridge's URL is ${url.scheme}:// (did you mean ${url.scheme}s://?)`)
  }
  for (const [key, other] of [['cert_file', 'key_file'], ['key_file', 'cert_file']] as const) {
    if (d.tlsSeen.has(key) && !d.tlsSeen.has(other)) blame(['tls', key], `needs tls.${other} too: a client certificate goes with its key`)
  }
  if (up.password !== undefined && up.username === undefined && ok('protocol_version') && up.protocolVersion === 4) {
    blame(['password'], 'MQTT 3.1.1 sends a password only with a username; set username, or protocol_version: 5')
  }
  if (ok('reconnect_min') && ok('reconnect_max') && up.reconnectMax < up.reconnectMin) {
    if (seen.has('reconnect_max')) blame(['reconnect_max'], `expected at least reconnect_min (${up.reconnectMin}), got ${up.reconnectMax}`)
    else blame(['reconnect_min'], `above reconnect_max (default ${up.reconnectMax}); set reconnect_max too`)
  }
  if (w.problems.length > before || url === undefined) return undefined
  return { up, broker: `${url.host.toLowerCase()}:${url.port}` }
}

export function readUpstream(w: Walk, node: unknown, offset: number, field: string, target: OutpostConfig): void {
  const bridges: UpstreamConfig[] = []
  const firstAt = new Map<string, number>()
  const example = { list: 'a list of bridges (for example - url: mqtts://broker.example.com:8883)', item: 'a mapping with a url' }
  const allValid = forEachMapping(w, node, offset, field, example, (item, at, path, i) => {
    const entry = readEntry(w, item, at, path)
    if (entry === undefined) return false
    const { up, broker } = entry
    // Each must differ between bridges; undefined exempts one.
    const unique: Array<[string, string | undefined, (earlier: number) => string]> = [
      ['name', up.name, (j) => `same name as ${field}[${j}] ("${up.name}")${item.has('name') ? '' : ' (derived from the URL; set name)'}`],
      // A broker drops the older of two connections with one client id: two such bridges would take turns.
      ['client_id', up.clientId.includes('{name}') ? undefined : `${broker} ${up.clientId}`,
        (j) => `same broker and client id as ${field}[${j}] ("${up.clientId}"): the broker would drop one link whenever the other connects; put {name} in client_id`],
      ['notification_topic', up.notificationTopic === '' || up.notificationTopic.includes('{name}') ? undefined : up.notificationTopic,
        (j) => `same as ${field}[${j}]: the two bridges' states would overwrite each other; put {name} in it`],
    ]
    let clash = false
    for (const [key, value, message] of unique) {
      const earlier = value === undefined ? undefined : firstAt.get(`${key} ${value}`)
      if (earlier !== undefined) report(w, find(w, item, [key], find(w, item, ['url'], at)), `${path}.${key}`, message(earlier))
      clash ||= earlier !== undefined
    }
    if (clash) return false
    for (const [key, value] of unique) if (value !== undefined) firstAt.set(`${key} ${value}`, i)
    bridges.push(up)
    return true
  })
  if (allValid === true) target.upstream = bridges
}
