import { pino } from 'pino'
import type { LogLevel } from './config/types.js'

/**
 * Paths whose values never reach a log line. MQTT CONNECT carries a password, and a packet or
 * options object logged whole, or nested one or two levels down, must not leak it.
 */
export const REDACTED_PATHS: readonly string[] = ['password', '*.password', '*.*.password']

/**
 * The one root logger for the process; components receive it (or a `child()` of it) as a
 * parameter, so tests can pass their own destination and nothing imports a global.
 *
 * Writes JSON lines to stdout (journald keeps them) unless `destination` is given. The default
 * destination is synchronous so that a fatal line is on disk before `process.exit`.
 */
export function createLogger(level: LogLevel, destination?: pino.DestinationStream): pino.Logger {
  const options: pino.LoggerOptions = {
    name: 'outpost',
    level,
    redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
    // Level names rather than numbers: operators read these with journalctl, not with pino-pretty.
    formatters: { level: (label) => ({ level: label }) },
    timestamp: pino.stdTimeFunctions.isoTime,
  }
  return destination === undefined ? pino(options) : pino(options, destination)
}
