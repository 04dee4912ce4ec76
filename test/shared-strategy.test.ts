import assert from 'node:assert/strict'
import { test } from 'node:test'
import { pickMember, SHARE_STRATEGIES, type Fitness, type ShareStrategy } from '../src/broker/shared.js'
import { SubscriptionTree, type SharedGroup, type Subscription } from '../src/broker/subscription-tree.js'
import { isMalformedSharedFilter, parseSharedFilter } from '../src/broker/topics.js'

/** A shared group built by hand, members in the given order, as the tree keeps them. */
function group(...clients: string[]): SharedGroup {
  return {
    key: 'g/t/#',
    members: new Map(clients.map((c): [string, Subscription] => [c, { clientId: c, filter: '$share/g/t/#', qos: 1 }])),
    cursor: 0,
    last: undefined,
  }
}

/** Fitness from a table by client id; members not listed are fit (2). */
const fit = (table: Record<string, Fitness> = {}) => (sub: Subscription): Fitness => table[sub.clientId] ?? 2

function picks(g: SharedGroup, strategy: ShareStrategy, n: number, fitness = fit(), topic = 't/1', publisher = 'pub'): Array<string | undefined> {
  return Array.from({ length: n }, () => pickMember(g, strategy, topic, publisher, fitness)?.clientId)
}

function counts(ids: Array<string | undefined>): Map<string | undefined, number> {
  const m = new Map<string | undefined, number>()
  for (const id of ids) m.set(id, (m.get(id) ?? 0) + 1)
  return m
}

test('round_robin: members in turn, one message each [MQTT-4.8.2-3]', () => {
  assert.deepEqual(picks(group('a', 'b', 'c'), 'round_robin', 7), ['a', 'b', 'c', 'a', 'b', 'c', 'a'])
})

test('round_robin: a member that cannot take the message (offline, no session) is skipped', () => {
  assert.deepEqual(picks(group('a', 'b', 'c'), 'round_robin', 5, fit({ b: 0 })), ['a', 'c', 'a', 'c', 'a'])
})

test('round_robin: a member with room (2) is preferred over one that can only queue (1)', () => {
  // a and c have full windows or are offline with a session; b has room: b gets everything.
  assert.deepEqual(picks(group('a', 'b', 'c'), 'round_robin', 4, fit({ a: 1, c: 1 })), ['b', 'b', 'b', 'b'])
  // Nobody has room: the ones that can queue still take turns rather than losing the message.
  assert.deepEqual(picks(group('a', 'b', 'c'), 'round_robin', 4, fit({ a: 1, b: 1, c: 1 })), ['a', 'b', 'c', 'a'])
  assert.deepEqual(picks(group('a', 'b', 'c'), 'round_robin', 3, fit({ a: 1, b: 0, c: 1 })), ['a', 'c', 'a'])
})

test('round_robin: the turn survives a member leaving and one joining', () => {
  const g = group('a', 'b', 'c')
  assert.deepEqual(picks(g, 'round_robin', 2), ['a', 'b'])
  g.members.delete('a')
  g.members.set('d', { clientId: 'd', filter: '$share/g/t/#', qos: 1 })
  // Members now b, c, d; every member still gets a share.
  assert.deepEqual(new Set(picks(g, 'round_robin', 3)), new Set(['b', 'c', 'd']))
})

test('sticky: the last member keeps getting messages while it has room, then another takes over', () => {
  const g = group('a', 'b', 'c')
  const table: Record<string, Fitness> = {}
  assert.deepEqual(picks(g, 'sticky', 4, fit(table)), ['a', 'a', 'a', 'a'])
  table.a = 1 // a's window is full
  const next = pickMember(g, 'sticky', 't', 'p', fit(table))?.clientId
  assert.ok(next === 'b' || next === 'c', `moved on to ${String(next)}`)
  table.a = 2 // a has room again, but the new member stays chosen while it is fit
  assert.deepEqual(picks(g, 'sticky', 3, fit(table)), [next, next, next])
  g.members.delete(next as string)
  const after = picks(g, 'sticky', 3, fit(table))
  assert.ok(after[0] !== next && after.every((id) => id === after[0]), `sticks to a new member: ${after.join(',')}`)
})

