import * as assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { createLogger } from '../src/logger.js'

/** A pino destination that keeps each JSON line, parsed, for assertions. */
function capture(): { lines: unknown[]; write(msg: string): void } {
  const lines: unknown[] = []
  return { lines, write: (msg) => { lines.push(JSON.parse(msg)) } }
}

describe('createLogger', () => {
  test('writes JSON lines named outpost with a level label and an ISO time', () => {
    const dest = capture()
    createLogger('info', dest).info({ clientId: 'c1' }, 'hello')
    const [line] = dest.lines
    assert.ok(typeof line === 'object' && line !== null)
    assert.ok('time' in line && typeof line.time === 'string' && !Number.isNaN(Date.parse(line.time)))
    assert.deepEqual({ ...line, time: 'T', pid: 0, hostname: 'h' }, {
      level: 'info', time: 'T', pid: 0, hostname: 'h', name: 'outpost', clientId: 'c1', msg: 'hello',
    })
  })

  test('respects the level', () => {
    const dest = capture()
    const log = createLogger('warn', dest)
    log.info('dropped')
    log.warn('kept')
    assert.equal(dest.lines.length, 1)
    const silent = capture()
    createLogger('silent', silent).fatal('nothing')
    assert.equal(silent.lines.length, 0)
  })

  test('redacts passwords at the top level and nested, also in child loggers', () => {
    const dest = capture()
    const log = createLogger('info', dest)
    log.info({ password: 'p0', connect: { username: 'u', password: 'p1' }, a: { b: { password: 'p2' } } }, 'x')
    log.child({ clientId: 'c' }).info({ packet: { password: 'p3' } }, 'y')
    const text = JSON.stringify(dest.lines)
    for (const secret of ['p0', 'p1', 'p2', 'p3']) assert.ok(!text.includes(`"${secret}"`), `${secret} leaked: ${text}`)
    assert.ok(text.includes('"username":"u"'))
    assert.ok(text.includes('[redacted]'))
  })
})
