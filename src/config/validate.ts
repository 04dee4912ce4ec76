import { isAlias, isMap, isNode, isScalar, isSeq, type Document, type LineCounter, type YAMLMap } from 'yaml'
import type { ConfigProblem } from './config-error.js'
import { defaultConfig } from './defaults.js'
import {
  boolean,
  describeValue,
  integer,
  logLevel,
  mismatch,
  MQTT_MAX_PACKET_SIZE,
  nonEmptyString,
  oneOf,
  qos,
  string,
  topicLevelName,
  type Rule,
} from './rules.js'
import { SHARE_STRATEGIES } from '../broker/shared.js'
import { readHttp } from './http-validate.js'
import { readListeners } from './listener-validate.js'
import { readSerial } from './serial-validate.js'
import { readUpstream } from './upstream-validate.js'
import { suggest } from './suggest.js'
import type { OutpostConfig, StoreConfig } from './types.js'

/*
 * The validator walks the YAML syntax tree rather than `doc.toJS()` output: only the tree still
 * knows where each value came from, and every problem has to name a line and column.
 */

export interface Walk {
  readonly file: string
  readonly doc: Document.Parsed
  readonly lineCounter: LineCounter
  readonly problems: ConfigProblem[]
}

export function report(w: Walk, offset: number, field: string, message: string): void {
  const { line, col } = w.lineCounter.linePos(offset)
  w.problems.push({ file: w.file, line: Math.max(1, line), column: Math.max(1, col), field, message })
}

/** Follows `*alias` to its anchored node so that anchors work like in any other YAML file. */
export function deref(w: Walk, node: unknown): unknown {
  return isAlias(node) ? node.resolve(w.doc) : node
}

export function offsetOf(node: unknown, fallback: number): number {
  return isNode(node) && node.range ? node.range[0] : fallback
}

/** A scalar's value, or a stand-in whose description is "a mapping" / "a list", for checking against a Rule. */
export function plainValue(node: unknown): unknown {
  if (isScalar(node)) return node.value
  if (isSeq(node)) return []
  if (isMap(node)) return {}
  return null
}

/** How one key in a mapping is read into the value being built. */
export interface FieldSpec<C> {
  read(w: Walk, node: unknown, offset: number, field: string, target: C): void
}

export function scalar<C, T>(rule: Rule<T>, set: (target: C, value: T) => void): FieldSpec<C> {
  return {
    read(w, node, offset, field, target) {
      const value = plainValue(node)
      if (rule.accepts(value)) set(target, value)
      else report(w, offset, field, mismatch(rule, value))
    },
  }
}

/** A scalar that passes `rule`, then `problem` (undefined when the value is fine). */
export function checked<C, T>(rule: Rule<T>, problem: (v: T) => string | undefined, set: (target: C, v: T) => void): FieldSpec<C> {
  return {
    read(w, node, offset, field, target) {
      const value = plainValue(node)
      if (!rule.accepts(value)) return report(w, offset, field, mismatch(rule, value))
      const why = problem(value)
      if (why === undefined) set(target, value)
      else report(w, offset, field, why)
    },
  }
}

const counter = integer(0)

