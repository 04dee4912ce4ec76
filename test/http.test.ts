/**
 * The HTTP endpoint end to end: a real gateway and HealthMonitor, the server on port 0, fetch,
 * MQTT.js clients. Health, the dashboard's login and sessions, /api/state, assets and their
 * security headers.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { connectAsync } from 'mqtt'
import { defaultSerialPort } from '../src/config/defaults.js'
import type { ApiState } from '../src/http/state.js'
import { createLogger, LogRing } from '../src/logger.js'
import { httpGateway, login, until } from './helpers/http.js'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { hashPassword } from '../src/auth/passwd.js'
import { defaultUpstream } from '../src/config/defaults.js'
import { startCloudBroker } from './helpers/cloud-broker.js'
import { startOutpost, tempDir } from './helpers/outpost-process.js'
import { Inbox } from './helpers/inbox.js'

interface HealthBody {
  healthy: boolean
  components: Array<{ component: string; ok: boolean; detail: string }>
}

async function healthz(base: string): Promise<{ status: number; body: HealthBody }> {
  const res = await fetch(`${base}/healthz`)
  return { status: res.status, body: (await res.json()) as HealthBody }
}

test('/healthz: 200 while every component is ok, 503 naming the one that is not once the cloud broker goes away', async (t) => {
  const cloud = await startCloudBroker(t)
  const upstream = { ...defaultUpstream('cloud', cloud.url), reconnectMin: 0.05, reconnectMax: 0.2 }
  const s = await httpGateway(t, { overrides: { upstream: [upstream] } })
  const ok = await until(async () => {
    const r = await healthz(s.base)
    return r.status === 200 ? r : undefined
  }, 'a healthy report')
  assert.equal(ok.body.healthy, true)
  assert.ok(ok.body.components.some((c) => c.component.includes('cloud') && c.ok), JSON.stringify(ok.body))
  await cloud.kill()
  const bad = await until(async () => {
    const r = await healthz(s.base)
    return r.status === 503 ? r : undefined
  }, 'an unhealthy report')
  assert.equal(bad.body.healthy, false)
  const down = bad.body.components.filter((c) => !c.ok)
  assert.equal(down.length, 1, JSON.stringify(bad.body))
  assert.match(down[0]?.component ?? '', /cloud/)
})

test('/healthz: 503 at once for a serial port whose path does not exist', async (t) => {
  const port = { ...defaultSerialPort('missing', { path: '/dev/outpost-test-no-such-tty' }) }
  const s = await httpGateway(t, { overrides: { serial: [port] } })
  const r = await until(async () => {
    const h = await healthz(s.base)
    return h.body.components.some((c) => c.component.includes('missing')) ? h : undefined
  }, 'the port in the report')
  assert.equal(r.status, 503)
  const c = r.body.components.find((x) => x.component.includes('missing'))
  assert.equal(c?.ok, false)
})

test('without http.password_file: no dashboard (404 saying why), health and metrics still served', async (t) => {
  const s = await httpGateway(t)
  for (const path of ['/', '/login', '/api/state', '/assets/app.js']) {
    const res = await fetch(`${s.base}${path}`)
    assert.equal(res.status, 404, path)
    assert.match(await res.text(), /http\.password_file/, path)
  }
  const post = await fetch(`${s.base}/login`, { method: 'POST', body: new URLSearchParams({ username: 'a', password: 'b' }) })
  assert.equal(post.status, 404)
  assert.equal((await fetch(`${s.base}/metrics`)).status, 200)
  assert.ok([200, 503].includes((await fetch(`${s.base}/healthz`)).status))
})

test('login: a wrong password gets the form again with an error; the right one a session cookie that opens / and /api/state until logout', async (t) => {
  const s = await httpGateway(t, { users: { admin: 'correct horse' } })
  // No session: the page sends to the login form, the API says 401 in JSON.
  const page = await fetch(`${s.base}/`, { redirect: 'manual' })
  assert.equal(page.status, 302)
  assert.equal(page.headers.get('location'), '/login')
  const api = await fetch(`${s.base}/api/state`)
  assert.equal(api.status, 401)
  assert.deepEqual(await api.json(), { error: 'login required' })

  const form = await fetch(`${s.base}/login`)
  assert.equal(form.status, 200)
  assert.match(await form.text(), /<form method="post" action="\/login">/)

  const wrong = await fetch(`${s.base}/login`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ username: 'admin', password: 'nope' }) })
  assert.equal(wrong.status, 401)
  assert.equal(wrong.headers.get('set-cookie'), null)
  assert.match(await wrong.text(), /Wrong user name or password/)
  const unknown = await fetch(`${s.base}/login`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ username: '<b>x</b>', password: 'correct horse' }) })
  assert.equal(unknown.status, 401)
  // The user name goes back into the form as text, never as markup.
  const echoed = await unknown.text()
  assert.ok(!echoed.includes('<b>x</b>') && echoed.includes('&#60;b&#62;x&#60;/b&#62;'), echoed)

  const right = await fetch(`${s.base}/login`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ username: 'admin', password: 'correct horse' }) })
  assert.equal(right.status, 303)
  assert.equal(right.headers.get('location'), '/')
  const setCookie = right.headers.get('set-cookie') ?? ''
  assert.match(setCookie, /^outpost_session=[A-Za-z0-9_-]{43};/)
  for (const attr of ['HttpOnly', 'SameSite=Strict', 'Path=/']) assert.ok(setCookie.includes(attr), `${attr} in ${setCookie}`)
  const cookie = setCookie.split(';')[0] ?? ''

  const index = await fetch(`${s.base}/`, { headers: { cookie } })
  assert.equal(index.status, 200)
  assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8')
  assert.match(await index.text(), /test dashboard/)
  const state = await fetch(`${s.base}/api/state`, { headers: { cookie } })
  assert.equal(state.status, 200)
  assert.equal(state.headers.get('cache-control'), 'no-store')
  // A made-up cookie of the same shape opens nothing.
  assert.equal((await fetch(`${s.base}/api/state`, { headers: { cookie: `outpost_session=${'A'.repeat(43)}` } })).status, 401)

  const out = await fetch(`${s.base}/logout`, { method: 'POST', redirect: 'manual', headers: { cookie } })
  assert.equal(out.status, 303)
  assert.match(out.headers.get('set-cookie') ?? '', /^outpost_session=;.*Max-Age=0/)
  assert.equal((await fetch(`${s.base}/api/state`, { headers: { cookie } })).status, 401)
  assert.equal((await fetch(`${s.base}/`, { headers: { cookie }, redirect: 'manual' })).status, 302)
})

test('login: refusals from one address are answered later and later; the right password still gets in', async (t) => {
  const s = await httpGateway(t, { users: { admin: 'pw' } })
  const attempt = async (password: string): Promise<{ status: number; ms: number }> => {
    const started = Date.now()
    const res = await fetch(`${s.base}/login`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ username: 'admin', password }) })
    await res.arrayBuffer()
    return { status: res.status, ms: Date.now() - started }
  }
  // LoginThrottle: three free failures, then 250 ms, 500 ms, ... before the answer.
  for (let i = 0; i < 3; i++) assert.equal((await attempt('bad')).status, 401)
  const fourth = await attempt('bad')
  const fifth = await attempt('bad')
  assert.equal(fourth.status, 401)
  assert.ok(fourth.ms >= 250, `fourth refusal after ${fourth.ms} ms`)
  assert.ok(fifth.ms >= 500, `fifth refusal after ${fifth.ms} ms`)
  // The right password still gets in (after its own wait), and the refusals were logged.
  assert.equal((await attempt('pw')).status, 303)
  assert.ok(s.ring.lines().some((l) => l.msg === 'dashboard login refused' && l.level === 'warn'))
})

test('CSRF: a POST from another origin is refused; one from this origin (or without Origin) is not', async (t) => {
  const s = await httpGateway(t, { users: { admin: 'pw' } })
  const body = (): URLSearchParams => new URLSearchParams({ username: 'admin', password: 'pw' })
  const evil = await fetch(`${s.base}/login`, { method: 'POST', redirect: 'manual', body: body(), headers: { origin: 'http://evil.example' } })
  assert.equal(evil.status, 403)
  assert.equal(evil.headers.get('set-cookie'), null)
  const nullOrigin = await fetch(`${s.base}/login`, { method: 'POST', redirect: 'manual', body: body(), headers: { origin: 'null' } })
  assert.equal(nullOrigin.status, 403)
  // An opaque origin from a cross-site page is still refused; from this page's own form (Chromium
  // sends `Origin: null` there, with Sec-Fetch-Site) it is a login.
  const nullCross = await fetch(`${s.base}/login`, { method: 'POST', redirect: 'manual', body: body(), headers: { origin: 'null', 'sec-fetch-site': 'cross-site' } })
  assert.equal(nullCross.status, 403)
  const nullSame = await fetch(`${s.base}/login`, { method: 'POST', redirect: 'manual', body: body(), headers: { origin: 'null', 'sec-fetch-site': 'same-origin' } })
  assert.equal(nullSame.status, 303)
  const same = await fetch(`${s.base}/login`, { method: 'POST', redirect: 'manual', body: body(), headers: { origin: s.base } })
  assert.equal(same.status, 303)
  const cookie = (same.headers.get('set-cookie') ?? '').split(';')[0] ?? ''
  const logoutEvil = await fetch(`${s.base}/logout`, { method: 'POST', redirect: 'manual', headers: { cookie, origin: 'http://evil.example' } })
  assert.equal(logoutEvil.status, 403)
  assert.equal((await fetch(`${s.base}/api/state`, { headers: { cookie } })).status, 200)
})

test('assets: served by name with their content type and the security headers; no way out of the directory', async (t) => {
  const s = await httpGateway(t, { users: { admin: 'pw' }, assets: { 'index.html': '<p>i</p>', 'app.js': 'let a = 1\n', 'style.css': 'p{}\n', 'logo.svg': '<svg/>', 'notes.txt': 'secret' } })
  const cookie = await login(s.base, 'admin', 'pw')
  const get = (path: string, withCookie = true): Promise<Response> => fetch(`${s.base}${path}`, { headers: withCookie ? { cookie } : {}, redirect: 'manual' })
  const js = await get('/assets/app.js')
  assert.equal(js.status, 200)
  assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8')
  assert.equal(await js.text(), 'let a = 1\n')
  assert.equal((await get('/assets/style.css')).headers.get('content-type'), 'text/css; charset=utf-8')
  assert.equal((await get('/assets/logo.svg')).headers.get('content-type'), 'image/svg+xml')
  // The login form's stylesheet is public; the script is not.
  assert.equal((await get('/assets/style.css', false)).status, 200)
  assert.equal((await get('/assets/app.js', false)).status, 401)
  for (const path of ['/assets/notes.txt', '/assets/../../package.json', '/assets/..%2F..%2Fpackage.json', '/assets/%2e%2e/%2e%2e/package.json', '/assets/App.js', '/assets/index.html', '/assets/', '/package.json']) {
    const res = await get(path)
    assert.equal(res.status, 404, path)
    assert.ok(!(await res.text()).includes('"version"'), path)
  }
  for (const path of ['/', '/login', '/api/state', '/assets/app.js']) {
    const res = await get(path)
    assert.equal(res.headers.get('content-security-policy'), "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'", path)
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff', path)
  }
  assert.equal((await fetch(`${s.base}/metrics`, { method: 'POST' })).status, 405)
})

test('/api/state: the contract shape, a connected client with its subscriptions, retained topics with previews, log lines', async (t) => {
  const s = await httpGateway(t, { users: { admin: 'pw' } })
  const cookie = await login(s.base, 'admin', 'pw')
  const c = await connectAsync(`mqtt://127.0.0.1:${s.port}`, { clientId: 'kitchen-display', protocolVersion: 5, reconnectPeriod: 0 })
  t.after(() => c.endAsync())
  await c.subscribeAsync({ 'home/+/temp': { qos: 1 }, 'alerts/#': { qos: 0 } })
  await c.publishAsync('home/state', Buffer.from('on\u0000\u0007 and a very long tail '.padEnd(300, 'x')), { qos: 1, retain: true })
  const state = await until(async () => {
    const res = await fetch(`${s.base}/api/state`, { headers: { cookie } })
    const body = (await res.json()) as ApiState
    return body.clients.some((x) => x.clientId === 'kitchen-display') && body.retained.length > 0 ? body : undefined
  }, 'the client and the retained message')
  const client = state.clients.find((x) => x.clientId === 'kitchen-display')
  assert.ok(client !== undefined)
  assert.equal(client.protocol, '5')
  assert.equal(client.connected, true)
  assert.deepEqual([...client.subscriptions].sort(), ['alerts/#', 'home/+/temp'])
  assert.match(client.address ?? '', /^127\.0\.0\.1:\d+$/)
  assert.ok(typeof client.connectedAt === 'number' && client.connectedAt <= state.now)
  assert.deepEqual(Object.keys(state).sort(), ['bridges', 'clients', 'eventLoopDelayMs', 'health', 'log', 'memory', 'now', 'rates', 'retained', 'serial', 'startedAt', 'store', 'totals', 'uptimeSeconds', 'version'].sort())
  assert.deepEqual(Object.keys(state.totals).sort(), ['bytesIn', 'bytesOut', 'clientsConnected', 'clientsTotal', 'dropped', 'messagesIn', 'messagesOut'])
  assert.deepEqual(Object.keys(state.store).sort(), ['dataDir', 'diskBytes', 'maxBytes', 'queuedBytes', 'retainedCount'])
  assert.equal(state.store.dataDir, s.dataDir)
  assert.ok(state.store.diskBytes > 0, 'the store has files on disk')
  assert.ok(state.totals.clientsConnected >= 1)
  assert.ok(state.memory.rss > 0 && state.memory.heapUsed > 0)
  // Clients' retained topics first, then $SYS ones (counted in retainedCount too).
  assert.equal(state.retained[0]?.topic, 'home/state')
  assert.ok(state.retained.some((r) => r.topic.startsWith('$SYS/broker/')))
  assert.ok(state.retained.length <= 200 && state.store.retainedCount >= state.retained.length)
  const retained = state.retained.find((r) => r.topic === 'home/state')
  assert.ok(retained !== undefined)
  assert.equal(retained.bytes, 300)
  // Control characters shown as dots; cut to 100 characters with an ellipsis.
  assert.ok(retained.preview.startsWith('on.. and a very long tail'), retained.preview)
  assert.equal(Array.from(retained.preview).length, 101)
  assert.ok(retained.preview.endsWith('…'))
  assert.ok(state.log.length > 0 && state.log.length <= 100)
  assert.ok(state.log.every((l) => typeof l.time === 'string' && typeof l.level === 'string' && typeof l.msg === 'string'))
  assert.ok(state.log.some((l) => l.msg === 'dashboard login'), JSON.stringify(state.log))
  assert.equal(typeof state.health.healthy, 'boolean')
})

test('/api/state rates: one sample per period with per-second rates of what was published', async (t) => {
  const s = await httpGateway(t, { users: { admin: 'pw' }, healthIntervalMs: 3_600_000 })
  const cookie = await login(s.base, 'admin', 'pw')
  const c = await connectAsync(`mqtt://127.0.0.1:${s.port}`, { reconnectPeriod: 0 })
  t.after(() => c.endAsync())
  s.figures.telemetry.sample()
  for (let i = 0; i < 20; i++) await c.publishAsync('r/x', 'payload', { qos: 1 })
  s.figures.telemetry.sample()
  const state = (await (await fetch(`${s.base}/api/state`, { headers: { cookie } })).json()) as ApiState
  const last = state.rates.at(-1)
  assert.ok(last !== undefined)
  const previous = state.rates.at(-2)
  const seconds = (last.t - (previous?.t ?? last.t)) / 1000
  // 20 PUBLISHes in the period, as a per-second rate over its length.
  assert.ok(Math.abs(last.messagesIn * seconds - 20) < 0.5, `rate ${last.messagesIn}/s over ${seconds} s`)
  assert.ok(last.bytesIn > 0)
})

test('the shipped binary with `http:` in its config: health, metrics, a login and the log lines on the dashboard, $SYS/outpost', async (t) => {
  const dir = tempDir(t, 'outpost-http-bin-')
  const passwordFile = join(dir, 'passwd')
  writeFileSync(passwordFile, `admin:${await hashPassword('pw', { iterations: 1000 })}\n`)
  const proc = await startOutpost(t, { config: { sys_interval: 1, http: { port: 0, password_file: passwordFile } } })
  const listening = await proc.waitForLog((r) => r.msg === 'HTTP endpoint listening', 5000, 'the HTTP endpoint')
  assert.equal(listening.address, '127.0.0.1')
  const base = `http://127.0.0.1:${String(listening.port)}`
  const health = await until(async () => {
    const r = await healthz(base)
    return r.status === 200 ? r : undefined
  }, 'healthy')
  assert.deepEqual(health.body.components.map((c) => c.component).sort(), ['broker', 'store'])
  assert.match(await (await fetch(`${base}/metrics`)).text(), /^outpost_clients_connected 0$/m)
  const cookie = await login(base, 'admin', 'pw')
  const state = (await (await fetch(`${base}/api/state`, { headers: { cookie } })).json()) as ApiState
  assert.ok(state.log.some((l) => l.msg === 'outpost running'), JSON.stringify(state.log))
  assert.equal(state.store.dataDir, proc.dataDir)
  const c = await connectAsync(`mqtt://127.0.0.1:${proc.port}`, { reconnectPeriod: 0 })
  t.after(() => c.endAsync())
  const inbox = new Inbox(c)
  await c.subscribeAsync('$SYS/outpost/#')
  await inbox.waitFor((m) => m.topic === '$SYS/outpost/clients/connected' && m.payload === '1', 'clients/connected 1')
})

test('LogRing keeps the last lines only, after redaction, with the fields the dashboard shows', () => {
  const ring = new LogRing(3)
  const written: string[] = []
  const log = createLogger('debug', { write: (l: string) => void written.push(l) }, ring)
  log.debug('zero')
  log.child({ component: 'broker', clientId: 'c1' }).info({ password: 'hunter2' }, 'one')
  log.warn({ err: new Error('disk full') }, 'two')
  log.error('x'.repeat(2000))
  const lines = ring.lines()
  assert.deepEqual(lines.map((l) => [l.level, l.msg.slice(0, 20), l.component, l.clientId]), [
    ['info', 'one', 'broker', 'c1'],
    ['warn', 'two: disk full', null, null],
    ['error', 'x'.repeat(20), null, null],
  ])
  assert.ok((lines[2]?.msg.length ?? 0) <= 500)
  assert.deepEqual(ring.lines(1).map((l) => l.level), ['error'])
  // The destination still gets every line, whole and redacted, as without a ring.
  assert.equal(written.length, 4)
  assert.ok(!written.join('').includes('hunter2'))
  assert.ok(!JSON.stringify(lines).includes('hunter2'))
})
