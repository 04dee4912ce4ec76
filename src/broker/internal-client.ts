import type { Broker } from './broker.js'
import type { Outlet, Session } from './session.js'
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

/** A client living in the same process, with the same session machinery as a network client. */
export class InternalClient implements Outlet {
  readonly clientId: string
  readonly congested = false
  /** Handlers acknowledge by resolving, so the window is the broker's own `max_inflight`. */
  readonly receiveMaximum = 65_535
  readonly #broker: Broker
  readonly #session: Session
  readonly #onMessage: InternalMessageHandler | undefined
  readonly #onClose: () => void
  #closed = false

  constructor(broker: Broker, session: Session, onMessage: InternalMessageHandler | undefined, onClose: () => void) {
    this.clientId = session.clientId
    this.#broker = broker
    this.#session = session
    this.#onMessage = onMessage
    this.#onClose = onClose
    session.attach(this)
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
    }
    this.#broker.stats.publishReceived++
    return this.#broker.publish(message).then(
      () => undefined,
      (err: unknown) => this.#broker.log.error({ err, clientId: this.clientId, topic }, 'internal client publish failed'),
    )
  }

  async subscribe(filter: string, qos: QoS = 0): Promise<void> {
    const options = { qos }
    const isNew = this.#broker.subscribe(this.#session, filter, options)
    await this.#broker.sendRetained(this.#session, [{ filter, options, isNew }])
  }

  unsubscribe(filter: string): void {
    this.#broker.unsubscribe(this.#session, filter)
  }

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
