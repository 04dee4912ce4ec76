import assert from 'node:assert/strict'
import { test } from 'node:test'
import { cobsDecode, cobsEncode, cobsMaxEncodedLength } from '../src/serial/codecs/cobs.js'
import { crc16 } from '../src/serial/codecs/crc16.js'
import { seededRandom as prng } from './helpers/prng.js'


/** Bit-at-a-time CRC-16/CCITT-FALSE straight from the definition, to check the table version. */
function crcReference(data: Uint8Array): number {
  let crc = 0xffff
  for (const byte of data) {
    crc ^= byte << 8
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

test('crc16: the CCITT-FALSE check value, check("123456789") = 0x29B1', () => {
  assert.equal(crc16(Buffer.from('123456789', 'ascii')), 0x29b1)
})

test('crc16: table vectors', () => {
  const vectors: [string, Buffer, number][] = [
    ['empty is the init value', Buffer.alloc(0), 0xffff],
    ['"A"', Buffer.from('A'), 0xb915],
    ['one 0x00', Buffer.of(0x00), 0xe1f0],
    ['one 0xFF', Buffer.of(0xff), 0xff00],
    ['0x00..0xFF', Buffer.from(range(0, 255)), 0x3fbd],
    ['256 x "A"', Buffer.alloc(256, 'A'), 0xea0b],
    ['01 02 03 10', Buffer.of(1, 2, 3, 0x10), 0xdb76],
  ]
  for (const [name, data, want] of vectors) assert.equal(crc16(data), want, name)
})

test('crc16: table version equals the bitwise definition on random input, and continues across pieces', () => {
  const rand = prng(1)
  for (let n = 0; n < 300; n++) {
    const data = Buffer.from(Array.from({ length: Math.floor(rand() * 300) }, () => Math.floor(rand() * 256)))
    assert.equal(crc16(data), crcReference(data))
    const cut = Math.floor(rand() * (data.length + 1))
    assert.equal(crc16(data.subarray(cut), crc16(data.subarray(0, cut))), crc16(data))
  }
})

test('cobs: table vectors (Cheshire & Baker examples)', () => {
  const vectors: [string, number[], number[]][] = [
    ['empty', [], [0x01]],
    ['one zero', [0x00], [0x01, 0x01]],
    ['two zeros', [0x00, 0x00], [0x01, 0x01, 0x01]],
    ['zero, data, zero', [0x00, 0x11, 0x00], [0x01, 0x02, 0x11, 0x01]],
    ['zero inside', [0x11, 0x22, 0x00, 0x33], [0x03, 0x11, 0x22, 0x02, 0x33]],
    ['no zero', [0x11, 0x22, 0x33, 0x44], [0x05, 0x11, 0x22, 0x33, 0x44]],
    ['zero run at the end', [0x11, 0x00, 0x00, 0x00], [0x02, 0x11, 0x01, 0x01, 0x01]],
    ['254 non-zero bytes: one full block, no empty block after it', range(1, 254), [0xff, ...range(1, 254)]],
    ['zero then 254 non-zero bytes', [0x00, ...range(1, 254)], [0x01, 0xff, ...range(1, 254)]],
    ['255 non-zero bytes: a full block then a short one', range(1, 255), [0xff, ...range(1, 254), 0x02, 0xff]],
    ['254 non-zero bytes then a zero', [...range(2, 255), 0x00], [0xff, ...range(2, 255), 0x01, 0x01]],
    ['253 non-zero, zero, one', [...range(3, 255), 0x00, 0x01], [0xfe, ...range(3, 255), 0x02, 0x01]],
  ]
  for (const [name, data, encoded] of vectors) {
    assert.deepEqual([...cobsEncode(Buffer.from(data))], encoded, `encode: ${name}`)
    const back = cobsDecode(Buffer.from(encoded))
    assert.ok(back.ok, `decode: ${name}`)
    assert.deepEqual([...back.data], data, `decode: ${name}`)
  }
})

test('cobs: round trips with zero runs and 254-byte blocks, output never holds 0x00 and stays within the bound', () => {
  const rand = prng(2)
  const shapes: (() => number[])[] = [
    () => Array.from({ length: Math.floor(rand() * 600) }, () => Math.floor(rand() * 256)),
    () => Array.from({ length: Math.floor(rand() * 600) }, () => (rand() < 0.5 ? 0 : 1 + Math.floor(rand() * 255))),
    () => new Array<number>(Math.floor(rand() * 600)).fill(0),
    () => Array.from({ length: 254 * (1 + Math.floor(rand() * 3)) + Math.floor(rand() * 3) - 1 }, () => 1 + Math.floor(rand() * 255)),
  ]
  for (let n = 0; n < 2000; n++) {
    const data = Buffer.from((shapes[n % shapes.length] as () => number[])())
    const encoded = cobsEncode(data)
    assert.equal(encoded.indexOf(0), -1)
    assert.ok(encoded.length <= cobsMaxEncodedLength(data.length))
    const back = cobsDecode(encoded)
    assert.ok(back.ok)
    assert.deepEqual(back.data, data)
  }
})

test('cobs: decode accepts the empty block some encoders add after a final full block (PacketSerial)', () => {
  const back = cobsDecode(Buffer.from([0xff, ...range(1, 254), 0x01]))
  assert.ok(back.ok)
  assert.deepEqual([...back.data], range(1, 254))
})

test('cobs: decode refuses a zero byte and a block that runs past the end', () => {
  assert.deepEqual(cobsDecode(Buffer.of(0x03, 0x11, 0x00)), { ok: false, error: 'zero-byte' })
  assert.deepEqual(cobsDecode(Buffer.of(0x00)), { ok: false, error: 'zero-byte' })
  assert.deepEqual(cobsDecode(Buffer.of(0x05, 0x11, 0x22)), { ok: false, error: 'truncated' })
  assert.deepEqual(cobsDecode(Buffer.of(0x02, 0x11, 0x03, 0x22)), { ok: false, error: 'truncated' })
})

test('cobs: random bytes never crash the decoder, and what it accepts encodes back to the same bytes', () => {
  const rand = prng(3)
  for (let n = 0; n < 5000; n++) {
    const input = Buffer.from(Array.from({ length: Math.floor(rand() * 40) }, () => 1 + Math.floor(rand() * 255)))
    const back = cobsDecode(input)
    // Canonical form is unique, apart from empty input (which is no frame) and a trailing empty block.
    if (back.ok && input.length > 0 && input[input.length - 1] !== 1) assert.deepEqual(cobsEncode(back.data), input)
  }
})
