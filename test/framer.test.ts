import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Framer } from '../src/broker/framer.js'

function collect(framer: Framer, chunks: Buffer[]): { packets: string[]; error?: string } {
  const packets: string[] = []
  for (const c of chunks) {
    const r = framer.push(c, (p) => {
      packets.push(p.toString('hex'))
      return true
    })
    if (!r.ok) return { packets, error: r.error }
  }
  return { packets }
}

test('framer: several packets in one chunk, and one packet split byte by byte', () => {
  const two = Buffer.from('c000' + '3004000161' + '78', 'hex')
  assert.deepEqual(collect(new Framer(1000), [two]).packets, ['c000', '300400016178'])
  const bytes = [...Buffer.from('300400016178', 'hex')].map((b) => Buffer.from([b]))
  assert.deepEqual(collect(new Framer(1000), bytes).packets, ['300400016178'])
})

test('framer: multi-byte remaining length, collected across chunks', () => {
  const body = Buffer.alloc(300, 0x61)
  const packet = Buffer.concat([Buffer.from([0x30, 0xac, 0x02]), body]) // 300 = 0xac 0x02
  const r = collect(new Framer(10_000), [packet.subarray(0, 2), packet.subarray(2, 100), packet.subarray(100)])
  assert.equal(r.packets.length, 1)
  assert.equal(r.packets[0], packet.toString('hex'))
})

test('framer: a fifth length byte is malformed [MQTT-1.5.5]', () => {
  assert.equal(collect(new Framer(1 << 30), [Buffer.from('10ffffffff7f', 'hex')]).error, 'malformed-length')
})

test('framer: a packet over the limit is refused from its header, unbuffered', () => {
  assert.equal(collect(new Framer(100), [Buffer.from('30ff01', 'hex')]).error, 'too-large')
})
