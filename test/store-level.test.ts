import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { cp, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { pathToFileURL } from 'node:url'
import { Level } from 'level'
import type { Message } from '../src/broker/types.js'
import { CodecError } from '../src/store/codec-io.js'
import { decodeMessage, decodeQueueEntry, decodeSession, encodeMessage, encodeQueueEntry, encodeSession } from '../src/store/codec.js'
import { LevelStore, moveStoreAside, repairStore } from '../src/store/level.js'
import type { Store, StoreOp } from '../src/store/types.js'
import { FULL_MESSAGE, storeConformance } from './store-conformance.js'
import * as v1 from './fixtures/store-v1-records.js'

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-store-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Opens a store that the test closes (in t.after, after anything registered earlier). */
async function openIn(t: TestContext, dir: string, durability: 'sync' | 'os' = 'sync'): Promise<LevelStore> {
  const store = await LevelStore.open(dir, { durability })
  t.after(() => store.close())
  return store
}

/** The raw database, for planting what Outpost would not write. */
async function raw(dir: string, f: (db: Level<string, Buffer>) => Promise<void>): Promise<void> {
  const db = new Level<string, Buffer>(join(dir, 'store'), { keyEncoding: 'utf8', valueEncoding: 'buffer' })
  await db.open()
  try {
    await f(db)
  } finally {
    await db.close()
  }
}

async function rejectsWith(p: Promise<unknown>, code: string, ...mentions: string[]): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof Error)
    assert.equal((err as Error & { code?: unknown }).code, code, err.message)
    for (const m of mentions) assert.ok(err.message.includes(m), `"${err.message}" mentions ${m}`)
    return true
  })
}

const msg = (topic: string, payload: string): Message => ({ topic, payload: Buffer.from(payload), qos: 1, retain: false })
const put = (clientId: string, seq: number, payload = `m${seq}`): StoreOp => ({ op: 'put-entry', clientId, entry: { seq, message: msg('q', payload), qos: 1, retain: false } })

/** Everything the v1 records say, read back from `store`. */
async function assertV1(store: Store): Promise<void> {
  const byId = <T extends { clientId: string }>(xs: T[]): T[] => [...xs].sort((a, b) => (a.clientId < b.clientId ? -1 : 1))
  assert.deepEqual(byId(await store.listSessions()), byId(v1.SESSIONS))
  for (const s of v1.SESSIONS) assert.deepEqual(await store.getSession(s.clientId), s)
  assert.equal(await store.getSession('gone'), undefined)
  assert.equal(await store.retainedCount(), v1.RETAINED.length)
  for (const m of v1.RETAINED) assert.deepEqual(await store.matchRetained(m.topic), [m])
  assert.deepEqual(await store.readQueue(v1.QUEUE_CLIENT, 0, 100), v1.QUEUE)
  assert.deepEqual(await store.queueInfo(v1.QUEUE_CLIENT), v1.QUEUE_INFO)
  assert.deepEqual(await store.readQueue('gone', 0, 100), [])
  assert.deepEqual(await store.listIncoming(), v1.INCOMING)
  assert.deepEqual(byId(await store.listWills()), byId(v1.WILLS))
}

storeConformance('level store', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-store-'))
  const store = await LevelStore.open(dir, { durability: 'sync' })
  t.after(async () => {
    await store.close()
    await rm(dir, { recursive: true, force: true })
  })
  return store
})

test('level store: every kind of record survives close and reopen, and the format version is written', async (t) => {
  const dir = await tempDir(t)
  const first = await LevelStore.open(dir, { durability: 'sync' })
  for (const ops of v1.WRITES) await first.write(ops)
  await first.close()
  await first.close()
  await assert.rejects(first.write([]), /closed/)
  await assertV1(await openIn(t, dir))
  const data = join(dir, 'other')
  await (await LevelStore.open(data, { durability: 'os' })).close()
  await raw(data, async (db) => assert.equal((await db.get('meta!format'))?.toString(), '1'))
})

