import type { Store } from '../store/types.js'
import type { Session } from './session.js'
import type { SubscriptionOptions } from './subscription-tree.js'
import { parseSharedFilter, topicMatches } from './topics.js'

/** Retained messages for new subscriptions, including those routed a moment ago and still on their way to the store. */
export class RetainedSender {
  readonly #store: Pick<Store, 'matchRetained'>
  /** Retained messages on their way to the store, by topic: `send` waits for them. */
  readonly #writes = new Map<string, Promise<void>>()

  constructor(store: Pick<Store, 'matchRetained'>) {
    this.#store = store
  }

  /** A retained message for `topic` is being written (`written` settles when it has landed or failed). */
  landing(topic: string, written: Promise<void>): void {
    const settled = written.then(
      () => undefined,
      () => undefined,
    )
    this.#writes.set(topic, settled)
    void settled.then(() => {
      if (this.#writes.get(topic) === settled) this.#writes.delete(topic)
    })
  }

  /**
   * Sends the retained messages matching new subscriptions, flagged retain [MQTT-3.3.1-8], as
   * Retain Handling says [MQTT-3.3.1-9] [MQTT-3.3.1-10] [MQTT-3.3.1-11]; none for shared
   * subscriptions (section 4.8.2) and none that have expired [MQTT-3.3.2-5].
   */
  async send(session: Session, subs: ReadonlyArray<{ filter: string; options: SubscriptionOptions; isNew: boolean }>): Promise<void> {
    for (const { filter, options, isNew } of subs) {
      const rh = options.retainHandling ?? 0
      if (rh === 2 || (rh === 1 && !isNew) || parseSharedFilter(filter) !== undefined) continue
      // A retained message routed just before this subscription, whose write has not landed,
      // would otherwise reach neither the live path nor the store lookup.
      const landing = [...this.#writes].filter(([topic]) => topicMatches(filter, topic)).map(([, p]) => p)
      if (landing.length > 0) await Promise.all(landing)
      const id = options.subscriptionId
      const now = Date.now()
      for (const message of await this.#store.matchRetained(filter)) {
        if (message.expiresAt !== undefined && message.expiresAt <= now) continue
        if (session.canRead !== undefined && !session.canRead(message.topic)) continue
        session.deliver({ message, qos: options.qos < message.qos ? options.qos : message.qos, retain: true, subscriptionIds: id === undefined ? undefined : [id] })
      }
    }
  }
}
