/**
 * `/metrics` (Prometheus text format 0.0.4, read back with a strict parser) and `$SYS/outpost`
 * on a real gateway: the figures exist, parse, and move with what real clients, a real serial
 * line (a pty pair) and a real cloud broker do.
 */
import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { connectAsync } from 'mqtt'
import { defaultSerialPort, defaultUpstream } from '../src/config/defaults.js'
import type { SerialPortConfig } from '../src/config/serial-types.js'
import { renderPrometheus, type Family } from '../src/http/metrics.js'
import type { ApiState } from '../src/http/state.js'
import { startCloudBroker } from './helpers/cloud-broker.js'
import { httpGateway, login, until } from './helpers/http.js'
import { Inbox } from './helpers/inbox.js'
import { parsePrometheus, valueOf, type ParsedFamily } from './helpers/prometheus.js'
import { openPeer, ptyPair, serialDir } from './helpers/serial.js'

async function scrape(base: string): Promise<Map<string, ParsedFamily>> {
  const res = await fetch(`${base}/metrics`)
  assert.equal(res.status, 200)
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8')
  return parsePrometheus(await res.text())
}

function need(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string> = {}): number {
  const v = valueOf(families, name, labels)
  assert.ok(v !== undefined, `${name}${JSON.stringify(labels)} missing`)
  return v
}

test('the text format escapes HELP and label values so that they read back unchanged', () => {
  const families: Family[] = [
    { name: 'outpost_x_total', type: 'counter', help: 'back\\slash and\nnewline', samples: [{ labels: { port: 'a"b\\c\nd', kind: 'crc' }, value: 3 }], sys: () => undefined },
    { name: 'outpost_y', type: 'gauge', help: 'y', samples: [{ labels: {}, value: 0.25 }, { labels: { q: '1' }, value: Number.POSITIVE_INFINITY }], sys: () => undefined },
  ]
  const text = renderPrometheus(families)
  assert.ok(text.includes('port="a\\"b\\\\c\\nd"'), text)
  const parsed = parsePrometheus(text)
  assert.equal(parsed.get('outpost_x_total')?.help, 'back\\slash and\nnewline')
  assert.equal(valueOf(parsed, 'outpost_x_total', { port: 'a"b\\c\nd', kind: 'crc' }), 3)
  assert.equal(valueOf(parsed, 'outpost_y'), 0.25)
  assert.equal(valueOf(parsed, 'outpost_y', { q: '1' }), Number.POSITIVE_INFINITY)
  // The parser is strict: what a scraper would refuse, it refuses.
  assert.throws(() => parsePrometheus('# TYPE outpost_bad counter\noutpost_bad 1\n'), /_total/)
  assert.throws(() => parsePrometheus('# TYPE outpost_a gauge\noutpost_a{x="1} 1\n'), /unterminated/)
  assert.throws(() => parsePrometheus('# TYPE outpost_a gauge\noutpost_b 1\n'), /outside its family/)
})

test('/metrics parses; messages and bytes in move by what was published, clients by who connected', async (t) => {
  const s = await httpGateway(t, { healthIntervalMs: 3_600_000 })
  const before = await scrape(s.base)
  for (const name of ['outpost_clients_connected', 'outpost_clients_sessions', 'outpost_messages_received_total', 'outpost_messages_sent_total', 'outpost_bytes_received_total',
    'outpost_bytes_sent_total', 'outpost_connect_timeouts_total', 'outpost_drain_timeouts_total', 'outpost_limits_exceeded_total', 'outpost_store_queued_bytes',
    'outpost_store_max_bytes', 'outpost_store_disk_bytes', 'outpost_retained_messages', 'outpost_process_resident_memory_bytes', 'outpost_process_heap_used_bytes',
    'outpost_event_loop_delay_max_seconds', 'outpost_uptime_seconds', 'outpost_start_time_seconds', 'outpost_healthy']) {
    assert.ok(before.has(name), `${name} missing`)
  }
  for (const reason of ['expired', 'too_large', 'queue', 'denied']) need(before, 'outpost_messages_dropped_total', { reason })
  assert.ok(need(before, 'outpost_process_resident_memory_bytes') > 1_000_000)
  assert.ok(need(before, 'outpost_store_disk_bytes') > 0)
  assert.equal(need(before, 'outpost_healthy'), 1)
  assert.equal(need(before, 'outpost_component_healthy', { component: 'store' }), 1)
  assert.ok(Math.abs(need(before, 'outpost_start_time_seconds') - Date.now() / 1000) < 60)

  const c = await connectAsync(`mqtt://127.0.0.1:${s.port}`, { clientId: 'counter', reconnectPeriod: 0 })
  t.after(() => c.endAsync())
  const payload = 'x'.repeat(100)
  for (let i = 0; i < 7; i++) await c.publishAsync('m/t', payload, { qos: 1 })
  const after = await scrape(s.base)
  assert.equal(need(after, 'outpost_messages_received_total') - need(before, 'outpost_messages_received_total'), 7)
  assert.ok(need(after, 'outpost_bytes_received_total') - need(before, 'outpost_bytes_received_total') >= 7 * 100)
  assert.ok(need(after, 'outpost_packets_received_total') - need(before, 'outpost_packets_received_total') >= 8, 'CONNECT and 7 PUBLISH')
  assert.equal(need(after, 'outpost_clients_connected'), 1)
  assert.equal(need(after, 'outpost_connections_total') - need(before, 'outpost_connections_total'), 1)
  // Event-loop delay is measured per sample period: a loop blocked for 120 ms shows in the next one.
  await new Promise((r) => setTimeout(r, 60))
  const blocked = Date.now()
  while (Date.now() - blocked < 120);
  await new Promise((r) => setTimeout(r, 60))
  s.figures.telemetry.sample()
  const eld = await scrape(s.base)
  assert.ok(need(eld, 'outpost_event_loop_delay_max_seconds') >= 0.05, String(need(eld, 'outpost_event_loop_delay_max_seconds')))
  assert.ok(need(eld, 'outpost_event_loop_delay_seconds', { quantile: '0.99' }) >= need(eld, 'outpost_event_loop_delay_seconds', { quantile: '0.5' }))
})

