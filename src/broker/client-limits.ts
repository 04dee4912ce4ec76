import type { BrokerConfig } from './broker.js'
import { LimitExceeded, ReasonCode } from './protocol-error.js'

/**
 * The operator's per-client limits (issue 7): topic size, subscriptions, publish rate. Each is
 * off at 0. A client over one is told with an MQTT 5 reason code and closed (Connection.fail);
 * nothing it sent past the limit is taken on, and other clients are unaffected.
 */
type LimitConfig = Pick<BrokerConfig, 'maxTopicLevels' | 'maxTopicLength' | 'maxSubscriptions' | 'maxPublishRate' | 'maxPublishBytesRate'>

/**
 * Checks a topic name or filter as the client sent it (before a mount point is added, and without the
 * `$share/{group}/` of a shared filter: the limits are about what the client asks for).
 */
export function checkTopicLimits(config: LimitConfig, topic: string, kind: 'topic' | 'filter'): void {
  const code = kind === 'topic' ? ReasonCode.TopicNameInvalid : ReasonCode.TopicFilterInvalid
  const { maxTopicLength, maxTopicLevels } = config
  if (maxTopicLength > 0) {
    const bytes = Buffer.byteLength(topic, 'utf8')
    if (bytes > maxTopicLength) throw new LimitExceeded('max_topic_length', `${kind} of ${bytes} bytes is over max_topic_length ${maxTopicLength}`, code)
  }
  if (maxTopicLevels > 0) {
    let levels = 1
    for (let i = topic.indexOf('/'); i >= 0; i = topic.indexOf('/', i + 1)) levels++
    if (levels > maxTopicLevels) throw new LimitExceeded('max_topic_levels', `${kind} with ${levels} levels is over max_topic_levels ${maxTopicLevels}`, code)
  }
}

/** A SUBSCRIBE that would leave the client with more than `max_subscriptions` is refused whole. */
export function checkSubscriptionCount(config: LimitConfig, held: number, adding: number): void {
  const max = config.maxSubscriptions
  if (max > 0 && held + adding > max) {
    throw new LimitExceeded('max_subscriptions', `${held + adding} subscriptions would be over max_subscriptions ${max}`, ReasonCode.QuotaExceeded)
  }
}

/**
 * A token bucket holding one second's worth: a client may send `rate` at once, then `rate` per
 * second on average. Refilled from the clock on each take, so an idle client costs no timer.
 */
export class TokenBucket {
  readonly #rate: number
  #tokens: number
  #at: number

  constructor(rate: number, now = Date.now()) {
    this.#rate = rate
    this.#tokens = rate
    this.#at = now
  }

  /** Takes `n` tokens; false (and nothing taken) when fewer are left. */
  take(n: number, now = Date.now()): boolean {
    const elapsed = now - this.#at
    if (elapsed > 0) {
      this.#tokens = Math.min(this.#rate, this.#tokens + (elapsed * this.#rate) / 1000)
      this.#at = now
    }
    if (n > this.#tokens) return false
    this.#tokens -= n
    return true
  }
}

/** The publish-rate limits of one connection; undefined when neither is configured. */
export class PublishRate {
  readonly #messages: TokenBucket | undefined
  readonly #bytes: TokenBucket | undefined
  readonly #config: LimitConfig

  private constructor(config: LimitConfig) {
    this.#config = config
    this.#messages = config.maxPublishRate > 0 ? new TokenBucket(config.maxPublishRate) : undefined
    this.#bytes = config.maxPublishBytesRate > 0 ? new TokenBucket(config.maxPublishBytesRate) : undefined
  }

  static for(config: LimitConfig): PublishRate | undefined {
    return config.maxPublishRate > 0 || config.maxPublishBytesRate > 0 ? new PublishRate(config) : undefined
  }

  /** Counts one PUBLISH of `bytes` payload bytes; throws when it goes over a limit [MQTT-5 reason 0x96]. */
  take(bytes: number): void {
    if (this.#messages !== undefined && !this.#messages.take(1)) {
      throw new LimitExceeded('max_publish_rate', `more than max_publish_rate ${this.#config.maxPublishRate} PUBLISH packets per second`, ReasonCode.MessageRateTooHigh)
    }
    if (this.#bytes !== undefined && !this.#bytes.take(bytes)) {
      throw new LimitExceeded('max_publish_bytes_rate', `more than max_publish_bytes_rate ${this.#config.maxPublishBytesRate} payload bytes per second`, ReasonCode.MessageRateTooHigh)
    }
  }
}
