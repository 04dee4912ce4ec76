#!/usr/bin/env -S node --max-semi-space-size=2
// The flag above (also in `npm start` and the benchmark) caps V8's young generation at 2 MB per
// semi-space: idle RSS drops by about 9 KB per connection (17 -> 7 KB). In `npm run bench` fan-in
// was unchanged and QoS 0 fan-out came out about 10 % lower (noisy); worth it on a Pi's memory.
import type { pino } from 'pino'
import { parseCliArgs, USAGE, UsageError, type CliCommand } from './cli-args.js'
import { ConfigError, formatProblem } from './config/config-error.js'
import { defaultConfig } from './config/defaults.js'
import { applyOverrides, loadConfigFile } from './config/load.js'
import type { OutpostConfig } from './config/types.js'
import { isOutpostError } from './errors.js'
import { HealthMonitor } from './health.js'
import { createLogger, LogRing } from './logger.js'
import { statusLine, SystemdNotifier, watchdogIntervalMs } from './systemd/notify.js'
import { readVersion } from './version.js'

type Gateway = Awaited<ReturnType<(typeof import('./gateway.js'))['startGateway']>>
type Figures = import('./http/sys-outpost.js').Figures
type HttpServerHandle = import('./http/server.js').HttpServerHandle

/** How long SIGTERM/SIGINT waits for a clean close; systemd's own stop timeout is longer. */
const SHUTDOWN_TIMEOUT_MS = 5_000

/** Exit status for command-line mistakes, as most Unix tools use it. */
const EXIT_USAGE = 2

