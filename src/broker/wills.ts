import type { StoreOp, WillRecord } from '../store/types.js'
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
class PendingWills {
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

/** What the keeper needs from the broker: publishing (with store ops in the same write) and the store. */
export interface WillHost {
  publish(message: Message, ops: StoreOp[]): Promise<unknown>
  write(ops: StoreOp[]): Promise<void>
  /** Writes without waiting; failures are the host's to log. */
  record(op: StoreOp): void
  logError(err: unknown, clientId: string): void
}

/**
 * The life of every will: stored while its client is connected (so a crash still sends it),
 * started when the connection ends without DISCONNECT, held for its delay, cancelled when the
 * client resumes its session in time [MQTT-3.1.3-9], published when the delay or the session ends.
 */
export class WillKeeper {
  readonly #pending = new PendingWills()
  readonly #host: WillHost

  constructor(host: WillHost) {
    this.#host = host
  }

  /** Wills waiting for their delay. */
  get pendingCount(): number {
    return this.#pending.size
  }

  /** Puts back what the store held; publishAt 0 means its client was connected when the process stopped. */
  restore(records: readonly WillRecord[], now: number): void {
    for (const w of records) {
      // A connection cut by the process stopping ends as a network failure would [MQTT-3.1.2-8];
      // the delay runs from now.
      const will: Will = { message: w.message, delay: w.delay, expiryInterval: w.expiryInterval }
      this.#pending.schedule(w.clientId, will, w.publishAt === 0 ? now + w.delay * 1000 : w.publishAt)
    }
  }

  /** Stores a connected client's will (publishAt 0: armed, not started); CONNACK waits for it. */
  arm(clientId: string, will: Will): Promise<void> {
    return this.#host.write([{ op: 'put-will', record: { clientId, message: will.message, delay: will.delay, expiryInterval: will.expiryInterval, publishAt: 0 } }])
  }

  /** The connection ended without DISCONNECT: publish now, or after the delay if the session lives on. */
  start(clientId: string, will: Will, sessionEnds: boolean): void {
    if (will.delay === 0 || sessionEnds) {
      this.#publish(clientId, will)
      return
    }
    const publishAt = Date.now() + will.delay * 1000
    this.#pending.schedule(clientId, will, publishAt)
    this.#host.record({ op: 'put-will', record: { clientId, message: will.message, delay: will.delay, expiryInterval: will.expiryInterval, publishAt } })
  }

  /** The connection ended with a DISCONNECT that drops the will [MQTT-3.14.4-3]. */
  drop(clientId: string): void {
    this.#host.record({ op: 'del-will', clientId })
  }

  /** The client came back: to its session (the will is cancelled) or to a new one (the old session ended: it goes out). */
  resumed(clientId: string, sameSession: boolean): void {
    const pending = this.#pending.take(clientId)
    if (pending === undefined) return
    if (sameSession) this.#host.record({ op: 'del-will', clientId })
    else this.#publish(clientId, pending)
  }

  /** The session ended: a will still waiting goes out now. */
  sessionEnded(clientId: string): void {
    const will = this.#pending.take(clientId)
    if (will !== undefined) this.#publish(clientId, will)
  }

  /** Publishes the wills whose delay is over (the broker's sweep). */
  sweep(now: number): void {
    for (const [clientId, will] of this.#pending.takeDue(now)) this.#publish(clientId, will, now)
  }

  #publish(clientId: string, will: Will, now = Date.now()): void {
    this.#host.publish(willMessage(will, now), [{ op: 'del-will', clientId }]).catch((err: unknown) => this.#host.logError(err, clientId))
  }
}
