/**
 * The connection to one cloud broker, kept up: MQTT.js for the protocol, our own reconnect loop
 * (decorrelated jitter) so that every attempt is a fresh client with fresh TLS files (a renewed
 * certificate is picked up) and nothing is buffered inside MQTT.js between attempts: what has
 * not been acknowledged lives in the outbox, not in a client's memory.
 */
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import { connect, type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt'
import type { Logger } from 'pino'
import type { UpstreamConfig } from '../config/upstream-types.js'
import { DecorrelatedJitter } from './backoff.js'
import { explain, type Failure } from './explain.js'

export type LinkState = 'connecting' | 'up' | 'down'

export interface LinkOptions {
  readonly config: UpstreamConfig
  readonly clientId: string
  /** Retained `offline` here when the link dies without a goodbye. */
  readonly willTopic: string | undefined
  readonly log: Logger
}

/** A link that held this long counts as good: the next failure starts the backoff again. */
const STABLE_MS = 10_000
/** While down, the reason is logged when it changes, and again at most this often. */
const REPEAT_LOG_MS = 60_000

export class UpstreamLink extends EventEmitter<{ up: [MqttClient, IConnackPacket]; down: [Failure] }> {
  readonly #o: LinkOptions
  readonly #backoff: DecorrelatedJitter
  #client: MqttClient | undefined
  #state: LinkState = 'down'
  #timer: NodeJS.Timeout | undefined
  #upSince = 0
  #closed = false
  #lastFailure: Failure | undefined
  #lastLoggedAt = 0
  #attempts = 0
  reconnects = 0

  constructor(options: LinkOptions) {
    super()
    this.#o = options
    this.#backoff = new DecorrelatedJitter(options.config.reconnectMin * 1000, options.config.reconnectMax * 1000)
  }

  get state(): LinkState {
    return this.#state
  }

  /** The connected client, only while the link is up. */
  get client(): MqttClient | undefined {
    return this.#state === 'up' ? this.#client : undefined
  }

  get lastFailure(): Failure | undefined {
    return this.#lastFailure
  }

  start(): void {
    this.#attempt()
  }

  /**
   * Ends the link. `goodbye` is published first (retained `offline`, since a clean DISCONNECT
   * suppresses the will) when the link is up.
   */
  async close(goodbye?: { topic: string; payload: string }): Promise<void> {
    this.#closed = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    const client = this.#client
    this.#client = undefined
    if (client === undefined) return
    if (this.#state === 'up' && goodbye !== undefined) {
      await Promise.race([client.publishAsync(goodbye.topic, goodbye.payload, { qos: 1, retain: true }).catch(() => undefined), delay(2000)])
    }
    this.#state = 'down'
    await Promise.race([client.endAsync(false).catch(() => undefined), delay(2000)])
    client.end(true)
  }

  #attempt(): void {
    if (this.#closed) return
    this.#state = 'connecting'
    this.#attempts++
    let options: IClientOptions
    try {
      options = this.#options()
    } catch (err) {
      // A TLS file that is missing or unreadable now (it was there at start) is retried like a network failure.
      this.#failed(undefined, { kind: 'other', code: undefined, reason: err instanceof Error ? err.message : String(err) })
      return
    }
    const client = connect(this.#o.config.url, options)
    this.#client = client
    let failure: Failure | undefined
    client.on('error', (err) => {
      failure = explain(err, new URL(this.#o.config.url).hostname)
    })
    client.on('connect', (connack) => {
      if (this.#client !== client) return
      this.#state = 'up'
      this.#upSince = Date.now()
      const downFor = this.#lastFailure === undefined ? undefined : this.#attempts
      this.#lastFailure = undefined
      this.#attempts = 0
      this.#o.log.info({ url: this.#o.config.url, clientId: this.#o.clientId, ...(downFor === undefined ? {} : { attempts: downFor }) }, 'upstream connected')
      this.emit('up', client, connack)
    })
    client.on('close', () => {
      if (this.#client !== client) return
      this.#failed(client, failure ?? { kind: 'network', code: undefined, reason: 'connection closed' })
    })
  }

  #failed(client: MqttClient | undefined, failure: Failure): void {
    const wasUp = this.#state === 'up'
    this.#client = undefined
    this.#state = 'down'
    client?.removeAllListeners()
    client?.on('error', () => undefined)
    client?.end(true)
    if (this.#closed) return
    if (wasUp) {
      this.reconnects++
      if (Date.now() - this.#upSince >= STABLE_MS) this.#backoff.reset()
    }
    const delayMs = this.#backoff.next()
    this.#log(failure, wasUp, delayMs)
    this.#lastFailure = failure
    if (wasUp) this.emit('down', failure)
    this.#timer = setTimeout(() => this.#attempt(), delayMs)
    this.#timer.unref()
  }

  #log(failure: Failure, wasUp: boolean, delayMs: number): void {
    const now = Date.now()
    const changed = this.#lastFailure?.reason !== failure.reason
    const fields = { url: this.#o.config.url, kind: failure.kind, reason: failure.reason, code: failure.code, retryInMs: delayMs, attempts: this.#attempts }
    if (wasUp || changed || now - this.#lastLoggedAt >= REPEAT_LOG_MS) {
      this.#lastLoggedAt = now
      this.#o.log.warn(fields, wasUp ? 'upstream link lost' : 'upstream connection failed')
    } else {
      this.#o.log.debug(fields, 'upstream connection failed again')
    }
  }

  #options(): IClientOptions {
    const c = this.#o.config
    const tls = c.tls
    const read = (file: string | undefined): Buffer | undefined => (file === undefined ? undefined : readFileSync(file))
    const willTopic = this.#o.willTopic
    return {
      clientId: this.#o.clientId,
      protocolVersion: c.protocolVersion,
      keepalive: c.keepalive,
      clean: c.cleanSession,
      // Our loop reconnects; MQTT.js must not queue or replay anything of its own.
      reconnectPeriod: 0,
      connectTimeout: 15_000,
      queueQoSZero: false,
      resubscribe: false,
      ...(c.username === undefined ? {} : { username: c.username }),
      ...(c.password === undefined ? {} : { password: c.password }),
      ...(c.protocolVersion === 5 && !c.cleanSession ? { properties: { sessionExpiryInterval: 0xffff_ffff } } : {}),
      ...(willTopic === undefined ? {} : { will: { topic: willTopic, payload: Buffer.from('offline'), qos: 1, retain: true } }),
      ...(tls.caFile === undefined ? {} : { ca: read(tls.caFile) }),
      ...(tls.certFile === undefined ? {} : { cert: read(tls.certFile), key: read(tls.keyFile) }),
      ...(tls.serverName === undefined ? {} : { servername: tls.serverName }),
      rejectUnauthorized: tls.verify,
    }
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}
