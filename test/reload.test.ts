/**
 * Reloading the config under a running gateway, in process: serial mappings change with the port
 * open (a real pty from socat, the emulated device on the far end), ports come and go, bridge topic
 * rules change against a real Mosquitto without the outbox losing what it holds, a link restarts
 * for new connection settings, an invalid file changes nothing and every problem is logged, and a
 * key that needs a restart is warned about.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { connectAsync, type MqttClient } from 'mqtt'
import { defaultConfig, defaultListener, defaultSerialPort, defaultUpstream } from '../src/config/defaults.js'
import { loadConfigFile } from '../src/config/load.js'
import type { SerialPortConfig } from '../src/config/serial-types.js'
import type { OutpostConfig } from '../src/config/types.js'
import type { TopicRule, UpstreamConfig } from '../src/config/upstream-types.js'
import { startGateway, type Gateway } from '../src/gateway.js'
import { reloadFromFile } from '../src/reload.js'
import type { PortBridge } from '../src/serial/port-bridge.js'
import { cloudClient, startCloudBroker } from './helpers/cloud-broker.js'
import { Inbox, type Received } from './helpers/inbox.js'
import { LogCapture } from './helpers/log-capture.js'
import { tempDir } from './helpers/outpost-process.js'
import { ptyPair, serialDir, startEmulator } from './helpers/serial.js'

function baseConfig(dataDir: string, overrides: Partial<OutpostConfig> = {}): OutpostConfig {
  return { ...defaultConfig(), sysInterval: 0, dataDir, gatewayId: 'pi-1', ...overrides, listeners: [defaultListener('mqtt', 0, '127.0.0.1')] }
}

async function start(t: TestContext, config: OutpostConfig, logs: LogCapture): Promise<{ gw: Gateway; port: number }> {
  const gw = await startGateway(config, logs.logger)
  t.after(() => gw.close())
  return { gw, port: (gw.addresses()[0] as AddressInfo).port }
}

async function client(t: TestContext, port: number): Promise<{ client: MqttClient; inbox: Inbox }> {
  const c = await connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 })
  t.after(() => c.endAsync(true))
  return { client: c, inbox: new Inbox(c) }
}

const after = (inbox: Inbox, first: Received): Received[] => inbox.messages.slice(inbox.messages.indexOf(first))
/** Waits until `check` holds for the messages received since index `mark`. */
const since = (inbox: Inbox, mark: number, check: (m: Received[]) => boolean, what: string): Promise<void> => inbox.waitUntil(() => check(inbox.messages.slice(mark)), what)
const has = (topic: string, payload: (p: string) => boolean) => (ms: Received[]): boolean => ms.some((m) => m.topic === topic && payload(m.payload))
const states = (messages: Received[]): string[] => messages.filter((m) => m.topic === 'outpost/serial/dev/state').map((m) => String((JSON.parse(m.payload) as { state: string }).state))
const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

test('a serial mapping change applies with the port open: readings move to the new topic, the device stays online', async (t) => {
  const pair = await ptyPair(t, serialDir(t))
  const dataDir = tempDir(t)
  const logs = new LogCapture('info')
  const serialPort = (overrides: Partial<SerialPortConfig> = {}): SerialPortConfig => ({ ...defaultSerialPort('dev', { path: pair.a }), framing: 'outpost-link', ...overrides })
  const { gw, port } = await start(t, baseConfig(dataDir, { serial: [serialPort()] }), logs)
  const { client: c, inbox } = await client(t, port)
  await c.subscribeAsync({ 'sensors/#': { qos: 1 }, 'plant/#': { qos: 1 }, 'outpost/#': { qos: 1 } })
  startEmulator(t, pair.b, ['--interval', '50'])
  await inbox.waitFor((m) => m.topic === 'sensors/emulated-1', 'a reading on the old topic')
  const portBefore = gw.serial?.ports[0]
  const linkLines = logs.count((l) => l.msg === 'serial port state')

  const mapping = { ...serialPort().mapping, topic: 'plant/{port}/{device}' }
  const report = await gw.reload(baseConfig(dataDir, { serial: [serialPort({ mapping })] }))
  assert.deepEqual(report.serial, { changed: ['dev'], reopened: [], added: [], removed: [] })
  const first = await inbox.waitFor((m) => m.topic === 'plant/dev/emulated-1', 'a reading on the new topic')
  await inbox.waitUntil(() => inbox.on('plant/dev/emulated-1').length >= 5, 'five readings on the new topic')
  const later = after(inbox, first)
  assert.deepEqual(later.filter((m) => m.topic === 'sensors/emulated-1'), [], 'nothing more on the old topic')
  assert.deepEqual(later.filter((m) => m.topic === 'sensors/emulated-1/availability'), [], 'the device never went offline')
  assert.deepEqual(states(later), [], 'the port state never changed')
  assert.equal(gw.serial?.ports[0], portBefore, 'the same port')
  assert.equal(logs.count((l) => l.msg === 'serial port state'), linkLines, 'the link was not closed or reopened')
  await logs.waitFor((l) => l.msg === 'reloaded: listeners 1, serial ports 1 changed', 'the summary line')
})

