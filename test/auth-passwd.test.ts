/**
 * Password files in Mosquitto's format (src/auth/passwd.ts) and `outpost passwd`, both directions
 * against Debian's Mosquitto 2.0.11: files written by its mosquitto_passwd verify here, and files
 * written here are accepted by its broker.
 */
import * as assert from 'node:assert/strict'
import { execFile, spawn, spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { promisify } from 'node:util'
import { hashPassword, PasswordFile, updatePasswordFile } from '../src/auth/passwd.js'
import { parseCliArgs } from '../src/cli-args.js'
import { OutpostError } from '../src/errors.js'
import { cloudClient, MOSQUITTO_PASSWD_BIN, startCloudBroker, type CloudBroker } from './helpers/cloud-broker.js'
import { OUTPOST_CLI, tempDir } from './helpers/outpost-process.js'

const run = promisify(execFile)

/** What mosquitto_passwd 2.0 writes: 12-byte salt (16 base64 chars), 64-byte hash (88, padded). */
const MOSQUITTO_7 = /^\$7\$(\d+)\$([A-Za-z0-9+/]{16})\$([A-Za-z0-9+/]{86}==)$/

interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** The built `outpost` with `stdin` piped in (empty when undefined), killed if it takes over 10 s. */
function outpost(args: readonly string[], stdin?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [OUTPOST_CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
    child.stdin.end(stdin)
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

async function mosquittoPasswd(...args: string[]): Promise<void> {
  await run(MOSQUITTO_PASSWD_BIN, args)
}

function userLine(file: string, user: string): string | undefined {
  return readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(`${user}:`))
}

/** The OUTPOST_E_PASSWD message `fn` throws. */
async function passwdError(fn: () => unknown): Promise<string> {
  try {
    await fn()
  } catch (err) {
    assert.ok(err instanceof OutpostError, String(err))
    assert.equal(err.code, 'OUTPOST_E_PASSWD')
    return err.message
  }
  assert.fail('expected OUTPOST_E_PASSWD')
}

describe('hash format [mosquitto_passwd 2.0]', () => {
  test('hashPassword writes $7$101$SALT$HASH in the shape mosquitto_passwd writes: 12-byte salt, 64-byte hash, standard padded base64', async (t) => {
    const dir = tempDir(t, 'outpost-passwd-')
    const file = join(dir, 'p')
    await mosquittoPasswd('-c', '-b', file, 'u', 'pw')
    const theirs = MOSQUITTO_7.exec(userLine(file, 'u')?.slice(2) ?? '')
    assert.ok(theirs, 'Debian mosquitto_passwd line shape')
    assert.equal(theirs[1], '101', "mosquitto_passwd's default iterations")
    const ours = MOSQUITTO_7.exec(await hashPassword('pw'))
    assert.ok(ours, 'our line shape')
    assert.equal(ours[1], '101')
    assert.equal(Buffer.from(ours[2] ?? '', 'base64').length, 12)
    assert.equal(Buffer.from(ours[3] ?? '', 'base64').length, 64)
    assert.match(await hashPassword('pw', { iterations: 100_000 }), /^\$7\$100000\$/)
    assert.notEqual(await hashPassword('pw'), await hashPassword('pw'), 'a fresh salt each time')
    await assert.rejects(hashPassword('pw', { iterations: 0 }), /iterations must be a whole number in 1\.\.2147483647, got 0/)
  })
})

describe('PasswordFile.verify', () => {
  test('lines written by Debian mosquitto_passwd ($7$ and -H sha512 $6$, UTF-8 passwords) verify; wrong passwords and unknown users do not', async (t) => {
    const dir = tempDir(t, 'outpost-passwd-')
    const file = join(dir, 'p')
    await mosquittoPasswd('-c', '-b', file, 'alice', 'secret')
    await mosquittoPasswd('-b', file, 'bob', 'pässwörd ✓')
    await mosquittoPasswd('-H', 'sha512', '-b', file, 'carol', 'six')
    assert.match(userLine(file, 'carol') ?? '', /^carol:\$6\$[A-Za-z0-9+/]{16}\$/)
    const pw = await PasswordFile.load(file)
    assert.deepEqual(pw.users, ['alice', 'bob', 'carol'])
    assert.equal(await pw.verify('alice', 'secret'), true)
    assert.equal(await pw.verify('bob', 'pässwörd ✓'), true)
    assert.equal(await pw.verify('bob', Buffer.from('pässwörd ✓')), true, 'the bytes of a CONNECT password')
    assert.equal(await pw.verify('carol', 'six'), true)
    for (const [user, password] of [['alice', 'Secret'], ['alice', 'secret '], ['alice', ''], ['bob', 'passwoerd ✓'], ['carol', 'secret'], ['dave', 'secret'], ['Alice', 'secret']] as const) {
      assert.equal(await pw.verify(user, password), false, `${user} / ${JSON.stringify(password)}`)
    }
  })

  test('$6$ built by hand as Mosquitto 1.x does it, SHA-512 of password then salt bytes, verifies; the other order does not', async () => {
    const salt = randomBytes(12)
    const line = (first: Buffer, second: Buffer): string =>
      `$6$${salt.toString('base64')}$${createHash('sha512').update(first).update(second).digest('base64')}`
    const pw = PasswordFile.parse(`right:${line(Buffer.from('pw'), salt)}\nswapped:${line(salt, Buffer.from('pw'))}\n`, 'f')
    assert.equal(await pw.verify('right', 'pw'), true)
    assert.equal(await pw.verify('right', 'pW'), false)
    assert.equal(await pw.verify('swapped', 'pw'), false)
  })

  test('the iteration count is read from each line', async () => {
    const pw = PasswordFile.parse(`a:${await hashPassword('x', { iterations: 1 })}\nb:${await hashPassword('y', { iterations: 2_000 })}\n`, 'f')
    assert.equal(await pw.verify('a', 'x'), true)
    assert.equal(await pw.verify('b', 'y'), true)
    assert.equal(await pw.verify('b', 'x'), false)
  })

  test('a 100,000-iteration check runs off the event loop, and an unknown user costs as much as a known one', async () => {
    const pw = PasswordFile.parse(`slow:${await hashPassword('pw', { iterations: 100_000 })}\n`, 'f')
    let ticks = 0
    let spinning = true
    const spin = (): void => {
      ticks++
      if (spinning) setImmediate(spin)
    }
    setImmediate(spin)
    let ok, unknown, known, unknownMs
    try {
      let started = performance.now()
      ok = await pw.verify('slow', 'pw')
      known = performance.now() - started
      started = performance.now()
      unknown = await pw.verify('nobody', 'pw')
      unknownMs = performance.now() - started
    } finally {
      // Also on a failure: a spinning setImmediate would keep the test process alive for ever.
      spinning = false
    }
    assert.equal(ok, true)
    assert.equal(unknown, false)
    assert.ok(ticks >= 10, `only ${ticks} setImmediate callbacks ran during ${Math.round(known + unknownMs)} ms of PBKDF2: the loop was blocked`)
    assert.ok(unknownMs > known * 0.3, `unknown user took ${unknownMs.toFixed(1)} ms, a known one ${known.toFixed(1)} ms: timing tells users apart`)
  })
})

describe('PasswordFile.parse', () => {
  const good = '$7$101$zxxcCEawDrpm+7+V$+i4/yhXxDXIxx/FAHX2e52wB9UNiZ8fTKjDlMVMBbEJTlp1knP38B2iMv8elj1f0xQGfhrokt7pAX3o+dVf4jg=='

  test('blank lines, # comments, blanks around fields and CRLF line ends are accepted, as Mosquitto reads them', () => {
    const pw = PasswordFile.parse(`# users\r\n\r\n   \r\n  alice  :  ${good}  \r\n\t# indented comment\r\nbob:${good}`, 'f')
    assert.deepEqual(pw.users, ['alice', 'bob'])
    assert.deepEqual(pw.warnings, [])
  })

  test('a user listed twice: the later line wins, as in Mosquitto 2.0.11, with a warning naming both lines', async () => {
    const pw = PasswordFile.parse(`dup:${await hashPassword('first')}\nother:${good}\ndup:${await hashPassword('second')}\n`, 'pw.txt')
    assert.deepEqual(pw.users, ['dup', 'other'])
    assert.equal(await pw.verify('dup', 'second'), true)
    assert.equal(await pw.verify('dup', 'first'), false)
    assert.deepEqual(pw.warnings, ['pw.txt:3: user "dup" is also on line 1; this later line wins, as in Mosquitto 2.0'])
  })

  const salt = 'zxxcCEawDrpm+7+V'
  const hash = good.slice(good.lastIndexOf('$') + 1)
  const malformed: Array<[string, RegExp]> = [
    ['alice', /^pw\.txt:3: no ':' between user name and password hash$/],
    [`:${good}`, /^pw\.txt:3: empty user name before ':'$/],
    ['alice:', /^pw\.txt:3: user "alice": no password hash after the user name$/],
    ['alice:secret', /^pw\.txt:3: user "alice": the password is not hashed \(plain text\?\)/],
    [`alice:$5$${salt}$${hash}`, /^pw\.txt:3: user "alice": unknown hash type "\$5\$"; expected \$6\$ \(SHA-512\) or \$7\$ \(PBKDF2-SHA512\)$/],
    ['alice:$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA', /^pw\.txt:3: user "alice": unknown hash type "\$argon2id\$"/],
    [`alice:$7$lots$${salt}$${hash}`, /^pw\.txt:3: user "alice": iterations "lots" is not a number$/],
    [`alice:$7$0$${salt}$${hash}`, /^pw\.txt:3: user "alice": iterations 0 is outside 1\.\.2147483647$/],
    [`alice:$7$101$${hash}`, /^pw\.txt:3: user "alice": a \$7\$ hash has 3 fields after the type \(\$7\$ITERATIONS\$SALT\$HASH\), found 2$/],
    [`alice:$6$101$${salt}$${hash}`, /^pw\.txt:3: user "alice": a \$6\$ hash has 2 fields after the type \(\$6\$SALT\$HASH\), found 3$/],
    [`alice:$7$101$zxxc*EawDrpm+7+V$${hash}`, /^pw\.txt:3: user "alice": salt "zxxc\*EawDrpm\+7\+V" is not valid base64$/],
    [`alice:$7$101$${salt}$${hash.slice(1)}`, /^pw\.txt:3: user "alice": hash ".*" is not valid base64$/],
    [`alice:$7$101$${salt}AAAA$${hash}`, /^pw\.txt:3: user "alice": salt is 15 bytes, expected 12 or 64$/],
    [`alice:$7$101$${salt}$${hash.slice(0, 84)}`, /^pw\.txt:3: user "alice": hash is 63 bytes, expected 64 \(SHA-512\)$/],
  ]
  for (const [line, message] of malformed) {
    test(`malformed line is reported with file and line: ${line.slice(0, 40)}`, async () => {
      assert.match(await passwdError(() => PasswordFile.parse(`# header\nok:${good}\n${line}\n`, 'pw.txt')), message)
    })
  }

  test('load names the path of a file it cannot read', async (t) => {
    const missing = join(tempDir(t, 'outpost-passwd-'), 'nope')
    assert.match(await passwdError(() => PasswordFile.load(missing)), new RegExp(`^${missing}: cannot read the password file: ENOENT`))
  })
})

describe('updatePasswordFile', () => {
  test('changing and adding users keeps comments and other lines byte for byte; deleting removes only that user', async (t) => {
    const file = join(tempDir(t, 'outpost-passwd-'), 'p')
    await mosquittoPasswd('-c', '-b', file, 'alice', 'a1')
    await mosquittoPasswd('-b', file, 'bob', 'b1')
    const [alice = '', bob = ''] = readFileSync(file, 'utf8').split('\n')
    writeFileSync(file, `# managed by hand\n${alice}\n\n# bob is the gateway\n${bob}\n`)
    assert.equal(await updatePasswordFile(file, 'bob', 'b2'), 'changed')
    assert.equal(await updatePasswordFile(file, 'carol', 'c1', { iterations: 1_000 }), 'added')
    const lines = readFileSync(file, 'utf8').split('\n')
    assert.deepEqual([lines[0], lines[1], lines[2], lines[3]], ['# managed by hand', alice, '', '# bob is the gateway'])
    assert.match(lines[4] ?? '', /^bob:\$7\$101\$/)
    assert.match(lines[5] ?? '', /^carol:\$7\$1000\$/)
    assert.equal(lines.length, 7, 'one line each, newline-terminated')
    let pw = await PasswordFile.load(file)
    assert.equal(await pw.verify('bob', 'b2'), true)
    assert.equal(await pw.verify('bob', 'b1'), false)
    assert.equal(await pw.verify('alice', 'a1'), true)

    assert.equal(await updatePasswordFile(file, 'alice', undefined), 'deleted')
    assert.equal(readFileSync(file, 'utf8'), `# managed by hand\n\n# bob is the gateway\n${lines[4]}\n${lines[5]}\n`)
    pw = await PasswordFile.load(file)
    assert.deepEqual(pw.users, ['bob', 'carol'])
    assert.match(await passwdError(() => updatePasswordFile(file, 'alice', undefined)), /: user "alice" not found$/)
    assert.deepEqual(readdirSync(join(file, '..')), ['p'], 'no temporary file left behind')
  })

  test('create makes a 0600 file with one user, or replaces an existing one; without it a missing file is an error', async (t) => {
    const dir = tempDir(t, 'outpost-passwd-')
    const file = join(dir, 'p')
    assert.match(await passwdError(() => updatePasswordFile(file, 'u', 'x')), /: no such file; use -c to create it$/)
    const umask = process.umask(0)
    try {
      assert.equal(await updatePasswordFile(file, 'u', 'x', { create: true }), 'created')
    } finally {
      process.umask(umask)
    }
    assert.equal(statSync(file).mode & 0o777, 0o600)
    chmodSync(file, 0o640)
    await updatePasswordFile(file, 'v', 'y')
    assert.equal(statSync(file).mode & 0o777, 0o640, 'an existing file keeps its mode')
    await updatePasswordFile(file, 'w', 'z', { create: true })
    assert.deepEqual((await PasswordFile.load(file)).users, ['w'])
  })

  test('a user listed twice is changed once and the later duplicate dropped; a malformed file is refused, not edited', async (t) => {
    const file = join(tempDir(t, 'outpost-passwd-'), 'p')
    writeFileSync(file, `dup:${await hashPassword('one')}\nx:${await hashPassword('x')}\ndup:${await hashPassword('two')}\n`)
    await updatePasswordFile(file, 'dup', 'three')
    const text = readFileSync(file, 'utf8')
    assert.match(text, /^dup:\$7\$[^\n]+\nx:\$7\$[^\n]+\n$/)
    assert.equal(await (await PasswordFile.load(file)).verify('dup', 'three'), true)
    writeFileSync(file, `${text}oops\n`)
    assert.match(await passwdError(() => updatePasswordFile(file, 'x', 'y')), /:3: no ':' between user name and password hash$/)
    assert.equal(readFileSync(file, 'utf8'), `${text}oops\n`)
  })

  test('user names mosquitto_passwd or Mosquitto would mangle are refused', async (t) => {
    const file = join(tempDir(t, 'outpost-passwd-'), 'p')
    for (const [user, why] of [['a:b', /must not contain ':'/], ['a\tb', /control characters/], ['a\u0085', /control characters/], ['\uD800x', /valid UTF-8/], [' a', /blanks/], ['#a', /comment/], ['', /empty/]] as const) {
      assert.match(await passwdError(() => updatePasswordFile(file, user, 'x', { create: true })), why, JSON.stringify(user))
    }
  })
})

describe('Debian Mosquitto 2.0.11 reads what we write', () => {
  /** Mosquitto's answer to a 3.1.1 CONNECT: 0 accepted, else the CONNACK return code. */
  async function connack(t: TestContext, broker: CloudBroker, username: string | undefined, password: string | undefined): Promise<number> {
    try {
      const { connack: ack } = await cloudClient(t, broker, { ...(username === undefined ? {} : { username }), ...(password === undefined ? {} : { password }) })
      return ack.returnCode ?? -1
    } catch (err) {
      const code = (err as { code?: unknown }).code
      if (typeof code === 'number') return code
      throw err
    }
  }

  test('a file from `outpost passwd -c -b`, `outpost passwd -I` and updatePasswordFile: right passwords CONNACK 0, wrong ones 5; duplicates resolve the same way here and there', async (t) => {
    const file = join(tempDir(t, 'outpost-passwd-'), 'passwd')
    for (const args of [['-c', '-b', file, 'alice', 'secret'], ['-b', '-I', '20000', file, 'bob', 'hunter2']]) {
      const r = await outpost(['passwd', ...args])
      assert.equal(r.code, 0, r.stderr)
    }
    await updatePasswordFile(file, 'ünï', 'pä55 ✓')
    // Appended by hand: a comment, and one user twice, to pin which line Mosquitto 2.0.11 takes.
    writeFileSync(file, `${readFileSync(file, 'utf8')}# dup below\ndup:${await hashPassword('first')}\ndup:${await hashPassword('second')}\n`)
    assert.equal(statSync(file).mode & 0o777, 0o600)
    const broker = await startCloudBroker(t, { extraConfig: ['allow_anonymous false', `password_file ${file}`] })
    const ours = await PasswordFile.load(file)
    const cases: Array<[string | undefined, string | undefined, number]> = [
      ['alice', 'secret', 0],
      ['bob', 'hunter2', 0],
      ['ünï', 'pä55 ✓', 0],
      ['dup', 'second', 0],
      ['dup', 'first', 5],
      ['alice', 'hunter2', 5],
      ['bob', 'Hunter2', 5],
      ['nobody', 'secret', 5],
      [undefined, undefined, 5],
    ]
    for (const [user, password, code] of cases) {
      assert.equal(await connack(t, broker, user, password), code, `Mosquitto, ${String(user)} / ${String(password)}`)
      if (user !== undefined && password !== undefined) assert.equal(await ours.verify(user, password), code === 0, `Outpost, ${user} / ${password}`)
    }
    assert.doesNotMatch(broker.log(), /Error|Warning: Invalid|Unable to decode/, 'Mosquitto complained about the file')
  })
})

describe('outpost passwd', () => {
  test('arguments: mosquitto_passwd flags, with -c meaning create; mistakes are usage errors', () => {
    assert.deepEqual(parseCliArgs(['passwd', '-c', '-b', 'f', 'u', 'p']), { kind: 'passwd', file: 'f', user: 'u', action: { kind: 'set', password: 'p', create: true, iterations: undefined } })
    assert.deepEqual(parseCliArgs(['passwd', '-I', '1000', 'f', 'u']), { kind: 'passwd', file: 'f', user: 'u', action: { kind: 'set', password: undefined, create: false, iterations: 1000 } })
    assert.deepEqual(parseCliArgs(['passwd', '-D', 'f', 'u']), { kind: 'passwd', file: 'f', user: 'u', action: { kind: 'delete' } })
    assert.deepEqual(parseCliArgs(['passwd', '--help']), { kind: 'help' })
    const refused: Array<[string[], RegExp]> = [
      [['passwd', 'f'], /needs FILE and USER/],
      [['passwd', 'f', 'u', 'p'], /only with -b/],
      [['passwd', '-b', 'f', 'u'], /-b needs PASSWORD/],
      [['passwd', '-c', '-D', 'f', 'u'], /-D cannot be combined with -c/],
      [['passwd', '-b', '-D', 'f', 'u', 'p'], /-D cannot be combined with -b/],
      [['passwd', '-I', '1e3', 'f', 'u'], /-I: expected a whole number in 1\.\.2147483647, got "1e3"/],
      [['passwd', '-I', '0', 'f', 'u'], /-I: expected a whole number/],
      [['passwd', '-b', 'f', 'a:b', 'p'], /USER "a:b" must not contain ':'/],
      [['passwd', '-H', 'sha512', 'f', 'u'], /unknown option -H/],
      [['passwd', '-b', 'f', 'u', ''], /must not be empty/],
      [['-c', 'o.yaml', 'passwd', 'f', 'u'], /passwd must come first/],
    ]
    for (const [argv, message] of refused) assert.throws(() => parseCliArgs(argv), (err: Error) => err.name === 'UsageError' && message.test(err.message), argv.join(' '))
  })

  test('the built CLI: pipe one line as the password, -D deletes, exit 1 on errors and 2 on usage mistakes; --help lists it', async (t) => {
    const file = join(tempDir(t, 'outpost-passwd-'), 'p')
    let r = await outpost(['passwd', '-c', file, 'alice'], 'from a pipe\nignored\n')
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, `${file}: created, with user "alice"\n`, ''])
    r = await outpost(['passwd', '-b', file, 'bob', 'b'])
    assert.deepEqual([r.code, r.stdout], [0, `${file}: added user "bob"\n`])
    assert.equal(await (await PasswordFile.load(file)).verify('alice', 'from a pipe'), true)
    r = await outpost(['passwd', '-D', file, 'alice'])
    assert.deepEqual([r.code, r.stdout], [0, `${file}: deleted user "alice"\n`])
    assert.deepEqual((await PasswordFile.load(file)).users, ['bob'])
    r = await outpost(['passwd', '-D', file, 'alice'])
    assert.deepEqual([r.code, r.stderr], [1, `outpost: ${file}: user "alice" not found (OUTPOST_E_PASSWD)\n`])
    r = await outpost(['passwd', file, 'carol'])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /no password given: stdin is not a terminal and held no line; pipe one in or use -b \(OUTPOST_E_PASSWD\)/)
    r = await outpost(['passwd', file, 'carol'], '\n')
    assert.deepEqual([r.code, r.stderr], [1, 'outpost: the password must not be empty (OUTPOST_E_PASSWD)\n'])
    r = await outpost(['passwd', '-b', file, 'a:b', 'x'])
    assert.equal(r.code, 2)
    assert.match(r.stderr, /must not contain ':'.*\nRun 'outpost --help' for usage\.\n$/s)
    r = await outpost(['--help'])
    assert.match(r.stdout, /outpost passwd \[-c\] \[-b\] \[-D\] \[-I N\] FILE USER \[PASSWORD\]/)
  })

  const hasScript = spawnSync('script', ['--version'], { stdio: 'ignore' }).status === 0
  test('on a terminal it prompts twice without echo and refuses a mismatch', { skip: hasScript ? false : 'needs script(1) from util-linux for a pty' }, async (t) => {
    const file = join(tempDir(t, 'outpost-passwd-'), 'p')
    /** Runs outpost passwd under a pty, answering each prompt once it appears. */
    const onTty = (answers: readonly string[]): Promise<{ code: number | null; out: string }> =>
      new Promise((resolve, reject) => {
        const cmd = `'${process.execPath}' '${OUTPOST_CLI}' passwd -c '${file}' tty_user`
        const child = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] })
        let out = ''
        let answered = 0
        child.stdout.setEncoding('utf8').on('data', (s: string) => {
          out += s
          const prompts = out.match(/(Password|Reenter password): /g)?.length ?? 0
          for (; answered < prompts; answered++) child.stdin.write(`${answers[answered] ?? ''}\r`)
        })
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
        child.on('error', reject)
        child.on('close', (code) => {
          clearTimeout(timer)
          resolve({ code, out })
        })
      })
    let r = await onTty(['typed secret', 'typed secret'])
    assert.equal(r.code, 0, r.out)
    assert.match(r.out, /^Password: \r\nReenter password: \r\n/)
    assert.doesNotMatch(r.out, /typed/, 'the password was echoed')
    assert.equal(await (await PasswordFile.load(file)).verify('tty_user', 'typed secret'), true)
    r = await onTty(['one', 'two'])
    assert.equal(r.code, 1)
    assert.match(r.out, /the passwords do not match \(OUTPOST_E_PASSWD\)/)
  })
})
