/**
 * MQTT 5 PUBLISH features on a real socket: Message Expiry Interval, Payload Format Indicator
 * checks, and the request/response properties a subscriber gets unchanged. MQTT.js (v5 mode)
 * plays the ordinary clients; a raw v5 client is used where a test must see exact packets or
 * bytes, or decide when to acknowledge. Topic aliases, flow control and subscription options are
 * in v5-publish-*.test.ts.
 *
 * "Nothing else arrived" is proven with a sentinel: a later message on the same path, so once it
 * is in, anything the broker sent before it is in too.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { IConnectPacket, IPublishPacket } from 'mqtt-packet'
import { tcpClient } from './helpers/broker.js'
import type { RawClient } from './helpers/raw-client.js'
import { mqtt5, nextOf, raw5, splitPackets, sub5, v5Broker, WAIT_MS } from './helpers/v5.js'

function pub5(c: RawClient, topic: string, payload: string | Buffer, qos: 0 | 1 | 2, messageId: number | undefined, properties?: IPublishPacket['properties']): void {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload
  c.send({ cmd: 'publish', topic, payload: body, qos, retain: false, dup: false, ...(messageId === undefined ? {} : { messageId }), ...(properties === undefined ? {} : { properties }) }, 5)
}

type WireProperty = [id: number, value: number | string | [string, string]]

/**
 * The properties of one v5 PUBLISH as they are on the wire, in order: decoded here rather than by
 * mqtt-packet, which folds repeated User Properties into arrays and so loses their order.
 */
function publishProperties(packet: Buffer): WireProperty[] {
  let at = 1
  while (((packet[at++] as number) & 0x80) !== 0);
  const qos = ((packet[0] as number) >> 1) & 3
  at += 2 + packet.readUInt16BE(at) + (qos > 0 ? 2 : 0)
  const str = (): string => {
    const n = packet.readUInt16BE(at)
    const s = packet.toString('utf8', at + 2, at + 2 + n)
    at += 2 + n
    return s
  }
  const varint = (): number => {
    let v = 0
    for (let mul = 1; ; mul *= 128) {
      const b = packet[at++] as number
      v += (b & 0x7f) * mul
      if ((b & 0x80) === 0) return v
    }
  }
  const propLength = varint()
  const end = at + propLength
  const out: WireProperty[] = []
  while (at < end) {
    const id = packet[at++] as number
    switch (id) {
      case 0x01:
        out.push([id, packet[at++] as number])
        break
      case 0x02:
        out.push([id, packet.readUInt32BE(at)])
        at += 4
        break
      case 0x03:
      case 0x08:
        out.push([id, str()])
        break
      case 0x09: {
        const n = packet.readUInt16BE(at)
        out.push([id, packet.toString('hex', at + 2, at + 2 + n)])
        at += 2 + n
        break
      }
      case 0x0b:
        out.push([id, varint()])
        break
      case 0x23:
        out.push([id, packet.readUInt16BE(at)])
        at += 2
        break
      case 0x26:
        out.push([id, [str(), str()]])
        break
      default:
        throw new Error(`unexpected property 0x${id.toString(16)} in a PUBLISH`)
    }
  }
  return out
}

function str16(s: string): Buffer {
  const b = Buffer.from(s, 'utf8')
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b])
}

/** A v5 PUBLISH built byte by byte, so the properties go out exactly in the order given. */
function publishBytes(topic: string, qos: 0 | 1, messageId: number, props: Buffer, payload: Buffer): Buffer {
  assert.ok(props.length < 128 && topic.length < 100)
  const body = Buffer.concat([str16(topic), qos > 0 ? Buffer.from([messageId >> 8, messageId & 0xff]) : Buffer.alloc(0), Buffer.from([props.length]), props, payload])
  assert.ok(body.length < 128 * 128)
  const rl = body.length < 128 ? Buffer.from([body.length]) : Buffer.from([(body.length & 0x7f) | 0x80, body.length >> 7])
  return Buffer.concat([Buffer.from([0x30 | (qos << 1)]), rl, body])
}

