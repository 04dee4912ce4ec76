import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * A throwaway CA and a server certificate for the upstream run's TLS listener, made with the
 * `openssl` CLI in the run's temp dir: nothing is checked in, so nothing expires under the bench.
 * EC prime256v1 keys, as in the tests (test/helpers/certs.ts, which this trims to what a valid
 * handshake needs): a key takes a millisecond where RSA 2048 takes tens, and Mosquitto serves them.
 */

const run = promisify(execFile);

/** The openssl binary: OPENSSL_BIN when set, else whatever `openssl` is on PATH. */
const OPENSSL = process.env.OPENSSL_BIN ?? 'openssl';

export interface BenchCerts {
  /** The CA the bridge trusts (`tls.ca_file`). */
  readonly caCert: string;
  /** Signed by the CA, SAN DNS:localhost and IP:127.0.0.1: what the cloud broker presents. */
  readonly serverCert: string;
  readonly serverKey: string;
}

/** Our own config, so the host's openssl.cnf (its default extensions) plays no part. */
const CONFIG = `# Written by scripts/bench/tls-certs.ts
[ req ]
distinguished_name = req_dn
prompt = no

[ req_dn ]
CN = unused

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
subjectAltName = DNS:localhost, IP:127.0.0.1
`;

const NEW_EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function openssl(args: readonly string[]): Promise<void> {
  try {
    await run(OPENSSL, args);
  } catch (err) {
    // execFile's error carries stderr, which names the real problem.
    const stderr = typeof err === 'object' && err !== null && 'stderr' in err ? String(err.stderr).trim() : '';
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`${OPENSSL} ${args[0] ?? ''} failed (Debian/Ubuntu: apt-get install openssl): ${stderr || message}`);
  }
}

/** Makes the CA and the server certificate in `dir` (which must exist). About 50 ms. */
export async function makeBenchCerts(dir: string): Promise<BenchCerts> {
  const cnf = join(dir, 'openssl.cnf');
  await writeFile(cnf, CONFIG);
  const caKey = join(dir, 'ca.key');
  const certs: BenchCerts = {
    caCert: join(dir, 'ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
  };
  const csr = join(dir, 'server.csr');
  await Promise.all([
    openssl(['req', '-config', cnf, '-x509', ...NEW_EC_KEY, '-keyout', caKey, '-out', certs.caCert, '-days', '30', '-subj', '/CN=Outpost bench CA', '-extensions', 'ca_ext']),
    openssl(['req', '-config', cnf, '-new', ...NEW_EC_KEY, '-keyout', certs.serverKey, '-out', csr, '-subj', '/CN=localhost']),
  ]);
  await openssl([
    'x509', '-req', '-in', csr, '-CA', certs.caCert, '-CAkey', caKey, '-set_serial', '4096', '-days', '30',
    '-sha256', '-extfile', cnf, '-extensions', 'server_ext', '-out', certs.serverCert,
  ]);
  return certs;
}