test('sticky: the last member is kept even when it can only queue if no one else can take the message', () => {
  const g = group('a', 'b')
  assert.equal(pickMember(g, 'sticky', 't', 'p', fit())?.clientId, 'a')
  assert.equal(pickMember(g, 'sticky', 't', 'p', fit({ a: 1, b: 0 }))?.clientId, 'a')
})

for (const [strategy, vary] of [['hash_clientid', 'publisher'], ['hash_topic', 'topic']] as const) {
  test(`${strategy}: the same ${vary} always goes to the same member, many ${vary}s spread over all`, () => {
    const g = group('a', 'b', 'c', 'd')
    const pick = (key: string, other: string): string | undefined =>
      (vary === 'publisher' ? pickMember(g, strategy, other, key, fit()) : pickMember(g, strategy, key, other, fit()))?.clientId
    for (let k = 0; k < 50; k++) {
      const key = vary === 'publisher' ? `client-${k}` : `sensors/${k}/temp`
      const first = pick(key, 'x')
      // Stable, whatever the other input and whatever was picked in between.
      for (let i = 0; i < 5; i++) assert.equal(pick(key, `other-${i}`), first, `${key} again`)
    }
    const spread = counts(Array.from({ length: 1000 }, (_, k) => pick(vary === 'publisher' ? `client-${k}` : `sensors/${k}/temp`, 'x')))
    assert.deepEqual([...spread.keys()].sort(), ['a', 'b', 'c', 'd'])
    // Each member gets at least half its fair share of 250.
    for (const [id, n] of spread) assert.ok(n >= 125, `${String(id)} got ${n} of 1000`)
  })

  test(`${strategy}: when the hashed member cannot take the message another does, and it comes back after`, () => {
    const g = group('a', 'b', 'c', 'd')
    const key = 'k-1'
    const args = (fitness: (s: Subscription) => Fitness): Subscription | undefined =>
      vary === 'publisher' ? pickMember(g, strategy, 't', key, fitness) : pickMember(g, strategy, key, 'p', fitness)
    const home = args(fit())?.clientId as string
    const away = args(fit({ [home]: 0 }))?.clientId
    assert.ok(away !== undefined && away !== home)
    assert.equal(args(fit())?.clientId, home)
  })
}

test('random: every member is picked over many messages, never an unfit one', () => {
  const g = group('a', 'b', 'c', 'd')
  const c = counts(picks(g, 'random', 800, fit({ d: 0 })))
  assert.deepEqual([...c.keys()].sort(), ['a', 'b', 'c'])
  // 800 draws over 3: each expected ~267; far below that means the draw is not uniform.
  for (const [id, n] of c) assert.ok(n > 150, `${String(id)} picked ${n} times`)
})

test('every strategy: undefined for an empty group and when no member can take the message', () => {
  for (const strategy of SHARE_STRATEGIES) {
    assert.equal(pickMember(group(), strategy, 't', 'p', fit()), undefined, `${strategy} empty`)
    const g = group('a', 'b', 'c')
    g.last = 'a'
    assert.equal(pickMember(g, strategy, 't', 'p', () => 0), undefined, `${strategy} all unfit`)
    assert.equal(pickMember(g, strategy, 't', undefined, fit({ a: 0, b: 0 }))?.clientId, 'c', `${strategy} the only fit one`)
  }
})

test('parseSharedFilter / isMalformedSharedFilter: $share/{group}/{filter} and $queue/{filter} [MQTT-4.8.2-1] [MQTT-4.8.2-2]', () => {
  const good: Array<[string, string, string]> = [
    ['$share/g/a/b', 'g', 'a/b'],
    ['$share/g/#', 'g', '#'],
    ['$share/g/+/x', 'g', '+/x'],
    ['$share/g//', 'g', '/'],
    ['$share/group-1/$SYS/#', 'group-1', '$SYS/#'],
    ['$share/$queue/a', '$queue', 'a'],
    ['$queue/a/b', '$queue', 'a/b'],
    ['$queue/#', '$queue', '#'],
  ]
  for (const [f, g, rest] of good) {
    assert.deepEqual(parseSharedFilter(f), { group: g, filter: rest }, f)
    assert.equal(isMalformedSharedFilter(f), false, f)
  }
  // Claims to be shared but is not well-formed: the group name is empty or has a wildcard, or no filter follows.
  for (const f of ['$share', '$share/', '$share/g', '$share/g/', '$share//a', '$share/+/a', '$share/g+/a', '$share/#/a', '$share/g#/a', '$queue', '$queue/']) {
    assert.equal(parseSharedFilter(f), undefined, f)
    assert.equal(isMalformedSharedFilter(f), true, f)
  }
  // Not shared at all.
  for (const f of ['a/b', '#', '$SYS/#', '$sharex/g/a', '$queues/a', 'x/$share/g/a', '$SHARE/g/a']) {
    assert.equal(parseSharedFilter(f), undefined, f)
    assert.equal(isMalformedSharedFilter(f), false, f)
  }
})

