/**
 * A listener's `mount_point` (Mosquitto's option): its clients' topics live under the prefix in
 * the broker, and they see them without it. Two listeners of one gateway, one mounted at
 * `site1/`, real TCP, MQTT.js 3.1.1 and 5 clients and Debian's mosquitto_sub.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import type { IClientOptions, MqttClient } from 'mqtt'
import { pino } from 'pino'
import { defaultConfig, defaultListener } from '../src/config/defaults.js'
import type { OutpostConfig } from '../src/config/types.js'
import { startGateway } from '../src/gateway.js'
import type { Inbox } from './helpers/inbox.js'
import { connectedClient } from './helpers/mqtt-client.js'
import { tempDir } from './helpers/outpost-process.js'

/** Ports of a plain listener and of one mounted at `site1/` (with `aclFile` on the mounted one, if given). */
async function gateway(t: TestContext, aclFile?: string): Promise<{ plain: number; mounted: number }> {
  const config: OutpostConfig = {
    ...defaultConfig(),
    sysInterval: 0,
    dataDir: tempDir(t, 'outpost-mount-'),
    listeners: [defaultListener('mqtt', 0, '127.0.0.1'), { ...defaultListener('mqtt', 0, '127.0.0.1'), mountPoint: 'site1/', aclFile }],
  }
  const gw = await startGateway(config, pino({ level: 'silent' }))
  t.after(() => gw.close())
  const [plain, mounted] = gw.addresses().map((a) => a.port) as [number, number]
  return { plain, mounted }
}

function client(t: TestContext, port: number, options: IClientOptions = {}): Promise<{ client: MqttClient; inbox: Inbox }> {
  return connectedClient(t, `mqtt://127.0.0.1:${port}`, options)
}

test('publish, subscribe, unsubscribe, retained and shared subscriptions go through the mount point both ways', async (t) => {
  const { plain, mounted } = await gateway(t)
  const outside = await client(t, plain, { clientId: 'outside' })
  await outside.client.subscribeAsync('#', { qos: 1 })
  const inside = await client(t, mounted, { clientId: 'inside', protocolVersion: 5, properties: { topicAliasMaximum: 5 } })
  await inside.client.subscribeAsync(['#', '$share/g/shared/+'], { qos: 1 })

  // In: a mounted client's topic is under the prefix for everyone else.
  await inside.client.publishAsync('temp', '21.5', { qos: 1 })
  await outside.inbox.waitFor((m) => m.topic === 'site1/temp' && m.payload === '21.5', 'the mounted publish, with the prefix')
  // Out: it receives only what is under the prefix, without it (twice, for the topic alias path).
  await outside.client.publishAsync('site1/cmd/led', 'on', { qos: 1 })
  await outside.client.publishAsync('site1/cmd/led', 'off', { qos: 1 })
  await outside.client.publishAsync('elsewhere/cmd', 'not for site1', { qos: 1 })
  await outside.client.publishAsync('site1/shared/x', 'one member', { qos: 1 })
  await outside.client.publishAsync('site1', 'the mount point alone', { qos: 1 })
  await outside.client.publishAsync('site1/last', 'end', { qos: 1 })
  await inside.inbox.waitFor((m) => m.topic === 'last', 'the end marker')
  assert.deepEqual(
    inside.inbox.messages.map((m) => `${m.topic}=${m.payload}`),
    ['temp=21.5', 'cmd/led=on', 'cmd/led=off', 'shared/x=one member', 'shared/x=one member', 'last=end'],
  )

  // Retained messages come out without the prefix too.
  await outside.client.publishAsync('site1/config/interval', '30', { qos: 1, retain: true })
  const late = await client(t, mounted, { clientId: 'late' })
  await late.client.subscribeAsync('config/#', { qos: 1 })
  const retained = await late.inbox.waitFor((m) => m.topic === 'config/interval', 'the retained message')
  assert.deepEqual([retained.payload, retained.retain], ['30', true])

  // UNSUBSCRIBE takes the client's filter, as it subscribed it.
  await late.client.unsubscribeAsync('config/#')
  await outside.client.publishAsync('site1/config/interval', '', { qos: 1, retain: true })
  await late.client.subscribeAsync('marker', { qos: 1 })
  await outside.client.publishAsync('site1/marker', 'm', { qos: 1 })
  await late.inbox.waitFor((m) => m.topic === 'marker', 'the marker')
  assert.deepEqual(late.inbox.messages.map((m) => m.topic), ['config/interval', 'marker'])
})

test("a mounted client's will goes out under the mount point", async (t) => {
  const { plain, mounted } = await gateway(t)
  const outside = await client(t, plain, { clientId: 'outside' })
  await outside.client.subscribeAsync('site1/status/#', { qos: 1 })
  const dying = await client(t, mounted, { clientId: 'dying', will: { topic: 'status/dying', payload: Buffer.from('offline'), qos: 1, retain: false } })
  dying.client.stream.destroy()
  const will = await outside.inbox.waitFor((m) => m.topic === 'site1/status/dying', 'the will')
  assert.equal(will.payload, 'offline')
})

test('the ACL of a mounted listener sees the broker topics, with the prefix', async (t) => {
  const dir = tempDir(t, 'outpost-mount-acl-')
  const acl = join(dir, 'acl')
  writeFileSync(acl, 'topic readwrite site1/allowed/#\ntopic read site1/cmd/#\n')
  const { plain, mounted } = await gateway(t, acl)
  const outside = await client(t, plain, { clientId: 'outside' })
  await outside.client.subscribeAsync('#', { qos: 1 })
  const inside = await client(t, mounted, { clientId: 'inside', protocolVersion: 5 })
  await inside.client.publishAsync('allowed/x', 'yes', { qos: 1 })
  await assert.rejects(inside.client.publishAsync('cmd/x', 'no', { qos: 1 }), (err: Error & { code?: number }) => err.code === 0x87)
  await inside.client.subscribeAsync(['cmd/#', 'allowed/#'], { qos: 1 })
  // MQTT.js turns a SUBACK failure code into a rejection.
  await assert.rejects(inside.client.subscribeAsync('other/#', { qos: 1 }), /Not authorized/)
  await outside.inbox.waitFor((m) => m.topic === 'site1/allowed/x', 'the allowed publish')
  assert.deepEqual(outside.inbox.messages.map((m) => m.topic), ['site1/allowed/x'])
})

test("mosquitto_sub on a mounted listener sees topics without the prefix", async (t) => {
  const { plain, mounted } = await gateway(t)
  const sub = spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(mounted), '-t', 'sensors/#', '-v', '-C', '1', '-W', '10'])
  t.after(() => sub.kill())
  let out = ''
  sub.stdout.on('data', (d: Buffer) => (out += d.toString()))
  const done = new Promise<number | null>((resolve) => sub.once('exit', resolve))
  const outside = await client(t, plain, { clientId: 'outside' })
  // mosquitto_sub subscribes shortly after it starts: publish until it has what it waits for.
  const timer = setInterval(() => outside.client.publish('site1/sensors/t1', '20.1', { qos: 0 }), 100)
  const code = await done
  clearInterval(timer)
  assert.equal(code, 0)
  assert.equal(out, 'sensors/t1 20.1\n')
})
