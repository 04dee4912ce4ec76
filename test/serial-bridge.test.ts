/**
 * The serial bridge end to end: a gateway on a real TCP port, a real pty pair from `socat`, the
 * emulated outpost-link device from firmware-bridge/ on the far end, and MQTT.js clients.
 * Readings reach subscribers, commands reach the device and its answers come back, an unplug
 * and replug is survived, and the availability and port-state topics follow all of it.
 */
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { connectAsync, type IClientOptions, type MqttClient } from 'mqtt'
import { defaultSerialPort } from '../src/config/defaults.js'
import type { SerialPortConfig } from '../src/config/serial-types.js'
import { tcpGateway } from './helpers/broker.js'
import { Inbox, type Received } from './helpers/inbox.js'
import { ptyPair, startEmulator, serialDir, type PtyPair } from './helpers/serial.js'

interface Setup {
  pair: PtyPair
  port: number
  client: MqttClient
  inbox: Inbox
}

function linkPort(path: string, overrides: Partial<SerialPortConfig> = {}): SerialPortConfig {
  return { ...defaultSerialPort('dev', { path }), framing: 'outpost-link', ...overrides }
}

async function mqttClient(t: TestContext, port: number, options: IClientOptions = {}): Promise<{ client: MqttClient; inbox: Inbox }> {
  const client = await connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, ...options })
  t.after(() => client.endAsync())
  return { client, inbox: new Inbox(client) }
}

async function setup(t: TestContext, overrides: Partial<SerialPortConfig> = {}, emulatorArgs: string[] = ['--interval', '50']): Promise<Setup> {
  const pair = await ptyPair(t, serialDir(t))
  const { port } = await tcpGateway(t, { serial: [linkPort(pair.a, overrides)] })
  const { client, inbox } = await mqttClient(t, port)
  await client.subscribeAsync({ 'sensors/#': { qos: 1 }, 'outpost/#': { qos: 1 } })
  startEmulator(t, pair.b, emulatorArgs)
  return { pair, port, client, inbox }
}

function json(m: Received): Record<string, unknown> {
  const v: unknown = JSON.parse(m.payload)
  assert.ok(typeof v === 'object' && v !== null)
  return v as Record<string, unknown>
}

const isReading = (m: Received): boolean => m.topic === 'sensors/emulated-1'

test('readings from the emulated device reach an MQTT subscriber as JSON, with a timestamp', async (t) => {
  const { inbox } = await setup(t)
  const first = json(await inbox.waitFor(isReading, 'a reading'))
  assert.deepEqual(Object.keys(first).sort(), ['counter', 'humidity', 'led', 'temperature', 'time'])
  assert.equal(typeof first.temperature, 'number')
  assert.equal(first.led, false)
  assert.ok(Date.now() - Date.parse(String(first.time)) < 5000, `time ${String(first.time)} is now`)
  // float32 readings are shown at float32's precision, not with conversion noise.
  assert.ok(String(first.temperature).replace(/^-?0\.|[-.]/g, '').length <= 7, `temperature ${String(first.temperature)}`)
  const counters = inbox.messages.filter(isReading).map((m) => Number(json(m).counter))
  await inbox.waitFor((m) => isReading(m) && Number(json(m).counter) >= (counters[0] ?? 0) + 3, 'three more readings')
  const online = await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/availability', 'availability')
  assert.equal(online.payload, 'online')
  const state = await inbox.waitFor((m) => m.topic === 'outpost/serial/dev/state' && m.payload.includes('open'), 'port state open')
  assert.deepEqual(JSON.parse(state.payload), { state: 'open' })
})

test('output `both`: one topic per field too, with the unit from HELLO as a user property for v5 subscribers', async (t) => {
  const pair = await ptyPair(t, serialDir(t))
  const { port } = await tcpGateway(t, { serial: [linkPort(pair.a, { mapping: { ...defaultSerialPort('x', { path: '' }).mapping, output: 'both' } })] })
  const { client, inbox } = await mqttClient(t, port, { protocolVersion: 5 })
  await client.subscribeAsync('sensors/#')
  startEmulator(t, pair.b, ['--interval', '50'])
  const temp = await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/temperature', 'the temperature topic')
  assert.ok(Number.isFinite(Number(temp.payload)), temp.payload)
  assert.deepEqual({ ...temp.properties?.userProperties }, { unit: '°C' })
  const led = await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/led', 'the led topic')
  assert.equal(led.payload, 'false')
  await inbox.waitFor(isReading, 'the JSON object as well')
})

