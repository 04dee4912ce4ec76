/**
 * acl_file in Mosquitto's format (src/auth/acl.ts): every rule form, mirroring the examples of
 * mosquitto.conf(5) and Debian's aclfile.example, then the same decisions taken by the real
 * Mosquitto 2.0.11 (/usr/sbin/mosquitto) and compared case by case. Where Outpost deliberately
 * refuses more than Mosquitto, the case is listed in KNOWN_DIFFERENCES with the reason.
 */
import * as assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { AclFile, type AclAccess } from '../src/auth/acl.js'
import { isOutpostError } from '../src/errors.js'
import type { MqttClient } from 'mqtt'
import { cloudClient, MOSQUITTO_PASSWD_BIN, startCloudBroker } from './helpers/cloud-broker.js'

type Case = readonly [access: AclAccess, clientId: string, username: string | undefined, topic: string, allowed: boolean]

/** Every case at once, so one failure shows the whole table's disagreements. */
function expectAll(acl: AclFile, cases: readonly Case[]): void {
  const wrong = cases.filter(([a, c, u, t, want]) => acl.check(a, c, u, t) !== want).map(([a, c, u, t, want]) => `${a} ${c}/${u ?? '(anonymous)'} "${t}": expected ${want}`)
  assert.deepEqual(wrong, [])
}

function parseError(text: string, file = 'acl.conf'): string {
  try {
    AclFile.parse(text, file)
  } catch (err) {
    assert.ok(isOutpostError(err))
    assert.equal(err.code, 'OUTPOST_E_ACL')
    return err.message
  }
  assert.fail(`expected a parse error for ${JSON.stringify(text)}`)
}

/** Debian's /usr/share/doc/mosquitto/examples/aclfile.example, as shipped with 2.0.11. */
const ACLFILE_EXAMPLE = `# This affects access control for clients with no username.
topic read $SYS/#

# This only affects clients with username "roger".
user roger
topic foo/bar

# This affects all clients.
pattern write $SYS/broker/connection/%c/state
`