test('tree: shared subscriptions match as groups, one per {group}/{filter}, beside direct ones [MQTT-4.8.2-3]', () => {
  const tree = new SubscriptionTree()
  tree.add({ clientId: 'a', filter: '$share/g/s/+', qos: 1 })
  tree.add({ clientId: 'b', filter: '$share/g/s/+', qos: 2 })
  tree.add({ clientId: 'c', filter: '$share/h/s/+', qos: 0 })
  tree.add({ clientId: 'a', filter: '$share/g/s/#', qos: 0 })
  tree.add({ clientId: 'a', filter: 's/1', qos: 0 })
  tree.add({ clientId: 'q', filter: '$queue/s/1', qos: 1 })
  assert.equal(tree.size, 6)
  const m = tree.match('s/1')
  assert.deepEqual([...m.direct.keys()], ['a'])
  const groups = new Map(m.shared.map((g) => [g.key, [...g.members.keys()].sort()]))
  assert.deepEqual(groups, new Map([['g/s/+', ['a', 'b']], ['h/s/+', ['c']], ['g/s/#', ['a']], ['$queue/s/1', ['q']]]))
  assert.equal(m.shared.length, 4, 'each group once')
  assert.equal(tree.sharedGroup('g/s/+'), m.shared.find((g) => g.key === 'g/s/+'), 'the same group object')
  assert.deepEqual(tree.match('s/2').shared.map((g) => g.key).sort(), ['g/s/#', 'g/s/+', 'h/s/+'])
  assert.deepEqual(tree.match('other').shared, [])
  // Wildcards at the first level do not match $ topics, shared or not [MQTT-4.7.2-1].
  tree.add({ clientId: 'z', filter: '$share/g/#', qos: 0 })
  assert.deepEqual(tree.match('$SYS/x').shared, [])
  assert.deepEqual(tree.match('t').shared.map((g) => g.key), ['g/#'])
})

test('tree: shared members replaced and removed; a group goes with its last member, branches still serve others', () => {
  const tree = new SubscriptionTree()
  assert.equal(tree.add({ clientId: 'a', filter: '$share/g/x/y/z', qos: 0 }), false)
  assert.equal(tree.add({ clientId: 'a', filter: '$share/g/x/y/z', qos: 2 }), true, 'replaced [MQTT-3.8.4-3]')
  assert.equal(tree.add({ clientId: 'b', filter: '$share/g/x/y/z', qos: 1 }), false)
  tree.add({ clientId: 'd', filter: 'x/y', qos: 0 })
  assert.equal(tree.size, 3)
  assert.equal(tree.sharedGroup('g/x/y/z')?.members.get('a')?.qos, 2)
  assert.equal(tree.remove('a', '$share/h/x/y/z'), false, 'other group')
  assert.equal(tree.remove('a', 'x/y/z'), false, 'not a direct subscription')
  assert.equal(tree.remove('c', '$share/g/x/y/z'), false, 'not a member')
  assert.equal(tree.remove('a', '$share/g/x/y/z'), true)
  assert.deepEqual([...(tree.sharedGroup('g/x/y/z')?.members.keys() ?? [])], ['b'])
  // Removing the direct subscription on the way must leave the shared one below it reachable.
  assert.equal(tree.remove('d', 'x/y'), true)
  assert.deepEqual(tree.match('x/y/z').shared.map((g) => g.key), ['g/x/y/z'])
  assert.equal(tree.remove('b', '$share/g/x/y/z'), true)
  assert.equal(tree.sharedGroup('g/x/y/z'), undefined)
  assert.equal(tree.size, 0)
  assert.deepEqual(tree.match('x/y/z'), { direct: new Map(), shared: [] })
  assert.equal(tree.remove('b', '$share/g/x/y/z'), false, 'already gone')
  // Pruned branches are rebuilt, and a new group starts afresh.
  tree.add({ clientId: 'e', filter: '$share/g/x/y/z', qos: 1 })
  assert.deepEqual(tree.sharedGroup('g/x/y/z'), { key: 'g/x/y/z', members: new Map([['e', { clientId: 'e', filter: '$share/g/x/y/z', qos: 1 }]]), cursor: 0, last: undefined })
  assert.equal(tree.match('x/y/z').shared.length, 1)
  // Pruning below a node that holds only a shared group stops there: the group stays reachable.
  tree.add({ clientId: 'f', filter: 'x/y/z/deep/er', qos: 0 })
  tree.add({ clientId: 'f', filter: '$share/k/x/y/z/deep', qos: 0 })
  assert.equal(tree.remove('f', 'x/y/z/deep/er'), true)
  assert.deepEqual(tree.match('x/y/z/deep').shared.map((g) => g.key), ['k/x/y/z/deep'])
  assert.deepEqual(tree.match('x/y/z').shared.map((g) => g.key), ['g/x/y/z'])
})

