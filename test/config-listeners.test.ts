/**
 * The `listeners:` section (issue 7): mqtt, mqtts, ws and wss listeners, TLS files checked and
 * parsed before start, per-listener security settings, and the top-level `connect_timeout`.
 * Certificates are real ones made by openssl for this run (scripts/lib/certs.ts).
 */
import * as assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { after, describe, test } from 'node:test'
import { makeCerts } from '../scripts/lib/certs.js'
import { defaultListener } from '../src/config/defaults.js'
import { applyOverrides, parseConfigText } from '../src/config/load.js'
import type { ListenerConfig, ListenerTls } from '../src/config/types.js'
import { FILE, onlyProblem, problems } from './helpers/config-problems.js'
import { OUTPOST_CLI as CLI } from './helpers/outpost-process.js'

const dir = mkdtempSync(join(tmpdir(), 'outpost-listeners-'))
after(() => rmSync(dir, { recursive: true, force: true }))
const certs = await makeCerts(dir)
const file = (name: string, text: string | Buffer): string => {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}
const CERT = certs.server.cert
const KEY = certs.server.key
const CA = certs.ca.cert
const openssl = (...args: string[]): Buffer => execFileSync('openssl', args)
const ENCRYPTED = file('encrypted.key', openssl('pkey', '-in', KEY, '-aes256', '-passout', 'pass:secret'))
const DER = file('server.der', openssl('x509', '-in', CERT, '-outform', 'der'))
const CHAIN = file('chain.crt', readFileSync(CERT, 'latin1') + readFileSync(CA, 'latin1'))
const COMBINED = file('combined.pem', readFileSync(KEY, 'latin1') + readFileSync(CERT, 'latin1'))
// A certificate cut in the middle of its base64, the END line kept: what a bad copy-paste leaves.
const CORRUPT = file('corrupt.crt', readFileSync(CERT, 'latin1').replace(/^([\s\S]{200})[\s\S]*?(-----END)/, '$1\n$2'))
const PASSWD = file('passwd', 'alice:$7$101$c2FsdA==$aGFzaA==\n')
const ACL = file('acl', 'topic read $SYS/#\n')
const MISSING = join(dir, 'nope.crt')
const SUBDIR = join(dir, 'certs')
mkdirSync(SUBDIR)

const listeners = (text: string): ListenerConfig[] => parseConfigText(text, FILE).listeners
/** One listener on port 8883 with `lines` added; they start on line 3, column 5. */
const entry = (...lines: string[]): string => `listeners:\n  - port: 8883\n${lines.map((l) => `    ${l}\n`).join('')}`
/** An mqtts listener whose `tls:` mapping holds `lines`, from line 5, column 7. */
const secure = (...lines: string[]): string => entry('protocol: mqtts', 'tls:', ...lines.map((l) => `  ${l}`))
const PAIR = [`cert_file: ${CERT}`, `key_file: ${KEY}`]
const tlsOf = (over: Partial<ListenerTls> = {}): ListenerTls => ({
  certFile: CERT, keyFile: KEY, caFile: undefined, minVersion: 'TLSv1.2', ciphers: undefined, requireCertificate: false, useIdentityAsUsername: false, ...over,
})

