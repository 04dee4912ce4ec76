import { OutpostError } from '../errors.js'

/** One thing wrong with a configuration file, pinned to where the operator has to look. */
export interface ConfigProblem {
  file: string
  /** 1-based. */
  line: number
  /** 1-based. */
  column: number
  /** Dotted path in YAML spelling, e.g. `listeners[0].port`; empty when the problem is not about one field (YAML syntax, the whole document). */
  field: string
  /** What was expected and what was found. */
  message: string
}

/** `file:line:col: field: message`, the shape editors and `grep -n` users already know. */
export function formatProblem(p: ConfigProblem): string {
  const where = `${p.file}:${p.line}:${p.column}`
  return p.field === '' ? `${where}: ${p.message}` : `${where}: ${p.field}: ${p.message}`
}

/**
 * All problems found in one file, thrown together so that an operator on a slow edit-deploy loop
 * fixes everything in one pass instead of one error per restart.
 */
export class ConfigError extends OutpostError {
  readonly problems: readonly ConfigProblem[]

  constructor(
    problems: readonly ConfigProblem[],
    code: 'OUTPOST_E_CONFIG_INVALID' | 'OUTPOST_E_CONFIG_YAML' = 'OUTPOST_E_CONFIG_INVALID',
  ) {
    super(code, problems.map(formatProblem).join('\n'))
    this.name = 'ConfigError'
    this.problems = problems
  }
}
