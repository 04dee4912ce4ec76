/**
 * HealthMonitor against a real gateway (LevelDB store, TCP listener, serial ports on socat ptys,
 * an upstream bridge to a second gateway). The one simulated fault is the hung disk: the real
 * store wrapped so its writes never complete (test/helpers/hung-store.ts).
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { connectAsync } from 'mqtt'
import { pino } from 'pino'
import { defaultSerialPort, defaultUpstream } from '../src/config/defaults.js'
import type { Gateway } from '../src/gateway.js'
import { HealthMonitor, type ComponentHealth, type HealthReport } from '../src/health.js'
import { tcpGateway } from './helpers/broker.js'
import { wrapStore } from './helpers/hung-store.js'
import { LogCapture } from './helpers/log-capture.js'
import { ptyPair, serialDir } from './helpers/serial.js'

const INTERVAL_MS = 50
const WEDGED_AFTER_MS = 400

function monitor(t: TestContext, gateway: Pick<Gateway, 'broker' | 'serial' | 'upstream'>, logs = new LogCapture()): HealthMonitor {
  const m = new HealthMonitor(gateway, logs.logger, { intervalMs: INTERVAL_MS, wedgedAfterMs: WEDGED_AFTER_MS, storeIntervalMs: INTERVAL_MS })
  t.after(() => m.stop())
  return m
}

/** The first report (from now on) for which `check` holds. */
function nextReport(m: HealthMonitor, check: (r: HealthReport) => boolean, what: string, timeoutMs = 5_000): Promise<HealthReport> {
  return new Promise((resolve, reject) => {
    let done = false
    const timer = setTimeout(() => {
      done = true
      reject(new Error(`no report with ${what} within ${timeoutMs} ms; last: ${JSON.stringify(m.report())}`))
    }, timeoutMs)
    m.onReport((r) => {
      if (done || !check(r)) return
      done = true
      clearTimeout(timer)
      resolve(r)
    })
  })
}

function component(r: HealthReport, name: string): ComponentHealth {
  const c = r.components.find((x) => x.component === name)
  assert.ok(c !== undefined, `no component ${name} in ${JSON.stringify(r.components)}`)
  return c
}

test('before the first check the report is not healthy and not wedged; after it broker and store are ok', async (t) => {
  const { gateway } = await tcpGateway(t)
  const m = monitor(t, gateway)
  const before = m.report()
  assert.equal(before.healthy, false)
  assert.equal(before.wedged, false)
  assert.equal(component(before, 'broker').detail, 'not checked yet')
  m.start()
  const r = await nextReport(m, () => true, 'a first report')
  assert.deepEqual(
    r.components.map((c) => [c.component, c.ok, c.wedged]),
    [
      ['broker', true, false],
      ['store', true, false],
    ],
  )
  assert.match(component(r, 'broker').detail, /^broker round trip in \d+ ms$/)
  assert.match(component(r, 'store').detail, /^store write and read in \d+ ms$/)
  assert.equal(r.healthy, true)
  assert.equal(r.wedged, false)
  assert.ok(Math.abs(r.checkedAt - Date.now()) < 5_000)
  // report() is that last report, synchronously.
  assert.equal(m.report(), r)
})

test('the broker round trip goes through the broker core and no other client sees it', async (t) => {
  const { port, gateway } = await tcpGateway(t)
  const client = await connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 })
  t.after(() => client.endAsync())
  const seen: string[] = []
  client.on('message', (topic) => seen.push(topic))
  await client.subscribeAsync(['#', '$SYS/#'])
  const published = gateway.broker.stats.publishReceived
  const sentBefore = gateway.broker.stats.publishSent
  const m = monitor(t, gateway)
  m.start()
  let reports = 0
  await nextReport(m, () => ++reports >= 5, 'five reports')
  // Each check is a delivery by the broker to the monitor's own internal client...
  assert.ok(gateway.broker.stats.publishSent - sentBefore >= 4, 'each check is a real delivery by the broker')
  // ...on a `$` topic that `#` does not match, outside `$SYS`: other clients see nothing of it.
  assert.deepEqual(seen, [])
  assert.equal(gateway.broker.stats.publishReceived, published, 'the checks are not counted as client PUBLISHes')
})

test('a store whose writes never complete is wedged after wedgedAfterMs, and recovers when they do', async (t) => {
  const logs = new LogCapture()
  const { gateway } = await tcpGateway(t)
  const store = wrapStore(gateway.broker)
  t.after(() => store.release())
  const m = monitor(t, gateway, logs)
  m.start()
  await nextReport(m, (r) => r.healthy, 'healthy')
  const hungAt = Date.now()
  store.hang()
  // Pending but younger than wedgedAfterMs: the last result stands.
  const wedged = await nextReport(m, (r) => r.wedged, 'wedged')
  assert.ok(Date.now() - hungAt >= WEDGED_AFTER_MS, 'not wedged before wedgedAfterMs')
  const s = component(wedged, 'store')
  assert.deepEqual([s.ok, s.wedged], [false, true])
  assert.match(s.detail, /^store write and read has not completed for \d+ s$/)
  assert.equal(wedged.healthy, false)
  // The broker round trip is QoS 0 and does not touch the store: it stays ok.
  assert.deepEqual([component(wedged, 'broker').ok, component(wedged, 'broker').wedged], [true, false])
  // One check is held, not one per interval.
  const held = store.heldWrites
  await new Promise((r) => setTimeout(r, INTERVAL_MS * 4))
  assert.equal(store.heldWrites, held)
  assert.equal(m.report().wedged, true)
  await logs.waitFor((l) => l.msg === 'component wedged' && l.component === 'store', 'the wedge logged')

  store.release()
  const back = await nextReport(m, (r) => !r.wedged && r.healthy, 'unwedged')
  assert.deepEqual([component(back, 'store').ok, component(back, 'store').wedged], [true, false])
  await logs.waitFor((l) => l.msg === 'component no longer wedged' && l.component === 'store', 'the recovery logged')
  assert.equal(logs.count((l) => l.msg === 'component wedged'), 1, 'the wedge is logged once, not every interval')
})