describe('rule forms [mosquitto.conf(5) acl_file, aclfile.example]', () => {
  test('aclfile.example: anonymous $SYS reading, roger\'s readwrite foo/bar, every client its own bridge state', () => {
    expectAll(AclFile.parse(ACLFILE_EXAMPLE, 'aclfile.example'), [
      ['read', 'c1', undefined, '$SYS/broker/version', true],
      ['subscribe', 'c1', undefined, '$SYS/#', true],
      ['write', 'c1', undefined, '$SYS/broker/version', false],
      ['read', 'c1', undefined, 'foo/bar', false],
      ['read', 'r1', 'roger', 'foo/bar', true],
      ['write', 'r1', 'roger', 'foo/bar', true],
      ['write', 'r1', 'roger', 'foo/baz', false],
      ['read', 'r1', 'roger', '$SYS/broker/version', false],
      ['write', 'c1', undefined, '$SYS/broker/connection/c1/state', true],
      ['write', 'r1', 'roger', '$SYS/broker/connection/r1/state', true],
      ['write', 'c1', undefined, '$SYS/broker/connection/r1/state', false],
      ['read', 'c1', undefined, '$SYS/broker/connection/c1/state', true], // by topic read $SYS/#
      ['read', 'r1', 'roger', '$SYS/broker/connection/r1/state', false],
    ])
  })

  test('access words: read, write, readwrite, none (= readwrite), deny; read also grants subscribe', () => {
    const acl = AclFile.parse('topic read r/#\ntopic write w/#\ntopic readwrite rw/#\ntopic plain/#\ntopic deny rw/no', 'a')
    expectAll(acl, [
      ['read', 'c', undefined, 'r/1', true], ['write', 'c', undefined, 'r/1', false], ['subscribe', 'c', undefined, 'r/#', true],
      ['read', 'c', undefined, 'w/1', false], ['write', 'c', undefined, 'w/1', true], ['subscribe', 'c', undefined, 'w/#', false],
      ['read', 'c', undefined, 'rw/1', true], ['write', 'c', undefined, 'rw/1', true], ['subscribe', 'c', undefined, 'rw/1', true],
      ['read', 'c', undefined, 'plain/1', true], ['write', 'c', undefined, 'plain/1', true],
      ['read', 'c', undefined, 'rw/no', false], ['write', 'c', undefined, 'rw/no', false], ['subscribe', 'c', undefined, 'rw/no', false],
    ])
  })

  test('mosquitto.conf(5): `pattern write sensor/%u/data`, and `pattern readwrite sensors/%u/#`', () => {
    const acl = AclFile.parse('pattern write sensor/%u/data\npattern readwrite sensors/%u/#', 'a')
    expectAll(acl, [
      ['write', 'c', 'ann', 'sensor/ann/data', true], ['read', 'c', 'ann', 'sensor/ann/data', false],
      ['write', 'c', 'ann', 'sensor/bob/data', false], ['write', 'c', undefined, 'sensor/%u/data', false],
      ['read', 'c', 'ann', 'sensors/ann', true], ['write', 'c', 'ann', 'sensors/ann/t/1', true], ['subscribe', 'c', 'ann', 'sensors/ann/+/t', true],
      ['read', 'c', 'ann', 'sensors/bob/t', false], ['subscribe', 'c', 'ann', 'sensors/+/t', false],
    ])
  })

  test('anonymous rules before the first user line; user blocks; a user without a block gets patterns only; blocks merge', () => {
    const acl = AclFile.parse(['topic anon/#', 'user ann', 'topic ann/#', 'user bob', 'topic bob/#', 'user ann', 'topic ann2/#', 'user two words', 'topic tw/#', 'pattern read p/%c'].join('\n'), 'a')
    expectAll(acl, [
      ['write', 'c', undefined, 'anon/x', true], ['write', 'c', 'ann', 'anon/x', false], ['write', 'c', 'carol', 'anon/x', false],
      ['write', 'c', 'ann', 'ann/x', true], ['write', 'c', 'ann', 'ann2/x', true], ['write', 'c', 'ann', 'bob/x', false],
      ['write', 'c', undefined, 'ann/x', false], ['write', 'c', 'Ann', 'ann/x', false], ['write', 'c', 'two words', 'tw/x', true],
      ['read', 'c', 'carol', 'p/c', true], ['read', 'c', undefined, 'p/c', true], ['read', 'c', 'carol', 'carol/x', false],
    ])
  })

  test('an acl_file with no rules refuses everything, as in Mosquitto', () => {
    expectAll(AclFile.parse('# nothing\n\n', 'a'), [['read', 'c', undefined, 'a', false], ['write', 'c', 'u', 'a', false], ['subscribe', 'c', 'u', '#', false]])
  })
})

describe('deny wins', () => {
  test('a deny refuses in its block whatever the order of the lines', () => {
    const acl = AclFile.parse('topic a/#\ntopic deny a/secret/#\nuser u\ntopic deny b/secret\ntopic b/#', 'a')
    expectAll(acl, [
      ['read', 'c', undefined, 'a/x', true], ['read', 'c', undefined, 'a/secret', false], ['write', 'c', undefined, 'a/secret/x', false],
      ['write', 'c', 'u', 'b/x', true], ['write', 'c', 'u', 'b/secret', false],
    ])
  })

  test('a pattern deny refuses what a topic grant allows, and a topic deny what a pattern allows (Mosquitto: topic grant wins)', () => {
    const acl = AclFile.parse('user u\ntopic shared/#\ntopic deny home/u/attic\npattern deny shared/%u/secret\npattern readwrite home/%u/#', 'a')
    expectAll(acl, [
      ['write', 'c', 'u', 'shared/x', true], ['write', 'c', 'u', 'shared/u/secret', false], ['write', 'c', 'v', 'shared/u/secret', false],
      ['write', 'c', 'u', 'home/u/x', true], ['write', 'c', 'u', 'home/u/attic', false],
    ])
    assert.deepEqual(acl.explain('write', 'c', 'u', 'shared/u/secret'), { allowed: false, rule: { kind: 'pattern', access: 'deny', topic: 'shared/%u/secret', file: 'a', line: 4 } })
    assert.deepEqual(acl.explain('write', 'c', 'u', 'nowhere'), { allowed: false, rule: undefined })
  })
})

