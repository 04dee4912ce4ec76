/**
 * The whole gateway in one picture: a device on a serial line (the emulator on a socat pty), its
 * readings forwarded to a cloud Mosquitto over TLS, and a command from the cloud going down to
 * the device, its ACK coming back up.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { defaultSerialPort, defaultUpstream } from '../src/config/defaults.js'
import type { UpstreamConfig } from '../src/config/upstream-types.js'
import { makeCerts } from '../scripts/lib/certs.js'
import { tcpGateway } from './helpers/broker.js'
import { cloudClient, startCloudBroker } from './helpers/cloud-broker.js'
import { tempDir } from './helpers/outpost-process.js'
import { ptyPair, serialDir, startEmulator } from './helpers/serial.js'

test('serial device → cloud over TLS, and a cloud command → device with its ACK back up', async (t) => {
  const certs = await makeCerts(tempDir(t, 'outpost-certs-'))
  const cloud = await startCloudBroker(t, { tls: { server: certs.server } })
  const pair = await ptyPair(t, serialDir(t))
  const upstream: UpstreamConfig = {
    ...defaultUpstream('cloud', `mqtts://localhost:${cloud.tlsPort}`),
    tls: { caFile: certs.ca.cert, certFile: undefined, keyFile: undefined, serverName: undefined, verify: true },
    prefix: 'gateways/{gateway_id}/',
    topics: [
      { pattern: 'sensors/#', direction: 'out', qos: 1, localPrefix: '', remotePrefix: '' },
      { pattern: 'sensors/+/set/#', direction: 'in', qos: 1, localPrefix: '', remotePrefix: '' },
    ],
    reconnectMin: 0.05,
    reconnectMax: 0.5,
  }
  await tcpGateway(t, { gatewayId: 'barn', upstream: [upstream], serial: [{ ...defaultSerialPort('uart', { path: pair.a }), framing: 'outpost-link' }] })
  const { client, inbox } = await cloudClient(t, cloud, { tls: { ca: certs.ca.cert } })
  await client.subscribeAsync('gateways/barn/sensors/#', { qos: 1 })
  startEmulator(t, pair.b, ['--interval', '100'])

  const reading = await inbox.waitFor((m) => m.topic === 'gateways/barn/sensors/emulated-1', 'a reading in the cloud', 10_000)
  assert.equal((JSON.parse(reading.payload) as { led: boolean }).led, false)
  await client.publishAsync('gateways/barn/sensors/emulated-1/set/led', 'on', { qos: 1 })
  const reply = await inbox.waitFor((m) => m.topic === 'gateways/barn/sensors/emulated-1/response', 'the ACK in the cloud', 10_000)
  assert.deepEqual(JSON.parse(reply.payload), { device: 'emulated-1', command: 'led', status: 'ack', attempts: 1 })
  await inbox.waitFor((m) => m.topic === 'gateways/barn/sensors/emulated-1' && (JSON.parse(m.payload) as { led: boolean }).led, 'a reading with the LED on')
  // The command came in through the bridge and did not go back up as if it were local traffic:
  // the one copy is the cloud client's own (it subscribes to what it publishes). Anything the
  // outbox sent after it (the ACK, the reading with the LED on) is in already, so a bounce would be too.
  assert.equal(inbox.on('gateways/barn/sensors/emulated-1/set/led').length, 1)
})
