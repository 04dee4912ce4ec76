/**
 * Mosquitto-compatible ACL files (`acl_file` in mosquitto.conf(5)), so an existing file works as
 * it is:
 *
 *     # before the first `user` line: anonymous clients only
 *     topic read $SYS/#
 *     user roger                                   # rules for the user "roger"
 *     topic foo/bar                                # no access word = readwrite
 *     topic deny foo/bar/secret
 *     pattern write $SYS/broker/connection/%c/state  # every client, %c = its client id
 *     pattern readwrite sensors/%u/#               # every client with a username, %u = it
 *
 * Decisions follow Mosquitto 2.0's default ACL check (src/security_default.c) with three
 * deliberate differences, each on the side of refusing:
 * - A matching `deny` always wins. Mosquitto checks the client's own `topic` rules first and
 *   returns at the first grant, so there a `pattern deny` cannot take back a `topic` grant,
 *   although mosquitto.conf(5) says deny topics "are handled before" grants.
 * - `%c` / `%u` fill exactly one level and must be written as a whole level. Mosquitto 2.0
 *   pastes the text in, so client id "p/q" with `clients/%c/#` gets `clients/p/q/#`. A client id
 *   or username that is empty, contains `/`, `+` or `#`, or starts with `$` gets nothing from any
 *   `pattern` grant (Mosquitto does this for `+` and `#` only).
 * - `subscribe` is decided here (see {@link AclFile.check}); Mosquitto 2.0 grants every SUBSCRIBE
 *   and only filters what it delivers.
 *
 * Without an acl_file everything is allowed: that is the caller's choice, not this module's. An
 * acl_file with no rules denies everything, as in Mosquitto. Not here either: Mosquitto 2.0 also
 * refuses every client PUBLISH to `$SYS/...` except `$SYS/broker/connection/+/state`, acl_file or
 * not (security.c, before any ACL is asked); that rule belongs to the broker.
 */
import { readFile } from 'node:fs/promises'
import { OutpostError } from '../errors.js'
import {
  CLIENT_ID_LEVEL,
  USERNAME_LEVEL,
  dollarSafe,
  filterProblem,
  isSafeSubstitute,
  isValidFilter,
  isValidTopicName,
  ruleCovers,
  substitute,
} from './acl-match.js'

/**
 * `read`: may a message on this topic be delivered to the client (live or retained).
 * `write`: may the client publish to this topic (its will included).
 * `subscribe`: may the client subscribe to this filter.
 */
export type AclAccess = 'read' | 'write' | 'subscribe'

/** The access word of a rule; no word means `readwrite`. */
export type AclRuleAccess = 'read' | 'write' | 'readwrite' | 'deny'

const ACCESS_WORDS: ReadonlySet<string> = new Set<AclRuleAccess>(['read', 'write', 'readwrite', 'deny'])

function isAccessWord(word: string): word is AclRuleAccess {
  return ACCESS_WORDS.has(word)
}

/** One `topic` or `pattern` line. */
export interface AclRule {
  readonly kind: 'topic' | 'pattern'
  readonly access: AclRuleAccess
  /** The topic as written, placeholders included. */
  readonly topic: string
  readonly file: string
  readonly line: number
}

interface CompiledRule extends AclRule {
  readonly levels: readonly string[]
}

/** What {@link AclFile.explain} found: the verdict and the rule that gave it (none: nothing matched). */
export interface AclDecision {
  readonly allowed: boolean
  readonly rule: AclRule | undefined
}

/** Does a rule with this access word grant `access`? A `read` grant also allows subscribing. */
function grants(rule: AclRuleAccess, access: AclAccess): boolean {
  if (rule === 'readwrite') return true
  if (rule === 'read') return access === 'read' || access === 'subscribe'
  return rule === 'write' && access === 'write'
}

function aclError(message: string, cause?: unknown): OutpostError {
  return new OutpostError('OUTPOST_E_ACL', message, cause === undefined ? undefined : { cause })
}

/** First word and the rest, split on spaces or tabs (Mosquitto takes spaces only; tabs are harmless). */
function splitWord(text: string): { word: string; rest: string } {
  const m = /^(\S+)(?:[ \t]+([^]*))?$/.exec(text)
  return { word: m?.[1] ?? text, rest: m?.[2] ?? '' }
}