test('a store that fails its writes is not ok but not wedged', async (t) => {
  const { gateway } = await tcpGateway(t)
  const store = wrapStore(gateway.broker)
  const m = monitor(t, gateway)
  m.start()
  await nextReport(m, (r) => r.healthy, 'healthy')
  // The real LevelDB store, closed under the broker: every write is refused from now on.
  await store.inner.close()
  const r = await nextReport(m, (x) => !component(x, 'store').ok, 'the store not ok')
  assert.deepEqual([component(r, 'store').wedged, r.wedged, r.healthy], [false, false, false])
  assert.match(component(r, 'store').detail, /store write and read failed: the store is closed/)
})

test('serial ports: open is ok, waiting for its device is not ok and never wedged', async (t) => {
  const dir = serialDir(t)
  const pair = await ptyPair(t, dir)
  const missing = join(dir, 'ttyUSB-not-plugged-in')
  const { gateway } = await tcpGateway(t, {
    serial: [defaultSerialPort('here', { path: pair.a }), defaultSerialPort('gone', { path: missing })],
  })
  const m = monitor(t, gateway)
  m.start()
  const r = await nextReport(m, (x) => x.components.some((c) => c.component === 'serial:here' && c.ok), 'serial:here open', 5_000)
  assert.deepEqual(component(r, 'serial:here'), { component: 'serial:here', ok: true, wedged: false, detail: 'open' })
  const gone = component(r, 'serial:gone')
  assert.deepEqual([gone.ok, gone.wedged], [false, false])
  assert.match(gone.detail, /^waiting: /)
  assert.equal(r.healthy, false)
  assert.equal(r.wedged, false)
  // Still not wedged long after wedgedAfterMs: a missing device is not something a restart fixes.
  await new Promise((resolve) => setTimeout(resolve, WEDGED_AFTER_MS * 2))
  assert.deepEqual([component(m.report(), 'serial:gone').wedged, m.report().wedged], [false, false])

  // The device goes away: the open port turns not ok.
  await pair.stop()
  const lost = await nextReport(m, (x) => !component(x, 'serial:here').ok, 'serial:here lost')
  assert.equal(component(lost, 'serial:here').wedged, false)
  assert.match(component(lost, 'serial:here').detail, /^(waiting|failed): /)
})

test('an upstream bridge is ok while its link is up; down is not ok and not wedged', async (t) => {
  const cloud = await tcpGateway(t)
  const { gateway } = await tcpGateway(t, {
    gatewayId: 'pi-health',
    upstream: [{ ...defaultUpstream('cloud', `mqtt://127.0.0.1:${cloud.port}`), reconnectMin: 0.05, reconnectMax: 0.2 }],
  })
  const m = monitor(t, gateway)
  m.start()
  const up = await nextReport(m, (r) => r.components.some((c) => c.component === 'upstream:cloud' && c.ok), 'the bridge up', 10_000)
  assert.match(component(up, 'upstream:cloud').detail, /^connected, \d+ messages waiting$/)
  assert.equal(up.healthy, true)

  await cloud.gateway.close()
  const down = await nextReport(m, (r) => !component(r, 'upstream:cloud').ok, 'the bridge down', 10_000)
  const c = component(down, 'upstream:cloud')
  assert.equal(c.wedged, false)
  assert.match(c.detail, /^(disconnected|connecting) \(mqtt:\/\/127\.0\.0\.1:\d+\), \d+ messages waiting$/)
  assert.deepEqual([down.healthy, down.wedged], [false, false])
})

test('stop() ends the checks and leaves the last report', async (t) => {
  const { gateway } = await tcpGateway(t)
  const m = monitor(t, gateway)
  let reports = 0
  m.onReport(() => reports++)
  m.start()
  await nextReport(m, () => reports >= 2, 'two reports')
  m.stop()
  const last = m.report()
  const count = reports
  await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS * 5))
  assert.equal(reports, count)
  assert.equal(m.report(), last)
  // Its internal client (a clean session) is gone with it.
  assert.equal(gateway.broker.sessionIdsWithPrefix('outpost-health-').length, 0)
})

test('the store is probed once a minute by default, not at every check (an fsynced write each time)', async (t) => {
  const { gateway } = await tcpGateway(t)
  let writes = 0
  const store = gateway.broker.store
  const write = store.write.bind(store)
  store.write = (ops) => {
    writes++
    return write(ops)
  }
  const m = new HealthMonitor(gateway, pino({ level: 'silent' }), { intervalMs: 50 })
  t.after(() => m.stop())
  m.start()
  await new Promise((resolve) => setTimeout(resolve, 600))
  assert.equal(writes, 1)
  assert.equal(m.report().components.find((c) => c.component === 'store')?.ok, true)
})
