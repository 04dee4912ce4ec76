/**
 * MQTT 5 Topic Aliases (section 3.3.2.3.4) in both directions, on a real socket. Raw v5 clients
 * send and see the exact Topic Name / Topic Alias pairs; MQTT.js (v5 mode) checks that an ordinary
 * subscriber gets full topics.
 */
import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import type { IPublishPacket } from 'mqtt-packet'
import type { RawClient } from './helpers/raw-client.js'
import { mqtt5, raw5, raw5Connack, serverDisconnect, sub5, v5Broker, WAIT_MS } from './helpers/v5.js'

/** QoS 0 PUBLISH with an optional Topic Alias (an empty topic then means "use the alias"). */
function pub5(c: RawClient, topic: string, payload: string, topicAlias?: number): void {
  const packet: IPublishPacket = { cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: false, dup: false }
  if (topicAlias !== undefined) packet.properties = { topicAlias }
  c.send(packet, 5)
}

/** The next `n` PUBLISH packets as [Topic Name on the wire, Topic Alias, payload]. */
async function wire(c: RawClient, n: number): Promise<Array<[string, number | undefined, string]>> {
  const out: Array<[string, number | undefined, string]> = []
  for (let i = 0; i < n; i++) {
    const p = await c.nextPublish(WAIT_MS)
    out.push([p.topic, p.properties?.topicAlias, p.payload.toString()])
  }
  return out
}

/** An MQTT.js v5 subscriber (no Topic Alias Maximum); `got` is [topic, payload, alias] of each message. */
async function mqttSubscriber(t: TestContext, port: number, clientId: string, filter: string): Promise<{ readonly got: Array<[string, string, number | undefined]>; count(n: number): Promise<void> }> {
  const { client, inbox } = await mqtt5(t, port, clientId)
  await client.subscribeAsync(filter, { qos: 0 })
  return {
    get got(): Array<[string, string, number | undefined]> {
      return inbox.messages.map((m) => [m.topic, m.payload, m.packet.properties?.topicAlias])
    },
    count: (n) => inbox.count(n),
  }
}

describe('Topic Alias, client to server', () => {
  test('an alias set with a topic is reused with an empty topic and may be remapped; subscribers get the full topic [MQTT-3.3.2-12]', async (t) => {
    const { port } = await v5Broker(t)
    const sub = await mqttSubscriber(t, port, 'al-sub', 'al/#')
    const { c: pub, connack } = await raw5Connack(t, port, 'al-pub')
    assert.equal(connack.properties?.topicAliasMaximum, 10, 'CONNACK announces topic_alias_maximum (default 10)')
    pub5(pub, 'al/x', 'one', 1)
    pub5(pub, '', 'two', 1)
    pub5(pub, 'al/y', 'three', 1)
    pub5(pub, '', 'four', 1)
    pub5(pub, 'al/z', 'five', 10)
    pub5(pub, '', 'six', 10)
    pub5(pub, '', 'seven', 1)
    await sub.count(7)
    assert.deepEqual(sub.got, [
      ['al/x', 'one', undefined],
      ['al/x', 'two', undefined],
      ['al/y', 'three', undefined],
      ['al/y', 'four', undefined],
      ['al/z', 'five', undefined],
      ['al/z', 'six', undefined],
      ['al/y', 'seven', undefined],
    ])
    assert.equal(pub.ended, false)
  })

  test('Topic Alias above the Topic Alias Maximum in CONNACK -> DISCONNECT 0x94 [MQTT-3.3.2-9]; 0 -> 0x94 [MQTT-3.3.2-8]', async (t) => {
    const { port } = await v5Broker(t, { topicAliasMaximum: 2 })
    const { c: ok, connack } = await raw5Connack(t, port, 'al-max')
    assert.equal(connack.properties?.topicAliasMaximum, 2)
    pub5(ok, 'al/a', 'at the maximum', 2)
    pub5(ok, 'al/b', 'above it', 3)
    assert.equal((await serverDisconnect(ok)).reasonCode, 0x94)
    const zero = await raw5(t, port, 'al-zero')
    pub5(zero, 'al/a', 'alias 0', 0)
    assert.equal((await serverDisconnect(zero)).reasonCode, 0x94)
  })

  test('topic_alias_maximum 0: CONNACK announces none and any alias -> DISCONNECT 0x94 [MQTT-3.2.2-18]', async (t) => {
    const { port } = await v5Broker(t, { topicAliasMaximum: 0 })
    const { c, connack } = await raw5Connack(t, port, 'al-none')
    assert.equal(connack.properties?.topicAliasMaximum ?? 0, 0)
    pub5(c, 'al/a', 'x', 1)
    assert.equal((await serverDisconnect(c)).reasonCode, 0x94)
  })

  test('aliases do not survive a reconnect: an empty topic with an alias set on the previous connection -> DISCONNECT 0x82 [MQTT-3.3.2-7]', async (t) => {
    const { port } = await v5Broker(t)
    const sub = await mqttSubscriber(t, port, 'al-rc-sub', 'al/#')
    const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } }
    const first = await raw5(t, port, 'al-rc', persistent)
    pub5(first, 'al/x', 'set', 1)
    await sub.count(1)
    await first.disconnect()
    const { c: second, connack } = await raw5Connack(t, port, 'al-rc', persistent)
    assert.equal(connack.sessionPresent, true, 'the session survived; its aliases must not')
    pub5(second, '', 'reuse', 1)
    assert.equal((await serverDisconnect(second)).reasonCode, 0x82)
    const other = await raw5(t, port, 'al-rc-other')
    pub5(other, 'al/sentinel', 'sentinel')
    await sub.count(2)
    assert.deepEqual(sub.got.map(([topic, payload]) => [topic, payload]), [['al/x', 'set'], ['al/sentinel', 'sentinel']])
  })
})

