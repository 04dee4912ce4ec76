/**
 * The dashboard in a real headless Chromium (Debian's, driven by playwright-core) against the
 * shipped binary: a real MQTT.js client, a real serial line (socat pty) with the emulated device
 * from firmware-bridge/, and the password file made by `outpost passwd`. It logs in through the
 * form, finds the client and the device's reading, watches the page change without a reload,
 * and keeps a screenshot in test-artifacts/dashboard.png.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { connectAsync, type MqttClient } from 'mqtt'
import { chromium, type Browser, type Page } from 'playwright-core'
import { Inbox } from './helpers/inbox.js'
import { freePort, OUTPOST_CLI, startOutpost, tempDir, type OutpostProcess } from './helpers/outpost-process.js'
import { ptyPair, serialDir, startEmulator } from './helpers/serial.js'

/** dist/test/ → the repository's test-artifacts/, which .gitignore leaves out. */
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url))
const USER = 'admin'
const PASSWORD = 'secret'
/** The page polls every 2 s; this leaves room for a few polls on a busy CI machine. */
const UI_MS = 10_000

interface Dashboard {
  outpost: OutpostProcess
  base: string
}

async function startDashboard(t: TestContext, serial?: Record<string, unknown>): Promise<Dashboard> {
  const dir = tempDir(t, 'outpost-dashboard-')
  const passwordFile = join(dir, 'dashboard.passwd')
  execFileSync(process.execPath, [OUTPOST_CLI, 'passwd', '-c', '-b', passwordFile, USER, PASSWORD])
  const port = await freePort()
  const outpost = await startOutpost(t, {
    config: { http: { port, password_file: passwordFile }, ...(serial === undefined ? {} : { serial: [serial] }) },
  })
  return { outpost, base: `http://127.0.0.1:${port}` }
}

/** These flags matter on a closed network: no first-run, sync, update or QUIC probes to wait on. */
async function launch(t: TestContext): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  t.after(() => browser.close())
  return browser
}

/** Console errors (a CSP violation is one) and uncaught exceptions, as the page reports them. */
function collectErrors(page: Page): string[] {
  const errors: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`)
  })
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`))
  return errors
}

async function client(t: TestContext, outpost: OutpostProcess, clientId: string): Promise<MqttClient> {
  const c = await connectAsync(outpost.url, { clientId, reconnectPeriod: 0 })
  t.after(() => c.endAsync().catch(() => undefined))
  return c
}

async function logIn(page: Page, base: string, password: string): Promise<void> {
  await page.goto(`${base}/`)
  assert.equal(new URL(page.url()).pathname, '/login', 'an anonymous visit lands on the login form')
  await page.locator('input[name="username"]').fill(USER)
  await page.locator('input[type="password"]').fill(password)
  await Promise.all([page.waitForEvent('load'), page.locator('form [type="submit"]').click()])
}

/** The text of every cell of `tbody`'s rows, row by row. */
async function tableRows(page: Page, tbody: string): Promise<string[][]> {
  const rows = page.locator(`${tbody} tr`)
  const out: string[][] = []
  for (let i = 0; i < (await rows.count()); i++) out.push(await rows.nth(i).locator('td').allTextContents())
  return out
}