/** A gateway with the dashboard (user admin, password pw) and a `lines` port `bench` for device `boiler`, open, with its other end. */
async function serialBench(t: TestContext): Promise<{ s: Awaited<ReturnType<typeof httpGateway>>; port: SerialPortConfig; path: string; device: Awaited<ReturnType<typeof openPeer>> }> {
  const pair = await ptyPair(t, serialDir(t))
  const base = defaultSerialPort('bench', { path: pair.a })
  const port: SerialPortConfig = { ...base, availabilityTimeout: 0, lines: { ...base.lines, device: 'boiler' } }
  const s = await httpGateway(t, { users: { admin: 'pw' }, overrides: { serial: [port] } })
  await until(() => (s.gateway.serial?.ports[0]?.state.state === 'open' ? true : undefined), 'the port open')
  const device = await openPeer(t, pair.b)
  return { s, port, path: pair.a, device }
}

test('serial port figures: lines and errors by kind, the state as a labelled gauge, devices online; the last reading in /api/state', async (t) => {
  const { s, path, device } = await serialBench(t)
  device.write('{"t":21.5}\n{"t":21.75}\nnot json\n')
  const m = await until(async () => {
    const f = await scrape(s.base)
    return valueOf(f, 'outpost_serial_frames_total', { port: 'bench' }) === 2 && valueOf(f, 'outpost_serial_errors_total', { port: 'bench', kind: 'syntax' }) === 1 ? f : undefined
  }, 'two lines and a syntax error counted')
  assert.equal(need(m, 'outpost_serial_port_state', { port: 'bench', state: 'open' }), 1)
  assert.equal(need(m, 'outpost_serial_port_state', { port: 'bench', state: 'waiting' }), 0)
  assert.equal(need(m, 'outpost_serial_devices_online', { port: 'bench' }), 1)
  assert.equal(need(m, 'outpost_serial_errors_total', { port: 'bench', kind: 'too-long' }), 0)

  const cookie = await login(s.base, 'admin', 'pw')
  const state = await until(async () => {
    const body = (await (await fetch(`${s.base}/api/state`, { headers: { cookie } })).json()) as ApiState
    return body.serial[0]?.devices[0]?.lastReading?.payload.includes('21.75') === true ? body : undefined
  }, 'the last reading')
  const p = state.serial[0]
  assert.ok(p !== undefined)
  assert.deepEqual([p.port, p.path, p.state, p.detail, p.frames, p.errors], ['bench', path, 'open', null, 2, 1])
  assert.equal(p.devices[0]?.device, 'boiler')
  assert.equal(p.devices[0]?.online, true)
  assert.equal(p.devices[0]?.lastReading?.topic, 'sensors/boiler')
  // Frames per second come from the samples: 2 lines over the last period.
  s.figures.telemetry.sample()
  device.write('{"t":22}\n')
  await until(async () => ((await scrape(s.base)).get('outpost_serial_frames_total')?.samples[0]?.value === 3 ? true : undefined), 'a third line')
  s.figures.telemetry.sample()
  const again = (await (await fetch(`${s.base}/api/state`, { headers: { cookie } })).json()) as ApiState
  assert.ok((again.serial[0]?.framesPerSecond ?? 0) > 0)
})

