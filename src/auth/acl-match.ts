/**
 * Topic matching for ACL rules, kept apart from the file format in acl.ts. One level-by-level
 * function answers both questions an ACL is asked: does a rule cover a concrete topic (publish,
 * delivery), and does it cover every topic a subscription filter can match (subscribe). For a
 * topic without wildcards the two are the same question, so they share {@link ruleCovers}.
 */

/** The placeholder levels of a `pattern` rule; parse guarantees they only ever stand alone. */
export const CLIENT_ID_LEVEL = '%c'
export const USERNAME_LEVEL = '%u'

/** Mosquitto's limits for a topic or filter (mosquitto_sub_topic_check, TOPIC_HIERARCHY_LIMIT). */
const MAX_TOPIC_BYTES = 65_535
const MAX_SEPARATORS = 200

/**
 * Why `filter` is not a valid ACL topic, or undefined when it is. The same rule as for a
 * SUBSCRIBE filter [MQTT-4.7.1-2] [MQTT-4.7.1-3]; Mosquitto refuses to start on such a line.
 */
export function filterProblem(filter: string): string | undefined {
  if (filter.length === 0) return 'the topic is empty'
  if (Buffer.byteLength(filter, 'utf8') > MAX_TOPIC_BYTES) return `the topic is longer than ${MAX_TOPIC_BYTES} bytes`
  const levels = filter.split('/')
  if (levels.length - 1 > MAX_SEPARATORS) return `the topic has more than ${MAX_SEPARATORS} '/' (Mosquitto's depth limit)`
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) {
      return `'#' is allowed only as the whole last level (as in "a/#"), not in "${level}"`
    }
    if (level.includes('+') && level !== '+') return `'+' must be a whole level (as in "a/+/b"), not part of "${level}"`
  }
  return undefined
}

/** A subscription filter as the broker would accept it (same rule, no depth limit needed here). */
export function isValidFilter(filter: string): boolean {
  return filterProblem(filter) === undefined
}

/** A topic name as PUBLISH carries it: non-empty, no wildcards [MQTT-3.3.2-2]. */
export function isValidTopicName(topic: string): boolean {
  return topic.length > 0 && !topic.includes('+') && !topic.includes('#')
}

/**
 * Does the rule `acl` cover every topic that `target` matches? `target` is a concrete topic or a
 * subscription filter, both already split on '/'.
 *
 * - `#` in the rule covers the rest, including the parent level ("a/#" covers "a") [MQTT-4.7.1-2].
 * - `+` in the rule covers any one level of the target, or a `+` there, but not a `#`: "a/+" does
 *   not cover "a/#" because "a/b/c" would get through.
 * - A literal level in the rule covers only that same literal; a `+` or `#` in the target is wider.
 *
 * This is Mosquitto's mosquitto_sub_matches_acl (lib/util_topic.c) for filters and
 * mosquitto_topic_matches_sub for topics, written per level instead of per character.
 * The `$` rule is the caller's: it depends on how the rule was written, see {@link dollarSafe}.
 */
export function ruleCovers(acl: readonly string[], target: readonly string[]): boolean {
  for (let i = 0; i < acl.length; i++) {
    const a = acl[i] as string
    if (a === '#') return true
    const t = target[i]
    if (t === undefined || t === '#') return false
    if (a === '+') continue
    if (a !== t) return false
  }
  return acl.length === target.length
}

/**
 * [MQTT-4.7.2-1]: a topic starting with `$` is not matched by a filter starting with a wildcard.
 * Mosquitto goes further and skips every rule not written with a leading `$` (security_default.c:
 * "If subscription starts with $, acl_root->topic must also start with $"). Judged on the rule
 * as written, so a `%c` that a client named "$SYS" fills in cannot reach `$SYS`.
 */
export function dollarSafe(ruleText: string, target: string): boolean {
  return !target.startsWith('$') || ruleText.startsWith('$')
}

/**
 * Can this client id or username stand in for a `%c` / `%u` level? Not when empty (it would match
 * an empty level), not with `/` (it would span levels: client "sensors/kitchen" reaching
 * `sensors/kitchen/#` through `%c/#`), not with `+` or `#` (Mosquitto denies such clients every
 * pattern rule, "dangerous username/client id"), and not starting with `$` (it would turn a rule
 * into a `$` rule).
 */
export function isSafeSubstitute(value: string): boolean {
  return value.length > 0 && !/[/+#]/.test(value) && !value.startsWith('$')
}

/**
 * A pattern's levels with `%c` and `%u` filled in, or undefined when the rule cannot apply to
 * this client: it names `%u` and the client is anonymous, or a value is not
 * {@link isSafeSubstitute safe}. The value is compared as one literal level, never as a wildcard.
 */
export function substitute(levels: readonly string[], clientId: string, username: string | undefined): string[] | undefined {
  const out: string[] = []
  for (const level of levels) {
    if (level === CLIENT_ID_LEVEL) {
      if (!isSafeSubstitute(clientId)) return undefined
      out.push(clientId)
    } else if (level === USERNAME_LEVEL) {
      if (username === undefined || !isSafeSubstitute(username)) return undefined
      out.push(username)
    } else {
      out.push(level)
    }
  }
  return out
}
