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
  /** Who published it, for logs and (later) No Local; undefined for internal publishers. */
  readonly origin?: string
}

/** What a listener tells the broker about a new stream. */
export interface StreamMeta {
  remoteAddress?: string
  remotePort?: number
  /** Listener name for logs, e.g. "mqtt://127.0.0.1:1883". */
  listener?: string
}

/** A stream the broker can speak MQTT over: a socket, a TLS socket, a WebSocket stream or an in-memory pipe. */
export type MqttStream = Duplex