/** Why a `pattern` topic's `%` use is wrong, or undefined. Only whole-level `%c` and `%u` are placeholders. */
function placeholderProblem(topic: string): string | undefined {
  for (const level of topic.split('/')) {
    if (!level.includes('%') || level === CLIENT_ID_LEVEL || level === USERNAME_LEVEL) continue
    const m = /%(.?)/.exec(level)
    const which = m?.[1] ?? ''
    if (which === 'c' || which === 'u') {
      // Mosquitto 2.0 pasted the text in ("dev_%c"); later versions substitute whole levels only
      // and take this literally. Refusing it beats a rule that silently changes meaning.
      return `%${which} must be a whole topic level (as in "sensors/%${which}/#"), not part of "${level}"`
    }
    return which === ''
      ? `'%' at the end of "${level}": a pattern substitutes only %c (client id) and %u (username)`
      : `unknown placeholder %${which} in "${level}": a pattern substitutes only %c (client id) and %u (username)`
  }
  return undefined
}

export class AclFile {
  /** Anything legal but probably not what was meant, as `FILE:LINE: ...`, for the caller to log. */
  readonly warnings: readonly string[]
  private readonly anonymous: readonly CompiledRule[]
  private readonly users: ReadonlyMap<string, readonly CompiledRule[]>
  private readonly patterns: readonly CompiledRule[]

  private constructor(anonymous: CompiledRule[], users: Map<string, CompiledRule[]>, patterns: CompiledRule[], warnings: string[]) {
    this.anonymous = anonymous
    this.users = users
    this.patterns = patterns
    this.warnings = warnings
  }

  /**
   * Parses the text of an acl_file. `#` starts a comment line; blank lines are skipped; every line
   * is trimmed. A topic may contain spaces (the rest of the line), but then the access word must
   * be given, as in Mosquitto. Repeated `user NAME` blocks add to the same user.
   * @throws OutpostError OUTPOST_E_ACL listing every bad line as `FILE:LINE: problem`.
   */
  static parse(text: string, file: string): AclFile {
    const anonymous: CompiledRule[] = []
    const users = new Map<string, CompiledRule[]>()
    const patterns: CompiledRule[] = []
    const problems: string[] = []
    const warnings: string[] = []
    let user: string | undefined

    const lines = text.replace(/^\uFEFF/, '').split('\n')
    for (let i = 0; i < lines.length; i++) {
      const line = (lines[i] as string).trim()
      const at = `${file}:${i + 1}`
      if (line === '' || line.startsWith('#')) continue
      const { word: keyword, rest } = splitWord(line)

      if (keyword === 'user') {
        // The rest of the line, spaces included, as Mosquitto takes it.
        if (rest === '') problems.push(`${at}: \`user\` with no name: expected \`user USERNAME\``)
        else user = rest
        continue
      }
      if (keyword !== 'topic' && keyword !== 'pattern') {
        const hint = ['topic', 'pattern', 'user'].includes(keyword.toLowerCase()) ? ' (keywords are lower-case)' : ''
        problems.push(`${at}: unknown keyword "${keyword}": expected topic, pattern or user${hint}`)
        continue
      }
      if (rest === '') {
        problems.push(`${at}: \`${keyword}\` with no topic: expected \`${keyword} [read|write|readwrite|deny] TOPIC\``)
        continue
      }

      const { word: first, rest: remainder } = splitWord(rest)
      let access: AclRuleAccess
      let topic: string
      if (remainder === '') {
        // One word is always the topic, even "read": Mosquitto's rule, kept so files mean the same.
        access = 'readwrite'
        topic = first
        if (isAccessWord(first)) {
          warnings.push(`${at}: \`${keyword} ${first}\` grants read and write on the topic named "${first}"; did you leave out the topic?`)
        }
      } else if (isAccessWord(first)) {
        access = first
        topic = remainder
      } else {
        problems.push(`${at}: unknown access "${first}": expected read, write, readwrite or deny (a topic with spaces needs the access word before it)`)
        continue
      }

      const bad = filterProblem(topic)
      if (bad !== undefined) {
        const comment = topic.includes(' #') ? '; comments must be on a line of their own' : ''
        problems.push(`${at}: invalid topic "${topic}": ${bad}${comment}`)
        continue
      }
      const levels = topic.split('/')
      const hasPlaceholder = levels.includes(CLIENT_ID_LEVEL) || levels.includes(USERNAME_LEVEL)
      if (keyword === 'pattern') {
        const placeholder = placeholderProblem(topic)
        if (placeholder !== undefined) {
          problems.push(`${at}: ${placeholder}`)
          continue
        }
        if (!hasPlaceholder) warnings.push(`${at}: pattern "${topic}" has no %c or %u, so it applies to every client alike`)
        patterns.push({ kind: 'pattern', access, topic, file, line: i + 1, levels })
        continue
      }
      if (hasPlaceholder) warnings.push(`${at}: %c and %u are substituted only in \`pattern\` lines; this \`topic\` line takes "${topic}" literally`)
      const rule: CompiledRule = { kind: 'topic', access, topic, file, line: i + 1, levels }
      if (user === undefined) {
        anonymous.push(rule)
      } else {
        const list = users.get(user)
        if (list === undefined) users.set(user, [rule])
        else list.push(rule)
      }
    }

    if (problems.length > 0) {
      const summary = problems.length === 1 ? '' : `${file}: ${problems.length} problems in acl_file\n`
      throw aclError(summary + problems.join('\n'))
    }
    return new AclFile(anonymous, users, patterns, warnings)
  }