test('tree: No Local leaves out the publishing client only, per subscription [MQTT-3.8.3-3]', () => {
  const tree = new SubscriptionTree()
  tree.add({ clientId: 'p', filter: 'n/#', qos: 1, noLocal: true, subscriptionId: 1 })
  tree.add({ clientId: 'q', filter: 'n/#', qos: 1, noLocal: true })
  assert.deepEqual([...tree.match('n/1', 'p').direct.keys()], ['q'])
  assert.deepEqual([...tree.match('n/1', 'q').direct.keys()], ['p'])
  assert.deepEqual([...tree.match('n/1').direct.keys()].sort(), ['p', 'q'], 'no origin: everyone')
  assert.deepEqual([...tree.match('n/1', 'r').direct.keys()].sort(), ['p', 'q'])
  // p's other, ordinary subscription still delivers p's own message, with only its own options.
  tree.add({ clientId: 'p', filter: 'n/1', qos: 0, subscriptionId: 2 })
  const own = tree.match('n/1', 'p').direct.get('p')
  assert.deepEqual(own && { qos: own.qos, filter: own.filter, ids: own.subscriptionIds }, { qos: 0, filter: 'n/1', ids: [2] })
})

test('tree: one entry per client, highest QoS, every matching Subscription Identifier, Retain As Published ORed [MQTT-3.3.4-3] [MQTT-3.3.4-4] [MQTT-3.3.1-12]', () => {
  const tree = new SubscriptionTree()
  tree.add({ clientId: 'c', filter: 'm/+', qos: 0, subscriptionId: 1 })
  tree.add({ clientId: 'c', filter: 'm/#', qos: 2, subscriptionId: 2, retainAsPublished: true })
  tree.add({ clientId: 'c', filter: 'm/x', qos: 1 })
  tree.add({ clientId: 'c', filter: '#', qos: 1, subscriptionId: 268_435_455 })
  tree.add({ clientId: 'd', filter: 'm/x', qos: 1 })
  tree.add({ clientId: 'd', filter: 'm/+', qos: 0, retainAsPublished: false })
  const m = tree.match('m/x').direct
  const c = m.get('c')
  assert.equal(m.size, 2)
  assert.deepEqual(c && { qos: c.qos, filter: c.filter, rap: c.retainAsPublished, ids: [...(c.subscriptionIds ?? [])].sort((x, y) => x - y) }, { qos: 2, filter: 'm/#', rap: true, ids: [1, 2, 268_435_455] })
  const d = m.get('d')
  assert.deepEqual(d && { qos: d.qos, rap: d.retainAsPublished, ids: d.subscriptionIds }, { qos: 1, rap: false, ids: undefined })
  // Only the filters that match count: m/y misses m/x, so c's ids are 1, 2 and the '#' one.
  assert.deepEqual([...(tree.match('m/y').direct.get('c')?.subscriptionIds ?? [])].sort((x, y) => x - y), [1, 2, 268_435_455])
  assert.deepEqual(tree.match('other').direct.get('c')?.subscriptionIds, [268_435_455])
  // "m/#" matches "m" itself, and only it among c's filters.
  const parent = tree.match('m').direct.get('c')
  assert.deepEqual(parent && { qos: parent.qos, ids: [...(parent.subscriptionIds ?? [])].sort((x, y) => x - y) }, { qos: 2, ids: [2, 268_435_455] })
})
