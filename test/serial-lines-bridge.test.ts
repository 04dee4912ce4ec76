/**
 * `lines` ports end to end: a text device on a real pty pair (the test writes its lines), a
 * gateway on a real TCP port, MQTT.js subscribers. Parsing, device ids from a field, commands
 * written as lines, and bad input counted without stopping good input.
 */
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { connectAsync, type MqttClient } from 'mqtt'
import type { SerialPort } from 'serialport'
import { defaultSerialPort } from '../src/config/defaults.js'
import type { LinesConfig, SerialPortConfig } from '../src/config/serial-types.js'
import type { Gateway } from '../src/gateway.js'
import { tcpGateway } from './helpers/broker.js'
import { Inbox } from './helpers/inbox.js'
import { openPeer, ptyPair, serialDir } from './helpers/serial.js'

interface Setup {
  gateway: Gateway
  client: MqttClient
  inbox: Inbox
  device: SerialPort
}

async function setup(t: TestContext, lines: Partial<LinesConfig>, overrides: Partial<SerialPortConfig> = {}): Promise<Setup> {
  const pair = await ptyPair(t, serialDir(t))
  const base = defaultSerialPort('bench', { path: pair.a })
  const config: SerialPortConfig = { ...base, availabilityTimeout: 0, ...overrides, lines: { ...base.lines, ...lines } }
  const { port, gateway } = await tcpGateway(t, { serial: [config] })
  const client = await connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 })
  t.after(() => client.endAsync())
  const inbox = new Inbox(client)
  await client.subscribeAsync({ 'sensors/#': { qos: 1 }, 'outpost/#': { qos: 1 } })
  // The device end opens once the gateway's end is open, as a board powered after the Pi would.
  await inbox.waitFor((m) => m.topic === 'outpost/serial/bench/state' && m.payload.includes('"open"'), 'port open')
  const device = await openPeer(t, pair.b)
  return { gateway, client, inbox, device }
}

function counters(gateway: Gateway): Record<string, number> {
  const port = gateway.serial?.ports[0]
  assert.ok(port !== undefined)
  return port.counters()
}

test('JSON lines from a device named in the config become readings on its topic; it goes online', async (t) => {
  const { inbox, device } = await setup(t, { device: 'boiler' })
  device.write('{"t":21.5,"h":40,"burner":true}\n')
  const m = await inbox.waitFor((x) => x.topic === 'sensors/boiler', 'a reading')
  const obj = JSON.parse(m.payload) as Record<string, unknown>
  assert.deepEqual({ ...obj, time: undefined }, { t: 21.5, h: 40, burner: true, time: undefined })
  await inbox.waitFor((x) => x.topic === 'sensors/boiler/availability' && x.payload === 'online', 'online')
})

test('key=value lines from a radio hub: the device id comes from a field of each line', async (t) => {
  const { inbox, device } = await setup(t, { format: { format: 'key-value' }, deviceField: 'id' })
  device.write('id=node7 t=3.5 door=open\r\nid=node9 t=4\n')
  const seven = await inbox.waitFor((x) => x.topic === 'sensors/node7', 'node7')
  // `\r` is trimmed by the key=value parser, so a CRLF device works with the default delimiter.
  assert.deepEqual({ ...(JSON.parse(seven.payload) as object), time: 0 }, { t: 3.5, door: 'open', time: 0 })
  await inbox.waitFor((x) => x.topic === 'sensors/node9', 'node9')
  await inbox.waitFor((x) => x.topic === 'sensors/node9/availability' && x.payload === 'online', 'node9 online')
})

test('CSV lines with configured columns; a line with the wrong number of cells is counted and skipped', async (t) => {
  const { gateway, inbox, device } = await setup(t, { device: 'meter', format: { format: 'csv', columns: ['volts', 'amps'] } }, {
    mapping: { ...defaultSerialPort('x', { path: '' }).mapping, output: 'fields' },
  })
  device.write('230.1,1.5,extra\n229.8,1.25\n')
  const amps = await inbox.waitFor((x) => x.topic === 'sensors/meter/amps', 'amps')
  assert.equal(amps.payload, '1.25')
  assert.equal(counters(gateway).shape, 1)
  assert.equal(counters(gateway).lines, 1)
})

test('a command to a line device is written as a line, and `sent` is published on the response topic', async (t) => {
  const { client, inbox, device } = await setup(t, { device: 'boiler' })
  let written = ''
  device.on('data', (c: Buffer) => (written += c.toString()))
  await client.publishAsync('sensors/boiler/set/setpoint', '21', { qos: 1 })
  const reply = await inbox.waitFor((x) => x.topic === 'sensors/boiler/response', 'the result')
  assert.deepEqual(JSON.parse(reply.payload), { device: 'boiler', command: 'setpoint', status: 'sent' })
  const deadline = Date.now() + 3000
  while (!written.includes('\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  assert.equal(written, 'setpoint 21\n')
  // On the base topic the payload is the whole line.
  await client.publishAsync('sensors/boiler/set', 'RESET')
  while (!written.endsWith('RESET\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  assert.equal(written, 'setpoint 21\nRESET\n')
})

test('garbage, invalid UTF-8 and an over-long line are counted; the next good line still gets through', async (t) => {
  const { gateway, inbox, device } = await setup(t, { device: 'boiler', maxLength: 64 })
  device.write(Buffer.concat([Buffer.from('not json at all\n'), Buffer.of(0xff, 0xfe, 0x0a), Buffer.alloc(5000, 0x41), Buffer.from('\n{"t":1}\n')]))
  await inbox.waitFor((x) => x.topic === 'sensors/boiler', 'the good line')
  const c = counters(gateway)
  assert.equal(c.syntax, 1)
  assert.equal(c['bad-utf8'], 1)
  assert.equal(c['too-long'], 1)
  assert.equal(c.lines, 1)
})

test('a port whose lines carry no device field counts the line and publishes nothing for it', async (t) => {
  const { gateway, inbox, device } = await setup(t, { deviceField: 'id' })
  device.write('{"t":1}\n{"id":"x","t":2}\n')
  const m = await inbox.waitFor((x) => x.topic === 'sensors/x', 'the line with an id')
  assert.equal((JSON.parse(m.payload) as { t: number }).t, 2)
  assert.equal(counters(gateway)['no-device'], 1)
})

test('homeassistant on a line device: each field is announced when first seen, with its own state topic for output fields', async (t) => {
  const { client, inbox, device } = await setup(t, { device: 'boiler' }, {
    homeassistant: true,
    mapping: { ...defaultSerialPort('x', { path: '' }).mapping, output: 'fields', fields: { t: { unit: '°C' } } },
  })
  await client.subscribeAsync('homeassistant/#')
  device.write('{"t":21}\n')
  const t1 = JSON.parse((await inbox.waitFor((m) => m.topic === 'homeassistant/sensor/outpost_bench_boiler/t/config', 't config')).payload) as Record<string, unknown>
  assert.equal(t1.state_topic, 'sensors/boiler/t')
  assert.equal(t1.value_template, undefined, 'a field topic carries the bare value')
  assert.equal(t1.device_class, 'temperature')
  device.write('{"t":22,"burner":true}\n')
  await inbox.waitFor((m) => m.topic === 'homeassistant/binary_sensor/outpost_bench_boiler/burner/config', 'burner config')
  assert.equal(inbox.messages.filter((m) => m.topic.endsWith('/t/config')).length, 1, 't is announced once')
})
