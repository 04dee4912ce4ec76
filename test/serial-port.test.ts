/**
 * SerialLink over real pseudo-terminal pairs from `socat`: data both ways, a port missing at start,
 * and an unplug / replug (socat killed and started again on the same link names) survived.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { pino } from 'pino'
import { SerialLink, type LinkState } from '../src/serial/port.js'
import { listCandidates, resolvePort } from '../src/serial/resolve.js'
import { openPeer, ptyPair, serialDir } from './helpers/serial.js'

function waitState(link: SerialLink, want: LinkState['state'], ms = 5000): Promise<void> {
  if (link.state.state === want) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still ${link.state.state}, wanted ${want}`)), ms)
    const on = (s: LinkState): void => {
      if (s.state !== want) return
      clearTimeout(timer)
      link.off('state', on)
      resolve()
    }
    link.on('state', on)
  })
}

function received(link: SerialLink, text: string, ms = 3000): Promise<void> {
  let got = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`got ${JSON.stringify(got)}, wanted ${JSON.stringify(text)}`)), ms)
    const on = (chunk: Buffer): void => {
      got += chunk.toString()
      if (!got.includes(text)) return
      clearTimeout(timer)
      link.off('data', on)
      resolve()
    }
    link.on('data', on)
  })
}

test('SerialLink: data both ways over a pty pair', async (t) => {
  const pair = await ptyPair(t, serialDir(t))
  const link = new SerialLink({ path: pair.a, baudRate: 115200 }, pino({ level: 'silent' }))
  t.after(() => link.close())
  link.start()
  await waitState(link, 'open')
  const peer = await openPeer(t, pair.b)
  const got = received(link, 'temp=21.5\n')
  peer.write('temp=21.5\n')
  await got
  let back = ''
  peer.on('data', (c: Buffer) => (back += c.toString()))
  assert.equal(link.write(Buffer.from('led=on\n')), true)
  const deadline = Date.now() + 3000
  while (!back.includes('led=on') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  assert.equal(back, 'led=on\n')
})

test('SerialLink: a port missing at start is waited for, an unplug and replug is survived', async (t) => {
  const dir = serialDir(t)
  const states: string[] = []
  const link = new SerialLink({ path: join(dir, 'ttyA'), baudRate: 115200, minRetryMs: 50, maxRetryMs: 400 }, pino({ level: 'silent' }))
  link.on('state', (s) => states.push(s.state))
  t.after(() => link.close())
  link.start()
  await waitState(link, 'waiting')
  assert.equal(link.write(Buffer.from('x')), false, 'nothing is written while the port is away')

  const first = await ptyPair(t, dir)
  await waitState(link, 'open')
  // Unplug: the pty pair goes away; the link notices and keeps trying.
  await first.stop()
  await waitState(link, 'waiting')
  // Replug on the same names: back within the backoff cap.
  const second = await ptyPair(t, dir)
  await waitState(link, 'open')
  const peer = await openPeer(t, second.b)
  const got = received(link, 'after replug\n')
  peer.write('after replug\n')
  await got
  assert.deepEqual(states.filter((s, i) => s !== states[i - 1]), ['waiting', 'open', 'waiting', 'open'])
})

test('SerialLink: a port named by a by-id glob is found once it appears', async (t) => {
  const dir = serialDir(t)
  const link = new SerialLink(
    { path: 'by-id:tty*A', baudRate: 115200, minRetryMs: 50, maxRetryMs: 400, resolvePath: async () => resolvePort({ byId: 'tty*A' }, await listCandidates(dir)) },
    pino({ level: 'silent' }),
  )
  t.after(() => link.close())
  link.start()
  await waitState(link, 'waiting')
  const pair = await ptyPair(t, dir)
  await waitState(link, 'open')
  const peer = await openPeer(t, pair.b)
  const got = received(link, 'found by name\n')
  peer.write('found by name\n')
  await got
})
