import assert from 'node:assert/strict'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import { test } from 'node:test'
import { OutpostLinkDecoder, OutpostLinkStream, type LinkEvent } from '../src/serial/codecs/outpost-link-decoder.js'
import { encodeFrame, MAX_BODY, MAX_FRAME, type Frame, type LinkError } from '../src/serial/codecs/outpost-link.js'
import { seededRandom as prng } from './helpers/prng.js'


const randomBytes = (rand: () => number, n: number, zeros = true): Buffer =>
  Buffer.from(Array.from({ length: n }, () => (zeros ? Math.floor(rand() * 256) : 1 + Math.floor(rand() * 255))))

const FRAMES: Frame[] = [
  { type: 'hello', seq: 0, deviceId: 'pump-3', firmwareVersion: '0.9', fields: [{ fieldId: 1, type: 'float32', name: 'flow', unit: 'l/min' }, { fieldId: 2, type: 'bool', name: 'dry', unit: '' }] },
  { type: 'data', seq: 1, values: [{ fieldId: 1, type: 'float32', value: Math.fround(3.25) }, { fieldId: 2, type: 'bool', value: false }] },
  { type: 'data', seq: 2, values: [{ fieldId: 1, type: 'uint32', value: 0 }, { fieldId: 2, type: 'int32', value: 0 }] },
  { type: 'cmd', seq: 3, name: 'open', args: Buffer.alloc(MAX_BODY - 5, 0) },
  { type: 'cmd', seq: 4, name: 'big', args: Buffer.alloc(MAX_BODY - 4, 0x7e) },
  { type: 'ack', seq: 5, cmdSeq: 3 },
  { type: 'nak', seq: 6, cmdSeq: 4, code: 2, message: 'bad args' },
  { type: 'ping', seq: 7 },
]
const WIRE = Buffer.concat(FRAMES.map(encodeFrame))

function frames(events: LinkEvent[]): Frame[] {
  return events.flatMap((e) => (e.kind === 'frame' ? [e.frame] : []))
}
function errors(events: LinkEvent[]): LinkError[] {
  return events.flatMap((e) => (e.kind === 'error' ? [e.error] : []))
}

/** Feeds the chunks one at a time, checking the bound after each. */
function feed(decoder: OutpostLinkDecoder, chunks: Buffer[]): LinkEvent[] {
  const out: LinkEvent[] = []
  for (const chunk of chunks) {
    out.push(...decoder.push(chunk))
    assert.ok(decoder.buffered <= MAX_FRAME, `buffered ${decoder.buffered}`)
  }
  return out
}

test('link stream: all frames in one chunk, and byte by byte', () => {
  assert.deepEqual(feed(new OutpostLinkDecoder(), [WIRE]), FRAMES.map((frame) => ({ kind: 'frame', frame })))
  const bytes = [...WIRE].map((b) => Buffer.of(b))
  assert.deepEqual(frames(feed(new OutpostLinkDecoder(), bytes)), FRAMES)
})

test('link stream: the bytes split at every position give the same frames', () => {
  for (let cut = 0; cut <= WIRE.length; cut++) {
    const d = new OutpostLinkDecoder()
    const events = feed(d, [WIRE.subarray(0, cut), WIRE.subarray(cut)])
    assert.deepEqual(frames(events), FRAMES, `cut at ${cut}`)
    assert.equal(errors(events).length, 0, `cut at ${cut}`)
    assert.deepEqual(d.counters, { frames: FRAMES.length, 'bad-cobs': 0, overrun: 0, crc: 0, 'unknown-version': 0, 'unknown-type': 0, malformed: 0 })
  }
})

test('link stream: random chunk sizes give the same frames', () => {
  const rand = prng(11)
  for (let n = 0; n < 200; n++) {
    const chunks: Buffer[] = []
    for (let at = 0; at < WIRE.length; ) {
      const size = 1 + Math.floor(rand() * 40)
      chunks.push(WIRE.subarray(at, at + size))
      at += size
    }
    assert.deepEqual(frames(feed(new OutpostLinkDecoder(), chunks)), FRAMES)
  }
})

test('link stream: empty frames (runs of 0x00) are skipped without an error', () => {
  const d = new OutpostLinkDecoder()
  const events = feed(d, [Buffer.alloc(5), encodeFrame({ type: 'ping', seq: 1 }), Buffer.alloc(3), encodeFrame({ type: 'ping', seq: 2 })])
  assert.deepEqual(frames(events), [{ type: 'ping', seq: 1 }, { type: 'ping', seq: 2 }])
  assert.equal(errors(events).length, 0)
})

