/**
 * End-to-end: the compiled `outpost` binary against Eclipse Mosquitto's own command-line
 * clients (Debian `mosquitto-clients`), the tools operators reach for first.
 *
 * mosquitto_sub block-buffers stdout into a pipe, so it runs under `stdbuf -oL` (coreutils, an
 * exec wrapper: the pid is mosquitto_sub's own) and with `-d`, whose "Subscribed" line tells us
 * the SUBACK is in without guessing with sleeps.
 */
import * as assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { createInterface } from 'node:readline'
import { describe, test, type TestContext } from 'node:test'
import { startOutpost, type ExitResult, type OutpostProcess } from './helpers/outpost-process.js'

const WAIT_MS = 5_000

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

function uniqueId(name: string): string {
  return `e2e-${name}-${randomUUID().slice(0, 8)}`
}

interface SubMessage {
  qos: number
  retain: boolean
  topic: string
  payload: string
}

/** `-F` format: one line per message, marked so it cannot be confused with `-d` debug lines. */
const FORMAT = 'MSG|%q|%r|%t|%p'

function parseMessage(line: string): SubMessage | undefined {
  if (!line.startsWith('MSG|')) return undefined
  const [, qos, retain, topic, ...payload] = line.split('|')
  return { qos: Number(qos), retain: retain === '1', topic: topic ?? '', payload: payload.join('|') }
}

/** A running mosquitto_sub, with its stdout read line by line. */
class MosquittoSub {
  readonly child: ChildProcess
  readonly lines: string[] = []
  readonly messages: SubMessage[] = []
  readonly exited: Promise<ExitResult>
  stderr = ''
  readonly #events = new EventEmitter()
  #exit: ExitResult | undefined

