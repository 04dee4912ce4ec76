/**
 * Self-test of the upstream-bridge test helpers: certificates made by `makeCerts` and a real
 * Mosquitto started by `startCloudBroker`, driven by MQTT.js. Each failure case pins the exact
 * error Node/MQTT.js gives, which is what the bridge sees and must turn into a clear log line:
 * if a Node or Mosquitto upgrade changes one, this file says so first.
 */
import * as assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { makeCerts, type Certs } from '../scripts/lib/certs.js'
import { cloudClient, startCloudBroker, type CloudBroker, type CloudClientOptions } from './helpers/cloud-broker.js'
import { tempDir } from './helpers/outpost-process.js'

async function certsFor(t: TestContext): Promise<Certs> {
  const started = performance.now()
  const certs = await makeCerts(tempDir(t, 'outpost-certs-'))
  t.diagnostic(`makeCerts: ${Math.round(performance.now() - started)} ms`)
  return certs
}

/** The error a connection attempt fails with; fails the test if it connects. */
async function connectError(t: TestContext, cloud: CloudBroker, options: CloudClientOptions): Promise<Error & { code?: unknown }> {
  try {
    await cloudClient(t, cloud, options)
  } catch (err) {
    assert.ok(err instanceof Error, `not an Error: ${String(err)}`)
    t.diagnostic(`${err.constructor.name} code=${String((err as { code?: unknown }).code)} message=${JSON.stringify(err.message)}`)
    return err
  }
  assert.fail('connected, but it should have been refused')
}

test('TLS with the test CA: MQTT.js connects by name and by IP and round-trips a QoS 1 message', async (t) => {
  const certs = await certsFor(t)
  const started = performance.now()
  const cloud = await startCloudBroker(t, { tls: { ca: certs.ca.cert, server: certs.server } })
  t.diagnostic(`startCloudBroker: ${Math.round(performance.now() - started)} ms`)
  assert.equal(cloud.tlsUrl, `mqtts://localhost:${cloud.tlsPort}`)
  assert.throws(() => cloud.port, /no plain listener/)

  const sub = await cloudClient(t, cloud, { tls: { ca: certs.ca.cert } })
  await sub.client.subscribeAsync('cloud/#', { qos: 1 })
  // By IP: the certificate's IP:127.0.0.1 SAN matches too.
  const pub = await cloudClient(t, cloud, { tls: { ca: certs.ca.cert, host: '127.0.0.1' } })
  await pub.client.publishAsync('cloud/hello', 'over tls', { qos: 1 })
  const got = await sub.inbox.waitFor((m) => m.topic === 'cloud/hello', 'cloud/hello')
  assert.equal(got.payload, 'over tls')
  assert.equal(got.qos, 1)
  assert.match(cloud.log(), /New client connected from 127\.0\.0\.1:\d+ as /)
})

