import { writeToStream, type Packet } from 'mqtt-packet'
import type { Logger } from 'pino'
import type { Broker } from './broker.js'
import { PublishRate } from './client-limits.js'
import { encodePacket, encodePublish5, reasonPacket } from './connection-packets.js'
import { Framer } from './framer.js'
import { dispatch } from './handlers/index.js'
import { checkConnectPreamble } from './handlers/connect-preamble.js'
import { Unmounter } from './mount.js'
import { LimitExceeded, ProtocolError, ReasonCode } from './protocol-error.js'
import type { Outlet, Session, Throttle } from './session.js'
import type { Message, MqttStream, ProtocolVersion, QoS, StreamMeta } from './types.js'
import type { AuthState } from './handlers/auth.js'
import { decodeV5, type Packet5 } from './v5/decode.js'
import type { Properties } from './v5/properties.js'
import { InboundAliases, OutboundAliases } from './v5/topic-aliases.js'
import type { Will } from './wills.js'

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
  will: Will | undefined
  /** The will was written to the store at CONNECT (see Broker.armWill), so it must be removed there too. */
  willStored = false
  /** Seconds; 0 disables the keepalive check. */
  keepalive = 0
  lastSeen = Date.now()

  // What an MQTT 5 client announced in CONNECT (section 3.1.2.11); 3.1.1 clients keep the defaults.
  /** Unacknowledged QoS 1/2 messages the client accepts at once. */
  receiveMaximum = 65_535
  /** Largest packet the client accepts; 0 = the protocol limit. */
  maxPacketSize = 0
  /** Request Problem Information: Reason Strings allowed on acks [MQTT-3.1.2-29]. */
  problemInfo = true
  /** Session Expiry Interval of the CONNECT: 0 there cannot become non-zero at DISCONNECT [MQTT-3.14.2-2]. */
  connectExpiry = 0
  /** Incoming topic aliases, up to our Topic Alias Maximum. */
  inAliases: InboundAliases | undefined
  #outAliases: OutboundAliases | undefined
  /** MQTT 5 enhanced authentication, when CONNECT named a method. */
  auth: AuthState | undefined
  /** The listener's mount point ('' = none): added to this client's topics and filters, taken off what it receives. */
  readonly mount: string
  /** `max_publish_rate` / `max_publish_bytes_rate` for this client; undefined when neither is set. */
  readonly publishRate: PublishRate | undefined
  readonly #unmounter: Unmounter | undefined

  readonly #stream: MqttStream
  readonly #framer: Framer
  /** Packets that arrived while an async handler ran; processed in order afterwards. */
  #backlog: Buffer[] = []
  #busy = false
  /** Sessions currently holding this publisher (see Session.hold). */
  #holds = 0
  #corked = false
  #connectTimer: NodeJS.Timeout | undefined

  constructor(broker: Broker, stream: MqttStream, meta: StreamMeta) {
    this.broker = broker
    this.meta = meta
    this.#stream = stream
    // A child logger per client is made at CONNECT, when there is a client id to bind.
    this.log = broker.log
    this.mount = meta.mountPoint ?? ''
    this.#unmounter = this.mount === '' ? undefined : Unmounter.for(this.mount)
    this.publishRate = PublishRate.for(broker.config)
    const { messageSizeLimit, maxPacketSize } = broker.config
    // A PUBLISH body also holds the topic (up to 65,535 + 2 bytes) and a packet id; anything
    // beyond that margin cannot be a payload within the limit, so refuse it unbuffered.
    let max = messageSizeLimit > 0 ? Math.min(MAX_PACKET, messageSizeLimit + 65_545) : MAX_PACKET
    // The limit announced to MQTT 5 clients as Maximum Packet Size, enforced for every client.
    if (maxPacketSize > 0) max = Math.min(max, maxPacketSize)
    this.#framer = new Framer(max)
    stream.on('data', (chunk: Buffer) => this.#onData(chunk))
    const timeout = broker.config.connectTimeout
    if (timeout > 0) {
      // Slow-loris: a peer that opens a socket and never finishes CONNECT (or an AUTH exchange)
      // would hold a file descriptor and a slot under max_connections for ever.
      this.#connectTimer = setTimeout(() => {
        if (this.state !== 'new' && this.state !== 'connecting') return
        this.log.info({ remote: this.remote, seconds: timeout, listener: meta.listener }, 'no CONNECT in time, closing the connection')
        this.broker.stats.connectTimeouts++
        this.close(`no CONNECT within ${timeout} s`, false)
      }, timeout * 1000)
      this.#connectTimer.unref()
    }
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

  /** Bytes written to the stream that it has not yet passed on (the client is not reading them). */
  get bufferedBytes(): number {
    return this.#stream.writableLength
  }

  get remote(): string {
    const { remoteAddress, remotePort } = this.meta
    return remotePort === undefined ? (remoteAddress ?? 'unknown') : `${remoteAddress}:${remotePort}`
  }

  /** Encodes and writes one packet; false when it was too large for the client and not sent (see encodePacket). */
  write(packet: Packet): boolean {
    if (this.state === 'closed') return false
    const bytes = encodePacket(packet, this.version, this.maxPacketSize)
    if (bytes === undefined) return false
    this.writeRaw(bytes)
    return true
  }

  /**
   * PUBACK, PUBREC, PUBREL or PUBCOMP (`type` is the first byte). Written by hand: it is sent
   * once per QoS 1/2 message, and a success needs no reason code in MQTT 5 (section 3.4.2.1).
   */
  ack(type: number, id: number, reasonCode = 0, reason?: string): void {
    if (this.version !== 5 || reasonCode === 0) {
      const b = Buffer.allocUnsafe(4)
      b[0] = type
      b[1] = 2
      b.writeUInt16BE(id, 2)
      this.writeRaw(b)
      return
    }
    const text = reason === undefined || reason === '' ? undefined : this.reasonString(reason)?.reasonString
    this.writeRaw(reasonPacket(type, Buffer.from([id >> 8, id & 0xff, reasonCode]), text, this.maxPacketSize))
  }

  /** A Reason String for packets other than PUBLISH, CONNACK and DISCONNECT, where the client allows it [MQTT-3.1.2-29]. */
  reasonString(text: string): { reasonString: string } | undefined {
    return this.problemInfo && this.broker.config.reasonStrings ? { reasonString: text } : undefined
  }

  /** Takes the limits an MQTT 5 client announced in its CONNECT properties. */
  applyClientProperties(props: Properties): void {
    this.receiveMaximum = props.receiveMaximum ?? 65_535
    this.maxPacketSize = props.maximumPacketSize ?? 0
    this.problemInfo = props.requestProblemInformation !== 0
    this.connectExpiry = props.sessionExpiryInterval ?? 0
    const clientAliases = props.topicAliasMaximum ?? 0
    // Without a Topic Alias Maximum from the client the server sends no aliases [MQTT-3.2.2-18] (3.1.2.11.5).
    this.#outAliases = clientAliases > 0 ? new OutboundAliases(clientAliases) : undefined
    this.inAliases = new InboundAliases(this.broker.config.topicAliasMaximum)
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

  sendPublish(message: Message, qos: QoS, packetId: number | undefined, retain: boolean, dup: boolean, subscriptionIds?: readonly number[]): boolean {
    if (this.#unmounter !== undefined) {
      // Only the mount point alone as a topic (matched by `MOUNT/#`) has no name to send; it is
      // dropped for this client like a message too large for it.
      const view = this.#unmounter.view(message)
      if (view === undefined) return false
      message = view
    }
    if (this.version === 5) {
      // Not sent when too large for the client or expired (see encodePublish5).
      const packet = encodePublish5(this.broker.encoder5, this.#outAliases, this.maxPacketSize, message, qos, packetId, retain, dup, subscriptionIds)
      if (packet === undefined) return false
      this.broker.stats.publishSent++
      this.writeRaw(packet[0], packet[1])
      return true
    }
    this.broker.stats.publishSent++
    if (qos === 0 && !retain) {
      this.writeRaw(this.broker.encoder4.qos0(message))
    } else {
      const [head, payload] = this.broker.encoder4.encode(message, qos, packetId, retain, dup)
      this.writeRaw(head, payload)
    }
    return true
  }

  sendPubrel(packetId: number): void {
    this.ack(0x62, packetId)
  }

  /**
   * Ends the connection once. `publishWill` is false only after a DISCONNECT [MQTT-3.14.4-3];
   * every other ending (error, timeout, takeover, protocol violation) sends the will [MQTT-3.1.2-8].
   * An MQTT 5 client is told why with a DISCONNECT carrying `reasonCode` (section 4.13.2).
   */
  close(reason: string, publishWill: boolean, reasonCode?: number): void {
    if (this.state === 'closed') return
    const wasOpen = this.state === 'open'
    if (wasOpen && reasonCode !== undefined && this.version === 5) {
      // DISCONNECT may carry a Reason String whatever Request Problem Information says [MQTT-3.1.2-29].
      this.writeRaw(reasonPacket(0xe0, Buffer.from([reasonCode]), this.broker.config.reasonStrings ? reason : undefined, this.maxPacketSize))
    }
    this.state = 'closed'
    if (this.#connectTimer !== undefined) clearTimeout(this.#connectTimer)
    this.#backlog = []
    const stream = this.#stream
    if (!stream.destroyed) {
      stream.end()
      setTimeout(() => stream.destroy(), CLOSE_FLUSH_MS).unref()
    }
    this.broker.connectionClosed(this, reason, publishWill && wasOpen)
  }

  /**
   * Closes because of a protocol violation, logged with the rule it broke. An MQTT 5 client gets
   * the reason code: in a DISCONNECT once connected, in the CONNACK while connecting [MQTT-4.13.1-1].
   */
  fail(err: ProtocolError): void {
    if (err instanceof LimitExceeded) {
      this.broker.stats.limitsExceeded++
      this.log.warn({ ...this.logContext(), limit: err.limit, reasonCode: err.reasonCode, err: err.message }, 'client over a per-client limit, closing connection')
    } else {
      this.log.warn({ ...this.logContext(), rule: err.rule, reasonCode: err.reasonCode, err: err.message }, 'protocol error, closing connection')
    }
    if (this.version === 5 && this.state !== 'open' && this.state !== 'closed') {
      const properties = this.broker.config.reasonStrings ? { reasonString: err.message } : undefined
      this.write({ cmd: 'connack', sessionPresent: false, reasonCode: err.reasonCode, properties })
    }
    this.close(`protocol error: ${err.message}`, true, err.reasonCode)
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
        const { messageSizeLimit, maxPacketSize } = this.broker.config
        this.log.warn({ ...this.logContext(), size: result.size, messageSizeLimit, maxPacketSize }, 'packet too large, closing connection')
        this.close('packet too large', true, ReasonCode.PacketTooLarge)
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
    let packet: Packet | Packet5
    if (this.version === 5) {
      if (((raw[0] as number) >> 4) === 15 && this.auth === undefined) {
        // AUTH without an Authentication Method in CONNECT, whatever else is wrong with it [MQTT-4.12.0-7].
        this.fail(new ProtocolError('AUTH without an Authentication Method in CONNECT', 0x82, 'MQTT-4.12.0-7'))
        return
      }
      try {
        packet = decodeV5(bytes)
      } catch (err) {
        this.#handleError(err)
        return
      }
    } else {
      const decoded = this.broker.decoder.decode(bytes, this.version)
      if (decoded.packet === undefined) {
        this.fail(new ProtocolError(`malformed packet: ${decoded.error.message}`, 0x81))
        return
      }
      packet = decoded.packet
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
    this.close('internal error', true, ReasonCode.ImplementationSpecificError)
  }
}