const persistent = { clean: false, properties: { sessionExpiryInterval: 300 } } satisfies Partial<IConnectPacket>

describe('Message Expiry Interval', () => {
  test('a QoS 1 message that expires while its persistent subscriber is offline is not delivered [MQTT-3.3.2-5]; one still alive carries the lifetime left [MQTT-3.3.2-6]', async (t) => {
    const { broker, port } = await v5Broker(t)
    const sub = await raw5(t, port, 'exp-sub', persistent)
    assert.deepEqual(await sub5(sub, [{ topic: 'exp/#', qos: 1 }]), [1])
    await sub.disconnect()
    const live = await mqtt5(t, port, 'exp-live')
    await live.client.subscribeAsync('exp/#', { qos: 1 })

    // Expiry is counted in whole seconds; a mocked clock replaces sleeping through them and makes
    // the lifetime left exact.
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
    const pub = await raw5(t, port, 'exp-pub')
    pub5(pub, 'exp/short', 'gone', 1, 1, { messageExpiryInterval: 2 })
    pub5(pub, 'exp/long', 'kept', 1, 2, { messageExpiryInterval: 10 })
    pub5(pub, 'exp/none', 'sentinel', 1, 3)
    for (let i = 0; i < 3; i++) assert.equal((await nextOf(pub, 'puback')).reasonCode ?? 0, 0)

    // A subscriber online gets them at once, with the interval as sent (nothing waited).
    await live.inbox.count(3)
    assert.deepEqual(
      live.inbox.messages.map((m) => [m.topic, m.packet.properties?.messageExpiryInterval]),
      [['exp/short', 2], ['exp/long', 10], ['exp/none', undefined]],
    )

    t.mock.timers.tick(3000)
    const back = tcpClient(t, port, 5)
    const connack = await back.connect({ protocolVersion: 5, clientId: 'exp-sub', ...persistent })
    assert.equal(connack.sessionPresent, true)
    const first = await back.nextPublish(WAIT_MS)
    assert.equal(first.topic, 'exp/long', 'the expired message is not delivered')
    assert.equal(first.properties?.messageExpiryInterval, 7, '10 s sent, 3 s waited')
    back.send({ cmd: 'puback', messageId: first.messageId as number }, 5)
    const second = await back.nextPublish(WAIT_MS)
    assert.equal(second.topic, 'exp/none')
    assert.equal(second.properties?.messageExpiryInterval, undefined, 'no expiry was set, none is invented')
    assert.equal(broker.stats.publishExpired, 1)
  })

  test('a QoS 1 message that expires queued behind a full Receive Maximum window is not sent [MQTT-3.3.2-5]', async (t) => {
    const { broker, port } = await v5Broker(t)
    const sub = await raw5(t, port, 'win-sub', { properties: { receiveMaximum: 1 } })
    assert.deepEqual(await sub5(sub, [{ topic: 'w/#', qos: 1 }]), [1])
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
    const pub = await raw5(t, port, 'win-pub')
    pub5(pub, 'w/first', 'a', 1, 1)
    pub5(pub, 'w/expiring', 'b', 1, 2, { messageExpiryInterval: 1 })
    pub5(pub, 'w/sentinel', 'c', 1, 3)
    const first = await sub.nextPublish(WAIT_MS)
    assert.equal(first.topic, 'w/first')
    for (let i = 0; i < 3; i++) await nextOf(pub, 'puback')
    t.mock.timers.tick(1500)
    sub.send({ cmd: 'puback', messageId: first.messageId as number }, 5)
    assert.equal((await sub.nextPublish(WAIT_MS)).topic, 'w/sentinel')
    assert.equal(broker.stats.publishExpired, 1)
  })

  test('a retained message is sent to new subscribers with the lifetime left, and not at all once it expired [MQTT-3.3.2-5] [MQTT-3.3.2-6]', async (t) => {
    const { port } = await v5Broker(t)
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() })
    const pub = await raw5(t, port, 'ret-pub')
    pub.send({ cmd: 'publish', topic: 'ret/x', payload: Buffer.from('short-lived'), qos: 1, messageId: 1, retain: true, dup: false, properties: { messageExpiryInterval: 5 } }, 5)
    pub.send({ cmd: 'publish', topic: 'ret/sentinel', payload: Buffer.from('s'), qos: 1, messageId: 2, retain: true, dup: false }, 5)
    await nextOf(pub, 'puback')
    await nextOf(pub, 'puback')

    t.mock.timers.tick(2000)
    const early = await raw5(t, port, 'ret-early')
    assert.deepEqual(await sub5(early, [{ topic: 'ret/x', qos: 0 }]), [0])
    const got = await early.nextPublish(WAIT_MS)
    assert.equal(got.retain, true)
    assert.equal(got.properties?.messageExpiryInterval, 3, '5 s set, 2 s stored')

    t.mock.timers.tick(4000)
    const late = await raw5(t, port, 'ret-late')
    assert.deepEqual(await sub5(late, [{ topic: 'ret/x', qos: 0 }]), [0])
    // A second SUBSCRIBE is handled after the first one's retained messages went out.
    assert.deepEqual(await sub5(late, [{ topic: 'ret/sentinel', qos: 0 }], undefined, 2), [0])
    assert.equal((await late.nextPublish(WAIT_MS)).topic, 'ret/sentinel', 'the expired retained message is not sent')
  })
})

