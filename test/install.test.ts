/**
 * scripts/install.sh run against a temporary root (DESTDIR): the layout it makes, that the
 * installed tree runs on its production dependencies alone, that a second run changes nothing,
 * that --uninstall keeps configuration and data, and that the running system is left alone.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { createHash } from 'node:crypto'
import { appendFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { connectAsync } from 'mqtt'
import { ConfigError, parseConfigText } from '../src/config/load.js'
import { freePort, OutpostProcess, tempDir } from './helpers/outpost-process.js'

const REPO = fileURLToPath(new URL('../../', import.meta.url))

/**
 * What install.sh installs from, copied once: an unpacked release holds just these, and the copy
 * stays put while the checkout's dist/ is rebuilt (which would make two runs differ).
 */
let RELEASE = ''
const RELEASE_FILES = ['scripts/install.sh', 'dist/src', 'src/dashboard', 'package.json', 'package-lock.json', 'systemd']
before(() => {
  RELEASE = mkdtempSync(join(tmpdir(), 'outpost-release-'))
  for (const f of RELEASE_FILES) if (existsSync(join(REPO, f))) cpSync(join(REPO, f), join(RELEASE, f), { recursive: true })
})
after(() => {
  if (RELEASE !== '') rmSync(RELEASE, { recursive: true, force: true })
})
const PKG = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string; devDependencies: Record<string, string> }
const VERSION = PKG.version
/** Dev tools that must not reach the Pi (type packages may come in as dependencies of runtime packages). */
const DEV_ONLY = Object.keys(PKG.devDependencies).filter((name) => !name.startsWith('@types/'))

/** Runs install.sh with DESTDIR=root; under `umask`, when given, to see that it sets every mode itself. */
function install(root: string, args: readonly string[] = [], env: Record<string, string> = {}, umask = '022'): SpawnSyncReturns<string> {
  return spawnSync('bash', ['-c', `umask ${umask} && exec bash "$0" "$@"`, join(RELEASE, 'scripts/install.sh'), ...args], {
    env: { ...process.env, DESTDIR: root, ...env },
    encoding: 'utf8',
    timeout: 90_000,
  })
}

function installOk(root: string, args: readonly string[] = [], umask?: string): string {
  const r = install(root, args, {}, umask)
  assert.equal(r.status, 0, `install.sh ${args.join(' ')} exited ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`)
  return r.stdout
}

function mode(path: string): string {
  return (statSync(path).mode & 0o7777).toString(8).padStart(4, '0')
}