test('a client certificate: accepted when signed by the CA; missing or from another CA, refused', async (t) => {
  const certs = await certsFor(t)
  const cloud = await startCloudBroker(t, { tls: { ca: certs.ca.cert, server: certs.server, requireCertificate: true } })
  await cloudClient(t, cloud, { tls: { ca: certs.ca.cert, client: certs.client } })

  // TLS 1.3: the client's handshake is done before the server has looked at its certificate, so
  // the refusal arrives as an alert on the first read.
  let since = cloud.log().length
  const missing = await connectError(t, cloud, { tls: { ca: certs.ca.cert } })
  assert.equal(missing.code, 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED')
  // Mosquitto logs it as "OpenSSL Error[0]: error:0A0000C7:..." or "Client connection from
  // 127.0.0.1 failed: error:0A0000C7:...", depending on which of its reads sees the failure.
  await cloud.waitForLog(/peer did not return a certificate/, { since })

  since = cloud.log().length
  const unknown = await connectError(t, cloud, { tls: { ca: certs.ca.cert, client: certs.otherClient } })
  assert.equal(unknown.code, 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA')
  await cloud.waitForLog(/certificate verify failed/, { since })
})

test('unknown CA: SELF_SIGNED_CERT_IN_CHAIN when the server sends its root, UNABLE_TO_VERIFY_LEAF_SIGNATURE when it sends the leaf alone', async (t) => {
  const certs = await certsFor(t)
  // With `cafile` Mosquitto's OpenSSL completes the chain it sends up to the root.
  const withRoot = await startCloudBroker(t, { tls: { ca: certs.ca.cert, server: certs.server } })
  const err = await connectError(t, withRoot, { tls: { ca: certs.otherCa.cert } })
  assert.equal(err.code, 'SELF_SIGNED_CERT_IN_CHAIN')
  assert.equal(err.message, 'self-signed certificate in certificate chain')

  const leafOnly = await startCloudBroker(t, { tls: { server: certs.server } })
  const leafErr = await connectError(t, leafOnly, { tls: { ca: certs.otherCa.cert } })
  assert.equal(leafErr.code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE')
  assert.equal(leafErr.message, 'unable to verify the first certificate')
  // The right CA still verifies the leaf alone.
  await cloudClient(t, leafOnly, { tls: { ca: certs.ca.cert } })
})

test('a certificate for another name: ERR_TLS_CERT_ALTNAME_INVALID', async (t) => {
  const certs = await certsFor(t)
  const cloud = await startCloudBroker(t, { tls: { ca: certs.ca.cert, server: certs.wrongName } })
  const err = await connectError(t, cloud, { tls: { ca: certs.ca.cert } })
  assert.equal(err.code, 'ERR_TLS_CERT_ALTNAME_INVALID')
  assert.match(err.message, /Host: localhost\. is not in the cert's altnames: DNS:wrong\.example/)
})

test('an expired certificate: CERT_HAS_EXPIRED', async (t) => {
  const certs = await certsFor(t)
  const cloud = await startCloudBroker(t, { tls: { ca: certs.ca.cert, server: certs.expired } })
  const err = await connectError(t, cloud, { tls: { ca: certs.ca.cert } })
  assert.equal(err.code, 'CERT_HAS_EXPIRED')
  assert.equal(err.message, 'certificate has expired')
})

test('a password file: the right password connects; a wrong one or none is refused "Not authorized" (5 in 3.1.1, 135 in 5.0)', async (t) => {
  const cloud = await startCloudBroker(t, { users: { gw: 's3cret', other: 'x' } })
  await cloudClient(t, cloud, { username: 'gw', password: 's3cret' })
  await cloudClient(t, cloud, { username: 'other', password: 'x', mqtt: { protocolVersion: 5 } })

  const cases = [
    { protocolVersion: 4 as const, password: 'wrong', code: 5 },
    { protocolVersion: 5 as const, password: 'wrong', code: 135 },
    { protocolVersion: 4 as const, password: undefined, code: 5 },
    { protocolVersion: 5 as const, password: undefined, code: 135 },
  ]
  for (const c of cases) {
    const since = cloud.log().length
    const err = await connectError(t, cloud, { ...(c.password === undefined ? {} : { username: 'gw', password: c.password }), mqtt: { protocolVersion: c.protocolVersion } })
    assert.equal(err.code, c.code, `v${c.protocolVersion} password ${String(c.password)}`)
    assert.equal(err.message, 'Connection refused: Not authorized')
    await cloud.waitForLog(new RegExp(`Sending CONNACK to 127\\.0\\.0\\.1 \\(0, ${c.code}\\)`), { since })
    await cloud.waitForLog(/Client <unknown> disconnected, not authorised\./, { since })
  }
})

/**
 * A subscriber with a persistent session goes away; a QoS 1 message is queued for it; the cloud
 * goes down (`down`) and comes back on the same port; the subscriber resumes and gets it.
 */
async function queuedAcrossRestart(t: TestContext, cloud: CloudBroker, down: () => Promise<unknown>): Promise<void> {
  const clientId = `persist-${process.pid}-${Date.now()}`
  const first = await cloudClient(t, cloud, { mqtt: { clientId, clean: false } })
  await first.client.subscribeAsync('queued/#', { qos: 1 })
  await first.client.endAsync()
  const pub = await cloudClient(t, cloud, {})
  await pub.client.publishAsync('queued/1', 'kept', { qos: 1 })
  await pub.client.endAsync()

  const { port } = cloud
  await down()
  assert.equal(cloud.running, false)
  await cloud.restart()
  assert.equal(cloud.port, port)
  assert.match(cloud.log(), new RegExp(`Opening ipv4 listen socket on port ${port}\\.[^]*running[^]*Opening ipv4 listen socket on port ${port}\\.`))

  const again = await cloudClient(t, cloud, { mqtt: { clientId, clean: false } })
  assert.equal(again.connack.sessionPresent, true)
  const got = await again.inbox.waitFor((m) => m.topic === 'queued/1', 'queued/1 after the restart')
  assert.equal(got.payload, 'kept')
}

test('a persistent session and its queued QoS 1 message survive stop() + restart() on the same port', async (t) => {
  const cloud = await startCloudBroker(t)
  await queuedAcrossRestart(t, cloud, () => cloud.stop())
  await cloud.waitForLog(/Saving in-memory database to /)
})

test('with saveEveryChange they survive kill() too', async (t) => {
  const cloud = await startCloudBroker(t, { saveEveryChange: true })
  await queuedAcrossRestart(t, cloud, () => cloud.kill())
})
