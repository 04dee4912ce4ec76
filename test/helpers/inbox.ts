/** Every message an MQTT.js client receives, in order, with waits on what is still to come. */
import { EventEmitter } from 'node:events'
import type { MqttClient } from 'mqtt'
import type { IPublishPacket, QoS } from 'mqtt-packet'
import { waitOn } from './wait.js'

const WAIT_MS = 5_000

/** A message as a subscriber saw it. */
export interface Received {
  topic: string
  payload: string
  qos: QoS
  retain: boolean
  dup: boolean
  /** MQTT 5 properties, when the client speaks v5. */
  properties?: IPublishPacket['properties']
}

/** Every message an MQTT.js client receives, in order, attached before CONNECT is sent. */
export class Inbox {
  readonly messages: Received[] = []
  readonly #events = new EventEmitter()

  constructor(client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.messages.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain, dup: packet.dup, ...(packet.properties === undefined ? {} : { properties: packet.properties }) })
      this.#events.emit('message')
    })
  }

  /** The first message (already received or still to come) that matches. */
  waitFor(match: (m: Received) => boolean, what: string, timeoutMs = WAIT_MS): Promise<Received> {
    return waitOn(this.#events, 'message', () => this.messages.find(match), timeoutMs, () => `${what}; got ${JSON.stringify(this.messages)}`)
  }

  /**
   * Resolves when `check()` holds, re-checked once per message. For counts over many messages,
   * where `waitFor` (one predicate call per message held, per arrival) would be quadratic.
   */
  waitUntil(check: () => boolean, what: string | (() => string), timeoutMs = WAIT_MS): Promise<void> {
    return waitOn(this.#events, 'message', () => (check() ? true : undefined), timeoutMs, typeof what === 'string' ? what : what).then(() => undefined)
  }

  /** Messages on `topic`, excluding the sentinel payload. */
  on(topic: string, except = 'sentinel'): Received[] {
    return this.messages.filter((m) => m.topic === topic && m.payload !== except)
  }
}