test('serial ports added (the module loaded then), reopened for new line settings, and removed (devices offline, port stopped)', async (t) => {
  const pair = await ptyPair(t, serialDir(t))
  const dataDir = tempDir(t)
  const logs = new LogCapture('info')
  const serialPort = (overrides: Partial<SerialPortConfig> = {}): SerialPortConfig => ({ ...defaultSerialPort('dev', { path: pair.a }), framing: 'outpost-link', ...overrides })
  const { gw, port } = await start(t, baseConfig(dataDir), logs)
  // Read through a call: a getter the reload changes, which the compiler would narrow to undefined.
  const ports = (): readonly PortBridge[] | undefined => gw.serial?.ports
  assert.equal(ports(), undefined)
  const { client: c, inbox } = await client(t, port)
  await c.subscribeAsync({ 'sensors/#': { qos: 1 }, 'outpost/#': { qos: 1 } })
  startEmulator(t, pair.b, ['--interval', '50'])

  const added = await gw.reload(baseConfig(dataDir, { serial: [serialPort()] }))
  assert.deepEqual(added.serial.added, ['dev'])
  await inbox.waitFor((m) => m.topic === 'sensors/emulated-1', 'a reading from the added port')
  const opened = ports()?.[0]
  assert.ok(opened !== undefined)

  let mark = inbox.messages.length
  const reopened = await gw.reload(baseConfig(dataDir, { serial: [serialPort({ baudRate: 57600 })] }))
  assert.deepEqual(reopened.serial, { changed: [], reopened: ['dev'], added: [], removed: [] })
  assert.notEqual(ports()?.[0], opened, 'a new port')
  assert.equal(ports()?.[0]?.config.baudRate, 57600)
  await since(inbox, mark, (ms) => states(ms).join() === 'stopped,waiting,open', 'the port stopped, then open again')
  const reading = inbox.messages.length
  await since(inbox, reading, has('sensors/emulated-1', () => true), 'a reading after the reopen')

  mark = inbox.messages.length
  const removed = await gw.reload(baseConfig(dataDir, { serial: [] }))
  assert.deepEqual(removed.serial.removed, ['dev'])
  assert.equal(ports()?.length, 0)
  await since(inbox, mark, (ms) => states(ms).join() === 'stopped' && has('sensors/emulated-1/availability', (p) => p === 'offline')(ms), 'the port stopped, the device offline')
  const gone = inbox.messages.length
  // The device keeps sending every 50 ms; a closed port reads none of it.
  await delay(500)
  assert.deepEqual(inbox.messages.slice(gone).filter((m) => m.topic === 'sensors/emulated-1'), [], 'no reading after the port was removed')
})

const rule = (pattern: string, direction: TopicRule['direction']): TopicRule => ({ pattern, direction, qos: 1, localPrefix: '', remotePrefix: '' })

async function bridgeSetup(t: TestContext): Promise<{ gw: Gateway; port: number; logs: LogCapture; config: (u: Partial<UpstreamConfig>) => OutpostConfig; cloud: Awaited<ReturnType<typeof startCloudBroker>> }> {
  const cloud = await startCloudBroker(t, { logTypes: ['error', 'warning', 'notice', 'information'] })
  const dataDir = tempDir(t)
  const logs = new LogCapture('info')
  const config = (u: Partial<UpstreamConfig>): OutpostConfig =>
    baseConfig(dataDir, { upstream: [{ ...defaultUpstream('cloud', cloud.url), topics: [rule('a/#', 'out'), rule('cmd/#', 'in')], prefix: 'gw/', reconnectMin: 0.05, reconnectMax: 0.5, ...u }] })
  const { gw, port } = await start(t, config({}), logs)
  await logs.waitFor((l) => l.msg === 'upstream connected', 'the bridge connected')
  return { gw, port, logs, config, cloud }
}

