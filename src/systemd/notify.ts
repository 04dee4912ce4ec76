/**
 * sd_notify(3) for a Node process: READY=1, STATUS=, WATCHDOG=1 and STOPPING=1 to systemd.
 *
 * How the messages are sent. The protocol is one datagram on the AF_UNIX SOCK_DGRAM socket named
 * by $NOTIFY_SOCKET, and Node cannot send one: `net` speaks only SOCK_STREAM (connect() on a
 * datagram socket fails with EPROTOTYPE) and `dgram` only UDP. A native addon (`unix-dgram`,
 * `sd-notify`) needs a compiler or a prebuild for every Pi; python3 or socat are not on every
 * image. So each message is sent by running systemd-notify(1), which is part of the `systemd`
 * package and therefore on every machine where NOTIFY_SOCKET can be set.
 *
 * Its limits, and what the unit has to say for it:
 * - The sender is the systemd-notify process, not Outpost's main PID. (It first tries to send
 *   with its parent's PID as the sender, which needs CAP_SYS_ADMIN; as the unprivileged outpost
 *   user that fails and it sends as itself.) So the unit needs NotifyAccess=all.
 * - A message from a process that has already exited may not be attributed to the unit by PID 1
 *   (it looks the sender's cgroup up by PID), and is then dropped. systemd-notify closes that race
 *   itself when run without --no-block (systemd >= 246; Debian 12 and Raspberry Pi OS bookworm
 *   have 252): after the message it sends BARRIER=1 with a pipe and waits, up to 5 s, until PID 1
 *   has closed it, i.e. has processed everything it sent before. We never pass --no-block.
 * - One short process per message: with WatchdogSec=30s that is one every 15 s, a few ms of CPU.
 *   Messages go one at a time, in order; a watchdog ping is not queued behind another one still
 *   waiting (the next tick sends a fresh one), and a systemd-notify that hangs is killed.
 */
import { spawn } from 'node:child_process'
import type { Logger } from 'pino'
import type { HealthMonitor, HealthReport } from '../health.js'

/** process.env or a test's own: NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID are read from it. */
export type NotifyEnvironment = Readonly<Record<string, string | undefined>>

export interface NotifierOptions {
  /** The program to run; default `systemd-notify` from PATH. */
  readonly command?: string
  /** A systemd-notify still running after this long is killed; default 10 s (its own barrier waits 5 s). */
  readonly timeoutMs?: number
}

/**
 * How often to send WATCHDOG=1: half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises.
 * Undefined when there is no watchdog, or when WATCHDOG_PID names another process (the variable
 * was inherited by a child of the service's main process, which is not the one watched).
 */
export function watchdogIntervalMs(env: NotifyEnvironment, pid: number = process.pid): number | undefined {
  const usec = env.WATCHDOG_USEC
  if (usec === undefined || !/^\d+$/.test(usec)) return undefined
  const watchedPid = env.WATCHDOG_PID
  if (watchedPid !== undefined && watchedPid !== '' && watchedPid !== String(pid)) return undefined
  const ms = Number(usec) / 1000 / 2
  return ms >= 1 ? ms : undefined
}

/**
 * One line for `systemctl status`: which components are not ok or wedged. Names only, so the
 * line (and a STATUS= message) changes when a component does, not with every backlog count.
 */
export function statusLine(report: HealthReport): string {
  const wedged = report.components.filter((c) => c.wedged).map((c) => c.component)
  const notOk = report.components.filter((c) => !c.ok && !c.wedged).map((c) => c.component)
  if (wedged.length === 0 && notOk.length === 0) return 'running; all checks ok'
  const parts: string[] = []
  if (wedged.length > 0) parts.push(`wedged: ${wedged.join(', ')} (watchdog pings withheld)`)
  if (notOk.length > 0) parts.push(`not ok: ${notOk.join(', ')}`)
  return `running; ${parts.join('; ')}`
}

/** A newline would end the field and start another (a port named "x\nREADY=1" must not say READY). */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ')
}

type Message = { readonly fields: readonly string[]; readonly watchdog: boolean }

export class SystemdNotifier {
  readonly socket: string
  readonly #log: Logger
  readonly #command: string
  readonly #timeoutMs: number
  readonly #queue: Message[] = []
  #sending = false
  #idle: Array<() => void> = []
  #watchdog: NodeJS.Timeout | undefined
  #withheld = false
  #lastStatus: string | undefined
  #missing = false

  constructor(socket: string, log: Logger, options: NotifierOptions = {}) {
    this.socket = socket
    this.#log = log
    this.#command = options.command ?? 'systemd-notify'
    this.#timeoutMs = options.timeoutMs ?? 10_000
  }

