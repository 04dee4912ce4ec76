/**
 * systemd integration: the notify protocol (READY, WATCHDOG, STOPPING) with Outpost started the
 * way systemd/outpost.service starts it, the watchdog withheld while a component is wedged, and
 * the unit file itself (systemd-analyze verify, and the settings the design depends on).
 *
 * The test owns the NOTIFY_SOCKET datagram socket. Node cannot bind one, and socat cannot stand in
 * for PID 1: systemd-notify sends BARRIER=1 with a pipe after each message and waits until the
 * receiver closes it, and socat keeps the descriptor (every message then takes systemd-notify's
 * 5 s timeout and fails). So the receiver is a few lines of Debian's python3, which closes the
 * passed descriptors after reading each datagram, as PID 1 does.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { test, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { stringify } from 'yaml'
import { HealthMonitor } from '../src/health.js'
import { statusLine, SystemdNotifier, watchdogIntervalMs } from '../src/systemd/notify.js'
import { tcpGateway } from './helpers/broker.js'
import { wrapStore } from './helpers/hung-store.js'
import { LogCapture } from './helpers/log-capture.js'
import { freePort, OutpostProcess, tempDir } from './helpers/outpost-process.js'
import { waitOn } from './helpers/wait.js'

/** The repository root (this file runs from dist/test/): what /opt/outpost is on an installed box. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const UNIT_FILE = join(ROOT, 'systemd', 'outpost.service')
const SHIPPED_CONFIG = join(ROOT, 'systemd', 'outpost.yaml')

/** Binds the socket, then prints one JSON line per datagram; closes passed descriptors (BARRIER=1). */
const RECEIVER = String.raw`
import array, json, os, socket, struct, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(sys.argv[1])
print(json.dumps({"bound": True}), flush=True)
while True:
    data, anc, flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(64 * 4) + socket.CMSG_SPACE(12))
    pid, fds = None, []
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", cdata[:12])[0]
        elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(cdata[: len(cdata) - len(cdata) % a.itemsize])
            fds.extend(a)
    print(json.dumps({"at": time.time() * 1000, "pid": pid, "fields": data.decode("utf-8", "replace").split("\n")}), flush=True)
    for fd in fds:
        os.close(fd)
`

interface Datagram {
  /** Unix ms when the receiver read it. */
  readonly at: number
  /** The sender's PID from SCM_CREDENTIALS. */
  readonly pid: number | null
  readonly fields: readonly string[]
}

/** A NOTIFY_SOCKET of the test's own, receiving like PID 1 does. */
class NotifySocket {
  readonly path: string
  readonly datagrams: Datagram[] = []
  readonly #events = new EventEmitter()

  private constructor(path: string) {
    this.path = path
  }

  static async open(t: TestContext, path: string): Promise<NotifySocket> {
    const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'
    const child = spawn(python, ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'pipe'] })
    t.after(() => {
      child.kill('SIGKILL')
    })
    const sock = new NotifySocket(path)
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s
    })
    const bound = new Promise<void>((resolve, reject) => {
      child.on('error', (err) => reject(new Error(`cannot run ${python} for the NOTIFY_SOCKET receiver (install Debian's python3): ${err.message}`)))
      child.on('exit', (code) => reject(new Error(`the NOTIFY_SOCKET receiver exited (${code}): ${stderr}`)))
      createInterface({ input: child.stdout }).on('line', (line) => {
        const value = JSON.parse(line) as { bound?: boolean } & Datagram
        if (value.bound === true) resolve()
        else {
          sock.datagrams.push({ at: value.at, pid: value.pid, fields: value.fields })
          sock.#events.emit('datagram')
        }
      })
    })
    await bound
    return sock
  }

  /** Datagrams carrying `field` (e.g. "WATCHDOG=1"), optionally only those read after `since`. */
  with(field: string, since = 0): Datagram[] {
    return this.datagrams.filter((d) => d.fields.includes(field) && d.at > since)
  }

  until(check: () => boolean, what: string, timeoutMs = 5_000): Promise<true> {
    return waitOn(this.#events, 'datagram', () => (check() ? true : undefined), timeoutMs, () => `${what}; got ${JSON.stringify(this.datagrams.map((d) => d.fields))}`)
  }

  waitFor(field: string, timeoutMs = 10_000, since = 0): Promise<Datagram> {
    return waitOn(this.#events, 'datagram', () => this.with(field, since)[0], timeoutMs, () => `${field} on NOTIFY_SOCKET; got ${JSON.stringify(this.datagrams.map((d) => d.fields))}`)
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** The [Service] settings of the unit, each key with all its values in order. */
function serviceSettings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>()
  let section = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const header = /^\[(.+)\]$/.exec(line)
    if (header !== null) {
      section = header[1] ?? ''
      continue
    }
    if (section !== 'Service') continue
    const eq = line.indexOf('=')
    const key = line.slice(0, eq)
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)])
  }
  return out
}

