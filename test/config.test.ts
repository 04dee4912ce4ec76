import * as assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { defaultConfig, defaultListener } from '../src/config/defaults.js'
import { applyOverrides, ConfigError, formatProblem, loadConfigFile, parseConfigText, type ConfigProblem } from '../src/config/load.js'
import { suggest } from '../src/config/suggest.js'
import { LISTENER_KEYS, LISTENER_TLS_KEYS } from '../src/config/listener-validate.js'
import type { ListenerTls, OutpostConfig } from '../src/config/types.js'
import { CONFIG_KEYS } from '../src/config/validate.js'
import { ERROR_CODES, OutpostError } from '../src/errors.js'

const FILE = 'outpost.yaml'

/** The ConfigError that `text` must produce. */
function configError(text: string): ConfigError {
  try {
    parseConfigText(text, FILE)
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`)
    return err
  }
  assert.fail(`expected ${JSON.stringify(text)} to be rejected`)
}

function onlyProblem(text: string): ConfigProblem {
  const err = configError(text)
  assert.equal(err.code, 'OUTPOST_E_CONFIG_INVALID')
  assert.equal(err.problems.length, 1, err.message)
  const [p] = err.problems
  assert.ok(p !== undefined)
  return p
}

const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

describe('parseConfigText: valid input', () => {
  test('an empty file is the default config', () => {
    assert.deepEqual(parseConfigText('', FILE), defaultConfig())
  })

  test('a file with only comments, or a bare ~, is the default config', () => {
    assert.deepEqual(parseConfigText('# nothing here\n\n# yet\n', FILE), defaultConfig())
    assert.deepEqual(parseConfigText('~\n', FILE), defaultConfig())
  })

  test('every option is read from its snake_case key', () => {
    const text = `
listeners:
  - protocol: mqtt
    port: 1884
    bind: 0.0.0.0
  - port: 0
    bind: "::1"
data_dir: /var/lib/outpost
log_level: debug
allow_anonymous: false
max_connections: 50
message_size_limit: 268435455
max_inflight: 65535
max_queued_messages: 0
max_queued_bytes: 1048576
queue_qos0_messages: true
max_keepalive: 0
max_topic_levels: 8
max_topic_length: 200
max_subscriptions: 50
max_publish_rate: 100
max_publish_bytes_rate: 65536
drain_timeout: 30
sys_interval: 0
retain_available: false
persistent_client_expiration: 86400
receive_maximum: 100
topic_alias_maximum: 0
max_packet_size: 1000000
max_qos: 1
wildcard_subscriptions: false
subscription_identifiers: false
shared_subscriptions: false
shared_subscription_strategy: hash_topic
response_information: replies/
reason_strings: false
durability: os
queue_full_policy: reject_new
connect_timeout: 0
max_awaiting_rel: 5
await_rel_timeout: 60
store:
  max_bytes: 5000000
gateway_id: pi-kitchen
upstream: []
http:
  port: 8080
  bind: 0.0.0.0
`
    const expected: OutpostConfig = {
      listeners: [defaultListener('mqtt', 1884, '0.0.0.0'), defaultListener('mqtt', 0, '::1')],
      dataDir: '/var/lib/outpost',
      logLevel: 'debug',
      allowAnonymous: false,
      maxConnections: 50,
      messageSizeLimit: 268435455,
      maxInflight: 65535,
      maxQueuedMessages: 0,
      maxQueuedBytes: 1048576,
      queueQos0Messages: true,
      maxKeepalive: 0,
      maxTopicLevels: 8,
      maxTopicLength: 200,
      maxSubscriptions: 50,
      maxPublishRate: 100,
      maxPublishBytesRate: 65536,
      drainTimeout: 30,
      sysInterval: 0,
      retainAvailable: false,
      persistentClientExpiration: 86400,
      receiveMaximum: 100,
      topicAliasMaximum: 0,
      maxPacketSize: 1000000,
      maxQos: 1,
      wildcardSubscriptions: false,
      subscriptionIdentifiers: false,
      sharedSubscriptions: false,
      sharedSubscriptionStrategy: 'hash_topic',
      responseInformation: 'replies/',
      reasonStrings: false,
      durability: 'os',
      queueFullPolicy: 'reject_new',
      connectTimeout: 0,
      maxAwaitingRel: 5,
      awaitRelTimeout: 60,
      store: { maxBytes: 5000000 },
      serial: [],
      gatewayId: 'pi-kitchen',
      upstream: [],
      http: { port: 8080, bind: '0.0.0.0', passwordFile: undefined },
    }
    assert.deepEqual(parseConfigText(text, FILE), expected)
  })

  test('missing keys take their defaults', () => {
    const config = parseConfigText('max_inflight: 5\nlog_level: warn\n', FILE)
    assert.deepEqual(config, { ...defaultConfig(), maxInflight: 5, logLevel: 'warn' })
  })

  test('a listener without protocol or bind gets mqtt and the default bind address', () => {
    const config = parseConfigText('listeners:\n  - port: 1885\n', FILE)
    assert.deepEqual(config.listeners, [defaultListener('mqtt', 1885, defaultConfig().listeners[0]?.bind ?? '')])
  })

  test('flow style and anchors/aliases are ordinary YAML and work', () => {
    const config = parseConfigText('listeners: [{port: &p 2000}, {port: *p, bind: 0.0.0.0}]\n', FILE)
    assert.deepEqual(config.listeners.map((l) => [l.port, l.bind]), [[2000, '127.0.0.1'], [2000, '0.0.0.0']])
  })

  test('several listeners on port 0 are allowed (each gets its own ephemeral port)', () => {
    const config = parseConfigText('listeners:\n  - port: 0\n  - port: 0\n', FILE)
    assert.equal(config.listeners.length, 2)
  })

  test('store: a mapping; a misspelt key is named with its section and a hint', () => {
    assert.throws(() => parseConfigText('store:\n  max_byte: 10\n', FILE), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.match(formatProblem(err.problems[0] as ConfigProblem), /store\.max_byte: unknown key; did you mean store\.max_bytes\?/)
      return true
    })
    assert.throws(() => parseConfigText('store: 5\n', FILE), /store/)
  })

  test('every OutpostConfig field has a YAML key, and no key is extra', () => {
    const fromType = Object.keys(defaultConfig()).map(snake).sort()
    assert.deepEqual([...CONFIG_KEYS].sort(), fromType)
    assert.deepEqual([...LISTENER_KEYS].sort(), Object.keys(defaultListener('mqtt', 1883, '::')).map(snake).sort())
    // A literal of the type: the compiler refuses one with a field missing or extra.
    const tls: ListenerTls = {
      certFile: 'c', keyFile: 'k', caFile: undefined, minVersion: 'TLSv1.2', ciphers: undefined, requireCertificate: false, useIdentityAsUsername: false,
    }
    assert.deepEqual([...LISTENER_TLS_KEYS].sort(), Object.keys(tls).map(snake).sort())
  })
})

describe('parseConfigText: range and type errors carry file, line, column and field', () => {
  // [yaml text, field, line, column, expected message]
  const cases: Array<[string, string, number, number, string]> = [
    ['listeners:\n  - port: abc\n', 'listeners[0].port', 2, 11, 'expected an integer 0..65535, got "abc"'],
    ['listeners:\n  - port: -1\n', 'listeners[0].port', 2, 11, 'expected an integer 0..65535, got -1'],
    ['listeners:\n  - port: 65536\n', 'listeners[0].port', 2, 11, 'expected an integer 0..65535, got 65536'],
    ['listeners:\n  - port: 1883.5\n', 'listeners[0].port', 2, 11, 'expected an integer 0..65535, got 1883.5'],
    ['listeners:\n  - port: "1883"\n', 'listeners[0].port', 2, 11, 'expected an integer 0..65535, got "1883" (remove the quotes: a quoted number is a string)'],
    ['listeners:\n  - port:\n', 'listeners[0].port', 2, 5, 'expected an integer 0..65535, got an empty value'],
    ['listeners:\n  - port: 1\n    bind: ""\n', 'listeners[0].bind', 3, 11, 'expected a non-empty string, got ""'],
    ['listeners:\n  - port: 1\n    bind: 42\n', 'listeners[0].bind', 3, 11, 'expected a non-empty string, got 42'],
    ['listeners:\n  - port: 1\n    protocol: mqtt5\n', 'listeners[0].protocol', 3, 15, 'expected one of mqtt, mqtts, ws, wss, got "mqtt5"'],
    ['listeners:\n  - bind: 0.0.0.0\n', 'listeners[0].port', 2, 5, 'missing; expected an integer 0..65535'],
    ['listeners:\n  - 1883\n', 'listeners[0]', 2, 5, 'expected a mapping with a port (for example - port: 1883), got 1883'],
    ['listeners: []\n', 'listeners', 1, 12, 'expected at least one listener, got an empty list'],
    ['listeners:\n', 'listeners', 1, 1, 'expected a list of listeners, got an empty value'],
    ['listeners:\n  port: 1883\n', 'listeners', 2, 3, 'expected a list of listeners, got a mapping'],
    ['listeners:\n  - port: 1883\n  - port: 1883\n', 'listeners[1]', 3, 5, 'same bind and port as listeners[0] (127.0.0.1:1883)'],
    ['data_dir: ""\n', 'data_dir', 1, 11, 'expected a non-empty string, got ""'],
    ['data_dir: [a, b]\n', 'data_dir', 1, 11, 'expected a non-empty string, got a list'],
    ['log_level: verbose\n', 'log_level', 1, 12, 'expected one of fatal, error, warn, info, debug, trace, silent, got "verbose"'],
    ['allow_anonymous: yes\n', 'allow_anonymous', 1, 18, 'expected true or false, got "yes" (YAML 1.2 booleans are only true and false)'],
    ['queue_qos0_messages: 1\n', 'queue_qos0_messages', 1, 22, 'expected true or false, got 1'],
    ['retain_available: "true"\n', 'retain_available', 1, 19, 'expected true or false, got "true"'],
    ['max_connections: -1\n', 'max_connections', 1, 18, 'expected an integer >= 0, got -1'],
    ['message_size_limit: 268435456\n', 'message_size_limit', 1, 21, 'expected an integer 0..268435455, got 268435456'],
    ['max_inflight: 0\n', 'max_inflight', 1, 15, 'expected an integer 1..65535, got 0'],
    ['max_inflight: 65536\n', 'max_inflight', 1, 15, 'expected an integer 1..65535, got 65536'],
    ['max_queued_messages: 2.5\n', 'max_queued_messages', 1, 22, 'expected an integer >= 0, got 2.5'],
    ['max_queued_bytes: -5\n', 'max_queued_bytes', 1, 19, 'expected an integer >= 0, got -5'],
    ['max_keepalive: 65536\n', 'max_keepalive', 1, 16, 'expected an integer 0..65535, got 65536'],
    ['max_keepalive: -1\n', 'max_keepalive', 1, 16, 'expected an integer 0..65535, got -1'],
    ['sys_interval: -1\n', 'sys_interval', 1, 15, 'expected an integer >= 0, got -1'],
    ['sys_interval: .inf\n', 'sys_interval', 1, 15, 'expected an integer >= 0, got Infinity'],
    ['connect_timeout: -1\n', 'connect_timeout', 1, 18, 'expected an integer >= 0, got -1'],
    ['connect_timeout: "10"\n', 'connect_timeout', 1, 18, 'expected an integer >= 0, got "10" (remove the quotes: a quoted number is a string)'],
    ['persistent_client_expiration: 1d\n', 'persistent_client_expiration', 1, 31, 'expected an integer >= 0, got "1d"'],
  ]
  for (const [text, field, line, column, message] of cases) {
    test(`${field}: ${JSON.stringify(text)}`, () => {
      assert.deepEqual(onlyProblem(text), { file: FILE, line, column, field, message })
    })
  }

  test('the value is reported where it sits, several lines into the file', () => {
    const text = '# Outpost\n\nlog_level: info\n\nlisteners:\n  - bind: 0.0.0.0\n    port: abc\n'
    const p = onlyProblem(text)
    assert.deepEqual([p.line, p.column, p.field], [7, 11, 'listeners[0].port'])
    assert.equal(configError(text).message, 'outpost.yaml:7:11: listeners[0].port: expected an integer 0..65535, got "abc"')
  })

  test('a document that is not a mapping is one problem at its start', () => {
    const p = onlyProblem('- port: 1883\n')
    assert.deepEqual(p, { file: FILE, line: 1, column: 1, field: '', message: 'expected a mapping of option names to values, got a list' })
  })
})

describe('parseConfigText: unknown keys', () => {
  test('a near miss at top level suggests the real key', () => {
    assert.deepEqual(onlyProblem('max_inflght: 5\n'), {
      file: FILE, line: 1, column: 1, field: 'max_inflght', message: 'unknown key; did you mean max_inflight?',
    })
  })

  test('camelCase and kebab-case spellings point at the snake_case key', () => {
    assert.equal(onlyProblem('dataDir: /x\n').message, 'unknown key; did you mean data_dir?')
    assert.equal(onlyProblem('log-level: info\n').message, 'unknown key; did you mean log_level?')
  })

  test('a key inside a listener is reported with its path and a hint', () => {
    assert.deepEqual(onlyProblem('listeners:\n  - port: 1\n    prot: 2\n'), {
      file: FILE, line: 3, column: 5, field: 'listeners[0].prot', message: 'unknown key; did you mean listeners[0].port?',
    })
  })

  test('a key close to nothing gets no hint', () => {
    assert.equal(onlyProblem('frobnicate: true\n').message, 'unknown key')
    assert.equal(onlyProblem('listeners:\n  - port: 1\n    frobnicate: true\n').message, 'unknown key')
  })

  test('a non-string key is unknown too', () => {
    assert.deepEqual(onlyProblem('1883: true\n'), { file: FILE, line: 1, column: 1, field: '1883', message: 'unknown key' })
  })

  test('suggest() stays quiet for unrelated words', () => {
    assert.equal(suggest('colour', ['color']), 'color')
    assert.equal(suggest('xyz', ['max_inflight', 'data_dir']), undefined)
  })
})

describe('parseConfigText: every problem is reported at once', () => {
  const text = [
    'log_level: loud', //           1
    'max_inflight: 0', //           2
    'listeners:', //                3
    '  - port: abc', //             4
    '  - bind: ""', //              5
    'retain_availabel: true', //    6
    'sys_interval: -3', //          7
  ].join('\n')

  test('one ConfigError with every problem, in file order', () => {
    const err = configError(text)
    assert.ok(err instanceof OutpostError)
    assert.equal(err.code, 'OUTPOST_E_CONFIG_INVALID')
    assert.deepEqual(err.problems.map((p) => [p.line, p.column, p.field]), [
      [1, 12, 'log_level'],
      [2, 15, 'max_inflight'],
      [4, 11, 'listeners[0].port'],
      [5, 5, 'listeners[1].port'],
      [5, 11, 'listeners[1].bind'],
      [6, 1, 'retain_availabel'],
      [7, 15, 'sys_interval'],
    ])
  })

  test('the message lists them one per line as file:line:col: field: message', () => {
    const lines = configError(text).message.split('\n')
    assert.equal(lines.length, 7)
    assert.equal(lines[0], 'outpost.yaml:1:12: log_level: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"')
    assert.equal(lines[5], 'outpost.yaml:6:1: retain_availabel: unknown key; did you mean retain_available?')
    for (const line of lines) assert.match(line, /^outpost\.yaml:\d+:\d+: \S+: .+$/)
  })
})

describe('parseConfigText: YAML syntax errors', () => {
  function yamlError(text: string): ConfigError {
    const err = configError(text)
    assert.equal(err.code, 'OUTPOST_E_CONFIG_YAML')
    return err
  }

  test('an unclosed flow sequence is OUTPOST_E_CONFIG_YAML with line and column', () => {
    const [p] = yamlError('log_level: info\nlisteners: [{port: 1\nmax_inflight: 3\n').problems
    assert.ok(p !== undefined)
    assert.equal(p.file, FILE)
    assert.equal(p.field, '')
    assert.ok(p.line >= 2, `line ${p.line}`)
    assert.ok(p.column >= 1)
    assert.match(p.message, /^invalid YAML: /)
  })

  test('a tab used as indentation names its line and column', () => {
    const { problems } = yamlError('listeners:\n\t- port: 1\n')
    assert.ok(problems.some((p) => p.line === 2 && p.column === 1 && /tab/i.test(p.message)), JSON.stringify(problems))
  })

  test('a duplicate key is refused, not silently last-wins', () => {
    const { problems } = yamlError('max_inflight: 1\nmax_inflight: 2\n')
    assert.deepEqual(problems.map((p) => [p.line, p.column]), [[2, 1]])
    assert.match(problems[0]?.message ?? '', /unique/)
  })

  test('a second document is refused in words an operator understands', () => {
    const { problems } = yamlError('max_inflight: 1\n---\nmax_inflight: 2\n')
    assert.equal(problems.length, 1)
    assert.match(problems[0]?.message ?? '', /more than one YAML document/)
    assert.equal(problems[0]?.line, 2)
  })

  test('an unknown tag is refused rather than guessed at', () => {
    const { problems } = yamlError('data_dir: !secret x\n')
    assert.equal(problems[0]?.line, 1)
  })
})

describe('loadConfigFile', () => {
  test('reads a file and names it in problems', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-config-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const good = join(dir, 'good.yaml')
    const bad = join(dir, 'bad.yaml')
    writeFileSync(good, 'listeners:\n  - port: 0\n')
    writeFileSync(bad, 'max_keepalive: 1e9\n')
    assert.equal(loadConfigFile(good).listeners[0]?.port, 0)
    assert.throws(() => loadConfigFile(bad), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.equal(err.problems[0]?.file, bad)
      assert.equal(err.message, `${bad}:1:16: max_keepalive: expected an integer 0..65535, got 1000000000`)
      return true
    })
  })

  test('an unreadable path is OUTPOST_E_CONFIG_READ naming the path', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-config-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const missing = join(dir, 'missing.yaml')
    for (const [path, reason] of [[missing, 'no such file'], [dir, 'it is a directory']] as const) {
      assert.throws(() => loadConfigFile(path), (err: unknown) => {
        assert.ok(err instanceof OutpostError)
        assert.equal(err.code, 'OUTPOST_E_CONFIG_READ')
        assert.equal(err.message, `cannot read config file ${path}: ${reason}`)
        return true
      })
    }
  })
})

describe('applyOverrides', () => {
  const twoListeners: OutpostConfig = {
    ...defaultConfig(),
    listeners: [
      { ...defaultListener('mqtt', 1883, '127.0.0.1'), maxConnections: 5 },
      defaultListener('ws', 1884, '0.0.0.0'),
    ],
  }

  test('--port and --bind change the first listener only', () => {
    const out = applyOverrides(twoListeners, { port: 0, bind: '::' })
    // The first listener keeps everything else it had.
    assert.deepEqual(out.listeners, [
      { ...defaultListener('mqtt', 0, '::'), maxConnections: 5 },
      defaultListener('ws', 1884, '0.0.0.0'),
    ])
  })

  test('--data-dir and --log-level replace the file values', () => {
    const out = applyOverrides(twoListeners, { dataDir: '/tmp/x', logLevel: 'trace' })
    assert.equal(out.dataDir, '/tmp/x')
    assert.equal(out.logLevel, 'trace')
  })

  test('no overrides gives an equal config; the input is never modified', () => {
    const before = structuredClone(twoListeners)
    assert.deepEqual(applyOverrides(twoListeners, {}), twoListeners)
    const out = applyOverrides(twoListeners, { port: 9, bind: 'x', dataDir: 'd', logLevel: 'silent' })
    assert.deepEqual(twoListeners, before)
    assert.notEqual(out.listeners, twoListeners.listeners)
  })
})

describe('error codes', () => {
  test('every code is OUTPOST_E_* with a one-line description', () => {
    for (const [code, description] of Object.entries(ERROR_CODES)) {
      assert.match(code, /^OUTPOST_E_[A-Z0-9_]+$/)
      assert.ok(description.length > 10 && !description.includes('\n'), code)
    }
  })

  test('ConfigError is an OutpostError with a stable code and the problems attached', () => {
    const err = configError('max_inflight: 0\n')
    assert.ok(err instanceof Error)
    assert.equal(err.name, 'ConfigError')
    assert.ok(err.code in ERROR_CODES)
    assert.equal(err.problems.length, 1)
  })
})

test('http: off by default; port required; problems with line and field', () => {
  assert.equal(parseConfigText('', 'h.yaml').http, undefined)
  assert.deepEqual(parseConfigText('http:\n  port: 9100\n', 'h.yaml').http, { port: 9100, bind: '127.0.0.1', passwordFile: undefined })
  assert.throws(() => parseConfigText('http:\n  bind: 0.0.0.0\n', 'h.yaml'), /h\.yaml:2:3: http\.port: missing/)
  assert.throws(() => parseConfigText('http:\n  port: 80\n  password_file: /nonexistent/pw\n', 'h.yaml'), /h\.yaml:3:18: http\.password_file: /)
  assert.throws(() => parseConfigText('http:\n  port: 80\n  pasword_file: x\n', 'h.yaml'), /did you mean http\.password_file\?/)
  assert.throws(() => parseConfigText('http: 8080\n', 'h.yaml'), /http: expected a mapping/)
})
