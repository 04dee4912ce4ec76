import type { QoS } from './types.js'

/** One client's subscription to one filter. */
export interface Subscription {
  readonly clientId: string
  readonly filter: string
  readonly qos: QoS
}

interface Node {
  readonly children: Map<string, Node>
  /** Subscribers whose filter ends at this node, by client id. */
  readonly subs: Map<string, Subscription>
}

function newNode(): Node {
  return { children: new Map(), subs: new Map() }
}

/**
 * A topic trie: one level per node, so matching a topic costs its depth times the wildcard
 * branches, not the number of subscriptions.
 */
export class SubscriptionTree {
  readonly #root: Node = newNode()
  #count = 0

  /** Number of (client, filter) subscriptions held. */
  get size(): number {
    return this.#count
  }

  /** Adds or replaces a subscription; returns true when it replaced one [MQTT-3.8.4-3]. */
  add(sub: Subscription): boolean {
    let node = this.#root
    for (const level of sub.filter.split('/')) {
      let next = node.children.get(level)
      if (next === undefined) {
        next = newNode()
        node.children.set(level, next)
      }
      node = next
    }
    const existed = node.subs.has(sub.clientId)
    node.subs.set(sub.clientId, sub)
    if (!existed) this.#count++
    return existed
  }

  /** Removes one subscription; returns whether it existed. Prunes empty branches. */
  remove(clientId: string, filter: string): boolean {
    const path: Array<[Node, string]> = []
    let node = this.#root
    for (const level of filter.split('/')) {
      const next = node.children.get(level)
      if (next === undefined) return false
      path.push([node, level])
      node = next
    }
    if (!node.subs.delete(clientId)) return false
    this.#count--
    // Walk back up, dropping nodes that hold nothing, so churn does not leak memory.
    for (let i = path.length - 1; i >= 0; i--) {
      const [parent, level] = path[i] as [Node, string]
      const child = parent.children.get(level) as Node
      if (child.subs.size > 0 || child.children.size > 0) break
      parent.children.delete(level)
    }
    return true
  }

  /**
   * Every client with a filter matching `topic`, one entry per client at the highest QoS of its
   * matching filters, so overlapping subscriptions deliver one copy [MQTT-3.3.5-1].
   */
  match(topic: string): Map<string, Subscription> {
    const out = new Map<string, Subscription>()
    const levels = topic.split('/')
    // Wildcards in the first level never match topics starting with $ [MQTT-4.7.2-1].
    this.#walk(this.#root, levels, 0, out, topic.startsWith('$'))
    return out
  }

  #walk(node: Node, levels: string[], i: number, out: Map<string, Subscription>, dollar: boolean): void {
    const wildOk = !(dollar && i === 0)
    if (wildOk) {
      // "a/#" also matches "a" itself: '#' stands for the parent and any number of children.
      const hash = node.children.get('#')
      if (hash !== undefined) collect(hash, out)
    }
    if (i === levels.length) {
      collect(node, out)
      return
    }
    const level = levels[i] as string
    const exact = node.children.get(level)
    if (exact !== undefined) this.#walk(exact, levels, i + 1, out, dollar)
    if (wildOk) {
      const plus = node.children.get('+')
      if (plus !== undefined) this.#walk(plus, levels, i + 1, out, dollar)
    }
  }
}

function collect(node: Node, out: Map<string, Subscription>): void {
  for (const sub of node.subs.values()) {
    const prev = out.get(sub.clientId)
    if (prev === undefined || prev.qos < sub.qos) out.set(sub.clientId, sub)
  }
}
