/**
 * MQTT 5 sessions over real sockets: Session Expiry Interval (0, seconds, never), the cap of
 * `persistent_client_expiration`, changing it at DISCONNECT, Clean Start, and queued messages on
 * resume. Whether a session survived is read off the wire, from Session Present in the next
 * CONNACK and from what the resumed session delivers.
 *
 * Expiry is swept every 500 ms, so a 1 s session is gone within 1.5 s of the disconnect. Instead
 * of sleeping that long, the tests wait for the broker's public session count to drop, with a
 * deadline, and then check the wire.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { IClientOptions } from 'mqtt'
import type { IConnackPacket, IPublishPacket } from 'mqtt-packet'
import { NEVER, type Broker } from '../src/broker/broker.js'
import type { RawClient } from './helpers/raw-client.js'
import { mqtt5, v5Broker } from './helpers/v5.js'

/** CONNECT v5 as `clientId` with Clean Start and Session Expiry Interval as given; returns the CONNACK. */
function connect5(c: RawClient, clientId: string, clean: boolean, expiry: number | undefined): Promise<IConnackPacket> {
  return c.connect({ protocolVersion: 5, clientId, clean, ...(expiry === undefined ? {} : { properties: { sessionExpiryInterval: expiry } }) })
}

async function subscribe5(c: RawClient, filter: string, qos: 0 | 1 | 2): Promise<void> {
  c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos }] }, 5)
  const ack = await c.next()
  assert.equal(ack.cmd === 'suback' && ack.granted[0], qos, 'SUBACK grants the QoS')
}