test('link stream: noise bursts ended by a 0x00 between frames; every good frame decoded, errors counted, memory bounded', () => {
  const rand = prng(12)
  const sent: Frame[] = []
  const chunks: Buffer[] = []
  let bursts = 0
  for (let n = 0; n < 2000; n++) {
    const frame = FRAMES[n % FRAMES.length] as Frame
    sent.push(frame)
    chunks.push(encodeFrame(frame))
    if (rand() < 0.5) {
      // Noise of every length, with or without zeros inside, up to far past a frame; the burst
      // ends in 0x00 (a glitch followed by a line going idle) so it cannot run into the next frame.
      const len = Math.floor(rand() ** 3 * 1200)
      chunks.push(Buffer.concat([randomBytes(rand, len, rand() < 0.5), Buffer.of(0)]))
      bursts++
    }
  }
  const wire = Buffer.concat(chunks)
  const parts: Buffer[] = []
  for (let at = 0; at < wire.length; ) {
    const size = 1 + Math.floor(rand() * 300)
    parts.push(wire.subarray(at, at + size))
    at += size
  }
  const d = new OutpostLinkDecoder()
  const events = feed(d, parts)
  assert.deepEqual(frames(events), sent)
  const c = d.counters
  const errorCount = c['bad-cobs'] + c.overrun + c.crc + c['unknown-version'] + c['unknown-type'] + c.malformed
  assert.equal(errorCount, errors(events).length)
  // Every burst with bytes in it is an error of some kind (or several, when it holds zeros).
  assert.ok(errorCount > bursts / 2, `${errorCount} errors for ${bursts} bursts`)
  assert.ok(c['bad-cobs'] > 0 && c.overrun > 0 && c.crc > 0, JSON.stringify(c))
})

test('link stream: noise not ended by a 0x00 costs at most the one frame it runs into', () => {
  const rand = prng(13)
  const ping = (seq: number): Frame => ({ type: 'ping', seq })
  for (let n = 0; n < 300; n++) {
    const noise = randomBytes(rand, 1 + Math.floor(rand() * 400), false)
    const events = feed(new OutpostLinkDecoder(), [encodeFrame(ping(1)), noise, encodeFrame(ping(2)), encodeFrame(ping(3))])
    const got = frames(events).map((f) => f.seq)
    assert.ok(got[0] === 1 && got[got.length - 1] === 3 && got.length >= 2, `got ${got.join(',')}`)
    assert.ok(errors(events).length >= 1)
  }
})

test('link stream: a megabyte of noise without any 0x00 is one overrun and keeps the buffer at the maximum', () => {
  const rand = prng(14)
  const d = new OutpostLinkDecoder()
  const noise = randomBytes(rand, 1 << 20, false)
  const events: LinkEvent[] = []
  for (let at = 0; at < noise.length; at += 4096) events.push(...feed(d, [noise.subarray(at, at + 4096)]))
  assert.deepEqual(errors(events).map((e) => e.kind), ['overrun'])
  assert.ok(d.buffered <= MAX_FRAME)
  // The flood ends at a delimiter; the next frame is whole.
  const after = feed(d, [Buffer.of(0), encodeFrame({ type: 'ping', seq: 9 })])
  assert.deepEqual(after, [{ kind: 'frame', frame: { type: 'ping', seq: 9 } }])
  assert.equal(d.counters.overrun, 1)
})

test('link stream: a frame one byte over the maximum is an overrun, the maximum itself is not', () => {
  // A 254-byte frame without any 0x00 (the seq is picked so the CRC has none): one 0xFF block.
  let max: Buffer = Buffer.alloc(0)
  for (let seq = 0; seq < 256 && max[0] !== 0xff; seq++) max = encodeFrame({ type: 'cmd', seq, name: 'x', args: Buffer.alloc(MAX_BODY - 2, 0x33) })
  assert.equal(max[0], 0xff)
  assert.equal(max.length, MAX_FRAME + 2)
  const d = new OutpostLinkDecoder()
  assert.equal(frames(feed(d, [max])).length, 1)
  // One more block after the full one: 255 decoded bytes.
  const over = Buffer.concat([max.subarray(0, -1), Buffer.of(0x02, 0x33, 0x00)])
  assert.deepEqual(errors(feed(d, [over])).map((e) => e.kind), ['overrun'])
  // An empty block after a full final block (PacketSerial adds one) decodes to nothing: no overrun.
  const padded = Buffer.concat([max.subarray(0, -1), Buffer.of(0x01, 0x00)])
  assert.equal(frames(feed(d, [padded])).length, 1)
  assert.equal(d.counters.overrun, 1)
})

test('link stream: reset drops a partial frame but keeps the counters', () => {
  const d = new OutpostLinkDecoder()
  const wire = encodeFrame({ type: 'ping', seq: 4 })
  feed(d, [Buffer.of(0x41, 0x00), wire.subarray(0, 3)])
  d.reset()
  assert.equal(d.buffered, 0)
  assert.deepEqual(frames(feed(d, [wire])), [{ type: 'ping', seq: 4 }])
  assert.equal(d.counters['bad-cobs'], 1)
})

test('link stream: the Transform yields frames in object mode and emits link-error without ending', async () => {
  const stream = new OutpostLinkStream()
  const linkErrors: LinkError[] = []
  stream.on('link-error', (e: LinkError) => linkErrors.push(e))
  const first = encodeFrame(FRAMES[0] as Frame).length
  const noise = Buffer.of(0x05, 0x41, 0x00)
  const input = [WIRE.subarray(0, 7), WIRE.subarray(7, first), noise, WIRE.subarray(first), Buffer.from('partial')]
  const got: unknown[] = []
  Readable.from(input).pipe(stream)
  stream.on('data', (f: unknown) => got.push(f))
  await once(stream, 'end')
  assert.deepEqual(got, FRAMES)
  assert.deepEqual(linkErrors.map((e) => e.kind), ['bad-cobs'])
  assert.equal(stream.decoder.counters.frames, FRAMES.length)
})
