/**
 * Clients for the crash and restart tests (test/crash.test.ts): a raw MQTT connection that hands
 * every packet to the client logic as it arrives, and client logic that outlives its connection,
 * the way a real client's session state outlives a broker restart:
 *
 * - {@link Receiver}: a subscriber that does its side of exactly-once properly: a QoS 2 PUBLISH is
 *   delivered once and its packet id held until PUBREL, so a resend with the same id (DUP) is
 *   acknowledged again but not delivered again [MQTT-4.3.3-2]. Every QoS 1 arrival is delivered
 *   (duplicates are QoS 1's contract and are counted, not hidden).
 * - {@link Streamer}: a publisher that keeps a window of QoS 1 or QoS 2 messages in flight, each
 *   with a sequence number as its payload, records which got PUBACK / PUBREC / PUBCOMP, and after
 *   reconnecting to its session resends what is unfinished with the original packet ids: PUBLISH
 *   with DUP for those with no PUBACK/PUBREC yet, PUBREL for those with PUBREC [MQTT-4.4.0-1].
 *
 * Nothing here sleeps: waits resolve on packets and connection events.
 */
import { EventEmitter } from 'node:events'
import { connect as tcpConnect, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import { generate, parser as createParser, type IConnackPacket, type IConnectPacket, type IPublishPacket, type Packet, type QoS } from 'mqtt-packet'
import { waitOn } from './wait.js'

/** Where a broker listens; an OutpostProcess is one. */
export interface Address {
  readonly host: string
  readonly port: number
}

export { seededRandom } from './prng.js'

/** An integer in [lo, hi] from `rand`. */
export function between(rand: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rand() * (hi - lo + 1))
}

/**
 * One TCP connection speaking MQTT 3.1.1 or 5. Every packet after the CONNACK goes to `onPacket`
 * synchronously as it is parsed, so client logic sees packets that arrive in the same read as
 * the CONNACK (a resumed session's resends) and can act (or kill the broker) at an exact point.
 * Every packet is also kept in `received`, in order.
 */
export class Wire {
  readonly socket: Socket
  readonly protocolVersion: 4 | 5
  readonly received: Packet[] = []
  readonly closed: Promise<void>
  onPacket: (p: Packet, wire: Wire) => void = () => undefined
  readonly #events = new EventEmitter()
  #closed = false
  #connack: IConnackPacket | undefined