describe('Topic Alias, server to client', () => {
  test('a client announcing Topic Alias Maximum 2 gets topic + alias first, then empty topic + alias, never an alias above 2 [MQTT-3.3.2-11] [MQTT-3.1.2-26]; least recently used alias reused, hot topic keeps its own [MQTT-3.3.2-10]', async (t) => {
    const { port } = await v5Broker(t)
    const sub = await raw5(t, port, 'ta-sub', { properties: { topicAliasMaximum: 2 } })
    assert.deepEqual(await sub5(sub, [{ topic: 'ta/#', qos: 0 }]), [0])
    const pub = await raw5(t, port, 'ta-pub')
    const sent = ['a', 'a', 'b', 'a', 'c', 'a', 'b', 'a', 'c']
    sent.forEach((s, i) => pub5(pub, `ta/${s}`, `${i}`))
    const got = await wire(sub, sent.length)
    // What a client does with them: the topics resolve to exactly what was published.
    const table = new Map<number, string>()
    const resolved = got.map(([topic, alias]) => {
      assert.ok(alias !== undefined && alias >= 1 && alias <= 2, `alias ${alias} within 1..2`)
      if (topic !== '') table.set(alias, topic)
      return table.get(alias)
    })
    assert.deepEqual(resolved, sent.map((s) => `ta/${s}`))
    // ta/a is used every other message and keeps alias 1; b and c take turns on alias 2.
    assert.deepEqual(got, [
      ['ta/a', 1, '0'],
      ['', 1, '1'],
      ['ta/b', 2, '2'],
      ['', 1, '3'],
      ['ta/c', 2, '4'],
      ['', 1, '5'],
      ['ta/b', 2, '6'],
      ['', 1, '7'],
      ['ta/c', 2, '8'],
    ])
  })

  test('a client that announced no Topic Alias Maximum (or 0) gets no aliases [MQTT-3.1.2-27]', async (t) => {
    const { port } = await v5Broker(t)
    const none = await raw5(t, port, 'ta-none')
    const zero = await raw5(t, port, 'ta-zero', { properties: { topicAliasMaximum: 0 } })
    for (const c of [none, zero]) assert.deepEqual(await sub5(c, [{ topic: 'tn/#', qos: 0 }]), [0])
    const pub = await raw5(t, port, 'tn-pub')
    for (let i = 0; i < 3; i++) pub5(pub, 'tn/same', `${i}`)
    for (const c of [none, zero]) {
      assert.deepEqual(await wire(c, 3), [
        ['tn/same', undefined, '0'],
        ['tn/same', undefined, '1'],
        ['tn/same', undefined, '2'],
      ])
    }
  })

  test('server aliases start afresh on a new connection: the topic is sent again [MQTT-3.3.2-7]', async (t) => {
    const { port } = await v5Broker(t)
    const connect = { clean: false, properties: { sessionExpiryInterval: 300, topicAliasMaximum: 5 } }
    const first = await raw5(t, port, 'ta-rc', connect)
    assert.deepEqual(await sub5(first, [{ topic: 'tr/#', qos: 0 }]), [0])
    const pub = await raw5(t, port, 'tr-pub')
    pub5(pub, 'tr/x', '1')
    pub5(pub, 'tr/x', '2')
    assert.deepEqual(await wire(first, 2), [
      ['tr/x', 1, '1'],
      ['', 1, '2'],
    ])
    await first.disconnect()
    const second = await raw5(t, port, 'ta-rc', connect)
    pub5(pub, 'tr/x', '3')
    pub5(pub, 'tr/x', '4')
    assert.deepEqual(await wire(second, 2), [
      ['tr/x', 1, '3'],
      ['', 1, '4'],
    ])
  })
})
