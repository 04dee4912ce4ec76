/**
 * Runs the compiled `outpost` binary as a child process for end-to-end tests: on a free port,
 * in its own temp data dir, with every stdout line kept (parsed as JSON where it is JSON) so
 * tests can assert on what an operator would read in the journal.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'

/** The compiled CLI; this file runs from `dist/test/helpers/`. */
export const OUTPOST_CLI: string = fileURLToPath(new URL('../../src/cli.js', import.meta.url))

/** One stdout line. `json` is undefined for a line that is not a JSON object. */
export interface LogLine {
  readonly text: string
  readonly json: LogRecord | undefined
}

/** A pino record as Outpost writes it: `level` as a name, `msg`, and any bound fields. */
export interface LogRecord {
  readonly level: string
  readonly msg: string
  readonly [field: string]: unknown
}

export interface ExitResult {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface StartOptions {
  /**
   * YAML keys (snake_case, as in a config file) besides `listeners` and `data_dir`, which the
   * helper fills in. When given, the broker is started with `--config FILE`; otherwise with
   * `--port/--bind/--data-dir/--log-level` flags only.
   */
  config?: Record<string, unknown>
  /** Extra command-line arguments, after the ones the helper adds. */
  args?: readonly string[]
  /** How long to wait for "outpost running"; default 10 s. */
  startTimeoutMs?: number
  /**
   * Use this data dir instead of a fresh one, to restart on the state a previous process left
   * (usually `previous.dataDir`). The caller owns it: it is not removed after the test.
   */
  dataDir?: string
}

const HOST = '127.0.0.1'

/**
 * A port that was free a moment ago: listen on 0, read the port, close. Another process can take
 * it before we use it, so {@link startOutpost} retries on EADDRINUSE.
 */
export async function freePort(host = HOST): Promise<number> {
  const server = createServer()
  server.listen(0, host)
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function parseLine(text: string): LogLine {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { text, json: undefined }
  }
  if (isRecord(value) && typeof value.level === 'string' && typeof value.msg === 'string') {
    return { text, json: value as LogRecord }
  }
  return { text, json: undefined }
}

/** Makes a temp dir removed after the test. */
export function tempDir(t: TestContext, prefix = 'outpost-e2e-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A running (or exited) outpost child process. */
export class OutpostProcess {
  readonly child: ChildProcess
  readonly host: string = HOST
  readonly port: number
  readonly dataDir: string
  readonly lines: LogLine[] = []
  stderr = ''
  /** Settles once, when the process has exited and its stdout is fully read. */
  readonly exited: Promise<ExitResult>
  readonly #events = new EventEmitter()
  #exit: ExitResult | undefined

  constructor(child: ChildProcess, port: number, dataDir: string) {
    this.child = child
    this.port = port
    this.dataDir = dataDir
    this.#events.setMaxListeners(0)
    const stdout = child.stdout
    const stderr = child.stderr
    if (stdout === null || stderr === null) throw new Error('outpost must be spawned with piped stdout and stderr')
    stderr.setEncoding('utf8').on('data', (s: string) => {
      this.stderr += s
    })
    const rl = createInterface({ input: stdout, crlfDelay: Infinity })
    rl.on('line', (text) => {
      const line = parseLine(text)
      this.lines.push(line)
      this.#events.emit('line', line)
    })
    // 'close' (not 'exit') so every stdout line has been read when `exited` settles.
    const stdoutDone = once(rl, 'close')
    const childDone = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>
    this.exited = Promise.all([childDone, stdoutDone]).then(([[code, signal]]) => {
      this.#exit = { code, signal }
      this.#events.emit('exit', this.#exit)
      return this.#exit
    })
  }

  get url(): string {
    return `mqtt://${this.host}:${this.port}`
  }

  get running(): boolean {
    return this.#exit === undefined
  }

  /** The JSON records so far, optionally only those whose `msg` equals or matches `msg`. */
  records(msg?: string | RegExp): LogRecord[] {
    const out: LogRecord[] = []
    for (const { json } of this.lines) {
      if (json === undefined) continue
      if (msg === undefined || (typeof msg === 'string' ? json.msg === msg : msg.test(json.msg))) out.push(json)
    }
    return out
  }

  /** All of stdout as text, for "this string is never logged" checks. */
  stdoutText(): string {
    return this.lines.map((l) => l.text).join('\n')
  }

  /**
   * Resolves with the first record (already logged or still to come) for which `match` is true.
   * Rejects on timeout or when the process exits first.
   */
  waitForLog(match: (r: LogRecord) => boolean, timeoutMs = 5_000, what = 'a matching log line'): Promise<LogRecord> {
    const found = this.records().find(match)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer)
        this.#events.off('line', onLine)
        this.#events.off('exit', onExit)
      }
      const onLine = (line: LogLine): void => {
        if (line.json !== undefined && match(line.json)) {
          cleanup()
          resolve(line.json)
        }
      }
      const onExit = (exit: ExitResult): void => {
        cleanup()
        reject(new Error(`outpost exited (${JSON.stringify(exit)}) before ${what}; stderr: ${this.stderr}`))
      }
      const timer = setTimeout(() => {
        cleanup()
        reject(new Error(`no ${what} within ${timeoutMs} ms; last lines:\n${this.lines.slice(-10).map((l) => l.text).join('\n')}`))
      }, timeoutMs)
      this.#events.on('line', onLine)
      this.#events.on('exit', onExit)
      if (this.#exit !== undefined) onExit(this.#exit)
    })
  }

  /** Sends `signal` and waits for the exit; SIGKILLs and rejects if it takes longer than `timeoutMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5_000): Promise<ExitResult> {
    if (this.#exit !== undefined) return this.#exit
    this.child.kill(signal)
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs)
    })
    const result = await Promise.race([this.exited, timedOut])
    clearTimeout(timer)
    if (result === 'timeout') {
      this.child.kill('SIGKILL')
      await this.exited
      throw new Error(`outpost did not exit within ${timeoutMs} ms of ${signal}`)
    }
    return result
  }

  /** SIGKILL: the process gets no chance to close anything. */
  async kill(): Promise<ExitResult> {
    if (this.#exit !== undefined) return this.#exit
    this.child.kill('SIGKILL')
    return this.exited
  }
}