describe('%c and %u substitution', () => {
  const acl = AclFile.parse('pattern readwrite clients/%c/#\npattern read users/%u/%c\npattern read public/#', 'a')

  test('%c is the client id, %u the username, each one whole level; %u never matches an anonymous client', () => {
    expectAll(acl, [
      ['write', 'k1', undefined, 'clients/k1/x', true], ['write', 'k1', undefined, 'clients/k1', true], ['write', 'k1', undefined, 'clients/k2/x', false],
      ['read', 'k1', 'ann', 'users/ann/k1', true], ['read', 'k1', 'ann', 'users/ann/k2', false], ['read', 'k1', undefined, 'users/%u/k1', false],
      ['read', 'k1', undefined, 'public/x', true],
    ])
  })

  test('a client id or username with / + # or a leading $, or an empty one, cannot widen a match: no pattern grants at all', () => {
    expectAll(acl, [
      ['write', 'p/q', undefined, 'clients/p/q/x', false], ['write', 'p/q', undefined, 'clients/p/x', false],
      ['write', '+', undefined, 'clients/k1/x', false], ['write', '#', undefined, 'clients/k1/x', false],
      ['read', 'k1', 'a+b', 'users/a+b/k1', false], ['read', 'k1', 'a/b', 'users/a/b/k1', false], ['read', 'k1', '', 'users//k1', false],
      ['read', '+', undefined, 'public/x', false], ['read', 'k1', '#', 'public/x', false], ['read', '', undefined, 'public/x', false],
      ['read', '$SYS', undefined, 'clients/$SYS/x', false],
    ])
    expectAll(AclFile.parse('pattern read %c/#', 'a'), [['read', '$SYS', undefined, '$SYS/broker/version', false], ['read', 'k1', undefined, 'k1/x', true]])
  })

  test('topic rules still apply to such a client; %c in a `topic` line is literal', () => {
    const lit = AclFile.parse('topic t/%c\npattern read p/#', 'a')
    assert.deepEqual(lit.warnings, ['a:1: %c and %u are substituted only in `pattern` lines; this `topic` line takes "t/%c" literally', 'a:2: pattern "p/#" has no %c or %u, so it applies to every client alike'])
    expectAll(lit, [['read', 'a+b', undefined, 't/%c', true], ['read', 'k', undefined, 't/k', false], ['read', 'a+b', undefined, 'p/x', false]])
  })
})

describe('subscribe: the filter must be covered by a read grant [mosquitto_sub_matches_acl]', () => {
  test('a grant on a/# covers a/#, a/+, a/b and a itself; a grant on a/b covers neither a/# nor a/+', () => {
    const acl = AclFile.parse('topic read a/#\ntopic read b/c\ntopic read d/+/e\ntopic deny a/secret\ntopic read f/+', 'a')
    expectAll(acl, [
      ['subscribe', 'c', undefined, 'a/#', true], ['subscribe', 'c', undefined, 'a/+', true], ['subscribe', 'c', undefined, 'a/b', true], ['subscribe', 'c', undefined, 'a', true],
      ['subscribe', 'c', undefined, 'b/c', true], ['subscribe', 'c', undefined, 'b/#', false], ['subscribe', 'c', undefined, 'b/+', false], ['subscribe', 'c', undefined, '#', false],
      ['subscribe', 'c', undefined, 'd/x/e', true], ['subscribe', 'c', undefined, 'd/+/e', true], ['subscribe', 'c', undefined, 'd/#', false], ['subscribe', 'c', undefined, 'd/x/#', false],
      ['subscribe', 'c', undefined, 'f/#', false], ['subscribe', 'c', undefined, 'f/+/+', false], ['subscribe', 'c', undefined, 'f/+', true],
      // A deny covering all of the filter refuses it; covering part of it, delivery filters.
      ['subscribe', 'c', undefined, 'a/secret', false], ['read', 'c', undefined, 'a/secret', false],
      // Not a filter at all: refused rather than guessed at.
      ['subscribe', 'c', undefined, 'a/#/b', false], ['subscribe', 'c', undefined, '', false], ['read', 'c', undefined, 'a/+', false], ['write', 'c', undefined, 'a/#', false],
    ])
  })
})

