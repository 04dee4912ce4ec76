/**
 * One upstream bridge: store-and-forward to a cloud broker.
 *
 * The outbox is a persistent internal session of the broker. Its subscriptions are the `out`
 * rules, so a local PUBLISH that matches is written to its queue in the same LevelDB batch as
 * everything else the PUBLISH changes, before the publisher gets its PUBACK. The session is
 * paused while the link is down (the queue grows on disk, paged, with the bridge's caps) and
 * resumed when it is up: messages in flight are sent again first, then the queue in order,
 * with `max_inflight` unacknowledged at a time. A message leaves the outbox when the cloud's
 * PUBACK / PUBCOMP arrives; that is when the handler's promise resolves.
 */
import { isDeepStrictEqual } from 'node:util'
import type { ISubscriptionMap, MqttClient } from 'mqtt'
import type { IPublishPacket } from 'mqtt-packet'
import type { Logger } from 'pino'
import type { Broker } from '../broker/broker.js'
import type { InternalClient } from '../broker/internal-client.js'
import type { Message, QoS } from '../broker/types.js'
import type { UpstreamConfig } from '../config/upstream-types.js'
import { BridgeSysReport } from './bridge-sys.js'
import { changesBetween, notificationTopic, type BridgeChange, type BridgeVars } from './changes.js'
import { EchoFilter } from './echo.js'
import type { Failure } from './explain.js'
import { UpstreamLink } from './link.js'
import { OUTBOX_PREFIX } from './outbox-id.js'
import { localProperties, remoteProperties } from './properties.js'
import { compileRules, filtersOf, outgoing, render, toLocal, toRemote, type CompiledRule } from './rules.js'

export interface BridgeStats {
  state: 'connected' | 'connecting' | 'disconnected'
  backlogMessages: number
  backlogBytes: number
  /** Seconds since the oldest message waiting was received; 0 when none. */
  oldestAgeSeconds: number
  reconnects: number
  dropped: number
  sent: number
  received: number
  echoes: number
}

export type { BridgeChange } from './changes.js'

export class UpstreamBridge {
  #config: UpstreamConfig
  readonly #broker: Broker
  readonly #log: Logger
  #gatewayId: string
  #rules: CompiledRule[]
  /**
   * Rules a reload removed: what they queued before still goes up under its old name (as at
   * start, "what they queued still goes"), while nothing new is queued for them.
   */
  #retired: CompiledRule[] = []
  /** Remote filters of removed `in` rules, unsubscribed at the next connection. */
  readonly #staleRemote = new Set<string>()
  #link: UpstreamLink
  /** Reconnects of links replaced by a reload. */
  #reconnectsBefore = 0
  #notification: string | undefined
  readonly #echo = new EchoFilter()
  #outbox: InternalClient | undefined
  #closed = false
  /** Bumped at every link change: an acknowledgement from an earlier connection is stale. */
  #generation = 0
  /** The cloud's Receive Maximum on the current connection (MQTT 5). */
  #receiveMaximum = Number.POSITIVE_INFINITY
  #sent = 0
  #received = 0
  #drainStart: { at: number; backlog: number } | undefined

  constructor(broker: Broker, config: UpstreamConfig, gatewayId: string, log: Logger) {
    this.#config = config
    this.#gatewayId = gatewayId
    this.#broker = broker
    this.#log = log.child({ bridge: config.name })
    this.#rules = compileRules(config.topics, render(config.prefix, this.#vars))
    this.#notification = notificationTopic(config, this.#vars)
    this.#link = this.#newLink()
  }

  /** Read anew each time: {@link reconfigure} replaces it. */
  get config(): UpstreamConfig {
    return this.#config
  }

  get #vars(): BridgeVars {
    return { gatewayId: this.#gatewayId, name: this.#config.name }
  }

