/**
 * The validated `upstream:` section: one entry per cloud broker Outpost forwards to. Keys in the
 * YAML file are the snake_case spelling of these fields. Topic rules follow Mosquitto's bridge
 * `topic` lines, so an existing bridge config translates line by line.
 */
import type { QoS } from './serial-types.js'

export type Direction = 'out' | 'in' | 'both'

/**
 * Mosquitto: `topic PATTERN [out|in|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]`. The local topic is
 * `localPrefix + pattern`, the remote one `remotePrefix + pattern` (after the bridge's `prefix`).
 */
export interface TopicRule {
  pattern: string
  direction: Direction
  qos: QoS
  localPrefix: string
  remotePrefix: string
}

export interface UpstreamTls {
  /** PEM file of the CA(s) to trust; undefined = the system store. */
  caFile: string | undefined
  /** Client certificate and key (PEM) for brokers that want one (AWS IoT). */
  certFile: string | undefined
  keyFile: string | undefined
  /** SNI and the name checked in the certificate; default the URL's host. */
  serverName: string | undefined
  /** Check the server's certificate and name; turn off only for a test bench. */
  verify: boolean
}

export interface UpstreamConfig {
  /** In logs, `$SYS` and `{name}`; default the URL's host. Unique. */
  name: string
  /** `mqtt://`, `mqtts://`, `ws://` or `wss://`, with the port if not the scheme's default. */
  url: string
  /** Default `outpost-{gateway_id}`; placeholders `{gateway_id}`, `{name}`. */
  clientId: string
  username: string | undefined
  password: string | undefined
  /** 4 (3.1.1) or 5. */
  protocolVersion: 4 | 5
  /** Seconds; a link that does not answer within 1.5 x is dropped and reconnected. */
  keepalive: number
  /** false: a persistent session upstream, so the cloud queues what is bound for us while we are away. */
  cleanSession: boolean
  tls: UpstreamTls
  topics: TopicRule[]
  /** Mount point on the remote side for every rule, e.g. `gateways/{gateway_id}/`; placeholders `{gateway_id}`, `{name}`. */
  prefix: string
  /** Seconds: decorrelated-jitter reconnect delay between these. */
  reconnectMin: number
  reconnectMax: number
  /** Messages sent upstream and not yet acknowledged. */
  maxInflight: number
  /** Outbox cap in messages (0 = none). */
  maxQueuedMessages: number
  /** Outbox cap in payload bytes (0 = none). */
  maxQueuedBytes: number
  queueFullPolicy: 'drop_oldest' | 'reject_new'
  /** Retained `online` / `offline` on both sides (and the will upstream); '' = off. Placeholders `{gateway_id}`, `{name}`. */
  notificationTopic: string
}