describe('listeners: valid input', () => {
  test('every key of every protocol is read from its snake_case spelling', () => {
    const text = `
connect_timeout: 5
listeners:
  - protocol: mqtt
    port: 1883
    allow_anonymous: true
  - protocol: mqtts
    port: 8883
    bind: 0.0.0.0
    tls:
      cert_file: ${CERT}
      key_file: ${KEY}
      ca_file: ${CA}
      min_version: TLSv1.3
      ciphers: "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384"
      require_certificate: true
      use_identity_as_username: true
    allow_anonymous: false
    password_file: ${PASSWD}
    acl_file: ${ACL}
    max_connections: 100
    mount_point: "site1/"
  - protocol: ws
    port: 8080
    bind: "::"
    path: /
  - protocol: wss
    port: 8884
    bind: 0.0.0.0
    path: /mqtt/v1
    tls: { cert_file: ${CERT}, key_file: ${KEY} }
    password_file: ${PASSWD}
    mount_point: ""
`
    const config = parseConfigText(text, FILE)
    assert.equal(config.connectTimeout, 5)
    const expected: ListenerConfig[] = [
      { ...defaultListener('mqtt', 1883, '127.0.0.1'), allowAnonymous: true },
      {
        protocol: 'mqtts',
        port: 8883,
        bind: '0.0.0.0',
        path: '/mqtt',
        tls: {
          certFile: CERT,
          keyFile: KEY,
          caFile: CA,
          minVersion: 'TLSv1.3',
          ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384',
          requireCertificate: true,
          useIdentityAsUsername: true,
        },
        allowAnonymous: false,
        passwordFile: PASSWD,
        aclFile: ACL,
        maxConnections: 100,
        mountPoint: 'site1/',
      },
      { ...defaultListener('ws', 8080, '::'), path: '/' },
      { ...defaultListener('wss', 8884, '0.0.0.0'), path: '/mqtt/v1', tls: tlsOf(), passwordFile: PASSWD },
    ]
    assert.deepEqual(config.listeners, expected)
  })

  test('defaults per protocol: path /mqtt, no tls on mqtt and ws, TLS 1.2 and no client certificates on mqtts and wss', () => {
    const text = [
      'listeners:',
      '  - { port: 1 }',
      '  - { port: 2, protocol: ws }',
      `  - { port: 3, protocol: mqtts, tls: { cert_file: ${CERT}, key_file: ${KEY} } }`,
      `  - { port: 4, protocol: wss, tls: { cert_file: ${CERT}, key_file: ${KEY} } }`,
    ].join('\n')
    assert.deepEqual(listeners(text), [
      defaultListener('mqtt', 1, '127.0.0.1'),
      defaultListener('ws', 2, '127.0.0.1'),
      { ...defaultListener('mqtts', 3, '127.0.0.1'), tls: tlsOf() },
      { ...defaultListener('wss', 4, '127.0.0.1'), tls: tlsOf() },
    ])
    const [mqtt] = listeners(text)
    assert.equal(mqtt?.path, '/mqtt')
    assert.equal(mqtt?.tls, undefined)
    assert.equal(mqtt?.allowAnonymous, undefined, 'absent means: decided by the bind address at run time')
  })

  test('connect_timeout: 10 by default, 0 (no limit) allowed', () => {
    assert.equal(parseConfigText('', FILE).connectTimeout, 10)
    assert.equal(parseConfigText('connect_timeout: 0\n', FILE).connectTimeout, 0)
  })

  test('a certificate chain, one file holding both key and certificate, and relative paths are accepted as written', () => {
    assert.equal(listeners(secure(`cert_file: ${CHAIN}`, `key_file: ${KEY}`))[0]?.tls?.certFile, CHAIN)
    assert.deepEqual(listeners(secure(`cert_file: ${COMBINED}`, `key_file: ${COMBINED}`))[0]?.tls, tlsOf({ certFile: COMBINED, keyFile: COMBINED }))
    const [rc, rk] = [relative(process.cwd(), CERT), relative(process.cwd(), KEY)]
    assert.deepEqual(listeners(secure(`cert_file: ${rc}`, `key_file: ${rk}`))[0]?.tls, tlsOf({ certFile: rc, keyFile: rk }))
  })

  test('require_certificate with ca_file, and use_identity_as_username with both', () => {
    const tls = listeners(secure(...PAIR, `ca_file: ${CA}`, 'require_certificate: true', 'use_identity_as_username: true'))[0]?.tls
    assert.deepEqual(tls, tlsOf({ caFile: CA, requireCertificate: true, useIdentityAsUsername: true }))
  })

  test('mqtt and ws may share a port on different addresses; several port-0 listeners of any kind never collide', () => {
    assert.equal(listeners('listeners:\n  - { port: 1883 }\n  - { port: 1883, bind: 0.0.0.0, protocol: ws }\n').length, 2)
    assert.equal(listeners('listeners:\n  - { port: 0 }\n  - { port: 0, protocol: ws }\n').length, 2)
  })

  test('--port and --bind change the first listener only and keep its TLS and security settings', () => {
    const config = parseConfigText(secure(...PAIR) + `    password_file: ${PASSWD}\n  - { port: 1883 }\n`, FILE)
    const out = applyOverrides(config, { port: 9883, bind: '0.0.0.0' })
    assert.deepEqual(out.listeners[0], { ...defaultListener('mqtts', 9883, '0.0.0.0'), tls: tlsOf(), passwordFile: PASSWD })
    assert.deepEqual(out.listeners[1], defaultListener('mqtt', 1883, '127.0.0.1'))
  })
})

