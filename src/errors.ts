/**
 * Every failure a user can see carries one of these codes, so that a log search, a support
 * ticket or a script can key on the code instead of on wording that may change.
 * A test checks that each code here is documented in README.md: add the README row with the code.
 */
export const ERROR_CODES = {
  OUTPOST_E_CONFIG_INVALID: 'The configuration has one or more invalid values or unknown keys; every problem is listed with file, line, column and field.',
  OUTPOST_E_CONFIG_READ: 'The configuration file could not be read (missing, unreadable, or a directory).',
  OUTPOST_E_CONFIG_YAML: 'The configuration file is not valid YAML; the syntax error is reported with line and column.',
  OUTPOST_E_USAGE: 'The command line is wrong: an unknown flag or subcommand, a missing argument, or a bad flag value. Exit status 2.',
  OUTPOST_E_DATA_DIR: 'The data directory could not be created or is not writable.',
  OUTPOST_E_LISTEN: 'A listener could not be opened, for example because the port is in use or the bind address does not exist on this host.',
  OUTPOST_E_SHUTDOWN_TIMEOUT: 'A clean shutdown did not finish within 5 seconds of SIGTERM/SIGINT, so the process exited with status 1.',
  OUTPOST_E_STORE_FORMAT: 'The store in the data directory was written in a format this version of Outpost cannot read.',
  OUTPOST_E_STORE_LOCKED: 'The store in the data directory is open in another process.',
  OUTPOST_E_STORE_CORRUPT: 'The store in the data directory is damaged or holds a record that cannot be read.',
  OUTPOST_E_PASSWD: 'A password file could not be read, has a malformed line (reported as file:line), or could not be updated by outpost passwd.',
  OUTPOST_E_ACL: 'An ACL file could not be read or has a malformed line (each reported as file:line).',
} as const satisfies Record<`OUTPOST_E_${string}`, string>

export type ErrorCode = keyof typeof ERROR_CODES

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value)
}

/** An error meant for the operator: `message` is written for them, `code` is stable across releases. */
export class OutpostError extends Error {
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'OutpostError'
    this.code = code
  }
}

export function isOutpostError(value: unknown): value is OutpostError {
  return value instanceof OutpostError
}
