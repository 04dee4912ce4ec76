/** A pino logger whose JSON lines are kept, parsed, so tests can wait for and assert on log lines. */
import { EventEmitter } from 'node:events'
import { pino, type Logger } from 'pino'
import { waitOn } from './wait.js'

export type LogLine = Record<string, unknown> & { msg?: string; level?: number }

export class LogCapture {
  readonly lines: LogLine[] = []
  readonly logger: Logger
  readonly #events = new EventEmitter()

  constructor(level: pino.Level = 'debug') {
    this.logger = pino({ level }, {
      write: (text: string) => {
        this.lines.push(JSON.parse(text) as LogLine)
        this.#events.emit('line')
      },
    })
  }

  /** The first line (logged already or still to come) that matches. */
  waitFor(match: (l: LogLine) => boolean, what: string, timeoutMs = 10_000): Promise<LogLine> {
    return waitOn(this.#events, 'line', () => this.lines.find(match), timeoutMs, () => `${what}; last lines: ${JSON.stringify(this.lines.slice(-5))}`)
  }

  count(match: (l: LogLine) => boolean): number {
    return this.lines.filter(match).length
  }
}