const outboxBacklog = (gw: Gateway): number => gw.upstream[0]?.stats().backlogMessages ?? -1

test('bridge rules change while the cloud is away: what the outbox holds still goes, a new topic is forwarded, a dropped one is not', async (t) => {
  const { gw, port, logs, config, cloud } = await bridgeSetup(t)
  const consumer = await cloudClient(t, cloud, { mqtt: { clientId: 'consumer', clean: false } })
  await consumer.client.subscribeAsync('gw/#', { qos: 1 })
  await consumer.client.endAsync()
  await cloud.stop()
  await logs.waitFor((l) => l.msg === 'upstream link lost', 'the link lost')

  const { client: local } = await client(t, port)
  for (let i = 0; i < 5; i++) await local.publishAsync(`a/${i}`, String(i), { qos: 1 })
  await local.publishAsync('b/before', 'not forwarded yet', { qos: 1 })
  assert.equal(outboxBacklog(gw), 5)

  const report = await gw.reload(config({ topics: [rule('b/#', 'out'), rule('cmd/#', 'in')] }))
  assert.deepEqual(report.bridges.rules, ['cloud'])
  assert.deepEqual(report.bridges.link, [], 'the link is not restarted for rules')
  assert.equal(outboxBacklog(gw), 5, 'nothing queued was lost')
  await local.publishAsync('a/after', 'no longer forwarded', { qos: 1 })
  await local.publishAsync('b/after', 'forwarded now', { qos: 1 })
  assert.equal(outboxBacklog(gw), 6)

  await cloud.start()
  const back = await cloudClient(t, cloud, { mqtt: { clientId: 'consumer', clean: false } })
  await back.inbox.waitFor((m) => m.topic === 'gw/b/after', 'the newly forwarded topic upstream', 10_000)
  assert.deepEqual(back.inbox.messages.map((m) => m.topic), ['gw/a/0', 'gw/a/1', 'gw/a/2', 'gw/a/3', 'gw/a/4', 'gw/b/after'])
  await logs.waitFor((l) => l.msg === 'outbox drained', 'the outbox drained')
  assert.equal(outboxBacklog(gw), 0)
})

test('bridge `in` rules change with the link up (no reconnect); new connection settings restart the link; bridges removed and added', async (t) => {
  const { gw, port, logs, config, cloud } = await bridgeSetup(t)
  const { client: local, inbox } = await client(t, port)
  await local.subscribeAsync({ 'cmd/#': { qos: 1 }, 'ctl/#': { qos: 1 } })
  const remote = await cloudClient(t, cloud)
  await remote.client.publishAsync('gw/cmd/1', 'x', { qos: 1 })
  await inbox.waitFor((m) => m.topic === 'cmd/1', 'a command through the first rule')

  const ctl = { topics: [rule('a/#', 'out'), rule('ctl/#', 'in')] }
  const report = await gw.reload(config(ctl))
  assert.deepEqual([report.bridges.rules, report.bridges.link], [['cloud'], []])
  await remote.client.publishAsync('gw/cmd/2', 'x', { qos: 1 })
  await remote.client.publishAsync('gw/ctl/1', 'x', { qos: 1 })
  const ctl1 = await inbox.waitFor((m) => m.topic === 'ctl/1', 'a command through the new rule')
  assert.deepEqual(inbox.messages.filter((m) => m.topic === 'cmd/2'), [], 'the old rule no longer brings anything in')
  assert.ok(inbox.messages.indexOf(ctl1) > 0)
  assert.equal(logs.count((l) => l.msg === 'upstream connected'), 1, 'the link stayed up')

  const restarted = await gw.reload(config({ ...ctl, keepalive: 30, maxQueuedMessages: 500 }))
  assert.deepEqual([restarted.bridges.link, restarted.bridges.outbox], [['cloud'], ['cloud']])
  await logs.waitFor((l) => l.msg === 'upstream connected' && logs.count((m) => m.msg === 'upstream connected') === 2, 'the link up again')
  const consumer = await cloudClient(t, cloud)
  await consumer.client.subscribeAsync('gw/#', { qos: 1 })
  await local.publishAsync('a/1', 'after restart', { qos: 1 })
  await consumer.inbox.waitFor((m) => m.topic === 'gw/a/1', 'a message upstream on the new link')

  const removed = await gw.reload({ ...config({}), upstream: [] })
  assert.deepEqual(removed.bridges.removed, ['cloud'])
  assert.equal(gw.upstream.length, 0)
  assert.deepEqual(gw.broker.sessionIdsWithPrefix('$bridge/'), [], 'the outbox is gone')
  await logs.waitFor((l) => l.msg === 'removed the outbox of a bridge that is no longer configured', 'the outbox removal logged')

  const readded = await gw.reload(config(ctl))
  assert.deepEqual(readded.bridges.added, ['cloud'])
  await local.publishAsync('a/2', 'again', { qos: 1 })
  await consumer.inbox.waitFor((m) => m.topic === 'gw/a/2', 'a message through the added bridge')
})