function one(settings: Map<string, string[]>, key: string): string {
  const values = settings.get(key) ?? []
  assert.equal(values.length, 1, `${UNIT_FILE}: [Service] ${key}= should be set once, is ${JSON.stringify(values)}`)
  return values[0] ?? ''
}

/** A command line of the unit with the installed paths mapped onto this checkout and `config`. */
function localCommand(line: string, config: string): string[] {
  return line
    .split(/\s+/)
    .filter((w) => w !== '')
    .map((w) => {
      if (w === '/usr/bin/node') return process.execPath
      if (w === '/etc/outpost/outpost.yaml') return config
      if (w.startsWith('/opt/outpost/')) return join(ROOT, w.slice('/opt/outpost/'.length))
      return w
    })
}

test('watchdogIntervalMs: half of WATCHDOG_USEC, only for the watched process', () => {
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '30000000' }, 42), 15_000)
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '2000000', WATCHDOG_PID: '42' }, 42), 1_000)
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '2000000', WATCHDOG_PID: '43' }, 42), undefined)
  assert.equal(watchdogIntervalMs({}, 42), undefined)
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: 'soon' }, 42), undefined)
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '0' }, 42), undefined)
  assert.equal(SystemdNotifier.fromEnv({}, new LogCapture().logger), undefined)
  assert.equal(SystemdNotifier.fromEnv({ NOTIFY_SOCKET: '' }, new LogCapture().logger), undefined)
  assert.equal(SystemdNotifier.fromEnv({ NOTIFY_SOCKET: '/run/systemd/notify' }, new LogCapture().logger)?.socket, '/run/systemd/notify')
})

test('statusLine names what is wedged or not ok', () => {
  const c = (component: string, ok: boolean, wedged: boolean): { component: string; ok: boolean; wedged: boolean; detail: string } => ({ component, ok, wedged, detail: 'd' })
  assert.equal(statusLine({ healthy: true, wedged: false, checkedAt: 0, components: [c('broker', true, false)] }), 'running; all checks ok')
  assert.equal(
    statusLine({ healthy: false, wedged: true, checkedAt: 0, components: [c('store', false, true), c('serial:gps', false, false), c('broker', true, false)] }),
    'running; wedged: store (watchdog pings withheld); not ok: serial:gps',
  )
})