// Keys in the order the README documents them. Each is the snake_case spelling of an OutpostConfig field.
const TOP_LEVEL_FIELDS: Readonly<Record<string, FieldSpec<OutpostConfig>>> = {
  listeners: { read: readListeners },
  data_dir: scalar(nonEmptyString, (c, v) => { c.dataDir = v }),
  log_level: scalar(logLevel, (c, v) => { c.logLevel = v }),
  allow_anonymous: scalar(boolean, (c, v) => { c.allowAnonymous = v }),
  max_connections: scalar(counter, (c, v) => { c.maxConnections = v }),
  message_size_limit: scalar(integer(0, MQTT_MAX_PACKET_SIZE), (c, v) => { c.messageSizeLimit = v }),
  max_inflight: scalar(integer(1, 65535), (c, v) => { c.maxInflight = v }),
  max_queued_messages: scalar(counter, (c, v) => { c.maxQueuedMessages = v }),
  max_queued_bytes: scalar(counter, (c, v) => { c.maxQueuedBytes = v }),
  queue_qos0_messages: scalar(boolean, (c, v) => { c.queueQos0Messages = v }),
  max_awaiting_rel: scalar(counter, (c, v) => { c.maxAwaitingRel = v }),
  await_rel_timeout: scalar(counter, (c, v) => { c.awaitRelTimeout = v }),
  queue_full_policy: scalar(oneOf(['drop_oldest', 'reject_new'] as const), (c, v) => { c.queueFullPolicy = v }),
  connect_timeout: scalar(counter, (c, v) => { c.connectTimeout = v }),
  max_keepalive: scalar(integer(0, 65535), (c, v) => { c.maxKeepalive = v }),
  max_topic_levels: scalar(counter, (c, v) => { c.maxTopicLevels = v }),
  max_topic_length: scalar(integer(0, 65535), (c, v) => { c.maxTopicLength = v }),
  max_subscriptions: scalar(counter, (c, v) => { c.maxSubscriptions = v }),
  max_publish_rate: scalar(counter, (c, v) => { c.maxPublishRate = v }),
  max_publish_bytes_rate: scalar(counter, (c, v) => { c.maxPublishBytesRate = v }),
  drain_timeout: scalar(counter, (c, v) => { c.drainTimeout = v }),
  sys_interval: scalar(counter, (c, v) => { c.sysInterval = v }),
  retain_available: scalar(boolean, (c, v) => { c.retainAvailable = v }),
  persistent_client_expiration: scalar(counter, (c, v) => { c.persistentClientExpiration = v }),
  receive_maximum: scalar(integer(1, 65535), (c, v) => { c.receiveMaximum = v }),
  topic_alias_maximum: scalar(integer(0, 65535), (c, v) => { c.topicAliasMaximum = v }),
  max_packet_size: scalar(integer(0, MQTT_MAX_PACKET_SIZE + 5), (c, v) => { c.maxPacketSize = v }),
  max_qos: scalar(qos, (c, v) => { c.maxQos = v }),
  wildcard_subscriptions: scalar(boolean, (c, v) => { c.wildcardSubscriptions = v }),
  subscription_identifiers: scalar(boolean, (c, v) => { c.subscriptionIdentifiers = v }),
  shared_subscriptions: scalar(boolean, (c, v) => { c.sharedSubscriptions = v }),
  shared_subscription_strategy: scalar(oneOf(SHARE_STRATEGIES), (c, v) => { c.sharedSubscriptionStrategy = v }),
  response_information: scalar(string, (c, v) => { c.responseInformation = v }),
  reason_strings: scalar(boolean, (c, v) => { c.reasonStrings = v }),
  durability: scalar(oneOf(['sync', 'os'] as const), (c, v) => { c.durability = v }),
  store: { read: readStore },
  serial: { read: readSerial },
  gateway_id: scalar(topicLevelName, (c, v) => { c.gatewayId = v }),
  upstream: { read: readUpstream },
  http: { read: readHttp },
}

const STORE_FIELDS: Readonly<Record<string, FieldSpec<StoreConfig>>> = {
  max_bytes: scalar(counter, (s, v) => { s.maxBytes = v }),
}

/** Every key the `store` mapping accepts. */
export const STORE_KEYS: readonly string[] = Object.keys(STORE_FIELDS)

function readStore(w: Walk, node: unknown, offset: number, field: string, target: OutpostConfig): void {
  if (!isMap(node)) {
    report(w, offset, field, `expected a mapping (for example max_bytes: 1000000000), got ${describeValue(plainValue(node))}`)
    return
  }
  const store: StoreConfig = { ...target.store }
  readMapping(w, node, field, STORE_FIELDS, store)
  target.store = store
}

