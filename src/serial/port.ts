import { EventEmitter } from 'node:events'
import type { Logger } from 'pino'
import { SerialPort } from 'serialport'

export interface SerialLinkOptions {
  /** The port to open; or see `resolvePath`. */
  readonly path: string
  /**
   * Finds the path before each attempt (a by-id name or USB ids, see resolve.ts); undefined
   * means nothing matching is plugged in, and the link waits.
   */
  readonly resolvePath?: () => Promise<string | undefined>
  readonly baudRate: number
  readonly dataBits?: 5 | 6 | 7 | 8
  readonly parity?: 'none' | 'even' | 'odd'
  readonly stopBits?: 1 | 2
  readonly rtscts?: boolean
  /** First retry delay after a failure; doubles up to `maxRetryMs`. */
  readonly minRetryMs?: number
  readonly maxRetryMs?: number
}

/** `open`: reading; `waiting`: not there yet or unplugged, retrying; `failed`: refused (permissions...), retrying slowly. */
export type LinkState = { readonly state: 'open' } | { readonly state: 'waiting' | 'failed'; readonly reason: string }

/**
 * One serial port that stays wanted: opened at start if it is there, and reopened with bounded
 * exponential backoff when it is missing, unplugged or failing, so a flapping device never takes
 * the process down. Emits 'data' (Buffer) and 'state' (LinkState, on change only).
 */
export class SerialLink extends EventEmitter<{ data: [Buffer]; state: [LinkState] }> {
  readonly #options: SerialLinkOptions
  readonly #log: Logger
  #port: SerialPort | undefined
  #state: LinkState = { state: 'waiting', reason: 'not opened yet' }
  #retryMs: number
  #timer: NodeJS.Timeout | undefined
  #closed = false

  constructor(options: SerialLinkOptions, log: Logger) {
    super()
    this.#options = options
    this.#log = log
    this.#retryMs = options.minRetryMs ?? 250
  }

  get state(): LinkState {
    return this.#state
  }

  start(): void {
    this.#open()
  }

  /** Writes when open; returns false (nothing written) while the port is away. */
  write(bytes: Buffer): boolean {
    const port = this.#port
    if (port === undefined || this.#state.state !== 'open') return false
    port.write(bytes)
    return true
  }

  async close(): Promise<void> {
    this.#closed = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    const port = this.#port
    this.#port = undefined
    if (port?.isOpen === true) await new Promise<void>((resolve) => port.close(() => resolve()))
  }

  #open(): void {
    if (this.#closed) return
    const resolve = this.#options.resolvePath
    if (resolve === undefined) {
      this.#openAt(this.#options.path)
      return
    }
    resolve().then(
      (path) => {
        if (path !== undefined) this.#openAt(path)
        else this.#retry('waiting', 'no plugged-in port matches')
      },
      (err: unknown) => this.#retry('failed', `could not list ports: ${String(err)}`),
    )
  }

  #openAt(path: string): void {
    if (this.#closed) return
    const o = this.#options
    const port = new SerialPort({
      path,
      baudRate: o.baudRate,
      dataBits: o.dataBits ?? 8,
      parity: o.parity ?? 'none',
      stopBits: o.stopBits ?? 1,
      rtscts: o.rtscts ?? false,
      autoOpen: false,
    })
    this.#port = port
    port.on('data', (chunk: Buffer) => this.emit('data', chunk))
    // An unplugged USB adapter or a pty whose other end went away ends up here or in 'close'.
    port.on('error', (err: Error) => this.#lost(port, err.message))
    port.on('close', () => this.#lost(port, 'port closed'))
    port.open((err) => {
      if (err === null) {
        this.#retryMs = o.minRetryMs ?? 250
        this.#setState({ state: 'open' })
        return
      }
      this.#lost(port, err.message)
    })
  }

  #lost(port: SerialPort, reason: string): void {
    if (this.#port !== port || this.#closed) return
    this.#port = undefined
    port.removeAllListeners('data')
    if (port.isOpen) port.close(() => undefined)
    // Missing devices are expected (waiting); anything else (permissions, busy) is a failure.
    const missing = /ENOENT|No such file|cannot open|Input\/output|EIO|closed/i.test(reason)
    this.#retry(missing ? 'waiting' : 'failed', reason)
  }

  #retry(state: 'waiting' | 'failed', reason: string): void {
    if (this.#closed) return
    this.#setState({ state, reason })
    const delay = this.#retryMs
    this.#retryMs = Math.min(this.#retryMs * 2, this.#options.maxRetryMs ?? 5000)
    this.#timer = setTimeout(() => this.#open(), delay)
    this.#timer.unref()
  }

  #setState(next: LinkState): void {
    const prev = this.#state
    if (prev.state === next.state && ('reason' in prev ? prev.reason : '') === ('reason' in next ? next.reason : '')) return
    this.#state = next
    this.#log.info({ path: this.#options.path, ...next }, 'serial port state')
    this.emit('state', next)
  }
}
