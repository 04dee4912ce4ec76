/**
 * MQTT 5 CONNECT / CONNACK over real sockets: the limits the server announces (section 3.2.2.3),
 * Server Keep Alive and its enforcement, Assigned Client Identifier, Response Information, and
 * Request Problem Information on error acks. MQTT.js (v5 mode) shows what a real client reads;
 * a raw v5 client sends what MQTT.js will not (an empty client id with Clean Start 0, a payload
 * that lies about its format) and sees every byte the broker answers.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { IConnackPacket } from 'mqtt-packet'
import type { RawClient } from './helpers/raw-client.js'
import { mqtt5, nextOf, serverDisconnect, v5Broker } from './helpers/v5.js'

async function connect5(c: RawClient, opts: Parameters<RawClient['connect']>[0] = {}): Promise<IConnackPacket> {
  return c.connect({ protocolVersion: 5, ...opts })
}

/** Properties a server leaves out of CONNACK when it supports the feature or has nothing to say. */
const SUPPORTED_BY_DEFAULT = ['maximumQoS', 'retainAvailable', 'wildcardSubscriptionAvailable', 'subscriptionIdentifiersAvailable', 'sharedSubscriptionAvailable'] as const

describe('CONNACK properties', () => {
  test('defaults: Receive Maximum 20 and Topic Alias Maximum 10; Maximum QoS, Retain / Wildcard / Subscription Id / Shared Available absent when all supported (section 3.2.2.3)', async (t) => {
    const { port } = await v5Broker(t)
    const { connack } = await mqtt5(t, port, 'defaults')
    assert.equal(connack.reasonCode, 0)
    const p = connack.properties ?? {}
    assert.equal(p.receiveMaximum, 20)
    assert.equal(p.topicAliasMaximum, 10)
    for (const key of SUPPORTED_BY_DEFAULT) assert.equal(p[key], undefined, `${key} is absent when supported`)
    // Nothing else was asked for or needs saying: no packet size limit, the client's keepalive and
    // session expiry stand, it chose its id, asked no Response Information, used no auth method.
    for (const key of ['maximumPacketSize', 'serverKeepAlive', 'sessionExpiryInterval', 'assignedClientIdentifier', 'responseInformation', 'authenticationMethod'] as const) {
      assert.equal(p[key], undefined, `${key} is absent`)
    }
  })

  test('limits lowered in config are announced: Maximum QoS 1 [MQTT-3.2.2-9], Retain / Wildcard / Subscription Id / Shared Available 0, Maximum Packet Size, Receive Maximum (section 3.2.2.3)', async (t) => {
    const { port } = await v5Broker(t, {
      maxQos: 1,
      retainAvailable: false,
      wildcardSubscriptions: false,
      subscriptionIdentifiers: false,
      sharedSubscriptions: false,
      maxPacketSize: 4096,
      receiveMaximum: 5,
      topicAliasMaximum: 0,
    })
    const { connack } = await mqtt5(t, port, 'limited')
    assert.equal(connack.reasonCode, 0)
    const p = connack.properties ?? {}
    assert.equal(p.maximumQoS, 1)
    assert.equal(p.retainAvailable, false)
    assert.equal(p.wildcardSubscriptionAvailable, false)
    assert.equal(p.subscriptionIdentifiersAvailable, false)
    assert.equal(p.sharedSubscriptionAvailable, false)
    assert.equal(p.maximumPacketSize, 4096)
    assert.equal(p.receiveMaximum, 5)
    // Topic Alias Maximum 0 is the default meaning "no aliases", so it is left out [MQTT-3.2.2-18].
    assert.equal(p.topicAliasMaximum, undefined)
  })

  test('Maximum QoS 0 is announced as 0 [MQTT-3.2.2-9], and SUBSCRIBE at QoS 1 or 2 is still accepted, granted 0 [MQTT-3.2.2-10]', async (t) => {
    const { raw } = await v5Broker(t, { maxQos: 0 })
    const c = raw()
    const connack = await connect5(c, { clientId: 'qos0' })
    assert.equal(connack.properties?.maximumQoS, 0)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a', qos: 1 }, { topic: 'b', qos: 2 }] }, 5)
    assert.deepEqual((await nextOf(c, 'suback')).granted, [0, 0])
  })

  test('features announced as unavailable are refused in SUBACK: wildcards 0xA2, shared subscriptions 0x9E (sections 3.2.2.3.11, 3.2.2.3.13)', async (t) => {
    const { raw } = await v5Broker(t, { wildcardSubscriptions: false, sharedSubscriptions: false })
    const c = raw()
    const connack = await connect5(c, { clientId: 'plain-subs' })
    assert.equal(connack.properties?.wildcardSubscriptionAvailable, false)
    assert.equal(connack.properties?.sharedSubscriptionAvailable, false)
    c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/+', qos: 1 }, { topic: '$share/g/a', qos: 1 }, { topic: 'a/b', qos: 1 }] }, 5)
    assert.deepEqual((await nextOf(c, 'suback')).granted, [0xa2, 0x9e, 1])
  })
})

