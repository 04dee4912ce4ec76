/**
 * SIGHUP on the shipped binary: an operator renews the server certificate, adds a user with
 * `outpost passwd` and edits the ACL, then sends SIGHUP (`systemctl reload`). Open connections
 * stay up; new ones get the new certificate, password file and ACL. A broken file on a later
 * SIGHUP is logged with its file and line, and the gateway keeps running on what it had. Then
 * the config file itself is edited: what changed applies, and an invalid file changes nothing.
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
import { parse, stringify } from 'yaml'
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

/** The `--config FILE` the helper started the process with. */
function configFileOf(proc: OutpostProcess): string {
  const args = proc.child.spawnargs
  const file = args[args.indexOf('--config') + 1]
  assert.ok(file !== undefined && args.includes('--config'), 'started with --config')
  return file
}

/** A v5 client of the process that does not reconnect; its DISCONNECT reason code, if the server sends one, resolves `closed`. */
async function v5Client(t: TestContext, url: string, clientId: string): Promise<{ client: MqttClient; inbox: Inbox; closed: Promise<number | undefined> }> {
  const client = await connectAsync(url, { clientId, protocolVersion: 5, reconnectPeriod: 0 })
  t.after(() => client.endAsync(true))
  const closed = new Promise<number | undefined>((resolve) => client.on('disconnect', (p) => resolve(p.reasonCode)))
  return { client, inbox: new Inbox(client), closed }
}

/** Publishes `secret/...` then `public/...` as a fresh client and resolves once alice has the public one. */
async function secretThenPublic(t: TestContext, url: string, id: string, alice: Inbox): Promise<void> {
  const { client } = await v5Client(t, url, id)
  // Refused with PUBACK 0x87 under the ACL; MQTT.js rejects then.
  await client.publishAsync(`secret/${id}`, 'hidden', { qos: 1 }).catch(() => undefined)
  await client.publishAsync(`public/${id}`, 'seen', { qos: 1 })
  await alice.waitFor((m) => m.topic === `public/${id}`, `alice gets public/${id}`)
}

test('SIGHUP with --config: the edited file applies (an ACL, a per-client limit) without dropping clients; an invalid one is refused whole with every problem logged', async (t) => {
  const dir = tempDir(t, 'outpost-reload-config-')
  const aclFile = join(dir, 'acl')
  writeFileSync(aclFile, 'topic readwrite public/#\n')
  const proc = await startOutpost(t, { config: { allow_anonymous: true } })
  const configFile = configFileOf(proc)
  const doc = parse(readFileSync(configFile, 'utf8')) as { listeners: Array<Record<string, unknown>> } & Record<string, unknown>

  const alice = await v5Client(t, proc.url, 'alice')
  const drops: string[] = []
  alice.client.on('close', () => drops.push('close'))
  await alice.client.subscribeAsync(['public/#', 'secret/#'], { qos: 1 })
  await secretThenPublic(t, proc.url, 'before', alice.inbox)
  assert.equal(alice.inbox.on('secret/before').length, 1, 'no ACL yet')

  // The operator adds an ACL, a per-client limit, and changes a key that needs a restart.
  doc.listeners[0] = { ...doc.listeners[0], acl_file: aclFile }
  writeFileSync(configFile, stringify({ ...doc, max_subscriptions: 1, sys_interval: 30 }))
  const summary = await sighup(proc, (r) => r.msg.startsWith('reloaded:'), 'the reload summary')
  assert.equal(summary.msg, 'reloaded: listeners 1, settings max_subscriptions; needs restart: sys_interval')
  assert.ok(proc.records().some((r) => r.level === 'warn' && r.key === 'sys_interval'), 'sys_interval is warned about')

  await secretThenPublic(t, proc.url, 'after', alice.inbox)
  assert.deepEqual(alice.inbox.on('secret/after'), [], 'the ACL applies to new connections')
  const bob = await v5Client(t, proc.url, 'bob')
  await bob.client.subscribeAsync('public/a')
  bob.client.subscribe('public/b')
  assert.equal(await bob.closed, 0x97, 'max_subscriptions 1 applies')
  assert.equal(alice.client.connected, true)

  // Broken: three problems (one a misspelt key). The ACL and the limit must stay as they run.
  writeFileSync(configFile, stringify({ ...doc, max_subscriptions: 'lots', drain_timeout: -1, sys_intervall: 3 }))
  const before = new Set(proc.records())
  await sighup(proc, (r) => r.msg === 'config not reloaded; still running the previous one', 'the refusal')
  const problems = proc.records().filter((r) => !before.has(r) && r.level === 'error' && r.msg.startsWith('reload failed: '))
  assert.deepEqual(problems.map((r) => r.field).sort(), ['drain_timeout', 'max_subscriptions', 'sys_intervall'])
  for (const p of problems) assert.ok(p.msg.startsWith(`reload failed: ${configFile}:${String(p.line)}:${String(p.column)}: ${String(p.field)}: `), p.msg)

  await secretThenPublic(t, proc.url, 'broken', alice.inbox)
  assert.deepEqual(alice.inbox.on('secret/broken'), [], 'the ACL still applies')
  const carol = await v5Client(t, proc.url, 'carol')
  await carol.client.subscribeAsync('public/a')
  carol.client.subscribe('public/b')
  assert.equal(await carol.closed, 0x97, 'max_subscriptions 1 still applies')
  assert.equal(proc.running, true)
  assert.equal(alice.client.connected, true)
  assert.deepEqual(drops, [], 'alice was never disconnected')
})