/** Polls the page (not the server) until `check` returns a value, for things that appear on a later poll. */
async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = UI_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`the dashboard did not show ${what} within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

test('the dashboard logs in, shows a client and a serial reading, updates itself, and logs out', { timeout: 90_000 }, async (t) => {
  const pair = await ptyPair(t, serialDir(t))
  const { outpost, base } = await startDashboard(t, { name: 'bench', path: pair.a, framing: 'outpost-link' })
  startEmulator(t, pair.b, ['--interval', '500'])
  const watcher = await client(t, outpost, 'dash-watcher-1')
  const inbox = new Inbox(watcher)
  await watcher.subscribeAsync(['sensors/#'])
  // Markup in a retained payload must show as text, not become an element.
  await watcher.publishAsync('dash/test/markup', '<img src=x id=injected>', { retain: true, qos: 1 })

  const browser = await launch(t)
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  const errors = collectErrors(page)
  await logIn(page, base, PASSWORD)
  assert.equal(new URL(page.url()).pathname, '/', 'the login goes on to the dashboard')
  let loads = 0
  page.on('load', () => loads++)

  const watcherRow = await eventually('the connected MQTT.js client', async () =>
    (await tableRows(page, '#clients-body')).find((cells) => cells[0] === 'dash-watcher-1'))
  assert.match(watcherRow[1] ?? '', /^127\.0\.0\.1/, 'its address')
  assert.equal(watcherRow[3], '3.1.1', 'MQTT.js speaks 3.1.1 unless told otherwise')
  assert.match(watcherRow[4] ?? '', /sensors\/#/, 'its subscription')

  // The device's last reading, checked against what an MQTT subscriber got on the same topic.
  await eventually('the serial device online with a reading the subscriber also received', async () => {
    const device = (await tableRows(page, '#serial-list tbody')).find((cells) => cells[0] === 'emulated-1')
    if (device === undefined || device[1] !== 'online') return undefined
    const [topic, payload] = [device[2] ?? '', device[3] ?? '']
    // The page shows a preview: a long payload is cut and ends in an ellipsis.
    const same = (full: string): boolean => full === payload || (payload.endsWith('…') && full.startsWith(payload.slice(0, -1)))
    return inbox.messages.some((m) => m.topic === topic && same(m.payload)) ? device : undefined
  })
  assert.match((await page.locator('#serial-list h3').first().textContent()) ?? '', /bench\s*open/, 'the port, open')

  const retained = await eventually('the retained markup as text', async () =>
    (await tableRows(page, '#retained-body')).find((cells) => cells[0] === 'dash/test/markup'))
  assert.equal(retained[2], '<img src=x id=injected>')
  assert.equal(await page.locator('#injected').count(), 0, 'no element was made from the payload')

  // Without a reload: a second client appears, and the message counter moves past what the test published.
  const messagesIn = async (): Promise<number> => Number(/^(\d+)/.exec((await page.locator('#overview-list dt:text-is("Messages in") + dd').textContent()) ?? '')?.[1])
  const before = await messagesIn()
  assert.ok(Number.isInteger(before), 'the overview shows a message count')
  const late = await client(t, outpost, 'dash-late-joiner')
  for (let i = 0; i < 20; i++) await late.publishAsync('dash/test/burst', String(i), { qos: 1 })
  await eventually('the second client without a reload', async () =>
    (await tableRows(page, '#clients-body')).some((cells) => cells[0] === 'dash-late-joiner') ? true : undefined)
  await eventually('the message counter moving', async () => ((await messagesIn()) >= before + 20 ? true : undefined))
  assert.equal(loads, 0, 'the page never reloaded')
  assert.match((await page.locator('#updated').textContent()) ?? '', /^updated /)
  assert.equal(await page.locator('#error').isVisible(), false, 'no poll has failed')
  // The chart draws the server's 5-second rate samples: two make a line, and the device's
  // readings put it above the zero line (the first grid line drawn).
  await eventually('the message-rate chart above zero', async () => {
    const zero = Number(await page.locator('#chart line.grid').first().getAttribute('y1'))
    const ys = ((await page.locator('#chart polyline.in').getAttribute('points')) ?? '').split(' ').filter((p) => p !== '').map((p) => Number(p.split(',')[1]))
    return ys.length >= 2 && ys.some((y) => y < zero) ? true : undefined
  }, 20_000)
  assert.equal(await page.locator('#chart polyline.out').count(), 1, 'and a line for messages out')

  mkdirSync(ARTIFACTS, { recursive: true })
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true })
  // On a phone the page is one column and only the wide tables scroll, inside their own box.
  await page.setViewportSize({ width: 390, height: 844 })
  const pageWidth = Number(await page.evaluate('document.documentElement.scrollWidth'))
  assert.ok(pageWidth <= 390, `the page is ${pageWidth} px wide on a 390 px phone`)
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true })
  assert.deepEqual(errors, [], 'no console errors, CSP violations or exceptions')

  await Promise.all([page.waitForURL(`${base}/login`), page.locator('#logout').click()])
  await page.goto(`${base}/`)
  assert.equal(new URL(page.url()).pathname, '/login', 'after logging out the dashboard asks for the password again')

  // A session ended elsewhere (here: a logout sharing the page's cookie): the next poll gets 401
  // and the page goes to the login form by itself.
  await logIn(page, base, PASSWORD)
  await page.locator('#clients-body tr').first().waitFor({ timeout: UI_MS })
  assert.equal((await page.request.post(`${base}/logout`, { maxRedirects: 0 })).status(), 303)
  await page.waitForURL(`${base}/login`, { timeout: UI_MS })

  // A failed poll shows, and the last figures stay on screen.
  await logIn(page, base, PASSWORD)
  await page.locator('#clients-body tr').first().waitFor({ timeout: UI_MS })
  await outpost.stop()
  await page.locator('#error').waitFor({ state: 'visible', timeout: UI_MS })
  assert.match((await page.locator('#error').textContent()) ?? '', /Update failed.*Showing data from/)
  assert.ok((await page.locator('#clients-body tr').count()) > 0)
})

test('a wrong password is refused with a message, and the API stays closed', { timeout: 60_000 }, async (t) => {
  const { base } = await startDashboard(t)
  const browser = await launch(t)
  const page = await browser.newPage()
  await logIn(page, base, 'not-the-password')
  assert.equal(new URL(page.url()).pathname, '/login', 'still on the login form')
  assert.match((await page.locator('body').textContent()) ?? '', /wrong|invalid|incorrect/i, 'the form says why')
  mkdirSync(ARTIFACTS, { recursive: true })
  await page.screenshot({ path: join(ARTIFACTS, 'login-refused.png') })
  const api = await page.request.get(`${base}/api/state`, { maxRedirects: 0 })
  assert.equal(api.status(), 401, 'no session, no state')
})