/** Spawns `node dist/src/cli.js ...` with piped output. */
export function spawnOutpost(args: readonly string[], cwd?: string): ChildProcess {
  return spawn(process.execPath, [OUTPOST_CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
}

/**
 * Starts outpost on a free port and resolves once it logs "outpost running". The process is
 * SIGKILLed (if still running) and its temp dir removed after the test. With `dataDir`, it
 * starts on an existing data dir (see {@link restartOutpost}).
 */
export async function startOutpost(t: TestContext, options: StartOptions = {}): Promise<OutpostProcess> {
  const dir = tempDir(t)
  const dataDir = options.dataDir ?? join(dir, 'data')
  // The free port can be taken between our probe and the child's listen; try a few.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    const args: string[] = []
    if (options.config !== undefined) {
      const file = join(dir, 'outpost.yaml')
      const doc = { listeners: [{ protocol: 'mqtt', port, bind: HOST }], data_dir: dataDir, log_level: 'info', ...options.config }
      writeFileSync(file, stringify(doc))
      args.push('--config', file)
    } else {
      args.push('--port', String(port), '--bind', HOST, '--data-dir', dataDir, '--log-level', 'info')
    }
    args.push(...(options.args ?? []))
    const proc = new OutpostProcess(spawnOutpost(args), port, dataDir)
    t.after(() => proc.kill())
    try {
      await proc.waitForLog((r) => r.msg === 'outpost running', options.startTimeoutMs ?? 10_000, '"outpost running"')
      return proc
    } catch (err) {
      await proc.kill()
      if (attempt < 3 && proc.stderr.includes('EADDRINUSE')) continue
      throw err
    }
  }
}

/**
 * Stops `previous` (SIGTERM: a clean shutdown; SIGKILL: a crash, nothing flushed or closed),
 * waits until it has exited, so its store is no longer open, and starts a new process on the
 * same data dir with the same options. The new process listens on a new free port.
 */
export async function restartOutpost(
  t: TestContext,
  previous: OutpostProcess,
  how: 'SIGTERM' | 'SIGKILL',
  options: StartOptions = {},
): Promise<OutpostProcess> {
  if (how === 'SIGKILL') await previous.kill()
  else await previous.stop('SIGTERM')
  return startOutpost(t, { ...options, dataDir: previous.dataDir })
}