describe('$ topics [MQTT-4.7.2-1]', () => {
  test('# and + rules do not reach $SYS; only rules written with a leading $ do', () => {
    const acl = AclFile.parse('topic readwrite #\ntopic read +/broker/#\nuser u\ntopic read $SYS/broker/+\nuser v\ntopic read $SYS/#', 'a')
    expectAll(acl, [
      ['read', 'c', undefined, 'x/y', true], ['read', 'c', undefined, '$SYS/broker/version', false], ['subscribe', 'c', undefined, '$SYS/#', false], ['subscribe', 'c', undefined, '#', true],
      ['read', 'c', 'u', '$SYS/broker/version', true], ['read', 'c', 'u', '$SYS/broker/load/x', false], ['subscribe', 'c', 'u', '$SYS/#', false],
      ['subscribe', 'c', 'v', '$SYS/#', true], ['subscribe', 'c', 'v', '$SYS/broker/+', true], ['read', 'c', 'v', 'x', false],
    ])
  })
})

describe('parsing', () => {
  test('comments, blank and indented lines, CRLF, a BOM, tabs; a topic with spaces; one word is always the topic', () => {
    const acl = AclFile.parse('\uFEFF# comment\r\n\r\n   # indented comment\r\n  topic\tread\tt/1  \r\ntopic read a b/c d\r\ntopic read\r\nuser   u v  \r\ntopic x', 'f')
    expectAll(acl, [
      ['read', 'c', undefined, 't/1', true], ['write', 'c', undefined, 't/1', false], ['read', 'c', undefined, 'a b/c d', true],
      ['write', 'c', undefined, 'read', true], ['write', 'c', 'u v', 'x', true],
    ])
    assert.deepEqual(acl.warnings, ['f:6: `topic read` grants read and write on the topic named "read"; did you leave out the topic?'])
    assert.deepEqual(AclFile.parse('pattern read all/#', 'f').warnings, ['f:1: pattern "all/#" has no %c or %u, so it applies to every client alike'])
  })

  const errors: [text: string, message: string][] = [
    ['topic read a\nbogus x', 'acl.conf:2: unknown keyword "bogus": expected topic, pattern or user'],
    ['Topic x', 'acl.conf:1: unknown keyword "Topic": expected topic, pattern or user (keywords are lower-case)'],
    ['topic rw x', 'acl.conf:1: unknown access "rw": expected read, write, readwrite or deny (a topic with spaces needs the access word before it)'],
    ['topic a b', 'acl.conf:1: unknown access "a": expected read, write, readwrite or deny (a topic with spaces needs the access word before it)'],
    ['user', 'acl.conf:1: `user` with no name: expected `user USERNAME`'],
    ['user   ', 'acl.conf:1: `user` with no name: expected `user USERNAME`'],
    ['pattern', 'acl.conf:1: `pattern` with no topic: expected `pattern [read|write|readwrite|deny] TOPIC`'],
    ['topic read a/#/b', `acl.conf:1: invalid topic "a/#/b": '#' is allowed only as the whole last level (as in "a/#"), not in "#"`],
    ['topic read a/b#', `acl.conf:1: invalid topic "a/b#": '#' is allowed only as the whole last level (as in "a/#"), not in "b#"`],
    ['topic read a/b+', `acl.conf:1: invalid topic "a/b+": '+' must be a whole level (as in "a/+/b"), not part of "b+"`],
    ['topic read a/b # note', `acl.conf:1: invalid topic "a/b # note": '#' is allowed only as the whole last level (as in "a/#"), not in "b # note"; comments must be on a line of their own`],
    ['pattern read dev_%c/x', 'acl.conf:1: %c must be a whole topic level (as in "sensors/%c/#"), not part of "dev_%c"'],
    ['pattern read x/%u%c', 'acl.conf:1: %u must be a whole topic level (as in "sensors/%u/#"), not part of "%u%c"'],
    ['pattern write %x/y', 'acl.conf:1: unknown placeholder %x in "%x": a pattern substitutes only %c (client id) and %u (username)'],
    ['pattern write a/100%', `acl.conf:1: '%' at the end of "100%": a pattern substitutes only %c (client id) and %u (username)`],
  ]
  for (const [text, message] of errors) {
    test(`error: ${JSON.stringify(text)}`, () => assert.equal(parseError(text), message))
  }

  test('every bad line is reported, each as FILE:LINE', () => {
    assert.equal(parseError('topic ok\nnope\ntopic read a/#/b\n', '/etc/acl'), `/etc/acl: 2 problems in acl_file\n/etc/acl:2: unknown keyword "nope": expected topic, pattern or user\n/etc/acl:3: invalid topic "a/#/b": '#' is allowed only as the whole last level (as in "a/#"), not in "#"`)
  })

  test('load reads the file, and names the path when it cannot', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'outpost-acl-'))
    t.after(() => rm(dir, { recursive: true, force: true }))
    await writeFile(join(dir, 'acl'), ACLFILE_EXAMPLE)
    assert.equal((await AclFile.load(join(dir, 'acl'))).check('read', 'c', 'roger', 'foo/bar'), true)
    await assert.rejects(AclFile.load(join(dir, 'missing')), (err: unknown) => isOutpostError(err) && err.code === 'OUTPOST_E_ACL' && err.message.startsWith(`cannot read acl_file ${join(dir, 'missing')}: ENOENT`))
    await writeFile(join(dir, 'bad'), 'topic ok\nuser\n')
    await assert.rejects(AclFile.load(join(dir, 'bad')), { message: `${join(dir, 'bad')}:2: \`user\` with no name: expected \`user USERNAME\`` })
  })
})

