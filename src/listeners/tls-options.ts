import { readFileSync } from 'node:fs'
import type { PeerCertificate, TlsOptions } from 'node:tls'
import type { ListenerTls } from '../config/types.js'

/**
 * Node TLS server options from a listener's `tls` settings. The files are read here, at start
 * and again on each reload, so a renewed certificate (certbot, an internal CA) is picked up by
 * SIGHUP without dropping a connection.
 */
export function tlsServerOptions(tls: ListenerTls): TlsOptions {
  return {
    cert: readFileSync(tls.certFile),
    key: readFileSync(tls.keyFile),
    ...(tls.caFile === undefined ? {} : { ca: readFileSync(tls.caFile) }),
    minVersion: tls.minVersion,
    ...(tls.ciphers === undefined ? {} : { ciphers: tls.ciphers }),
    // Asked for when required, so the handshake fails for a client without a valid one.
    requestCert: tls.requireCertificate,
    rejectUnauthorized: tls.requireCertificate,
  }
}

/** The subject CN of a verified peer certificate, for `use_identity_as_username`. */
export function peerCommonName(cert: PeerCertificate | undefined): string | undefined {
  // An empty object when the peer sent none; the CN may be repeated, the first one counts.
  const cn: unknown = cert?.subject?.CN
  const first = Array.isArray(cn) ? (cn[0] as unknown) : cn
  return typeof first === 'string' && first !== '' ? first : undefined
}