/** Every top-level key the config file accepts. */
export const CONFIG_KEYS: readonly string[] = Object.keys(TOP_LEVEL_FIELDS)

/**
 * Walks a list whose items must be mappings (`listeners`, `serial`, `upstream`): a node that is no
 * list, and every item that is no mapping, is reported (`example` shows what was expected);
 * `each` reads a mapping item and says whether it was valid. Returns whether every item was, or
 * undefined when the node is not a list at all.
 */
export function forEachMapping(
  w: Walk,
  node: unknown,
  offset: number,
  field: string,
  example: { list: string; item: string },
  each: (item: YAMLMap, at: number, path: string, index: number) => boolean,
): boolean | undefined {
  if (!isSeq(node)) {
    report(w, offset, field, `expected ${example.list}, got ${describeValue(plainValue(node))}`)
    return undefined
  }
  let allValid = true
  node.items.forEach((raw, i) => {
    const path = `${field}[${i}]`
    const item = deref(w, raw)
    const at = offsetOf(raw, offset)
    if (!isMap(item)) {
      report(w, at, path, `expected ${example.item}, got ${describeValue(plainValue(item))}`)
      allValid = false
      return
    }
    if (!each(item, at, path, i)) allValid = false
  })
  return allValid
}

/**
 * Reads each key of `map` into `target` through `fields`, reporting unknown keys (with a
 * suggestion) and bad values without stopping, so that one run lists every problem.
 * Returns the keys that were present.
 */
export function readMapping<C>(
  w: Walk,
  map: unknown,
  prefix: string,
  fields: Readonly<Record<string, FieldSpec<C>>>,
  target: C,
): Set<string> {
  const seen = new Set<string>()
  if (!isMap(map)) return seen
  const known = Object.keys(fields)
  for (const pair of map.items) {
    const keyOffset = offsetOf(pair.key, offsetOf(map, 0))
    const key = isScalar(pair.key) ? pair.key.value : plainValue(pair.key)
    const name = typeof key === 'string' ? key : describeValue(key)
    const field = prefix === '' ? name : `${prefix}.${name}`
    const spec = typeof key === 'string' && Object.hasOwn(fields, key) ? fields[key] : undefined
    if (spec === undefined) {
      const hint = typeof key === 'string' ? suggest(key, known) : undefined
      report(w, keyOffset, field, `unknown key${hint === undefined ? '' : `; did you mean ${prefix === '' ? hint : `${prefix}.${hint}`}?`}`)
      continue
    }
    seen.add(name)
    const value = deref(w, pair.value)
    // An empty value (`port:`) has a zero-width position after the colon; the key is where to look.
    const empty = pair.value === null || (isScalar(value) && value.value === null)
    spec.read(w, value, empty ? keyOffset : offsetOf(pair.value, keyOffset), field, target)
  }
  return seen
}

/**
 * Builds a full config from a parsed YAML document, starting from `defaultConfig()` and taking
 * each key present in the file. Problems are collected, never thrown; the caller decides.
 */
export function validateDocument(
  doc: Document.Parsed,
  file: string,
  lineCounter: LineCounter,
): { config: OutpostConfig; problems: ConfigProblem[] } {
  const w: Walk = { file, doc, lineCounter, problems: [] }
  const config = defaultConfig()
  const root = doc.contents
  // An empty file, or one holding only comments or a bare `~`, means "all defaults".
  if (root === null || (isScalar(root) && root.value === null)) return { config, problems: w.problems }
  if (!isMap(root)) {
    report(w, offsetOf(root, 0), '', `expected a mapping of option names to values, got ${describeValue(plainValue(root))}`)
    return { config, problems: w.problems }
  }
  readMapping(w, root, '', TOP_LEVEL_FIELDS, config)
  // A missing key is reported after its siblings were read; file order is what an editor wants.
  const problems = w.problems.toSorted((a, b) => a.line - b.line || a.column - b.column)
  return { config, problems }
}