test('bridge figures: link up, then down with a backlog that grows and drains when the cloud is back', async (t) => {
  const cloud = await startCloudBroker(t)
  const rule = { pattern: 'up/#', direction: 'out' as const, qos: 1 as const, localPrefix: '', remotePrefix: '' }
  const upstream = { ...defaultUpstream('cloud', cloud.url), topics: [rule], reconnectMin: 0.05, reconnectMax: 0.2 }
  const s = await httpGateway(t, { overrides: { upstream: [upstream] } })
  await until(async () => (valueOf(await scrape(s.base), 'outpost_bridge_up', { bridge: 'cloud' }) === 1 ? true : undefined), 'the link up')
  await cloud.kill()
  await until(async () => (valueOf(await scrape(s.base), 'outpost_bridge_up', { bridge: 'cloud' }) === 0 ? true : undefined), 'the link down')
  const c = await connectAsync(`mqtt://127.0.0.1:${s.port}`, { reconnectPeriod: 0 })
  t.after(() => c.endAsync())
  for (let i = 0; i < 5; i++) await c.publishAsync('up/x', `m${i}`, { qos: 1 })
  const down = await scrape(s.base)
  assert.equal(need(down, 'outpost_bridge_backlog_messages', { bridge: 'cloud' }), 5)
  assert.ok(need(down, 'outpost_bridge_backlog_bytes', { bridge: 'cloud' }) >= 10)
  assert.ok(need(down, 'outpost_bridge_oldest_age_seconds', { bridge: 'cloud' }) >= 0)
  await until(async () => (valueOf(await scrape(s.base), 'outpost_component_healthy', { component: 'upstream:cloud' }) === 0 ? true : undefined), 'the bridge reported unhealthy')
  s.figures.telemetry.sample()
  await cloud.restart()
  const drained = await until(async () => {
    const f = await scrape(s.base)
    return valueOf(f, 'outpost_bridge_backlog_messages', { bridge: 'cloud' }) === 0 ? f : undefined
  }, 'the backlog drained')
  assert.ok(need(drained, 'outpost_bridge_reconnects_total', { bridge: 'cloud' }) >= 1)
  assert.ok(need(drained, 'outpost_bridge_messages_sent_total', { bridge: 'cloud' }) >= 5)
  s.figures.telemetry.sample()
  assert.ok(need(await scrape(s.base), 'outpost_bridge_drain_rate', { bridge: 'cloud' }) > 0)
})

test('$SYS/outpost carries the same figures over MQTT, retained, every sys_interval', async (t) => {
  const s = await httpGateway(t, { healthIntervalMs: 3_600_000 })
  const c = await connectAsync(`mqtt://127.0.0.1:${s.port}`, { clientId: 'sys-watcher', reconnectPeriod: 0 })
  t.after(() => c.endAsync())
  const inbox = new Inbox(c)
  await c.subscribeAsync('$SYS/outpost/#', { qos: 0 })
  // Retained: the values are there at once for a new subscriber.
  await inbox.waitFor((m) => m.topic === '$SYS/outpost/process/resident-memory-bytes' && Number(m.payload) > 1_000_000, 'rss')
  for (const topic of ['clients/connected', 'messages/received', 'bytes/received', 'messages/dropped/queue', 'store/disk-bytes', 'store/max-bytes', 'process/uptime', 'process/event-loop-delay/p99', 'health/healthy', 'health/store', 'version']) {
    await inbox.waitFor((m) => m.topic === `$SYS/outpost/${topic}`, topic)
  }
  const pub = await connectAsync(`mqtt://127.0.0.1:${s.port}`, { reconnectPeriod: 0 })
  t.after(() => pub.endAsync())
  for (let i = 0; i < 3; i++) await pub.publishAsync('s/x', 'y', { qos: 1 })
  // The next round (sys_interval 1 s) carries the count /metrics shows.
  const count = need(await scrape(s.base), 'outpost_messages_received_total')
  assert.ok(count >= 3)
  await inbox.waitFor((m) => m.topic === '$SYS/outpost/messages/received' && Number(m.payload) === count, `messages/received ${count}`)
  await inbox.waitFor((m) => m.topic === '$SYS/outpost/clients/connected' && m.payload === '2', 'two clients')
})

test('the last reading follows a reload that moves the reading topics', async (t) => {
  const { s, port, device } = await serialBench(t)
  const cookie = await login(s.base, 'admin', 'pw')
  const reading = async (): Promise<{ topic: string; payload: string } | undefined> => {
    const body = (await (await fetch(`${s.base}/api/state`, { headers: { cookie } })).json()) as ApiState
    return body.serial[0]?.devices[0]?.lastReading ?? undefined
  }
  device.write('{"t":1}\n')
  assert.equal((await until(async () => ((await reading())?.payload.includes('"t":1') === true ? reading() : undefined), 'the first reading'))?.topic, 'sensors/boiler')
  const moved: SerialPortConfig = { ...port, mapping: { ...port.mapping, topic: 'plant/{port}/{device}' } }
  await s.gateway.reload({ ...s.config, serial: [moved] })
  await fetch(`${s.base}/api/state`, { headers: { cookie } })
  device.write('{"t":2}\n')
  const second = await until(async () => {
    const r = await reading()
    return r?.payload.includes('"t":2') === true ? r : undefined
  }, 'the reading on the new topic')
  assert.equal(second.topic, 'plant/bench/boiler')
})
