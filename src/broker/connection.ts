import { generate, writeToStream, type Packet, type IPublishPacket } from 'mqtt-packet'
import type { Logger } from 'pino'
import type { Broker } from './broker.js'
import { Framer } from './framer.js'
import { dispatch } from './handlers/index.js'
import { checkConnectPreamble } from './handlers/connect-preamble.js'
import { ProtocolError } from './protocol-error.js'
import type { Outlet, Session, Throttle } from './session.js'
import type { Message, MqttStream, ProtocolVersion, QoS, StreamMeta } from './types.js'

/** QoS 0 messages to a client with more than this buffered are dropped, not queued without bound. */
const CONGESTION_BYTES = 512 * 1024

/** How long a closing stream may take to flush its last packet before it is destroyed. */
const CLOSE_FLUSH_MS = 1000

// mqtt-packet otherwise builds a table of 65,536 two-byte Buffers (about 6 MB of heap) on its
// first encode; packet ids and lengths are cheap to write without it.
writeToStream.cacheNumbers = false

/** Protocol limit on a packet: 1 byte header, 4 bytes remaining length, 268,435,455 bytes body. */
const MAX_PACKET = 268_435_455 + 5

/**
 * One client connection over any duplex stream. It frames and decodes packets, runs them
 * through the handlers one at a time, and is the session's outlet while connected.
 */
export class Connection implements Outlet, Throttle {
  readonly broker: Broker
  readonly meta: StreamMeta
  log: Logger
  state: 'new' | 'connecting' | 'open' | 'closed' = 'new'
  version: ProtocolVersion = 4
  clientId = ''
  username: string | undefined
  session: Session | undefined
  will: Message | undefined
  /** Seconds; 0 disables the keepalive check. */
  keepalive = 0
  lastSeen = Date.now()

  readonly #stream: MqttStream
  readonly #framer: Framer
  /** Packets that arrived while an async handler ran; processed in order afterwards. */
  #backlog: Buffer[] = []
  #busy = false
  /** Sessions currently holding this publisher (see Session.hold). */
  #holds = 0
  #corked = false

  constructor(broker: Broker, stream: MqttStream, meta: StreamMeta) {
    this.broker = broker
    this.meta = meta
    this.#stream = stream
    // A child logger per client is made at CONNECT, when there is a client id to bind.
    this.log = broker.log
    const limit = broker.config.messageSizeLimit
    // A PUBLISH body also holds the topic (up to 65,535 + 2 bytes) and a packet id; anything
    // beyond that margin cannot be a payload within the limit, so refuse it unbuffered.
    this.#framer = new Framer(limit > 0 ? Math.min(MAX_PACKET, limit + 65_545) : MAX_PACKET)
    stream.on('data', (chunk: Buffer) => this.#onData(chunk))
    stream.on('error', (err: Error) => this.close(`socket error: ${err.message}`, true))
    stream.on('end', () => this.close('connection closed by peer', true))
    stream.on('close', () => this.close('connection closed by peer', true))
  }

  /** A method rather than a state check, so TypeScript does not narrow it away across calls. */
  isClosed(): boolean {
    return this.state === 'closed'
  }

  get congested(): boolean {
    return this.#stream.writableLength > CONGESTION_BYTES
  }

  get remote(): string {
    const { remoteAddress, remotePort } = this.meta
    return remotePort === undefined ? (remoteAddress ?? 'unknown') : `${remoteAddress}:${remotePort}`
  }

  /** Encodes and writes one packet with this connection's protocol version. */
  write(packet: Packet): void {
    if (this.state === 'closed') return
    this.writeRaw(generate(packet, { protocolVersion: this.version }))
  }

  writeRaw(bytes: Buffer, more?: Buffer): void {
    if (this.state === 'closed') return
    const stats = this.broker.stats
    stats.messagesSent++
    stats.bytesSent += bytes.length + (more?.length ?? 0)
    // Everything written in one tick (the acks for a chunk of publishes, a fan-out) leaves in one
    // writev instead of one syscall per packet.
    if (!this.#corked) {
      this.#corked = true
      this.#stream.cork()
      process.nextTick(this.#uncork)
    }
    this.#stream.write(bytes)
    if (more !== undefined) this.#stream.write(more)
  }

  readonly #uncork = (): void => {
    this.#corked = false
    this.#stream.uncork()
  }

  sendPublish(message: Message, qos: QoS, packetId: number | undefined, retain: boolean, dup: boolean): void {
    this.broker.stats.publishSent++
    if (qos === 0 && !retain && this.version !== 5) {
      this.writeRaw(this.broker.encodeQos0(message))
      return
    }
    if (packetId !== undefined && this.version !== 5) {
      const [head, payload] = this.broker.encodePublish(message, qos, packetId, retain, dup)
      this.writeRaw(head, payload)
      return
    }
    const packet: IPublishPacket = { cmd: 'publish', topic: message.topic, payload: message.payload, qos, retain, dup }
    if (packetId !== undefined) packet.messageId = packetId
    this.write(packet)
  }

  sendPubrel(packetId: number): void {
    this.write({ cmd: 'pubrel', messageId: packetId })
  }

  /**
   * Ends the connection once. `publishWill` is false only after a DISCONNECT [MQTT-3.14.4-3];
   * every other ending (error, timeout, takeover, protocol violation) sends the will [MQTT-3.1.2-8].
   */
  close(reason: string, publishWill: boolean): void {
    if (this.state === 'closed') return
    const wasOpen = this.state === 'open'
    this.state = 'closed'
    this.#backlog = []
    const stream = this.#stream
    if (!stream.destroyed) {
      stream.end()
      setTimeout(() => stream.destroy(), CLOSE_FLUSH_MS).unref()
    }
    this.broker.connectionClosed(this, reason, publishWill && wasOpen)
  }

  /** Closes because of a protocol violation, logged with the rule it broke. */
  fail(err: ProtocolError): void {
    this.log.warn({ ...this.logContext(), rule: err.rule, err: err.message }, 'protocol error, closing connection')
    this.close(`protocol error: ${err.message}`, true)
  }

  /** Switches the decoder to the version the CONNECT announced. */
  setVersion(version: ProtocolVersion): void {
    this.version = version
  }

  /** Fields a log line needs besides the logger's bindings: before CONNECT there are none yet, so name the peer. */
  logContext(): { remote?: string } {
    return this.clientId === '' ? { remote: this.remote } : {}
  }

  #onData(chunk: Buffer): void {
    if (this.state === 'closed') return
    this.broker.stats.bytesReceived += chunk.length
    this.lastSeen = Date.now()
    const result = this.#framer.push(chunk, (raw) => this.#onPacket(raw))
    if (!result.ok) {
      if (result.error === 'too-large') {
        this.log.warn({ ...this.logContext(), size: result.size, limit: this.broker.config.messageSizeLimit }, 'packet exceeds message_size_limit, closing connection')
        this.close('packet too large', true)
      } else {
        this.fail(new ProtocolError('malformed remaining length', 0x81, 'MQTT-1.5.5'))
      }
    }
  }

