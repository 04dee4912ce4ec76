import assert from 'node:assert/strict'
import { once } from 'node:events'
import { Readable } from 'node:stream'
import { test } from 'node:test'
import { createLineParser, csvParser, keyValueParser, parseJsonLine, rawParser, type Fields, type LineFormat, type LineParser, type ParseErrorKind } from '../src/serial/codecs/line-parsers.js'
import { LineDecoder, LineSplitter, LineStream, type LineError, type LineEvent, type SplitEvent } from '../src/serial/codecs/lines.js'

function lines(events: SplitEvent[]): string[] {
  return events.flatMap((e) => (e.kind === 'line' ? [e.line.toString('utf8')] : ['<too-long>']))
}

function split(splitter: LineSplitter, chunks: (string | Buffer)[], bound: number): string[] {
  const out: string[] = []
  for (const c of chunks) {
    out.push(...lines(splitter.push(typeof c === 'string' ? Buffer.from(c) : c)))
    assert.ok(splitter.buffered <= bound, `buffered ${splitter.buffered} > ${bound}`)
  }
  return out
}

test('lines: "\\n" and "\\r\\n" delimiters, split at every position, give the same lines', () => {
  const cases: [string, string, string[]][] = [
    ['\n', 't=1\nh=2\n\nlast é ✓\n', ['t=1', 'h=2', '', 'last é ✓']],
    ['\r\n', 't=1\r\nh=2\r\n\r\na\rb\r\r\n', ['t=1', 'h=2', '', 'a\rb\r']],
    ['\r\n', '\r\r\n\n\r\n', ['\r', '\n']],
  ]
  for (const [delimiter, text, want] of cases) {
    const bytes = Buffer.from(text)
    for (let cut = 0; cut <= bytes.length; cut++) {
      const got = split(new LineSplitter({ delimiter }), [bytes.subarray(0, cut), bytes.subarray(cut)], 1024 + delimiter.length)
      assert.deepEqual(got, want, `${JSON.stringify(delimiter)} cut at ${cut}`)
    }
    assert.deepEqual(split(new LineSplitter({ delimiter }), [...bytes].map((b) => Buffer.of(b)), 1024 + delimiter.length), want)
  }
})

test('lines: with "\\n" a CRLF line keeps its "\\r"; the parsers trim it', () => {
  assert.deepEqual(split(new LineSplitter(), ['a=1\r\n'], 1025), ['a=1\r'])
  const d = new LineDecoder({ parser: { format: 'key-value' } })
  assert.deepEqual(d.push(Buffer.from('a=1\r\n')), [{ kind: 'fields', fields: { a: 1 } }])
})

test('lines: a line of exactly maxLength passes, one byte more is dropped once and the next line is whole', () => {
  for (const delimiter of ['\n', '\r\n', '--']) {
    const max = 8
    const bound = max + Buffer.byteLength(delimiter)
    const ok = 'x'.repeat(max)
    const text = [ok, 'y'.repeat(max + 1), 'z'.repeat(50), 'after', ''].join(delimiter)
    const bytes = Buffer.from(text)
    for (let cut = 0; cut <= bytes.length; cut++) {
      const got = split(new LineSplitter({ delimiter, maxLength: max }), [bytes.subarray(0, cut), bytes.subarray(cut)], bound)
      assert.deepEqual(got, [ok, '<too-long>', '<too-long>', 'after'], `${delimiter} cut ${cut}`)
    }
  }
})

test('lines: an over-long line whose last bytes start the delimiter still ends at that delimiter', () => {
  const s = new LineSplitter({ delimiter: '\r\n', maxLength: 4 })
  assert.deepEqual(split(s, ['abcd\r', '\r', '\n', 'ok\r\n'], 6), ['<too-long>', 'ok'])
})

test('lines: a flood without a delimiter is one error and never more than maxLength + delimiter bytes held', () => {
  const d = new LineDecoder({ parser: { format: 'raw' }, maxLength: 64, delimiter: '\r\n' })
  const flood = Buffer.alloc(1 << 20, 0x41)
  const events: LineEvent[] = []
  for (let at = 0; at < flood.length; at += 1000) {
    events.push(...d.push(flood.subarray(at, at + 1000)))
    assert.ok(d.buffered <= 66)
  }
  assert.deepEqual(events, [{ kind: 'error', error: { kind: 'too-long', detail: 'line longer than 64 bytes, skipped to the next delimiter' } }])
  assert.deepEqual(d.push(Buffer.from('\r\nnext\r\n')), [{ kind: 'fields', fields: { raw: 'next' } }])
  assert.deepEqual(d.counters, { lines: 1, 'too-long': 1, 'bad-utf8': 0, syntax: 0, shape: 0 })
})