/* ---------------------------------------------------------------------------------------------
 * Interop: the same file in Debian's Mosquitto 2.0.11. Writes are judged by the v5 PUBACK reason
 * (0x87 Not authorized), reads by what a subscriber to `#` receives before a sentinel.
 */
const INTEROP_ACL = `# anonymous clients
topic read $SYS/#
topic read sync/#
topic readwrite anon/#
topic deny anon/secret
topic write anon/drop
topic read a b/c d

user roger
topic read sync/#
topic foo/bar
topic read sensors/+/temp
topic deny sensors/attic/temp
topic readwrite shared/#

user us+er
topic read sync/#

user admin
topic #
topic readwrite $SYS/#

pattern write $SYS/broker/connection/%c/state
pattern readwrite sensors/%u/#
pattern readwrite clients/%c/#
pattern deny clients/%c/locked
pattern deny shared/%u/secret
pattern read public/#
pattern read sync/%u
`
const USERS: Record<string, string> = { admin: 'pw-admin', roger: 'pw-roger', carol: 'pw-carol', 'us+er': 'pw-us' }
const WHO = [
  { id: 'anon-1', user: undefined }, { id: 'dev+1', user: undefined }, { id: 'p/q', user: undefined },
  { id: 'roger-1', user: 'roger' }, { id: 'carol-1', user: 'carol' }, { id: 'us-1', user: 'us+er' },
] as const
const WRITES: Record<string, readonly string[]> = {
  'anon-1': ['anon/x', 'anon/secret', 'anon/drop', 'other', 'clients/anon-1/x', 'clients/anon-1/locked', 'clients/other/x', 'sensors/x/y', 'public/x', 'a b/c d', '$SYS/broker/connection/anon-1/state', '$SYS/broker/connection/zz/state'],
  'dev+1': ['anon/x', 'public/x', 'other'],
  'p/q': ['anon/x', 'clients/p/q/z', 'clients/p/z'],
  'roger-1': ['foo/bar', 'foo/baz', 'anon/x', 'sensors/roger/x', 'sensors/carol/x', 'sensors/kitchen/temp', 'shared/x', 'shared/roger/secret', 'clients/roger-1/x', 'clients/roger-1/locked'],
  'carol-1': ['sensors/carol/x', 'foo/bar', 'anon/x', 'clients/carol-1/x', 'shared/x', 'shared/carol/secret'],
  'us-1': ['clients/us-1/x', 'anon/x', 'public/x'],
  'admin-1': ['anything/at/all', '$SYS/foo'],
}
/** Published by admin; each reader subscribes to `#` and `$SYS/broker/version` (retained). */
const READS = ['anon/x', 'anon/secret', 'anon/drop', 'foo/bar', 'sensors/kitchen/temp', 'sensors/attic/temp', 'sensors/roger/x', 'sensors/carol/x', 'clients/anon-1/x', 'clients/p/q/z', 'clients/roger-1/locked', 'shared/x', 'shared/roger/secret', 'public/x', 'a b/c d', 'other/topic']

