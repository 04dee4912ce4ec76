/** What a reload changed in one bridge: which of its parts must follow the new config. */
import { isDeepStrictEqual } from 'node:util'
import type { UpstreamConfig } from '../config/upstream-types.js'
import { render } from './rules.js'

/** What a reload changed in one bridge. */
export type BridgeChange = 'rules' | 'link' | 'outbox'

/** What a bridge's templates (client id, prefix, notification topic) are rendered with. */
export interface BridgeVars {
  gatewayId: string
  name: string
}

export interface BridgeSettings {
  config: UpstreamConfig
  vars: BridgeVars
}

/** The parts that differ between two settings of one bridge, in the order a reload applies them. */
export function changesBetween(before: BridgeSettings, next: BridgeSettings): BridgeChange[] {
  const changes: BridgeChange[] = []
  if (!isDeepStrictEqual(ruleKey(before), ruleKey(next))) changes.push('rules')
  if (!isDeepStrictEqual(outboxKey(before.config), outboxKey(next.config))) changes.push('outbox')
  if (!isDeepStrictEqual(linkKey(before), linkKey(next))) changes.push('link')
  return changes
}

function ruleKey({ config: c, vars }: BridgeSettings): unknown[] {
  return [c.topics, render(c.prefix, vars)]
}

function outboxKey(c: UpstreamConfig): unknown[] {
  return [c.maxInflight, c.maxQueuedMessages, c.maxQueuedBytes, c.queueFullPolicy]
}

function linkKey({ config: c, vars }: BridgeSettings): unknown[] {
  const { topics: _t, prefix: _p, maxInflight: _i, maxQueuedMessages: _m, maxQueuedBytes: _b, queueFullPolicy: _q, ...rest } = c
  return [rest, render(c.clientId, vars), notificationTopic(c, vars)]
}

export function notificationTopic(c: UpstreamConfig, vars: BridgeVars): string | undefined {
  return c.notificationTopic === '' ? undefined : render(c.notificationTopic, vars)
}
