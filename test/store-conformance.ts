import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Message } from '../src/broker/types.js'
import type { Store } from '../src/store/types.js'

/**
 * The one behavioural contract every Store backend meets. A backend's test file calls this
 * with a factory that makes a fresh, empty store (in its own temp dir for disk backends).
 */
export function storeConformance(name: string, open: () => Promise<Store>): void {
  const msg = (topic: string, payload: string, qos: 0 | 1 | 2 = 0): Message => ({ topic, payload: Buffer.from(payload), qos, retain: true })

  test(`${name}: retained set, replace, match by filter, delete by empty payload`, async (t) => {
    const store = await open()
    t.after(() => store.close())
    await store.setRetained(msg('a/b', '1'))
    await store.setRetained(msg('a/c', '2', 1))
    await store.setRetained(msg('a/b', '3'))
    await store.setRetained(msg('$SYS/x', 's'))
    assert.equal(await store.retainedCount(), 3)
    const all = (await store.matchRetained('a/#')).map((m) => `${m.topic}=${m.payload.toString()}@${m.qos}`).sort()
    assert.deepEqual(all, ['a/b=3@0', 'a/c=2@1'])
    assert.deepEqual((await store.matchRetained('a/c')).map((m) => m.topic), ['a/c'])
    assert.deepEqual((await store.matchRetained('#')).map((m) => m.topic).sort(), ['a/b', 'a/c'])
    assert.deepEqual((await store.matchRetained('$SYS/#')).map((m) => m.topic), ['$SYS/x'])
    await store.setRetained(msg('a/b', ''))
    assert.equal(await store.retainedCount(), 2)
    assert.deepEqual(await store.matchRetained('a/b'), [])
  })

  test(`${name}: sessions put, get, list, delete`, async (t) => {
    const store = await open()
    t.after(() => store.close())
    assert.equal(await store.getSession('nope'), undefined)
    await store.putSession({ clientId: 'c1', subscriptions: [{ filter: 'x/#', qos: 1 }] })
    await store.putSession({ clientId: 'c2', subscriptions: [], expiresAt: 1234 })
    await store.putSession({ clientId: 'c1', subscriptions: [{ filter: 'y', qos: 2 }] })
    assert.deepEqual(await store.getSession('c1'), { clientId: 'c1', subscriptions: [{ filter: 'y', qos: 2 }] })
    assert.deepEqual((await store.listSessions()).map((s) => s.clientId).sort(), ['c1', 'c2'])
    assert.equal((await store.getSession('c2'))?.expiresAt, 1234)
    await store.deleteSession('c1')
    assert.deepEqual((await store.listSessions()).map((s) => s.clientId), ['c2'])
  })
}
