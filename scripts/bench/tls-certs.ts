import { makeCerts } from '../lib/certs.js';

/**
 * The upstream run's TLS material: a throwaway CA and a server certificate for localhost, made
 * with the `openssl` CLI in the run's temp dir by the same code the tests use (scripts/lib/certs.ts),
 * so nothing checked in can expire under the bench.
 */
export interface BenchCerts {
  /** The CA the bridge trusts (`tls.ca_file`). */
  readonly caCert: string;
  /** Signed by the CA, SAN DNS:localhost and IP:127.0.0.1: what the cloud broker presents. */
  readonly serverCert: string;
  readonly serverKey: string;
}

export async function makeBenchCerts(dir: string): Promise<BenchCerts> {
  const c = await makeCerts(dir);
  return { caCert: c.ca.cert, serverCert: c.server.cert, serverKey: c.server.key };
}
