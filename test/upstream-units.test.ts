/** The upstream bridge's pure parts: backoff, topic rules, failure explanations, echo filter. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DecorrelatedJitter } from '../src/upstream/backoff.js'
import { EchoFilter } from '../src/upstream/echo.js'
import { explain } from '../src/upstream/explain.js'
import { compileRules, render, toLocal, toRemote } from '../src/upstream/rules.js'
import { seededRandom } from './helpers/prng.js'

test('decorrelated jitter: delays stay between min and max, grow from min, and reset', () => {
  const b = new DecorrelatedJitter(100, 5000, seededRandom(3))
  const delays = Array.from({ length: 50 }, () => b.next())
  assert.ok(delays.every((d) => d >= 100 && d <= 5000), JSON.stringify(delays))
  assert.ok(delays[0] !== undefined && delays[0] <= 300, 'the first is at most 3 x min')
  assert.ok(Math.max(...delays) > 2000, 'it reaches towards the cap')
  assert.ok(new Set(delays).size > 40, 'jittered, not a fixed ladder')
  b.reset()
  assert.ok(b.next() <= 300)
  assert.throws(() => new DecorrelatedJitter(0, 10), RangeError)
})

test("topic rules follow Mosquitto's: local prefix + pattern <-> bridge prefix + remote prefix + pattern", () => {
  const rules = compileRules(
    [
      { pattern: 'sensors/#', direction: 'out', qos: 1, localPrefix: '', remotePrefix: '' },
      { pattern: '#', direction: 'in', qos: 1, localPrefix: 'cloud/', remotePrefix: 'cmd/' },
      { pattern: '', direction: 'out', qos: 0, localPrefix: 'state/summary', remotePrefix: 'summary' },
    ],
    render('gateways/{gateway_id}/{name}/', { gatewayId: 'pi-1', name: 'c' }),
  )
  assert.equal(toRemote(rules, 'sensors/a/t')?.topic, 'gateways/pi-1/c/sensors/a/t')
  assert.equal(toRemote(rules, 'state/summary')?.topic, 'gateways/pi-1/c/summary', 'an empty pattern maps the prefixes as whole topics')
  assert.equal(toRemote(rules, 'other/x'), undefined)
  assert.equal(toLocal(rules, 'gateways/pi-1/c/cmd/led')?.topic, 'cloud/led')
  assert.equal(toLocal(rules, 'gateways/pi-1/c/sensors/a'), undefined, 'an out rule brings nothing in')
})

test('failures are explained in words, with the code kept', () => {
  const e = (code: string | number, message = 'x'): Error => Object.assign(new Error(message), { code })
  assert.match(explain(e('SELF_SIGNED_CERT_IN_CHAIN'), 'h').reason, /not signed by a CA we trust.*tls\.ca_file/)
  assert.match(explain(e('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'h').reason, /not signed by a CA we trust/)
  assert.match(explain(e('CERT_HAS_EXPIRED'), 'h').reason, /expired .*clock/)
  assert.match(explain(e('ERR_TLS_CERT_ALTNAME_INVALID'), 'broker.example').reason, /not for broker\.example.*server_name/)
  assert.deepEqual([explain(e(4), 'h').kind, explain(e(0x86), 'h').kind], ['auth', 'auth'])
  assert.match(explain(e(5), 'h').reason, /not authorized \(CONNACK 5\)/)
  assert.equal(explain(e('ECONNREFUSED', 'connect ECONNREFUSED'), 'h').kind, 'network')
  assert.equal(explain(new Error('Keepalive timeout'), 'h').kind, 'network')
})

test('echo filter: what was just sent is dropped once when it comes back, anything else passes', () => {
  const f = new EchoFilter()
  f.sent('a/b', Buffer.from('1'))
  f.sent('a/b', Buffer.from('1'))
  assert.equal(f.isEcho('a/b', Buffer.from('2')), false)
  assert.equal(f.isEcho('a/b', Buffer.from('1')), true)
  assert.equal(f.isEcho('a/b', Buffer.from('1')), true, 'sent twice, echoed twice')
  assert.equal(f.isEcho('a/b', Buffer.from('1')), false, 'a third copy is a real message')
  assert.equal(f.suppressed, 2)
})