test('level store: reads the golden v1 store (test/fixtures/store-v1, made by make-store-v1.ts)', async (t) => {
  const dir = await tempDir(t)
  await cp(join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'store-v1'), dir, { recursive: true })
  const store = await openIn(t, dir)
  await assertV1(store)
  await store.write([put(v1.QUEUE_CLIENT, 301)])
  assert.deepEqual(await store.queueInfo(v1.QUEUE_CLIENT), { count: 4, bytes: v1.QUEUE_INFO.bytes + 4, lastSeq: 301 })
})

test('level store: a store of another format is refused with OUTPOST_E_STORE_FORMAT', async (t) => {
  const dir = await tempDir(t)
  await (await LevelStore.open(dir, { durability: 'sync' })).close()
  await raw(dir, (db) => db.put('meta!format', Buffer.from('2')))
  await rejectsWith(LevelStore.open(dir, { durability: 'sync' }), 'OUTPOST_E_STORE_FORMAT', join(dir, 'store'), 'format 2', 'format 1', 'newer')
  await raw(dir, (db) => db.put('meta!format', Buffer.from('v1\u0000')))
  await rejectsWith(LevelStore.open(dir, { durability: 'sync' }), 'OUTPOST_E_STORE_FORMAT', join(dir, 'store'), 'unreadable')
  await raw(dir, async (db) => {
    await db.del('meta!format')
    await db.put('s!x', Buffer.from('not ours'))
  })
  await rejectsWith(LevelStore.open(dir, { durability: 'sync' }), 'OUTPOST_E_STORE_FORMAT', 'no format version')
})

test('level store: a store open in this process is refused with OUTPOST_E_STORE_LOCKED', async (t) => {
  const dir = await tempDir(t)
  const store = await openIn(t, dir)
  await rejectsWith(LevelStore.open(dir, { durability: 'sync' }), 'OUTPOST_E_STORE_LOCKED', join(dir, 'store'), dir)
  await store.write([put('c', 1)])
  assert.equal((await store.queueInfo('c')).count, 1, 'the first one still works')
})

test('level store: a store open in another process is refused with OUTPOST_E_STORE_LOCKED, and repair too', async (t) => {
  const dir = await tempDir(t)
  const module = pathToFileURL(join(import.meta.dirname, '..', 'src', 'store', 'level.js')).href
  const script = `
    import { LevelStore } from ${JSON.stringify(module)}
    const store = await LevelStore.open(process.env.STORE_DIR, { durability: 'sync' })
    process.stdout.write('ready\\n')
    process.stdin.resume()
    process.stdin.on('end', () => store.close())`
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, STORE_DIR: dir }, stdio: ['pipe', 'pipe', 'inherit'] })
  const exited = once(child, 'exit')
  t.after(async () => {
    child.stdin.end()
    const timer = setTimeout(() => child.kill(), 5000)
    await exited
    clearTimeout(timer)
  })
  const [line] = (await once(child.stdout, 'data')) as [Buffer]
  assert.equal(line.toString().trim(), 'ready')
  await rejectsWith(LevelStore.open(dir, { durability: 'sync' }), 'OUTPOST_E_STORE_LOCKED', join(dir, 'store'), 'another process')
  await rejectsWith(repairStore(dir), 'OUTPOST_E_STORE_LOCKED', join(dir, 'store'))
  child.stdin.end()
  assert.deepEqual(await exited, [0, null])
  await (await LevelStore.open(dir, { durability: 'sync' })).close()
})

/** A store with one record of each kind, closed. */
async function populated(t: TestContext): Promise<string> {
  const dir = await tempDir(t)
  const store = await LevelStore.open(dir, { durability: 'sync' })
  for (const ops of v1.WRITES) await store.write(ops)
  await store.close()
  return dir
}

async function manifestOf(dir: string): Promise<string> {
  const name = (await readdir(join(dir, 'store'))).find((f) => f.startsWith('MANIFEST-'))
  assert.ok(name !== undefined)
  return join(dir, 'store', name)
}