/** Writes every problem of a config error, or the message of any other error, to stderr. */
function printError(err: unknown, summary?: string): void {
  if (err instanceof ConfigError) {
    const lines = err.problems.map(formatProblem)
    const count = `${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}`
    lines.push(`${summary ?? 'outpost'}: ${count} (${err.code})`)
    process.stderr.write(`${lines.join('\n')}\n`)
  } else if (isOutpostError(err)) {
    process.stderr.write(`outpost: ${err.message} (${err.code})\n`)
  } else {
    process.stderr.write(`outpost: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  }
}

function checkConfig(file: string): number {
  try {
    loadConfigFile(file)
  } catch (err) {
    printError(err, file)
    return 1
  }
  process.stdout.write(`${file}: OK\n`)
  return 0
}

/** `outpost store repair`: LevelDB's repair, then every record checked; prints what it did. */
async function repair(command: Extract<CliCommand, { kind: 'store-repair' }>): Promise<number> {
  try {
    const base = command.configFile === undefined ? defaultConfig() : loadConfigFile(command.configFile)
    const config = applyOverrides(base, command.overrides)
    const { repairStore } = await import('./store/level.js')
    const r = await repairStore(config.dataDir)
    process.stdout.write(
      `${r.location}: repaired; ${r.entries} queue entries in ${r.queues} queues kept, ${r.dropped} unreadable records dropped, ${r.cleared} records of deleted sessions cleared, ${r.unknown} unknown keys left alone\n`,
    )
    return 0
  } catch (err) {
    printError(err)
    return 1
  }
}

/**
 * Loads and validates everything before any port is opened, then starts the gateway and stays
 * up until a signal. Only returns (with an exit status) when it fails before starting.
 */
async function run(command: Extract<CliCommand, { kind: 'run' }>): Promise<number | undefined> {
  let config: OutpostConfig
  try {
    const base = command.configFile === undefined ? defaultConfig() : loadConfigFile(command.configFile)
    config = applyOverrides(base, command.overrides)
  } catch (err) {
    printError(err)
    return 1
  }

  // The dashboard's recent log lines; kept only when there is a dashboard to show them.
  const logLines = new LogRing()
  const log = createLogger(config.logLevel, undefined, config.http?.passwordFile === undefined ? undefined : logLines)
  // Under systemd, exiting lets Restart= bring up a clean process; limping on after an unknown
  // failure could leave a listener open with a broken broker behind it. Node 20 also routes
  // unhandled rejections here.
  process.on('uncaughtException', (err, origin) => {
    log.fatal({ err, origin }, 'uncaught exception, exiting')
    process.exit(1)
  })
  log.info({ version: readVersion(), configFile: command.configFile ?? null, config }, 'starting outpost')

  // Importing the gateway here, not at the top, keeps --help, --version and check-config from
  // loading the broker, the store and their dependencies.
  const starting: Promise<Gateway> = import('./gateway.js').then((m) => m.startGateway(config, log, { moveAsideStore: command.moveAsideStore }))
  // Only under systemd (Type=notify sets NOTIFY_SOCKET); see src/systemd/notify.ts.
  const notifier = SystemdNotifier.fromEnv(process.env, log.child({ component: 'systemd' }))
  let health: HealthMonitor | undefined
  let figures: Figures | undefined
  let http: HttpServerHandle | undefined
  let shuttingDown = false
  installReloadHandler(log, starting, command)
  installSignalHandlers(log, starting, () => {
    shuttingDown = true
    notifier?.stopping()
    // Before the gateway closes: its checks would otherwise fail against a closing broker.
    health?.stop()
    figures?.stop()
    void http?.close()
  })

  let gw: Gateway
  try {
    gw = await starting
  } catch (err) {
    log.fatal({ err }, 'could not start')
    // Also in plain words on stderr, for whoever ran it by hand and is not reading JSON.
    printError(err)
    // A half-started gateway may still hold handles (an open store, one of two listeners).
    process.exit(1)
  }
  log.info({ addresses: gw.addresses() }, 'outpost running')
  // A signal during startup: the gateway is closing already.
  if (shuttingDown) return undefined
  const monitor = new HealthMonitor(gw, log.child({ component: 'health' }))
  health = monitor
  monitor.start()
  // `$SYS/outpost` always (every sys_interval), the HTTP endpoint when configured; both read the
  // same samples. Imported here, like the gateway, so the short commands do not load them.
  const httpLog = log.child({ component: 'http' })
  const { startFigures } = await import('./http/sys-outpost.js')
  figures = startFigures({ gateway: gw, dataDir: config.dataDir, log: httpLog, health: () => monitor.report() })
  if (config.http !== undefined) {
    const { startHttpServer } = await import('./http/server.js')
    try {
      http = await startHttpServer({ config: config.http, gateway: gw, health: monitor, log: httpLog, logLines, telemetry: figures.telemetry })
    } catch (err) {
      log.fatal({ err }, 'could not start')
      printError(err)
      process.exit(1)
    }
  }
  // A signal while the HTTP server started: STOPPING=1 went out already; no READY=1 after it.
  if (notifier !== undefined && !shuttingDown) {
    // READY=1 only now that every listener is open (startGateway resolves after listen()), the
    // HTTP one included.
    notifier.ready(`running; listening on ${gw.addresses().map((a) => `${a.address}:${a.port}`).join(', ')}`)
    health.onReport((r) => notifier.status(statusLine(r)))
    const watchdogMs = watchdogIntervalMs(process.env)
    if (watchdogMs !== undefined) notifier.startWatchdog(watchdogMs, health)
  }
  return undefined
}

/**
 * First SIGTERM/SIGINT: close cleanly and exit 0. A second signal, or a close that takes longer
 * than SHUTDOWN_TIMEOUT_MS, exits 1 at once so a stuck close cannot block a reboot.
 */
function installSignalHandlers(log: pino.Logger, starting: Promise<Gateway>, onShutdown: () => void): void {
  let stopping = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal during shutdown, exiting now')
      process.exit(1)
    }
    stopping = true
    log.info({ signal }, 'shutting down')
    onShutdown()
    setTimeout(() => {
      log.error({ code: 'OUTPOST_E_SHUTDOWN_TIMEOUT', timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'shutdown did not finish in time, exiting')
      process.exit(1)
    }, SHUTDOWN_TIMEOUT_MS)
    // A signal during startup waits for the gateway to be up, so close() sees a whole gateway.
    starting
      .then((gw) => gw.close(`received ${signal}`))
      .then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'shutdown failed')
          process.exit(1)
        },
      )
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
}

/**
 * SIGHUP (`systemctl reload`) reloads without dropping clients. With `--config FILE` the file is
 * read and validated again, with the same command-line overrides, and what changed is applied
 * (reload.ts; an invalid file changes nothing and every problem is logged). Without one, the
 * listeners' TLS certificates, password and ACL files are read again.
 */
function installReloadHandler(log: pino.Logger, starting: Promise<Gateway>, command: Extract<CliCommand, { kind: 'run' }>): void {
  process.on('SIGHUP', () => {
    const file = command.configFile
    if (file === undefined) {
      void starting.then((gw) => gw.reload()).catch((err: unknown) => log.error({ err }, 'reload failed; the settings that failed to load stay as they were'))
      return
    }
    void Promise.all([starting, import('./reload.js')])
      .then(([gw, { reloadFromFile }]) => reloadFromFile(gw, file, command.overrides, log))
      .catch((err: unknown) => log.error({ err }, 'reload failed'))
  })
}

async function main(argv: readonly string[]): Promise<number | undefined> {
  let command: CliCommand
  try {
    command = parseCliArgs(argv)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`outpost: ${err.message}\nRun 'outpost --help' for usage.\n`)
    return EXIT_USAGE
  }
  switch (command.kind) {
    case 'help':
      process.stdout.write(USAGE)
      return 0
    case 'version':
      process.stdout.write(`outpost ${readVersion()}\n`)
      return 0
    case 'check-config':
      return checkConfig(command.file)
    case 'store-repair':
      return repair(command)
    case 'passwd': {
      // Imported here, like the gateway, so other commands do not load it.
      const { runPasswd } = await import('./auth/passwd-command.js')
      return runPasswd(command, (err) => printError(err))
    }
    case 'run':
      return run(command)
  }
}

// exitCode rather than exit() for the short commands, so piped stdout is flushed before we go.
main(process.argv.slice(2)).then(
  (code) => {
    if (code !== undefined) process.exitCode = code
  },
  (err: unknown) => {
    printError(err)
    process.exitCode = 1
  },
)
