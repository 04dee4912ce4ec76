/**
 * End-to-end: the compiled `outpost` binary against Eclipse Mosquitto's own command-line
 * clients (Debian `mosquitto-clients`), the tools operators reach for first, speaking MQTT 3.1 and
 * 3.1.1 (e2e-mosquitto-v5.test.ts has MQTT 5). The process helpers are in helpers/mosquitto-clients.ts.
 */
import * as assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import { MosquittoSub, mosquittoPub, uniqueId, WAIT_MS, type SubMessage } from './helpers/mosquitto-clients.js'
import { startOutpost, type OutpostProcess } from './helpers/outpost-process.js'

/** `-F` format: one line per message, marked so it cannot be confused with `-d` debug lines. */
const FORMAT = 'MSG|%q|%r|%t|%p'

function parseMessage(line: string): SubMessage | undefined {
  if (!line.startsWith('MSG|')) return undefined
  const [, qos, retain, topic, ...payload] = line.split('|')
  return { qos: Number(qos), retain: retain === '1', topic: topic ?? '', payload: payload.join('|') }
}

/** mosquitto_sub -d -F FORMAT args (each test picks the protocol version); see MosquittoSub.start. */
function startSub(t: TestContext, broker: OutpostProcess, args: readonly string[], waitSubscribed = true): Promise<MosquittoSub<SubMessage>> {
  return MosquittoSub.start(t, broker, { args: [], format: FORMAT, parse: parseMessage }, args, waitSubscribed)
}

const VERSIONS = [
  { flag: 'mqttv311', level: 4 },
  { flag: 'mqttv31', level: 3 },
] as const

describe('e2e: mosquitto_pub / mosquitto_sub against the outpost binary', () => {
  for (const v of VERSIONS) {
    for (const qos of [0, 1, 2] as const) {
      test(`QoS ${qos} round trip with -q ${qos} -V ${v.flag}`, async (t) => {
        const broker = await startOutpost(t)
        const id = uniqueId(`sub-q${qos}`)
        const sub = await startSub(t, broker, ['-V', v.flag, '-i', id, '-q', String(qos), '-t', 'mq/rt'])
        await mosquittoPub(broker, ['-V', v.flag, '-q', String(qos), '-t', 'mq/rt', '-m', `hello ${qos}`])
        const m = await sub.waitForMessage((x) => x.topic === 'mq/rt', 'the message')
        assert.deepEqual(m, { qos, retain: false, topic: 'mq/rt', payload: `hello ${qos}` })
        const line = await broker.waitForLog((r) => r.msg === 'client connected' && r.clientId === id, WAIT_MS, 'connect line')
        assert.equal(line.protocolVersion, v.level)
      })
    }
  }

  test('retained with -r: delivered to a later subscriber with the retain flag [MQTT-3.3.1-8], cleared by -r -n [MQTT-3.3.1-10]', async (t) => {
    const broker = await startOutpost(t)
    await mosquittoPub(broker, ['-q', '1', '-r', '-t', 'mq/ret', '-m', 'kept'])
    const late = await startSub(t, broker, ['-q', '1', '-t', 'mq/ret'], false)
    const m = await late.waitForMessage((x) => x.topic === 'mq/ret', 'retained message')
    assert.deepEqual(m, { qos: 1, retain: true, topic: 'mq/ret', payload: 'kept' })

    await mosquittoPub(broker, ['-q', '1', '-r', '-n', '-t', 'mq/ret'])
    const after = await startSub(t, broker, ['-q', '1', '-t', 'mq/ret'])
    await mosquittoPub(broker, ['-q', '1', '-t', 'mq/ret', '-m', 'sentinel'])
    await after.waitForMessage((x) => x.payload === 'sentinel', 'sentinel')
    assert.deepEqual(after.messages.map((x) => x.payload), ['sentinel'], 'no retained message left after -r -n')
  })

  test('will from --will-topic/--will-payload is published when mosquitto_sub is killed [MQTT-3.1.2-8]', async (t) => {
    const broker = await startOutpost(t)
    const watcher = await startSub(t, broker, ['-q', '1', '-t', 'mq/will'])
    const id = uniqueId('dying')
    const dying = await startSub(t, broker, ['-i', id, '-t', 'mq/other', '--will-topic', 'mq/will', '--will-payload', 'killed', '--will-qos', '1'])
    await dying.kill('SIGKILL')
    const m = await watcher.waitForMessage((x) => x.topic === 'mq/will', 'will message')
    assert.deepEqual(m, { qos: 1, retain: false, topic: 'mq/will', payload: 'killed' })
  })

  test('persistent session with -c -i: a QoS 1 message published while offline arrives on restart [MQTT-3.2.2-2]', async (t) => {
    const broker = await startOutpost(t)
    const id = uniqueId('persist')
    const args = ['-c', '-i', id, '-q', '1', '-t', 'mq/persist']
    const first = await startSub(t, broker, args)
    // SIGTERM: mosquitto_sub sends DISCONNECT, the session stays.
    await first.kill('SIGTERM')
    await broker.waitForLog((r) => r.msg === 'client disconnected' && r.clientId === id, WAIT_MS, 'disconnect line')
    await mosquittoPub(broker, ['-q', '1', '-t', 'mq/persist', '-m', 'while you were out'])

    const again = await startSub(t, broker, [...args, '-C', '1'], false)
    const m = await again.waitForMessage((x) => x.topic === 'mq/persist', 'queued message')
    assert.deepEqual(m, { qos: 1, retain: false, topic: 'mq/persist', payload: 'while you were out' })
    // The broker's stdout is another pipe than mosquitto_sub's: its line may be read later.
    const connects = (): unknown[] => broker.records('client connected').filter((r) => r.clientId === id).map((r) => r.sessionPresent)
    await broker.waitForLog(() => connects().length >= 2, WAIT_MS, 'second connect line')
    assert.deepEqual(connects(), [false, true])
    assert.equal((await again.exited).code, 0, '-C 1 exits after the message')
  })
})
