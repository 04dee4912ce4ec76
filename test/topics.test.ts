import assert from 'node:assert/strict'
import { test } from 'node:test'
import { SubscriptionTree } from '../src/broker/subscription-tree.js'
import { isValidTopicFilter, isValidTopicName, topicMatches } from '../src/broker/topics.js'
import { isValidMqttString } from '../src/broker/utf8.js'

test('topic names: non-empty, no wildcards [MQTT-4.7.3-1] [MQTT-3.3.2-2]', () => {
  for (const ok of ['a', 'a/b', '/', 'a//b', '$SYS/x', ' ']) assert.equal(isValidTopicName(ok), true, ok)
  for (const bad of ['', 'a/+', '#', 'a/#', 'a+b']) assert.equal(isValidTopicName(bad), false, bad)
})

test('topic filters: wildcard placement [MQTT-4.7.1-2] [MQTT-4.7.1-3] [MQTT-4.7.3-1]', () => {
  for (const ok of ['#', '+', 'a/+/b', 'a/#', '+/+', '/+', 'a//#', '$SYS/#']) assert.equal(isValidTopicFilter(ok), true, ok)
  for (const bad of ['', 'a/#/b', 'a#', 'a/b#', 'a+', '+a/b', '#/a']) assert.equal(isValidTopicFilter(bad), false, bad)
})

test('matching: + is one level, # is the rest including the parent [MQTT-4.7.1-2]', () => {
  assert.equal(topicMatches('sport/#', 'sport'), true)
  assert.equal(topicMatches('sport/#', 'sport/tennis/player1'), true)
  assert.equal(topicMatches('sport/+', 'sport'), false)
  assert.equal(topicMatches('sport/+', 'sport/'), true)
  assert.equal(topicMatches('+/+', '/finance'), true)
  assert.equal(topicMatches('/+', '/finance'), true)
  assert.equal(topicMatches('+', '/finance'), false)
})

test('wildcards at the first level do not match $ topics [MQTT-4.7.2-1]', () => {
  assert.equal(topicMatches('#', '$SYS/broker/uptime'), false)
  assert.equal(topicMatches('+/broker/uptime', '$SYS/broker/uptime'), false)
  assert.equal(topicMatches('$SYS/#', '$SYS/broker/uptime'), true)
  const tree = new SubscriptionTree()
  tree.add({ clientId: 'a', filter: '#', qos: 0 })
  tree.add({ clientId: 'b', filter: '$SYS/#', qos: 0 })
  assert.deepEqual([...tree.match('$SYS/broker/uptime').direct.keys()], ['b'])
})

test('tree: one entry per client at the highest QoS of overlapping filters [MQTT-3.3.5-1]', () => {
  const tree = new SubscriptionTree()
  tree.add({ clientId: 'c', filter: 'a/b', qos: 0 })
  tree.add({ clientId: 'c', filter: 'a/+', qos: 2 })
  tree.add({ clientId: 'c', filter: '#', qos: 1 })
  tree.add({ clientId: 'd', filter: 'a/#', qos: 1 })
  const m = tree.match('a/b').direct
  assert.equal(m.size, 2)
  assert.equal(m.get('c')?.qos, 2)
  assert.equal(m.get('d')?.qos, 1)
  assert.equal(tree.size, 4)
})

test('tree: replace and remove, with empty branches pruned', () => {
  const tree = new SubscriptionTree()
  assert.equal(tree.add({ clientId: 'c', filter: 'x/y/z', qos: 0 }), false)
  assert.equal(tree.add({ clientId: 'c', filter: 'x/y/z', qos: 1 }), true)
  assert.equal(tree.size, 1)
  assert.equal(tree.match('x/y/z').direct.get('c')?.qos, 1)
  assert.equal(tree.remove('c', 'x/y'), false)
  assert.equal(tree.remove('c', 'x/y/z'), true)
  assert.equal(tree.size, 0)
  assert.equal(tree.match('x/y/z').direct.size, 0)
})

test('tree agrees with topicMatches on random filters and topics', () => {
  const levels = ['a', 'b', '$c', '', '+', '#']
  let seed = 7
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed % n
  }
  for (let round = 0; round < 300; round++) {
    const tree = new SubscriptionTree()
    const filters: string[] = []
    for (let i = 0; i < 5; i++) {
      const depth = 1 + rnd(3)
      const f = Array.from({ length: depth }, () => levels[rnd(levels.length)] as string).join('/')
      if (!isValidTopicFilter(f)) continue
      filters.push(f)
      tree.add({ clientId: `c${i}`, filter: f, qos: 0 })
    }
    const depth = 1 + rnd(3)
    const topic = Array.from({ length: depth }, () => levels[rnd(4)] as string).join('/')
    const got = [...tree.match(topic).direct.values()].map((s) => s.filter).sort()
    const want = filters.filter((f) => topicMatches(f, topic)).sort()
    assert.deepEqual(got, want, `topic ${topic}`)
  }
})

test('UTF-8: ill-formed bytes and U+0000 are refused [MQTT-1.5.3-1] [MQTT-1.5.3-2]', () => {
  const decode = (hex: string): [string, Buffer] => {
    const raw = Buffer.from(hex, 'hex')
    return [raw.toString('utf8'), raw]
  }
  assert.equal(isValidMqttString(...decode('746f70')), true)
  assert.equal(isValidMqttString(...decode('746f7000')), false)
  assert.equal(isValidMqttString(...decode('746feda080')), false) // U+D800, a surrogate
  assert.equal(isValidMqttString(...decode('746f7001')), false) // control character, refused like Mosquitto
  assert.equal(isValidMqttString(...decode('c29f')), false) // U+009F
  assert.equal(isValidMqttString(...decode('efbfbd')), true) // a real U+FFFD is well-formed
  assert.equal(isValidMqttString(...decode('e282ac')), true) // €
})
