/**
 * A real Eclipse Mosquitto (Debian's /usr/sbin/mosquitto 2.0.11) as the "cloud" broker of the
 * upstream-bridge tests: a plain and/or a TLS listener on free ports of 127.0.0.1, anonymous
 * access or a password file, persistence in its own temp dir, and its whole log kept so tests
 * can assert on what it refused and why.
 *
 * The ports and the persistence dir are kept across `stop()`/`kill()`/`restart()`, so a restarted
 * cloud is the same endpoint with the same persistent sessions, the way a bridge sees a cloud
 * broker that went away and came back.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { promisify } from 'node:util'
import { connect, type IClientOptions, type MqttClient } from 'mqtt'
import type { IConnackPacket } from 'mqtt-packet'
import type { CertPair } from '../../scripts/lib/certs.js'
import { Inbox } from './inbox.js'
import { freePort, type ExitResult } from './outpost-process.js'
import { waitOn } from './wait.js'

const run = promisify(execFile)
const HOST = '127.0.0.1'
const WAIT_MS = 5_000

export const MOSQUITTO_BIN = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto'
export const MOSQUITTO_PASSWD_BIN = process.env.MOSQUITTO_PASSWD_BIN ?? '/usr/bin/mosquitto_passwd'

export interface CloudTlsOptions {
  /**
   * `cafile`: the CA Mosquitto verifies client certificates against. Required with
   * `requireCertificate`. It changes what the server sends, too: OpenSSL completes the chain from
   * this store, so with it the handshake carries leaf + root (a client trusting another CA fails
   * with SELF_SIGNED_CERT_IN_CHAIN); without it the leaf alone (UNABLE_TO_VERIFY_LEAF_SIGNATURE).
   */
  ca?: string
  /** The certificate the broker presents: `certs.server`, or `certs.wrongName`/`certs.expired`. */
  server: CertPair
  /** Refuse clients without a certificate signed by `ca`. Default false. */
  requireCertificate?: boolean
}

export interface CloudBrokerOptions {
  /** A plain MQTT listener (`port`, `url`). Default: true unless `tls` is given. */
  plain?: boolean
  /** A TLS listener (`tlsPort`, `tlsUrl`). */
  tls?: CloudTlsOptions
  /** Username to password. When given, a password file is made and anonymous clients are refused. */
  users?: Readonly<Record<string, string>>
  /**
   * `log_type` values; default `all`. `all` logs every PUBLISH and ack (debug), which is what a
   * test grepping for a refusal wants but megabytes for a 100,000-message benchmark: pass
   * `['error', 'warning', 'notice', 'information']` there.
   */
  logTypes?: readonly string[]
  /**
   * Save the persistence file after every change (subscription, retained or queued message), so
   * that even a `kill()` keeps persistent sessions and their queues. Off by default, as in
   * Mosquitto: a killed cloud then comes back with the state of its last clean stop.
   */
  saveEveryChange?: boolean
  /**
   * More mosquitto.conf lines, appended at the global level (before the listeners). For example
   * `max_inflight_messages 100`: Mosquitto advertises it to MQTT 5 clients as Receive Maximum
   * (20 by default), which caps a v5 bridge's window of unacknowledged publishes.
   */
  extraConfig?: readonly string[]
  /** How long to wait for "mosquitto version ... running"; default 5 s. */
  startTimeoutMs?: number
}

/** Mosquitto prints this once every listener is open; our readiness signal. */
const RUNNING = /mosquitto version \S+ running/

function configText(o: CloudBrokerOptions, dir: string, port: number | undefined, tlsPort: number | undefined, passwordFile: string | undefined): string {
  const lines = [
    '# Written by test/helpers/cloud-broker.ts',
    // Started as root (CI containers), Mosquitto drops to the `mosquitto` user, which cannot read
    // our 0600 keys or write into our 0700 temp dir. `root` tells it to stay as it is.
    ...(process.getuid?.() === 0 ? ['user root'] : []),
    // One security setting (anonymous or password file) for every listener.
    'per_listener_settings false',
    passwordFile === undefined ? 'allow_anonymous true' : `allow_anonymous false\npassword_file ${passwordFile}`,
    // Saved on SIGTERM (and every autosave_interval, 30 min): a stop()/restart() keeps persistent
    // sessions and their queued messages; a kill() loses whatever changed since the last save.
    'persistence true',
    `persistence_location ${join(dir, 'data')}`,
    // Default 1000 per client: a bridge's backlog of more queued for an offline persistent
    // session would be dropped silently. 0 is "no maximum".
    'max_queued_messages 0',
    // With autosave_on_changes, autosave_interval counts changes instead of seconds.
    ...(o.saveEveryChange === true ? ['autosave_on_changes true', 'autosave_interval 1'] : []),
    'log_dest stderr',
    ...(o.logTypes ?? ['all']).map((t) => `log_type ${t}`),
    'log_timestamp true',
    'connection_messages true',
    ...(o.extraConfig ?? []),
  ]
  if (port !== undefined) lines.push(`listener ${port} ${HOST}`)
  if (tlsPort !== undefined && o.tls !== undefined) {
    const { ca, server, requireCertificate = false } = o.tls
    if (requireCertificate && ca === undefined) throw new Error('cloud broker: tls.requireCertificate needs tls.ca to verify client certificates with')
    lines.push(`listener ${tlsPort} ${HOST}`, ...(ca === undefined ? [] : [`cafile ${ca}`]), `certfile ${server.cert}`, `keyfile ${server.key}`, `require_certificate ${requireCertificate}`)
  }
  return `${lines.join('\n')}\n`
}