  private constructor(socket: Socket, protocolVersion: 4 | 5) {
    this.socket = socket
    this.protocolVersion = protocolVersion
    this.#events.setMaxListeners(0)
    const parser = createParser({ protocolVersion })
    parser.on('packet', (p: Packet) => {
      this.received.push(p)
      if (p.cmd === 'connack' && this.#connack === undefined) this.#connack = p
      else this.onPacket(p, this)
      this.#events.emit('change')
    })
    parser.on('error', (err: unknown) => socket.destroy(err instanceof Error ? err : new Error(String(err))))
    socket.on('data', (chunk: Buffer) => parser.parse(chunk))
    // A SIGKILLed broker resets the connection; that is the point of these tests, not an error.
    socket.on('error', () => undefined)
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.#closed = true
        this.#events.emit('change')
        resolve()
      })
    })
  }

  /** Opens a socket to `at`; destroyed after the test. */
  static async open(t: TestContext, at: Address, protocolVersion: 4 | 5 = 4): Promise<Wire> {
    const socket = tcpConnect(at.port, at.host)
    t.after(() => socket.destroy())
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    })
    return new Wire(socket, protocolVersion)
  }

  /**
   * Opens a connection, installs `onPacket` before CONNECT goes out, sends CONNECT and resolves
   * with the CONNACK once it says yes (return/reason code 0).
   */
  static async connect(t: TestContext, at: Address, connect: Partial<IConnectPacket> & { clientId: string }, onPacket?: (p: Packet, wire: Wire) => void): Promise<{ wire: Wire; connack: IConnackPacket }> {
    const protocolVersion = connect.protocolVersion === 5 ? 5 : 4
    const wire = await Wire.open(t, at, protocolVersion)
    if (onPacket !== undefined) wire.onPacket = onPacket
    wire.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion, clean: true, keepalive: 60, ...connect })
    const connack = await wire.waitFor(() => wire.#connack, `CONNACK for ${connect.clientId}`)
    const code = protocolVersion === 5 ? connack.reasonCode : connack.returnCode
    if (code !== 0) throw new Error(`${connect.clientId}: CONNACK code ${String(code)}`)
    return { wire, connack }
  }

  get isClosed(): boolean {
    return this.#closed
  }

  /** Writes `packet`; a no-op once the connection is gone (a delayed ack after the broker died). */
  send(packet: Packet): void {
    if (this.#closed || this.socket.destroyed) return
    this.socket.write(generate(packet, { protocolVersion: this.protocolVersion }))
  }

  /** Resolves with `check()` once it is defined, re-checked on every packet and on close. */
  waitFor<T>(check: () => T | undefined, what: string | (() => string), timeoutMs = 5_000): Promise<T> {
    return waitOn(this.#events, 'change', () => {
      const value = check()
      if (value === undefined && this.#closed) throw new Error(`connection closed while waiting for ${typeof what === 'string' ? what : what()}`)
      return value
    }, timeoutMs, what)
  }

  /** The first received packet (already in or still to come) that matches. */
  packet<P extends Packet>(match: (p: Packet) => p is P, what: string, timeoutMs = 5_000): Promise<P> {
    return this.waitFor(() => this.received.find(match), what, timeoutMs)
  }

  /** DISCONNECT, then wait for the broker to close the connection. */
  async disconnect(): Promise<void> {
    this.send({ cmd: 'disconnect' })
    await this.closed
  }

  /** Drops the connection without DISCONNECT: a network failure, as far as the broker can tell. */
  drop(): Promise<void> {
    this.socket.destroy()
    return this.closed
  }
}

/** Type guard for one packet kind, optionally with a packet id. */
export function isCmd<C extends Packet['cmd']>(cmd: C, messageId?: number): (p: Packet) => p is Extract<Packet, { cmd: C }> {
  return (p: Packet): p is Extract<Packet, { cmd: C }> => p.cmd === cmd && (messageId === undefined || (p as { messageId?: number }).messageId === messageId)
}

/** One message as the subscriber's application got it. */
export interface Delivery {
  readonly topic: string
  readonly payload: string
  readonly qos: QoS
  readonly retain: boolean
  readonly dup: boolean
  readonly packetId: number | undefined
  /** Which connection of the receiver it came on (0 = the first). */
  readonly connection: number
}

/**
 * A subscriber's session state and application, across connections: what was delivered, and the
 * QoS 2 packet ids received and not yet released (kept when the connection drops, as the client
 * side of the session must be).
 */
export class Receiver {
  readonly delivered: Delivery[] = []
  /** QoS 2 packet ids that got PUBREC and wait for PUBREL [MQTT-4.3.3-2]. */
  readonly awaitingRel = new Set<number>()
  /** QoS 2 PUBLISHes that repeated a held packet id: acknowledged, not delivered again. */
  suppressed = 0
  /** PUBRELs for ids not held (the broker resending one whose PUBCOMP was lost): answered with PUBCOMP. */
  unknownPubrel = 0
  wire: Wire | undefined
  #connections = 0
  readonly #events = new EventEmitter()
  /** Delay before each ack, in ms; 0 acks at once. A slow subscriber keeps messages in flight. */
  ackDelayMs: number
  /** When false, nothing is acknowledged (messages stay in flight). */
  autoAck = true

  constructor(ackDelayMs = 0) {
    this.ackDelayMs = ackDelayMs
    this.#events.setMaxListeners(0)
  }

  /** Connects with `connect`; this receiver handles every packet from the CONNACK on. */
  async connect(t: TestContext, at: Address, connect: Partial<IConnectPacket> & { clientId: string }): Promise<IConnackPacket> {
    const n = this.#connections++
    // Packets that arrive in the same read as the CONNACK are handled before `connect` resolves,
    // hence the Wire passed to the handler rather than this.wire.
    const { wire, connack } = await Wire.connect(t, at, connect, (p, w) => this.#onPacket(w, n, p))
    this.wire = wire
    return connack
  }

  #onPacket(w: Wire, connection: number, p: Packet): void {
    this.#handle(w, connection, p)
    this.#events.emit('change')
  }