const WAY_OUT = (dir: string): string[] => [`outpost store repair --data-dir ${dir}`, '--move-aside-store']

test('level store: a garbled MANIFEST is OUTPOST_E_STORE_CORRUPT, and repairStore brings the data back', async (t) => {
  const dir = await populated(t)
  const manifest = await manifestOf(dir)
  const bytes = await readFile(manifest)
  await writeFile(manifest, Buffer.alloc(bytes.length, 0x5a))
  await rejectsWith(LevelStore.open(dir, { durability: 'sync' }), 'OUTPOST_E_STORE_CORRUPT', join(dir, 'store'), ...WAY_OUT(dir))
  const report = await repairStore(dir)
  assert.equal(report.dropped, 0)
  assert.equal(report.entries, v1.QUEUE.length)
  await assertV1(await openIn(t, dir))
})

test('level store: an empty, wrong or missing CURRENT file is OUTPOST_E_STORE_CORRUPT, and repair fixes each', async (t) => {
  const dir = await populated(t)
  const current = join(dir, 'store', 'CURRENT')
  for (const damage of [() => writeFile(current, ''), () => writeFile(current, 'MANIFEST-999999\n'), () => rm(current)]) {
    await damage()
    await rejectsWith(LevelStore.open(dir, { durability: 'sync' }), 'OUTPOST_E_STORE_CORRUPT', join(dir, 'store'), ...WAY_OUT(dir))
    await repairStore(dir)
    const store = await LevelStore.open(dir, { durability: 'sync' })
    await assertV1(store)
    await store.close()
  }
})

test('level store: a record that does not decode is OUTPOST_E_STORE_CORRUPT; repair drops it and recounts queues', async (t) => {
  const dir = await populated(t)
  await raw(dir, async (db) => {
    await db.put('s!plain', Buffer.from([1, 0x53, 0xff]))
    await db.put(`m!${v1.QUEUE_CLIENT}`, Buffer.from([1, 0x54, 99, 99, 99]))
    await db.put('q!1:x!0000000000000001', Buffer.from('garbage'))
  })
  await rejectsWith(LevelStore.open(dir, { durability: 'sync' }), 'OUTPOST_E_STORE_CORRUPT', '"s!plain"', ...WAY_OUT(dir))
  const report = await repairStore(dir)
  assert.deepEqual({ dropped: report.dropped, entries: report.entries, queues: report.queues }, { dropped: 2, entries: 3, queues: 1 })
  const store = await openIn(t, dir)
  assert.equal(await store.getSession('plain'), undefined)
  assert.deepEqual(await store.queueInfo(v1.QUEUE_CLIENT), v1.QUEUE_INFO)
  assert.deepEqual(await store.readQueue('x', 0, 10), [])
})

test('level store: a queue entry that does not decode fails its read with OUTPOST_E_STORE_CORRUPT', async (t) => {
  const dir = await populated(t)
  await raw(dir, (db) => db.put(`q!${v1.QUEUE_CLIENT.length}:${v1.QUEUE_CLIENT}!0000000000000003`, Buffer.from([1, 0x51, 0xff])))
  const store = await openIn(t, dir)
  await rejectsWith(store.readQueue(v1.QUEUE_CLIENT, 0, 10), 'OUTPOST_E_STORE_CORRUPT', '0000000000000003', 'queue entry')
})

test('level store: moveStoreAside renames the store aside and the next open starts empty', async (t) => {
  const dir = await populated(t)
  const aside = moveStoreAside(dir)
  assert.match(aside, /[/\\]store\.broken-\d{4}-\d\d-\d\dT[\d-]+Z$/)
  assert.ok((await stat(join(aside, 'CURRENT'))).isFile())
  const store = await openIn(t, dir)
  assert.deepEqual(await store.listSessions(), [])
  assert.notEqual(moveStoreAside(dir), aside, 'a second move in the same millisecond gets its own name')
  assert.throws(() => moveStoreAside(join(dir, 'nothing')), { code: 'OUTPOST_E_DATA_DIR' })
})

