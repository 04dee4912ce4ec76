/**
 * The server's DISCONNECT to an MQTT 5 client (sections 3.14 and 4.13): the reason code for each
 * way a connection can end on the server's side, sent before the close, with a Reason String
 * unless `reason_strings: false`. A raw v5 client breaks the rules on purpose; MQTT.js shows a
 * real client hears about a takeover.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { IConnackPacket, IDisconnectPacket, IPublishPacket } from 'mqtt-packet'
import type { RawClient } from './helpers/raw-client.js'
import { mqtt5, serverDisconnect, v5Broker } from './helpers/v5.js'

/** A raw v5 client connected (CONNACK 0) as `clientId`. */
async function connected(make: () => RawClient, clientId: string, opts: Parameters<RawClient['connect']>[0] = {}): Promise<RawClient> {
  const c = make()
  const connack = await c.connect({ protocolVersion: 5, clientId, ...opts })
  assert.equal(connack.reasonCode, 0, `${clientId}: CONNACK`)
  return c
}

function publish(topic: string, qos: 0 | 1 | 2, messageId: number | undefined, more: Partial<IPublishPacket> = {}): IPublishPacket {
  return { cmd: 'publish', topic, qos, dup: false, retain: false, payload: Buffer.from('x'), ...(messageId === undefined ? {} : { messageId }), ...more }
}

/** A Reason String that says something. */
function assertReason(d: IDisconnectPacket): void {
  const text = d.properties?.reasonString
  assert.ok(text !== undefined && text.length > 0, `a Reason String on DISCONNECT 0x${(d.reasonCode ?? 0).toString(16)}`)
}

