/** Topic name and filter rules from section 4.7 of the MQTT specifications. */

/** Topic names in PUBLISH: non-empty [MQTT-4.7.3-1], no wildcards [MQTT-3.3.2-2]. */
export function isValidTopicName(topic: string): boolean {
  if (topic.length === 0) return false
  return !topic.includes('+') && !topic.includes('#')
}

/**
 * Topic filters in SUBSCRIBE / UNSUBSCRIBE: non-empty [MQTT-4.7.3-1]; `#` only as the whole last
 * level [MQTT-4.7.1-2]; `+` only as a whole level [MQTT-4.7.1-3].
 */
export function isValidTopicFilter(filter: string): boolean {
  if (filter.length === 0) return false
  const levels = filter.split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] as string
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return false
    if (level.includes('+') && level !== '+') return false
  }
  return true
}

/** Does `filter` match `topic`? Wildcards at the first level do not match `$` topics [MQTT-4.7.2-1]. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/')
  const t = topic.split('/')
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false
  for (let i = 0; i < f.length; i++) {
    const level = f[i]
    if (level === '#') return true
    if (i >= t.length) return false
    if (level !== '+' && level !== t[i]) return false
  }
  return f.length === t.length
}

/**
 * Splits a shared subscription filter: `$share/{group}/{filter}` (MQTT 5, section 4.8.2) or
 * `$queue/{filter}`, EMQX's form with one implicit group. Undefined for any other filter, and for
 * a `$share` filter that is not well-formed: a group name is non-empty without `/`, `+` or `#`
 * [MQTT-4.8.2-1] [MQTT-4.8.2-2], and a filter follows it.
 */
export function parseSharedFilter(filter: string): { group: string; filter: string } | undefined {
  if (filter.startsWith('$queue/')) {
    const rest = filter.slice(7)
    return rest.length > 0 ? { group: '$queue', filter: rest } : undefined
  }
  if (!filter.startsWith('$share/')) return undefined
  const slash = filter.indexOf('/', 7)
  if (slash < 0) return undefined
  const group = filter.slice(7, slash)
  const rest = filter.slice(slash + 1)
  if (group.length === 0 || group.includes('+') || group.includes('#') || rest.length === 0) return undefined
  return { group, filter: rest }
}

/** A filter that claims to be shared (`$share/...`, `$queue/...`) but is not well-formed. */
export function isMalformedSharedFilter(filter: string): boolean {
  return (filter.startsWith('$share/') || filter === '$share' || filter.startsWith('$queue/') || filter === '$queue') && parseSharedFilter(filter) === undefined
}
