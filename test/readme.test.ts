import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { ConfigError, parseConfigText } from '../src/config/load.js'
import { HTTP_KEYS } from '../src/config/http-validate.js'
import { LISTENER_KEYS, LISTENER_TLS_KEYS } from '../src/config/listener-validate.js'
import { SERIAL_DEVICE_KEYS, SERIAL_FIELD_KEYS, SERIAL_KEYS, SERIAL_LINES_KEYS, SERIAL_USB_KEYS } from '../src/config/serial-validate.js'
import { UPSTREAM_KEYS, UPSTREAM_TLS_KEYS, UPSTREAM_TOPIC_KEYS } from '../src/config/upstream-validate.js'
import { CONFIG_KEYS } from '../src/config/validate.js'
import { ERROR_CODES } from '../src/errors.js'

const root = new URL('../../', import.meta.url)
const readme = readFileSync(new URL('README.md', root), 'utf8')

test('README documents every OUTPOST_E_* error code', () => {
  for (const code of Object.keys(ERROR_CODES)) assert.ok(readme.includes(`\`${code}\``), code)
})

test('README documents every configuration key', () => {
  for (const key of CONFIG_KEYS) assert.ok(readme.includes(`\`${key}\``), key)
})

test('README documents every key of a listener and of its tls', () => {
  const rows = [...LISTENER_KEYS.map((k) => `listeners[].${k}`), 'listeners[].tls', ...LISTENER_TLS_KEYS.map((k) => `listeners[].tls.${k}`)]
  for (const row of rows) assert.ok(readme.includes(`| \`${row}\` |`), row)
})

test('README documents every key of the http section', () => {
  for (const key of HTTP_KEYS) assert.ok(readme.includes(`| \`http.${key}\` |`), key)
})

test("README's configuration example is valid but for the files it names", () => {
  const example = /## Configuration[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)?.[1]
  assert.ok(example !== undefined, 'no yaml block under ## Configuration')
  // The certificates, password and ACL files are the reader's own; everything else must pass.
  let problems: readonly string[] = []
  try {
    parseConfigText(example, 'README.md')
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err))
    problems = err.problems.map((p) => `${p.field}: ${p.message}`)
  }
  const others = problems.filter((p) => !/^listeners\[\d\]\.(tls\.\w+|password_file|acl_file): no such file: \/etc\/outpost\//.test(p))
  assert.deepEqual(others, [])
})

test('README documents every key of a serial entry', () => {
  const rows = [
    ...SERIAL_KEYS.map((k) => `serial[].${k}`),
    ...SERIAL_USB_KEYS.map((k) => `serial[].usb.${k}`),
    ...SERIAL_LINES_KEYS.map((k) => `serial[].lines.${k}`),
    ...SERIAL_FIELD_KEYS.map((k) => `serial[].fields.<field>.${k}`),
    'serial[].devices.<id>',
  ]
  for (const row of rows) assert.ok(readme.includes(`| \`${row}\` |`), row)
  // A device entry takes a subset of the port's keys, documented once on the port.
  for (const key of SERIAL_DEVICE_KEYS) assert.ok(SERIAL_KEYS.includes(key), key)
})

test("README's serial example is a valid config", () => {
  const example = /### Serial ports[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)?.[1]
  assert.ok(example !== undefined, 'no yaml block under ### Serial ports')
  const serial = parseConfigText(example, 'README.md').serial
  assert.deepEqual(serial.map((p) => [p.name, p.framing]), [['kitchen', 'lines'], ['ttyACM0', 'outpost-link']])
})

test('README documents every key of an upstream entry', () => {
  const rows = [
    ...UPSTREAM_KEYS.map((k) => `upstream[].${k}`),
    ...UPSTREAM_TLS_KEYS.map((k) => `upstream[].tls.${k}`),
    ...UPSTREAM_TOPIC_KEYS.map((k) => `upstream[].topics[].${k}`),
  ]
  for (const row of rows) assert.ok(readme.includes(`| \`${row}\` |`), row)
})

test("README's upstream example is a valid config", () => {
  const example = /### Upstream bridges[\s\S]*?```yaml\n([\s\S]*?)```/.exec(readme)?.[1]
  assert.ok(example !== undefined, 'no yaml block under ### Upstream bridges')
  const config = parseConfigText(example, 'README.md')
  assert.equal(config.gatewayId, 'pi-kitchen')
  assert.deepEqual(config.upstream.map((u) => [u.name, u.topics.length]), [['cloud', 3], ['iot.example.net', 1]])
})

test('README and .ci/run agree on the test command', () => {
  assert.ok(readme.includes('npm test'))
  assert.match(readFileSync(new URL('.ci/run', root), 'utf8'), /^npm test$/m)
})
