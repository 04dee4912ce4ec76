/**
 * The mapping rules of a port, without a port: readings in, publications out. Throttle tests use
 * short real intervals and wait on the publications themselves.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { defaultSerialPort } from '../src/config/defaults.js'
import type { MappingRule, SerialPortConfig } from '../src/config/serial-types.js'
import { ReadingMapper, type Publication, type ReadingValue } from '../src/serial/mapper.js'

function port(mapping: Partial<MappingRule> = {}, rest: Partial<SerialPortConfig> = {}): SerialPortConfig {
  const base = defaultSerialPort('p1', { path: '/dev/null' })
  return { ...base, ...rest, mapping: { ...base.mapping, timestamp: 'none', ...mapping } }
}

function mapper(config: SerialPortConfig): { m: ReadingMapper; out: Publication[] } {
  const out: Publication[] = []
  const m = new ReadingMapper(config, (p) => out.push(p))
  return { m, out }
}

const values = (o: Record<string, number | string | boolean>): ReadingValue[] => Object.entries(o).map(([field, value]) => ({ field, value }))

function until(check: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (check()) resolve()
      else if (Date.now() > deadline) reject(new Error('condition not met in time'))
      else setTimeout(tick, 5)
    }
    tick()
  })
}

test('json output: one object per reading on the device topic, with the port QoS and retain', () => {
  const { m, out } = mapper(port({ qos: 1, retain: true }))
  m.push('boiler', values({ t: 21.5, on: true, mode: 'eco' }))
  assert.deepEqual(out, [{ topic: 'sensors/boiler', payload: '{"t":21.5,"on":true,"mode":"eco"}', qos: 1, retain: true }])
})

test('fields output: one topic per field, values as plain text; both gives both', () => {
  const { m, out } = mapper(port({ output: 'fields', fieldTopic: 'home/{port}/{device}/{field}' }))
  m.push('boiler', values({ t: 21.5, on: true }))
  assert.deepEqual(out.map((p) => [p.topic, p.payload]), [['home/p1/boiler/t', '21.5'], ['home/p1/boiler/on', 'true']])
  const both = mapper(port({ output: 'both' }))
  both.m.push('boiler', values({ t: 1 }))
  assert.deepEqual(both.out.map((p) => p.topic), ['sensors/boiler', 'sensors/boiler/t'])
})

test('timestamps: iso and epoch_ms add a time key to JSON only', () => {
  const iso = mapper(port({ timestamp: 'iso', output: 'both' }))
  iso.m.push('d', values({ t: 1 }))
  const obj = JSON.parse(iso.out[0]?.payload ?? '') as { time: string }
  assert.ok(Math.abs(Date.parse(obj.time) - Date.now()) < 2000)
  assert.equal(iso.out[1]?.payload, '1', 'a field topic carries the bare value')
  const ms = mapper(port({ timestamp: 'epoch_ms' }))
  ms.m.push('d', values({ t: 1 }))
  assert.equal(typeof (JSON.parse(ms.out[0]?.payload ?? '') as { time: unknown }).time, 'number')
})

test('field rules: rename, scale, precision, unit, ignore; float32 shown at its own precision', () => {
  const { m, out } = mapper(
    port({
      output: 'both',
      fields: { raw_t: { name: 'temperature', scale: 0.1, unit: '°C' }, v: { scale: 3, precision: 1 }, noise: { ignore: true } },
    }),
  )
  m.push('d', [
    { field: 'raw_t', value: 215 },
    { field: 'v', value: 0.1 },
    { field: 'noise', value: 7 },
    { field: 'f', value: Math.fround(21.3), float32: true, unit: '%' },
  ])
  assert.equal(out[0]?.payload, '{"temperature":21.5,"v":0.3,"f":21.3}')
  const t = out.find((p) => p.topic === 'sensors/d/temperature')
  assert.deepEqual(t?.userProperties, [['unit', '°C']])
  assert.deepEqual(out.find((p) => p.topic === 'sensors/d/f')?.userProperties, [['unit', '%']], 'the unit a HELLO announced')
  assert.equal(out.find((p) => p.topic === 'sensors/d/noise'), undefined)
})

test('a device entry overrides the port rule, and its field rules merge with the port field rules', () => {
  const config = port(
    { output: 'json', fields: { t: { scale: 10, unit: 'x' } } },
    { devices: { special: { output: 'fields', qos: 2, fields: { t: { name: 'temp' } } } } },
  )
  const { m, out } = mapper(config)
  m.push('plain', values({ t: 2 }))
  m.push('special', values({ t: 2 }))
  assert.deepEqual(out.map((p) => [p.topic, p.payload, p.qos]), [
    ['sensors/plain', '{"t":20}', 0],
    ['sensors/special/temp', '20', 2],
  ])
})

test('per-field QoS and retain apply to field topics', () => {
  const { m, out } = mapper(port({ output: 'fields', fields: { door: { qos: 1, retain: true } } }))
  m.push('d', values({ door: 'open', t: 1 }))
  assert.deepEqual(out.map((p) => [p.topic, p.qos, p.retain]), [['sensors/d/door', 1, true], ['sensors/d/t', 0, false]])
})

test('deadband: a number is published only after moving at least N from the last published value', () => {
  const { m, out } = mapper(port({ output: 'fields', deadband: 0.5 }))
  for (const t of [20, 20.2, 20.4, 20.6, 20.3, 21.2, 21.2]) m.push('d', values({ t }))
  assert.deepEqual(out.map((p) => p.payload), ['20', '20.6', '21.2'])
})

test('deadband on JSON: published when any field moved past its own band; strings publish on change', () => {
  const { m, out } = mapper(port({ deadband: 1, fields: { h: { deadband: 5 } } }))
  m.push('d', values({ t: 20, h: 50, s: 'a' }))
  m.push('d', values({ t: 20.5, h: 53, s: 'a' })) // nothing moved enough
  m.push('d', values({ t: 20.5, h: 56, s: 'a' })) // h moved 6
  m.push('d', values({ t: 20.5, h: 56, s: 'b' })) // s changed
  assert.deepEqual(out.map((p) => JSON.parse(p.payload) as unknown), [
    { t: 20, h: 50, s: 'a' },
    { t: 20.5, h: 56, s: 'a' },
    { t: 20.5, h: 56, s: 'b' },
  ])
})

test('throttle: at most one message per interval per topic, and the last value wins', async () => {
  const { m, out } = mapper(port({ output: 'fields', throttle: 0.15 }))
  const started = Date.now()
  for (let i = 1; i <= 5; i++) m.push('d', values({ t: i }))
  assert.deepEqual(out.map((p) => p.payload), ['1'], 'the first goes at once')
  await until(() => out.length === 2)
  assert.equal(out[1]?.payload, '5', 'the newest pending value, not the second')
  assert.ok(Date.now() - started >= 140, `after the interval (${Date.now() - started} ms)`)
  m.close()
})

test('throttle with JSON: fields arriving in separate readings are merged into the pending object', async () => {
  const { m, out } = mapper(port({ throttle: 0.1 }))
  m.push('d', values({ t: 1 }))
  m.push('d', values({ t: 2 }))
  m.push('d', values({ h: 40 }))
  await until(() => out.length === 2)
  assert.deepEqual(JSON.parse(out[1]?.payload ?? ''), { t: 2, h: 40 })
  m.close()
})

test('a per-field throttle overrides the port throttle; close() cancels what is pending', async () => {
  const { m, out } = mapper(port({ output: 'fields', throttle: 0, fields: { slow: { throttle: 10 } } }))
  m.push('d', values({ slow: 1, fast: 1 }))
  m.push('d', values({ slow: 2, fast: 2 }))
  assert.deepEqual(out.map((p) => `${p.topic}=${p.payload}`), ['sensors/d/slow=1', 'sensors/d/fast=1', 'sensors/d/fast=2'])
  m.close()
  await new Promise((r) => setTimeout(r, 30))
  assert.equal(out.length, 3, 'the pending slow=2 was dropped, not published late')
})

test('device names are one topic level: / + # in a device id become _', () => {
  const { m, out } = mapper(port())
  m.push('a/b+#', values({ t: 1 }))
  assert.equal(out[0]?.topic, 'sensors/a_b__')
})