  hold(): void {
    if (this.#holds++ === 0) this.#stream.pause()
  }

  /** True while a backed-up subscriber holds this publisher; its silence is then ours, not its. */
  get held(): boolean {
    return this.#holds > 0
  }

  release(): void {
    if (this.#holds === 0 || --this.#holds > 0 || this.isClosed()) return
    this.lastSeen = Date.now()
    this.#stream.resume()
    this.#drainBacklog()
  }

  /** Returns false once the connection is closed, so the framer stops. */
  #onPacket(raw: Buffer): boolean {
    if (this.state === 'closed') return false
    if (this.#busy || this.#holds > 0) {
      this.#backlog.push(raw)
      return true
    }
    this.#process(raw)
    return !this.isClosed()
  }

  #process(raw: Buffer): void {
    this.broker.stats.messagesReceived++
    let bytes = raw
    if (this.state === 'new') {
      // Checks mqtt-packet cannot make for us: packet type, protocol name and level, so an
      // unsupported level gets CONNACK 0x01 instead of a bare close [MQTT-3.1.2-2].
      const pre = checkConnectPreamble(this, raw)
      if (pre === undefined) return
      bytes = pre
    } else if (((raw[0] as number) >> 4) === 1) {
      // A second CONNECT [MQTT-3.1.0-2]; refused before decoding, which would re-version the
      // shared parser.
      this.fail(new ProtocolError('second CONNECT on one connection', 0x82, 'MQTT-3.1.0-2'))
      return
    }
    const { packet, error } = this.broker.decoder.decode(bytes, this.version)
    if (packet === undefined) {
      this.fail(new ProtocolError(`malformed packet: ${error.message}`, 0x81))
      return
    }
    let pending: void | Promise<void>
    try {
      pending = dispatch(this, packet, raw)
    } catch (err) {
      this.#handleError(err)
      return
    }
    if (pending !== undefined) {
      this.#busy = true
      pending.then(
        () => this.#resume(),
        (err: unknown) => {
          this.#handleError(err)
          this.#resume()
        },
      )
    }
  }

  #resume(): void {
    this.#busy = false
    this.#drainBacklog()
  }

  #drainBacklog(): void {
    while (!this.#busy && this.#holds === 0 && !this.isClosed() && this.#backlog.length > 0) {
      this.#process(this.#backlog.shift() as Buffer)
    }
  }

  #handleError(err: unknown): void {
    if (err instanceof ProtocolError) {
      this.fail(err)
      return
    }
    // A bug of ours must not take the process down: log it and drop only this client.
    this.log.error({ ...this.logContext(), err }, 'internal error handling packet, closing connection')
    this.close('internal error', true)
  }
}
