import { createServer, type AddressInfo, type Server } from 'node:net'
import type { Logger } from 'pino'
import type { Broker } from '../broker/broker.js'
import type { ListenerConfig } from '../config/types.js'
import { OutpostError } from '../errors.js'

/** A plain TCP listener: accepts sockets and hands each to the broker as a stream. */
export class TcpListener {
  readonly #server: Server
  readonly #config: ListenerConfig
  readonly #log: Logger

  constructor(broker: Broker, config: ListenerConfig, log: Logger) {
    this.#config = config
    this.#log = log
    this.#server = createServer({ noDelay: true }, (socket) => {
      const name = this.name
      broker.handle(socket, { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort, listener: name })
    })
    this.#server.on('error', (err) => this.#log.error({ err }, 'listener error'))
  }

  get name(): string {
    const a = this.address()
    return `mqtt://${a?.address ?? this.#config.bind}:${a?.port ?? this.#config.port}`
  }

  address(): AddressInfo | undefined {
    const a = this.#server.address()
    return a !== null && typeof a === 'object' ? a : undefined
  }

  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new OutpostError('OUTPOST_E_LISTEN', `cannot listen on ${this.#config.bind}:${this.#config.port}: ${err.code ?? err.message}`))
      }
      this.#server.once('error', onError)
      this.#server.listen(this.#config.port, this.#config.bind, () => {
        this.#server.off('error', onError)
        const a = this.address() as AddressInfo
        this.#log.info({ listener: this.name }, 'listening')
        resolve(a)
      })
    })
  }

  /** Stops accepting; open connections are closed by the broker. */
  close(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()))
  }
}
