import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { Message, QoS } from '../src/broker/types.js'
import type { QueueEntry, SessionRecord, Store, StoreOp } from '../src/store/types.js'

/**
 * Makes a fresh, empty store for one test and arranges (with `t.after`) for it to be closed and
 * its files removed.
 */
export type OpenStore = (t: TestContext) => Promise<Store>

const msg = (topic: string, payload: string | Buffer, qos: QoS = 0, retain = true): Message => ({
  topic,
  payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
  qos,
  retain,
})

/** Every optional field set, with bytes a text codec would mangle. */
export const FULL_MESSAGE: Message = {
  topic: 'plant/ä/温度/🌡/a!b:c',
  payload: Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
  qos: 2,
  retain: true,
  origin: 'sensor!1:ü',
  properties: {
    payloadFormatIndicator: 1,
    contentType: 'application/x.ä',
    responseTopic: 'reply/ß',
    correlationData: Buffer.from([0, 255, 1, 254]),
    userProperties: [
      ['k', 'v1'],
      ['k', 'v2'],
      ['', ''],
      ['ü!', '🙂'],
    ],
  },
  expiresAt: 1_750_000_000_123,
}

const entry = (seq: number, payload: string, extra: Partial<QueueEntry> = {}): QueueEntry => ({
  seq,
  message: msg('q/t', payload, 1, false),
  qos: 1,
  retain: false,
  ...extra,
})

const sorted = <T>(xs: T[], key: (x: T) => string): T[] => [...xs].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))

/**
 * The one behavioural contract every Store backend meets: test/store-memory.test.ts and
 * test/store-level.test.ts run it. A behaviour a backend needs that is not here is not part of
 * the contract.
 */
