import * as assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { after, describe, test } from 'node:test'
import { parseConfigText, type ConfigProblem } from '../src/config/load.js'
import { FILE, onlyProblem, problems } from './helpers/config-problems.js'
import { defaultGatewayId, defaultUpstream } from '../src/config/defaults.js'
import type { TopicRule, UpstreamConfig } from '../src/config/upstream-types.js'
import { UPSTREAM_KEYS, UPSTREAM_TLS_KEYS, UPSTREAM_TOPIC_KEYS } from '../src/config/upstream-validate.js'


const upstream = (text: string): UpstreamConfig[] => parseConfigText(text, FILE).upstream

/** One bridge to mqtt://h with `lines` added at entry level; they start on line 3, column 5. */
const entry = (...lines: string[]): string => `upstream:\n  - url: mqtt://h\n${lines.map((l) => `    ${l}\n`).join('')}`
/** The same on mqtts://h, for the TLS keys. */
const tlsEntry = (...lines: string[]): string => `upstream:\n  - url: mqtts://h\n${lines.map((l) => `    ${l}\n`).join('')}`
/** The rules of a bridge whose `topics:` list holds `items`, one per line. */
const rules = (...items: string[]): TopicRule[] => upstream(entry('topics:', ...items.map((i) => `  - ${i}`)))[0]?.topics ?? []

const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)