describe('server DISCONNECT reason codes', () => {
  test('0x8E Session taken over: the old connection hears it from the server, then is closed [MQTT-3.1.4-3]', async (t) => {
    const { port, raw } = await v5Broker(t)
    const { client: old } = await mqtt5(t, port, 'twin')
    const heard = new Promise<IDisconnectPacket>((resolve) => old.once('disconnect', resolve))
    const closed = new Promise<void>((resolve) => old.once('close', () => resolve()))
    await connected(raw, 'twin')
    const d = await heard
    assert.equal(d.reasonCode, 0x8e)
    assertReason(d)
    await closed
  })

  test('0x8D Keep alive timeout: a client silent for 1.5 x its keepalive [MQTT-3.1.2-22]', async (t) => {
    const { raw } = await v5Broker(t)
    const c = await connected(raw, 'sleepy', { keepalive: 1 })
    const start = Date.now()
    const d = await serverDisconnect(c, 4000)
    assert.equal(d.reasonCode, 0x8d)
    assertReason(d)
    assert.ok(Date.now() - start >= 1000, `closed after ${Date.now() - start} ms, too early for keepalive 1`)
  })

  test('0x8B Server shutting down on broker.close() (section 3.14.2.1)', async (t) => {
    const { broker, raw } = await v5Broker(t)
    const c = await connected(raw, 'bystander')
    await broker.close()
    const d = await serverDisconnect(c)
    assert.equal(d.reasonCode, 0x8b)
    assertReason(d)
  })

  test('0x95 Packet too large: a packet above the Maximum Packet Size in CONNACK [MQTT-3.2.2-15]', async (t) => {
    const { raw } = await v5Broker(t, { maxPacketSize: 128 })
    const c = raw()
    const connack = await c.connect({ protocolVersion: 5, clientId: 'big' })
    assert.equal(connack.properties?.maximumPacketSize, 128)
    // The limit counts the whole packet: a QoS 1 PUBLISH to "size" is 11 bytes plus its payload.
    // Exactly 128 bytes goes through...
    c.send(publish('size', 1, 1, { payload: Buffer.alloc(117) }), 5)
    assert.equal((await c.next()).cmd, 'puback')
    // ...129 ends the connection.
    c.send(publish('size', 1, 2, { payload: Buffer.alloc(118) }), 5)
    const d = await serverDisconnect(c)
    assert.equal(d.reasonCode, 0x95)
    assertReason(d)
  })

  test('0x93 Receive Maximum exceeded: more QoS 2 PUBLISHes awaiting PUBREL than the server\'s receive_maximum [MQTT-3.3.4-7]', async (t) => {
    const { raw } = await v5Broker(t, { receiveMaximum: 2 })
    const c = raw()
    assert.equal((await c.connect({ protocolVersion: 5, clientId: 'flood' })).properties?.receiveMaximum, 2)
    for (const id of [1, 2]) {
      c.send(publish('q2', 2, id), 5)
      const rec = await c.next()
      assert.equal(rec.cmd === 'pubrec' && rec.messageId, id)
    }
    // A retransmission of one already held is not a new message and stays within the window.
    c.send(publish('q2', 2, 2, { dup: true }), 5)
    assert.equal((await c.next()).cmd, 'pubrec')
    c.send(publish('q2', 2, 3), 5)
    const d = await serverDisconnect(c)
    assert.equal(d.reasonCode, 0x93)
    assertReason(d)
  })

  test('0x94 Topic Alias invalid: alias 0 [MQTT-3.3.2-8] and alias above the Topic Alias Maximum [MQTT-3.3.2-9]', async (t) => {
    const { raw } = await v5Broker(t)
    const zero = await connected(raw, 'alias-0')
    zero.send(publish('a/b', 0, undefined, { properties: { topicAlias: 0 } }), 5)
    assert.equal((await serverDisconnect(zero)).reasonCode, 0x94)

    const above = await connected(raw, 'alias-11')
    // 10 is the announced maximum and fine; 11 is not.
    above.send(publish('a/b', 1, 1, { properties: { topicAlias: 10 } }), 5)
    assert.equal((await above.next()).cmd, 'puback')
    above.send(publish('a/b', 0, undefined, { properties: { topicAlias: 11 } }), 5)
    const d = await serverDisconnect(above)
    assert.equal(d.reasonCode, 0x94)
    assertReason(d)
  })

  test('0x94 Topic Alias invalid: any alias when topic_alias_maximum is 0, so CONNACK announced none [MQTT-3.2.2-18]', async (t) => {
    const { raw } = await v5Broker(t, { topicAliasMaximum: 0 })
    const c = raw()
    assert.equal((await c.connect({ protocolVersion: 5, clientId: 'no-aliases' })).properties?.topicAliasMaximum, undefined)
    c.send(publish('a/b', 0, undefined, { properties: { topicAlias: 1 } }), 5)
    assert.equal((await serverDisconnect(c)).reasonCode, 0x94)
  })

  test('0x9B QoS not supported: a PUBLISH above Maximum QoS [MQTT-3.2.2-11]', async (t) => {
    const { raw } = await v5Broker(t, { maxQos: 1 })
    const c = await connected(raw, 'qos2')
    c.send(publish('q', 1, 1), 5)
    assert.equal((await c.next()).cmd, 'puback')
    c.send(publish('q', 2, 2), 5)
    const d = await serverDisconnect(c)
    assert.equal(d.reasonCode, 0x9b)
    assertReason(d)
  })

  test('0x9A Retain not supported: a retained PUBLISH with retain_available false [MQTT-3.2.2-14]', async (t) => {
    const { raw } = await v5Broker(t, { retainAvailable: false })
    const c = await connected(raw, 'retainer')
    c.send(publish('r', 0, undefined, { retain: true }), 5)
    const d = await serverDisconnect(c)
    assert.equal(d.reasonCode, 0x9a)
    assertReason(d)
  })

  test('0xA1 Subscription Identifiers not supported: SUBSCRIBE with one when subscription_identifiers is false (section 3.2.2.3.12)', async (t) => {
    const { raw } = await v5Broker(t, { subscriptionIdentifiers: false })
    const c = await connected(raw, 'sub-id')
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 's', qos: 0 }], properties: { subscriptionIdentifier: 7 } }, 5)
    const d = await serverDisconnect(c)
    assert.equal(d.reasonCode, 0xa1)
    assertReason(d)
  })

  test('0x81 Malformed Packet: PUBLISH with QoS 3 [MQTT-3.3.1-4], property length past the end of the packet (section 2.2.2.1) [MQTT-4.13.1-1]', async (t) => {
    const { raw } = await v5Broker(t)
    const qos3 = await connected(raw, 'qos3')
    // PUBLISH, flags QoS 3; topic "a", packet id 1, no properties.
    qos3.sendHex('36 06 0001 61 0001 00')
    assert.equal((await serverDisconnect(qos3)).reasonCode, 0x81)

    const overrun = await connected(raw, 'overrun')
    // PUBLISH QoS 0, topic "a", property length 5 with nothing after it.
    overrun.sendHex('30 04 0001 61 05')
    const d = await serverDisconnect(overrun)
    assert.equal(d.reasonCode, 0x81)
    assertReason(d)
  })

  test('a malformed CONNECT is answered in CONNACK, not DISCONNECT: reserved flag set, 0x81 [MQTT-3.1.2-3] [MQTT-4.13.1-1]', async (t) => {
    const { raw } = await v5Broker(t)
    const c = raw()
    // CONNECT v5, flags 0x03 (Clean Start and the reserved bit), keepalive 60, no properties, id "abc".
    c.sendHex('10 10 0004 4d515454 05 03 003c 00 0003 616263')
    const p = await c.next()
    assert.ok(p.cmd === 'connack' && p.reasonCode === 0x81, `expected CONNACK 0x81, got ${JSON.stringify(p)}`)
    await c.closed()
  })

  test('0x82 Protocol Error: a second CONNECT [MQTT-3.1.0-2], a Topic Alias that was never set (section 3.3.2.3.4)', async (t) => {
    const { raw } = await v5Broker(t)
    const twice = await connected(raw, 'twice')
    twice.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 60, clientId: 'twice' }, 5)
    assert.equal((await serverDisconnect(twice)).reasonCode, 0x82)

    const unknown = await connected(raw, 'unknown-alias')
    unknown.send(publish('', 0, undefined, { properties: { topicAlias: 3 } }), 5)
    const d = await serverDisconnect(unknown)
    assert.equal(d.reasonCode, 0x82)
    assertReason(d)
  })

  test('reason_strings: false: the same DISCONNECTs and CONNACK refusals carry no Reason String (section 3.14.2.2.2)', async (t) => {
    const { raw } = await v5Broker(t, { reasonStrings: false, maxQos: 1 })
    const c = await connected(raw, 'terse')
    c.send(publish('q', 2, 1), 5)
    const d = await serverDisconnect(c)
    assert.equal(d.reasonCode, 0x9b)
    assert.equal(d.properties?.reasonString, undefined)

    const refused = raw()
    const connack: IConnackPacket = await refused.connect({ protocolVersion: 5, clientId: 'terse-will', will: { topic: 'w', payload: Buffer.from('x'), qos: 2, retain: false } })
    assert.equal(connack.reasonCode, 0x9b)
    assert.equal(connack.properties?.reasonString, undefined)
  })
})
