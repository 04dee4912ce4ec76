import type { Broker } from './broker.js'
import type { Outlet, Session, SessionLimits } from './session.js'
import type { SubscriptionOptions } from './subscription-tree.js'
import type { Message, MessageProperties, QoS } from './types.js'

/**
 * Receives messages for an internal client. For QoS 1/2 the delivery counts as acknowledged when
 * the returned promise resolves, so a handler that forwards elsewhere (upstream bridge) keeps
 * the message in flight, and inside the in-flight window, until it is safely passed on.
 */
export type InternalMessageHandler = (message: Message, qos: QoS, retain: boolean) => void | Promise<void>

export interface InternalPublishOptions {
  qos?: QoS
  retain?: boolean
  /** MQTT 5 properties for v5 subscribers (a bridge passes on what the cloud sent). */
  properties?: MessageProperties
  /** Message Expiry Interval in seconds. */
  expiryInterval?: number
}

export interface InternalClientOptions {
  /** Keep the session (subscriptions, queue, unacknowledged messages) in the store across restarts. */
  persistent?: boolean
  /** Limits instead of the broker's: an outbox's caps, window and publisher holding. */
  limits?: Partial<SessionLimits>
  /** Start paused: messages queue (on disk when persistent) until `resume()`. */
  paused?: boolean
  /** While this says true, QoS 0 deliveries are dropped and counted, as for a backed-up socket. */
  congested?: () => boolean
}

/** A client living in the same process, with the same session machinery as a network client. */
export class InternalClient implements Outlet {
  readonly clientId: string
  /** Handlers acknowledge by resolving, so the window is the session's `max_inflight`. */
  readonly receiveMaximum = 65_535
  readonly #broker: Broker
  readonly #session: Session
  readonly #onMessage: InternalMessageHandler | undefined
  readonly #onClose: () => void
  readonly #congested: (() => boolean) | undefined
  #closed = false
  #paused: boolean

  constructor(broker: Broker, session: Session, onMessage: InternalMessageHandler | undefined, options: InternalClientOptions, onClose: () => void) {
    this.clientId = session.clientId
    this.#broker = broker
    this.#session = session
    this.#onMessage = onMessage
    this.#onClose = onClose
    this.#congested = options.congested
    this.#paused = options.paused === true
    if (!this.#paused) session.attach(this)
  }

  get congested(): boolean {
    return this.#congested?.() ?? false
  }

  /** Filters this client is subscribed to (a persistent one may have some from before a restart). */
  get subscriptions(): string[] {
    return [...this.#session.subscriptions.keys()]
  }

  /** Messages waiting in the queue and in flight, and the queue's payload bytes. */
  get backlog(): { messages: number; bytes: number } {
    return { messages: this.#session.queuedCount + this.#session.inflightCount, bytes: this.#session.queuedBytes }
  }

  /** When the oldest message waiting (in flight or queued) was received. */
  get oldestReceivedAt(): number | undefined {
    return this.#session.oldestReceivedAt
  }

  /** Messages this session dropped (full queue, expiry) since it was created. */
  get dropped(): number {
    return this.#session.droppedCount
  }

  /** Changes the in-flight window (an upstream's Receive Maximum may be lower than ours). */
  setMaxInflight(n: number): void {
    this.#session.setLimits({ ...this.#session.limits, maxInflight: Math.max(1, n) })
  }

  get paused(): boolean {
    return this.#paused
  }

  /**
   * Stops deliveries: what arrives queues (on disk when persistent), and messages in flight stay
   * unacknowledged, to be sent again by `resume()`, like a persistent client that went offline.
   */
  pause(): void {
    if (this.#paused || this.#closed) return
    this.#paused = true
    this.#session.detach(this)
  }

  /** Sends again what was in flight (in order, flagged DUP), then the queue, within the window. */
  resume(): void {
    if (!this.#paused || this.#closed) return
    this.#paused = false
    this.#session.attach(this)
  }

  /** Resolves once the message is routed and, at QoS 1/2, stored; never rejects (a failure is logged). */
  publish(topic: string, payload: Buffer | string, options: InternalPublishOptions = {}): Promise<void> {
    if (this.#closed) throw new Error(`internal client ${this.clientId} is closed`)
    const message: Message = {
      topic,
      payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
      qos: options.qos ?? 0,
      retain: options.retain ?? false,
      origin: this.clientId,
      properties: options.properties,
      expiresAt: options.expiryInterval === undefined ? undefined : Date.now() + options.expiryInterval * 1000,
      receivedAt: Date.now(),
    }
    this.#broker.stats.publishReceived++
    return this.#broker.publish(message).then(
      () => undefined,
      (err: unknown) => this.#broker.log.error({ err, clientId: this.clientId, topic }, 'internal client publish failed'),
    )
  }

  /**
   * Options as a v5 client would set them: `noLocal` keeps this client's own publications from
   * coming back to it [MQTT-3.8.3-3] (a bridge never sends back out what it brought in),
   * `retainAsPublished` keeps the retain flag on live messages, `retainHandling` 1 sends retained
   * messages only for a subscription the session did not have yet [MQTT-3.3.1-10].
   */
  async subscribe(filter: string, qos: QoS = 0, options: Omit<SubscriptionOptions, 'qos'> = {}): Promise<void> {
    const subOptions: SubscriptionOptions = { ...options, qos }
    const isNew = this.#broker.subscribe(this.#session, filter, subOptions)
    if (!this.#session.clean) await this.#broker.persistSession(this.#session)
    await this.#broker.sendRetained(this.#session, [{ filter, options: subOptions, isNew }])
  }

  async unsubscribe(filter: string): Promise<void> {
    this.#broker.unsubscribe(this.#session, filter)
    if (!this.#session.clean) await this.#broker.persistSession(this.#session)
  }

  /** Detaches; a persistent session stays (and keeps queueing), a clean one ends. */
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#session.detach(this)
    this.#onClose()
  }

  sendPublish(message: Message, qos: QoS, packetId: number | undefined, retain: boolean): boolean {
    this.#broker.stats.publishSent++
    const handler = this.#onMessage
    let result: void | Promise<void> = undefined
    try {
      result = handler?.(message, qos, retain)
    } catch (err) {
      this.#broker.log.error({ err, clientId: this.clientId }, 'internal client handler failed')
    }
    if (packetId === undefined) return true
    if (result === undefined) {
      this.#session.complete(packetId)
      return true
    }
    result.then(
      () => this.#session.complete(packetId),
      (err: unknown) => {
        // Left in flight: it is redelivered if the handler's owner re-attaches; logged so it is seen.
        this.#broker.log.error({ err, clientId: this.clientId, topic: message.topic }, 'internal client handler rejected a message')
      },
    )
    return true
  }

  sendPubrel(packetId: number): void {
    this.#session.complete(packetId)
  }
}
