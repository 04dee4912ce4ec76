import type { Logger } from 'pino'
import type { OutpostConfig } from '../config/types.js'
import type { Store } from '../store/types.js'

/** The part of the configuration the broker core reads. */
export type BrokerConfig = Pick<
  OutpostConfig,
  | 'allowAnonymous'
  | 'maxConnections'
  | 'messageSizeLimit'
  | 'maxInflight'
  | 'maxQueuedMessages'
  | 'maxQueuedBytes'
  | 'queueQos0Messages'
  | 'maxKeepalive'
  | 'connectTimeout'
  | 'maxTopicLevels'
  | 'maxTopicLength'
  | 'maxSubscriptions'
  | 'maxPublishRate'
  | 'maxPublishBytesRate'
  | 'drainTimeout'
  | 'sysInterval'
  | 'retainAvailable'
  | 'persistentClientExpiration'
  | 'receiveMaximum'
  | 'topicAliasMaximum'
  | 'maxPacketSize'
  | 'maxQos'
  | 'wildcardSubscriptions'
  | 'subscriptionIdentifiers'
  | 'sharedSubscriptions'
  | 'sharedSubscriptionStrategy'
  | 'responseInformation'
  | 'reasonStrings'
  | 'queueFullPolicy'
  | 'maxAwaitingRel'
  | 'awaitRelTimeout'
  | 'store'
>

export interface AuthRequest {
  readonly clientId: string
  readonly username: string | undefined
  readonly password: Buffer | undefined
  readonly remote: string
}

export type AuthVerdict = 'ok' | 'bad-credentials' | 'not-authorized'

/**
 * One step of MQTT 5 enhanced authentication (section 4.12): the client's Authentication Data in,
 * and either success, a challenge to send back in an AUTH packet, or failure.
 */
export type EnhancedAuthStep =
  | { readonly result: 'success'; readonly data?: Buffer }
  | { readonly result: 'continue'; readonly data?: Buffer }
  | { readonly result: 'fail'; readonly reasonCode?: number }

/** A SASL-like method such as SCRAM; one `exchange` per connection, fed every step in turn. */
export interface EnhancedAuthMethod {
  start(req: AuthRequest & { readonly data: Buffer | undefined }): EnhancedAuthExchange
}

export interface EnhancedAuthExchange {
  step(data: Buffer | undefined): EnhancedAuthStep | Promise<EnhancedAuthStep>
}

/** Policy hooks; the password and ACL files of issue 7 plug in here. */
export interface BrokerHooks {
  authenticate?(req: AuthRequest): AuthVerdict | Promise<AuthVerdict>
  authorizeSubscribe?(clientId: string, username: string | undefined, filter: string): boolean | Promise<boolean>
  /** MQTT 5 Authentication Methods the broker supports, by name; every other gets CONNACK 0x8C. */
  enhancedAuth?: ReadonlyMap<string, EnhancedAuthMethod>
}

export interface BrokerOptions {
  config: BrokerConfig
  log: Logger
  store?: Store
  hooks?: BrokerHooks
  /** Reported in `$SYS/broker/version`. */
  version?: string
}
