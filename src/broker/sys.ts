import { loadavg } from 'node:os'
import type { Broker } from './broker.js'

type LoadName =
  | 'messages/received'
  | 'messages/sent'
  | 'publish/received'
  | 'publish/sent'
  | 'publish/dropped'
  | 'bytes/received'
  | 'bytes/sent'
  | 'connections'

/** Exponentially weighted averages per minute, as Mosquitto's `$SYS/broker/load/...` topics. */
class LoadAverage {
  #last = 0
  readonly values = { '1min': 0, '5min': 0, '15min': 0 }

  update(total: number, intervalSec: number): void {
    const delta = total - this.#last
    this.#last = total
    const perMinute = (delta * 60) / intervalSec
    for (const [key, minutes] of [['1min', 1], ['5min', 5], ['15min', 15]] as const) {
      const k = Math.exp(-intervalSec / (minutes * 60))
      this.values[key] = this.values[key] * k + perMinute * (1 - k)
    }
  }
}

/**
 * Publishes `$SYS/broker/...` every `sys_interval` seconds with Mosquitto's topic names, as
 * retained QoS 0 messages, and only the values that changed since the last round.
 */
export class SysPublisher {
  readonly #broker: Broker
  readonly #last = new Map<string, string>()
  readonly #loads: Record<LoadName, LoadAverage> = {
    'messages/received': new LoadAverage(),
    'messages/sent': new LoadAverage(),
    'publish/received': new LoadAverage(),
    'publish/sent': new LoadAverage(),
    'publish/dropped': new LoadAverage(),
    'bytes/received': new LoadAverage(),
    'bytes/sent': new LoadAverage(),
    connections: new LoadAverage(),
  }
  #timer: NodeJS.Timeout | undefined
  #interval = 0
  #heapMax = 0

  constructor(broker: Broker) {
    this.#broker = broker
  }

  start(intervalSec: number): void {
    if (intervalSec <= 0) return
    this.#interval = intervalSec
    void this.publishNow()
    this.#timer = setInterval(() => void this.publishNow(), intervalSec * 1000)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** One round of `$SYS` updates; exported for tests. */
  async publishNow(): Promise<void> {
    const b = this.#broker
    const s = b.stats
    const rss = process.memoryUsage().rss
    if (rss > this.#heapMax) this.#heapMax = rss
    const retained = await b.store.retainedCount()
    const values: Record<string, string | number> = {
      version: `outpost version ${b.version}`,
      uptime: `${Math.floor((Date.now() - s.startedAt) / 1000)} seconds`,
      'clients/connected': b.connectedCount,
      'clients/active': b.connectedCount,
      'clients/disconnected': b.disconnectedCount,
      'clients/inactive': b.disconnectedCount,
      'clients/total': b.sessionCount,
      'clients/maximum': s.clientsMaximum,
      'messages/received': s.messagesReceived,
      'messages/sent': s.messagesSent,
      'publish/messages/received': s.publishReceived,
      'publish/messages/sent': s.publishSent,
      'publish/messages/dropped': s.publishDropped,
      // Outpost's own: the part of the dropped ones that MQTT 5 limits account for.
      'publish/messages/expired': s.publishExpired,
      'publish/messages/too-large': s.publishTooLarge,
      // Clients closed for staying behind longer than drain_timeout (slow readers).
      'clients/drain-timeouts': s.drainTimeouts,
      'wills/delayed': b.pendingWillCount,
      'bytes/received': s.bytesReceived,
      'bytes/sent': s.bytesSent,
      'subscriptions/count': b.subscriptionCount,
      'retained messages/count': retained,
      'heap/current': rss,
      'heap/maximum': this.#heapMax,
    }
    if (this.#interval > 0) {
      const totals: Record<LoadName, number> = {
        'messages/received': s.messagesReceived,
        'messages/sent': s.messagesSent,
        'publish/received': s.publishReceived,
        'publish/sent': s.publishSent,
        'publish/dropped': s.publishDropped,
        'bytes/received': s.bytesReceived,
        'bytes/sent': s.bytesSent,
        connections: s.connectionsTotal,
      }
      for (const [name, avg] of Object.entries(this.#loads) as Array<[LoadName, LoadAverage]>) {
        avg.update(totals[name], this.#interval)
        for (const [window, v] of Object.entries(avg.values)) values[`load/${name}/${window}`] = v.toFixed(2)
      }
    }
    const [one, five, fifteen] = loadavg()
    values['load/system/1min'] = (one ?? 0).toFixed(2)
    values['load/system/5min'] = (five ?? 0).toFixed(2)
    values['load/system/15min'] = (fifteen ?? 0).toFixed(2)

    // Per client, only those that lost something: `$SYS/broker/clients/<id>/dropped`.
    // `/`, `+` and `#` in a client id would split or break the topic, so they become `_`.
    for (const [clientId, dropped] of b.droppedByClient()) values[`clients/${clientId.replace(/[/+#]/g, '_')}/dropped`] = dropped

    // Other parts of the gateway (serial ports, later bridges) add their own figures.
    for (const source of b.sysSources) Object.assign(values, source())

    for (const [key, value] of Object.entries(values)) {
      const text = String(value)
      const topic = `$SYS/broker/${key}`
      if (this.#last.get(topic) === text) continue
      this.#last.set(topic, text)
      b.publish({ topic, payload: Buffer.from(text), qos: 0, retain: true })
    }
  }

}
