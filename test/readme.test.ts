import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { CONFIG_KEYS, LISTENER_KEYS } from '../src/config/validate.js'
import { ERROR_CODES } from '../src/errors.js'

const root = new URL('../../', import.meta.url)
const readme = readFileSync(new URL('README.md', root), 'utf8')

test('README documents every OUTPOST_E_* error code', () => {
  for (const code of Object.keys(ERROR_CODES)) assert.ok(readme.includes(`\`${code}\``), code)
})

test('README documents every configuration key', () => {
  for (const key of CONFIG_KEYS) assert.ok(readme.includes(`\`${key}\``), key)
  for (const key of LISTENER_KEYS) assert.ok(readme.includes(`\`listeners[].${key}\``), key)
})

test('README and .ci/run agree on the test command', () => {
  assert.ok(readme.includes('npm test'))
  assert.match(readFileSync(new URL('.ci/run', root), 'utf8'), /^npm test$/m)
})