test('an invalid file changes nothing and logs every problem; a key that needs a restart is warned about, the rest applies', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'outpost.yaml')
  const head = `listeners:\n  - protocol: mqtt\n    port: 0\n    bind: 127.0.0.1\ndata_dir: ${join(dir, 'data')}\nsys_interval: 0\n`
  writeFileSync(file, head)
  const logs = new LogCapture('info')
  const { gw, port } = await start(t, loadConfigFile(file), logs)

  // Lines 7 to 10: one valid change and three problems.
  writeFileSync(file, `${head}max_subscriptions: 1\nmax_inflight: many\nqueue_full_policy: drop_newest\nmax_topic_level: 3\n`)
  assert.equal(await reloadFromFile(gw, file, {}, logs.logger), undefined)
  const problems = logs.lines.filter((l) => l.msg?.startsWith('reload failed: ') === true)
  assert.deepEqual(problems.map((l) => [l.line, l.field]), [[8, 'max_inflight'], [9, 'queue_full_policy'], [10, 'max_topic_level']])
  for (const p of problems) assert.ok(p.msg?.startsWith(`reload failed: ${file}:${String(p.line)}:`), p.msg)
  await logs.waitFor((l) => l.msg === 'config not reloaded; still running the previous one' && l.problems === 3, 'the summary')
  const { client: c } = await client(t, port)
  await c.subscribeAsync(['x/1', 'x/2'])
  assert.equal(gw.broker.config.maxSubscriptions, 0, 'max_subscriptions was not applied')

  writeFileSync(file, `${head.replace(join(dir, 'data'), join(dir, 'other')).replace('sys_interval: 0', 'sys_interval: 5')}max_subscriptions: 1\n`)
  const report = await reloadFromFile(gw, file, {}, logs.logger)
  assert.deepEqual(report?.settings, ['max_subscriptions'])
  assert.deepEqual(report?.restart, ['data_dir', 'sys_interval'])
  const warned = logs.lines.filter((l) => typeof l.msg === 'string' && l.msg.endsWith('needs a restart; running on the old value until then')).map((l) => l.key)
  assert.deepEqual(warned, ['data_dir', 'sys_interval'])
  await logs.waitFor((l) => l.msg === 'reloaded: listeners 1, settings max_subscriptions; needs restart: data_dir, sys_interval', 'the summary line')
  const second = await connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, protocolVersion: 5 })
  t.after(() => second.endAsync(true))
  const closed = new Promise<number | undefined>((resolve) => second.on('disconnect', (p) => resolve(p.reasonCode)))
  await second.subscribeAsync('y/1')
  second.subscribe('y/2')
  assert.equal(await closed, 0x97, 'a second subscription is over max_subscriptions now')
  assert.equal(c.connected, true, 'the first client was not dropped')

  // Still running on the old data_dir: the next reload says so again.
  const again = await reloadFromFile(gw, file, {}, logs.logger)
  assert.deepEqual([again?.settings, again?.restart], [[], ['data_dir', 'sys_interval']])
})
