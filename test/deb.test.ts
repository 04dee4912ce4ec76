/**
 * scripts/build-deb.sh: the amd64 package's control data and contents, and the package installed,
 * reinstalled, removed and purged with dpkg into a temporary root (dpkg --root with the maintainer
 * scripts run from the host, which DPKG_ROOT tells them; they must not touch the host's users or
 * systemd then).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { fileURLToPath } from 'node:url'

const REPO = fileURLToPath(new URL('../../', import.meta.url))
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version

function run(cmd: string, args: readonly string[], env: Record<string, string> = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 90_000 })
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} exited ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`)
  return r.stdout
}

let work = ''
let deb = ''

before(() => {
  work = mkdtempSync(join(tmpdir(), 'outpost-deb-'))
  const out = run('bash', [join(REPO, 'scripts/build-deb.sh'), '--arch', 'amd64', '--out', join(work, 'out')])
  deb = out.trim()
  assert.equal(deb, join(work, 'out', `outpost_${VERSION}_amd64.deb`))
})

after(() => {
  if (work !== '') rmSync(work, { recursive: true, force: true })
})

test('the .deb has the control fields, the conffile and the maintainer scripts', () => {
  const field = (name: string): string => run('dpkg-deb', ['--field', deb, name]).trim()
  assert.equal(field('Package'), 'outpost')
  assert.equal(field('Version'), VERSION.replaceAll('-', '~'))
  assert.equal(field('Architecture'), 'amd64')
  assert.equal(field('Depends'), 'nodejs (>= 20.15), adduser')
  assert.match(field('Installed-Size'), /^\d+$/)
  assert.equal(run('dpkg-deb', ['--info', deb, 'conffiles']), '/etc/outpost/outpost.yaml\n')
  const info = run('dpkg-deb', ['--info', deb])
  for (const script of ['postinst', 'prerm', 'postrm']) assert.match(info, new RegExp(`\\*\\s+${script}\\s+#!/bin/sh`), script)
})

test('the .deb holds /opt/outpost, the unit, the config and /usr/bin/outpost, owned by root, with amd64 prebuilds only', () => {
  const rows = run('dpkg-deb', ['--contents', deb]).trimEnd().split('\n')
  const entry = (path: string): string | undefined => rows.find((r) => r.endsWith(` ./${path}`))
  assert.match(entry('lib/systemd/system/outpost.service') ?? 'missing unit', /^-rw-r--r-- root\/root /)
  assert.match(entry('etc/outpost/outpost.yaml') ?? 'missing config', /^-rw-r--r-- root\/root /)
  assert.match(entry('usr/bin/outpost') ?? 'missing wrapper', /^-rwxr-xr-x root\/root /)
  assert.ok(entry('opt/outpost/dist/src/cli.js') !== undefined)
  assert.ok(entry('opt/outpost/node_modules/classic-level/package.json') !== undefined)
  assert.deepEqual(rows.filter((r) => !/ root\/root /.test(r)), [])
  // /var/lib/outpost is postinst's to make (owned by the user it creates), not the package's.
  assert.deepEqual(rows.filter((r) => / \.\/var\//.test(r)), [])
  const prebuilds = new Set(rows.map((r) => /\/prebuilds\/([^/]+)\/$/.exec(r)?.[1]).filter((d) => d !== undefined))
  assert.deepEqual([...prebuilds], ['linux-x64'])
})

test('dpkg installs the .deb into a temporary root; reinstall keeps an edited config; remove keeps data; purge deletes it', { timeout: 120_000 }, () => {
  const userBefore = spawnSync('getent', ['passwd', 'outpost']).status === 0
  const root = join(work, 'root')
  for (const dir of ['var/lib/dpkg/info', 'var/lib/dpkg/updates', 'var/log']) mkdirSync(join(root, dir), { recursive: true })
  for (const file of ['var/lib/dpkg/status', 'var/lib/dpkg/available']) writeFileSync(join(root, file), '')
  // --log: dpkg would otherwise append to the host's /var/log/dpkg.log. --force-depends: the root
  // has no nodejs or adduser packages; the host's node runs the installed files below.
  const dpkg = (...args: string[]): string =>
    run('dpkg', [`--root=${root}`, `--log=${join(root, 'var/log/dpkg.log')}`, '--force-not-root', '--force-script-chrootless', '--force-depends', ...args])

  const installed = dpkg('-i', deb)
  assert.match(installed, /would run: adduser --system --group --home \/var\/lib\/outpost --no-create-home --quiet outpost/)
  assert.match(installed, /would run: adduser --quiet outpost dialout/)
  assert.match(installed, /would enable outpost\.service/)
  assert.equal(spawnSync('getent', ['passwd', 'outpost']).status === 0, userBefore, 'postinst changed the host\'s users')
  assert.match(dpkg('--status', 'outpost'), /^Status: install ok installed$/m)

  const unit = join(root, 'lib/systemd/system/outpost.service')
  assert.equal(readFileSync(unit, 'utf8'), readFileSync(join(REPO, 'systemd/outpost.service'), 'utf8'))
  const config = join(root, 'etc/outpost/outpost.yaml')
  assert.equal(readFileSync(config, 'utf8'), readFileSync(join(REPO, 'systemd/outpost.yaml'), 'utf8'))
  assert.equal((statSync(join(root, 'var/lib/outpost')).mode & 0o7777).toString(8), '750')
  const cli = join(root, 'opt/outpost/dist/src/cli.js')
  assert.equal(run(process.execPath, [cli, '--version']).trim(), `outpost ${VERSION}`)
  assert.match(run(process.execPath, [cli, 'check-config', config]), /: OK/)
  assert.equal(run(join(root, 'usr/bin/outpost'), ['--version'], { OUTPOST_HOME: join(root, 'opt/outpost') }).trim(), `outpost ${VERSION}`)

  // An edited conffile survives a reinstall (dpkg keeps it: the shipped one did not change).
  appendFileSync(config, 'max_inflight: 10\n')
  dpkg('-i', deb)
  assert.match(readFileSync(config, 'utf8'), /max_inflight: 10\n$/)

  writeFileSync(join(root, 'var/lib/outpost/marker'), 'queued messages')
  dpkg('--remove', 'outpost')
  assert.ok(!existsSync(cli))
  assert.ok(!existsSync(unit))
  assert.ok(existsSync(config), 'remove deleted the config')
  assert.ok(existsSync(join(root, 'var/lib/outpost/marker')), 'remove deleted the data')

  dpkg('--purge', 'outpost')
  assert.ok(!existsSync(config))
  assert.ok(!existsSync(join(root, 'etc/outpost')))
  assert.ok(!existsSync(join(root, 'var/lib/outpost')))
})
