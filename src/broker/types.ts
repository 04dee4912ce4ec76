import type { Duplex } from 'node:stream'

export type QoS = 0 | 1 | 2

/** MQTT protocol levels: 3 = 3.1 ("MQIsdp"), 4 = 3.1.1, 5 = 5.0. */
export type ProtocolVersion = 3 | 4 | 5

/**
 * An application message as it moves through the broker. Immutable once published:
 * the same object is handed to every matching session, so nothing may write to it.
 */
export interface Message {
  readonly topic: string
  readonly payload: Buffer
  readonly qos: QoS
  readonly retain: boolean
  /** Who published it: for logs, No Local [MQTT-3.8.3-3] and shared-subscription hashing. */
  readonly origin?: string
  /** MQTT 5 properties forwarded to v5 subscribers, dropped for v3 ones. */
  readonly properties?: MessageProperties
  /** Unix ms when its Message Expiry Interval runs out; it is not delivered after that [MQTT-3.3.2-5]. */
  readonly expiresAt?: number
  /** Unix ms when the broker took it in: the age of a queued message (an outbox's oldest). */
  readonly receivedAt?: number
}

/** The MQTT 5 PUBLISH properties a server passes on unchanged [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-18] [MQTT-3.3.2-20]. */
export interface MessageProperties {
  readonly payloadFormatIndicator?: number
  readonly contentType?: string
  readonly responseTopic?: string
  readonly correlationData?: Buffer
  /** In the order the publisher sent them [MQTT-3.3.2-18]. */
  readonly userProperties?: ReadonlyArray<readonly [string, string]>
}

/** What a listener tells the broker about a new stream. */
export interface StreamMeta {
  remoteAddress?: string
  remotePort?: number
  /** Listener name for logs, e.g. "mqtt://127.0.0.1:1883". */
  listener?: string
  /** The CN of a verified client certificate, on a listener with `use_identity_as_username`. */
  certificateIdentity?: string
  /**
   * The listener's `mount_point`: this client's topics are under it in the broker (`a/b` is
   * `MOUNT/a/b`), and it sees them without it. Undefined or empty = none.
   */
  mountPoint?: string
  /** The listener's password / ACL rules; undefined = the broker's `allow_anonymous` alone. */
  security?: ConnectionSecurity
}

export type AccessKind = 'read' | 'write' | 'subscribe'

export type SecurityVerdict = { verdict: 'ok'; username?: string } | { verdict: 'bad-credentials' | 'not-authorized' }

/** A listener's authentication and authorization, as the broker uses them (src/auth/ implements it). */
export interface ConnectionSecurity {
  authenticate(req: { username: string | undefined; password: Buffer | undefined; certificateIdentity: string | undefined }): Promise<SecurityVerdict>
  allows(access: AccessKind, clientId: string, username: string | undefined, topic: string): boolean
  readonly hasAcl: boolean
}

/** A stream the broker can speak MQTT over: a socket, a TLS socket, a WebSocket stream or an in-memory pipe. */
export type MqttStream = Duplex
