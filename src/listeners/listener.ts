import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { createServer as createTlsServer, TLSSocket, type Server as TlsServer, type TlsOptions } from 'node:tls'
import type { Logger } from 'pino'
import { createWebSocketStream, WebSocketServer } from 'ws'
import type { Broker } from '../broker/broker.js'
import type { ConnectionSecurity, StreamMeta } from '../broker/types.js'
import type { ListenerConfig, ListenerTls } from '../config/types.js'
import { OutpostError } from '../errors.js'
import { peerCommonName, tlsServerOptions } from './tls-options.js'

/**
 * One network listener of any protocol: `mqtt` (TCP), `mqtts` (TLS), `ws` and `wss` (MQTT over
 * WebSocket on `path`, subprotocol `mqtt`). Each hands the broker a duplex stream and what it
 * knows of the peer; the broker never sees a socket type.
 */
export class Listener {
  readonly config: ListenerConfig
  readonly #broker: Broker
  readonly #log: Logger
  readonly #server: NetServer | TlsServer | HttpServer | HttpsServer
  readonly #wss: WebSocketServer | undefined
  #open = 0
  #atLimit = false
  /** connect_timeout in ms (0: none), for the TLS handshake and the WebSocket upgrade. */
  readonly #handshakeMs: number
  /** ws/wss sockets still waiting for their HTTP upgrade, with the timer that closes them. */
  readonly #awaitingUpgrade = new WeakMap<Duplex, NodeJS.Timeout>()
  /** Read at each accept, so a reload (SIGHUP) applies to the next connection. */
  security: ConnectionSecurity | undefined

