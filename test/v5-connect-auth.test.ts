/**
 * MQTT 5 enhanced authentication (section 4.12) over real sockets, with a toy challenge-response
 * method plugged in through hooks.enhancedAuth: the server sends a random nonce in AUTH 0x18 and
 * the client proves itself by sending the nonce back reversed. MQTT.js runs the exchange through
 * its handleAuth hook; a raw v5 client does what MQTT.js cannot (re-authenticate, answer wrongly,
 * send AUTH uninvited).
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import { connect as mqttConnect } from 'mqtt'
import type { IAuthPacket, IConnackPacket } from 'mqtt-packet'
import type { BrokerHooks, EnhancedAuthMethod } from '../src/broker/broker.js'
import type { RawClient } from './helpers/raw-client.js'
import { isCmd, nextOf, serverDisconnect, v5Broker } from './helpers/v5.js'

const METHOD = 'REVERSE-NONCE'

function reversed(b: Buffer): Buffer {
  return Buffer.from(b).reverse()
}

/**
 * The toy method: the first step (CONNECT's or AUTH 0x19's data) is answered with a fresh nonce;
 * the second succeeds, with a welcome as Authentication Data, only if it is that nonce reversed.
 * `steps` records every client step the broker fed the method.
 */
function reverseNonce(steps: Array<Buffer | undefined> = []): EnhancedAuthMethod {
  return {
    start() {
      const nonce = randomBytes(8)
      let challenged = false
      return {
        step(data) {
          steps.push(data)
          if (!challenged) {
            challenged = true
            return { result: 'continue', data: nonce }
          }
          return data !== undefined && data.equals(reversed(nonce)) ? { result: 'success', data: Buffer.from('welcome') } : { result: 'fail' }
        },
      }
    },
  }
}

function hooksWith(method: EnhancedAuthMethod): BrokerHooks {
  return { enhancedAuth: new Map([[METHOD, method]]) }
}

function sendAuth(c: RawClient, reasonCode: number, data?: Buffer, method = METHOD): void {
  c.send({ cmd: 'auth', reasonCode, properties: { authenticationMethod: method, ...(data === undefined ? {} : { authenticationData: data }) } }, 5)
}

/** CONNECT naming the toy method, then the challenge and the right answer; returns the CONNACK. */
async function authenticate(c: RawClient, clientId: string): Promise<IConnackPacket> {
  c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 60, clientId, properties: { authenticationMethod: METHOD } }, 5)
  const challenge = await nextOf(c, 'auth')
  sendAuth(c, 0x18, reversed(challenge.properties?.authenticationData ?? Buffer.alloc(0)))
  return nextOf(c, 'connack')
}

