#!/usr/bin/env node
// Runs every compiled *.test.js under dist/test with node's built-in runner.
// Node 20 has no glob support in `node --test`, so the file list is built here.
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'

const root = join(import.meta.dirname, '..', 'dist', 'test')
const only = process.argv.slice(2)
const files = readdirSync(root, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.test.js'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort()
  .map((f) => join(root, f))
if (files.length === 0) {
  console.error('no test files found under', root)
  process.exit(1)
}
// firmware-bridge/ (the C side of the serial link) has its own host tests, against the same
// golden vectors as src/serial/; they need make and a C compiler, which .ci/run installs.
for (const tool of ['make', 'cc']) {
  if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).error) {
    console.error(`npm test needs \`${tool}\` for the firmware-bridge C tests (Debian: apt-get install build-essential)`)
    process.exit(1)
  }
}
const fw = spawnSync('make', ['-C', join(import.meta.dirname, '..', 'firmware-bridge'), 'test'], { stdio: 'inherit' })
if (fw.status !== 0) {
  console.error('firmware-bridge: make test failed')
  process.exit(fw.status || 1)
}
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], { stdio: 'inherit' })
process.exit(r.status ?? 1)