/** Every path under `dir` with its mode and a hash of its contents: what "the same result" compares. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const entry of readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    const path = join(dir, entry)
    const st = statSync(path)
    const hash = st.isFile() ? createHash('sha1').update(readFileSync(path)).digest('hex') : 'dir'
    out.set(entry, `${mode(path)} ${hash}`)
  }
  return out
}

test("the default config's commented-out examples are valid once uncommented, but for the files they name", () => {
  const text = readFileSync(join(REPO, 'systemd/outpost.yaml'), 'utf8')
  // Its own convention: "# " starts an explanation, "#" right before the YAML starts an example.
  const examples = text.split('\n').filter((l) => /^#([^ #]|  )/.test(l))
  assert.ok(examples.length >= 20, `only ${examples.length} example lines`)
  for (const key of ['http:', 'serial:', 'upstream:', 'store:']) assert.ok(examples.includes(`#${key}`), key)
  const uncommented = text.replace(/^#([^ #]|  )/gm, '$1')
  let problems: string[] = []
  try {
    parseConfigText(uncommented, 'outpost.yaml')
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err))
    problems = err.problems.map((p) => `${p.field}: ${p.message}`)
  }
  // The password and ACL files are the administrator's to create.
  assert.deepEqual(problems.filter((p) => !/^(listeners\[0\]|http)\.(password_file|acl_file): no such file: \/etc\/outpost\//.test(p)), [])
  assert.equal(problems.length, 3, problems.join('\n'))
})

function hostHasUser(name: string): boolean {
  return spawnSync('getent', ['passwd', name]).status === 0
}

test('install.sh lays out /opt/outpost, the unit, the config and the outpost command under DESTDIR', { timeout: 120_000 }, async (t) => {
  const userBefore = hostHasUser('outpost')
  const root = tempDir(t, 'outpost-install-')
  // umask 000: files come out world-writable unless the script sets their modes.
  const out = installOk(root, [], '000')
  const app = join(root, 'opt/outpost')

  // The code, its package.json (the version is read from it) and the production dependencies only.
  for (const f of ['dist/src/cli.js', 'dist/src/gateway.js', 'package.json', 'package-lock.json']) assert.ok(existsSync(join(app, f)), f)
  for (const dep of ['level', 'mqtt', 'pino', 'serialport', 'ws', 'yaml', 'classic-level', '@serialport/bindings-cpp']) {
    assert.ok(existsSync(join(app, 'node_modules', dep, 'package.json')), `node_modules/${dep}`)
  }
  assert.ok(DEV_ONLY.includes('typescript'))
  for (const dev of DEV_ONLY) assert.ok(!existsSync(join(app, 'node_modules', dev)), `dev dependency ${dev} installed`)
  assert.deepEqual(readdirSync(join(app, 'dist/src'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.map')), [])
  const dashboard = join(RELEASE, 'src/dashboard')
  if (existsSync(dashboard)) {
    for (const f of readdirSync(dashboard).filter((f) => !f.endsWith('.ts'))) assert.ok(existsSync(join(app, 'src/dashboard', f)), `src/dashboard/${f}`)
  }
  // The native modules keep the Pi's prebuilds (32- and 64-bit) and drop other systems'.
  for (const pkg of ['classic-level', '@serialport/bindings-cpp']) {
    const kept = readdirSync(join(app, 'node_modules', pkg, 'prebuilds')).sort()
    assert.deepEqual(kept, ['linux-arm', 'linux-arm64', 'linux-x64'], pkg)
  }

  assert.equal(mode(app), '0755')
  // Root's code: nobody else may change it (the service runs as outpost).
  const writable = readdirSync(app, { recursive: true, encoding: 'utf8' }).filter((f) => (statSync(join(app, f)).mode & 0o022) !== 0)
  assert.deepEqual(writable, [])
  const unit = join(root, 'lib/systemd/system/outpost.service')
  assert.equal(mode(unit), '0644')
  assert.equal(readFileSync(unit, 'utf8'), readFileSync(join(RELEASE, 'systemd/outpost.service'), 'utf8'))
  const config = join(root, 'etc/outpost/outpost.yaml')
  assert.equal(mode(config), '0644')
  assert.equal(readFileSync(config, 'utf8'), readFileSync(join(RELEASE, 'systemd/outpost.yaml'), 'utf8'))
  assert.equal(mode(join(root, 'var/lib/outpost')), '0750')

  // The installed check-config accepts the installed config.
  const check = spawnSync(process.execPath, [join(app, 'dist/src/cli.js'), 'check-config', config], { encoding: 'utf8' })
  assert.equal(check.status, 0, check.stderr)
  assert.match(check.stdout, /: OK/)

  // /usr/bin/outpost runs the installed CLI; OUTPOST_HOME points it into DESTDIR.
  const wrapper = join(root, 'usr/bin/outpost')
  assert.equal(mode(wrapper), '0755')
  const v = spawnSync(wrapper, ['--version'], { env: { ...process.env, OUTPOST_HOME: app }, encoding: 'utf8' })
  assert.equal(v.status, 0, v.stderr)
  assert.equal(v.stdout.trim(), `outpost ${VERSION}`)

  // With DESTDIR the system is not touched: the user and systemctl steps are only printed.
  assert.match(out, /would run: useradd --system .*--shell \/usr\/sbin\/nologin --groups dialout outpost/)
  assert.match(out, /would run: systemctl enable outpost\.service/)
  assert.equal(hostHasUser('outpost'), userBefore)

  await runInstalledGateway(t, app)
})

/** Starts the installed tree's gateway and passes a message through it: the production dependencies are enough. */
async function runInstalledGateway(t: TestContext, app: string): Promise<void> {
  const port = await freePort()
  const dataDir = join(tempDir(t, 'outpost-install-data-'), 'data')
  const child = spawn(process.execPath, [join(app, 'dist/src/cli.js'), '--port', String(port), '--bind', '127.0.0.1', '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const proc = new OutpostProcess(child, port, dataDir)
  t.after(() => proc.kill())
  await proc.waitForLog((r) => r.msg === 'outpost running', 15_000, '"outpost running"')
  const client = await connectAsync(proc.url, { clientId: 'install-test', reconnectPeriod: 0 })
  try {
    await client.subscribeAsync('install/#', { qos: 1 })
    const received = new Promise<string>((resolve) => client.once('message', (_topic, payload) => resolve(payload.toString())))
    await client.publishAsync('install/hello', 'from /opt/outpost', { qos: 1 })
    assert.equal(await received, 'from /opt/outpost')
  } finally {
    await client.endAsync()
  }
  assert.deepEqual(await proc.stop('SIGTERM', 10_000), { code: 0, signal: null })
}

test('install.sh run twice gives the same tree and keeps an edited config', { timeout: 120_000 }, (t) => {
  const root = tempDir(t, 'outpost-install-')
  installOk(root)
  const config = join(root, 'etc/outpost/outpost.yaml')
  appendFileSync(config, 'max_inflight: 10\n')
  const first = snapshot(root)
  const out = installOk(root)
  assert.match(out, /kept the existing .*outpost\.yaml/)
  assert.deepEqual(snapshot(root), first)
  assert.match(readFileSync(config, 'utf8'), /max_inflight: 10\n$/)
  // No staging directory is left beside the installed tree.
  assert.deepEqual(readdirSync(join(root, 'opt')), ['outpost'])
})

test('install.sh --target-arch keeps only that architecture\'s prebuilds', { timeout: 120_000 }, (t) => {
  const root = tempDir(t, 'outpost-install-')
  installOk(root, ['--target-arch', 'arm'])
  const app = join(root, 'opt/outpost/node_modules')
  assert.deepEqual(readdirSync(join(app, 'classic-level/prebuilds')), ['linux-arm'])
  assert.deepEqual(readdirSync(join(app, '@serialport/bindings-cpp/prebuilds')), ['linux-arm'])
  // armv6 (Pi Zero / 1) and armv7 (Pi 2 and later on 32-bit Raspberry Pi OS) are both there.
  assert.deepEqual(readdirSync(join(app, 'classic-level/prebuilds/linux-arm')).sort(), ['classic-level.armv6.node', 'classic-level.armv7.node'])
})

test('install.sh --uninstall removes the program and keeps /etc/outpost and /var/lib/outpost; --purge removes them', { timeout: 120_000 }, (t) => {
  const root = tempDir(t, 'outpost-install-')
  installOk(root)
  writeFileSync(join(root, 'var/lib/outpost/marker'), 'data')
  const out = installOk(root, ['--uninstall'])
  assert.match(out, /would run: systemctl disable --now outpost\.service/)
  for (const gone of ['opt/outpost', 'lib/systemd/system/outpost.service', 'usr/bin/outpost']) assert.ok(!existsSync(join(root, gone)), gone)
  assert.ok(existsSync(join(root, 'etc/outpost/outpost.yaml')))
  assert.ok(existsSync(join(root, 'var/lib/outpost/marker')))
  // Uninstalling again is harmless.
  installOk(root, ['--uninstall'])
  const purged = installOk(root, ['--uninstall', '--purge'])
  assert.match(purged, /would run: userdel outpost/)
  assert.ok(!existsSync(join(root, 'etc/outpost')))
  assert.ok(!existsSync(join(root, 'var/lib/outpost')))
})

test('install.sh refuses a Node.js older than 20.15 and says how to get a newer one', { timeout: 60_000 }, (t) => {
  const root = tempDir(t, 'outpost-install-')
  const oldNode = join(root, 'node18')
  // Bookworm's own nodejs is 18.19; the script must stop before installing anything.
  writeFileSync(oldNode, '#!/bin/sh\necho v18.19.0\n', { mode: 0o755 })
  const r = install(root, [], { OUTPOST_NODE: oldNode })
  assert.equal(r.status, 1)
  assert.match(r.stderr, /Node\.js 18\.19\.0; Outpost needs 20\.15 or later/)
  assert.match(r.stderr, /NodeSource/)
  assert.ok(!existsSync(join(root, 'opt')))
})
