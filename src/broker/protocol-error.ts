/**
 * Thrown by packet handlers when a client breaks the protocol. The connection maps it to the
 * right reaction in one place (connection.ts): close for v3/v4, DISCONNECT with `reasonCode`
 * and close for v5, or a CONNACK refusal while connecting.
 */
export class ProtocolError extends Error {
  readonly reasonCode: number
  /** The spec rule that was broken, e.g. "MQTT-3.1.0-2", for the log line. */
  readonly rule: string | undefined

  constructor(message: string, reasonCode = 0x82, rule?: string) {
    super(message)
    this.name = 'ProtocolError'
    this.reasonCode = reasonCode
    this.rule = rule
  }
}

/**
 * A client went over one of the operator's per-client limits (`max_topic_levels`,
 * `max_publish_rate`...). Handled like a ProtocolError (told with the reason code, closed),
 * but logged as policy, naming the config key, not as a broken client.
 */
export class LimitExceeded extends ProtocolError {
  /** The config key of the limit, e.g. "max_publish_rate". */
  readonly limit: string

  constructor(limit: string, message: string, reasonCode: number) {
    super(message, reasonCode)
    this.name = 'LimitExceeded'
    this.limit = limit
  }
}

/** MQTT 5 reason codes used by the broker, named as in the specification's table 2-6. */
export const ReasonCode = {
  Success: 0x00,
  DisconnectWithWill: 0x04,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  ContinueAuthentication: 0x18,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  PayloadFormatInvalid: 0x99,
  ServerShuttingDown: 0x8b,
  TopicAliasInvalid: 0x94,
  AdministrativeAction: 0x98,
  RetainNotSupported: 0x9a,
  QoSNotSupported: 0x9b,
  SharedSubscriptionsNotSupported: 0x9e,
  SubscriptionIdentifiersNotSupported: 0xa1,
  WildcardSubscriptionsNotSupported: 0xa2,
} as const