test('lines: a multi-byte character split across chunks is whole; invalid UTF-8 is a counted error', () => {
  const d = new LineDecoder({ parser: { format: 'raw', field: 'msg' } })
  const bytes = Buffer.from('température=21 °C\n')
  const events: LineEvent[] = []
  for (const b of bytes) events.push(...d.push(Buffer.of(b)))
  assert.deepEqual(events, [{ kind: 'fields', fields: { msg: 'température=21 °C' } }])
  const bad = d.push(Buffer.from([0x61, 0xc3, 0x28, 0x0a, 0xff, 0x0a]))
  assert.deepEqual(bad.map((e) => (e.kind === 'error' ? e.error.kind : e.kind)), ['bad-utf8', 'bad-utf8'])
  assert.equal(d.counters['bad-utf8'], 2)
})

test('lines: blank lines are skipped and counted as nothing', () => {
  const d = new LineDecoder({ parser: { format: 'json' } })
  assert.deepEqual(d.push(Buffer.from('\n  \n\r\n{"a":1}\n')), [{ kind: 'fields', fields: { a: 1 } }])
  assert.deepEqual(d.counters, { lines: 1, 'too-long': 0, 'bad-utf8': 0, syntax: 0, shape: 0 })
})

type Case = [string, Fields | ParseErrorKind]

function check(parse: LineParser, cases: Case[]): void {
  for (const [line, want] of cases) {
    const r = parse(line)
    if (typeof want === 'string') {
      assert.ok(!r.ok, `${JSON.stringify(line)} should fail`)
      assert.equal(r.error.kind, want, `${JSON.stringify(line)}: ${r.error.detail}`)
    } else {
      assert.ok(r.ok, `${JSON.stringify(line)}: ${r.ok ? '' : r.error.detail}`)
      assert.deepEqual(r.fields, want, JSON.stringify(line))
    }
  }
}

test('lines: JSON parser, good and bad', () => {
  check(parseJsonLine, [
    ['{"t":21.5,"h":40,"door":"open","ok":true}', { t: 21.5, h: 40, door: 'open', ok: true }],
    ['  {"a": -1e3}  ', { a: -1000 }],
    ['{}', {}],
    ['{"é":"✓"}', { é: '✓' }],
    ['{"t":1,"t":2}', { t: 2 }],
    ['{"t":21.5', 'syntax'],
    ['t=1', 'syntax'],
    ["{'t':1}", 'syntax'],
    ['[1,2]', 'shape'],
    ['42', 'shape'],
    ['"text"', 'shape'],
    ['null', 'shape'],
    ['{"a":null}', 'shape'],
    ['{"a":{"b":1}}', 'shape'],
    ['{"a":[1]}', 'shape'],
    ['{"a":1e999}', 'shape'],
    ['{"":1}', 'shape'],
  ])
})

test('lines: JSON and key=value treat "__proto__" as a field name, not a prototype', () => {
  const r = parseJsonLine('{"__proto__":{"x":1}}')
  assert.ok(!r.ok)
  const j = parseJsonLine('{"__proto__":5}')
  assert.ok(j.ok && Object.getPrototypeOf(j.fields) === Object.prototype && Object.hasOwn(j.fields, '__proto__'))
  const kv = keyValueParser(' ', true)('__proto__=1 a=2')
  assert.ok(kv.ok && Object.getPrototypeOf(kv.fields) === Object.prototype && kv.fields['a'] === 2)
})

test('lines: key=value parser with each separator, good and bad', () => {
  check(keyValueParser(' ', true), [
    ['t=21.5 h=40 door=open', { t: 21.5, h: 40, door: 'open' }],
    ['  t=-3\th=+4  x=.5 y=1e2 z=1.  ', { t: -3, h: 4, x: 0.5, y: 100, z: 1 }],
    ['ok=true off=false', { ok: true, off: false }],
    ['id=007 hex=0x1F inf=Infinity nan=NaN big=1e999 v=1.2.3', { id: 7, hex: '0x1F', inf: 'Infinity', nan: 'NaN', big: '1e999', v: '1.2.3' }],
    ['empty= eq=a=b', { empty: '', eq: 'a=b' }],
    ['t=1 oops', 'syntax'],
    ['=5', 'syntax'],
    ['', 'syntax'],
    ['t=1 t=2', 'shape'],
  ])
  check(keyValueParser(',', true), [
    ['t=21.5, h=40,door=open,', { t: 21.5, h: 40, door: 'open' }],
    ['name=a b,n=1', { name: 'a b', n: 1 }],
    ['t=1,,h', 'syntax'],
  ])
  check(keyValueParser(';', true), [
    ['t = 21.5; h = 40', { t: 21.5, h: 40 }],
    ['t=1;t=1', 'shape'],
  ])
  check(keyValueParser(' ', false), [['t=21.5 ok=true', { t: '21.5', ok: 'true' }]])
})

