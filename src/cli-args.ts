import { parseArgs } from 'node:util'
import { defaultConfig } from './config/defaults.js'
import type { ConfigOverrides } from './config/load.js'
import { logLevel, mismatch, nonEmptyString, port, type Rule } from './config/rules.js'
import { suggest } from './config/suggest.js'
import { DEFAULT_ITERATIONS, MAX_ITERATIONS, usernameProblem } from './auth/passwd.js'
import { OutpostError } from './errors.js'

/** What the command line asked for, with every flag value already checked. */
export type CliCommand =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'check-config'; file: string }
  | { kind: 'store-repair'; configFile: string | undefined; overrides: ConfigOverrides }
  | PasswdCommand
  | { kind: 'run'; configFile: string | undefined; overrides: ConfigOverrides; moveAsideStore: boolean }

/**
 * `outpost passwd`: add or change USER in FILE (`password` from `-b`, else prompted), or delete it.
 * `iterations` is undefined unless -I was given.
 */
export interface PasswdCommand {
  kind: 'passwd'
  file: string
  user: string
  action: { kind: 'set'; password: string | undefined; create: boolean; iterations: number | undefined } | { kind: 'delete' }
}

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
const SUBCOMMANDS = ['check-config', 'store', 'passwd']

/** mosquitto_passwd's flags (-c -b -D -I); `-c` means create here, not --config. */
const PASSWD_OPTIONS = {
  create: { type: 'boolean', short: 'c' },
  batch: { type: 'boolean', short: 'b' },
  delete: { type: 'boolean', short: 'D' },
  iterations: { type: 'string', short: 'I' },
  help: { type: 'boolean', short: 'h' },
} as const

function usageText(): string {
  const d = defaultConfig()
  const first = d.listeners[0]
  return `Usage:
  outpost [options]             run the gateway
  outpost check-config FILE     validate FILE; print "FILE: OK" (exit 0) or every problem (exit 1)
  outpost store repair          repair the store in data_dir (-c FILE or --data-dir DIR); Outpost must be stopped
  outpost passwd [-c] [-b] [-D] [-I N] FILE USER [PASSWORD]
                                add or change USER in a Mosquitto-format password FILE; prompts for
                                the password (or reads one line from a pipe), -b takes it from the
                                command line; -c creates (overwrites) FILE, -D deletes USER,
                                -I N hashes with N PBKDF2 iterations (default ${DEFAULT_ITERATIONS})

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
  // passwd has flags of its own, mosquitto_passwd's, so it is parsed apart: `-c` is "create".
  if (argv[0] === 'passwd') return parsePasswdArgs(argv.slice(1))
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
  if (command === 'passwd') throw new UsageError('passwd must come first: outpost passwd [-c] [-b] [-D] [-I N] FILE USER [PASSWORD]')
  if (command !== undefined) {
    const hint = suggest(command, SUBCOMMANDS)
    throw new UsageError(`unknown command ${JSON.stringify(command)}${hint === undefined ? '' : `; did you mean ${hint}?`}`)
  }

  return { kind: 'run', configFile, overrides, moveAsideStore: values['move-aside-store'] === true }
}

function parsePasswdArgs(argv: readonly string[]): CliCommand {
  let parsed
  try {
    parsed = parseArgs({ args: [...argv], options: PASSWD_OPTIONS, allowPositionals: true, strict: true })
  } catch (err) {
    rethrowParseError(err)
  }
  const { values, positionals } = parsed
  if (values.help === true) return { kind: 'help' }
  const [file, user, password, ...extra] = positionals
  if (file === undefined || user === undefined) throw new UsageError('passwd needs FILE and USER')
  if (extra.length > 0) throw new UsageError(`passwd takes at most FILE USER PASSWORD, got ${positionals.length} arguments`)
  checked('passwd FILE', nonEmptyString, file)
  const problem = usernameProblem(user)
  if (problem !== undefined) throw new UsageError(`passwd USER ${JSON.stringify(user)} ${problem}`)
  if (values.delete === true) {
    for (const flag of ['create', 'batch', 'iterations'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`passwd -D cannot be combined with -${PASSWD_OPTIONS[flag].short}`)
    }
    if (password !== undefined) throw new UsageError('passwd -D takes no PASSWORD')
    return { kind: 'passwd', file, user, action: { kind: 'delete' } }
  }
  if (values.batch === true && password === undefined) throw new UsageError('passwd -b needs PASSWORD after FILE USER')
  // Without -b a password on the command line is most likely a mistake: it lands in shell history.
  if (values.batch !== true && password !== undefined) throw new UsageError('passwd takes PASSWORD on the command line only with -b; leave it out to be prompted')
  if (password === '') throw new UsageError('passwd -b: the password must not be empty')
  let iterations: number | undefined
  if (values.iterations !== undefined) {
    iterations = /^\d+$/.test(values.iterations) ? Number(values.iterations) : Number.NaN
    if (!(iterations >= 1 && iterations <= MAX_ITERATIONS)) throw new UsageError(`passwd -I: expected a whole number in 1..${MAX_ITERATIONS}, got ${JSON.stringify(values.iterations)}`)
  }
  return { kind: 'passwd', file, user, action: { kind: 'set', password, create: values.create === true, iterations } }
}
