import type { Store } from '../store/types.js'
import type { BrokerConfig } from './broker-options.js'
import type { Session } from './session.js'
import type { Message } from './types.js'

/** `store.max_bytes`: the cap on the payload bytes of all queues in the store, with those not yet written. */
export class StoreCap {
  /** Read at each use: a reload (SIGHUP) updates this object in place. */
  readonly #config: Pick<BrokerConfig, 'store' | 'queueFullPolicy'>
  readonly #store: Pick<Store, 'queuedBytes'>
  /** Payload bytes of queue entries handed to the store and not yet written. */
  #unwrittenBytes = 0

  constructor(config: Pick<BrokerConfig, 'store' | 'queueFullPolicy'>, store: Pick<Store, 'queuedBytes'>) {
    this.#config = config
    this.#store = store
  }

  /**
   * Whether one more stored message would pass the cap for all queues. With drop_oldest the
   * receiving session gives up its oldest queued message (if it has one) to make room; with
   * reject_new (or nothing to give up) the message is refused for it.
   */
  over(session: Session, message: Message, alsoPending: number): boolean {
    const max = this.#config.store.maxBytes
    if (max === 0 || session.clean) return false
    if (this.#store.queuedBytes() + this.#unwrittenBytes + alsoPending + message.payload.length <= max) return false
    if (this.#config.queueFullPolicy === 'drop_oldest' && session.dropOldest()) return false
    return true
  }

  /** Runs `write`; its `bytes` count against the cap until the write lands. */
  writing(bytes: number, write: () => Promise<void>): Promise<void> {
    this.#unwrittenBytes += bytes
    const written = write()
    const landed = (): void => {
      this.#unwrittenBytes -= bytes
    }
    written.then(landed, landed)
    return written
  }
}