describe('Payload Format Indicator', () => {
  const notUtf8 = Buffer.from([0x61, 0xff, 0xfe, 0x62])

  test('QoS 1 marked UTF-8 but not UTF-8: PUBACK 0x99 and not delivered; QoS 0: dropped (section 3.3.2.3.2)', async (t) => {
    const { port } = await v5Broker(t)
    const sub = await raw5(t, port, 'pfi-sub')
    assert.deepEqual(await sub5(sub, [{ topic: 'pfi/#', qos: 1 }]), [1])
    const pub = await raw5(t, port, 'pfi-pub')
    pub5(pub, 'pfi/bad1', notUtf8, 1, 1, { payloadFormatIndicator: true })
    const ack = await nextOf(pub, 'puback')
    assert.equal(ack.messageId, 1)
    assert.equal(ack.reasonCode, 0x99)
    pub5(pub, 'pfi/bad0', notUtf8, 0, undefined, { payloadFormatIndicator: true })
    // The same bytes without the indicator are just bytes.
    pub5(pub, 'pfi/binary', notUtf8, 0, undefined)
    const p = await sub.nextPublish(WAIT_MS)
    assert.equal(p.topic, 'pfi/binary', 'neither refused message was delivered')
    assert.deepEqual(p.payload, notUtf8)
    assert.equal(pub.ended, false, 'a refused payload does not cost the publisher its connection')
  })

  test('valid UTF-8 with indicator 1 is delivered with the indicator unchanged [MQTT-3.3.2-4]', async (t) => {
    const { port } = await v5Broker(t)
    const sub = await mqtt5(t, port, 'pfi-ok-sub')
    await sub.client.subscribeAsync('pfi/ok', { qos: 1 })
    const pub = await mqtt5(t, port, 'pfi-ok-pub')
    await pub.client.publishAsync('pfi/ok', 'grüße ✓', { qos: 1, properties: { payloadFormatIndicator: true } })
    await sub.inbox.count(1)
    const m = sub.inbox.messages[0]
    assert.equal(m?.payload, 'grüße ✓')
    assert.equal(m?.packet.properties?.payloadFormatIndicator, true)
  })
})