describe('Server Keep Alive', () => {
  test('a keepalive above max_keepalive is replaced by Server Keep Alive [MQTT-3.2.2-21], and the server closes after 1.5 times that with DISCONNECT 0x8D [MQTT-3.1.2-22]', async (t) => {
    const { raw } = await v5Broker(t, { maxKeepalive: 1 })
    const above = raw()
    const zero = raw()
    // Keepalive 0 (never) is above any cap too: the client is told to use the cap.
    const [a, z] = await Promise.all([connect5(above, { clientId: 'ka-60', keepalive: 60 }), connect5(zero, { clientId: 'ka-0', keepalive: 0 })])
    assert.equal(a.reasonCode, 0)
    assert.equal(a.properties?.serverKeepAlive, 1)
    assert.equal(z.reasonCode, 0)
    assert.equal(z.properties?.serverKeepAlive, 1)
    // Both stay silent: the broker must time them out on the 1 s it granted, not the 60 s / never asked.
    const start = Date.now()
    const [da, dz] = await Promise.all([serverDisconnect(above, 4000), serverDisconnect(zero, 4000)])
    const elapsed = Date.now() - start
    assert.equal(da.reasonCode, 0x8d)
    assert.equal(dz.reasonCode, 0x8d)
    assert.ok(elapsed >= 1000, `closed after ${elapsed} ms, before 1.5 x 1 s of silence`)
  })

  test('a keepalive within max_keepalive is kept: no Server Keep Alive [MQTT-3.2.2-22]', async (t) => {
    const { raw } = await v5Broker(t, { maxKeepalive: 30 })
    const connack = await connect5(raw(), { clientId: 'ka-10', keepalive: 10 })
    assert.equal(connack.reasonCode, 0)
    assert.equal(connack.properties?.serverKeepAlive, undefined)
  })
})

describe('Assigned Client Identifier', () => {
  test('an empty client id gets a unique one in CONNACK [MQTT-3.1.3-6] [MQTT-3.2.2-16], with Clean Start 0 too, and the session is kept under it [MQTT-3.1.3-7]', async (t) => {
    const { raw } = await v5Broker(t)
    // CONNECT v5, Clean Start 0, keepalive 60, Session Expiry Interval 60, client id "" (mqtt-packet
    // refuses to encode an empty id without clean start, so the bytes are written by hand).
    const emptyIdPersistent = '10 12 0004 4d515454 05 00 003c 05 11 0000003c 0000'
    const first = raw()
    first.sendHex(emptyIdPersistent)
    const ack = await nextOf(first, 'connack')
    assert.equal(ack.reasonCode, 0)
    assert.equal(ack.sessionPresent, false)
    const assigned = ack.properties?.assignedClientIdentifier
    assert.ok(assigned !== undefined && assigned.length > 0, 'Assigned Client Identifier present')

    const second = raw()
    second.sendHex(emptyIdPersistent)
    const b = await nextOf(second, 'connack')
    assert.equal(b.reasonCode, 0)
    assert.notEqual(b.properties?.assignedClientIdentifier, assigned, 'each empty id gets its own')

    await first.disconnect()
    // Coming back under the assigned id resumes the session made with the empty one.
    const again = await connect5(raw(), { clientId: assigned, clean: false, properties: { sessionExpiryInterval: 60 } })
    assert.equal(again.sessionPresent, true)
    assert.equal(again.properties?.assignedClientIdentifier, undefined, 'not assigned when the client named itself')
  })
})

