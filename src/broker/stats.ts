/** Counters behind `$SYS/broker/...`; plain numbers so the hot path only increments. */
export class BrokerStats {
  readonly startedAt = Date.now()
  messagesReceived = 0
  messagesSent = 0
  publishReceived = 0
  publishSent = 0
  publishDropped = 0
  /** Of the dropped: Message Expiry Interval ran out before delivery. */
  publishExpired = 0
  /** Of the dropped: larger than the receiving client's Maximum Packet Size. */
  publishTooLarge = 0
  bytesReceived = 0
  bytesSent = 0
  connectionsTotal = 0
  clientsMaximum = 0
  /** Connections refused by `max_connections`. */
  connectionsRefused = 0
  /** Connections closed because no CONNECT came within connect_timeout. */
  connectTimeouts = 0
  /** Connections closed because the client stayed behind for longer than drain_timeout. */
  drainTimeouts = 0
  /** Clients closed for going over a per-client limit (max_topic_levels, max_publish_rate...). */
  limitsExceeded = 0
  /** PUBLISHes the ACL refused (dropped; MQTT 5 clients were told 0x87). */
  publishDenied = 0
}