describe('enhanced authentication', () => {
  test('an Authentication Method the server does not support: CONNACK 0x8C and close [MQTT-4.12.0-1]', async (t) => {
    for (const hooks of [undefined, hooksWith(reverseNonce())]) {
      const { raw } = await v5Broker(t, {}, hooks)
      const c = raw()
      const connack = await c.connect({ protocolVersion: 5, clientId: 'kerberos', properties: { authenticationMethod: 'GS2-KRB5' } })
      assert.equal(connack.reasonCode, 0x8c, hooks === undefined ? 'no methods configured' : 'another method configured')
      await c.closed()
    }
  })

  test('challenge and response with MQTT.js: AUTH 0x18 with the same method [MQTT-4.12.0-2] [MQTT-4.12.0-3], then CONNACK 0 naming it [MQTT-4.12.0-5]', async (t) => {
    const steps: Array<Buffer | undefined> = []
    const { port } = await v5Broker(t, {}, hooksWith(reverseNonce(steps)))
    const client = mqttConnect({
      host: '127.0.0.1',
      port,
      protocolVersion: 5,
      clientId: 'mqttjs-auth',
      reconnectPeriod: 0,
      connectTimeout: 2000,
      properties: { authenticationMethod: METHOD, authenticationData: Buffer.from('hello') },
    })
    t.after(() => client.endAsync(true))
    const challenges: IAuthPacket[] = []
    client.handleAuth = (packet, callback) => {
      challenges.push(packet)
      const nonce = packet.properties?.authenticationData ?? Buffer.alloc(0)
      callback(undefined, { cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: METHOD, authenticationData: reversed(nonce) } })
    }
    const connack = await new Promise<IConnackPacket>((resolve, reject) => {
      client.once('connect', resolve)
      client.once('error', reject)
    })
    assert.equal(connack.reasonCode, 0)
    assert.equal(connack.properties?.authenticationMethod, METHOD)
    assert.deepEqual(connack.properties?.authenticationData, Buffer.from('welcome'))
    assert.equal(challenges.length, 1)
    assert.equal(challenges[0]?.reasonCode, 0x18)
    assert.equal(challenges[0]?.properties?.authenticationMethod, METHOD)
    // The method saw CONNECT's Authentication Data first, then the client's answer.
    assert.deepEqual(steps[0], Buffer.from('hello'))
    assert.equal(steps.length, 2)
    // And the connection works: a round trip through the broker.
    await client.subscribeAsync('after/auth', { qos: 1 })
    const got = new Promise<string>((resolve) => client.once('message', (_topic, payload) => resolve(payload.toString())))
    await client.publishAsync('after/auth', 'in', { qos: 1 })
    assert.equal(await got, 'in')
  })

  test('a wrong response: CONNACK 0x87 and close, no session [MQTT-4.12.0-4]', async (t) => {
    const { raw } = await v5Broker(t, {}, hooksWith(reverseNonce()))
    const c = raw()
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 60, clientId: 'liar', properties: { authenticationMethod: METHOD } }, 5)
    const challenge = await nextOf(c, 'auth')
    // The nonce as is, not reversed.
    sendAuth(c, 0x18, challenge.properties?.authenticationData)
    const connack = await nextOf(c, 'connack')
    assert.equal(connack.reasonCode, 0x87)
    await c.closed()
  })

  test('a client that goes silent mid-exchange is closed after 1.5 x its keepalive [MQTT-3.1.2-22], without DISCONNECT before CONNACK [MQTT-3.14.0-1]', async (t) => {
    const { raw } = await v5Broker(t, {}, hooksWith(reverseNonce()))
    const c = raw()
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 1, clientId: 'stalled', properties: { authenticationMethod: METHOD } }, 5)
    await nextOf(c, 'auth')
    // No answer to the challenge. Otherwise the half-authenticated connection is held for good:
    // the keepalive check and the 10 s CONNECT timeout would both pass it by.
    await c.closed(3500)
    // The broker may refuse in CONNACK before closing; it may not send DISCONNECT.
    const last = await c.next().catch(() => undefined)
    if (last !== undefined) {
      assert.ok(isCmd(last, 'connack'), `only a CONNACK refusal may precede the close, got ${last.cmd}`)
      assert.ok((last.reasonCode ?? 0) >= 0x80)
    }
  })

  test('only AUTH may come before the CONNACK: a PUBLISH during the exchange is a protocol error (section 4.12)', async (t) => {
    const { raw } = await v5Broker(t, {}, hooksWith(reverseNonce()))
    const c = raw()
    c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, keepalive: 60, clientId: 'hasty', properties: { authenticationMethod: METHOD } }, 5)
    await nextOf(c, 'auth')
    c.send({ cmd: 'publish', topic: 'early', qos: 0, dup: false, retain: false, payload: Buffer.from('x') }, 5)
    const connack = await nextOf(c, 'connack')
    assert.equal(connack.reasonCode, 0x82)
    await c.closed()
  })

  test('re-authentication: AUTH 0x19 after CONNACK, challenge AUTH 0x18, answer, then AUTH 0x00 from the server [MQTT-4.12.1-1]', async (t) => {
    const { raw } = await v5Broker(t, {}, hooksWith(reverseNonce()))
    const c = raw()
    assert.equal((await authenticate(c, 'reauth')).reasonCode, 0)
    sendAuth(c, 0x19, Buffer.from('again'))
    const challenge = await nextOf(c, 'auth')
    assert.equal(challenge.reasonCode, 0x18)
    assert.equal(challenge.properties?.authenticationMethod, METHOD)
    sendAuth(c, 0x18, reversed(challenge.properties?.authenticationData ?? Buffer.alloc(0)))
    const done = await nextOf(c, 'auth')
    assert.equal(done.reasonCode, 0)
    assert.equal(done.properties?.authenticationMethod, METHOD, 'every AUTH names the method [MQTT-4.12.0-5]')
    // Still connected.
    c.send({ cmd: 'pingreq' }, 5)
    assert.equal((await c.next()).cmd, 'pingresp')
  })

  test('a failed re-authentication ends the connection with DISCONNECT [MQTT-4.12.1-2]', async (t) => {
    const { raw } = await v5Broker(t, {}, hooksWith(reverseNonce()))
    const c = raw()
    assert.equal((await authenticate(c, 'reauth-fail')).reasonCode, 0)
    sendAuth(c, 0x19)
    assert.equal((await nextOf(c, 'auth')).reasonCode, 0x18)
    sendAuth(c, 0x18, Buffer.from('wrong'))
    const d = await serverDisconnect(c)
    assert.ok((d.reasonCode ?? 0) >= 0x80, `an error reason code, got 0x${(d.reasonCode ?? 0).toString(16)}`)
  })

  test('re-authentication with another Authentication Method is a protocol error: DISCONNECT 0x82 [MQTT-4.12.1-1]', async (t) => {
    const { raw } = await v5Broker(t, {}, hooksWith(reverseNonce()))
    const c = raw()
    assert.equal((await authenticate(c, 'switcher')).reasonCode, 0)
    sendAuth(c, 0x19, undefined, 'SCRAM-SHA-1')
    assert.equal((await serverDisconnect(c)).reasonCode, 0x82)
  })

  test('AUTH 0x18 outside an exchange (after CONNACK, no 0x19 first) is a protocol error: DISCONNECT 0x82 (section 4.12.1)', async (t) => {
    const { raw } = await v5Broker(t, {}, hooksWith(reverseNonce()))
    const c = raw()
    const connack = await authenticate(c, 'stray')
    assert.equal(connack.reasonCode, 0)
    // Continue what? The exchange ended with the CONNACK; only 0x19 starts a new one.
    sendAuth(c, 0x18, Buffer.from('stray'))
    assert.equal((await serverDisconnect(c)).reasonCode, 0x82)
  })

  test('Authentication Data without an Authentication Method in CONNECT is a protocol error: CONNACK 0x82 (section 3.1.2.11.10)', async (t) => {
    const { raw } = await v5Broker(t, {}, hooksWith(reverseNonce()))
    const c = raw()
    const connack = await c.connect({ protocolVersion: 5, clientId: 'data-only', properties: { authenticationData: Buffer.from('hello') } })
    assert.equal(connack.reasonCode, 0x82)
    await c.closed()
  })

  test('AUTH from a client whose CONNECT named no Authentication Method: DISCONNECT 0x82 [MQTT-4.12.0-7], and the server sent no AUTH [MQTT-4.12.0-6]', async (t) => {
    const { raw } = await v5Broker(t, {}, hooksWith(reverseNonce()))
    const c = raw()
    const connack = await c.connect({ protocolVersion: 5, clientId: 'plain' })
    assert.equal(connack.reasonCode, 0)
    assert.equal(connack.properties?.authenticationMethod, undefined, 'no method in CONNACK [MQTT-4.12.0-6]')
    sendAuth(c, 0x19)
    assert.equal((await serverDisconnect(c)).reasonCode, 0x82)
  })
})