export function storeConformance(name: string, open: OpenStore): void {
  test(`${name}: retained set, replace, match by filter, delete by empty payload [MQTT-3.3.1-10]`, async (t) => {
    const store = await open(t)
    await store.write([{ op: 'set-retained', message: msg('a/b', '1') }])
    await store.write([{ op: 'set-retained', message: msg('a/c', '2', 1) }])
    await store.write([{ op: 'set-retained', message: msg('a/b', '3') }])
    await store.write([{ op: 'set-retained', message: msg('$SYS/x', 's') }])
    assert.equal(await store.retainedCount(), 3)
    const all = (await store.matchRetained('a/#')).map((m) => `${m.topic}=${m.payload.toString()}@${m.qos}`).sort()
    assert.deepEqual(all, ['a/b=3@0', 'a/c=2@1'])
    assert.deepEqual((await store.matchRetained('a/c')).map((m) => m.topic), ['a/c'])
    assert.deepEqual((await store.matchRetained('+/b')).map((m) => m.topic), ['a/b'])
    // [MQTT-4.7.2-1]: wildcards at the first level do not match $ topics.
    assert.deepEqual((await store.matchRetained('#')).map((m) => m.topic).sort(), ['a/b', 'a/c'])
    assert.deepEqual((await store.matchRetained('$SYS/#')).map((m) => m.topic), ['$SYS/x'])
    assert.deepEqual(await store.matchRetained('nothing/here'), [])
    await store.write([{ op: 'set-retained', message: msg('a/b', '') }])
    await store.write([{ op: 'set-retained', message: msg('never/set', '') }])
    assert.equal(await store.retainedCount(), 2)
    assert.deepEqual(await store.matchRetained('a/b'), [])
  })

  test(`${name}: sessions put, get, list, replace, with every subscription option`, async (t) => {
    const store = await open(t)
    assert.equal(await store.getSession('nope'), undefined)
    const c1: SessionRecord = {
      clientId: 'c1',
      subscriptions: [
        { filter: 'x/#', qos: 1 },
        { filter: '$share/g/y/+', qos: 2, noLocal: false, retainAsPublished: true, retainHandling: 2, subscriptionId: 268_435_455 },
        { filter: 'z', qos: 0, noLocal: true, retainAsPublished: false, retainHandling: 0, subscriptionId: 1 },
        { filter: 'w', qos: 1, retainHandling: 1 },
      ],
      expiresAt: 1_750_000_000_000,
      expiryInterval: 0xffffffff,
    }
    await store.write([{ op: 'put-session', record: c1 }])
    await store.write([{ op: 'put-session', record: { clientId: 'c2', subscriptions: [], expiresAt: 1234 } }])
    assert.deepEqual(await store.getSession('c1'), c1)
    await store.write([{ op: 'put-session', record: { clientId: 'c1', subscriptions: [{ filter: 'y', qos: 2 }], expiryInterval: 0 } }])
    assert.deepEqual(await store.getSession('c1'), { clientId: 'c1', subscriptions: [{ filter: 'y', qos: 2 }], expiryInterval: 0 })
    assert.deepEqual((await store.listSessions()).map((s) => s.clientId).sort(), ['c1', 'c2'])
    assert.deepEqual(await store.getSession('c2'), { clientId: 'c2', subscriptions: [], expiresAt: 1234 })
  })

  test(`${name}: del-session removes the session, its queue, incoming records and will, and nobody else's`, async (t) => {
    const store = await open(t)
    for (const id of ['gone', 'kept']) {
      await store.write([
        { op: 'put-session', record: { clientId: id, subscriptions: [{ filter: 'a', qos: 1 }] } },
        { op: 'put-entry', clientId: id, entry: entry(1, 'one') },
        { op: 'put-entry', clientId: id, entry: entry(2, 'two') },
        { op: 'put-incoming', record: { clientId: id, packetId: 7, message: msg('in', 'x', 2, false) } },
        { op: 'put-will', record: { clientId: id, message: msg('will', 'w', 1, false), delay: 5, publishAt: 0 } },
      ])
    }
    await store.write([{ op: 'del-session', clientId: 'gone' }])
    assert.equal(await store.getSession('gone'), undefined)
    assert.deepEqual(await store.readQueue('gone', 0, 100), [])
    assert.deepEqual(await store.queueInfo('gone'), { count: 0, bytes: 0, lastSeq: 0 })
    assert.deepEqual((await store.listIncoming()).map((r) => r.clientId), ['kept'])
    assert.deepEqual((await store.listWills()).map((r) => r.clientId), ['kept'])
    assert.deepEqual((await store.listSessions()).map((s) => s.clientId), ['kept'])
    assert.deepEqual((await store.readQueue('kept', 0, 100)).map((e) => e.seq), [1, 2])
    assert.deepEqual(await store.queueInfo('kept'), { count: 2, bytes: 6, lastSeq: 2 })
    await store.write([{ op: 'del-session', clientId: 'never-existed' }])
  })

  test(`${name}: a del-session followed by a new session in the same write keeps only the new one`, async (t) => {
    const store = await open(t)
    await store.write([
      { op: 'put-session', record: { clientId: 'c', subscriptions: [] } },
      { op: 'put-entry', clientId: 'c', entry: entry(1, 'old') },
      { op: 'put-entry', clientId: 'c', entry: entry(2, 'old') },
      { op: 'put-incoming', record: { clientId: 'c', packetId: 1, message: msg('in', 'old', 2, false) } },
    ])
    await store.write([
      { op: 'del-session', clientId: 'c' },
      { op: 'put-session', record: { clientId: 'c', subscriptions: [{ filter: 'n', qos: 1 }] } },
      { op: 'put-entry', clientId: 'c', entry: entry(1, 'new') },
      { op: 'put-incoming', record: { clientId: 'c', packetId: 2, message: msg('in', 'new', 2, false) } },
    ])
    assert.deepEqual((await store.getSession('c'))?.subscriptions, [{ filter: 'n', qos: 1 }])
    assert.deepEqual((await store.readQueue('c', 0, 10)).map((e) => e.message.payload.toString()), ['new'])
    assert.deepEqual(await store.queueInfo('c'), { count: 1, bytes: 3, lastSeq: 1 })
    assert.deepEqual((await store.listIncoming()).map((r) => r.packetId), [2])
    // The same as separate calls made together.
    const writes = [
      store.write([{ op: 'del-session', clientId: 'c' }]),
      store.write([{ op: 'put-entry', clientId: 'c', entry: entry(5, 'newer') }]),
    ]
    await Promise.all(writes)
    assert.deepEqual((await store.readQueue('c', 0, 10)).map((e) => e.seq), [5])
    assert.equal(await store.getSession('c'), undefined)
  })

  test(`${name}: queue entries read in seq order, paged by afterSeq and limit`, async (t) => {
    const store = await open(t)
    // Seqs above 0xff and 0xffff check that key order is numeric order.
    const seqs = [1, 2, 9, 10, 15, 16, 255, 256, 65_535, 65_536, 2 ** 40, Number.MAX_SAFE_INTEGER - 1]
    await store.write(seqs.map((seq) => ({ op: 'put-entry', clientId: 'c', entry: entry(seq, `p${seq}`) })))
    assert.deepEqual((await store.readQueue('c', 0, 100)).map((e) => e.seq), seqs)
    assert.deepEqual((await store.readQueue('c', 0, 3)).map((e) => e.seq), [1, 2, 9])
    assert.deepEqual((await store.readQueue('c', 9, 3)).map((e) => e.seq), [10, 15, 16])
    assert.deepEqual((await store.readQueue('c', 8, 1)).map((e) => e.seq), [9])
    assert.deepEqual((await store.readQueue('c', 2 ** 40, 10)).map((e) => e.seq), [Number.MAX_SAFE_INTEGER - 1])
    assert.deepEqual(await store.readQueue('c', Number.MAX_SAFE_INTEGER - 1, 10), [])
    assert.deepEqual(await store.readQueue('c', 0, 0), [])
    assert.deepEqual(await store.readQueue('nobody', 0, 10), [])
    const pages: number[] = []
    for (let after = 0; ; ) {
      const page = await store.readQueue('c', after, 5)
      if (page.length === 0) break
      pages.push(...page.map((e) => e.seq))
      after = (page[page.length - 1] as QueueEntry).seq
    }
    assert.deepEqual(pages, seqs)
    assert.deepEqual(await store.queueInfo('c'), {
      count: seqs.length,
      bytes: seqs.reduce((n, s) => n + `p${s}`.length, 0),
      lastSeq: Number.MAX_SAFE_INTEGER - 1,
    })
  })

  test(`${name}: an entry updated with its packet id and state, then deleted`, async (t) => {
    const store = await open(t)
    await store.write([1, 2, 3].map((seq) => ({ op: 'put-entry', clientId: 'c', entry: entry(seq, 'abcd') })))
    const sent = entry(1, 'abcd', { packetId: 10, state: 'publish' })
    await store.write([{ op: 'put-entry', clientId: 'c', entry: sent }])
    const released = entry(2, 'abcd', { packetId: 11, state: 'pubrel', subscriptionIds: [3, 268_435_455], share: 'g' })
    await store.write([{ op: 'put-entry', clientId: 'c', entry: released }])
    assert.deepEqual(await store.readQueue('c', 0, 10), [sent, released, entry(3, 'abcd')])
    assert.deepEqual(await store.queueInfo('c'), { count: 3, bytes: 12, lastSeq: 3 }, 'an update is not a new entry')
    await store.write([{ op: 'del-entry', clientId: 'c', seq: 1, bytes: 4 }])
    assert.deepEqual(await store.queueInfo('c'), { count: 2, bytes: 8, lastSeq: 3 })
    await store.write([{ op: 'del-entry', clientId: 'c', seq: 1, bytes: 4 }])
    await store.write([{ op: 'del-entry', clientId: 'c', seq: 99, bytes: 4 }])
    assert.deepEqual(await store.queueInfo('c'), { count: 2, bytes: 8, lastSeq: 3 }, 'deleting what is not there changes nothing')
    await store.write([{ op: 'del-entry', clientId: 'c', seq: 3, bytes: 4 }])
    assert.deepEqual(await store.queueInfo('c'), { count: 1, bytes: 4, lastSeq: 2 }, 'lastSeq is the highest seq still queued')
    await store.write([{ op: 'del-entry', clientId: 'c', seq: 2, bytes: 4 }])
    assert.deepEqual(await store.queueInfo('c'), { count: 0, bytes: 0, lastSeq: 0 })
    assert.deepEqual(await store.readQueue('c', 0, 10), [])
  })

  test(`${name}: queue totals follow puts and deletes within one write`, async (t) => {
    const store = await open(t)
    await store.write([
      { op: 'put-entry', clientId: 'c', entry: entry(1, 'a') },
      { op: 'put-entry', clientId: 'c', entry: entry(2, 'bb') },
      { op: 'put-entry', clientId: 'c', entry: entry(3, 'ccc') },
      { op: 'del-entry', clientId: 'c', seq: 3, bytes: 3 },
      { op: 'del-entry', clientId: 'c', seq: 2, bytes: 2 },
      { op: 'put-entry', clientId: 'c', entry: entry(4, 'dddd') },
    ])
    assert.deepEqual(await store.queueInfo('c'), { count: 2, bytes: 5, lastSeq: 4 })
    await store.write([
      { op: 'del-entry', clientId: 'c', seq: 4, bytes: 4 },
      { op: 'put-entry', clientId: 'c', entry: entry(5, 'e') },
      { op: 'del-entry', clientId: 'c', seq: 5, bytes: 1 },
    ])
    assert.deepEqual(await store.queueInfo('c'), { count: 1, bytes: 1, lastSeq: 1 })
    assert.deepEqual((await store.readQueue('c', 0, 10)).map((e) => e.seq), [1])
  })

  test(`${name}: client ids that share a prefix or hold separators keep separate queues`, async (t) => {
    const store = await open(t)
    const ids = ['a', 'a!', 'a!b', 'ab', '1:a', '2:a!', 'a"', '', '!', '::!!', 'ü!🙂', 'a\u0001b']
    await store.write(ids.map((id, i) => ({ op: 'put-entry', clientId: id, entry: entry(1, `${i}`) })))
    await store.write(ids.map((id, i) => ({ op: 'put-incoming', record: { clientId: id, packetId: 1, message: msg('t', `${i}`, 2, false) } })))
    for (const [i, id] of ids.entries()) {
      assert.deepEqual((await store.readQueue(id, 0, 10)).map((e) => e.message.payload.toString()), [`${i}`], `queue of ${JSON.stringify(id)}`)
      assert.deepEqual(await store.queueInfo(id), { count: 1, bytes: `${i}`.length, lastSeq: 1 })
    }
    assert.deepEqual(sorted(await store.listIncoming(), (r) => r.clientId).map((r) => r.clientId), [...ids].sort())
    await store.write([{ op: 'del-session', clientId: 'a' }])
    assert.deepEqual(await store.readQueue('a', 0, 10), [])
    for (const id of ids.filter((x) => x !== 'a')) assert.equal((await store.readQueue(id, 0, 10)).length, 1, `queue of ${JSON.stringify(id)} survives`)
    assert.equal((await store.listIncoming()).length, ids.length - 1)
  })

  test(`${name}: incoming QoS 2 records put, replaced, deleted, listed [MQTT-4.3.3-2]`, async (t) => {
    const store = await open(t)
    await store.write([
      { op: 'put-incoming', record: { clientId: 'c', packetId: 1, message: msg('a', '1', 2, false) } },
      { op: 'put-incoming', record: { clientId: 'c', packetId: 65_535, message: FULL_MESSAGE } },
      { op: 'put-incoming', record: { clientId: 'd', packetId: 1, message: msg('b', '2', 2, false) } },
    ])
    await store.write([{ op: 'put-incoming', record: { clientId: 'c', packetId: 1, message: msg('a', 'again', 2, false) } }])
    const key = (r: { clientId: string; packetId: number }): string => `${r.clientId}/${r.packetId}`
    assert.deepEqual(sorted(await store.listIncoming(), key), [
      { clientId: 'c', packetId: 1, message: msg('a', 'again', 2, false) },
      { clientId: 'c', packetId: 65_535, message: FULL_MESSAGE },
      { clientId: 'd', packetId: 1, message: msg('b', '2', 2, false) },
    ])
    await store.write([{ op: 'del-incoming', clientId: 'c', packetId: 1 }, { op: 'del-incoming', clientId: 'c', packetId: 2 }])
    assert.deepEqual(sorted(await store.listIncoming(), key).map(key), ['c/65535', 'd/1'])
  })

  test(`${name}: wills put, replaced, deleted, listed`, async (t) => {
    const store = await open(t)
    await store.write([
      { op: 'put-will', record: { clientId: 'c', message: FULL_MESSAGE, delay: 0, publishAt: 0 } },
      { op: 'put-will', record: { clientId: 'd', message: msg('w/d', 'bye', 1, true), delay: 30, expiryInterval: 60, publishAt: 1_750_000_030_000 } },
    ])
    assert.deepEqual(sorted(await store.listWills(), (w) => w.clientId), [
      { clientId: 'c', message: FULL_MESSAGE, delay: 0, publishAt: 0 },
      { clientId: 'd', message: msg('w/d', 'bye', 1, true), delay: 30, expiryInterval: 60, publishAt: 1_750_000_030_000 },
    ])
    await store.write([{ op: 'put-will', record: { clientId: 'c', message: msg('w/c', 'new'), delay: 1, publishAt: 5 } }])
    await store.write([{ op: 'del-will', clientId: 'd' }, { op: 'del-will', clientId: 'nobody' }])
    assert.deepEqual(await store.listWills(), [{ clientId: 'c', message: msg('w/c', 'new'), delay: 1, publishAt: 5 }])
  })

  test(`${name}: messages keep every field, binary payloads and unicode through every record`, async (t) => {
    const store = await open(t)
    const bare: Message = { topic: '🙂/!/a:b', payload: Buffer.alloc(0), qos: 0, retain: false }
    const emptyProps: Message = { topic: 't', payload: Buffer.from([0]), qos: 1, retain: false, properties: {}, expiresAt: 0 }
    const emptyUser: Message = { topic: 't', payload: Buffer.from('x'), qos: 1, retain: false, properties: { userProperties: [], correlationData: Buffer.alloc(0) } }
    const big: Message = { topic: 'big/'.repeat(100), payload: Buffer.alloc(300_000, 0xa5), qos: 1, retain: true, origin: 'o'.repeat(1000) }
    await store.write([
      { op: 'set-retained', message: FULL_MESSAGE },
      { op: 'set-retained', message: big },
      { op: 'put-entry', clientId: 'ü!c', entry: { seq: 1, message: FULL_MESSAGE, qos: 2, retain: true } },
      { op: 'put-entry', clientId: 'ü!c', entry: { seq: 2, message: bare, qos: 0, retain: false } },
      { op: 'put-entry', clientId: 'ü!c', entry: { seq: 3, message: emptyProps, qos: 1, retain: false, subscriptionIds: [] } },
      { op: 'put-entry', clientId: 'ü!c', entry: { seq: 4, message: emptyUser, qos: 1, retain: false, share: '' } },
      { op: 'put-entry', clientId: 'ü!c', entry: { seq: 5, message: big, qos: 1, retain: true } },
    ])
    assert.deepEqual(await store.matchRetained(FULL_MESSAGE.topic), [FULL_MESSAGE])
    assert.deepEqual(await store.matchRetained(big.topic), [big])
    assert.deepEqual(
      (await store.readQueue('ü!c', 0, 10)).map((e) => e.message),
      [FULL_MESSAGE, bare, emptyProps, emptyUser, big],
    )
    const q = await store.readQueue('ü!c', 2, 2)
    assert.deepEqual(q[0]?.subscriptionIds, [])
    assert.equal(q[1]?.share, '')
    assert.deepEqual(await store.queueInfo('ü!c'), { count: 5, bytes: 256 + 0 + 1 + 1 + 300_000, lastSeq: 5 })
  })

  test(`${name}: ops within one write apply in order`, async (t) => {
    const store = await open(t)
    await store.write([
      { op: 'set-retained', message: msg('t', 'first') },
      { op: 'set-retained', message: msg('t', 'second') },
      { op: 'put-will', record: { clientId: 'c', message: msg('w', 'x'), delay: 0, publishAt: 0 } },
      { op: 'del-will', clientId: 'c' },
      { op: 'del-incoming', clientId: 'c', packetId: 3 },
      { op: 'put-incoming', record: { clientId: 'c', packetId: 3, message: msg('i', 'x', 2, false) } },
      { op: 'put-entry', clientId: 'c', entry: entry(1, 'x') },
      { op: 'del-entry', clientId: 'c', seq: 1, bytes: 1 },
      { op: 'put-session', record: { clientId: 'c', subscriptions: [] } },
      { op: 'del-session', clientId: 'c' },
      { op: 'put-session', record: { clientId: 'c', subscriptions: [{ filter: 'last', qos: 0 }] } },
    ])
    assert.deepEqual((await store.matchRetained('t')).map((m) => m.payload.toString()), ['second'])
    assert.deepEqual(await store.listWills(), [])
    assert.deepEqual(await store.listIncoming(), [], 'the del-session after it removed it')
    assert.deepEqual(await store.readQueue('c', 0, 10), [])
    assert.deepEqual((await store.getSession('c'))?.subscriptions, [{ filter: 'last', qos: 0 }])
    await store.write([])
  })

  test(`${name}: many concurrent write() calls all resolve, all land, in call order`, async (t) => {
    const store = await open(t)
    const calls: Array<Promise<void>> = []
    for (let i = 1; i <= 500; i++) {
      const ops: StoreOp[] = [
        { op: 'put-entry', clientId: `c${i % 7}`, entry: entry(i, `m${i}`) },
        { op: 'set-retained', message: msg('last', `${i}`) },
      ]
      if (i % 10 === 0) ops.push({ op: 'del-entry', clientId: `c${(i - 5) % 7}`, seq: i - 5, bytes: `m${i - 5}`.length })
      calls.push(store.write(ops))
      // Some calls after the first batch has started, so they queue behind it.
      if (i % 100 === 0) await Promise.resolve()
    }
    await Promise.all(calls)
    assert.deepEqual((await store.matchRetained('last')).map((m) => m.payload.toString()), ['500'], 'the last call wins')
    let total = 0
    for (let c = 0; c < 7; c++) {
      const seqs = (await store.readQueue(`c${c}`, 0, 1000)).map((e) => e.seq)
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b))
      assert.ok(seqs.every((s) => s % 7 === c && !(s % 10 === 5)))
      assert.equal((await store.queueInfo(`c${c}`)).count, seqs.length)
      total += seqs.length
    }
    assert.equal(total, 450)
  })
}
