import * as assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, test, type TestContext } from 'node:test'
import { parseCliArgs, UsageError } from '../src/cli-args.js'

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url))
const PACKAGE_JSON = new URL('../../package.json', import.meta.url)

interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs the compiled bin the way a shell would, with a hard limit so a hang fails the test instead of the run. */
function runCli(args: readonly string[], cwd: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`outpost ${args.join(' ')} did not exit within 10 s; stdout: ${stdout} stderr: ${stderr}`))
    }, 10_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-cli-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

describe('parseCliArgs', () => {
  test('no arguments runs with the default config and no overrides', () => {
    assert.deepEqual(parseCliArgs([]), { kind: 'run', configFile: undefined, overrides: {}, moveAsideStore: false })
  })

  test('--config and every override are parsed and typed', () => {
    const argv = ['-c', 'o.yaml', '--port', '0', '--bind', '::', '--data-dir', '/d', '--log-level', 'debug']
    assert.deepEqual(parseCliArgs(argv), {
      kind: 'run',
      configFile: 'o.yaml',
      overrides: { port: 0, bind: '::', dataDir: '/d', logLevel: 'debug' },
      moveAsideStore: false,
    })
    assert.deepEqual(parseCliArgs(['--port=65535']), { kind: 'run', configFile: undefined, overrides: { port: 65535 }, moveAsideStore: false })
    assert.deepEqual(parseCliArgs(['--move-aside-store']), { kind: 'run', configFile: undefined, overrides: {}, moveAsideStore: true })
  })

  test('--help and --version win over everything else', () => {
    assert.deepEqual(parseCliArgs(['--port', '1', '--help']), { kind: 'help' })
    assert.deepEqual(parseCliArgs(['-h']), { kind: 'help' })
    assert.deepEqual(parseCliArgs(['--version']), { kind: 'version' })
  })

  test('check-config FILE', () => {
    assert.deepEqual(parseCliArgs(['check-config', 'x.yaml']), { kind: 'check-config', file: 'x.yaml' })
  })

  test('store repair, with the data dir from --data-dir or the config file', () => {
    assert.deepEqual(parseCliArgs(['store', 'repair', '--data-dir', '/d']), { kind: 'store-repair', configFile: undefined, overrides: { dataDir: '/d' } })
    assert.deepEqual(parseCliArgs(['store', 'repair', '-c', 'o.yaml']), { kind: 'store-repair', configFile: 'o.yaml', overrides: {} })
    assert.throws(() => parseCliArgs(['store']), /^UsageError: store takes one action: repair$/)
    assert.throws(() => parseCliArgs(['store', 'fix']), /^UsageError: store takes one action: repair$/)
  })

  const refused: Array<[string[], RegExp]> = [
    [['--prot', '1'], /^unknown option --prot; did you mean --port\?$/],
    [['--verbose'], /^unknown option --verbose$/],
    [['--port', 'abc'], /^--port: expected an integer 0\.\.65535, got "abc"$/],
    [['--port', '65536'], /^--port: expected an integer 0\.\.65535, got 65536$/],
    [['--port', '-1'], /--port/],
    [['--port', '0x50'], /^--port: expected an integer 0\.\.65535, got "0x50"$/],
    [['--port'], /--port/],
    [['--bind', ''], /^--bind: expected a non-empty string, got ""$/],
    [['--data-dir', ' '], /^--data-dir: expected a non-empty string/],
    [['--log-level', 'loud'], /^--log-level: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"$/],
    [['--config', ''], /^--config: /],
    [['serve'], /^unknown command "serve"$/],
    [['chek-config', 'x'], /did you mean check-config\?$/],
    [['check-config'], /^check-config takes exactly one FILE$/],
    [['check-config', 'a', 'b'], /^check-config takes exactly one FILE$/],
    [['check-config', 'a', '--port', '1'], /^check-config takes no options, got --port$/],
  ]
  for (const [argv, message] of refused) {
    test(`refuses ${JSON.stringify(argv)} with OUTPOST_E_USAGE`, () => {
      assert.throws(() => parseCliArgs(argv), (err: unknown) => {
        assert.ok(err instanceof UsageError)
        assert.equal(err.code, 'OUTPOST_E_USAGE')
        assert.match(err.message, message)
        return true
      })
    })
  }
})

describe('outpost (spawned)', () => {
  test('--help lists every flag and subcommand and exits 0', async (t) => {
    const r = await runCli(['--help'], tempDir(t))
    assert.equal(r.code, 0, r.stderr)
    for (const word of ['--config', '-c,', '--port', '--bind', '--data-dir', '--log-level', '--help', '-h,', '--version', 'check-config FILE']) {
      assert.ok(r.stdout.includes(word), `--help does not mention ${word}`)
    }
    assert.equal(r.stderr, '')
  })

  test('--version prints the version from package.json', async (t) => {
    const pkg: unknown = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8'))
    assert.ok(typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string')
    const r = await runCli(['--version'], tempDir(t))
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, `outpost ${pkg.version}\n`)
  })

  test('check-config on a good file prints "FILE: OK" and exits 0', async (t) => {
    const dir = tempDir(t)
    writeFileSync(join(dir, 'good.yaml'), 'listeners:\n  - port: 0\nlog_level: warn\n')
    const r = await runCli(['check-config', 'good.yaml'], dir)
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, 'good.yaml: OK\n')
    assert.equal(r.stderr, '')
  })

  test('check-config on a bad file prints every problem to stderr and exits 1', async (t) => {
    const dir = tempDir(t)
    writeFileSync(join(dir, 'bad.yaml'), 'max_inflight: 0\nlisteners:\n  - port: abc\nlog_levle: info\n')
    const r = await runCli(['check-config', 'bad.yaml'], dir)
    assert.equal(r.code, 1)
    assert.equal(r.stdout, '')
    assert.deepEqual(r.stderr.trimEnd().split('\n'), [
      'bad.yaml:1:15: max_inflight: expected an integer 1..65535, got 0',
      'bad.yaml:3:11: listeners[0].port: expected an integer 0..65535, got "abc"',
      'bad.yaml:4:1: log_levle: unknown key; did you mean log_level?',
      'bad.yaml: 3 problems (OUTPOST_E_CONFIG_INVALID)',
    ])
  })

  test('check-config on broken YAML reports OUTPOST_E_CONFIG_YAML with a position and exits 1', async (t) => {
    const dir = tempDir(t)
    writeFileSync(join(dir, 'broken.yaml'), 'listeners: [{port: 1\n')
    const r = await runCli(['check-config', 'broken.yaml'], dir)
    assert.equal(r.code, 1)
    assert.match(r.stderr, /^broken\.yaml:\d+:\d+: invalid YAML: /)
    assert.match(r.stderr, /OUTPOST_E_CONFIG_YAML/)
  })

  test('check-config on a missing file names the path with OUTPOST_E_CONFIG_READ and exits 1', async (t) => {
    const r = await runCli(['check-config', 'nope.yaml'], tempDir(t))
    assert.equal(r.code, 1)
    assert.equal(r.stderr, 'outpost: cannot read config file nope.yaml: no such file (OUTPOST_E_CONFIG_READ)\n')
  })

  test('an unknown flag or a bad flag value exits 2 with a pointer to --help', async (t) => {
    const dir = tempDir(t)
    for (const args of [['--frobnicate'], ['--port', '99999'], ['--log-level', 'loud'], ['check-config']]) {
      const r = await runCli(args, dir)
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`)
      assert.match(r.stderr, /^outpost: .+\nRun 'outpost --help' for usage\.\n$/)
      assert.equal(r.stdout, '')
    }
  })

  test('a bad config exits 1 with every problem before any port is opened', async (t) => {
    const dir = tempDir(t)
    // Hold a port and name it in the config: had the CLI tried to listen, it would fail on
    // EADDRINUSE and log to stdout; it must stop at the config instead and log nothing.
    const held = createServer()
    await new Promise<void>((resolve) => held.listen(0, '127.0.0.1', resolve))
    t.after(() => held.close())
    const address = held.address()
    assert.ok(address !== null && typeof address === 'object')
    const heldPort = (address satisfies AddressInfo).port
    writeFileSync(join(dir, 'bad.yaml'), `listeners:\n  - port: ${heldPort}\n    bind: 127.0.0.1\nsys_interval: -1\nmax_keepalive: x\n`)
    const r = await runCli(['--config', 'bad.yaml', '--data-dir', join(dir, 'data')], dir)
    assert.equal(r.code, 1)
    assert.equal(r.stdout, '', 'nothing may be logged: the logger and gateway start only after the config is valid')
    assert.deepEqual(r.stderr.trimEnd().split('\n'), [
      'bad.yaml:4:15: sys_interval: expected an integer >= 0, got -1',
      'bad.yaml:5:16: max_keepalive: expected an integer 0..65535, got "x"',
      'outpost: 2 problems (OUTPOST_E_CONFIG_INVALID)',
    ])
  })

  test('a missing --config file exits 1 with OUTPOST_E_CONFIG_READ', async (t) => {
    const r = await runCli(['--config', 'missing.yaml'], tempDir(t))
    assert.equal(r.code, 1)
    assert.equal(r.stdout, '')
    assert.equal(r.stderr, 'outpost: cannot read config file missing.yaml: no such file (OUTPOST_E_CONFIG_READ)\n')
  })
})
