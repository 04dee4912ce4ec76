import assert from 'node:assert/strict'
import { test } from 'node:test'
import { TopicTemplate } from '../src/serial/template.js'

function parse(source: string): TopicTemplate {
  const t = TopicTemplate.parse(source, ['port', 'device', 'field'])
  assert.ok(t instanceof TopicTemplate, String(t))
  return t
}

test('render fills placeholders; a value cannot add topic levels or wildcards', () => {
  const t = parse('site/{port}/{device}/{field}')
  assert.equal(t.render({ port: 'p', device: 'boiler', field: 't' }), 'site/p/boiler/t')
  assert.equal(t.render({ port: 'p', device: 'a/b', field: '+#' }), 'site/p/a_b/__')
  assert.equal(parse('x/{device}-raw').render({ device: 'd' }), 'x/d-raw', 'a placeholder may share a level with text')
})

test('parse refuses unknown placeholders and unbalanced braces with a reason', () => {
  assert.match(String(TopicTemplate.parse('a/{dev}', ['device'])), /unknown placeholder \{dev\}; this key takes \{device\}/)
  assert.match(String(TopicTemplate.parse('a/{device', ['device'])), /unbalanced/)
  assert.match(String(TopicTemplate.parse('a/device}', ['device'])), /unbalanced/)
})

test('wholeLevels: only placeholders that fill a level can become + in a filter', () => {
  assert.equal(parse('a/{device}/set/#').wholeLevels, true)
  assert.equal(parse('{device}').wholeLevels, true)
  assert.equal(parse('a/{device}-x/#').wholeLevels, false)
})

test('toFilter and match: the device and what # matched are read back from a topic', () => {
  const t = parse('sensors/{device}/set/#')
  assert.equal(t.toFilter(), 'sensors/+/set/#')
  assert.equal(t.toFilter({ device: 'd1' }), 'sensors/d1/set/#')
  assert.deepEqual(t.match('sensors/d1/set/led'), { device: 'd1', rest: 'led' })
  assert.deepEqual(t.match('sensors/d1/set'), { device: 'd1', rest: '' })
  assert.deepEqual(t.match('sensors/d1/set/a/b'), { device: 'd1', rest: 'a/b' })
  assert.equal(t.match('sensors/d1/get/led'), undefined)
  assert.equal(t.match('sensors'), undefined)
  const exact = parse('cmd/{port}/{device}')
  assert.deepEqual(exact.match('cmd/p/d'), { port: 'p', device: 'd' })
  assert.equal(exact.match('cmd/p/d/extra'), undefined)
  assert.equal(exact.match('cmd/p'), undefined)
})
