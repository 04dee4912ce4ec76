import { parseArgs } from 'node:util'
import { defaultConfig } from './config/defaults.js'
import type { ConfigOverrides } from './config/load.js'
import { logLevel, mismatch, nonEmptyString, port, type Rule } from './config/rules.js'
import { suggest } from './config/suggest.js'
import { OutpostError } from './errors.js'

/** What the command line asked for, with every flag value already checked. */
export type CliCommand =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'check-config'; file: string }
  | { kind: 'store-repair'; configFile: string | undefined; overrides: ConfigOverrides }
  | { kind: 'run'; configFile: string | undefined; overrides: ConfigOverrides; moveAsideStore: boolean }

/** A command-line mistake; the CLI prints it with a pointer to `--help` and exits 2. */
export class UsageError extends OutpostError {
  constructor(message: string) {
    super('OUTPOST_E_USAGE', message)
    this.name = 'UsageError'
  }
}

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  port: { type: 'string' },
  bind: { type: 'string' },
  'data-dir': { type: 'string' },
  'log-level': { type: 'string' },
  'move-aside-store': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const

const FLAG_NAMES = Object.keys(OPTIONS).map((name) => `--${name}`)
const SUBCOMMANDS = ['check-config', 'store']

function usageText(): string {
  const d = defaultConfig()
  const first = d.listeners[0]
  return `Usage:
  outpost [options]             run the gateway
  outpost check-config FILE     validate FILE; print "FILE: OK" (exit 0) or every problem (exit 1)
  outpost store repair          repair the store in data_dir (-c FILE or --data-dir DIR); Outpost must be stopped

Options:
  -c, --config FILE      YAML configuration file (default: built-in defaults)
      --port N           port of the first listener, 0..65535, 0 = any free port (default: ${first?.port ?? ''})
      --bind ADDR        bind address of the first listener (default: ${first?.bind ?? ''})
      --data-dir DIR     directory for persistent state (default: ${d.dataDir})
      --log-level LEVEL  ${logLevel.expected.replace(/^one of /, '')} (default: ${d.logLevel})
      --move-aside-store rename a store that cannot be opened to store.broken-<time> and start empty
  -h, --help             show this help and exit
      --version          print the version and exit

Command-line values override the configuration file.
Exit status: 0 success, 1 configuration or runtime error, 2 command-line error.
`
}

/** The text `outpost --help` prints. */
export const USAGE: string = usageText()

function checked<T>(flag: string, rule: Rule<T>, value: unknown): T {
  if (rule.accepts(value)) return value
  throw new UsageError(`${flag}: ${mismatch(rule, value)}`)
}

/** Flags arrive as text; only plain decimal digits become a number, so `--port 0x50` is refused as text. */
function portFlag(text: string): number {
  return checked('--port', port, /^\d+$/.test(text) ? Number(text) : text)
}

function rethrowParseError(err: unknown): never {
  if (err instanceof Error && 'code' in err && err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const flag = /'([^']+)'/.exec(err.message)?.[1]
    if (flag !== undefined) {
      const hint = flag.startsWith('--') ? suggest(flag, FLAG_NAMES) : undefined
      throw new UsageError(`unknown option ${flag}${hint === undefined ? '' : `; did you mean ${hint}?`}`)
    }
  }
  throw new UsageError(err instanceof Error ? err.message : String(err))
}

/**
 * Parses `process.argv.slice(2)`.
 *
 * @throws UsageError for unknown flags or subcommands, missing arguments, and bad values.
 */
export function parseCliArgs(argv: readonly string[]): CliCommand {
  let parsed
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true })
  } catch (err) {
    rethrowParseError(err)
  }
  const { values, positionals } = parsed
  if (values.help === true) return { kind: 'help' }
  if (values.version === true) return { kind: 'version' }

  const [command, ...rest] = positionals
  if (command === 'check-config') {
    const file = rest[0]
    if (file === undefined || rest.length > 1) throw new UsageError('check-config takes exactly one FILE')
    const extra = Object.keys(values)
    if (extra.length > 0) throw new UsageError(`check-config takes no options, got --${extra.join(', --')}`)
    return { kind: 'check-config', file: checked('check-config FILE', nonEmptyString, file) }
  }
  const overrides: ConfigOverrides = {}
  if (values.port !== undefined) overrides.port = portFlag(values.port)
  if (values.bind !== undefined) overrides.bind = checked('--bind', nonEmptyString, values.bind)
  if (values['data-dir'] !== undefined) overrides.dataDir = checked('--data-dir', nonEmptyString, values['data-dir'])
  if (values['log-level'] !== undefined) overrides.logLevel = checked('--log-level', logLevel, values['log-level'])
  const configFile = values.config === undefined ? undefined : checked('--config', nonEmptyString, values.config)
  if (command === 'store') {
    if (rest[0] !== 'repair' || rest.length > 1) throw new UsageError('store takes one action: repair')
    if (values['move-aside-store'] === true) throw new UsageError('store repair does not take --move-aside-store')
    return { kind: 'store-repair', configFile, overrides }
  }
  if (command !== undefined) {
    const hint = suggest(command, SUBCOMMANDS)
    throw new UsageError(`unknown command ${JSON.stringify(command)}${hint === undefined ? '' : `; did you mean ${hint}?`}`)
  }

  return { kind: 'run', configFile, overrides, moveAsideStore: values['move-aside-store'] === true }
}