test('lines: CSV parser with configured columns, good and bad', () => {
  check(csvParser(['t', 'h', 'state'], ',', true), [
    ['21.5,40,open', { t: 21.5, h: 40, state: 'open' }],
    [' 21.5 , 40 , open ', { t: 21.5, h: 40, state: 'open' }],
    ['21.5,,open', { t: 21.5, state: 'open' }],
    ['"21.5","",  "a, ""b"""  ', { t: '21.5', h: '', state: 'a, "b"' }],
    ['1,2,true', { t: 1, h: 2, state: true }],
    ['1,2', 'shape'],
    ['1,2,3,4', 'shape'],
    ['1,2,', { t: 1, h: 2 }],
    ['1,2,"open', 'syntax'],
    ['1,2,"open"x', 'syntax'],
  ])
  check(csvParser(['a', 'b'], ';', true), [['1,5;2', { a: '1,5', b: 2 }]])
  check(csvParser(['a', 'b'], '\t', false), [['1\t 2 ', { a: '1', b: '2' }]])
  assert.throws(() => csvParser([], ',', true), RangeError)
  assert.throws(() => csvParser(['a', 'a'], ',', true), RangeError)
  assert.throws(() => csvParser(['a', ''], ',', true), RangeError)
})

test('lines: raw parser keeps the line as it is', () => {
  check(rawParser('line'), [['  GPS,$GPGGA,1*4F \r', { line: '  GPS,$GPGGA,1*4F \r' }]])
  assert.throws(() => rawParser(''), RangeError)
})

test('lines: createLineParser builds each format with its defaults', () => {
  const formats: [LineFormat, string, Fields][] = [
    [{ format: 'json' }, '{"a":1}', { a: 1 }],
    [{ format: 'key-value' }, 'a=1 b=x', { a: 1, b: 'x' }],
    [{ format: 'key-value', separator: ';', typed: false }, 'a=1;b=x', { a: '1', b: 'x' }],
    [{ format: 'csv', columns: ['a', 'b'] }, '1,x', { a: 1, b: 'x' }],
    [{ format: 'raw' }, 'a=1', { raw: 'a=1' }],
  ]
  for (const [format, line, want] of formats) assert.deepEqual(createLineParser(format)(line), { ok: true, fields: want })
})

test('lines: random bytes never throw, stay bounded, and every line is either fields or a counted error', () => {
  let seed = 99
  const rand = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / 2 ** 24
  const alphabet = Buffer.from('t=1.5,;" \r\n{}:a"\xff')
  const parsers: LineFormat[] = [{ format: 'json' }, { format: 'key-value', separator: ',' }, { format: 'csv', columns: ['a', 'b'] }, { format: 'raw' }]
  for (const parser of parsers) {
    const d = new LineDecoder({ parser, maxLength: 16, delimiter: '\r\n' })
    let events = 0
    for (let n = 0; n < 20_000; n++) {
      events += d.push(Buffer.of(alphabet[Math.floor(rand() * alphabet.length)] as number)).length
      assert.ok(d.buffered <= 18)
    }
    const c = d.counters
    assert.equal(c.lines + c['too-long'] + c['bad-utf8'] + c.syntax + c.shape, events)
  }
})

test('lines: the Transform yields field objects and emits line-error without ending; a last line without delimiter is dropped', async () => {
  const stream = new LineStream({ parser: { format: 'csv', columns: ['t', 'h'] }, delimiter: '\r\n' })
  const errs: LineError[] = []
  stream.on('line-error', (e: LineError) => errs.push(e))
  const got: unknown[] = []
  stream.on('data', (f: unknown) => got.push(f))
  Readable.from([Buffer.from('21.5,4'), Buffer.from('0\r\n1,2,3\r\n22'), Buffer.from(',41\r\n23,')]).pipe(stream)
  await once(stream, 'end')
  assert.deepEqual(got, [{ t: 21.5, h: 40 }, { t: 22, h: 41 }])
  assert.deepEqual(errs.map((e) => e.kind), ['shape'])
  assert.equal(stream.decoder.counters.lines, 2)
})

test('lines: options are checked', () => {
  assert.throws(() => new LineSplitter({ delimiter: '' }), RangeError)
  assert.throws(() => new LineSplitter({ maxLength: 0 }), RangeError)
  assert.throws(() => new LineSplitter({ maxLength: 1.5 }), RangeError)
})
