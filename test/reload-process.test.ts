/**
 * SIGHUP on the shipped binary: an operator renews the server certificate, adds a user with
 * `outpost passwd` and edits the ACL, then sends SIGHUP (`systemctl reload`). Open connections
 * stay up; new ones get the new certificate, password file and ACL. A broken file on a later
 * SIGHUP is logged with its file and line, and the gateway keeps running on what it had.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { connect as tlsConnect } from 'node:tls'
import { promisify } from 'node:util'
import { connect, connectAsync, type MqttClient } from 'mqtt'
import { makeCerts } from '../scripts/lib/certs.js'
import { Inbox } from './helpers/inbox.js'
import { freePort, OUTPOST_CLI, startOutpost, tempDir, type LogRecord, type OutpostProcess } from './helpers/outpost-process.js'

const run = promisify(execFile)

const ALICE_ACL = 'user alice\ntopic read news/#\n'
/** Line 5 of the ACL gives bob write access to what alice reads. */
const ALICE_AND_BOB_ACL = `${ALICE_ACL}\nuser bob\ntopic write news/#\n`

/** `outpost passwd -b FILE USER PASSWORD`, the shipped command. */
async function passwd(file: string, user: string, password: string, create = false): Promise<void> {
  await run(process.execPath, [OUTPOST_CLI, 'passwd', ...(create ? ['-c'] : []), '-b', file, user, password])
}

/** The SHA-256 fingerprint a TLS client sees on a fresh connection, in X509Certificate's format. */
function servedFingerprint(port: number, ca: Buffer[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      resolve(socket.getPeerCertificate().fingerprint256)
      socket.destroy()
    })
    socket.on('error', reject)
  })
}

function fingerprintOf(certFile: string): string {
  return new X509Certificate(readFileSync(certFile)).fingerprint256
}

/** The CONNACK outcome of a login: 'ok', or the error MQTT.js reports (e.g. "Connection refused: Bad username or password"). */
function login(url: string, username: string, password: string, ca: Buffer[]): Promise<string> {
  return new Promise((resolve) => {
    const client = connect(url, { username, password, ca, reconnectPeriod: 0, connectTimeout: 5000 })
    client.once('connect', () => {
      client.end(true)
      resolve('ok')
    })
    client.once('error', (err) => {
      client.end(true)
      resolve(err.message)
    })
    client.once('close', () => resolve('closed before CONNACK'))
  })
}

/** Sends SIGHUP and resolves with the first new log record that `match` accepts. */
async function sighup(proc: OutpostProcess, match: (r: LogRecord) => boolean, what: string): Promise<LogRecord> {
  const before = new Set(proc.records())
  proc.child.kill('SIGHUP')
  return proc.waitForLog((r) => !before.has(r) && match(r), 5000, what)
}

/** The message of the error a pino record carries in `err`. */
function errorMessage(record: LogRecord): string {
  const err = record.err
  return typeof err === 'object' && err !== null && 'message' in err ? String(err.message) : JSON.stringify(record)
}

/** Publishes as bob (a fresh login each time) and waits until alice has it. */
async function bobReachesAlice(t: TestContext, url: string, ca: Buffer[], inbox: Inbox, payload: string): Promise<void> {
  const bob = await connectAsync(url, { username: 'bob', password: 'bob-pw', ca, reconnectPeriod: 0, connectTimeout: 5000 })
  t.after(() => bob.endAsync(true))
  await bob.publishAsync('news/weather', payload, { qos: 1 })
  await inbox.waitFor((m) => m.topic === 'news/weather' && m.payload === payload, `alice gets "${payload}" from bob`)
  await bob.endAsync()
}

