import type { Message } from './types.js'

/** A client's Will Message with the MQTT 5 timing that goes with it. */
export interface Will {
  /** Topic, payload, QoS, retain and properties; `expiresAt` is set when it is published. */
  readonly message: Message
  /** Will Delay Interval in seconds (0 for 3.1.1 clients) [MQTT-3.1.3-9]. */
  readonly delay: number
  /** Message Expiry Interval in seconds, counted from publication. */
  readonly expiryInterval: number | undefined
}

/** The message to publish for a will now, with its expiry counted from now. */
export function willMessage(will: Will, now = Date.now()): Message {
  return will.expiryInterval === undefined ? will.message : { ...will.message, expiresAt: now + will.expiryInterval * 1000 }
}

/**
 * Wills waiting for their delay to pass (section 3.1.2.5): cancelled when the client comes back
 * to its session in time [MQTT-3.1.3-9], published when the delay or the session ends, whichever
 * is first. The broker's sweep collects the due ones, so no timer per will.
 */
export class PendingWills {
  readonly #byClient = new Map<string, { will: Will; at: number }>()

  get size(): number {
    return this.#byClient.size
  }

  schedule(clientId: string, will: Will, at: number): void {
    this.#byClient.set(clientId, { will, at })
  }

  /** Removes and returns the will pending for `clientId`, if any. */
  take(clientId: string): Will | undefined {
    const entry = this.#byClient.get(clientId)
    this.#byClient.delete(clientId)
    return entry?.will
  }

  /** Removes and returns every will whose time has come, with its client id. */
  takeDue(now: number): Array<[string, Will]> {
    const due: Array<[string, Will]> = []
    for (const [clientId, entry] of this.#byClient) {
      if (entry.at <= now) {
        this.#byClient.delete(clientId)
        due.push([clientId, entry.will])
      }
    }
    return due
  }
}