test('level store: a deleted session whose ranges were not cleared before a crash is cleared at open', async (t) => {
  const dir = await tempDir(t)
  const store = await LevelStore.open(dir, { durability: 'sync' })
  await store.write([put('c', 1), put('c', 2), put('d', 1), { op: 'put-incoming', record: { clientId: 'c', packetId: 1, message: msg('i', 'x') } }])
  await store.close()
  // What a crash between the del-session batch and the clear leaves behind.
  await raw(dir, (db) => db.batch([{ type: 'del', key: 'm!c' }, { type: 'put', key: 'x!c', value: Buffer.alloc(0) }]))
  const reopened = await openIn(t, dir)
  assert.deepEqual(await reopened.readQueue('c', 0, 10), [])
  assert.deepEqual(await reopened.listIncoming(), [])
  assert.equal((await reopened.readQueue('d', 0, 10)).length, 1)
  await reopened.close()
  await raw(dir, async (db) => assert.deepEqual(await db.keys({ gte: 'x!', lt: 'x"' }).all(), []))
})

test('level store: group commit writes 1,000 concurrent single-op writes in far fewer batches', async (t) => {
  const store = await openIn(t, await tempDir(t))
  const before = store.batchesWritten
  await Promise.all(Array.from({ length: 1000 }, (_, i) => store.write([put(`c${i % 10}`, i + 1)])))
  const used = store.batchesWritten - before
  assert.ok(used >= 1 && used <= 10, `${used} batches`)
  let count = 0
  for (let c = 0; c < 10; c++) count += (await store.queueInfo(`c${c}`)).count
  assert.equal(count, 1000)
  // Calls made while a batch is being written share the next one.
  const mark = store.batchesWritten
  const first = store.write([put('late', 1)])
  await new Promise((resolve) => setImmediate(resolve))
  await Promise.all([first, ...Array.from({ length: 100 }, (_, i) => store.write([put('late', i + 2)]))])
  assert.ok(store.batchesWritten - mark <= 3, `${store.batchesWritten - mark} batches`)
  assert.equal((await store.queueInfo('late')).count, 101)
})

test('level store: an op that cannot be stored fails its own write() and no other', async (t) => {
  const store = await openIn(t, await tempDir(t))
  const good = store.write([put('c', 1)])
  await assert.rejects(store.write([put('c', 2), put('c', -1)]), RangeError)
  await assert.rejects(store.write([{ op: 'put-incoming', record: { clientId: 'c', packetId: 70_000, message: msg('t', 'x') } }]), RangeError)
  await assert.rejects(store.write([{ op: 'set-retained', message: { ...msg('t', 'x'), expiresAt: 1.5 } }]), RangeError)
  await good
  assert.deepEqual((await store.readQueue('c', 0, 10)).map((e) => e.seq), [1])
})

test('level store: a 100,000-entry queue pages in order, and del-session clears it for good', async (t) => {
  const dir = await tempDir(t)
  const store = await LevelStore.open(dir, { durability: 'os' })
  const n = 100_000
  const writes: Array<Promise<void>> = []
  for (let start = 1; start <= n; start += 1000) writes.push(store.write(Array.from({ length: 1000 }, (_, i) => put('big', start + i, 'x'))))
  await Promise.all(writes)
  assert.deepEqual(await store.queueInfo('big'), { count: n, bytes: n, lastSeq: n })
  let expected = 1
  for (let after = 0; ; ) {
    const page = await store.readQueue('big', after, 999)
    if (page.length === 0) break
    for (const e of page) assert.equal(e.seq, expected++)
    after = page[page.length - 1]?.seq ?? Infinity
  }
  assert.equal(expected, n + 1)
  await store.write([{ op: 'del-session', clientId: 'big' }, put('big', 1, 'fresh')])
  await store.close()
  const reopened = await openIn(t, dir)
  assert.deepEqual((await reopened.readQueue('big', 0, 10)).map((e) => e.message.payload.toString()), ['fresh'])
  assert.deepEqual(await reopened.queueInfo('big'), { count: 1, bytes: 5, lastSeq: 1 })
})