// PEM files are only looked at for their BEGIN lines here; the bridge reads them for real.
const dir = mkdtempSync(join(tmpdir(), 'outpost-upstream-'))
after(() => rmSync(dir, { recursive: true, force: true }))
const pem = (name: string, text: string): string => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}
const CA = pem('ca.pem', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
const CERT = pem('client.crt', '-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n')
const KEY = pem('client.key', '-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n')
const DER = pem('ca.der', '\u0030\u0082\u0001\u000a')
const ENCRYPTED = pem('enc.key', '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIF\n-----END ENCRYPTED PRIVATE KEY-----\n')
mkdirSync(join(dir, 'certs'))

describe('upstream: valid input', () => {
  test('every key is read from its snake_case spelling', () => {
    const text = `
gateway_id: pi-kitchen
upstream:
  - name: cloud
    url: mqtts://broker.example.com:8883
    client_id: "edge-{gateway_id}-{name}"
    username: alice
    password: "s3cret"
    protocol_version: 5
    keepalive: 30
    clean_session: true
    tls:
      ca_file: ${CA}
      cert_file: ${CERT}
      key_file: ${KEY}
      server_name: mqtt.example.com
      verify: false
    topics:
      - { pattern: "sensors/#", direction: out, qos: 1, local_prefix: "", remote_prefix: "" }
      - "cmd/# in 1 local/ gw/"
    prefix: "gateways/{gateway_id}/"
    reconnect_min: 0.5
    reconnect_max: 120
    max_inflight: 50
    max_queued_messages: 0
    max_queued_bytes: 1000000000
    queue_full_policy: reject_new
    notification_topic: ""
  - url: ws://localhost:9001/mqtt
`
    const config = parseConfigText(text, FILE)
    assert.equal(config.gatewayId, 'pi-kitchen')
    const cloud: UpstreamConfig = {
      name: 'cloud',
      url: 'mqtts://broker.example.com:8883',
      clientId: 'edge-{gateway_id}-{name}',
      username: 'alice',
      password: 's3cret',
      protocolVersion: 5,
      keepalive: 30,
      cleanSession: true,
      tls: { caFile: CA, certFile: CERT, keyFile: KEY, serverName: 'mqtt.example.com', verify: false },
      topics: [
        { pattern: 'sensors/#', direction: 'out', qos: 1, localPrefix: '', remotePrefix: '' },
        { pattern: 'cmd/#', direction: 'in', qos: 1, localPrefix: 'local/', remotePrefix: 'gw/' },
      ],
      prefix: 'gateways/{gateway_id}/',
      reconnectMin: 0.5,
      reconnectMax: 120,
      maxInflight: 50,
      maxQueuedMessages: 0,
      maxQueuedBytes: 1000000000,
      queueFullPolicy: 'reject_new',
      notificationTopic: '',
    }
    assert.deepEqual(config.upstream, [cloud, defaultUpstream('localhost', 'ws://localhost:9001/mqtt')])
  })

  test('a bare URL gets every default, named after its host; placeholders are kept for the bridge to fill', () => {
    assert.deepEqual(upstream('upstream:\n  - url: mqtt://localhost\n'), [defaultUpstream('localhost', 'mqtt://localhost')])
    const [up] = upstream('upstream:\n  - url: mqtt://localhost\n')
    assert.equal(up?.clientId, 'outpost-{gateway_id}')
    assert.equal(up?.notificationTopic, 'outpost/{gateway_id}/bridge/{name}/state')
  })

  test('default names: the host with other characters turned into _', () => {
    const names = upstream(`
upstream:
  - url: mqtts://broker.example.com:8883
  - url: wss://[fd00::1]/mqtt
  - url: MQTT://Edge-Box
  - url: mqtt://broker.example.com:1884
    name: second
`).map((u) => u.name)
    assert.deepEqual(names, ['broker.example.com', 'fd00_1', 'Edge-Box', 'second'])
  })

  test('gateway_id defaults to the host name; a file value wins; no upstream section is no bridges', () => {
    assert.equal(parseConfigText('', FILE).gatewayId, defaultGatewayId())
    assert.equal(parseConfigText('gateway_id: "0042"\n', FILE).gatewayId, '0042')
    assert.deepEqual(parseConfigText('', FILE).upstream, [])
    assert.deepEqual(upstream('upstream: []\n'), [])
  })

  test('Mosquitto topic lines: PATTERN [DIRECTION [QOS [LOCAL REMOTE]]], "" for empty, quotes for spaces', () => {
    const rule = (pattern: string, direction: TopicRule['direction'], qos: TopicRule['qos'], localPrefix = '', remotePrefix = ''): TopicRule =>
      ({ pattern, direction, qos, localPrefix, remotePrefix })
    assert.deepEqual(rules(
      'sensors/#',
      '"cmd/# in 1 local/ gw/"',
      'x/+ both',
      'a/b IN 2',
      `'# out 1 "" gateways/gw1/'`,
      `'"" both 2 local/state remote/state'`,
      `'"my room/#" in 0 "" "cloud room/"'`,
      'plain/topic   out   1',
    ), [
      rule('sensors/#', 'out', 0),
      rule('cmd/#', 'in', 1, 'local/', 'gw/'),
      rule('x/+', 'both', 0),
      rule('a/b', 'in', 2),
      rule('#', 'out', 1, '', 'gateways/gw1/'),
      rule('', 'both', 2, 'local/state', 'remote/state'),
      rule('my room/#', 'in', 0, '', 'cloud room/'),
      rule('plain/topic', 'out', 1),
    ])
  })

  test('a mapping rule needs only pattern; the rest defaults as in Mosquitto (out, QoS 0, no prefixes)', () => {
    assert.deepEqual(rules('{ pattern: "a/#" }'), [{ pattern: 'a/#', direction: 'out', qos: 0, localPrefix: '', remotePrefix: '' }])
  })

  test('$ patterns: $SYS may go out; in rules may come from a $ remote prefix (AWS IoT)', () => {
    assert.equal(rules('"$SYS/broker/# out 0"')[0]?.pattern, '$SYS/broker/#')
    assert.equal(rules(`'update/accepted in 1 shadow/ $aws/things/gw1/shadow/'`)[0]?.remotePrefix, '$aws/things/gw1/shadow/')
  })

  test('the same pattern in and out is two rules, not a repeat', () => {
    assert.deepEqual(rules('"a/# in"', '"a/# out"').map((r) => r.direction), ['in', 'out'])
  })

  test('two bridges may share a client id on different brokers, or with {name} in it on one', () => {
    assert.equal(upstream('upstream:\n  - url: mqtt://a\n  - url: mqtt://b\n').length, 2)
    const text = 'upstream:\n  - { url: mqtt://h, name: a, client_id: "gw-{name}" }\n  - { url: mqtt://h:1883, name: b, client_id: "gw-{name}" }\n'
    assert.equal(upstream(text).length, 2)
  })

  test('a password without a username is allowed with MQTT 5', () => {
    assert.equal(upstream(entry('protocol_version: 5', 'password: token'))[0]?.password, 'token')
  })

  test('every UpstreamConfig field has a YAML key, and no key is extra', () => {
    const up = defaultUpstream('x', 'mqtt://x')
    assert.deepEqual([...UPSTREAM_KEYS].sort(), Object.keys(up).map(snake).sort())
    assert.deepEqual([...UPSTREAM_TLS_KEYS].sort(), Object.keys(up.tls).map(snake).sort())
    const rule: TopicRule = { pattern: '', direction: 'out', qos: 0, localPrefix: '', remotePrefix: '' }
    assert.deepEqual([...UPSTREAM_TOPIC_KEYS].sort(), Object.keys(rule).map(snake).sort())
  })
})

describe('upstream: each bad value is one problem with field, line and column', () => {
  // [yaml, field, line, column, message]
  const cases: Array<[string, string, number, number, string]> = [
    ['gateway_id: "pi kitchen"\n', 'gateway_id', 1, 13, 'expected a non-empty name without /, +, # or spaces, got "pi kitchen"'],
    ['gateway_id: a/b\n', 'gateway_id', 1, 13, 'expected a non-empty name without /, +, # or spaces, got "a/b"'],
    ['gateway_id: ""\n', 'gateway_id', 1, 13, 'expected a non-empty name without /, +, # or spaces, got ""'],
    ['gateway_id: 42\n', 'gateway_id', 1, 13, 'expected a non-empty name without /, +, # or spaces, got 42 (quote it: YAML read a number)'],
    ['upstream: mqtt://h\n', 'upstream', 1, 11, 'expected a list of bridges (for example - url: mqtts://broker.example.com:8883), got "mqtt://h"'],
    ['upstream:\n', 'upstream', 1, 1, 'expected a list of bridges (for example - url: mqtts://broker.example.com:8883), got an empty value'],
    ['upstream:\n  - mqtt://h\n', 'upstream[0]', 2, 5, 'expected a mapping with a url, got "mqtt://h"'],
    ['upstream:\n  - name: cloud\n', 'upstream[0].url', 2, 5, 'missing; expected a URL such as mqtts://broker.example.com:8883 (mqtt://, mqtts://, ws:// or wss://)'],
    ['upstream:\n  - url: broker.example.com\n', 'upstream[0].url', 2, 10, 'expected a URL such as mqtts://broker.example.com:8883 (mqtt://, mqtts://, ws:// or wss://)'],
    ['upstream:\n  - url: 1883\n', 'upstream[0].url', 2, 10, 'expected a URL such as mqtts://broker.example.com:8883 (mqtt://, mqtts://, ws:// or wss://), got 1883'],
    ['upstream:\n  - url: tcp://h:1883\n', 'upstream[0].url', 2, 10, 'tcp:// is not supported; write mqtt://h:1883; expected mqtt://, mqtts://, ws:// or wss://'],
    ['upstream:\n  - url: ssl://h:8883\n', 'upstream[0].url', 2, 10, 'ssl:// is not supported; write mqtts://h:8883; expected mqtt://, mqtts://, ws:// or wss://'],
    ['upstream:\n  - url: amqp://h\n', 'upstream[0].url', 2, 10, 'amqp:// is not supported; expected mqtt://, mqtts://, ws:// or wss://'],
    ['upstream:\n  - url: mqtt://h:70000\n', 'upstream[0].url', 2, 10, 'not a valid URL (is the port 1..65535?); expected a URL such as mqtts://broker.example.com:8883 (mqtt://, mqtts://, ws:// or wss://)'],
    ['upstream:\n  - url: mqtt://h:0\n', 'upstream[0].url', 2, 10, 'port 0 is not a port a broker listens on'],
    ['upstream:\n  - url: mqtt://alice:pw@h\n', 'upstream[0].url', 2, 10, 'put the user name and password in username and password, not in the URL'],
    ['upstream:\n  - url: mqtt://h/mqtt\n', 'upstream[0].url', 2, 10, 'only ws:// and wss:// URLs take a path; this is mqtt://'],
    ['upstream:\n  - url: wss://h/mqtt?x=1\n', 'upstream[0].url', 2, 10, 'a broker URL takes no ?query or #fragment'],
    ['upstream:\n  - url: mqtt://_\n', 'upstream[0].url', 2, 10, 'cannot make a bridge name from this host; set name'],
    [entry('name: "my cloud"'), 'upstream[0].name', 3, 11, 'expected a name of letters, digits, _, . and -, got "my cloud"'],
    [entry('client_id: ""'), 'upstream[0].client_id', 3, 16, 'expected a non-empty string of at most 65535 bytes, got ""'],
    [entry('client_id: "gw-{host}"'), 'upstream[0].client_id', 3, 16, 'unknown placeholder {host}; this key takes {gateway_id}, {name}'],
    [entry('client_id: "gw-{name"'), 'upstream[0].client_id', 3, 16, 'unbalanced { or }'],
    [entry('username: 1234'), 'upstream[0].username', 3, 15, 'expected a string of at most 65535 bytes, got 1234 (quote it: YAML read a number)'],
    [entry('username: alice', 'password: 123456'), 'upstream[0].password', 4, 15, 'expected a string of at most 65535 bytes, got a number (not shown)'],
    [entry('password: secret'), 'upstream[0].password', 3, 15, 'MQTT 3.1.1 sends a password only with a username; set username, or protocol_version: 5'],
    [entry('protocol_version: 3.1.1'), 'upstream[0].protocol_version', 3, 23, 'expected 4 (MQTT 3.1.1) or 5, got "3.1.1" (MQTT 3.1.1 is protocol level 4: write 4)'],
    [entry('protocol_version: "5"'), 'upstream[0].protocol_version', 3, 23, 'expected 4 (MQTT 3.1.1) or 5, got "5" (write 5 without quotes)'],
    [entry('protocol_version: 3'), 'upstream[0].protocol_version', 3, 23, 'expected 4 (MQTT 3.1.1) or 5, got 3 (MQTT 3.1 (level 3) is not supported; write 4 for 3.1.1)'],
    [entry('keepalive: 0'), 'upstream[0].keepalive', 3, 16, 'expected an integer 1..65535, got 0 (0 turns keepalive off, and a half-open link would then go unnoticed)'],
    [entry('keepalive: 70000'), 'upstream[0].keepalive', 3, 16, 'expected an integer 1..65535, got 70000'],
    [entry('clean_session: no'), 'upstream[0].clean_session', 3, 20, 'expected true or false, got "no" (YAML 1.2 booleans are only true and false)'],
    [entry('tls: { verify: true }'), 'upstream[0].tls', 3, 10, "only with mqtts:// or wss://; this bridge's URL is mqtt:// (did you mean mqtts://?)"],
    [tlsEntry('tls: true'), 'upstream[0].tls', 3, 10, 'expected a mapping (for example { ca_file: /etc/outpost/ca.pem }), got true'],
    [tlsEntry('tls: { verify: "false" }'), 'upstream[0].tls.verify', 3, 20, 'expected true or false, got "false"'],
    [tlsEntry('tls: { server_name: "a b" }'), 'upstream[0].tls.server_name', 3, 25, 'expected a host name, without spaces or /, got "a b"'],
    [tlsEntry(`tls: { cert_file: ${CERT} }`), 'upstream[0].tls.cert_file', 3, 23, 'needs tls.key_file too: a client certificate goes with its key'],
    [tlsEntry(`tls: { key_file: ${KEY} }`), 'upstream[0].tls.key_file', 3, 22, 'needs tls.cert_file too: a client certificate goes with its key'],
    [tlsEntry('tls: { ca_file: "" }'), 'upstream[0].tls.ca_file', 3, 21, 'expected a non-empty string of at most 4096 bytes, got ""'],
    [entry('topics: "a/#"'), 'upstream[0].topics', 3, 13, 'expected a list of topic rules (for example - "sensors/# out 1"), got "a/#"'],
    [entry('topics: [5]'), 'upstream[0].topics[0]', 3, 14, 'expected "PATTERN [DIRECTION [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]" or a mapping with pattern, got 5'],
    [entry('topics:', '  - "a/# up 1"'), 'upstream[0].topics[0]', 4, 14, 'direction: expected one of out, in, both, got "up"'],
    [entry('topics:', '  - a/# out 3'), 'upstream[0].topics[0]', 4, 17, 'qos: expected 0, 1 or 2, got "3"'],
    [entry('topics:', '  - a/# out 1x'), 'upstream[0].topics[0]', 4, 17, 'qos: expected 0, 1 or 2, got "1x"'],
    [entry('topics:', '  - a/#/b'), 'upstream[0].topics[0]', 4, 9, 'pattern: # must be the last level and alone in it, as in sensors/#'],
    [entry('topics:', '  - "a/# out 1 local/"'), 'upstream[0].topics[0]', 4, 20, 'a local prefix needs a remote prefix after it (write "" for none)'],
    [entry('topics:', '  - a/# out 1 l/ r/ x'), 'upstream[0].topics[0]', 4, 25, 'too many words; expected PATTERN [DIRECTION [QOS [LOCAL_PREFIX REMOTE_PREFIX]]] (quote a word with spaces: "a b")'],
    [entry('topics:', `  - '"a b out'`), 'upstream[0].topics[0]', 4, 10, 'a quote must enclose a whole word, as in "" or "a b"; expected PATTERN [DIRECTION [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]'],
    [entry('topics:', '  - ""'), 'upstream[0].topics[0]', 4, 10, 'empty rule; expected PATTERN [DIRECTION [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]'],
    [entry('topics:', `  - '"" out 0 "" remote/x'`), 'upstream[0].topics[0]', 4, 10, 'pattern: an empty pattern needs both local_prefix and remote_prefix, which are then the whole topics'],
    [entry('topics:', '  - "a/# out 0 l/+/ r/"'), 'upstream[0].topics[0]', 4, 20, 'local_prefix: a prefix cannot contain the wildcards + or #'],
    [entry('topics:', '  - "+/x out 0 l r/"'), 'upstream[0].topics[0]', 4, 20, 'local_prefix: local_prefix + pattern gives "l+/x": + must fill a whole level, as in sensors/+/temperature'],
    [entry('topics:', '  - "$share/g/a/# out"'), 'upstream[0].topics[0]', 4, 10, 'pattern: a shared subscription ($share/, $queue/) cannot be a bridge pattern'],
    [entry('topics:', '  - "$SYS/# in"'), 'upstream[0].topics[0]', 4, 10, 'pattern: direction in would publish to local topics "$SYS/#"; topics starting with $ are reserved for the broker'],
    [entry('topics:', '  - { direction: in }'), 'upstream[0].topics[0].pattern', 4, 9, 'missing; expected a topic filter such as sensors/#'],
    [entry('topics:', '  - { pattern: 5 }'), 'upstream[0].topics[0].pattern', 4, 20, 'expected a string, got 5 (quote it: YAML read a number)'],
    [entry('topics:', '  - { pattern: "a/#", qos: 3 }'), 'upstream[0].topics[0].qos', 4, 32, 'expected 0, 1 or 2, got 3'],
    [entry('topics:', '  - { pattern: "a/#", direction: up }'), 'upstream[0].topics[0].direction', 4, 38, 'expected one of out, in, both, got "up"'],
    [entry('topics:', '  - { pattern: "a+" }'), 'upstream[0].topics[0].pattern', 4, 20, '+ must fill a whole level, as in sensors/+/temperature'],
    [entry('topics:', '  - { pattern: "a", remote_prefix: "r/#" }'), 'upstream[0].topics[0].remote_prefix', 4, 40, 'a prefix cannot contain the wildcards + or #'],
    [entry('topics:', '  - "a/# out"', '  - "a/# both 1"'), 'upstream[0].topics[1]', 5, 9, 'repeats upstream[0].topics[0]: same pattern and prefixes, and directions out and both overlap; keep one'],
    [entry('prefix: "gateways/{gateway_id}"'), 'upstream[0].prefix', 3, 13, 'must end with / (a mount point is whole topic levels), as in "gateways/{gateway_id}/"'],
    [entry('prefix: "gateways/+/"'), 'upstream[0].prefix', 3, 13, 'a prefix cannot contain the wildcards + or #'],
    [entry('prefix: "{site}/"'), 'upstream[0].prefix', 3, 13, 'unknown placeholder {site}; this key takes {gateway_id}, {name}'],
    [entry('prefix: "$share/g/"'), 'upstream[0].prefix', 3, 13, 'a prefix cannot start with $share/ or $queue/'],
    [entry('reconnect_min: 0'), 'upstream[0].reconnect_min', 3, 20, 'expected a number > 0, got 0'],
    [entry('reconnect_min: 120'), 'upstream[0].reconnect_min', 3, 20, 'above reconnect_max (default 60); set reconnect_max too'],
    [entry('reconnect_min: 5', 'reconnect_max: 2'), 'upstream[0].reconnect_max', 4, 20, 'expected at least reconnect_min (5), got 2'],
    [entry('max_inflight: 0'), 'upstream[0].max_inflight', 3, 19, 'expected an integer 1..65535, got 0'],
    [entry('max_queued_messages: -1'), 'upstream[0].max_queued_messages', 3, 26, 'expected an integer >= 0, got -1'],
    [entry('max_queued_bytes: 1.5'), 'upstream[0].max_queued_bytes', 3, 23, 'expected an integer >= 0, got 1.5'],
    [entry('queue_full_policy: drop_newest'), 'upstream[0].queue_full_policy', 3, 24, 'expected one of drop_oldest, reject_new, got "drop_newest"'],
    [entry('notification_topic: "state/#"'), 'upstream[0].notification_topic', 3, 25, 'a topic to publish to cannot contain the wildcards + or #'],
    [entry('notification_topic: "$SYS/bridge"'), 'upstream[0].notification_topic', 3, 25, 'topics starting with $ are reserved for the broker'],
    [entry('notification_topic: "b/{port}"'), 'upstream[0].notification_topic', 3, 25, 'unknown placeholder {port}; this key takes {gateway_id}, {name}'],
  ]
  for (const [text, field, line, column, message] of cases) {
    test(`${field}: ${JSON.stringify(text.split('\n').slice(2).join(' ').trim() || text)}`, () => {
      assert.deepEqual(onlyProblem(text), { file: FILE, line, column, field, message })
    })
  }
})

describe('upstream: TLS files are checked before start', () => {
  const caProblem = (path: string): ConfigProblem => onlyProblem(tlsEntry(`tls: { ca_file: "${path}" }`))

  test('a missing CA file is refused naming the path; a relative one also as resolved', () => {
    const missing = join(dir, 'nope.pem')
    assert.deepEqual(caProblem(missing), { file: FILE, line: 3, column: 21, field: 'upstream[0].tls.ca_file', message: `no such file: ${missing}` })
    const rel = relative(process.cwd(), missing)
    assert.equal(caProblem(rel).message, `no such file: ${rel} (${missing}: relative to the working directory)`)
  })

  test('a relative path that exists is kept as written', () => {
    const rel = relative(process.cwd(), CA)
    assert.equal(upstream(tlsEntry(`tls: { ca_file: "${rel}" }`))[0]?.tls.caFile, rel)
  })

  test('a directory, a DER file, a key in the certificate slot and an encrypted key are each explained', () => {
    assert.equal(caProblem(join(dir, 'certs')).message, `${join(dir, 'certs')} is a directory; expected a PEM file`)
    assert.equal(caProblem(DER).message, `${DER} is not a PEM file (no -----BEGIN line); a DER file converts with openssl x509 -inform der -in FILE -out FILE.pem`)
    assert.equal(caProblem(KEY).message, `${KEY} holds no -----BEGIN CERTIFICATE-----; it holds a private key, which belongs in key_file`)
    const swapped = problems(tlsEntry(`tls: { cert_file: "${KEY}", key_file: "${CERT}" }`)).map((p) => [p.field, p.message])
    assert.deepEqual(swapped, [
      ['upstream[0].tls.cert_file', `${KEY} holds no -----BEGIN CERTIFICATE-----; it holds a private key, which belongs in key_file`],
      ['upstream[0].tls.key_file', `${CERT} holds no private key; it holds a certificate: are cert_file and key_file swapped?`],
    ])
    const encrypted = onlyProblem(tlsEntry(`tls: { cert_file: "${CERT}", key_file: "${ENCRYPTED}" }`))
    assert.equal(encrypted.message, `${ENCRYPTED} holds an encrypted key; decrypt it with openssl pkey -in FILE -out FILE.key`)
  })

  test('TLS keys are refused with mqtt:// and ws://, and accepted with wss://', () => {
    assert.match(onlyProblem(`upstream:\n  - url: ws://h/mqtt\n    tls: { ca_file: "${CA}" }\n`).message, /did you mean wss:\/\/\?/)
    assert.equal(upstream(`upstream:\n  - url: wss://h/mqtt\n    tls: { ca_file: "${CA}" }\n`)[0]?.tls.caFile, CA)
  })
})

describe('upstream: unknown keys, secrets and duplicates', () => {
  test('an unknown key is named by its full path, with a suggestion', () => {
    assert.deepEqual(onlyProblem(entry('client-id: x')), {
      file: FILE, line: 3, column: 5, field: 'upstream[0].client-id', message: 'unknown key; did you mean upstream[0].client_id?',
    })
    assert.equal(onlyProblem(tlsEntry('tls: { cafile: x }')).message, 'unknown key; did you mean upstream[0].tls.ca_file?')
    assert.deepEqual(problems(entry('topics:', '  - { patern: "a/#" }')).map((p) => p.message), [
      'missing; expected a topic filter such as sensors/#',
      'unknown key; did you mean upstream[0].topics[0].pattern?',
    ])
    assert.equal(onlyProblem('upstreams: []\n').message, 'unknown key; did you mean upstream?')
  })

  test('a bad password is never repeated in the message', () => {
    for (const value of ['123456', 'true', `"${'x'.repeat(70000)}"`]) {
      const p = onlyProblem(entry('username: a', `password: ${value}`))
      assert.ok(!p.message.includes(value.slice(0, 6)), p.message)
    }
  })

  test('two bridges with one name are refused naming the earlier one', () => {
    assert.deepEqual(onlyProblem('upstream:\n  - url: mqtt://a\n    name: x\n  - url: mqtt://b\n    name: x\n'), {
      file: FILE, line: 5, column: 11, field: 'upstream[1].name', message: 'same name as upstream[0] ("x")',
    })
    assert.deepEqual(onlyProblem('upstream:\n  - url: mqtt://h\n    client_id: a\n  - url: mqtts://h\n    client_id: b\n'), {
      file: FILE, line: 4, column: 10, field: 'upstream[1].name', message: 'same name as upstream[0] ("h") (derived from the URL; set name)',
    })
  })

  test('two bridges with one client id on one broker are refused: the broker would drop one for the other', () => {
    assert.deepEqual(onlyProblem('upstream:\n  - { url: mqtt://h, name: a }\n  - { url: "mqtt://H:1883", name: b }\n'), {
      file: FILE,
      line: 3,
      column: 12,
      field: 'upstream[1].client_id',
      message: 'same broker and client id as upstream[0] ("outpost-{gateway_id}"): the broker would drop one link whenever the other connects; put {name} in client_id',
    })
  })

  test('two bridges with one notification topic without {name} are refused', () => {
    const text = 'upstream:\n  - { url: mqtt://a, notification_topic: "gw/state" }\n  - { url: mqtt://b, notification_topic: "gw/state" }\n'
    assert.equal(onlyProblem(text).message, "same as upstream[0]: the two bridges' states would overwrite each other; put {name} in it")
  })

  test('one bad entry keeps the whole section out, and every problem is listed', () => {
    const found = problems('upstream:\n  - url: mqtt://a\n    keepalive: 0\n  - url: tcp://b\n  - url: mqtt://c\n    topics: ["a/# sideways"]\n')
    assert.deepEqual(found.map((p) => p.field), ['upstream[0].keepalive', 'upstream[1].url', 'upstream[2].topics[0]'])
  })
})