  constructor(child: ChildProcess) {
    this.child = child
    const stdout = child.stdout
    if (stdout === null) throw new Error('mosquitto_sub must have piped stdout')
    child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      this.stderr += s
    })
    createInterface({ input: stdout, crlfDelay: Infinity }).on('line', (line) => {
      this.lines.push(line)
      const m = parseMessage(line)
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
   * Starts `mosquitto_sub -d -F ... args` against `broker`; killed after the test. With
   * `waitSubscribed` it resolves once the SUBACKs are in.
   */
  static async start(t: TestContext, broker: OutpostProcess, args: readonly string[], waitSubscribed = true): Promise<MosquittoSub> {
    const tools = requireTools()
    const child = spawn(tools.stdbuf, ['-oL', tools.sub, '-h', broker.host, '-p', String(broker.port), '-d', '-F', FORMAT, '-W', '20', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const sub = new MosquittoSub(child)
    t.after(() => sub.kill('SIGKILL'))
    if (waitSubscribed) {
      const topics = args.filter((_, i) => args[i - 1] === '-t').length
      await sub.waitUntil(() => sub.lines.filter((l) => l.startsWith('Subscribed ')).length >= topics, 'SUBACK')
    }
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

  async waitForMessage(match: (m: SubMessage) => boolean, what: string): Promise<SubMessage> {
    let found: SubMessage | undefined
    await this.waitUntil(() => (found = this.messages.find(match)) !== undefined, what)
    if (found === undefined) throw new Error(`unreachable: ${what} matched and vanished`)
    return found
  }

  async kill(signal: NodeJS.Signals): Promise<ExitResult> {
    if (this.#exit !== undefined) return this.#exit
    this.child.kill(signal)
    return this.exited
  }
}

/** Runs mosquitto_pub to completion and asserts it succeeded. */
async function mosquittoPub(broker: OutpostProcess, args: readonly string[]): Promise<void> {
  const tools = requireTools()
  const child = spawn(tools.pub, ['-h', broker.host, '-p', String(broker.port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { output += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { output += s })
  const timer = setTimeout(() => child.kill('SIGKILL'), WAIT_MS)
  const [code] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.once('close', (c: number | null, s: NodeJS.Signals | null) => resolve([c, s]))
  })
  clearTimeout(timer)
  assert.equal(code, 0, `mosquitto_pub ${args.join(' ')} failed: ${output}`)
}

const VERSIONS = [
  { flag: 'mqttv311', level: 4 },
  { flag: 'mqttv31', level: 3 },
] as const

describe('e2e: mosquitto_pub / mosquitto_sub against the outpost binary', () => {
  for (const v of VERSIONS) {
    for (const qos of [0, 1, 2] as const) {
      test(`QoS ${qos} round trip with -q ${qos} -V ${v.flag}`, async (t) => {
        const broker = await startOutpost(t)
        const id = uniqueId(`sub-q${qos}`)
        const sub = await MosquittoSub.start(t, broker, ['-V', v.flag, '-i', id, '-q', String(qos), '-t', 'mq/rt'])
        await mosquittoPub(broker, ['-V', v.flag, '-q', String(qos), '-t', 'mq/rt', '-m', `hello ${qos}`])
        const m = await sub.waitForMessage((x) => x.topic === 'mq/rt', 'the message')
        assert.deepEqual(m, { qos, retain: false, topic: 'mq/rt', payload: `hello ${qos}` })
        const line = await broker.waitForLog((r) => r.msg === 'client connected' && r.clientId === id, WAIT_MS, 'connect line')
        assert.equal(line.protocolVersion, v.level)
      })
    }
  }

  test('retained with -r: delivered to a later subscriber with the retain flag [MQTT-3.3.1-8], cleared by -r -n [MQTT-3.3.1-10]', async (t) => {
    const broker = await startOutpost(t)
    await mosquittoPub(broker, ['-q', '1', '-r', '-t', 'mq/ret', '-m', 'kept'])
    const late = await MosquittoSub.start(t, broker, ['-q', '1', '-t', 'mq/ret'], false)
    const m = await late.waitForMessage((x) => x.topic === 'mq/ret', 'retained message')
    assert.deepEqual(m, { qos: 1, retain: true, topic: 'mq/ret', payload: 'kept' })

    await mosquittoPub(broker, ['-q', '1', '-r', '-n', '-t', 'mq/ret'])
    const after = await MosquittoSub.start(t, broker, ['-q', '1', '-t', 'mq/ret'])
    await mosquittoPub(broker, ['-q', '1', '-t', 'mq/ret', '-m', 'sentinel'])
    await after.waitForMessage((x) => x.payload === 'sentinel', 'sentinel')
    assert.deepEqual(after.messages.map((x) => x.payload), ['sentinel'], 'no retained message left after -r -n')
  })

  test('will from --will-topic/--will-payload is published when mosquitto_sub is killed [MQTT-3.1.2-8]', async (t) => {
    const broker = await startOutpost(t)
    const watcher = await MosquittoSub.start(t, broker, ['-q', '1', '-t', 'mq/will'])
    const id = uniqueId('dying')
    const dying = await MosquittoSub.start(t, broker, ['-i', id, '-t', 'mq/other', '--will-topic', 'mq/will', '--will-payload', 'killed', '--will-qos', '1'])
    await dying.kill('SIGKILL')
    const m = await watcher.waitForMessage((x) => x.topic === 'mq/will', 'will message')
    assert.deepEqual(m, { qos: 1, retain: false, topic: 'mq/will', payload: 'killed' })
  })

  test('persistent session with -c -i: a QoS 1 message published while offline arrives on restart [MQTT-3.2.2-2]', async (t) => {
    const broker = await startOutpost(t)
    const id = uniqueId('persist')
    const args = ['-c', '-i', id, '-q', '1', '-t', 'mq/persist']
    const first = await MosquittoSub.start(t, broker, args)
    // SIGTERM: mosquitto_sub sends DISCONNECT, the session stays.
    await first.kill('SIGTERM')
    await broker.waitForLog((r) => r.msg === 'client disconnected' && r.clientId === id, WAIT_MS, 'disconnect line')
    await mosquittoPub(broker, ['-q', '1', '-t', 'mq/persist', '-m', 'while you were out'])

    const again = await MosquittoSub.start(t, broker, [...args, '-C', '1'], false)
    const m = await again.waitForMessage((x) => x.topic === 'mq/persist', 'queued message')
    assert.deepEqual(m, { qos: 1, retain: false, topic: 'mq/persist', payload: 'while you were out' })
    // The broker's stdout is another pipe than mosquitto_sub's: its line may be read later.
    const connects = (): unknown[] => broker.records('client connected').filter((r) => r.clientId === id).map((r) => r.sessionPresent)
    await broker.waitForLog(() => connects().length >= 2, WAIT_MS, 'second connect line')
    assert.deepEqual(connects(), [false, true])
    assert.equal((await again.exited).code, 0, '-C 1 exits after the message')
  })
})