/** Where Outpost refuses and Mosquitto 2.0.11 allows, or the broker (not its ACL) decides. */
const KNOWN_DIFFERENCES: Record<string, string> = {
  'write p/q clients/p/q/z': 'Mosquitto pastes client id "p/q" into clients/%c/#; Outpost fills one level only',
  'read p/q clients/p/q/z': 'same, for delivery',
  'read p/q public/x': 'Outpost gives a client id with / no pattern grant at all (Mosquitto: only for + and #)',
  'write roger-1 shared/roger/secret': 'Mosquitto: a `topic` grant returns before any `pattern deny` is looked at',
  'read roger-1 shared/roger/secret': 'same, for delivery',
  'write admin-1 $SYS/foo': 'Mosquitto refuses every client PUBLISH to $SYS except $SYS/broker/connection/+/state, whatever the ACL',
}

/**
 * QoS 1 PUBLISH: true on PUBACK success, false on 0x87 Not authorized. Rejects if the connection
 * closes first: MQTT.js (reconnectPeriod 0) would otherwise leave the publish pending for ever.
 */
function published(client: MqttClient, topic: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const onClose = (): void => reject(new Error(`${client.options.clientId ?? '?'}: connection closed before the PUBACK for ${topic}`))
    client.once('close', onClose)
    client.publish(topic, 'w', { qos: 1 }, (err) => {
      client.off('close', onClose)
      if (err === undefined || err === null) resolve(true)
      else if ('code' in err && err.code === 0x87) resolve(false)
      else reject(err)
    })
  })
}

