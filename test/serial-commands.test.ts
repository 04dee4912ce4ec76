/**
 * CommandChannel without a port: what it writes, when it retries, how answers are matched
 * (PROTOCOL.md, "Sequence numbers, commands and retries"), and payload encoding by type.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { CommandChannel, encodeArgs, MAX_WAITING, type CommandResult } from '../src/serial/commands.js'

interface Harness {
  channel: CommandChannel
  writes: string[]
  results: Array<[string, CommandResult]>
  open: { value: boolean }
}

function harness(timeoutMs = 40, attempts = 3): Harness {
  const writes: string[] = []
  const results: Array<[string, CommandResult]> = []
  const open = { value: true }
  let seq = 10
  const channel = new CommandChannel({
    timeoutMs,
    attempts,
    encode: (s, name, args) => Buffer.from(`${s}:${name}:${args.toString('hex')}`),
    write: (wire) => {
      if (!open.value) return false
      writes.push(wire.toString())
      return true
    },
    nextSeq: () => seq++,
  })
  return { channel, writes, results, open }
}

function send(h: Harness, name: string, args = Buffer.alloc(0)): void {
  h.channel.send({ name, args, reply: (r) => h.results.push([name, r]) })
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

test('one CMD outstanding at a time; the next goes when the first is answered', () => {
  const h = harness()
  send(h, 'a', Buffer.of(1))
  send(h, 'b')
  assert.deepEqual(h.writes, ['10:a:01'])
  assert.equal(h.channel.answer(10, { status: 'ack' }), true)
  assert.deepEqual(h.writes, ['10:a:01', '11:b:'])
  h.channel.answer(11, { status: 'nak', code: 2, message: 'no' })
  assert.deepEqual(h.results, [
    ['a', { status: 'ack', attempts: 1 }],
    ['b', { status: 'nak', attempts: 1, code: 2, message: 'no' }],
  ])
})

test('no answer: the same bytes (same seq) are sent again, then the result is a timeout', async () => {
  const h = harness(30, 3)
  send(h, 'led', Buffer.of(1))
  await sleep(150)
  assert.deepEqual(h.writes, ['10:led:01', '10:led:01', '10:led:01'])
  assert.deepEqual(h.results, [['led', { status: 'timeout', attempts: 3 }]])
})

test('an answer to another seq (a late answer to an earlier command) is not taken for this one', async () => {
  const h = harness(30, 2)
  send(h, 'a')
  assert.equal(h.channel.answer(9, { status: 'ack' }), false)
  await sleep(20)
  assert.equal(h.results.length, 0)
  assert.equal(h.channel.answer(10, { status: 'ack' }), true)
  assert.deepEqual(h.results, [['a', { status: 'ack', attempts: 1 }]])
})

test('the waiting queue is bounded: one more is answered busy at once', () => {
  const h = harness()
  for (let i = 0; i <= MAX_WAITING + 1; i++) send(h, `c${i}`)
  assert.equal(h.channel.waiting, MAX_WAITING + 1)
  assert.deepEqual(h.results, [[`c${MAX_WAITING + 1}`, { status: 'busy' }]])
})

test('a closed port: a new command is offline at once, and fail() answers everything waiting', () => {
  const h = harness()
  send(h, 'a')
  send(h, 'b')
  h.channel.fail('port waiting')
  assert.deepEqual(h.results.map(([n, r]) => [n, r.status]), [['a', 'offline'], ['b', 'offline']])
  h.open.value = false
  send(h, 'c')
  assert.deepEqual(h.results.at(-1), ['c', { status: 'offline', reason: 'port not open' }])
  assert.equal(h.channel.waiting, 0)
})

test('encodeArgs: payload text to the bytes each type needs, or why not', () => {
  assert.deepEqual(encodeArgs('bool', Buffer.from('on')), Buffer.of(1))
  assert.deepEqual(encodeArgs('bool', Buffer.from(' FALSE ')), Buffer.of(0))
  assert.deepEqual(encodeArgs('bool', Buffer.from('"true"')), Buffer.of(1))
  assert.match(String(encodeArgs('bool', Buffer.from('maybe'))), /expected true\/false/)
  assert.deepEqual(encodeArgs('uint32', Buffer.from('1000')), Buffer.of(0, 0, 3, 0xe8))
  assert.match(String(encodeArgs('uint32', Buffer.from('-1'))), /0\.\.4294967295/)
  assert.deepEqual(encodeArgs('int32', Buffer.from('-2')), Buffer.of(0xff, 0xff, 0xff, 0xfe))
  assert.match(String(encodeArgs('int32', Buffer.from('1.5'))), /integer/)
  assert.deepEqual(encodeArgs('float32', Buffer.from('1.5')), Buffer.of(0x3f, 0xc0, 0, 0))
  assert.match(String(encodeArgs('float32', Buffer.from(''))), /a number/)
  assert.deepEqual(encodeArgs('string', Buffer.from('"hi"')), Buffer.from('hi'))
  assert.deepEqual(encodeArgs('raw', Buffer.of(0, 255)), Buffer.of(0, 255))
})
