import { readFileSync } from 'node:fs'
import { LineCounter, parseDocument, type YAMLError } from 'yaml'
import { OutpostError } from '../errors.js'
import { ConfigError, type ConfigProblem } from './config-error.js'
import { defaultConfig } from './defaults.js'
import type { ListenerConfig, LogLevel, OutpostConfig } from './types.js'
import { validateDocument } from './validate.js'

/**
 * Parses and validates the text of a config file. `file` is only used in messages, so pass the
 * path the way the operator typed it.
 *
 * @throws ConfigError with code `OUTPOST_E_CONFIG_YAML` for YAML syntax errors, or
 *   `OUTPOST_E_CONFIG_INVALID` listing every invalid value and unknown key.
 */
export function parseConfigText(text: string, file: string): OutpostConfig {
  const lineCounter = new LineCounter()
  const doc = parseDocument(text, { lineCounter, prettyErrors: false })
  // Warnings (such as an unknown `!tag`) are refused too: a value the parser had to guess at
  // is not one a gateway should start with.
  const yamlProblems = [...doc.errors, ...doc.warnings].map((e) => yamlProblem(e, file, lineCounter))
  if (yamlProblems.length > 0) throw new ConfigError(yamlProblems, 'OUTPOST_E_CONFIG_YAML')
  const { config, problems } = validateDocument(doc, file, lineCounter)
  if (problems.length > 0) throw new ConfigError(problems)
  return config
}

function yamlProblem(e: YAMLError, file: string, lineCounter: LineCounter): ConfigProblem {
  const { line, col } = lineCounter.linePos(e.pos[0])
  // The library's own wording for this one points at its API, not at the file.
  const message = e.code === 'MULTIPLE_DOCS'
    ? 'the file holds more than one YAML document (a second `---`); Outpost reads exactly one'
    : e.message
  return { file, line: Math.max(1, line), column: Math.max(1, col), field: '', message: `invalid YAML: ${message}` }
}

const READ_REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EISDIR: 'it is a directory',
}

/**
 * Reads, parses and validates a config file.
 *
 * @throws OutpostError `OUTPOST_E_CONFIG_READ` naming the path when it cannot be read, else as {@link parseConfigText}.
 */
export function loadConfigFile(path: string): OutpostConfig {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    const code = err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : undefined
    const reason = (code !== undefined ? READ_REASONS[code] : undefined) ?? (err instanceof Error ? err.message : String(err))
    throw new OutpostError('OUTPOST_E_CONFIG_READ', `cannot read config file ${path}: ${reason}`, { cause: err })
  }
  return parseConfigText(text, path)
}

/** Command-line values that win over the file. Values are assumed valid; `parseCliArgs` checks them. */
export interface ConfigOverrides {
  /** Replaces the port of the first listener. */
  port?: number
  /** Replaces the bind address of the first listener. */
  bind?: string
  dataDir?: string
  logLevel?: LogLevel
}

/**
 * Returns a new config with the overrides applied; `config` is not changed. `port` and `bind`
 * apply to the first listener only, which is the one a single-listener box has.
 */
export function applyOverrides(config: OutpostConfig, overrides: ConfigOverrides): OutpostConfig {
  const listeners: ListenerConfig[] = (config.listeners.length > 0 ? config.listeners : defaultConfig().listeners)
    .map((l) => ({ ...l }))
  const first = listeners[0]
  if (first !== undefined) {
    if (overrides.port !== undefined) first.port = overrides.port
    if (overrides.bind !== undefined) first.bind = overrides.bind
  }
  return {
    ...config,
    listeners,
    dataDir: overrides.dataDir ?? config.dataDir,
    logLevel: overrides.logLevel ?? config.logLevel,
  }
}

export { ConfigError, formatProblem, type ConfigProblem } from './config-error.js'