describe('listeners: each bad value is one problem with file, line, column and field', () => {
  // [yaml text, field, line, column, expected message]
  const cases: Array<[string, string, number, number, string]> = [
    // Protocols, and which keys go with which.
    [entry('protocol: websockets'), 'listeners[0].protocol', 3, 15, 'expected one of mqtt, mqtts, ws, wss, got "websockets" (write ws, or wss for TLS)'],
    [entry('protocol: MQTTS'), 'listeners[0].protocol', 3, 15, 'expected one of mqtt, mqtts, ws, wss, got "MQTTS" (write mqtts in lower case)'],
    [entry('protocol: ssl'), 'listeners[0].protocol', 3, 15, 'expected one of mqtt, mqtts, ws, wss, got "ssl" (write mqtts)'],
    [entry(`tls: { cert_file: ${CERT}, key_file: ${KEY} }`), 'listeners[0].tls', 3, 10, 'only with protocol mqtts or wss; this listener has protocol mqtt (the default): did you mean protocol: mqtts?'],
    [entry('protocol: ws', `tls: { cert_file: ${CERT}, key_file: ${KEY} }`), 'listeners[0].tls', 4, 10, 'only with protocol mqtts or wss; this listener has protocol ws: did you mean protocol: wss?'],
    [entry('protocol: mqtts'), 'listeners[0].tls', 2, 5, 'missing; protocol mqtts needs tls with cert_file and key_file'],
    [entry('protocol: wss'), 'listeners[0].tls', 2, 5, 'missing; protocol wss needs tls with cert_file and key_file'],
    [entry('protocol: mqtts', 'tls: true'), 'listeners[0].tls', 4, 10, 'expected a mapping with cert_file and key_file, got true'],
    [entry('path: /mqtt'), 'listeners[0].path', 3, 11, 'only with protocol ws or wss; this listener has protocol mqtt (the default)'],
    [entry('protocol: mqtts', `tls: { cert_file: ${CERT}, key_file: ${KEY} }`, 'path: /mqtt'), 'listeners[0].path', 5, 11, 'only with protocol ws or wss; this listener has protocol mqtts'],
    // The WebSocket path.
    [entry('protocol: ws', 'path: mqtt'), 'listeners[0].path', 4, 11, 'must start with /, as in "/mqtt"'],
    [entry('protocol: ws', 'path: "/mqtt?v=5"'), 'listeners[0].path', 4, 11, 'a WebSocket path takes no ?query or #fragment: clients are matched on the path alone'],
    [entry('protocol: ws', 'path: "/my path"'), 'listeners[0].path', 4, 11, 'only printable ASCII without spaces: the path is compared with the request as sent, so percent-encode anything else'],
    [entry('protocol: ws', 'path: ""'), 'listeners[0].path', 4, 11, 'expected a non-empty string, got ""'],
    // TLS keys and files.
    [secure(`key_file: ${KEY}`), 'listeners[0].tls.cert_file', 5, 7, 'missing; expected a PEM file such as /etc/outpost/server.crt'],
    [secure(`cert_file: ${CERT}`), 'listeners[0].tls.key_file', 5, 7, 'missing; expected a PEM file such as /etc/outpost/server.key'],
    [secure(`cert_file: ${MISSING}`, `key_file: ${KEY}`), 'listeners[0].tls.cert_file', 5, 18, `no such file: ${MISSING}`],
    [secure(`cert_file: ${SUBDIR}`, `key_file: ${KEY}`), 'listeners[0].tls.cert_file', 5, 18, `${SUBDIR} is a directory; expected a PEM file`],
    [secure(`cert_file: ${DER}`, `key_file: ${KEY}`), 'listeners[0].tls.cert_file', 5, 18, `${DER} is not a PEM file (no -----BEGIN line); a DER file converts with openssl x509 -inform der -in FILE -out FILE.pem`],
    [secure(`cert_file: ${CERT}`, `key_file: ${ENCRYPTED}`), 'listeners[0].tls.key_file', 6, 17, `${ENCRYPTED} holds an encrypted key; decrypt it with openssl pkey -in FILE -out FILE.key`],
    [secure(`cert_file: ${CERT}`, `key_file: ${certs.client.key}`), 'listeners[0].tls.key_file', 6, 17, `${certs.client.key} is not the private key of the certificate in cert_file (${CERT}); were they renewed separately?`],
    [secure(`cert_file: ${CERT}`, `key_file: ${CERT}`), 'listeners[0].tls.key_file', 6, 17, `${CERT} holds no private key; it holds a certificate: are cert_file and key_file swapped?`],
    [secure(...PAIR, `ca_file: ${KEY}`), 'listeners[0].tls.ca_file', 7, 16, `${KEY} holds no -----BEGIN CERTIFICATE-----; it holds a private key, which belongs in key_file`],
    [secure(...PAIR, 'require_certificate: true'), 'listeners[0].tls.require_certificate', 7, 28, 'needs tls.ca_file: the CA certificate(s) that client certificates must be signed by'],
    [secure(...PAIR, 'use_identity_as_username: true'), 'listeners[0].tls.use_identity_as_username', 7, 33, 'only with tls.require_certificate: true: without a verified client certificate there is no identity to use'],
    [secure(...PAIR, `ca_file: ${CA}`, 'require_certificate: false', 'use_identity_as_username: true'), 'listeners[0].tls.use_identity_as_username', 9, 33, 'only with tls.require_certificate: true: without a verified client certificate there is no identity to use'],
    [secure(...PAIR, 'require_certificate: 1'), 'listeners[0].tls.require_certificate', 7, 28, 'expected true or false, got 1'],
    [secure(...PAIR, 'min_version: TLSv1.1'), 'listeners[0].tls.min_version', 7, 20, 'expected one of TLSv1.2, TLSv1.3, got "TLSv1.1" (TLS 1.0 and 1.1 are not offered: RFC 8996 retired them)'],
    [secure(...PAIR, 'min_version: 1.2'), 'listeners[0].tls.min_version', 7, 20, 'expected one of TLSv1.2, TLSv1.3, got 1.2 (write TLSv1.2)'],
    [secure(...PAIR, 'min_version: tlsv1.3'), 'listeners[0].tls.min_version', 7, 20, 'expected one of TLSv1.2, TLSv1.3, got "tlsv1.3" (write TLSv1.3)'],
    [secure(...PAIR, 'ciphers: NO-SUCH-CIPHER'), 'listeners[0].tls.ciphers', 7, 16, 'OpenSSL knows none of these ciphers; `openssl ciphers -v` lists the ones it has'],
    [secure(...PAIR, 'ciphers: ""'), 'listeners[0].tls.ciphers', 7, 16, 'expected a non-empty string, got ""'],
    [secure(...PAIR, 'cert_fle: x'), 'listeners[0].tls.cert_fle', 7, 7, 'unknown key; did you mean listeners[0].tls.cert_file?'],
    // Security settings.
    [entry('allow_anonymous: yes'), 'listeners[0].allow_anonymous', 3, 22, 'expected true or false, got "yes" (YAML 1.2 booleans are only true and false)'],
    [entry(`password_file: ${MISSING}`), 'listeners[0].password_file', 3, 20, `no such file: ${MISSING}`],
    [entry(`acl_file: ${SUBDIR}`), 'listeners[0].acl_file', 3, 15, `${SUBDIR} is a directory; expected a file`],
    [entry('acl_file: ""'), 'listeners[0].acl_file', 3, 15, 'expected a file path, got ""'],
    [entry('max_connections: -1'), 'listeners[0].max_connections', 3, 22, 'expected an integer >= 0, got -1'],
    [entry('max_connections: "10"'), 'listeners[0].max_connections', 3, 22, 'expected an integer >= 0, got "10" (remove the quotes: a quoted number is a string)'],
    [entry('mount_point: "site1/#"'), 'listeners[0].mount_point', 3, 18, 'a mount point cannot contain the wildcards + or #'],
    [entry('mount_point: "+/"'), 'listeners[0].mount_point', 3, 18, 'a mount point cannot contain the wildcards + or #'],
    [entry('mount_point: "$SYS/"'), 'listeners[0].mount_point', 3, 18, 'a mount point cannot start with $: those topics are reserved for the broker'],
    [entry('mount_point: site1'), 'listeners[0].mount_point', 3, 18, 'must end with / (a mount point is whole topic levels), as in "site1/"'],
    [entry('mount_point: 7'), 'listeners[0].mount_point', 3, 18, 'expected a string such as "site1/", got 7 (quote it: YAML read a number)'],
    [entry('mount_pont: a/'), 'listeners[0].mount_pont', 3, 5, 'unknown key; did you mean listeners[0].mount_point?'],
    // Between listeners.
    ['listeners:\n  - { port: 1883 }\n  - { port: 1883, protocol: ws }\n', 'listeners[1]', 3, 5, 'same bind and port as listeners[0] (127.0.0.1:1883)'],
  ]
  for (const [text, field, line, column, message] of cases) {
    // The temp dir is left out of the name, so that a run's test names are the same every time.
    test(`${field}: ${message.replaceAll(`${dir}/`, '').slice(0, 80)}`, () => {
      assert.deepEqual(onlyProblem(text), { file: FILE, line, column, field, message })
    })
  }

  test('a corrupt certificate is refused with OpenSSL\'s reason', () => {
    const p = onlyProblem(secure(`cert_file: ${CORRUPT}`, `key_file: ${KEY}`))
    assert.deepEqual([p.field, p.line, p.column], ['listeners[0].tls.cert_file', 5, 18])
    assert.match(p.message, new RegExp(`^${CORRUPT}: its certificate cannot be read \\(.+\\); is the file cut short or edited\\?$`))
  })

  test('an unreadable password file is refused', () => {
    const locked = file('locked', 'alice:x\n')
    execFileSync('chmod', ['000', locked])
    const message = `cannot read ${locked}: permission denied`
    if (process.getuid?.() !== 0) {
      assert.equal(onlyProblem(entry(`password_file: ${locked}`)).message, message)
      return
    }
    // Root reads everything, so the check runs where a service user would be: the built CLI,
    // as `nobody`, on a config it can read naming the file it cannot.
    execFileSync('chmod', ['755', dir])
    const config = file('locked.yaml', entry(`password_file: ${locked}`))
    execFileSync('chmod', ['644', config])
    let stderr = ''
    try {
      execFileSync(process.execPath, [CLI, 'check-config', config], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'] })
    } catch (err) {
      stderr = err instanceof Error && 'stderr' in err ? String(err.stderr) : String(err)
    }
    assert.match(stderr, new RegExp(`listeners\\[0\\]\\.password_file: ${message.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`))
  })
})

describe('listeners: every problem in one run', () => {
  test('problems from several listeners and their tls come together, in file order', () => {
    const text = [
      'listeners:', //                                  1
      '  - protocol: mqtts', //                         2
      '    port: 8883', //                              3
      '    tls:', //                                    4
      `      cert_file: ${MISSING}`, //               5
      `      key_file: ${ENCRYPTED}`, //              6
      '      min_version: TLSv1', //                    7
      '      requre_certificate: true', //              8
      '  - protocol: ws', //                            9
      '    port: 8080', //                              10
      '    path: mqtt', //                              11
      '    mount_point: "a/#"', //                      12
      '  - port: 1883', //                              13
      '    tls: {}', //                                 14
      'connect_timeout: 1.5', //                        15
    ].join('\n')
    assert.deepEqual(problems(text).map((p) => [p.line, p.column, p.field]), [
      [5, 18, 'listeners[0].tls.cert_file'],
      [6, 17, 'listeners[0].tls.key_file'],
      [7, 20, 'listeners[0].tls.min_version'],
      [8, 7, 'listeners[0].tls.requre_certificate'],
      [11, 11, 'listeners[1].path'],
      [12, 18, 'listeners[1].mount_point'],
      [14, 10, 'listeners[2].tls'],
      [15, 18, 'connect_timeout'],
    ])
  })
})
