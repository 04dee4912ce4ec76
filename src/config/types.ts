/**
 * The validated, fully-defaulted configuration that the rest of Outpost reads.
 * Keys in the YAML file are the snake_case spelling of these fields.
 */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

/** One network listener. Only plain TCP (`mqtt`) exists so far; TLS and WebSocket arrive with issue 7. */
export interface ListenerConfig {
  protocol: 'mqtt'
  port: number
  bind: string
}

export interface OutpostConfig {
  listeners: ListenerConfig[]
  dataDir: string
  logLevel: LogLevel
  allowAnonymous: boolean
  /** Refuse new connections past this many; 0 means no limit. */
  maxConnections: number
  /** Largest PUBLISH payload accepted, in bytes; 0 means the protocol limit (268,435,455). */
  messageSizeLimit: number
  /** Unacknowledged outgoing QoS 1/2 messages per client. */
  maxInflight: number
  /** Messages queued per client behind the in-flight window (and for offline persistent sessions); 0 = no limit. */
  maxQueuedMessages: number
  /** Bytes of payload queued per client; 0 = no limit. */
  maxQueuedBytes: number
  /** Also queue QoS 0 messages for offline persistent sessions (Mosquitto's queue_qos0_messages). */
  queueQos0Messages: boolean
  /** Largest keepalive accepted from a client, in seconds; 0 = no cap. */
  maxKeepalive: number
  /** Seconds between `$SYS` updates; 0 disables `$SYS`. */
  sysInterval: number
  retainAvailable: boolean
  /** Seconds after which an offline persistent session is dropped; 0 = never. */
  persistentClientExpiration: number
}