  #handle(w: Wire, connection: number, p: Packet): void {
    if (p.cmd === 'publish') {
      const id = p.messageId
      if (p.qos === 2 && id !== undefined) {
        if (this.awaitingRel.has(id)) this.suppressed++
        else {
          this.awaitingRel.add(id)
          this.#deliver(p, connection)
        }
        this.#ack(w, { cmd: 'pubrec', messageId: id })
        return
      }
      this.#deliver(p, connection)
      if (p.qos === 1 && id !== undefined) this.#ack(w, { cmd: 'puback', messageId: id })
      return
    }
    if (p.cmd === 'pubrel') {
      const id = p.messageId ?? 0
      if (!this.autoAck) return
      if (!this.awaitingRel.delete(id)) this.unknownPubrel++
      this.#ack(w, { cmd: 'pubcomp', messageId: id })
    }
  }

  #deliver(p: IPublishPacket, connection: number): void {
    const payload = typeof p.payload === 'string' ? p.payload : p.payload.toString()
    this.delivered.push({ topic: p.topic, payload, qos: p.qos, retain: p.retain, dup: p.dup, packetId: p.messageId, connection })
  }

  #ack(wire: Wire, packet: Packet): void {
    if (!this.autoAck) return
    if (this.ackDelayMs === 0) wire.send(packet)
    else setTimeout(() => wire.send(packet), this.ackDelayMs).unref()
  }

  /** Payloads delivered, in order. */
  payloads(topicPrefix = ''): string[] {
    return this.delivered.filter((d) => d.topic.startsWith(topicPrefix)).map((d) => d.payload)
  }

  /** Resolves once a delivery matches. */
  waitFor(match: (d: Delivery) => boolean, what: string, timeoutMs = 5_000): Promise<Delivery> {
    return waitOn(this.#events, 'change', () => this.delivered.find(match), timeoutMs, () => `${what}; delivered ${JSON.stringify(this.delivered.map((d) => [d.topic, d.payload]))}`)
  }

  /** Resolves true once `check()` holds (re-checked on every packet), or false after `timeoutMs`. */
  async until(check: () => boolean, timeoutMs: number): Promise<boolean> {
    try {
      await waitOn(this.#events, 'change', () => (check() ? true : undefined), timeoutMs, 'condition')
      return true
    } catch {
      return false
    }
  }
}

interface InFlight {
  readonly seq: number
  state: 'publish' | 'pubrel'
}

/** What a {@link Streamer} counted. */
export interface StreamerStats {
  /** Messages sent at least once (sequence numbers 0 .. sent-1). */
  sent: number
  /** Sequence numbers that got PUBACK (QoS 1) or PUBREC (QoS 2): the broker took responsibility. */
  acked: Set<number>
  /** QoS 2: sequence numbers that got PUBCOMP. */
  completed: Set<number>
  /** Resends after reconnecting: PUBLISH with DUP, and PUBREL. */
  resentPublish: number
  resentPubrel: number
}

/**
 * A publisher that keeps `window` QoS 1 or 2 messages in flight on `topic`, payload = sequence
 * number, until `stop()` or the connection ends. `onAck(n)` runs synchronously on the n-th
 * PUBACK (QoS 1) or first PUBREC (QoS 2), so a test can kill the broker at that exact point.
 */
export class Streamer {
  readonly qos: 1 | 2
  readonly topic: string
  readonly window: number
  readonly stats: StreamerStats = { sent: 0, acked: new Set(), completed: new Set(), resentPublish: 0, resentPubrel: 0 }
  onAck: (count: number) => void = () => undefined
  wire: Wire | undefined
  /** Packet id -> message, in the order they were first sent. */
  readonly #inflight = new Map<number, InFlight>()
  readonly #events = new EventEmitter()
  #nextId = 1
  #streaming = false
  /** Stop after this many messages (Infinity: until stopped). */
  #limit = Infinity

  constructor(qos: 1 | 2, topic: string, window: number) {
    this.qos = qos
    this.topic = topic
    this.window = window
    this.#events.setMaxListeners(0)
  }

  get inflightCount(): number {
    return this.#inflight.size
  }

  /** Connects; with `resume`, first resends what the previous connection left unfinished. */
  async connect(t: TestContext, at: Address, connect: Partial<IConnectPacket> & { clientId: string }, resume = false): Promise<IConnackPacket> {
    const { wire, connack } = await Wire.connect(t, at, connect, (p, w) => this.#onPacket(w, p))
    this.wire = wire
    wire.closed.then(() => this.#events.emit('change'), () => undefined)
    if (resume) this.#resend(wire)
    return connack
  }

  /** Starts streaming (up to `limit` messages in all). */
  start(limit = Infinity): void {
    this.#streaming = true
    this.#limit = limit
    this.#pump()
  }

  stop(): void {
    this.#streaming = false
  }

  /** Resolves once nothing is in flight (every message finished), or rejects when the connection closes first. */
  idle(timeoutMs = 5_000): Promise<true> {
    return waitOn(this.#events, 'change', () => {
      if (this.#inflight.size === 0) return true
      if (this.wire?.isClosed !== false) throw new Error(`connection closed with ${this.#inflight.size} messages in flight`)
      return undefined
    }, timeoutMs, () => `${this.#inflight.size} messages still in flight`)
  }

  #publish(wire: Wire, id: number, seq: number, dup: boolean): void {
    wire.send({ cmd: 'publish', topic: this.topic, payload: Buffer.from(String(seq)), qos: this.qos, messageId: id, dup, retain: false })
  }

  #pump(): void {
    const wire = this.wire
    if (wire === undefined) return
    while (this.#streaming && !wire.isClosed && this.#inflight.size < this.window && this.stats.sent < this.#limit) {
      const id = this.#allocateId()
      const seq = this.stats.sent++
      this.#inflight.set(id, { seq, state: 'publish' })
      this.#publish(wire, id, seq, false)
    }
  }

  /** Unfinished messages again, in the order they were first sent, with their packet ids [MQTT-4.4.0-1]. */
  #resend(wire: Wire): void {
    for (const [id, f] of this.#inflight) {
      if (f.state === 'pubrel') {
        this.stats.resentPubrel++
        wire.send({ cmd: 'pubrel', messageId: id })
      } else {
        this.stats.resentPublish++
        this.#publish(wire, id, f.seq, true)
      }
    }
  }

  #allocateId(): number {
    for (;;) {
      const id = this.#nextId
      this.#nextId = id === 65535 ? 1 : id + 1
      if (!this.#inflight.has(id)) return id
    }
  }

  #onPacket(wire: Wire, p: Packet): void {
    if (p.cmd === 'puback' && this.qos === 1) {
      const f = this.#inflight.get(p.messageId ?? 0)
      if (f === undefined) return
      this.#inflight.delete(p.messageId ?? 0)
      this.stats.acked.add(f.seq)
      this.onAck(this.stats.acked.size)
    } else if (p.cmd === 'pubrec' && this.qos === 2) {
      const id = p.messageId ?? 0
      const f = this.#inflight.get(id)
      // PUBREL also for an id we do not hold, so the broker can finish its side.
      wire.send({ cmd: 'pubrel', messageId: id })
      if (f === undefined || f.state === 'pubrel') return
      f.state = 'pubrel'
      this.stats.acked.add(f.seq)
      this.onAck(this.stats.acked.size)
    } else if (p.cmd === 'pubcomp' && this.qos === 2) {
      const id = p.messageId ?? 0
      const f = this.#inflight.get(id)
      if (f === undefined || f.state !== 'pubrel') return
      this.#inflight.delete(id)
      this.stats.completed.add(f.seq)
    } else {
      return
    }
    this.#pump()
    this.#events.emit('change')
  }
}