  /** A notifier when systemd asked for notifications (NOTIFY_SOCKET is set); undefined otherwise. */
  static fromEnv(env: NotifyEnvironment, log: Logger, options?: NotifierOptions): SystemdNotifier | undefined {
    const socket = env.NOTIFY_SOCKET
    return socket === undefined || socket === '' ? undefined : new SystemdNotifier(socket, log, options)
  }

  /** Start-up is complete: systemd marks the unit active and starts the units ordered after it. */
  ready(status: string): void {
    this.#lastStatus = status
    this.#enqueue({ fields: ['READY=1', `STATUS=${oneLine(status)}`], watchdog: false })
  }

  /** Sends STATUS= when `text` differs from the last one sent. */
  status(text: string): void {
    if (text === this.#lastStatus) return
    this.#lastStatus = text
    this.#enqueue({ fields: [`STATUS=${oneLine(text)}`], watchdog: false })
  }

  /**
   * Shutdown has begun. Sent at once, ahead of whatever waits (a watchdog ping does not matter
   * now), and the watchdog stops: the process may exit before another message would go.
   */
  stopping(): void {
    this.stopWatchdog()
    this.#queue.length = 0
    this.#run({ fields: ['STOPPING=1', 'STATUS=stopping'], watchdog: false })
  }

  /**
   * Sends WATCHDOG=1 now and every `intervalMs` while `health` does not report a wedged
   * component. While one is wedged no ping goes, so systemd's watchdog runs out and it restarts
   * Outpost; pings resume if the component comes unstuck before that.
   */
  startWatchdog(intervalMs: number, health: Pick<HealthMonitor, 'report'>): void {
    this.stopWatchdog()
    const tick = (): void => {
      const report = health.report()
      if (report.wedged) {
        if (!this.#withheld) {
          const wedged = report.components.filter((c) => c.wedged).map((c) => `${c.component}: ${c.detail}`)
          this.#log.error({ wedged }, 'withholding systemd watchdog pings while a component is wedged')
        }
        this.#withheld = true
        return
      }
      if (this.#withheld) this.#log.warn('component unstuck; systemd watchdog pings resume')
      this.#withheld = false
      if (this.#queue.some((m) => m.watchdog)) return
      this.#enqueue({ fields: ['WATCHDOG=1'], watchdog: true })
    }
    this.#watchdog = setInterval(tick, intervalMs)
    this.#watchdog.unref()
    tick()
  }

  stopWatchdog(): void {
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog)
    this.#watchdog = undefined
  }

  /** Resolves when every queued message has been handed over (for tests and an orderly exit). */
  flushed(): Promise<void> {
    if (!this.#sending && this.#queue.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  #enqueue(message: Message): void {
    this.#queue.push(message)
    if (!this.#sending) void this.#drain()
  }

  async #drain(): Promise<void> {
    this.#sending = true
    for (let m = this.#queue.shift(); m !== undefined; m = this.#queue.shift()) await this.#run(m)
    this.#sending = false
    const idle = this.#idle
    this.#idle = []
    for (const resolve of idle) resolve()
  }

  /** Runs systemd-notify once; resolves when it has exited (never rejects: failures are logged). */
  #run(message: Message): Promise<void> {
    return new Promise((resolve) => {
      let stderr = ''
      const child = spawn(this.#command, message.fields, {
        env: { ...process.env, NOTIFY_SOCKET: this.socket },
        stdio: ['ignore', 'ignore', 'pipe'],
      })
      const timer = setTimeout(() => child.kill('SIGKILL'), this.#timeoutMs)
      child.stderr.setEncoding('utf8').on('data', (s: string) => {
        stderr += s
      })
      let failed = false
      child.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer)
        failed = true
        // Said once: without the program every later message fails the same way.
        if (!this.#missing) {
          this.#missing = err.code === 'ENOENT'
          this.#log.error(
            { err, command: this.#command, message: message.fields },
            err.code === 'ENOENT' ? `${this.#command} not found (package systemd): systemd gets no READY, WATCHDOG or STOPPING` : 'could not run systemd-notify',
          )
        }
        resolve()
      })
      child.on('close', (code, signal) => {
        clearTimeout(timer)
        // After 'error' (not started), 'close' follows with a negative code: already logged.
        if (code !== 0 && !failed) this.#log.warn({ command: this.#command, message: message.fields, code, signal, stderr: stderr.trim() }, 'systemd-notify failed')
        resolve()
      })
    })
  }
}