describe('interop: Debian Mosquitto 2.0.11 takes the same decisions', () => {
  test('publish and delivery, case by case; SUBSCRIBE is never refused by Mosquitto', { timeout: 20_000 }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'outpost-acl-interop-'))
    t.after(() => rm(dir, { recursive: true, force: true }))
    const aclPath = join(dir, 'acl'), pwPath = join(dir, 'passwd')
    await writeFile(aclPath, INTEROP_ACL)
    Object.entries(USERS).forEach(([u, p], i) => execFileSync(MOSQUITTO_PASSWD_BIN, [...(i === 0 ? ['-c'] : []), '-b', pwPath, u, p]))
    const ours = AclFile.parse(INTEROP_ACL, aclPath)
    // The helper's `max_queued_messages 0` ("no maximum") makes Mosquitto 2.0.11 drop the
    // connection after every refused QoS 1 PUBLISH ("Bad socket read/write", the PUBACK 0x87
    // never arrives), so this broker gets Mosquitto's default back.
    const extraConfig = [`password_file ${pwPath}`, `acl_file ${aclPath}`, 'max_queued_messages 1000']
    const broker = await startCloudBroker(t, { logTypes: ['error', 'warning', 'notice', 'information'], extraConfig })
    const connect = (id: string, user: string | undefined) => cloudClient(t, broker, { ...(user === undefined ? {} : { username: user, password: USERS[user] }), mqtt: { clientId: id, protocolVersion: 5 } })
    const observed: string[] = []
    const mismatches: string[] = []
    const record = (access: AclAccess, id: string, user: string | undefined, topic: string, mosquitto: boolean): void => {
      const key = `${access} ${id} ${topic}`
      const outpost = ours.check(access, id, user, topic)
      observed.push(key)
      if (mosquitto !== (key in KNOWN_DIFFERENCES ? !outpost : outpost)) mismatches.push(`${key} (user ${user ?? 'anonymous'}): Mosquitto ${mosquitto ? 'allows' : 'refuses'}, Outpost ${outpost ? 'allows' : 'refuses'}`)
    }

    const admin = await connect('admin-1', 'admin')
    const readers = await Promise.all(WHO.map(async (w) => {
      const c = await connect(w.id, w.user)
      const granted = await c.client.subscribeAsync(['#', '$SYS/broker/version', 'nothing/granted/here'], { qos: 1 })
      assert.deepEqual(granted.map((g) => g.qos), [1, 1, 1], `${w.id}: Mosquitto 2.0.11 grants every SUBSCRIBE and filters at delivery`)
      return { ...w, ...c }
    }))
    assert.equal(ours.check('subscribe', 'anon-1', undefined, 'nothing/granted/here'), false, 'Outpost refuses a filter no read grant covers')

    for (const w of [...WHO, { id: 'admin-1', user: 'admin' }]) {
      const c = w.id === 'admin-1' ? admin : readers.find((r) => r.id === w.id)
      assert.ok(c)
      for (const topic of WRITES[w.id] ?? []) {
        record('write', w.id, w.user, topic, await published(c.client, topic))
      }
    }

    for (const topic of READS) await admin.client.publishAsync(topic, 'r', { qos: 1 })
    await admin.client.publishAsync('sync/all', 'end', { qos: 1 })
    await admin.client.publishAsync('sync/carol', 'end', { qos: 1 })
    for (const r of readers) {
      await r.inbox.waitFor((m) => m.topic.startsWith('sync/'), `${r.id}: the sentinel`)
      const got = new Set(r.inbox.messages.filter((m) => m.payload !== 'w').map((m) => m.topic))
      for (const topic of [...READS, '$SYS/broker/version']) record('read', r.id, r.user, topic, got.has(topic))
    }
    assert.deepEqual(mismatches, [])
    assert.deepEqual(Object.keys(KNOWN_DIFFERENCES).filter((k) => !observed.includes(k)), [], 'every known difference exercised')
  })

  // [file text, Mosquitto starts?, Outpost parses?]
  const FILES: [string, boolean, boolean][] = [
    [ACLFILE_EXAMPLE, true, true],
    ['topic read a b/c d\ntopic read', true, true],
    ['bogus x', false, false],
    ['topic rw x', false, false],
    ['user', false, false],
    ['topic', false, false],
    ['topic read a/#/b', false, false],
    ['topic read a/b # note', false, false],
    // Outpost stricter: Mosquitto 2.0 pastes %c into "dev_%c"; later versions take it literally.
    ['pattern read dev_%c/x', true, false],
    ['pattern write %x/y', true, false],
    // Outpost more lenient: Mosquitto splits on spaces only and takes '#' as a comment in column 1 only.
    ['  # indented comment', false, true],
    ['topic\tread\tx', false, true],
  ]
  test('which files each accepts: the same, except placeholders (Outpost stricter) and tabs / indented comments (Outpost lenient)', { timeout: 20_000 }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'outpost-acl-files-'))
    t.after(() => rm(dir, { recursive: true, force: true }))
    const results = await Promise.all(FILES.map(async ([text], i) => {
      const file = join(dir, `acl${i}`)
      await writeFile(file, text)
      const starts = await startCloudBroker(t, { logTypes: ['error', 'warning', 'notice', 'information'], extraConfig: [`acl_file ${file}`] }).then(async (b) => (await b.kill(), true), (err: Error) => {
        assert.match(err.message, /acl_file|acl file/, 'refused for its acl_file, not for something else')
        return false
      })
      let parses = true
      try {
        AclFile.parse(text, file)
      } catch {
        parses = false
      }
      return [text, starts, parses]
    }))
    assert.deepEqual(results, FILES)
  })
})