  constructor(broker: Broker, config: ListenerConfig, log: Logger, security?: ConnectionSecurity) {
    this.config = config
    this.security = security
    this.#broker = broker
    this.#log = log
    this.#handshakeMs = broker.config.connectTimeout * 1000
    const tls = config.tls
    switch (config.protocol) {
      case 'mqtt':
        this.#server = createNetServer({ noDelay: true }, (socket) => this.#accept(socket, socket))
        break
      case 'mqtts':
        if (tls === undefined) throw new Error('mqtts listener without tls settings')
        this.#server = createTlsServer(this.#tlsOptions(tls), (socket) => this.#accept(socket, socket))
        this.#server.on('tlsClientError', (err, socket) => this.#onTlsClientError(err, socket))
        break
      case 'ws':
      case 'wss': {
        let server: HttpServer | HttpsServer
        if (config.protocol === 'wss') {
          if (tls === undefined) throw new Error('wss listener without tls settings')
          const https = createHttpsServer(this.#tlsOptions(tls))
          // Ahead of https's own listener, which destroys the socket and with it the peer address.
          https.prependListener('tlsClientError', (err, socket) => this.#onTlsClientError(err, socket))
          // The HTTP phase starts once TLS is up; the handshake has its own timeout.
          https.on('secureConnection', (socket: TLSSocket) => this.#awaitUpgrade(socket))
          server = https
        } else {
          server = createHttpServer()
          server.on('connection', (socket: Socket) => this.#awaitUpgrade(socket))
        }
        // Clients ask for `mqtt` (MQTT 3.1.1 and 5) or `mqttv3.1` (MQTT 3.1); a browser may ask for none.
        const wss = new WebSocketServer({
          server,
          path: config.path,
          handleProtocols: (protocols) => ['mqtt', 'mqttv3.1'].find((p) => protocols.has(p)) ?? false,
          // No compression: MQTT payloads are small and per-message deflate costs memory per client.
          perMessageDeflate: false,
          maxPayload: 268_435_460,
        })
        wss.on('connection', (ws, request: IncomingMessage) => {
          // Upgraded: from here the broker's own connect_timeout waits for CONNECT.
          clearTimeout(this.#awaitingUpgrade.get(request.socket))
          const stream = createWebSocketStream(ws)
          stream.on('error', () => undefined) // the broker's connection logs and closes
          this.#accept(stream, request.socket)
        })
        wss.on('error', (err) => this.#log.error({ err }, 'websocket server error'))
        this.#wss = wss
        this.#server = server
        break
      }
    }
    this.#server.on('error', (err) => this.#log.error({ err }, 'listener error'))
  }

  get name(): string {
    const a = this.address()
    const path = this.config.protocol === 'ws' || this.config.protocol === 'wss' ? this.config.path : ''
    return `${this.config.protocol}://${a?.address ?? this.config.bind}:${a?.port ?? this.config.port}${path}`
  }

  address(): AddressInfo | undefined {
    const a = this.#server.address()
    return a !== null && typeof a === 'object' ? a : undefined
  }

  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new OutpostError('OUTPOST_E_LISTEN', `cannot listen on ${this.config.bind}:${this.config.port} (${this.config.protocol}): ${err.code ?? err.message}`))
      }
      this.#server.once('error', onError)
      this.#server.listen(this.config.port, this.config.bind, () => {
        this.#server.off('error', onError)
        this.#log.info({ listener: this.name }, 'listening')
        resolve(this.address() as AddressInfo)
      })
    })
  }

  /** Reads the TLS files again (SIGHUP); connections open now keep their session keys. */
  reloadTls(): void {
    const tls = this.config.tls
    if (tls === undefined) return
    const server = this.#server
    if ('setSecureContext' in server) server.setSecureContext(tlsServerOptions(tls))
    this.#log.info({ listener: this.name }, 'TLS certificate and key reloaded')
  }

  /** Stops accepting; open connections are closed by the broker. */
  close(): Promise<void> {
    this.#wss?.close()
    return new Promise((resolve) => this.#server.close(() => resolve()))
  }

  /** Node's TLS options plus the handshake deadline; 0 leaves Node's default (120 s). */
  #tlsOptions(tls: ListenerTls): TlsOptions {
    const options = tlsServerOptions(tls)
    if (this.#handshakeMs > 0) options.handshakeTimeout = this.#handshakeMs
    return options
  }

  #onTlsClientError(err: NodeJS.ErrnoException, socket: TLSSocket): void {
    const remote = socket.remoteAddress
    if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') {
      // Slow-loris before MQTT starts: a socket that never finishes TLS would hold a file
      // descriptor for Node's 120 s default, out of reach of the broker's CONNECT timer.
      this.#broker.stats.connectTimeouts++
      this.#log.info({ remote, listener: this.name, seconds: this.#handshakeMs / 1000 }, 'TLS handshake not finished within connect_timeout, closing the connection')
    } else {
      this.#log.info({ err: err.message, remote, listener: this.name }, 'TLS handshake failed')
    }
    // With a 'tlsClientError' listener attached, a tls.Server leaves the socket open, even after
    // its own handshake timeout: closing it is ours to do (an https server would close it too).
    socket.destroy()
  }

  /**
   * A deadline from the moment the HTTP server has the socket until the WebSocket upgrade. Not
   * an idle timer (socket.setTimeout): a peer trickling one header byte at a time would reset
   * that for ever, and the HTTP server replaces it with its own keep-alive timeout after a
   * response. Cleared on upgrade (wss 'connection') or close.
   */
  #awaitUpgrade(socket: Socket): void {
    if (this.#handshakeMs <= 0) return
    const timer = setTimeout(() => {
      this.#broker.stats.connectTimeouts++
      this.#log.info({ remote: socket.remoteAddress, listener: this.name, seconds: this.#handshakeMs / 1000 }, 'no WebSocket upgrade within connect_timeout, closing the connection')
      socket.destroy()
    }, this.#handshakeMs)
    timer.unref()
    this.#awaitingUpgrade.set(socket, timer)
    socket.once('close', () => clearTimeout(timer))
  }

  #accept(stream: Duplex, socket: Socket): void {
    const max = this.config.maxConnections
    if (max > 0 && this.#open >= max) {
      if (!this.#atLimit) this.#log.warn({ listener: this.name, maxConnections: max }, 'listener max_connections reached, refusing new connections')
      this.#atLimit = true
      this.#broker.stats.connectionsRefused++
      stream.destroy()
      return
    }
    this.#open++
    stream.once('close', () => {
      this.#open--
      if (this.#open < max) this.#atLimit = false
    })
    const meta: StreamMeta = { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort, listener: this.name }
    if (this.security !== undefined) meta.security = this.security
    if (this.config.mountPoint !== '') meta.mountPoint = this.config.mountPoint
    if (this.config.tls?.useIdentityAsUsername === true && socket instanceof TLSSocket) {
      const cn = peerCommonName(socket.getPeerCertificate())
      if (cn !== undefined) meta.certificateIdentity = cn
    }
    this.#broker.handle(stream, meta)
  }
}