describe('Response Information', () => {
  test('sent only when the client asks and response_information is configured: prefix + client id [MQTT-3.1.2-28]', async (t) => {
    const { raw } = await v5Broker(t, { responseInformation: 'replies/' })
    const asked = await connect5(raw(), { clientId: 'asker', properties: { requestResponseInformation: true } })
    assert.equal(asked.properties?.responseInformation, 'replies/asker')
    const silent = await connect5(raw(), { clientId: 'quiet' })
    assert.equal(silent.properties?.responseInformation, undefined, 'not asked: none')
    const refused = await connect5(raw(), { clientId: 'no-thanks', properties: { requestResponseInformation: false } })
    assert.equal(refused.properties?.responseInformation, undefined, 'Request Response Information 0: none')
  })

  test('not configured: none even when asked (section 3.2.2.3.15)', async (t) => {
    const { raw } = await v5Broker(t)
    const asked = await connect5(raw(), { clientId: 'asker', properties: { requestResponseInformation: true } })
    assert.equal(asked.reasonCode, 0)
    assert.equal(asked.properties?.responseInformation, undefined)
  })
})

describe('Request Problem Information', () => {
  /** A QoS 1 PUBLISH whose payload is marked UTF-8 (Payload Format Indicator 1) but is not. */
  const lyingPayload = { cmd: 'publish', topic: 'fmt', qos: 1, messageId: 1, dup: false, retain: false, payload: Buffer.from([0xc3, 0x28]), properties: { payloadFormatIndicator: true } } as const

  test('default (1): error acks carry a Reason String: PUBACK 0x99 for a payload marked UTF-8 that is not, PUBREC 0x97 over message_size_limit [MQTT-3.1.2-29]', async (t) => {
    const { raw } = await v5Broker(t, { messageSizeLimit: 8 })
    const c = raw()
    await connect5(c, { clientId: 'pi-default' })
    c.send(lyingPayload, 5)
    const puback = await nextOf(c, 'puback')
    assert.equal(puback.reasonCode, 0x99)
    assert.ok((puback.properties?.reasonString ?? '').length > 0, 'Reason String on PUBACK 0x99')
    c.send({ cmd: 'publish', topic: 'big', qos: 2, messageId: 2, dup: false, retain: false, payload: Buffer.alloc(20) }, 5)
    const pubrec = await nextOf(c, 'pubrec')
    assert.equal(pubrec.reasonCode, 0x97)
    assert.ok((pubrec.properties?.reasonString ?? '').length > 0, 'Reason String on PUBREC 0x97')
  })

  test('0: the same error acks carry no Reason String [MQTT-3.1.2-29]', async (t) => {
    const { raw } = await v5Broker(t, { messageSizeLimit: 8 })
    const c = raw()
    await connect5(c, { clientId: 'pi-off', properties: { requestProblemInformation: false } })
    c.send(lyingPayload, 5)
    const puback = await nextOf(c, 'puback')
    assert.equal(puback.reasonCode, 0x99)
    assert.equal(puback.properties?.reasonString, undefined)
    c.send({ cmd: 'publish', topic: 'big', qos: 2, messageId: 2, dup: false, retain: false, payload: Buffer.alloc(20) }, 5)
    const pubrec = await nextOf(c, 'pubrec')
    assert.equal(pubrec.reasonCode, 0x97)
    assert.equal(pubrec.properties?.reasonString, undefined)
  })

  test('reason_strings: false: error acks carry none even when the client asks (section 3.4.2.2.2)', async (t) => {
    const { raw } = await v5Broker(t, { reasonStrings: false })
    const c = raw()
    await connect5(c, { clientId: 'rs-off' })
    c.send(lyingPayload, 5)
    const puback = await nextOf(c, 'puback')
    assert.equal(puback.reasonCode, 0x99)
    assert.equal(puback.properties?.reasonString, undefined)
  })
})