/** The broker holds `n` sessions (its public count); rejects after `ms`. */
async function sessionsDropTo(broker: Broker, n: number, ms: number): Promise<number> {
  const start = Date.now()
  while (broker.sessionCount > n) {
    if (Date.now() - start > ms) throw new Error(`still ${broker.sessionCount} sessions after ${ms} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return Date.now() - start
}

/** DISCONNECT with a Session Expiry Interval property, then wait for the close. */
async function disconnectWithExpiry(c: RawClient, expiry: number): Promise<void> {
  c.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: expiry } }, 5)
  await c.closed()
}

function publish(topic: string, payload: string, qos: 0 | 1 | 2, messageId?: number): IPublishPacket {
  return { cmd: 'publish', topic, payload: Buffer.from(payload), qos, dup: false, retain: false, ...(messageId === undefined ? {} : { messageId }) }
}

describe('Session Expiry Interval', { concurrency: true }, () => {
  test('0 (or absent): the session ends with the connection, Session Present 0 on return [MQTT-3.1.2-23] [MQTT-3.2.2-3]', async (t) => {
    const { raw } = await v5Broker(t)
    for (const expiry of [0, undefined]) {
      const a = raw()
      assert.equal((await connect5(a, `e0-${expiry}`, false, expiry)).sessionPresent, false)
      await subscribe5(a, 'kept/#', 1)
      await a.disconnect()
      const b = raw()
      const connack = await connect5(b, `e0-${expiry}`, false, 60)
      assert.equal(connack.sessionPresent, false, `expiry ${expiry}: nothing to resume`)
    }
  })

  test('N seconds: resumed within N [MQTT-3.1.2-23], gone after N (section 3.1.2.11.2)', async (t) => {
    const { broker, raw } = await v5Broker(t)
    const a = raw()
    await connect5(a, 'e1', false, 1)
    await subscribe5(a, 'x', 1)
    await a.disconnect()
    const b = raw()
    const resumed = await connect5(b, 'e1', false, 1)
    assert.equal(resumed.sessionPresent, true, 'resumed right away')
    assert.equal(resumed.properties?.sessionExpiryInterval, undefined, 'granted as asked: not repeated in CONNACK')
    await b.disconnect()
    const waited = await sessionsDropTo(broker, 0, 3000)
    assert.ok(waited >= 800, `session gone ${waited} ms after the disconnect, before its 1 s`)
    const c = raw()
    assert.equal((await connect5(c, 'e1', false, 1)).sessionPresent, false, 'expired')
  })

  test('0xFFFFFFFF: the session does not expire (section 3.1.2.11.2)', async (t) => {
    const { broker, raw } = await v5Broker(t)
    const a = raw()
    const connack = await connect5(a, 'forever', false, NEVER)
    assert.equal(connack.properties?.sessionExpiryInterval, undefined, 'granted as asked')
    await subscribe5(a, 'x', 1)
    await a.disconnect()
    // Two sweeps (500 ms each) pass: a "never" read as a past or small deadline would be gone.
    await new Promise((r) => setTimeout(r, 1100))
    assert.equal(broker.sessionCount, 1)
    assert.equal((await connect5(raw(), 'forever', false, NEVER)).sessionPresent, true)
  })

  test('persistent_client_expiration caps the interval and CONNACK says what was granted (section 3.2.2.3.2); the session expires on the cap', async (t) => {
    const { broker, raw } = await v5Broker(t, { persistentClientExpiration: 1 })
    const never = await connect5(raw(), 'capped-never', false, NEVER)
    assert.equal(never.properties?.sessionExpiryInterval, 1)
    const hour = raw()
    const capped = await connect5(hour, 'capped-hour', false, 3600)
    assert.equal(capped.properties?.sessionExpiryInterval, 1)
    const zero = await connect5(raw(), 'capped-zero', false, 0)
    assert.equal(zero.properties?.sessionExpiryInterval, undefined, '0 is below the cap: granted as asked')

    await subscribe5(hour, 'x', 1)
    await hour.disconnect()
    await sessionsDropTo(broker, 2, 3000)
    assert.equal((await connect5(raw(), 'capped-hour', false, 3600)).sessionPresent, false, 'expired after the 1 s granted, not the hour asked')
  })

  test('DISCONNECT with Session Expiry Interval 0 ends a session that had N: Session Present 0 on return (section 3.14.2.2.2)', async (t) => {
    const { broker, raw } = await v5Broker(t)
    const a = raw()
    await connect5(a, 'quitter', false, 3600)
    await subscribe5(a, 'x', 1)
    await disconnectWithExpiry(a, 0)
    // Removed at once, not on a later sweep.
    assert.equal(broker.sessionCount, 0)
    assert.equal((await connect5(raw(), 'quitter', false, 3600)).sessionPresent, false)
  })

  test('DISCONNECT may shorten N: 3600 at CONNECT, 1 at DISCONNECT, gone after about 1 s (section 3.14.2.2.2)', async (t) => {
    const { broker, raw } = await v5Broker(t)
    const a = raw()
    await connect5(a, 'shortened', false, 3600)
    await subscribe5(a, 'x', 1)
    await disconnectWithExpiry(a, 1)
    await sessionsDropTo(broker, 0, 3000)
    assert.equal((await connect5(raw(), 'shortened', false, 3600)).sessionPresent, false)
  })

  test('0 at CONNECT, non-zero at DISCONNECT: DISCONNECT 0x82 from the server, and no session kept [MQTT-3.14.2-2]', async (t) => {
    const { raw } = await v5Broker(t)
    const a = raw()
    await connect5(a, 'liar', false, 0)
    await subscribe5(a, 'x', 1)
    a.send({ cmd: 'disconnect', reasonCode: 0, properties: { sessionExpiryInterval: 60 } }, 5)
    const d = await a.next()
    assert.ok(d.cmd === 'disconnect' && d.reasonCode === 0x82, `expected DISCONNECT 0x82, got ${JSON.stringify(d)}`)
    await a.closed()
    assert.equal((await connect5(raw(), 'liar', false, 60)).sessionPresent, false)
  })
})

describe('Clean Start', () => {
  test('Clean Start 1 discards the existing session: Session Present 0 [MQTT-3.2.2-2], its subscriptions gone [MQTT-3.1.2-4]', async (t) => {
    const { raw } = await v5Broker(t)
    const a = raw()
    await connect5(a, 'fresh', false, 3600)
    await subscribe5(a, 'old/topic', 1)
    await a.disconnect()

    const b = raw()
    assert.equal((await connect5(b, 'fresh', true, 3600)).sessionPresent, false)
    await subscribe5(b, 'sentinel', 1)
    const pub = raw()
    await connect5(pub, 'pub', true, 0)
    pub.send(publish('old/topic', 'stale', 1, 1), 5)
    assert.equal((await pub.next()).cmd, 'puback')
    pub.send(publish('sentinel', 'last', 1, 2), 5)
    assert.equal((await pub.next()).cmd, 'puback')
    // The sentinel came after the old topic's message: had the old subscription survived, that
    // message would be first.
    const first = await b.nextPublish()
    assert.equal(first.topic, 'sentinel')
  })

  test('Clean Start 0 with an existing session resumes it: Session Present 1 [MQTT-3.2.2-3] [MQTT-3.1.2-5]', async (t) => {
    const { raw } = await v5Broker(t)
    const a = raw()
    await connect5(a, 'resumer', false, 3600)
    await subscribe5(a, 'x', 1)
    await a.disconnect()
    assert.equal((await connect5(raw(), 'resumer', false, 3600)).sessionPresent, true)
  })
})

describe('queued messages', () => {
  test('QoS 1 messages published while the client was away are delivered when it resumes its session (MQTT.js) [MQTT-3.1.2-23]', async (t) => {
    const { port } = await v5Broker(t)
    const opts: IClientOptions = { clean: false, properties: { sessionExpiryInterval: 300 } }
    const first = await mqtt5(t, port, 'roamer', opts)
    assert.equal(first.connack.sessionPresent, false)
    await first.client.subscribeAsync('inbox/#', { qos: 1 })
    await first.client.endAsync()

    const pub = await mqtt5(t, port, 'sender')
    for (const n of [1, 2, 3]) await pub.client.publishAsync(`inbox/${n}`, `m${n}`, { qos: 1, properties: { userProperties: { n: String(n) } } })

    const back = await mqtt5(t, port, 'roamer', opts)
    assert.equal(back.connack.sessionPresent, true)
    await back.inbox.count(3)
    const got = back.inbox.messages.map((m) => m.packet)
    assert.deepEqual(got.map((p) => [p.topic, p.payload.toString(), p.qos]), [['inbox/1', 'm1', 1], ['inbox/2', 'm2', 1], ['inbox/3', 'm3', 1]])
    // Properties are kept with the queued message.
    assert.deepEqual(got.map((p) => ({ ...p.properties?.userProperties })), [{ n: '1' }, { n: '2' }, { n: '3' }])
  })
})