test('Outpost started as the unit starts it: READY=1 once listening, WATCHDOG=1 every WATCHDOG_USEC/2, STOPPING=1 on SIGTERM', async (t) => {
  const dir = tempDir(t)
  const sock = await NotifySocket.open(t, join(dir, 'notify.sock'))
  const settings = serviceSettings(readFileSync(UNIT_FILE, 'utf8'))
  const port = await freePort()
  const dataDir = join(dir, 'data')
  const config = join(dir, 'outpost.yaml')
  writeFileSync(config, stringify({ listeners: [{ protocol: 'mqtt', port, bind: '127.0.0.1' }], data_dir: dataDir, log_level: 'info' }))
  const argv = localCommand(one(settings, 'ExecStart'), config)
  const unitEnv: Record<string, string> = {}
  for (const e of settings.get('Environment') ?? []) for (const kv of e.split(/\s+/)) unitEnv[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1)
  // As systemd does: WATCHDOG_PID is the main process, which `exec` makes the shell's own PID.
  const child = spawn('/bin/sh', ['-c', 'WATCHDOG_PID=$$ exec "$@"', 'sh', ...argv], {
    env: { ...process.env, ...unitEnv, NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '2000000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const proc = new OutpostProcess(child, port, dataDir)
  t.after(() => proc.kill())

  // READY=1: at that moment the listener accepts connections, and "outpost running" (logged once
  // every listener is open) was written before the datagram was read.
  const ready = await sock.waitFor('READY=1', 15_000)
  await new Promise<void>((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      s.end()
      resolve()
    })
    s.on('error', (err) => reject(new Error(`READY=1 was sent but port ${port} refuses connections: ${err.message}`)))
  })
  const running = await proc.waitForLog((r) => r.msg === 'outpost running', 5_000, '"outpost running"')
  const runningAt = Date.parse(String(running.time))
  assert.ok(runningAt <= ready.at, `"outpost running" at ${String(running.time)}, READY=1 read at ${new Date(ready.at).toISOString()}`)
  assert.ok(ready.fields.includes(`STATUS=running; listening on 127.0.0.1:${port}`), JSON.stringify(ready.fields))
  assert.equal(sock.with('READY=1').length, 1)
  assert.deepEqual(sock.with('WATCHDOG=1', 0).filter((d) => d.at < ready.at), [], 'no WATCHDOG=1 before READY=1')

  // WATCHDOG_USEC=2 s: a ping about every second.
  await sleep(4_000)
  const pings = sock.with('WATCHDOG=1', ready.at).filter((d) => d.at <= ready.at + 4_000)
  assert.ok(pings.length >= 2 && pings.length <= 8, `${pings.length} WATCHDOG=1 in 4 s with WATCHDOG_USEC=2000000`)
  await sock.waitFor('STATUS=running; all checks ok', 5_000)

  const exit = await proc.stop('SIGTERM')
  assert.deepEqual(exit, { code: 0, signal: null })
  const stopping = await sock.waitFor('STOPPING=1', 5_000)
  assert.ok(stopping.at >= ready.at)
  // Each message is followed by systemd-notify's BARRIER=1 (no --no-block: it stays alive until
  // PID 1 has read the message, so PID 1 can attribute it), and each barrier completed with our
  // PID-1-like receiver: no systemd-notify failed.
  await sock.until(() => sock.with('BARRIER=1').length >= sock.datagrams.filter((d) => !d.fields.includes('BARRIER=1')).length, 'a BARRIER=1 after every message')
  assert.deepEqual(proc.records('systemd-notify failed'), [])
})

test('WATCHDOG=1 stops while the store is wedged and resumes when it is not', async (t) => {
  const dir = tempDir(t)
  const sock = await NotifySocket.open(t, join(dir, 'notify.sock'))
  const logs = new LogCapture()
  const { gateway } = await tcpGateway(t)
  const store = wrapStore(gateway.broker)
  t.after(() => store.release())
  const health = new HealthMonitor(gateway, logs.logger, { intervalMs: 100, wedgedAfterMs: 500, storeIntervalMs: 100 })
  t.after(() => health.stop())
  const notifier = new SystemdNotifier(sock.path, logs.logger)
  t.after(() => notifier.stopWatchdog())
  health.start()
  notifier.startWatchdog(200, health)
  for (let i = 0; sock.with('WATCHDOG=1').length < 3; i++) {
    if (i > 100) assert.fail(`fewer than 3 WATCHDOG=1 in 10 s: ${JSON.stringify(sock.datagrams)}`)
    await sleep(100)
  }

  store.hang()
  for (let i = 0; !health.report().wedged; i++) {
    if (i > 100) assert.fail(`not wedged 10 s after the store hung: ${JSON.stringify(health.report())}`)
    await sleep(50)
  }
  // A ping already on its way when the wedge was seen may still land; none after it.
  await notifier.flushed()
  const quietFrom = Date.now()
  await sleep(1_500)
  assert.deepEqual(sock.with('WATCHDOG=1', quietFrom), [], 'no WATCHDOG=1 while the store is wedged')
  assert.equal(logs.count((l) => l.msg === 'withholding systemd watchdog pings while a component is wedged'), 1)

  store.release()
  await sock.waitFor('WATCHDOG=1', 5_000, quietFrom)
  await logs.waitFor((l) => l.msg === 'component unstuck; systemd watchdog pings resume', 'the resume logged')
})

test('a STATUS= text cannot add fields: newlines become spaces', async (t) => {
  const dir = tempDir(t)
  const sock = await NotifySocket.open(t, join(dir, 'notify.sock'))
  const notifier = new SystemdNotifier(sock.path, new LogCapture().logger)
  notifier.status('not ok: serial:evil\nREADY=1')
  const d = await sock.waitFor('STATUS=not ok: serial:evil READY=1')
  assert.deepEqual(d.fields, ['STATUS=not ok: serial:evil READY=1'])
  await notifier.flushed()
  assert.deepEqual(sock.with('READY=1'), [])
})

test('without systemd-notify the notifier says so once, naming the package', async (t) => {
  const dir = tempDir(t)
  const logs = new LogCapture()
  const notifier = new SystemdNotifier(join(dir, 'notify.sock'), logs.logger, { command: join(dir, 'no-such-systemd-notify') })
  notifier.ready('running')
  notifier.status('running; all checks ok')
  await notifier.flushed()
  const errors = logs.lines.filter((l) => l.level === 50)
  assert.equal(errors.length, 1, JSON.stringify(logs.lines))
  assert.match(String(errors[0]?.msg), /no-such-systemd-notify not found \(package systemd\): systemd gets no READY, WATCHDOG or STOPPING/)
})

test('the unit: Type=notify with the watchdog, serial access kept, heap limit under MemoryMax', () => {
  const s = serviceSettings(readFileSync(UNIT_FILE, 'utf8'))
  assert.equal(one(s, 'Type'), 'notify')
  // The messages come from systemd-notify processes, not the main PID (src/systemd/notify.ts).
  assert.equal(one(s, 'NotifyAccess'), 'all')
  assert.match(one(s, 'WatchdogSec'), /^\d+s$/)
  assert.equal(one(s, 'Restart'), 'on-failure')
  assert.equal(one(s, 'User'), 'outpost')
  assert.match(one(s, 'SupplementaryGroups'), /\bdialout\b/)
  assert.equal(one(s, 'StateDirectory'), 'outpost')
  assert.equal(one(s, 'ConfigurationDirectory'), 'outpost')
  assert.equal(one(s, 'ExecReload'), '/bin/kill -HUP $MAINPID')
  assert.ok((s.get('Environment') ?? []).some((e) => e.split(/\s+/).includes('UV_USE_IO_URING=0')))
  assert.equal(one(s, 'ProtectSystem'), 'strict')
  // V8's JIT needs writable+executable memory; these would cut off /dev/tty*.
  for (const key of ['MemoryDenyWriteExecute', 'PrivateDevices', 'DevicePolicy', 'DeviceAllow', 'ProtectClock']) {
    assert.equal(s.get(key), undefined, `${key}= must not be set`)
  }
  const memoryMax = /^(\d+)M$/.exec(one(s, 'MemoryMax'))
  const heap = /--max-old-space-size=(\d+)/.exec(one(s, 'ExecStart'))
  assert.ok(memoryMax !== null && heap !== null, 'MemoryMax=<n>M and --max-old-space-size=<n> in ExecStart')
  const heapMb = Number(heap[1])
  const maxMb = Number(memoryMax[1])
  assert.ok(heapMb <= maxMb * 0.7, `V8 heap ${heapMb} MB leaves too little of MemoryMax ${maxMb} MB for memory outside the heap`)
})

test('systemd-analyze verify accepts the unit; its ExecStartPre accepts the shipped config', (t) => {
  const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((p) => existsSync(p))
  if (analyze === undefined) assert.fail('systemd-analyze not found: install the Debian package "systemd"')
  // A copy with /usr/bin/node and /opt/outpost mapped onto this machine: verify checks that the
  // programs it would run exist. The file name stays outpost.service (verify wants a unit name).
  const dir = tempDir(t)
  const copy = join(dir, 'outpost.service')
  const text = readFileSync(UNIT_FILE, 'utf8')
  writeFileSync(copy, text.replaceAll('/usr/bin/node', process.execPath).replaceAll('/opt/outpost/', `${ROOT}`))
  const r = spawnSync(analyze, ['verify', copy], { encoding: 'utf8' })
  // verify exits 0 on unknown keys and unparsable values, but says so on stderr.
  assert.deepEqual({ status: r.status, stderr: r.stderr.trim() }, { status: 0, stderr: '' })

  const pre = localCommand(one(serviceSettings(text), 'ExecStartPre'), SHIPPED_CONFIG)
  const check = spawnSync(pre[0] ?? '', pre.slice(1), { encoding: 'utf8' })
  assert.equal(check.status, 0, check.stderr)
  assert.equal(check.stdout, `${SHIPPED_CONFIG}: OK\n`)
})
