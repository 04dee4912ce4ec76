import { topicMatches } from '../broker/topics.js'
import type { Message } from '../broker/types.js'

/**
 * The retained messages in `byTopic` whose topic matches `filter`. Both backends keep retained
 * messages in memory by topic; a filter without wildcards names one topic and skips the scan.
 */
export function matchRetainedIn(byTopic: ReadonlyMap<string, Message>, filter: string): Message[] {
  if (!filter.includes('+') && !filter.includes('#')) {
    const m = byTopic.get(filter)
    return m === undefined ? [] : [m]
  }
  const out: Message[] = []
  for (const m of byTopic.values()) if (topicMatches(filter, m.topic)) out.push(m)
  return out
}
