/**
 * The validated, fully-defaulted configuration that the rest of Outpost reads.
 * Keys in the YAML file are the snake_case spelling of these fields.
 */
import type { ShareStrategy } from '../broker/shared.js'
import type { SerialPortConfig } from './serial-types.js'
import type { UpstreamConfig } from './upstream-types.js'

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

export type ListenerProtocol = 'mqtt' | 'mqtts' | 'ws' | 'wss'

/** TLS settings of an `mqtts` or `wss` listener. Files are PEM; they are read again on SIGHUP. */
export interface ListenerTls {
  certFile: string
  keyFile: string
  /** CA(s) that client certificates must chain to; needed for `requireCertificate`. */
  caFile: string | undefined
  minVersion: 'TLSv1.2' | 'TLSv1.3'
  /** OpenSSL cipher list for TLS 1.2; undefined = Node's default. */
  ciphers: string | undefined
  /** Refuse clients without a certificate signed by `caFile`. */
  requireCertificate: boolean
  /** The client certificate's CN becomes the username (and no password is asked for). */
  useIdentityAsUsername: boolean
}

/** One network listener with its own security settings. */
export interface ListenerConfig {
  protocol: ListenerProtocol
  port: number
  bind: string
  /** WebSocket path for `ws` / `wss` (default `/mqtt`). */
  path: string
  /** Required for `mqtts` / `wss`, absent otherwise. */
  tls: ListenerTls | undefined
  /**
   * Accept clients without a username. Undefined: the top-level `allow_anonymous` on a loopback
   * bind, false on any other (a gateway on a shop-floor network must not be open by accident).
   */
  allowAnonymous: boolean | undefined
  /** Mosquitto-format password file for this listener; undefined = no username/password checks. */
  passwordFile: string | undefined
  /** Mosquitto-format ACL file for this listener; undefined = every client may do everything. */
  aclFile: string | undefined
  /** Connections this listener accepts at once; 0 = no limit (the global `max_connections` still applies). */
  maxConnections: number
  /** Topic prefix for this listener's clients: they see `a/b` where the broker has `MOUNT/a/b`. */
  mountPoint: string
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
  /** Incoming QoS 2 messages one client may have awaiting PUBREL; 0 = no limit (MQTT 5 clients also get `receive_maximum`). */
  maxAwaitingRel: number
  /** Seconds an incoming QoS 2 message may wait for its PUBREL before it is dropped; 0 = forever. */
  awaitRelTimeout: number
  /** When a client's queue is full: drop its oldest message for the new one, or refuse the new one. */
  queueFullPolicy: 'drop_oldest' | 'reject_new'
  /** Also queue QoS 0 messages for offline persistent sessions (Mosquitto's queue_qos0_messages). */
  queueQos0Messages: boolean
  /** Seconds a new connection has to send CONNECT before it is closed (slow-loris); 0 = forever. */
  connectTimeout: number
  /** Topic levels in a PUBLISH topic or SUBSCRIBE filter (`a/b/c` has 3); 0 = no limit. Over it: closed (v5 0x90 / 0x8F). */
  maxTopicLevels: number
  /** Bytes (UTF-8) in a PUBLISH topic or SUBSCRIBE filter; 0 = no limit. Over it: closed (v5 0x90 / 0x8F). */
  maxTopicLength: number
  /** Subscriptions one client may hold at once; 0 = no limit. Over it: closed (v5 0x97). */
  maxSubscriptions: number
  /** PUBLISH packets per second one client may send, averaged over a second; 0 = no limit. Over it: closed (v5 0x96). */
  maxPublishRate: number
  /** PUBLISH payload bytes per second one client may send, averaged over a second; 0 = no limit. Over it: closed (v5 0x96). */
  maxPublishBytesRate: number
  /**
   * Seconds a connected client may stay behind (its socket buffer full, or messages queued beyond
   * its in-flight window) without catching up once, before it is closed; 0 = never closed for
   * that: its queue caps and `queue_full_policy` bound it instead.
   */
  drainTimeout: number
  /** Largest keepalive accepted from a client, in seconds; 0 = no cap. */
  maxKeepalive: number
  /** Seconds between `$SYS` updates; 0 disables `$SYS`. */
  sysInterval: number
  retainAvailable: boolean
  /** Seconds after which an offline persistent session is dropped; 0 = never. Also caps an MQTT 5 Session Expiry Interval. */
  persistentClientExpiration: number
  /** MQTT 5: unacknowledged incoming QoS 1/2 messages a client may have (Receive Maximum in CONNACK). */
  receiveMaximum: number
  /** MQTT 5: topic aliases a client may set (Topic Alias Maximum in CONNACK); 0 = none. */
  topicAliasMaximum: number
  /** Largest packet accepted from a client, in bytes (Maximum Packet Size in CONNACK); 0 = the protocol limit. */
  maxPacketSize: number
  /** Highest QoS the broker takes and grants (Maximum QoS in CONNACK). */
  maxQos: 0 | 1 | 2
  wildcardSubscriptions: boolean
  subscriptionIdentifiers: boolean
  sharedSubscriptions: boolean
  /** How a shared subscription picks the member that gets each message. */
  sharedSubscriptionStrategy: ShareStrategy
  /** MQTT 5 Response Information for clients that ask: this prefix followed by the client id; empty = none. */
  responseInformation: string
  /** MQTT 5: explain refusals and disconnections with a Reason String. */
  reasonStrings: boolean
  /**
   * `sync`: acknowledge QoS 1/2 only once the store has fsynced (survives a power cut);
   * `os`: once the write reached the OS (survives a crash of the process, not of the machine).
   */
  durability: 'sync' | 'os'
  /** The durable store as a whole. */
  store: StoreConfig
  /** Serial ports bridged to MQTT; empty = none. */
  serial: SerialPortConfig[]
  /** This gateway's name towards the cloud: `{gateway_id}` in upstream client ids, prefixes and topics. Default the host name. */
  gatewayId: string
  /** Cloud brokers to forward to (store-and-forward); empty = none. */
  upstream: UpstreamConfig[]
  /** Health, metrics and dashboard over HTTP; undefined = off. */
  http: HttpConfig | undefined
}

/** The HTTP endpoint: `/healthz`, `/metrics` and the dashboard. */
export interface HttpConfig {
  port: number
  /** Default 127.0.0.1: metrics and health are for the box itself unless the operator opens them. */
  bind: string
  /** Mosquitto-format password file for the dashboard's login; undefined = no dashboard (health and metrics only). */
  passwordFile: string | undefined
}

export interface StoreConfig {
  /** Payload bytes queued on disk for all clients together; 0 = no limit. `queue_full_policy` applies. */
  maxBytes: number
}
