/**
 * Eclipse Mosquitto's command-line clients (Debian `mosquitto-clients`) as child processes, for
 * end-to-end tests against the outpost binary.
 *
 * mosquitto_sub block-buffers stdout into a pipe, so it runs under `stdbuf -oL` (coreutils, an
 * exec wrapper: the pid is mosquitto_sub's own) and with `-d`, whose "Subscribed" line tells us
 * the SUBACK is in without guessing with sleeps. It sends one SUBSCRIBE for all its `-t` filters,
 * so one such line covers them all.
 */
import * as assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { createInterface } from 'node:readline'
import type { TestContext } from 'node:test'
import type { ExitResult, OutpostProcess } from './outpost-process.js'

export const WAIT_MS = 5_000

function onPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const file = join(dir, command)
    try {
      accessSync(file, constants.X_OK)
      return file
    } catch {
      // not in this directory
    }
  }
  return undefined
}

const TOOLS = { sub: onPath('mosquitto_sub'), pub: onPath('mosquitto_pub'), stdbuf: onPath('stdbuf') }

/** CI installs these; a missing tool is a failure with instructions, never a silent skip. */
function requireTools(): { sub: string; pub: string; stdbuf: string } {
  const { sub, pub, stdbuf } = TOOLS
  assert.ok(sub !== undefined && pub !== undefined, 'mosquitto_sub/mosquitto_pub not found on PATH: install them (Debian/Ubuntu: apt-get install mosquitto-clients)')
  assert.ok(stdbuf !== undefined, 'stdbuf not found on PATH: install coreutils')
  return { sub, pub, stdbuf }
}

/** A client id no other test uses: `prefix-name-` and 8 random hex digits. */
export function uniqueId(name: string, prefix = 'e2e'): string {
  return `${prefix}-${name}-${randomUUID().slice(0, 8)}`
}

/** The fields every `-F` format of these tests prints. */
export interface SubMessage {
  qos: number
  retain: boolean
  topic: string
  payload: string
}

/** How a test file runs mosquitto_sub: extra arguments (such as `-V mqttv5`), and its `-F` output format with the parser for it. */
export interface SubFlavour<M extends SubMessage> {
  readonly args: readonly string[]
  /** One line per message, starting `MSG|` so it cannot be confused with `-d` debug lines. */
  readonly format: string
  /** The message on a line, or undefined for any other line. */
  parse(line: string): M | undefined
}

/** A running mosquitto_sub, with its stdout read line by line. */
export class MosquittoSub<M extends SubMessage> {
  readonly child: ChildProcess
  readonly lines: string[] = []
  readonly messages: M[] = []
  readonly exited: Promise<ExitResult>
  stderr = ''
  readonly #events = new EventEmitter()
  #exit: ExitResult | undefined

  constructor(child: ChildProcess, parse: (line: string) => M | undefined) {
    this.child = child
    const stdout = child.stdout
    if (stdout === null) throw new Error('mosquitto_sub must have piped stdout')
    child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      this.stderr += s
    })
    createInterface({ input: stdout, crlfDelay: Infinity }).on('line', (line) => {
      this.lines.push(line)
      const m = parse(line)
      if (m !== undefined) this.messages.push(m)
      this.#events.emit('change')
    })
    this.exited = new Promise((resolve) => {
      child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
        this.#exit = { code, signal }
        this.#events.emit('change')
        resolve(this.#exit)
      })
    })
  }

  /**
   * Starts `mosquitto_sub <flavour args> -d -F <format> args` against `broker`; killed after the
   * test. With `waitSubscribed` it resolves once the SUBACK (one for all `-t` filters) is in.
   */
  static async start<M extends SubMessage>(t: TestContext, broker: OutpostProcess, flavour: SubFlavour<M>, args: readonly string[], waitSubscribed = true): Promise<MosquittoSub<M>> {
    const tools = requireTools()
    const child = spawn(tools.stdbuf, ['-oL', tools.sub, '-h', broker.host, '-p', String(broker.port), ...flavour.args, '-d', '-F', flavour.format, '-W', '20', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const sub = new MosquittoSub(child, (line) => flavour.parse(line))
    t.after(() => sub.kill('SIGKILL'))
    if (waitSubscribed) await sub.waitUntil(() => sub.lines.some((l) => l.startsWith('Subscribed ')), 'SUBACK')
    return sub
  }

  waitUntil(check: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
    return new Promise((resolve, reject) => {
      const onChange = (): void => {
        if (check()) {
          done()
          resolve()
        } else if (this.#exit !== undefined) {
          done()
          reject(new Error(`mosquitto_sub exited (${JSON.stringify(this.#exit)}) before ${what}; stdout: ${this.lines.join('\n')} stderr: ${this.stderr}`))
        }
      }
      const done = (): void => {
        clearTimeout(timer)
        this.#events.off('change', onChange)
      }
      const timer = setTimeout(() => {
        done()
        reject(new Error(`no ${what} from mosquitto_sub within ${timeoutMs} ms; stdout: ${this.lines.join('\n')} stderr: ${this.stderr}`))
      }, timeoutMs)
      this.#events.on('change', onChange)
      onChange()
    })
  }

  async waitForMessage(match: (m: M) => boolean, what: string, timeoutMs = WAIT_MS): Promise<M> {
    let found: M | undefined
    await this.waitUntil(() => (found = this.messages.find(match)) !== undefined, what, timeoutMs)
    if (found === undefined) throw new Error(`unreachable: ${what} matched and vanished`)
    return found
  }

  /** Messages other than the sentinel. */
  get received(): M[] {
    return this.messages.filter((m) => m.payload !== 'sentinel')
  }

  async kill(signal: NodeJS.Signals): Promise<ExitResult> {
    if (this.#exit !== undefined) return this.#exit
    this.child.kill(signal)
    return this.exited
  }
}

/** Runs `mosquitto_pub args` to completion (feeding `input` on stdin, for -l or -s) and asserts it succeeded. */
export async function mosquittoPub(broker: OutpostProcess, args: readonly string[], input?: string): Promise<void> {
  const tools = requireTools()
  // stdin is a pipe only when there is input: writing to one mosquitto_pub never reads can fail with EPIPE.
  const child = spawn(tools.pub, ['-h', broker.host, '-p', String(broker.port), ...args], { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.setEncoding('utf8').on('data', (s: string) => { output += s })
  child.stderr?.setEncoding('utf8').on('data', (s: string) => { output += s })
  child.stdin?.end(input)
  const timer = setTimeout(() => child.kill('SIGKILL'), WAIT_MS)
  const [code] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.once('close', (c: number | null, s: NodeJS.Signals | null) => resolve([c, s]))
  })
  clearTimeout(timer)
  assert.equal(code, 0, `mosquitto_pub ${args.join(' ')} failed: ${output}`)
}
