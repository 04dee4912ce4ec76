/** Parsing config text that must be refused, for the config tests: the problems it gives. */
import * as assert from 'node:assert/strict'
import { ConfigError, parseConfigText, type ConfigProblem } from '../../src/config/load.js'

export const FILE = 'outpost.yaml'

export function problems(text: string): readonly ConfigProblem[] {
  try {
    parseConfigText(text, FILE)
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`)
    assert.equal(err.code, 'OUTPOST_E_CONFIG_INVALID')
    return err.problems
  }
  assert.fail(`expected ${JSON.stringify(text)} to be rejected`)
}

/** The one problem `text` has; fails listing them all when there are more. */
export function onlyProblem(text: string): ConfigProblem {
  const found = problems(text)
  assert.equal(found.length, 1, found.map((p) => `${p.line}:${p.column}: ${p.field}: ${p.message}`).join('\n'))
  const [p] = found
  assert.ok(p !== undefined)
  return p
}
