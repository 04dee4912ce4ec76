/**
 * Validates the `listeners:` section into `ListenerConfig[]`: protocol and address, the WebSocket
 * path, TLS (whose files are read and parsed here, so that check-config finds a bad certificate
 * rather than the first client) and each listener's security settings. Like `serial`, the section
 * is taken only when every entry is valid.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createSecureContext } from 'node:tls'
import { isMap, isSeq, type YAMLMap } from 'yaml'
import { defaultConfig, defaultListener } from './defaults.js'
import {
  boolean,
  describeValue,
  integer,
  MQTT_MAX_STRING_BYTES,
  nonEmptyString,
  oneOf,
  pemProblem,
  port,
  protocol,
  quoteIt,
  readableFileProblem,
  utf8String,
  type Rule,
} from './rules.js'
// validate.ts imports readListeners from here. The cycle is safe as long as validate.ts refers only
// to hoisted function declarations from here, and this module's top level calls only `scalar` and
// `checked` from it. validate.js comes first so that, when this module is loaded first, the
// serial modules are still entered the way validate.ts enters them.
import { checked, forEachMapping, plainValue, readMapping, report, scalar, type FieldSpec, type Walk } from './validate.js'
import { find } from './serial-validate-mapping.js'
import type { ListenerConfig, ListenerProtocol, ListenerTls, OutpostConfig } from './types.js'

const filePath: Rule<string> = { ...nonEmptyString, expected: 'a file path', hint: quoteIt }

const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const

const minVersion: Rule<ListenerTls['minVersion']> = {
  ...oneOf(TLS_VERSIONS),
  // YAML reads `1.2` as a number; Mosquitto spells it `tlsv1.2`.
  hint: (v) => {
    const m = typeof v === 'string' || typeof v === 'number' ? /^(?:tls\s*v?)?1(?:\.(\d))?$/i.exec(String(v)) : null
    if (m === null) return undefined
    return m[1] === '2' || m[1] === '3' ? `write TLSv1.${m[1]}` : 'TLS 1.0 and 1.1 are not offered: RFC 8996 retired them'
  },
}

const mountPointString: Rule<string> = { ...utf8String(MQTT_MAX_STRING_BYTES, false), expected: 'a string such as "site1/"' }

/** An HTTP path that the `ws` module compares, as sent by the client, with the request's path. */
function pathProblem(v: string): string | undefined {
  if (!v.startsWith('/')) return `must start with /, as in "/${v}"`
  if (/[?#]/.test(v)) return 'a WebSocket path takes no ?query or #fragment: clients are matched on the path alone'
  if (/[^\x21-\x7e]/.test(v)) return 'only printable ASCII without spaces: the path is compared with the request as sent, so percent-encode anything else'
  return undefined
}

/** Mosquitto's rules for a mount point, plus the trailing `/` that keeps it whole topic levels. */
function mountPointProblem(v: string): string | undefined {
  if (v === '') return undefined
  if (/[+#]/.test(v)) return 'a mount point cannot contain the wildcards + or #'
  if (v.startsWith('$')) return 'a mount point cannot start with $: those topics are reserved for the broker'
  if (v.includes('\u0000')) return 'a mount point cannot contain U+0000'
  if (!v.endsWith('/')) return `must end with / (a mount point is whole topic levels), as in "${v}/"`
  return undefined
}

/** Empty when OpenSSL knows none of the names: Node then fails only when the listener starts. */
function ciphersProblem(v: string): string | undefined {
  try {
    createSecureContext({ ciphers: v })
    return undefined
  } catch {
    return 'OpenSSL knows none of these ciphers; `openssl ciphers -v` lists the ones it has'
  }
}

const reason = (err: unknown): string => (err instanceof Error ? err.message : String(err))

/** Every certificate in a PEM file that `pemProblem` passed; a truncated or corrupt block is named. */
function certificatesProblem(path: string): string | undefined {
  const blocks = readFileSync(path, 'latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []
  if (blocks.length === 0) return `${path} holds no complete certificate (a -----BEGIN CERTIFICATE----- without its -----END line)`
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block)
    } catch (err) {
      const which = blocks.length === 1 ? 'its certificate' : `certificate ${i + 1} of ${blocks.length}`
      return `${path}: ${which} cannot be read (${reason(err)}); is the file cut short or edited?`
    }
  }
  return undefined
}

/**
 * Whether the key in `keyFile` parses and belongs to the first certificate of `certFile`; the two
 * files passed `pemProblem` and `certificatesProblem` already. A mismatched pair is the commonest
 * mistake after a renewal, and Node would only say "key values mismatch" at start.
 */
function keyPairProblem(certFile: string, keyFile: string): string | undefined {
  let key: KeyObject
  try {
    key = createPrivateKey(readFileSync(keyFile))
  } catch (err) {
    return `${keyFile}: its private key cannot be read (${reason(err)})`
  }
  const cert = new X509Certificate(readFileSync(certFile))
  return cert.checkPrivateKey(key) ? undefined : `${keyFile} is not the private key of the certificate in cert_file (${certFile}); were they renewed separately?`
}

/** `tls` as read; certFile and keyFile stay '' until their keys are found. */
function emptyTls(): ListenerTls {
  return { certFile: '', keyFile: '', caFile: undefined, minVersion: 'TLSv1.2', ciphers: undefined, requireCertificate: false, useIdentityAsUsername: false }
}

const TLS_FIELDS: Readonly<Record<string, FieldSpec<ListenerTls>>> = {
  cert_file: checked(filePath, (v) => pemProblem(v, 'certificate') ?? certificatesProblem(v), (t, v) => { t.certFile = v }),
  key_file: checked(filePath, (v) => pemProblem(v, 'key'), (t, v) => { t.keyFile = v }),
  ca_file: checked(filePath, (v) => pemProblem(v, 'certificate') ?? certificatesProblem(v), (t, v) => { t.caFile = v }),
  min_version: scalar(minVersion, (t, v) => { t.minVersion = v }),
  ciphers: checked(nonEmptyString, ciphersProblem, (t, v) => { t.ciphers = v }),
  require_certificate: scalar(boolean, (t, v) => { t.requireCertificate = v }),
  use_identity_as_username: scalar(boolean, (t, v) => { t.useIdentityAsUsername = v }),
}

/** A listener under construction; `port` has no default because two defaulted listeners would collide. */
interface Draft {
  l: ListenerConfig
  port: number | undefined
  /** Keys present in `tls`, valid or not, so that a bad value is not also reported as missing. */
  tlsSeen: ReadonlySet<string>
}

const FIELDS: Readonly<Record<string, FieldSpec<Draft>>> = {
  protocol: scalar(protocol, (d, v) => { d.l.protocol = v }),
  port: scalar(port, (d, v) => { d.port = v }),
  bind: scalar(nonEmptyString, (d, v) => { d.l.bind = v }),
  path: checked(nonEmptyString, pathProblem, (d, v) => { d.l.path = v }),
  tls: {
    read(w, node, offset, field, d) {
      if (!isMap(node)) {
        report(w, offset, field, `expected a mapping with cert_file and key_file, got ${describeValue(plainValue(node))}`)
        return
      }
      const tls = emptyTls()
      d.tlsSeen = readMapping(w, node, field, TLS_FIELDS, tls)
      d.l.tls = tls
    },
  },
  allow_anonymous: scalar(boolean, (d, v) => { d.l.allowAnonymous = v }),
  password_file: checked(filePath, readableFileProblem, (d, v) => { d.l.passwordFile = v }),
  acl_file: checked(filePath, readableFileProblem, (d, v) => { d.l.aclFile = v }),
  max_connections: scalar(integer(0), (d, v) => { d.l.maxConnections = v }),
  mount_point: checked(mountPointString, mountPointProblem, (d, v) => { d.l.mountPoint = v }),
}

/** Every key a `listeners` entry accepts. */
export const LISTENER_KEYS: readonly string[] = Object.keys(FIELDS)
/** Every key of `listeners[].tls`. */
export const LISTENER_TLS_KEYS: readonly string[] = Object.keys(TLS_FIELDS)

const isSecure = (p: ListenerProtocol): boolean => p === 'mqtts' || p === 'wss'
const isWebSocket = (p: ListenerProtocol): boolean => p === 'ws' || p === 'wss'

/** Reads one entry; undefined (with problems reported) when it is not usable. */
function readEntry(w: Walk, item: YAMLMap, at: number, path: string, bind: string): ListenerConfig | undefined {
  const d: Draft = { l: defaultListener('mqtt', 0, bind), port: undefined, tlsSeen: new Set() }
  const before = w.problems.length
  const seen = readMapping(w, item, path, FIELDS, d)
  if (!seen.has('port')) report(w, at, `${path}.port`, `missing; expected ${port.expected}`)
  // The checks below need the keys they compare to be valid; a bad one is reported already.
  const bad = new Set(w.problems.slice(before).map((p) => p.field))
  const ok = (key: string): boolean => !bad.has(`${path}.${key}`)
  const blame = (keys: string[], message: string): void => report(w, find(w, item, keys, at), `${path}.${keys.join('.')}`, message)
  const { l } = d
  const named = `protocol ${l.protocol}${seen.has('protocol') ? '' : ' (the default)'}`
  // When tls is refused for the protocol, what is missing inside it is beside the point.
  const tlsRefused = ok('protocol') && !isSecure(l.protocol) && seen.has('tls')
  if (ok('protocol')) {
    if (isSecure(l.protocol) && !seen.has('tls')) report(w, at, `${path}.tls`, `missing; protocol ${l.protocol} needs tls with cert_file and key_file`)
    if (tlsRefused) blame(['tls'], `only with protocol mqtts or wss; this listener has ${named}: did you mean protocol: ${l.protocol}s?`)
    if (!isWebSocket(l.protocol) && seen.has('path')) blame(['path'], `only with protocol ws or wss; this listener has ${named}`)
  }
  const tls = l.tls
  if (tls !== undefined && !tlsRefused) {
    const tlsOk = (key: string): boolean => ok(`tls.${key}`)
    for (const [key, example] of [['cert_file', 'server.crt'], ['key_file', 'server.key']] as const) {
      if (!d.tlsSeen.has(key)) report(w, find(w, item, ['tls'], at), `${path}.tls.${key}`, `missing; expected a PEM file such as /etc/outpost/${example}`)
    }
    if (d.tlsSeen.has('cert_file') && d.tlsSeen.has('key_file') && tlsOk('cert_file') && tlsOk('key_file')) {
      const why = keyPairProblem(tls.certFile, tls.keyFile)
      if (why !== undefined) blame(['tls', 'key_file'], why)
    }
    if (tls.requireCertificate && !d.tlsSeen.has('ca_file')) {
      blame(['tls', 'require_certificate'], 'needs tls.ca_file: the CA certificate(s) that client certificates must be signed by')
    }
    if (tls.useIdentityAsUsername && tlsOk('require_certificate') && !tls.requireCertificate) {
      blame(['tls', 'use_identity_as_username'], 'only with tls.require_certificate: true: without a verified client certificate there is no identity to use')
    }
  }
  if (w.problems.length > before || d.port === undefined) return undefined
  l.port = d.port
  return l
}

export function readListeners(w: Walk, node: unknown, offset: number, field: string, target: OutpostConfig): void {
  if (isSeq(node) && node.items.length === 0) {
    report(w, offset, field, 'expected at least one listener, got an empty list')
    return
  }
  const fallbackBind = defaultConfig().listeners[0]?.bind ?? '127.0.0.1'
  const listeners: ListenerConfig[] = []
  const firstAt = new Map<string, number>()
  const example = { list: 'a list of listeners', item: 'a mapping with a port (for example - port: 1883)' }
  const allValid = forEachMapping(w, node, offset, field, example, (item, at, path, i) => {
    const listener = readEntry(w, item, at, path, fallbackBind)
    if (listener === undefined) return false
    // Port 0 asks the OS for a free port, so several port-0 listeners never collide.
    const where = `${listener.bind}:${listener.port}`
    const earlier = firstAt.get(where)
    if (listener.port !== 0 && earlier !== undefined) {
      report(w, at, path, `same bind and port as ${field}[${earlier}] (${where})`)
      return false
    }
    firstAt.set(where, i)
    listeners.push(listener)
    return true
  })
  if (allValid === true) target.listeners = listeners
}
