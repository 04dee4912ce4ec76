/**
 * The serial bridge in the shipped binary, configured by YAML: a flood of noise and an endless
 * line do not grow memory, what was refused shows in `$SYS`, a clean stop marks devices offline,
 * and a restart after SIGKILL clears the `online` the dead process left behind.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test, type TestContext } from 'node:test'
import { connectAsync, type MqttClient } from 'mqtt'
import type { SerialPort } from 'serialport'
import { encodeFrame } from '../src/serial/codecs/outpost-link.js'
import { Inbox } from './helpers/inbox.js'
import { startOutpost, type OutpostProcess } from './helpers/outpost-process.js'
import { seededRandom } from './helpers/prng.js'
import { openPeer, ptyPair, serialDir, startEmulator } from './helpers/serial.js'

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  assert.ok(m?.[1] !== undefined)
  return Number(m[1]) / 1024
}

async function subscriber(t: TestContext, outpost: OutpostProcess, filters: string[]): Promise<{ client: MqttClient; inbox: Inbox }> {
  const client = await connectAsync(outpost.url, { reconnectPeriod: 0 })
  t.after(() => client.endAsync().catch(() => undefined))
  const inbox = new Inbox(client)
  await client.subscribeAsync(filters)
  return { client, inbox }
}

/** Writes `total` bytes from `chunk()` with backpressure, as a device streaming at full speed would. */
async function flood(port: SerialPort, total: number, chunk: () => Buffer): Promise<void> {
  for (let sent = 0; sent < total; ) {
    const b = chunk()
    sent += b.length
    if (!port.write(b)) await new Promise((r) => port.once('drain', r))
  }
  await new Promise<void>((resolve, reject) => port.drain((err) => (err === null ? resolve() : reject(err))))
}

test('20 MB of noise on an outpost-link port and 30 MB without a newline on a lines port: RSS stays flat, errors are counted in $SYS', async (t) => {
  const dir = serialDir(t)
  const link = await ptyPair(t, dir, ['linkA', 'linkB'])
  const text = await ptyPair(t, dir, ['textA', 'textB'])
  const outpost = await startOutpost(t, {
    config: {
      sys_interval: 1,
      serial: [
        { name: 'link', path: link.a, framing: 'outpost-link' },
        { name: 'text', path: text.a, framing: 'lines', lines: { device: 'meter' } },
      ],
    },
  })
  const { inbox } = await subscriber(t, outpost, ['sensors/#', '$SYS/broker/serial/#'])
  await outpost.waitForLog((r) => r.msg === 'serial port state' && r.state === 'open', 5000)
  const linkPeer = await openPeer(t, link.b)
  const textPeer = await openPeer(t, text.b)
  // A valid exchange first, so the baseline includes the mapping's working set.
  linkPeer.write(encodeFrame({ type: 'hello', seq: 0, deviceId: 'd1', firmwareVersion: '1', fields: [{ fieldId: 1, type: 'int32', name: 'n', unit: '' }] }))
  linkPeer.write(encodeFrame({ type: 'data', seq: 1, values: [{ fieldId: 1, type: 'int32', value: 1 }] }))
  textPeer.write('{"v":1}\n')
  await inbox.waitFor((m) => m.topic === 'sensors/d1', 'the first reading')
  await inbox.waitFor((m) => m.topic === 'sensors/meter', 'the first line')
  const before = rssMb(outpost.child.pid ?? 0)

  const rand = seededRandom(7)
  const noise = (): Buffer => Buffer.from(Array.from({ length: 4096 }, () => Math.floor(rand() * 256)))
  const endless = Buffer.alloc(4096, 0x41)
  await Promise.all([flood(linkPeer, 20 * 1024 * 1024, noise), flood(textPeer, 30 * 1024 * 1024, () => endless)])

  // Good input still gets through right after the flood.
  linkPeer.write(Buffer.of(0))
  linkPeer.write(encodeFrame({ type: 'data', seq: 2, values: [{ fieldId: 1, type: 'int32', value: 2 }] }))
  textPeer.write('\n{"v":2}\n')
  await inbox.waitFor((m) => m.topic === 'sensors/d1' && m.payload.includes('"n":2'), 'a reading after the noise', 20_000)
  await inbox.waitFor((m) => m.topic === 'sensors/meter' && m.payload.includes('"v":2'), 'a line after the endless one', 20_000)
  const after = rssMb(outpost.child.pid ?? 0)
  t.diagnostic(`RSS ${before.toFixed(1)} MB before the flood, ${after.toFixed(1)} MB after`)
  assert.ok(after - before < 20, `RSS ${before.toFixed(1)} MB before, ${after.toFixed(1)} MB after 50 MB of bad input`)

  const sys = (name: string): Promise<number> =>
    inbox.waitFor((m) => m.topic === `$SYS/broker/serial/${name}` && Number(m.payload) > 0, `$SYS ${name}`, 5000).then((m) => Number(m.payload))
  assert.ok((await sys('link/crc')) + (await sys('link/bad-cobs')) > 100, 'noise is counted as frame errors')
  assert.equal(await sys('text/too-long'), 1, 'one endless line is one too-long line')
  // HELLO and two DATA; `$SYS` sends a value when it changes, so wait for the last one.
  await inbox.waitFor((m) => m.topic === '$SYS/broker/serial/link/frames' && m.payload === '3', 'three good frames counted', 5000)
})

test('SIGTERM marks devices offline and the port stopped; after a SIGKILL, the restart clears the stale online', async (t) => {
  const dir = serialDir(t)
  const pair = await ptyPair(t, dir)
  const config = { serial: [{ name: 'dev', path: pair.a, framing: 'outpost-link' }] }
  const first = await startOutpost(t, { config })
  const emulator = startEmulator(t, pair.b, ['--interval', '100'])
  const a = await subscriber(t, first, ['sensors/+/availability', 'outpost/serial/#'])
  await a.inbox.waitFor((m) => m.topic === 'sensors/emulated-1/availability' && m.payload === 'online', 'online')
  await first.stop('SIGTERM')
  assert.ok(a.inbox.on('sensors/emulated-1/availability').some((m) => m.payload === 'offline'), 'offline before the gateway went away')
  assert.ok(a.inbox.on('outpost/serial/dev/state').some((m) => JSON.parse(m.payload).state === 'stopped'))

  const second = await startOutpost(t, { config, dataDir: first.dataDir })
  const b = await subscriber(t, second, ['sensors/+/availability'])
  await b.inbox.waitFor((m) => m.topic === 'sensors/emulated-1/availability' && m.payload === 'online', 'online again')
  await second.kill()
  await emulator.stop()

  // The dead process left `online` retained; the device is gone too. The next start must say so.
  const third = await startOutpost(t, { config, dataDir: first.dataDir })
  const c = await subscriber(t, third, ['sensors/+/availability'])
  const seen = await c.inbox.waitFor((m) => m.topic === 'sensors/emulated-1/availability', 'the retained availability')
  assert.equal(seen.payload, 'offline')
  await third.stop()
})
