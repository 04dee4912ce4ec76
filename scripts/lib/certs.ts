/**
 * Certificates for the upstream-bridge TLS tests, made fresh by each test with the `openssl` CLI
 * (OpenSSL 3, Debian's /usr/bin/openssl): nothing is checked in and nothing is shared between
 * tests, so an expiry date or a key can never go stale.
 *
 * Keys are EC prime256v1: generating one takes about a millisecond where RSA 2048 takes tens,
 * and Mosquitto 2.0.11 (built on the same OpenSSL 3) serves them.
 *
 * The EXPIRED certificate needs a validity period in the past. `openssl x509 -req` only has
 * `-days` (`-not_before`/`-not_after` arrived in OpenSSL 3.4), so every leaf is signed with
 * `openssl ca`, whose `-startdate`/`-enddate` take absolute dates; that needs a small CA config
 * and database, written to `dir` alongside the certificates.
 */
import { execFile } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** The openssl binary: OPENSSL_BIN when set, else whatever `openssl` is on PATH. */
const OPENSSL = process.env.OPENSSL_BIN ?? 'openssl'

/** A certificate and its private key, as PEM file paths. */
export interface CertPair {
  readonly cert: string
  readonly key: string
}

export interface Certs {
  readonly dir: string
  /** The test CA: clients trust `ca.cert`; the broker verifies client certificates with it. */
  readonly ca: CertPair
  /** Signed by `ca`, valid now, SAN DNS:localhost and IP:127.0.0.1 (plus `extraServerNames`). */
  readonly server: CertPair
  /** Signed by `ca`, valid now, but SAN DNS:wrong.example only: a name mismatch for localhost. */
  readonly wrongName: CertPair
  /** Signed by `ca`, right names, valid only from 2020-01-01 to 2020-01-02. */
  readonly expired: CertPair
  /** Signed by `ca`, CN=outpost-gw (or `clientCn`), extendedKeyUsage clientAuth. */
  readonly client: CertPair
  /**
   * An unrelated self-signed CA: trusting it instead of `ca` gives "unknown CA"; a client
   * certificate it signed (`otherClient`) is refused by a broker that requires certificates.
   */
  readonly otherCa: CertPair
  /** Signed by `otherCa`, CN=outpost-gw: the right name from the wrong issuer. */
  readonly otherClient: CertPair
}

export interface CertOptions {
  /** Extra subjectAltName entries for `server`, in openssl syntax (`DNS:x`, `IP:1.2.3.4`). */
  extraServerNames?: readonly string[]
  /** The client certificate's CN; default `outpost-gw`. */
  clientCn?: string
}

const SERVER_NAMES = ['DNS:localhost', 'IP:127.0.0.1']

/** Our own config, so the host's openssl.cnf (its default extensions and policy) plays no part. */
function opensslConfig(dir: string, serverNames: readonly string[]): string {
  return `# Written by scripts/lib/certs.ts
[ req ]
distinguished_name = req_dn
prompt = no

[ req_dn ]
CN = unused

[ ca ]
default_ca = test_ca

[ test_ca ]
database = ${join(dir, 'index.txt')}
new_certs_dir = ${join(dir, 'issued')}
serial = ${join(dir, 'serial')}
default_md = sha256
policy = policy_any
# Several leaves share a subject (server and expired are both CN=localhost).
unique_subject = no
copy_extensions = none

[ policy_any ]
commonName = supplied

[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = ${serverNames.join(', ')}

[ wrong_name_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:wrong.example

[ client_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`
}

async function openssl(args: readonly string[]): Promise<void> {
  try {
    await run(OPENSSL, args)
  } catch (err) {
    // execFile's error carries stderr, which names the real problem (bad config line, bad date).
    const stderr = typeof err === 'object' && err !== null && 'stderr' in err ? String(err.stderr) : ''
    throw new Error(`${OPENSSL} ${args.join(' ')} failed (Debian/Ubuntu: apt-get install openssl): ${err instanceof Error ? err.message : String(err)}\n${stderr}`)
  }
}

const NEW_EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

/**
 * Makes every certificate of {@link Certs} in `dir` (which must exist; a test's temp dir).
 * Takes about 0.1 s: a dozen short openssl processes.
 */
export async function makeCerts(dir: string, options: CertOptions = {}): Promise<Certs> {
  const cnf = join(dir, 'openssl.cnf')
  await writeFile(cnf, opensslConfig(dir, [...SERVER_NAMES, ...(options.extraServerNames ?? [])]))
  await writeFile(join(dir, 'index.txt'), '')
  await writeFile(join(dir, 'serial'), '1000\n')
  await mkdir(join(dir, 'issued'))

  const pair = (name: string): CertPair => ({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) })
  const certs: Certs = {
    dir,
    ca: pair('ca'),
    server: pair('server'),
    wrongName: pair('wrong-name'),
    expired: pair('expired'),
    client: pair('client'),
    otherCa: pair('other-ca'),
    otherClient: pair('other-client'),
  }
  const clientCn = options.clientCn ?? 'outpost-gw'

  const selfSigned = (p: CertPair, cn: string): Promise<void> =>
    openssl(['req', '-config', cnf, '-x509', ...NEW_EC_KEY, '-keyout', p.key, '-out', p.cert, '-days', '3650', '-subj', `/CN=${cn}`, '-extensions', 'ca_ext'])
  const request = (p: CertPair, cn: string): Promise<void> => openssl(['req', '-config', cnf, '-new', ...NEW_EC_KEY, '-keyout', p.key, '-out', `${p.cert}.csr`, '-subj', `/CN=${cn}`])
  // `openssl ca` keeps its database and serial in files, so signings run one at a time.
  const sign = (p: CertPair, issuer: CertPair, extensions: string, validity: readonly string[]): Promise<void> =>
    openssl(['ca', '-config', cnf, '-batch', '-notext', '-cert', issuer.cert, '-keyfile', issuer.key, '-in', `${p.cert}.csr`, '-out', p.cert, '-extensions', extensions, ...validity])

  // Keys and requests are independent processes: make them in parallel.
  await Promise.all([
    selfSigned(certs.ca, 'Outpost Test CA'),
    selfSigned(certs.otherCa, 'Some Other CA'),
    request(certs.server, 'localhost'),
    request(certs.wrongName, 'wrong.example'),
    request(certs.expired, 'localhost'),
    request(certs.client, clientCn),
    request(certs.otherClient, clientCn),
  ])
  const valid = ['-days', '365']
  await sign(certs.server, certs.ca, 'server_ext', valid)
  await sign(certs.wrongName, certs.ca, 'wrong_name_ext', valid)
  await sign(certs.expired, certs.ca, 'server_ext', ['-startdate', '20200101000000Z', '-enddate', '20200102000000Z'])
  await sign(certs.client, certs.ca, 'client_ext', valid)
  await sign(certs.otherClient, certs.otherCa, 'client_ext', valid)
  return certs
}
