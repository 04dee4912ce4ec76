import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { memoryBroker, tcpGateway } from './helpers/broker.js'
import { RawClient } from './helpers/raw-client.js'


for (const transport of ['memory', 'tcp'] as const) {
  describe(`over ${transport} streams`, () => {
    test('CONNECT/CONNACK over a real socket on port 0', async (t) => {
      const { port } = await tcpGateway(t)
      const c = await RawClient.tcp(port)
      t.after(() => c.end())
      const ack = await c.connect({ clientId: 'tcp-1' })
      assert.equal(ack.returnCode, 0)
      assert.equal(ack.sessionPresent, false)
    })

    test('the first packet must be CONNECT [MQTT-3.1.0-1]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const c = client()
      c.sendHex('c000') // PINGREQ
      await c.closed()
    })

    test('a second CONNECT closes the connection [MQTT-3.1.0-2]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const c = client()
      await c.connect({ clientId: 'twice' })
      c.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, keepalive: 60, clientId: 'twice' })
      await c.closed()
    })

    test('unknown protocol name: close without CONNACK [MQTT-3.1.2-1]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const c = client()
      c.sendHex('10 0D 0004 4D515455 04 02 000A 0001 70')
      await c.closed()
      assert.equal(await c.quiet(10), true)
    })

    test('unsupported protocol level: CONNACK 0x01 then close [MQTT-3.1.2-2]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      for (const hex of ['10 0D 0004 4D515454 06 02 000A 0001 70', '10 0F 0006 4D5149736470 02 02 000A 0001 70']) {
        const c = client()
        c.sendHex(hex)
        const p = await c.next()
        assert.equal(p.cmd, 'connack')
        assert.equal(p.cmd === 'connack' && p.returnCode, 1)
        await c.closed()
      }
    })

    test('reserved CONNECT flag must be 0 [MQTT-3.1.2-3]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const c = client()
      c.sendHex('10 0D 0004 4D515454 04 03 000A 0001 70')
      await c.closed()
    })

    test('MQTT 3.1 (MQIsdp, level 3) is accepted', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const c = client()
      const ack = await c.connect({ protocolId: 'MQIsdp', protocolVersion: 3, clientId: 'v31' })
      assert.equal(ack.returnCode, 0)
    })

    test('zero-length client id with clean session gets an assigned id [MQTT-3.1.3-6]', async (t) => {
      const { client, broker } = await memoryBroker(t, {}, undefined, transport)
      const c = client()
      const ack = await c.connect({ clientId: '' })
      assert.equal(ack.returnCode, 0)
      assert.equal(broker.connectedCount, 1)
    })

    test('zero-length client id without clean session: CONNACK 0x02 and close [MQTT-3.1.3-8]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const c = client()
      c.sendHex('10 0C 0004 4D515454 04 00 000A 0000') // mqtt-packet will not encode this CONNECT
      const ack = await c.next()
      assert.equal(ack.cmd === 'connack' && ack.returnCode, 2)
      await c.closed()
    })

    test('will flag 0 with will QoS or retain set is malformed [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      for (const flags of ['0A', '12']) {
        const c = client()
        c.sendHex(`10 0D 0004 4D515454 04 ${flags} 000A 0001 70`)
        await c.closed()
      }
    })

    test('will QoS 3 is malformed [MQTT-3.1.2-14]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const c = client()
      c.sendHex('10 13 0004 4D515454 04 1E 000A 0001 70 0001 70 0001 70')
      await c.closed()
    })

    test('password without user name is refused in 3.1.1 [MQTT-3.1.2-22]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const c = client()
      c.sendHex('10 10 0004 4D515454 04 42 000A 0001 70 0001 70')
      await c.closed()
    })

    test('bytes beyond the announced fields are malformed [MQTT-3.1.2-18] [MQTT-3.1.2-20]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      for (const hex of ['10 10 0004 4D515454 04 02 000A 0001 70 0001 70', '10 13 0004 4D515454 04 82 000A 0001 70 0001 70 0001 70']) {
        const c = client()
        c.sendHex(hex)
        await c.closed()
      }
    })

    test('client id with ill-formed UTF-8 or U+0000 closes the connection [MQTT-1.5.3-1] [MQTT-1.5.3-2]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      for (const id of ['746F700000', '746FEDA080']) {
        const c = client()
        c.sendHex(`10 11 0004 4D515454 04 02 000A 0005 ${id}`)
        await c.closed()
      }
    })

    test('allow_anonymous false without credentials: CONNACK 0x05', async (t) => {
      const { client } = await memoryBroker(t, { allowAnonymous: false }, undefined, transport)
      const c = client()
      const ack = await c.connect({ clientId: 'anon' })
      assert.equal(ack.returnCode, 5)
      await c.closed()
    })

    test('authentication hook: bad credentials get CONNACK 0x04, good ones 0x00', async (t) => {
      const { client } = await memoryBroker(t, {}, {
        authenticate: (req) => (req.username === 'u' && req.password?.toString() === 'p' ? 'ok' : 'bad-credentials'),
      }, transport)
      const bad = client()
      assert.equal((await bad.connect({ clientId: 'a', username: 'u', password: Buffer.from('x') })).returnCode, 4)
      const good = client()
      assert.equal((await good.connect({ clientId: 'b', username: 'u', password: Buffer.from('p') })).returnCode, 0)
    })

    test('keepalive above max_keepalive is refused for 3.1.1 clients, as Mosquitto does', async (t) => {
      const { client } = await memoryBroker(t, { maxKeepalive: 30 }, undefined, transport)
      const c = client()
      assert.equal((await c.connect({ clientId: 'ka', keepalive: 60 })).returnCode, 2)
      const zero = client()
      assert.equal((await zero.connect({ clientId: 'ka0', keepalive: 0 })).returnCode, 2, 'keepalive 0 exceeds a lowered cap')
    })

    test('keepalive 0 is accepted with the default max_keepalive', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const c = client()
      assert.equal((await c.connect({ clientId: 'ka0', keepalive: 0 })).returnCode, 0)
    })

    test('a client silent for 1.5 x keepalive is closed and its will published [MQTT-3.1.2-24]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const watcher = client()
      await watcher.connect({ clientId: 'watcher' })
      await watcher.subscribe('will/ka', 0)
      const c = client()
      const started = Date.now()
      await c.connect({ clientId: 'sleepy', keepalive: 1, will: { topic: 'will/ka', payload: Buffer.from('gone'), qos: 0, retain: false } })
      await c.closed(4000)
      const elapsed = Date.now() - started
      assert.ok(elapsed >= 1400, `closed after ${elapsed} ms, before 1.5 x keepalive`)
      const will = await watcher.next()
      assert.equal(will.cmd === 'publish' && will.payload.toString(), 'gone')
    })

    test('PINGREQ gets PINGRESP [MQTT-3.12.4-1] and keeps the connection alive', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const c = client()
      await c.connect({ clientId: 'pinger', keepalive: 1 })
      for (let i = 0; i < 4; i++) {
        await new Promise((r) => setTimeout(r, 500))
        c.sendHex('c000')
        assert.equal((await c.next()).cmd, 'pingresp')
      }
      assert.equal(c.ended, false)
    })

    test('takeover: a new connection with the same id closes the old one and publishes its will [MQTT-3.1.4-2]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const watcher = client()
      await watcher.connect({ clientId: 'w' })
      await watcher.subscribe('status/#', 0)
      const first = client()
      await first.connect({ clientId: 'dup', will: { topic: 'status/dup', payload: Buffer.from('lost'), qos: 0, retain: false } })
      const second = client()
      assert.equal((await second.connect({ clientId: 'dup' })).returnCode, 0)
      await first.closed()
      const will = await watcher.next()
      assert.equal(will.cmd === 'publish' && will.payload.toString(), 'lost')
    })

    test('DISCONNECT closes without publishing the will [MQTT-3.14.4-3]', async (t) => {
      const { client } = await memoryBroker(t, {}, undefined, transport)
      const watcher = client()
      await watcher.connect({ clientId: 'w' })
      await watcher.subscribe('status/#', 0)
      const c = client()
      await c.connect({ clientId: 'polite', will: { topic: 'status/polite', payload: Buffer.from('x'), qos: 0, retain: false } })
      await c.disconnect()
      assert.equal(await watcher.quiet(200), true)
    })

    test('max_connections refuses connections past the limit', async (t) => {
      const { client, broker } = await memoryBroker(t, { maxConnections: 2 }, undefined, transport)
      const a = client()
      const b = client()
      await a.connect({ clientId: 'a' })
      await b.connect({ clientId: 'b' })
      const c = client()
      await c.closed()
      assert.equal(broker.stats.connectionsRefused, 1)
    })
  })
}