  #newLink(): UpstreamLink {
    const config = this.#config
    const link = new UpstreamLink({ config, clientId: render(config.clientId, this.#vars), willTopic: this.#notification, log: this.#log })
    link.on('up', (client, connack) => void this.#up(client, connack.properties?.receiveMaximum))
    link.on('down', (failure) => this.#down(failure))
    return link
  }

  /** The outbox's client id: stable, so a restart finds its queue in the store. */
  get outboxId(): string {
    return `${OUTBOX_PREFIX}${this.config.name}`
  }

  async start(): Promise<void> {
    await this.#openOutbox()
    const backlog = this.#outbox?.backlog ?? { messages: 0, bytes: 0 }
    if (backlog.messages > 0) this.#log.info({ messages: backlog.messages, bytes: backlog.bytes }, 'outbox restored from the store')
    void this.#notifyLocal('offline')
    this.#link.start()
    this.#broker.addSysSource(() => this.#sys())
  }

  /**
   * Takes a changed config for this bridge (SIGHUP; same name) and says what it changed. Topic
   * rules apply at once, with the link up: the outbox follows the new `out` filters, the link the
   * new `in` filters. Connection settings (and the notification topic, which is the link's will)
   * restart the link; outbox caps reopen the outbox on its stored session. Either way nothing
   * queued is lost: it waits in the outbox's session in the store meanwhile.
   */
  async reconfigure(next: UpstreamConfig, gatewayId: string): Promise<BridgeChange[]> {
    const before = { config: this.#config, vars: this.#vars }
    this.#config = next
    this.#gatewayId = gatewayId
    const changes = changesBetween(before, { config: next, vars: this.#vars })
    if (changes.includes('rules')) await this.#replaceRules()
    if (changes.includes('outbox')) await this.#reopenOutbox()
    if (changes.includes('link')) await this.#restartLink()
    return changes
  }

  /** Opens (or reopens, after a reload changed its caps) the outbox on its stored session, paused. */
  async #openOutbox(): Promise<void> {
    const c = this.#config
    const outbox = this.#broker.createInternalClient(this.outboxId, (m, qos, retain) => this.#forward(m, qos, retain), {
      persistent: true,
      paused: true,
      limits: {
        maxInflight: c.maxInflight,
        maxQueuedMessages: c.maxQueuedMessages,
        maxQueuedBytes: c.maxQueuedBytes,
        queueFullPolicy: c.queueFullPolicy,
        // Store-and-forward means QoS 0 too: a reading published while the uplink is down still goes up later.
        queueQos0Messages: true,
        // The outbox is meant to grow on disk while the cloud is away; local clients must not feel it.
        holdPublishers: false,
      },
      // QoS 0 while MQTT.js's socket is backed up is dropped and counted, as for a slow network client.
      congested: () => (this.#link.client?.stream.writableNeedDrain ?? false),
    })
    this.#outbox = outbox
    await this.#subscribeOutbox()
  }

  /** The outbox's subscriptions become the `out` rules' filters, with the highest QoS a rule gives each. */
  async #subscribeOutbox(): Promise<void> {
    const outbox = this.#outbox
    if (outbox === undefined) return
    const wanted = filtersOf(this.#rules, 'local')
    // Rules removed from the config (since the last run, or by a reload) stop feeding the outbox; what they queued still goes.
    for (const filter of outbox.subscriptions) if (!wanted.has(filter)) await outbox.unsubscribe(filter)
    for (const [filter, qos] of wanted) {
      // noLocal: what this bridge brought in never goes back out through it. Retained messages go
      // up once, when a rule is new; after that their changes travel as live messages.
      await outbox.subscribe(filter, qos, { noLocal: true, retainAsPublished: true, retainHandling: 1 })
    }
  }

  /** New topic rules, live: the outbox's subscriptions, and the link's when it is up. */
  async #replaceRules(): Promise<void> {
    const old = this.#rules
    this.#rules = compileRules(this.#config.topics, render(this.#config.prefix, this.#vars))
    this.#retired = [...old, ...this.#retired].filter((r) => outgoing(r) && !this.#rules.some((n) => isDeepStrictEqual(n.rule, r.rule)))
    await this.#subscribeOutbox()
    const wanted = filtersOf(this.#rules, 'remote')
    for (const f of filtersOf(old, 'remote').keys()) if (!wanted.has(f)) this.#staleRemote.add(f)
    for (const f of wanted.keys()) this.#staleRemote.delete(f)
    const client = this.#link.client
    if (client !== undefined) await this.#subscribeRemote(client)
  }

  /**
   * Makes the link's subscriptions the `in` rules' filters: the stale ones are dropped (the cloud
   * keeps a persistent session's), the rest subscribed (again: a QoS may have changed).
   */
  async #subscribeRemote(client: MqttClient): Promise<boolean> {
    try {
      if (this.#staleRemote.size > 0) {
        await client.unsubscribeAsync([...this.#staleRemote])
        this.#staleRemote.clear()
      }
      const wanted = filtersOf(this.#rules, 'remote')
      if (wanted.size === 0) return true
      const v5 = this.#config.protocolVersion === 5
      // nl (MQTT 5): the cloud does not echo back what we publish on a `both` rule.
      const map: ISubscriptionMap = {}
      for (const [filter, qos] of wanted) map[filter] = { qos, ...(v5 ? { nl: true, rap: true } : {}) }
      const granted = await client.subscribeAsync(map)
      const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic)
      if (refused.length > 0) this.#log.warn({ filters: refused }, 'the upstream broker refused these subscriptions (its ACL?)')
      return true
    } catch (err) {
      this.#log.warn({ err }, 'upstream subscribe failed; the link is dropped and retried')
      client.end(true)
      return false
    }
  }

  /** New caps for the outbox: its client is closed and opened again on the same stored session. */
  async #reopenOutbox(): Promise<void> {
    // Acknowledgements of what is in flight now are stale: it is sent again after the reopen.
    this.#generation++
    this.#outbox?.pause()
    this.#outbox?.close()
    this.#outbox = undefined
    await this.#openOutbox()
    if (this.#link.client !== undefined) this.#resume(undefined)
  }

  /** New connection settings: the link is closed (a goodbye on the old notification topic) and started anew. */
  async #restartLink(): Promise<void> {
    const old = this.#link
    const oldNotification = this.#notification
    old.removeAllListeners()
    this.#generation++
    this.#outbox?.pause()
    this.#reconnectsBefore += old.reconnects
    await old.close(oldNotification === undefined ? undefined : { topic: oldNotification, payload: 'offline' })
    if (oldNotification !== undefined) await this.#notifyLocal('offline')
    this.#notification = notificationTopic(this.#config, this.#vars)
    this.#log.info({ url: this.#config.url }, 'upstream link restarted for its new settings; the outbox waits meanwhile')
    this.#link = this.#newLink()
    if (this.#notification !== oldNotification) void this.#notifyLocal('offline')
    this.#link.start()
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#generation++
    this.#outbox?.pause()
    await this.#link.close(this.#notification === undefined ? undefined : { topic: this.#notification, payload: 'offline' })
    // Stored before the broker and its store close behind us.
    await this.#notifyLocal('offline')
    this.#outbox?.close()
  }

  stats(): BridgeStats {
    const outbox = this.#outbox
    const backlog = outbox?.backlog ?? { messages: 0, bytes: 0 }
    const oldest = outbox?.oldestReceivedAt
    const state = this.#link.state
    return {
      state: state === 'up' ? 'connected' : state === 'connecting' ? 'connecting' : 'disconnected',
      backlogMessages: backlog.messages,
      backlogBytes: backlog.bytes,
      oldestAgeSeconds: oldest === undefined ? 0 : Math.max(0, Math.round((Date.now() - oldest) / 1000)),
      reconnects: this.#reconnectsBefore + this.#link.reconnects,
      dropped: outbox?.dropped ?? 0,
      sent: this.#sent,
      received: this.#received,
      echoes: this.#echo.suppressed,
    }
  }

  async #up(client: MqttClient, receiveMaximum: number | undefined): Promise<void> {
    const generation = ++this.#generation
    client.handleMessage = (packet, done) => this.#incoming(packet, done)
    if (!(await this.#subscribeRemote(client))) return
    if (generation !== this.#generation) return
    if (this.#notification !== undefined) client.publish(this.#notification, 'online', { qos: 1, retain: true })
    void this.#notifyLocal('online')
    const backlog = this.#outbox?.backlog.messages ?? 0
    this.#drainStart = backlog > 0 ? { at: Date.now(), backlog } : undefined
    if (backlog > 0) this.#log.info({ messages: backlog }, 'draining the outbox')
    this.#resume(receiveMaximum)
  }

  /** The link is up: the outbox sends, within the window the cloud takes. */
  #resume(receiveMaximum: number | undefined): void {
    if (receiveMaximum !== undefined) this.#receiveMaximum = receiveMaximum
    // An MQTT 5 broker may take fewer unacknowledged messages than max_inflight [MQTT-3.3.4-7].
    this.#outbox?.setMaxInflight(Math.min(this.#config.maxInflight, this.#receiveMaximum))
    this.#outbox?.resume()
  }

  #down(failure: Failure): void {
    this.#generation++
    this.#outbox?.pause()
    void this.#notifyLocal('offline')
    const backlog = this.#outbox?.backlog
    this.#log.info({ reason: failure.reason, backlogMessages: backlog?.messages, backlogBytes: backlog?.bytes }, 'outbox paused; messages wait on disk')
  }

  /**
   * The outbox's handler: publishes one message upstream. Resolving acknowledges it in the
   * outbox (its store entry goes); a promise that never settles leaves it in flight, to be sent
   * again when the outbox resumes on the next connection.
   */
  #forward(message: Message, qos: QoS, retain: boolean): Promise<void> | undefined {
    const client = this.#link.client
    const target = toRemote(this.#rules, message.topic) ?? toRemote(this.#retired, message.topic)
    if (target === undefined) return undefined // its rule was removed before a restart; nothing to send it as
    if (client === undefined) return new Promise<void>(() => undefined)
    const generation = this.#generation
    if (target.rule.rule.direction === 'both') this.#echo.sent(target.topic, message.payload)
    // Properties are MQTT 5's; a 3.1.1 link carries none.
    const options = { qos, retain, ...(this.config.protocolVersion === 5 ? remoteProperties(message) : {}) }
    if (qos === 0) {
      client.publish(target.topic, message.payload, options)
      this.#sent++
      return undefined
    }
    return new Promise<void>((resolve) => {
      client.publish(target.topic, message.payload, options, (err) => {
        // MQTT.js calls back with null or undefined on success.
        if ((err !== undefined && err !== null) || generation !== this.#generation) return
        this.#sent++
        resolve()
        // After the outbox has taken the acknowledgement (its then-handler runs first).
        queueMicrotask(() => this.#drained())
      })
    })
  }

  /** A message from the cloud on an `in` rule: published locally; acknowledged upstream once stored. */
  #incoming(packet: IPublishPacket, done: (err?: Error) => void): void {
    const target = toLocal(this.#rules, packet.topic)
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload
    if (target === undefined || this.#echo.isEcho(packet.topic, payload)) {
      done()
      return
    }
    this.#received++
    const props = packet.properties
    const properties = localProperties(props)
    const outbox = this.#outbox
    if (outbox === undefined) {
      done()
      return
    }
    void outbox
      .publish(target.topic, payload, { qos: packet.qos, retain: packet.retain, ...(properties === undefined ? {} : { properties }), ...(props?.messageExpiryInterval === undefined ? {} : { expiryInterval: props.messageExpiryInterval }) })
      .then(() => done())
  }

  #drained(): void {
    const start = this.#drainStart
    if (start === undefined || (this.#outbox?.backlog.messages ?? 0) > 0) return
    this.#drainStart = undefined
    const seconds = (Date.now() - start.at) / 1000
    this.#log.info({ messages: start.backlog, seconds: Number(seconds.toFixed(2)), perSecond: Math.round(start.backlog / Math.max(seconds, 0.001)) }, 'outbox drained')
  }

  #notifyLocal(state: 'online' | 'offline'): Promise<void> {
    if (this.#notification === undefined || this.#outbox === undefined) return Promise.resolve()
    return this.#outbox.publish(this.#notification, state, { qos: 1, retain: true })
  }

  readonly #sysReport = new BridgeSysReport()

  #sys(): Record<string, string | number> {
    // A bridge a reload removed stays in the broker's list of sources; it reports nothing.
    if (this.#closed) return {}
    return this.#sysReport.round(this.config.name, this.stats())
  }
}