test('SIGHUP on the running binary: new certificate, new user and ACL for new connections; open ones stay; a broken file keeps the old settings and is logged with file and line', async (t) => {
  const dir = tempDir(t, 'outpost-reload-')
  const [first, second] = await Promise.all([makeCerts(tempDir(t, 'outpost-certs-a-')), makeCerts(tempDir(t, 'outpost-certs-b-'))])
  // Clients trust both CAs, so the swap is to a certificate they accept.
  const ca = [readFileSync(first.ca.cert), readFileSync(second.ca.cert)]
  const certFile = join(dir, 'server.crt')
  const keyFile = join(dir, 'server.key')
  copyFileSync(first.server.cert, certFile)
  copyFileSync(first.server.key, keyFile)
  const passwordFile = join(dir, 'passwd')
  const aclFile = join(dir, 'acl')
  await passwd(passwordFile, 'alice', 'alice-pw', true)
  writeFileSync(aclFile, ALICE_ACL)

  const port = await freePort()
  const proc = await startOutpost(t, {
    config: {
      allow_anonymous: false,
      listeners: [{ protocol: 'mqtts', port, bind: '127.0.0.1', tls: { cert_file: certFile, key_file: keyFile }, password_file: passwordFile, acl_file: aclFile }],
    },
  })
  const url = `mqtts://localhost:${port}`
  assert.equal(await servedFingerprint(port, ca), fingerprintOf(first.server.cert))

  const alice: MqttClient = await connectAsync(url, { username: 'alice', password: 'alice-pw', clientId: 'alice', ca, reconnectPeriod: 0, keepalive: 30 })
  t.after(() => alice.endAsync(true))
  const drops: string[] = []
  alice.on('close', () => drops.push('close'))
  alice.on('offline', () => drops.push('offline'))
  const inbox = new Inbox(alice)
  await alice.subscribeAsync('news/#', { qos: 1 })
  assert.match(await login(url, 'bob', 'bob-pw', ca), /Bad username or password/, 'no bob yet')

  // The operator's changes, on disk only: nothing changes until SIGHUP.
  copyFileSync(second.server.cert, certFile)
  copyFileSync(second.server.key, keyFile)
  await passwd(passwordFile, 'bob', 'bob-pw')
  writeFileSync(aclFile, ALICE_AND_BOB_ACL)
  assert.equal(await servedFingerprint(port, ca), fingerprintOf(first.server.cert), 'no reload before SIGHUP')
  assert.match(await login(url, 'bob', 'bob-pw', ca), /Bad username or password/, 'the password file is not reread per login')

  await sighup(proc, (r) => r.msg === 'reloaded TLS certificates, password and ACL files', 'the reload line')
  assert.equal(await servedFingerprint(port, ca), fingerprintOf(second.server.cert), 'the new certificate is served')
  // Bob's publish needs both the new password file (login) and the new ACL (write on news/#).
  await bobReachesAlice(t, url, ca, inbox, 'after reload')
  assert.equal(alice.connected, true)
  assert.deepEqual(drops, [], 'alice was never disconnected')

  // A bad line in the ACL (which also drops bob's rule): the whole file is refused.
  writeFileSync(aclFile, `${ALICE_ACL}topik write news/#\n`)
  const aclError = await sighup(proc, (r) => r.level === 'error' && r.msg.startsWith('reload failed'), 'the ACL reload error')
  assert.ok(errorMessage(aclError).includes(`${aclFile}:3: unknown keyword "topik"`), errorMessage(aclError))
  await bobReachesAlice(t, url, ca, inbox, 'after a broken acl')

  // The ACL fixed, the password file broken (bob's line lost its hash): refused as a whole too.
  writeFileSync(aclFile, ALICE_AND_BOB_ACL)
  const alicesLine = readFileSync(passwordFile, 'utf8').split('\n').find((l) => l.startsWith('alice:')) ?? ''
  writeFileSync(passwordFile, `${alicesLine}\nbob\n`)
  const passwdError = await sighup(proc, (r) => r.level === 'error' && r.msg.startsWith('reload failed'), 'the password file reload error')
  assert.ok(errorMessage(passwdError).includes(`${passwordFile}:2: no ':' between user name and password hash`), errorMessage(passwdError))
  await bobReachesAlice(t, url, ca, inbox, 'after a broken password file')

  assert.equal(proc.running, true)
  assert.equal(alice.connected, true)
  assert.deepEqual(drops, [], 'alice was never disconnected')
  await alice.publishAsync('alice/here', 'still', { qos: 1 })
})