  /** @throws OutpostError OUTPOST_E_ACL naming the path when it cannot be read, else as {@link AclFile.parse}. */
  static async load(path: string): Promise<AclFile> {
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err)
      throw aclError(`cannot read acl_file ${path}: ${reason}`, err)
    }
    return AclFile.parse(text, path)
  }

  /**
   * May this client publish to `topic` (write), receive a message on `topic` (read), or subscribe
   * to `filter` (subscribe)? `username` undefined = anonymous.
   *
   * - Anonymous clients get the rules before the first `user` line; a client with a username gets
   *   that user's block (none if the file has no block for it). Every client gets the `pattern`
   *   rules, except that a pattern naming `%u` never applies to an anonymous client.
   * - A matching `deny` refuses whatever else matches; otherwise any matching grant allows;
   *   otherwise refused.
   * - `read` and `write` take a topic name (a wildcard in it is refused). `subscribe` takes a
   *   filter without any `$share/GROUP/` prefix (strip it first): it is allowed when one `read`
   *   grant covers every topic the filter can match (a grant on `a/#` allows `a/#`, `a/+`, `a/b`;
   *   a grant on `a/b` allows neither `a/#` nor `a/+`), and refused when a `deny` covers all of
   *   it. A deny that covers only part (deny `a/secret`, subscribe `a/#`) leaves the subscription
   *   in place: the broker must still check `read` on every message it delivers.
   * - A topic starting with `$` is matched only by rules written with a leading `$`: `#` does not
   *   give `$SYS`, `$SYS/#` does.
   *
   * Pass the client id the broker assigned, not an empty one.
   */
  check(access: AclAccess, clientId: string, username: string | undefined, topicOrFilter: string): boolean {
    return this.explain(access, clientId, username, topicOrFilter).allowed
  }

  /** {@link AclFile.check}, with the rule that decided, for logging a refusal as `FILE:LINE`. */
  explain(access: AclAccess, clientId: string, username: string | undefined, topicOrFilter: string): AclDecision {
    const valid = access === 'subscribe' ? isValidFilter(topicOrFilter) : isValidTopicName(topicOrFilter)
    if (!valid) return { allowed: false, rule: undefined }
    const target = topicOrFilter.split('/')
    const own = username === undefined ? this.anonymous : (this.users.get(username) ?? [])
    const matches = (rule: CompiledRule, levels: readonly string[]): boolean => dollarSafe(rule.topic, topicOrFilter) && ruleCovers(levels, target)

    // Denies first, own rules and patterns alike. A pattern whose placeholder cannot be filled
    // safely is skipped here; such a client gets no pattern grant below, so nothing slips through.
    for (const rule of own) {
      if (rule.access === 'deny' && matches(rule, rule.levels)) return { allowed: false, rule: publicRule(rule) }
    }
    for (const rule of this.patterns) {
      if (rule.access !== 'deny') continue
      const levels = substitute(rule.levels, clientId, username)
      if (levels !== undefined && matches(rule, levels)) return { allowed: false, rule: publicRule(rule) }
    }

    for (const rule of own) {
      if (grants(rule.access, access) && matches(rule, rule.levels)) return { allowed: true, rule: publicRule(rule) }
    }
    // Mosquitto's "dangerous client id / username" rule, extended: see isSafeSubstitute.
    const safeClient = isSafeSubstitute(clientId) && (username === undefined || isSafeSubstitute(username))
    if (safeClient) {
      for (const rule of this.patterns) {
        if (!grants(rule.access, access)) continue
        const levels = substitute(rule.levels, clientId, username)
        if (levels !== undefined && matches(rule, levels)) return { allowed: true, rule: publicRule(rule) }
      }
    }
    return { allowed: false, rule: undefined }
  }
}

/** The rule without its compiled levels, so callers cannot depend on the representation. */
function publicRule(rule: CompiledRule): AclRule {
  return { kind: rule.kind, access: rule.access, topic: rule.topic, file: rule.file, line: rule.line }
}
