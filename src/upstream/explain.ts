/**
 * Why an upstream connection failed, in words an operator can act on. Node and MQTT.js report
 * TLS and CONNACK failures as codes (`UNABLE_TO_VERIFY_LEAF_SIGNATURE`, CONNACK 5); the log line
 * should say "the broker's certificate is not signed by a CA we trust (set tls.ca_file)".
 */

export type FailureKind = 'certificate' | 'name' | 'expired' | 'auth' | 'refused' | 'network' | 'protocol' | 'other'

export interface Failure {
  readonly kind: FailureKind
  /** The sentence for the log. */
  readonly reason: string
  /** The raw code, for searching. */
  readonly code: string | number | undefined
}

const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
])

const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE'])

/** MQTT 3.1.1 CONNACK return codes and the MQTT 5 reason codes that mean the same. */
const CONNACK: Readonly<Record<number, [FailureKind, string]>> = {
  1: ['protocol', 'the broker does not accept this MQTT protocol version (try protocol_version)'],
  2: ['refused', 'the broker refused the client id'],
  3: ['refused', 'the broker is unavailable'],
  4: ['auth', 'bad username or password'],
  5: ['auth', 'not authorized'],
  0x84: ['protocol', 'the broker does not accept this MQTT protocol version (try protocol_version)'],
  0x85: ['refused', 'the broker refused the client id'],
  0x86: ['auth', 'bad username or password'],
  0x87: ['auth', 'not authorized'],
  0x88: ['refused', 'the broker is unavailable'],
  0x89: ['refused', 'the broker is busy'],
  0x8a: ['refused', 'this client is banned'],
  0x8c: ['auth', 'bad authentication method'],
}

export function explain(err: unknown, host: string): Failure {
  const code = errorCode(err)
  const message = err instanceof Error ? err.message : String(err)
  if (typeof code === 'string') {
    if (code === 'CERT_HAS_EXPIRED') return { kind: 'expired', code, reason: `the broker's certificate has expired (or this machine's clock is wrong: ${new Date().toISOString()})` }
    if (code === 'CERT_NOT_YET_VALID') return { kind: 'expired', code, reason: `the broker's certificate is not valid yet (is this machine's clock right? it says ${new Date().toISOString()})` }
    if (UNTRUSTED.has(code)) return { kind: 'certificate', code, reason: `the broker's certificate is not signed by a CA we trust (${code}); set tls.ca_file to its CA` }
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return { kind: 'name', code, reason: `the broker's certificate is not for ${host} (${message}); fix the URL or set tls.server_name` }
    if (NETWORK.has(code)) return { kind: 'network', code, reason: `${code}: ${message}` }
  }
  if (typeof code === 'number') {
    const known = CONNACK[code]
    if (known !== undefined) return { kind: known[0], code, reason: `the broker refused the connection: ${known[1]} (CONNACK ${code})` }
    return { kind: 'refused', code, reason: `the broker refused the connection (CONNACK ${code}): ${message}` }
  }
  if (/keepalive|timeout/i.test(message)) return { kind: 'network', code, reason: `no answer within the keepalive (${message}); the link is half-open or the broker is gone` }
  return { kind: 'other', code, reason: message }
}

function errorCode(err: unknown): string | number | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined
  const code = err.code
  return typeof code === 'string' || typeof code === 'number' ? code : undefined
}
