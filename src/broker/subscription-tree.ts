import { parseSharedFilter } from './topics.js'
import type { QoS } from './types.js'

/** Subscription options of MQTT 5 (section 3.8.3.1); a 3.1.1 subscription has the defaults. */
export interface SubscriptionOptions {
  readonly qos: QoS
  /** Not delivered to the client that published it [MQTT-3.8.3-3]. */
  readonly noLocal?: boolean
  /** Keep the retain flag as published on forwarded messages [MQTT-3.3.1-12]. */
  readonly retainAsPublished?: boolean
  /** 0: send retained messages on subscribe; 1: only if the subscription is new; 2: never [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]. */
  readonly retainHandling?: 0 | 1 | 2
  readonly subscriptionId?: number
}

/** One client's subscription to one filter, as given (a shared one keeps its `$share/g/` prefix). */
export interface Subscription extends SubscriptionOptions {
  readonly clientId: string
  readonly filter: string
}

/** What one client gets for one message: one copy however many of its filters match [MQTT-3.3.4-2]. */
export interface Matched {
  readonly clientId: string
  /** The highest QoS among its matching subscriptions. */
  qos: QoS
  /** The filter that gave that QoS, for logs and tests. */
  filter: string
  retainAsPublished: boolean
  /** Every matching subscription's identifier [MQTT-3.3.4-3]; undefined when none has one. */
  subscriptionIds: number[] | undefined
}

/** The members of one shared subscription `$share/{group}/{filter}` [MQTT-4.8.2]. */
export interface SharedGroup {
  /** `{group}/{filter}`: the same group name on another filter is another shared subscription. */
  readonly key: string
  readonly members: Map<string, Subscription>
  /** State for the selection strategies (shared.ts). */
  cursor: number
  last: string | undefined
}

export interface MatchResult {
  readonly direct: Map<string, Matched>
  readonly shared: SharedGroup[]
}

interface Node {
  readonly children: Map<string, Node>
  /** Subscribers whose filter ends at this node, by client id. */
  readonly subs: Map<string, Subscription>
  /** Shared subscriptions on the filter ending here, by group name. */
  readonly groups: Map<string, SharedGroup>
}

function newNode(): Node {
  return { children: new Map(), subs: new Map(), groups: new Map() }
}

/**
 * A topic trie: one level per node, so matching a topic costs its depth times the wildcard
 * branches, not the number of subscriptions. Shared subscriptions sit in the node of their
 * filter, one group per name.
 */
export class SubscriptionTree {
  readonly #root: Node = newNode()
  /** Every shared subscription by key, to hand a departed member's messages to another. */
  readonly #groups = new Map<string, SharedGroup>()
  #count = 0

  sharedGroup(key: string): SharedGroup | undefined {
    return this.#groups.get(key)
  }

  /** Number of (client, filter) subscriptions held. */
  get size(): number {
    return this.#count
  }

  /** Adds or replaces a subscription; returns true when it replaced one [MQTT-3.8.4-3]. */
  add(sub: Subscription): boolean {
    const shared = parseSharedFilter(sub.filter)
    let node = this.#root
    for (const level of (shared?.filter ?? sub.filter).split('/')) {
      let next = node.children.get(level)
      if (next === undefined) {
        next = newNode()
        node.children.set(level, next)
      }
      node = next
    }
    let members = node.subs
    if (shared !== undefined) {
      let group = node.groups.get(shared.group)
      if (group === undefined) {
        group = { key: `${shared.group}/${shared.filter}`, members: new Map(), cursor: 0, last: undefined }
        node.groups.set(shared.group, group)
        this.#groups.set(group.key, group)
      }
      members = group.members
    }
    const existed = members.has(sub.clientId)
    members.set(sub.clientId, sub)
    if (!existed) this.#count++
    return existed
  }

  /** Removes one subscription; returns whether it existed. Prunes empty branches. */
  remove(clientId: string, filter: string): boolean {
    const shared = parseSharedFilter(filter)
    const path: Array<[Node, string]> = []
    let node = this.#root
    for (const level of (shared?.filter ?? filter).split('/')) {
      const next = node.children.get(level)
      if (next === undefined) return false
      path.push([node, level])
      node = next
    }
    if (shared === undefined) {
      if (!node.subs.delete(clientId)) return false
    } else {
      const group = node.groups.get(shared.group)
      if (group === undefined || !group.members.delete(clientId)) return false
      if (group.members.size === 0) {
        node.groups.delete(shared.group)
        this.#groups.delete(group.key)
      }
    }
    this.#count--
    // Walk back up, dropping nodes that hold nothing, so churn does not leak memory.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, level] = path[i] as [Node, string]
      const child = parent.children.get(level) as Node
      if (child.subs.size > 0 || child.groups.size > 0 || child.children.size > 0) break
      parent.children.delete(level)
    }
    return true
  }

  /**
   * Every client with a filter matching `topic`, one entry per client at the highest QoS of its
   * matching filters [MQTT-3.3.4-2], leaving out `origin`'s No Local subscriptions
   * [MQTT-3.8.3-3]; and every shared subscription that matches.
   */
  match(topic: string, origin?: string): MatchResult {
    const out: MatchResult = { direct: new Map(), shared: [] }
    const levels = topic.split('/')
    // Wildcards in the first level never match topics starting with $ [MQTT-4.7.2-1].
    this.#walk(this.#root, levels, 0, out, topic.startsWith('$'), origin)
    return out
  }

  #walk(node: Node, levels: string[], i: number, out: MatchResult, dollar: boolean, origin: string | undefined): void {
    const wildOk = !(dollar && i === 0)
    if (wildOk) {
      // "a/#" also matches "a" itself: '#' stands for the parent and any number of children.
      const hash = node.children.get('#')
      if (hash !== undefined) collect(hash, out, origin)
    }
    if (i === levels.length) {
      collect(node, out, origin)
      return
    }
    const level = levels[i] as string
    const exact = node.children.get(level)
    if (exact !== undefined) this.#walk(exact, levels, i + 1, out, dollar, origin)
    if (wildOk) {
      const plus = node.children.get('+')
      if (plus !== undefined) this.#walk(plus, levels, i + 1, out, dollar, origin)
    }
  }
}

function collect(node: Node, out: MatchResult, origin: string | undefined): void {
  for (const sub of node.subs.values()) {
    if (sub.noLocal === true && sub.clientId === origin) continue
    const prev = out.direct.get(sub.clientId)
    const id = sub.subscriptionId
    if (prev === undefined) {
      out.direct.set(sub.clientId, {
        clientId: sub.clientId,
        qos: sub.qos,
        filter: sub.filter,
        retainAsPublished: sub.retainAsPublished === true,
        subscriptionIds: id === undefined ? undefined : [id],
      })
      continue
    }
    if (prev.qos < sub.qos) {
      prev.qos = sub.qos
      prev.filter = sub.filter
    }
    if (sub.retainAsPublished === true) prev.retainAsPublished = true
    if (id !== undefined) (prev.subscriptionIds ??= []).push(id)
  }
  for (const group of node.groups.values()) out.shared.push(group)
}
