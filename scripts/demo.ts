/**
 * `npm run demo`: the serial bridge without hardware. socat makes a pseudo-terminal pair, the
 * emulated outpost-link device from firmware-bridge/ talks on one end, Outpost reads the other,
 * and the device's readings become MQTT messages. Ctrl-C stops everything and removes the temp dir.
 *
 *   node dist/scripts/demo.js [--port N]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const HOST = '127.0.0.1'
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const EMULATOR = join(ROOT, 'firmware-bridge', 'build', 'emulated_device')
/** Keys of Outpost's JSON log lines that say nothing to someone watching the demo. */
const QUIET_KEYS = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'version', 'config', 'configFile', 'component'])

const children: ChildProcess[] = []
let dir: string | undefined
let stopping = false
/** Set from Outpost's log: waiting on these rather than probing the port keeps the log free of a fake client. */
let outpostRunning = false
let deviceOnline = false

function installed(command: string, versionFlag: string): boolean {
  return spawnSync(command, [versionFlag], { stdio: 'ignore' }).error === undefined
}

function portFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer()
    server.once('error', () => done(false))
    server.listen(port, HOST, () => server.close(() => done(true)))
  })
}

async function waitFor(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!check()) {
    if (stopping) throw new Error('stopped')
    if (Date.now() > deadline) throw new Error(`${what} did not happen within 10 s`)
    await sleep(50)
  }
}

/** Outpost's JSON log line as "info device said hello port=demo device=emulated-1 ...". */
function outpostLine(line: string): string {
  let entry: unknown
  try {
    entry = JSON.parse(line)
  } catch {
    return line
  }
  if (typeof entry !== 'object' || entry === null) return line
  const extra = Object.entries(entry)
    .filter(([key]) => !QUIET_KEYS.has(key))
    .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
  const level = 'level' in entry ? String(entry.level) : ''
  const msg = 'msg' in entry ? String(entry.msg) : ''
  if (msg === 'outpost running') outpostRunning = true
  if (msg === 'device availability' && 'online' in entry && entry.online === true) deviceOnline = true
  return [level, msg, ...extra].join(' ')
}

/** Spawns a child in its own process group, so a Ctrl-C reaches only us and we stop it in order. */
function start(label: string, command: string, args: readonly string[], show: (line: string) => string | undefined): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  children.push(child)
  for (const stream of [child.stdout, child.stderr]) {
    if (stream === null) continue
    createInterface({ input: stream }).on('line', (line) => {
      const text = show(line)
      if (text !== undefined) process.stdout.write(`${label.padEnd(8)}| ${text}\n`)
    })
  }
  const died = (why: string): void => {
    if (stopping) return
    process.stderr.write(`\n${label} ${why}; stopping the demo\n`)
    void stop(1)
  }
  child.once('error', (err) => died(`could not start: ${err.message}`))
  child.once('exit', (code, signal) => died(`exited (${signal ?? `code ${String(code)}`})`))
  return child
}

async function stop(code: number): Promise<void> {
  if (stopping) return
  stopping = true
  // The device first, then Outpost (it marks the device offline), then the line under both.
  for (const child of [...children].reverse()) {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) continue
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    const inTime = await Promise.race([exited.then(() => true), sleep(3000, false)])
    if (!inTime) child.kill('SIGKILL')
  }
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  process.exit(code)
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '1883' }, help: { type: 'boolean', short: 'h' } } })
  if (values.help === true) return void process.stdout.write('usage: npm run demo [-- --port N]   (MQTT port, default 1883)\n')
  const port = Number(values.port)
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--port: expected 1..65535, got ${values.port}`)
  if (!installed('socat', '-V')) throw new Error('socat is not installed; it makes the virtual serial port. Install it with: sudo apt-get install socat')
  if (!existsSync(EMULATOR)) {
    if (!installed('make', '--version') || !installed('cc', '--version')) throw new Error('building the emulated device needs make and a C compiler: sudo apt-get install build-essential')
    process.stdout.write('building the emulated device (make -C firmware-bridge emulator) ...\n')
    const built = spawnSync('make', ['-C', join(ROOT, 'firmware-bridge'), 'emulator'], { stdio: 'inherit' })
    if (built.status !== 0 || !existsSync(EMULATOR)) throw new Error('make -C firmware-bridge emulator failed (see above)')
  }
  if (!(await portFree(port))) throw new Error(`port ${port} is in use (a Mosquitto service?); try: npm run demo -- --port ${port + 1}`)

  const tmp = mkdtempSync(join(tmpdir(), 'outpost-demo-'))
  dir = tmp
  const outpostTty = join(tmp, 'ttyOutpost')
  const deviceTty = join(tmp, 'ttyDevice')
  start('socat', 'socat', [`pty,raw,echo=0,link=${outpostTty}`, `pty,raw,echo=0,link=${deviceTty}`], (line) => line)
  await waitFor(() => existsSync(outpostTty) && existsSync(deviceTty), 'socat creating the pty pair')

  const config = join(tmp, 'outpost.yaml')
  // JSON strings are YAML double-quoted strings: safe whatever the temp dir is called.
  const yaml = `listeners:
  - { port: ${port}, bind: ${HOST} }
data_dir: ${JSON.stringify(join(tmp, 'data'))}
serial:
  - name: demo
    path: ${JSON.stringify(outpostTty)}
    framing: outpost-link
    baud_rate: 115200
    output: both
`
  writeFileSync(config, yaml)
  start('outpost', process.execPath, [join(ROOT, 'dist', 'src', 'cli.js'), '--config', config, '--log-level', 'info'], outpostLine)
  await waitFor(() => outpostRunning, `Outpost starting on ${HOST}:${port}`)
  // Periodic DATA and PING lines would bury the instructions; mosquitto_sub shows the readings.
  start('device', EMULATOR, ['--interval', '1000', deviceTty], (line) => (/ tx (DATA|PING) /.test(line) ? undefined : line))
  await waitFor(() => deviceOnline, 'the device saying hello')

  const clients = installed('mosquitto_sub', '--help') ? '' : '\n  (mosquitto_sub / mosquitto_pub: sudo apt-get install mosquitto-clients)'
  process.stdout.write(
    [
      '',
      `Outpost is listening on ${HOST}:${port}; an emulated device sends a reading every second on a virtual serial port.`,
      `Config (${config}):`,
      ...yaml.trimEnd().split('\n').map((l) => `    ${l}`),
      'Try, in another terminal:',
      `  mosquitto_sub -h ${HOST} -p ${port} -t 'sensors/#' -v                     # readings, availability, command results`,
      `  mosquitto_pub -h ${HOST} -p ${port} -t sensors/emulated-1/set/led -m on   # the ACK arrives on sensors/emulated-1/response`,
      `  mosquitto_sub -h ${HOST} -p ${port} -t 'outpost/serial/#' -v              # the serial port's state${clients}`,
      'Ctrl-C stops everything and removes the temp dir.',
      '',
    ].join('\n'),
  )
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(0))
// Last resort if we die without stop(): no child or temp dir left behind.
process.on('exit', () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

try {
  await main()
} catch (err) {
  if (!stopping) {
    process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`)
    await stop(1)
  }
}