test('codec: the layout of a message is pinned (format 1)', () => {
  const m: Message = { topic: 'a/b', payload: Buffer.from('hi'), qos: 1, retain: true, expiresAt: 300 }
  // version, kind 'M', flags (qos 1 | retain | expiresAt), topic, payload, expiresAt as a varint.
  assert.equal(encodeMessage(m).toString('hex'), '014d' + '25' + '03612f62' + '026869' + 'ac02')
  assert.deepEqual(decodeMessage(encodeMessage(m)), m)
})

test('codec: bad bytes throw CodecError, never a wrong record', () => {
  const entry = encodeQueueEntry({ seq: 5, message: FULL_MESSAGE, qos: 2, retain: true, subscriptionIds: [1, 2], share: 'g', packetId: 9, state: 'pubrel' })
  for (let n = 0; n < entry.length; n++) assert.throws(() => decodeQueueEntry(entry.subarray(0, n)), CodecError, `cut to ${n} bytes`)
  assert.throws(() => decodeQueueEntry(Buffer.concat([entry, Buffer.from([0])])), /left over/)
  assert.throws(() => decodeQueueEntry(Buffer.from([2, ...entry.subarray(1)])), /format version 2/)
  assert.throws(() => decodeSession(entry), /kind/)
  const session = encodeSession({ clientId: 'c', subscriptions: [{ filter: 'f', qos: 1 }] })
  assert.throws(() => decodeSession(Buffer.from([...session.subarray(0, 2), 0x80, ...session.subarray(3)])), /flags/)
  // A topic of one byte that is not UTF-8.
  assert.throws(() => decodeMessage(Buffer.from([1, 0x4d, 0, 1, 0xff, 0])), /UTF-8/)
  // QoS 3, and a user-property count far beyond the value's size.
  assert.throws(() => decodeMessage(Buffer.from([1, 0x4d, 3, 0, 0])), /QoS 3/)
  assert.throws(() => decodeMessage(Buffer.from([1, 0x4d, 0x10, 0, 0, 0x10, 0xff, 0xff, 0xff, 0x7f])), /count/)
  assert.throws(() => decodeMessage(Buffer.from([1, 0x4d, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])), /varint/)
})

test('level store: $SYS retained figures are served from memory and never written; stale ones on disk are removed at open', async (t) => {
  const dir = await tempDir(t)
  const sys: Message = { topic: '$SYS/broker/uptime', payload: Buffer.from('42 seconds'), qos: 0, retain: true }
  const user: Message = { topic: 'site/config', payload: Buffer.from('30'), qos: 1, retain: true }
  const store = await LevelStore.open(dir, { durability: 'sync' })
  await store.write([{ op: 'set-retained', message: sys }])
  await store.write([{ op: 'set-retained', message: user }])
  assert.deepEqual((await store.matchRetained('$SYS/#')).map((m) => m.payload.toString()), ['42 seconds'])
  await store.close()
  const keys: string[] = []
  await raw(dir, async (db) => {
    for (const key of await db.keys().all()) keys.push(key)
  })
  assert.ok(keys.some((k) => k.includes('site/config')), `the user's retained message is on disk: ${keys.join(', ')}`)
  assert.ok(!keys.some((k) => k.includes('$SYS')), `no $SYS key on disk: ${keys.join(', ')}`)
  // As an older version left it: a $SYS record on disk, copied from the user record's key.
  const userKey = keys.find((k) => k.includes('site/config')) as string
  await raw(dir, async (db) => {
    await db.put(userKey.replace('site/config', '$SYS/broker/uptime'), encodeMessage(sys))
  })
  const reopened = await openIn(t, dir)
  assert.deepEqual(await reopened.matchRetained('$SYS/#'), [])
  assert.deepEqual((await reopened.matchRetained('#')).map((m) => m.topic), ['site/config'])
  await reopened.close()
  await raw(dir, async (db) => {
    assert.ok(!(await db.keys().all()).some((k) => k.includes('$SYS')))
  })
})