describe('request / response properties', () => {
  test('Response Topic, Correlation Data, Content Type, Payload Format Indicator and User Properties arrive unchanged [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-20], User Properties in order [MQTT-3.3.2-18]', async (t) => {
    const { port } = await v5Broker(t)
    // A raw subscriber, whose bytes are kept: the order of repeated User Properties is only visible there.
    const sub = await raw5(t, port, 'rr-raw')
    const bytes: Buffer[] = []
    sub.stream.on('data', (chunk: Buffer) => bytes.push(chunk))
    assert.deepEqual(await sub5(sub, [{ topic: 'rr/#', qos: 1 }]), [1])
    const js = await mqtt5(t, port, 'rr-mqttjs')
    await js.client.subscribeAsync('rr/#', { qos: 1 })

    const pub = await raw5(t, port, 'rr-pub')
    const user = (k: string, v: string): Buffer => Buffer.concat([Buffer.from([0x26]), str16(k), str16(v)])
    const props = Buffer.concat([
      user('k', '1'),
      Buffer.from([0x01, 0x01]),
      user('other', 'x'),
      Buffer.concat([Buffer.from([0x03]), str16('application/json')]),
      Buffer.concat([Buffer.from([0x08]), str16('rr/reply/42')]),
      Buffer.from([0x09, 0x00, 0x04, 0xde, 0xad, 0x00, 0xef]),
      user('k', '2'),
      user('k', '1'),
    ])
    pub.stream.write(publishBytes('rr/req', 1, 5, props, Buffer.from('{"q":1}')))
    assert.equal((await nextOf(pub, 'puback')).messageId, 5)

    const p = await sub.nextPublish(WAIT_MS)
    sub.send({ cmd: 'puback', messageId: p.messageId as number }, 5)
    const wire = splitPackets(Buffer.concat(bytes)).filter((b) => (b[0] as number) >> 4 === 3)
    assert.equal(wire.length, 1)
    const got = publishProperties(wire[0] as Buffer)
    assert.deepEqual(
      got.filter(([id]) => id === 0x26).map(([, v]) => v),
      [['k', '1'], ['other', 'x'], ['k', '2'], ['k', '1']],
      'every User Property, repeats included, in the publisher order',
    )
    const others = new Map(got.filter(([id]) => id !== 0x26))
    assert.equal(others.get(0x01), 1)
    assert.equal(others.get(0x03), 'application/json')
    assert.equal(others.get(0x08), 'rr/reply/42')
    assert.equal(others.get(0x09), 'dead00ef')
    assert.equal(others.size, 4, `no other properties: ${JSON.stringify(got)}`)

    await js.inbox.count(1)
    const m = js.inbox.messages[0]?.packet
    assert.equal(m?.payload.toString(), '{"q":1}')
    assert.equal(m?.properties?.responseTopic, 'rr/reply/42')
    assert.deepEqual(m?.properties?.correlationData, Buffer.from([0xde, 0xad, 0x00, 0xef]))
    assert.equal(m?.properties?.contentType, 'application/json')
    assert.equal(m?.properties?.payloadFormatIndicator, true)
    assert.deepEqual({ ...m?.properties?.userProperties }, { k: ['1', '2', '1'], other: 'x' })
  })

  test('a responder answers on the Response Topic with the Correlation Data, and the requester gets it back (request/response, section 4.10)', async (t) => {
    const { port } = await v5Broker(t)
    const responder = await mqtt5(t, port, 'rr-responder')
    await responder.client.subscribeAsync('svc/time', { qos: 1 })
    responder.client.on('message', (_topic, payload, packet) => {
      const { responseTopic, correlationData } = packet.properties ?? {}
      if (responseTopic === undefined) return
      responder.client.publish(responseTopic, `re:${payload.toString()}`, { qos: 1, properties: { ...(correlationData === undefined ? {} : { correlationData }) } })
    })
    const requester = await mqtt5(t, port, 'rr-requester')
    await requester.client.subscribeAsync('client/rr-requester/reply', { qos: 1 })
    await requester.client.publishAsync('svc/time', 'now?', { qos: 1, properties: { responseTopic: 'client/rr-requester/reply', correlationData: Buffer.from('req-1') } })
    await requester.inbox.count(1)
    const m = requester.inbox.messages[0]
    assert.equal(m?.topic, 'client/rr-requester/reply')
    assert.equal(m?.payload, 're:now?')
    assert.deepEqual(m?.packet.properties?.correlationData, Buffer.from('req-1'))
  })
})
