/**
 * Mosquitto's bridge topic rules: `topic PATTERN DIRECTION QOS LOCAL_PREFIX REMOTE_PREFIX` maps
 * local `LOCAL_PREFIX + PATTERN` to remote `REMOTE_PREFIX + PATTERN`, plus the bridge-wide mount
 * point (`prefix`) in front of every remote topic.
 */
import { topicMatches } from '../broker/topics.js'
import type { QoS } from '../broker/types.js'
import type { TopicRule } from '../config/upstream-types.js'

export interface CompiledRule {
  readonly rule: TopicRule
  /** What the bridge subscribes to on this side. */
  readonly localFilter: string
  readonly remoteFilter: string
  readonly localPrefix: string
  readonly remotePrefix: string
  readonly qos: QoS
}

export function compileRules(rules: readonly TopicRule[], mount: string): CompiledRule[] {
  return rules.map((rule) => {
    const remotePrefix = mount + rule.remotePrefix
    return {
      rule,
      localFilter: rule.localPrefix + rule.pattern,
      remoteFilter: remotePrefix + rule.pattern,
      localPrefix: rule.localPrefix,
      remotePrefix,
      qos: rule.qos,
    }
  })
}

export const outgoing = (r: CompiledRule): boolean => r.rule.direction !== 'in'
export const incoming = (r: CompiledRule): boolean => r.rule.direction !== 'out'

/**
 * What to subscribe to for `out` rules (local filters) or `in` rules (remote filters), each filter
 * with the highest QoS a rule gives it.
 */
export function filtersOf(rules: readonly CompiledRule[], side: 'local' | 'remote'): Map<string, QoS> {
  const filters = new Map<string, QoS>()
  for (const r of rules.filter(side === 'local' ? outgoing : incoming)) {
    const filter = side === 'local' ? r.localFilter : r.remoteFilter
    filters.set(filter, Math.max(filters.get(filter) ?? 0, r.qos) as QoS)
  }
  return filters
}

/** The remote topic for a local message, by the first `out`/`both` rule that matches it. */
export function toRemote(rules: readonly CompiledRule[], localTopic: string): { topic: string; rule: CompiledRule } | undefined {
  for (const r of rules) {
    if (!outgoing(r) || !topicMatches(r.localFilter, localTopic)) continue
    return { topic: r.remotePrefix + localTopic.slice(r.localPrefix.length), rule: r }
  }
  return undefined
}

/** The local topic for a remote message, by the first `in`/`both` rule that matches it. */
export function toLocal(rules: readonly CompiledRule[], remoteTopic: string): { topic: string; rule: CompiledRule } | undefined {
  for (const r of rules) {
    if (!incoming(r) || !topicMatches(r.remoteFilter, remoteTopic)) continue
    return { topic: r.localPrefix + remoteTopic.slice(r.remotePrefix.length), rule: r }
  }
  return undefined
}

/** Fills `{gateway_id}` and `{name}` in client ids, prefixes and notification topics. */
export function render(template: string, vars: { gatewayId: string; name: string }): string {
  return template.replace(/\{(gateway_id|name)\}/g, (_m, key: string) => (key === 'name' ? vars.name : vars.gatewayId))
}
