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
import { createLogger } from './logger.js'
import { readVersion } from './version.js'

type Gateway = Awaited<ReturnType<(typeof import('./gateway.js'))['startGateway']>>

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

  const log = createLogger(config.logLevel)
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
  installSignalHandlers(log, starting)

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
  return undefined
}

/**
 * First SIGTERM/SIGINT: close cleanly and exit 0. A second signal, or a close that takes longer
 * than SHUTDOWN_TIMEOUT_MS, exits 1 at once so a stuck close cannot block a reboot.
 */
function installSignalHandlers(log: pino.Logger, starting: Promise<Gateway>): void {
  let stopping = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal during shutdown, exiting now')
      process.exit(1)
    }
    stopping = true
    log.info({ signal }, 'shutting down')
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
  // SIGHUP reloads what can change under a running gateway without dropping clients: the
  // listeners' TLS certificates, password and ACL files (issue 8 adds the rest of the config).
  process.on('SIGHUP', () => {
    void starting.then((gw) => gw.reload()).catch((err: unknown) => log.error({ err }, 'reload failed; the settings that failed to load stay as they were'))
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
