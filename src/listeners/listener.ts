import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { createServer as createTlsServer, TLSSocket, type Server as TlsServer } from 'node:tls'
import type { Logger } from 'pino'
import { createWebSocketStream, WebSocketServer } from 'ws'
import type { Broker } from '../broker/broker.js'
import type { ConnectionSecurity, StreamMeta } from '../broker/types.js'
import type { ListenerConfig } from '../config/types.js'
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
  /** Read at each accept, so a reload (SIGHUP) applies to the next connection. */
  security: ConnectionSecurity | undefined

  constructor(broker: Broker, config: ListenerConfig, log: Logger, security?: ConnectionSecurity) {
    this.config = config
    this.security = security
    this.#broker = broker
    this.#log = log
    const tls = config.tls
    switch (config.protocol) {
      case 'mqtt':
        this.#server = createNetServer({ noDelay: true }, (socket) => this.#accept(socket, socket))
        break
      case 'mqtts':
        if (tls === undefined) throw new Error('mqtts listener without tls settings')
        this.#server = createTlsServer(tlsServerOptions(tls), (socket) => this.#accept(socket, socket))
        this.#server.on('tlsClientError', (err, socket) => this.#log.info({ err: err.message, remote: socket.remoteAddress }, 'TLS handshake failed'))
        break
      case 'ws':
      case 'wss': {
        let server: HttpServer | HttpsServer
        if (config.protocol === 'wss') {
          if (tls === undefined) throw new Error('wss listener without tls settings')
          const https = createHttpsServer(tlsServerOptions(tls))
          https.on('tlsClientError', (err, socket) => this.#log.info({ err: err.message, remote: socket.remoteAddress }, 'TLS handshake failed'))
          server = https
        } else {
          server = createHttpServer()
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