/** A cloud Mosquitto, running or stopped; see {@link startCloudBroker}. */
export class CloudBroker {
  readonly dir: string
  readonly #options: CloudBrokerOptions
  readonly #conf: string
  readonly #port: number | undefined
  readonly #tlsPort: number | undefined
  readonly #events = new EventEmitter()
  #log = ''
  #child: ChildProcess | undefined
  // Not yet started reads as exited: `running` is false and stop()/kill() have nothing to do.
  #exited: Promise<ExitResult> = Promise.resolve({ code: null, signal: null })
  #exit: ExitResult | undefined = { code: null, signal: null }

  constructor(dir: string, conf: string, options: CloudBrokerOptions, port: number | undefined, tlsPort: number | undefined) {
    this.dir = dir
    this.#conf = conf
    this.#options = options
    this.#port = port
    this.#tlsPort = tlsPort
    this.#events.setMaxListeners(0)
  }

  /** The plain listener's port; throws when there is none. */
  get port(): number {
    if (this.#port === undefined) throw new Error('this cloud broker has no plain listener (options.plain)')
    return this.#port
  }

  /** The TLS listener's port; throws when there is none. */
  get tlsPort(): number {
    if (this.#tlsPort === undefined) throw new Error('this cloud broker has no TLS listener (options.tls)')
    return this.#tlsPort
  }

  get url(): string {
    return `mqtt://${HOST}:${this.port}`
  }

  /** By name, so the certificate's DNS:localhost is what gets verified. */
  get tlsUrl(): string {
    return `mqtts://localhost:${this.tlsPort}`
  }

  get running(): boolean {
    return this.#exit === undefined
  }

  get pid(): number | undefined {
    return this.#child?.pid
  }

  /** Everything Mosquitto has logged, across restarts (each run starts with its "starting" line). */
  log(): string {
    return this.#log
  }

  /**
   * The first log line (already logged or still to come) matching `pattern`, looking only at the
   * log after offset `since` (a previous `log().length`) when given.
   */
  waitForLog(pattern: RegExp, options: { since?: number; timeoutMs?: number } = {}): Promise<string> {
    const find = (): string | undefined => {
      const text = this.#log.slice(options.since ?? 0)
      // Whole lines only: a chunk can end mid-line.
      const complete = text.slice(0, text.lastIndexOf('\n') + 1)
      return complete.split('\n').find((line) => pattern.test(line))
    }
    return waitOn(this.#events, 'log', find, options.timeoutMs ?? WAIT_MS, () => `mosquitto log line ${String(pattern)}; log:\n${this.#log.slice(-2000)}`)
  }

  /** Starts Mosquitto (it must not be running) and resolves once every listener is open. */
  async start(): Promise<void> {
    if (this.running) throw new Error('cloud broker already running')
    const since = this.#log.length
    const child = spawn(MOSQUITTO_BIN, ['-c', this.#conf], { stdio: ['ignore', 'pipe', 'pipe'] })
    this.#child = child
    this.#exit = undefined
    const onData = (s: string): void => {
      this.#log += s
      this.#events.emit('log')
    }
    child.stdout?.setEncoding('utf8').on('data', onData)
    child.stderr?.setEncoding('utf8').on('data', onData)
    this.#exited = new Promise((resolve) => {
      // 'error' instead of 'close' when the binary cannot be started at all.
      child.once('error', (err) => onData(`spawn ${MOSQUITTO_BIN}: ${err.message} (Debian/Ubuntu: apt-get install mosquitto, or set MOSQUITTO_BIN)\n`))
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        this.#exit = { code, signal }
        this.#events.emit('log')
        resolve(this.#exit)
      })
    })
    const ready = (): true | undefined => {
      if (RUNNING.test(this.#log.slice(since))) return true
      if (this.#exit !== undefined) throw new Error(`${MOSQUITTO_BIN} exited (${JSON.stringify(this.#exit)}) before it was running; log:\n${this.#log.slice(since)}`)
      return undefined
    }
    try {
      await waitOn(this.#events, 'log', ready, this.#options.startTimeoutMs ?? WAIT_MS, () => `${MOSQUITTO_BIN} to log "running"; log:\n${this.#log.slice(since)}`)
    } catch (err) {
      await this.kill()
      throw err
    }
  }

  /** SIGTERM, as an orderly shutdown: Mosquitto saves its persistence file before it exits. */
  async stop(timeoutMs = WAIT_MS): Promise<ExitResult> {
    if (this.#exit !== undefined) return this.#exit
    this.#child?.kill('SIGTERM')
    const timer = setTimeout(() => this.#child?.kill('SIGKILL'), timeoutMs)
    const exit = await this.#exited
    clearTimeout(timer)
    if (exit.signal === 'SIGKILL') throw new Error(`mosquitto did not exit within ${timeoutMs} ms of SIGTERM; log:\n${this.#log.slice(-2000)}`)
    return exit
  }

  /** SIGKILL: nothing saved since the last autosave (at start, in these tests) survives. */
  async kill(): Promise<ExitResult> {
    if (this.#exit !== undefined) return this.#exit
    this.#child?.kill('SIGKILL')
    return this.#exited
  }

  /** Stops it if it is running (SIGTERM), then starts it again: same ports, same persistence. */
  async restart(): Promise<void> {
    await this.stop()
    await this.start()
  }
}

async function writePasswordFile(file: string, users: Readonly<Record<string, string>>): Promise<void> {
  let first = true
  for (const [user, password] of Object.entries(users)) {
    // -c (create) only for the first user: it truncates the file.
    const args = [...(first ? ['-c'] : []), '-b', file, user, password]
    try {
      await run(MOSQUITTO_PASSWD_BIN, args)
    } catch (err) {
      throw new Error(`${MOSQUITTO_PASSWD_BIN} ${args.join(' ')} failed (it comes with Debian's mosquitto package): ${err instanceof Error ? err.message : String(err)}`)
    }
    first = false
  }
}

/**
 * Starts a cloud Mosquitto for this test; it is killed and its dir removed after the test. The
 * ports are probed free then handed to Mosquitto; if another process takes one in between, the
 * start is retried on new ports (restarts keep theirs and fail instead).
 */
export async function startCloudBroker(t: TestContext, options: CloudBrokerOptions = {}): Promise<CloudBroker> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-cloud-'))
  let broker: CloudBroker | undefined
  t.after(async () => {
    await broker?.kill()
    await rm(dir, { recursive: true, force: true })
  })
  await mkdir(join(dir, 'data'))
  let passwordFile: string | undefined
  if (options.users !== undefined) {
    passwordFile = join(dir, 'passwd')
    await writePasswordFile(passwordFile, options.users)
  }
  const conf = join(dir, 'mosquitto.conf')
  for (let attempt = 1; ; attempt++) {
    const port = (options.plain ?? options.tls === undefined) ? await freePort(HOST) : undefined
    const tlsPort = options.tls === undefined ? undefined : await freePort(HOST)
    await writeFile(conf, configText(options, dir, port, tlsPort, passwordFile))
    broker = new CloudBroker(dir, conf, options, port, tlsPort)
    try {
      await broker.start()
      return broker
    } catch (err) {
      if (attempt < 3 && broker.log().includes('Address already in use')) continue
      throw err
    }
  }
}

export interface CloudClientOptions {
  /** Connect to the TLS listener, trusting the CA in file `ca`, presenting `client` if given. */
  tls?: { ca: string; client?: CertPair; host?: string }
  username?: string
  password?: string
  /** Everything else MQTT.js takes (clientId, clean, protocolVersion, ...). */
  mqtt?: IClientOptions
}

export interface CloudClient {
  client: MqttClient
  inbox: Inbox
  connack: IConnackPacket
}

/**
 * An MQTT.js client of `broker`, connected (CONNACK in) when this resolves, its inbox listening
 * from before CONNECT (a resumed session's messages can come in the CONNACK's read). It does not
 * reconnect; it is ended after the test. Rejects with MQTT.js's own error (TLS or CONNACK), so
 * tests can look at its `code`.
 */
export function cloudClient(t: TestContext, broker: CloudBroker, options: CloudClientOptions = {}): Promise<CloudClient> {
  const tls = options.tls
  const url = tls === undefined ? broker.url : `mqtts://${tls.host ?? 'localhost'}:${broker.tlsPort}`
  const opts: IClientOptions = {
    reconnectPeriod: 0,
    connectTimeout: WAIT_MS,
    ...(tls === undefined ? {} : { ca: readFileSync(tls.ca), ...(tls.client === undefined ? {} : { cert: readFileSync(tls.client.cert), key: readFileSync(tls.client.key) }) }),
    ...(options.username === undefined ? {} : { username: options.username }),
    ...(options.password === undefined ? {} : { password: options.password }),
    ...options.mqtt,
  }
  const client = connect(url, opts)
  const inbox = new Inbox(client)
  t.after(() => client.endAsync(true))
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer)
      client.off('connect', onConnect)
      client.off('error', onError)
      client.off('close', onClose)
    }
    const onConnect = (connack: IConnackPacket): void => {
      done()
      resolve({ client, inbox, connack })
    }
    const onError = (err: Error): void => {
      done()
      reject(err)
    }
    const onClose = (): void => {
      done()
      reject(new Error(`${url}: connection closed before CONNACK`))
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`${url}: no CONNACK within ${WAIT_MS} ms`))
    }, WAIT_MS)
    client.on('connect', onConnect)
    client.on('error', onError)
    client.on('close', onClose)
  })
}
