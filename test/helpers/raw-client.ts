import { connect as netConnect } from 'node:net'
import type { Duplex } from 'node:stream'
import { generate, parser as createParser, type IConnackPacket, type IConnectPacket, type IPublishPacket, type Packet } from 'mqtt-packet'

/**
 * A byte-level MQTT client for protocol tests: it sends exactly what the test says (including
 * malformed packets) and hands back each decoded packet the broker sends, in order.
 */
export class RawClient {
  readonly stream: Duplex
  readonly #packets: Packet[] = []
  readonly #waiters: Array<(p: Packet | undefined) => void> = []
  #ended = false
  readonly #endWaiters: Array<() => void> = []

  constructor(stream: Duplex, protocolVersion = 4) {
    this.stream = stream
    const parser = createParser({ protocolVersion })
    parser.on('packet', (p: Packet) => {
      const w = this.#waiters.shift()
      if (w !== undefined) w(p)
      else this.#packets.push(p)
    })
    stream.on('data', (chunk: Buffer) => parser.parse(chunk))
    const ended = (): void => {
      if (this.#ended) return
      this.#ended = true
      for (const w of this.#waiters.splice(0)) w(undefined)
      for (const w of this.#endWaiters.splice(0)) w()
    }
    stream.on('end', ended)
    stream.on('close', ended)
    stream.on('error', ended)
  }

  static tcp(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = netConnect({ port, host }, () => resolve(new RawClient(socket)))
      socket.once('error', reject)
    })
  }

  get ended(): boolean {
    return this.#ended
  }

  send(packet: Packet, protocolVersion = 4): void {
    this.stream.write(generate(packet, { protocolVersion }))
  }

  sendHex(hex: string): void {
    this.stream.write(Buffer.from(hex.replace(/\s+/g, ''), 'hex'))
  }

  /** The next packet from the broker; rejects after `ms` or if the connection ends first. */
  next(ms = 2000): Promise<Packet> {
    const queued = this.#packets.shift()
    if (queued !== undefined) return Promise.resolve(queued)
    if (this.#ended) return Promise.reject(new Error('connection closed before a packet arrived'))
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter)
        if (i >= 0) this.#waiters.splice(i, 1)
        reject(new Error(`no packet within ${ms} ms`))
      }, ms)
      const waiter = (p: Packet | undefined): void => {
        clearTimeout(timer)
        if (p === undefined) reject(new Error('connection closed before a packet arrived'))
        else resolve(p)
      }
      this.#waiters.push(waiter)
    })
  }

  /** Resolves true if no packet arrives within `ms` (the packet, if one came, stays queued). */
  async quiet(ms = 200): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms))
    return this.#packets.length === 0
  }

  /** Resolves when the broker closes the connection; rejects after `ms`. */
  closed(ms = 2000): Promise<void> {
    if (this.#ended) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connection still open after ${ms} ms`)), ms)
      this.#endWaiters.push(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  /** Sends CONNECT and returns the CONNACK. */
  async connect(opts: Partial<IConnectPacket> = {}): Promise<IConnackPacket> {
    this.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId: 'raw', ...opts }, opts.protocolVersion ?? 4)
    const p = await this.next()
    if (p.cmd !== 'connack') throw new Error(`expected CONNACK, got ${p.cmd}`)
    return p
  }

  /** SUBSCRIBE to one filter and return the granted code from the SUBACK. */
  async subscribe(filter: string, qos: 0 | 1 | 2, messageId = 1): Promise<number> {
    this.send({ cmd: 'subscribe', messageId, subscriptions: [{ topic: filter, qos }] })
    const ack = await this.next()
    if (ack.cmd !== 'suback') throw new Error(`expected SUBACK, got ${ack.cmd}`)
    return ack.granted[0] as number
  }

  /** A persistent session (clean session false) subscribed to `filter`, its client gone: what offline-queue tests start from. */
  async parkSubscription(clientId: string, filter: string, qos: 0 | 1 | 2): Promise<void> {
    await this.connect({ clientId, clean: false })
    await this.subscribe(filter, qos)
    await this.disconnect()
  }

  /**
   * Publishes one QoS 1 message per payload to `topic` back to back (packet ids 1.., wrapping),
   * then waits for as many acknowledgements.
   */
  async publishQos1(topic: string, payloads: readonly (string | Buffer)[]): Promise<void> {
    payloads.forEach((p, i) => {
      const payload = typeof p === 'string' ? Buffer.from(p) : p
      this.send({ cmd: 'publish', topic, payload, qos: 1, messageId: (i % 65535) + 1, retain: false, dup: false })
    })
    for (let i = 0; i < payloads.length; i++) await this.next()
  }

  /** The next packet, which must be a PUBLISH. */
  async nextPublish(ms?: number): Promise<IPublishPacket> {
    const p = await this.next(ms)
    if (p.cmd !== 'publish') throw new Error(`expected PUBLISH, got ${p.cmd}`)
    return p
  }

  /** DISCONNECT, then wait for the broker to close the connection. */
  async disconnect(): Promise<void> {
    this.sendHex('e000')
    await this.closed()
  }

  end(): void {
    this.stream.end()
    this.stream.destroy()
  }
}
