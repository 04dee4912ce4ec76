/**
 * Real serial lines for tests: pseudo-terminal pairs from `socat` and the emulated outpost-link
 * device from firmware-bridge/ (built by `npm test` before the suite runs).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { SerialPort } from 'serialport'
import { tempDir } from './outpost-process.js'

/** A temp dir for pty links, removed after the test. */
export const serialDir = (t: TestContext): string => tempDir(t, 'outpost-serial-')

export interface PtyPair {
  readonly a: string
  readonly b: string
  stop(): Promise<void>
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGKILL')
  await once(child, 'exit')
}

/** A pty pair whose ends are symlinks `<dir>/<a>` and `<dir>/<b>` (stable names, like /dev/serial/by-id). */
export async function ptyPair(t: TestContext, dir: string, names: [string, string] = ['ttyA', 'ttyB']): Promise<PtyPair> {
  const a = join(dir, names[0])
  const b = join(dir, names[1])
  const child: ChildProcess = spawn('socat', [`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], { stdio: 'ignore' })
  const stop = (): Promise<void> => stopChild(child)
  t.after(stop)
  const deadline = Date.now() + 3000
  while (!(existsSync(a) && existsSync(b))) {
    if (Date.now() > deadline) throw new Error('socat did not create the pty pair')
    await new Promise((r) => setTimeout(r, 20))
  }
  return { a, b, stop }
}

/** The far end of a pair, opened like a device would. */
export async function openPeer(t: TestContext, path: string): Promise<SerialPort> {
  const port = new SerialPort({ path, baudRate: 115200, autoOpen: false })
  await new Promise<void>((resolve, reject) => port.open((err) => (err === null ? resolve() : reject(err))))
  t.after(() => new Promise<void>((resolve) => (port.isOpen ? port.close(() => resolve()) : resolve())))
  port.on('error', () => undefined)
  return port
}

export const EMULATOR = fileURLToPath(new URL('../../../firmware-bridge/build/emulated_device', import.meta.url))

export interface Emulator {
  readonly child: ChildProcess
  /** Everything it logged (one line per event), for assertions and failure messages. */
  log(): string
  stop(): Promise<void>
}

/** Runs the emulated device on `path` with extra flags (`--interval 50` and the like). */
export function startEmulator(t: TestContext, path: string, args: readonly string[] = []): Emulator {
  if (!existsSync(EMULATOR)) throw new Error(`${EMULATOR} is missing: run \`make -C firmware-bridge emulator\` (npm test does)`)
  const child = spawn(EMULATOR, [...args, path], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr?.setEncoding('utf8').on('data', (s: string) => {
    log += s
    // Keep the tail only: a long test must not hold every line the device printed.
    if (log.length > 64_000) log = log.slice(-32_000)
  })
  const stop = (): Promise<void> => stopChild(child)
  t.after(stop)
  return { child, log: () => log, stop }
}
