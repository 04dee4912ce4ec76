import { ProtocolError } from '../protocol-error.js'

/**
 * Topic aliases a client set on this connection (section 3.3.2.3.4). They live and die with the
 * network connection [MQTT-3.3.2-7], so they belong to the connection, not the session.
 */
export class InboundAliases {
  readonly #max: number
  readonly #topics = new Map<number, string>()

  constructor(max: number) {
    this.#max = max
  }

  /** The topic a PUBLISH is for; records a new mapping when it carries both a topic and an alias. */
  resolve(topic: string, alias: number | undefined): string {
    if (alias === undefined) {
      // A zero-length topic needs an alias (section 3.3.2.1); Mosquitto's vectors call it malformed.
      if (topic.length === 0) throw new ProtocolError('PUBLISH with an empty topic and no Topic Alias', 0x81)
      return topic
    }
    // 0 and anything above what we announced are invalid [MQTT-3.2.2-17] [MQTT-3.3.2-8] [MQTT-3.3.2-9].
    if (alias === 0 || alias > this.#max) throw new ProtocolError(`Topic Alias ${alias} outside 1..${this.#max}`, 0x94, 'MQTT-3.3.2-9')
    if (topic.length > 0) {
      this.#topics.set(alias, topic)
      return topic
    }
    const known = this.#topics.get(alias)
    if (known === undefined) throw new ProtocolError(`Topic Alias ${alias} was never set on this connection`, 0x82)
    return known
  }
}

/**
 * Aliases the server gives topics it sends to a client, up to the client's Topic Alias Maximum
 * [MQTT-3.3.2-10]. Hot topics keep theirs: when every alias is taken, the one used least recently
 * is moved to the new topic (a Map keeps insertion order, and a hit re-inserts).
 */
export class OutboundAliases {
  readonly #max: number
  readonly #byTopic = new Map<string, number>()

  constructor(max: number) {
    this.#max = max
  }

  /** The alias already set for `topic` on this connection, if any; does not change anything. */
  peek(topic: string): number | undefined {
    return this.#byTopic.get(topic)
  }

  /**
   * The alias to send with `topic`, and whether the topic name must go with it (the first time,
   * or after the alias was moved from another topic).
   */
  take(topic: string): { alias: number; sendTopic: boolean } {
    const known = this.#byTopic.get(topic)
    if (known !== undefined) {
      this.#byTopic.delete(topic)
      this.#byTopic.set(topic, known)
      return { alias: known, sendTopic: false }
    }
    let alias = this.#byTopic.size + 1
    if (alias > this.#max) {
      const [oldest, reused] = this.#byTopic.entries().next().value as [string, number]
      this.#byTopic.delete(oldest)
      alias = reused
    }
    this.#byTopic.set(topic, alias)
    return { alias, sendTopic: true }
  }
}
