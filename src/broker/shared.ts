import type { SharedGroup, Subscription } from './subscription-tree.js'

/** How a shared subscription picks the member that gets a message (as EMQX names them). */
export const SHARE_STRATEGIES = ['round_robin', 'random', 'sticky', 'hash_clientid', 'hash_topic'] as const
export type ShareStrategy = (typeof SHARE_STRATEGIES)[number]

/**
 * How fit a member is to take a message now: 2 connected with room in its in-flight window,
 * 1 able to hold it (window full, or offline with a persistent session), 0 not at all.
 */
export type Fitness = 0 | 1 | 2

/**
 * Picks one member of a shared subscription for one message [MQTT-4.8.2-3]. The strategy gives
 * the starting point; from there the first member with room wins, else the first that can queue
 * it, so members offline or with a full window are skipped while another can take the message.
 */
export function pickMember(
  group: SharedGroup,
  strategy: ShareStrategy,
  topic: string,
  publisher: string | undefined,
  fitness: (sub: Subscription) => Fitness,
): Subscription | undefined {
  const members = [...group.members.values()]
  const n = members.length
  if (n === 0) return undefined
  if (strategy === 'sticky' && group.last !== undefined) {
    const last = group.members.get(group.last)
    if (last !== undefined && fitness(last) === 2) return last
  }
  let start: number
  switch (strategy) {
    case 'random':
      start = Math.floor(Math.random() * n)
      break
    case 'hash_clientid':
      start = fnv1a(publisher ?? '') % n
      break
    case 'hash_topic':
      start = fnv1a(topic) % n
      break
    default:
      start = group.cursor % n
  }
  let fallback = -1
  for (let k = 0; k < n; k++) {
    const i = (start + k) % n
    const f = fitness(members[i] as Subscription)
    if (f === 2) return chosen(group, members, i)
    if (f === 1 && fallback < 0) fallback = i
  }
  return fallback < 0 ? undefined : chosen(group, members, fallback)
}

function chosen(group: SharedGroup, members: Subscription[], i: number): Subscription {
  const sub = members[i] as Subscription
  group.cursor = i + 1
  group.last = sub.clientId
  return sub
}

/** FNV-1a, 32 bits: cheap and spreads short strings like client ids and topics well enough. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}