test('a command over MQTT reaches the device; its ACK comes back on the response topic and the reading changes', async (t) => {
  const { client, inbox } = await setup(t)
  await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/availability' && m.payload === 'online', 'the device online')
  await client.publishAsync('sensors/emulated-1/set/led', 'on', { qos: 1 })
  const reply = json(await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/response', 'the command result'))
  assert.deepEqual(reply, { device: 'emulated-1', command: 'led', status: 'ack', attempts: 1 })
  await inbox.waitFor((m) => isReading(m) && json(m).led === true, 'a reading with the led on')
})

test('a JSON object on the base command topic sends one command per key', async (t) => {
  const { client, inbox } = await setup(t)
  await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/availability' && m.payload === 'online', 'the device online')
  await client.publishAsync('sensors/emulated-1/set', JSON.stringify({ led: true, interval: 60 }), { qos: 1 })
  const replies = () => inbox.on('sensors/emulated-1/response').map(json)
  await inbox.waitFor(() => replies().length === 2, 'two results')
  // `interval` is not a HELLO field, so without command_args its payload goes as raw text and
  // the device refuses the length; `led` is a declared bool field and is encoded as one.
  assert.equal(replies().find((r) => r.command === 'led')?.status, 'ack')
  assert.equal(replies().find((r) => r.command === 'interval')?.status, 'nak')
})

test('command_args encodes a payload for the device: interval as uint32 is accepted', async (t) => {
  const { client, inbox } = await setup(t, { commandArgs: { interval: 'uint32' } })
  await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/availability' && m.payload === 'online', 'the device online')
  await client.publishAsync('sensors/emulated-1/set/interval', '200')
  const reply = json(await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/response', 'the command result'))
  assert.equal(reply.status, 'ack')
  await client.publishAsync('sensors/emulated-1/set/interval', 'fast')
  const bad = json(await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/response' && m.payload.includes('invalid'), 'an invalid result'))
  assert.match(String(bad.reason), /interval: expected an integer/)
})

test('an unknown command gets the device NAK, with its code and message, on the response topic', async (t) => {
  const { client, inbox } = await setup(t)
  await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/availability' && m.payload === 'online', 'the device online')
  await client.publishAsync('sensors/emulated-1/set/reboot', '')
  const reply = json(await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/response', 'the command result'))
  assert.equal(reply.status, 'nak')
  assert.equal(reply.command, 'reboot')
  assert.equal(reply.code, 1)
  assert.equal(reply.attempts, 1)
})

test('v5: the result goes to the request Response Topic with its Correlation Data', async (t) => {
  const { port, inbox } = await setup(t)
  await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/availability' && m.payload === 'online', 'the device online')
  const { client: v5, inbox: v5Inbox } = await mqttClient(t, port, { protocolVersion: 5 })
  await v5.subscribeAsync('replies/me')
  await v5.publishAsync('sensors/emulated-1/set/led', '1', { qos: 1, properties: { responseTopic: 'replies/me', correlationData: Buffer.from('req-42') } })
  const reply = await v5Inbox.waitFor((m) => m.topic === 'replies/me', 'the reply')
  assert.equal(json(reply).status, 'ack')
  assert.deepEqual(reply.properties?.correlationData, Buffer.from('req-42'))
  assert.equal(inbox.on('sensors/emulated-1/response').length, 0, 'not also on the default response topic')
})

test('a device that does not answer: the CMD is sent again, then reported as a timeout', async (t) => {
  const pair = await ptyPair(t, serialDir(t))
  const { port } = await tcpGateway(t, { serial: [linkPort(pair.a, { commandTimeout: 0.1, commandAttempts: 3 })] })
  const { client, inbox } = await mqttClient(t, port)
  await client.subscribeAsync('sensors/#')
  const emulator = startEmulator(t, pair.b, ['--interval', '50'])
  await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/availability' && m.payload === 'online', 'the device online')
  // A stopped process keeps the pty open but reads nothing: a device that hangs.
  emulator.child.kill('SIGSTOP')
  t.after(() => void emulator.child.kill('SIGCONT'))
  const started = Date.now()
  await client.publishAsync('sensors/emulated-1/set/led', '1')
  const reply = json(await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/response', 'the command result'))
  assert.deepEqual(reply, { device: 'emulated-1', command: 'led', status: 'timeout', attempts: 3 })
  assert.ok(Date.now() - started >= 280, 'three attempts of 100 ms each')
  emulator.child.kill('SIGCONT')
  // The retries were the same bytes (same seq, same CRC): the device answers the first, and
  // answers the duplicates from its memory without switching again.
  await new Promise((r) => setTimeout(r, 300))
  assert.equal((emulator.log().match(/rx CMD seq=\d+ led 1 -> LED on/g) ?? []).length, 1, emulator.log())
  assert.equal((emulator.log().match(/rx CMD seq=\d+ led again: a retry/g) ?? []).length, 2, emulator.log())
})

test('a command for a device on no port is answered offline', async (t) => {
  const { client, inbox } = await setup(t)
  await client.publishAsync('sensors/ghost/set/led', '1')
  const reply = json(await inbox.waitFor((m) => m.topic === 'sensors/ghost/response', 'the command result'))
  assert.equal(reply.status, 'offline')
})

test('unplug and replug: the port waits and comes back within seconds; availability follows', async (t) => {
  const dir = serialDir(t)
  const first = await ptyPair(t, dir)
  const { port } = await tcpGateway(t, { serial: [linkPort(first.a)] })
  const { client, inbox } = await mqttClient(t, port)
  await client.subscribeAsync(['sensors/#', 'outpost/#'])
  const emulator = startEmulator(t, first.b, ['--interval', '50'])
  await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/availability' && m.payload === 'online', 'online')
  await emulator.stop()
  await first.stop()
  await inbox.waitFor((m) => m.topic === 'outpost/serial/dev/state' && json(m).state === 'waiting', 'port state waiting')
  await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/availability' && m.payload === 'offline', 'offline')
  const unpluggedAt = Date.now()
  const second = await ptyPair(t, dir)
  startEmulator(t, second.b, ['--interval', '50'])
  const readingsBefore = inbox.messages.length
  await inbox.waitFor((m, i = inbox.messages.indexOf(m)) => i >= readingsBefore && m.topic === 'sensors/emulated-1/availability' && m.payload === 'online', 'online again', 10_000)
  await inbox.waitFor((m) => inbox.messages.indexOf(m) >= readingsBefore && isReading(m), 'readings again')
  assert.ok(Date.now() - unpluggedAt < 8000, `back in ${Date.now() - unpluggedAt} ms`)
})

test('a device that goes silent is marked offline after availability_timeout', async (t) => {
  const { inbox } = await setup(t, { availabilityTimeout: 0.3 }, ['--interval', '50', '--count', '3', '--ping', '0'])
  await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/availability' && m.payload === 'online', 'online')
  await inbox.waitFor((m) => m.topic === 'sensors/emulated-1/availability' && m.payload === 'offline', 'offline after silence')
})

test('homeassistant: discovery configs for each HELLO field, retained, with unit, device class and availability', async (t) => {
  const { port } = await setup(t, { homeassistant: true })
  const { client, inbox } = await mqttClient(t, port)
  await client.subscribeAsync('homeassistant/#')
  const topic = 'homeassistant/sensor/outpost_dev_emulated-1/temperature/config'
  await inbox.waitFor((m) => m.topic === topic, 'the temperature config')
  // Retained, so a Home Assistant that starts later finds it.
  const { client: later, inbox: laterInbox } = await mqttClient(t, port)
  await later.subscribeAsync('homeassistant/#')
  const temp = await laterInbox.waitFor((m) => m.topic === topic, 'the retained temperature config')
  assert.equal(temp.retain, true)
  const c = json(temp)
  assert.equal(c.state_topic, 'sensors/emulated-1')
  assert.equal(c.value_template, '{{ value_json["temperature"] }}')
  assert.equal(c.unit_of_measurement, '°C')
  assert.equal(c.device_class, 'temperature')
  assert.equal(c.availability_topic, 'sensors/emulated-1/availability')
  assert.deepEqual(c.device, { identifiers: ['outpost_dev_emulated-1'], name: 'emulated-1', manufacturer: 'Outpost serial bridge', sw_version: 'emulator-1.0.0' })
  const led = json(await inbox.waitFor((m) => m.topic === 'homeassistant/binary_sensor/outpost_dev_emulated-1/led/config', 'the led config'))
  assert.equal(led.payload_on, 'true')
  assert.equal(json(await inbox.waitFor((m) => m.topic.endsWith('/humidity/config'), 'humidity')).device_class, 'humidity')
})
