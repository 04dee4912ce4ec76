/**
 * End-to-end: the compiled `outpost` binary against Eclipse Mosquitto's command-line clients
 * (Debian `mosquitto-clients` 2.0.11) speaking MQTT 5: `-V mqttv5` (also spelled `-V 5`), v5
 * properties set with `-D COMMAND identifier value` and printed by mosquitto_sub's `-F` codes
 * (%P user properties as `name:value` separated by spaces, %C content type, %R response topic,
 * %D correlation data, %E message expiry, %F payload format, %A topic alias, %S subscription
 * identifier; each empty when the property is absent).
 *
 * The mosquitto_sub/pub process helpers are in helpers/mosquitto-clients.ts. "Nothing else
 * arrived" is checked with a sentinel published afterwards on the same path.
 */
import * as assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import { MosquittoSub, mosquittoPub as runPub, uniqueId as unique, WAIT_MS, type SubMessage as BaseMessage } from './helpers/mosquitto-clients.js'
import { startOutpost, type LogRecord, type OutpostProcess } from './helpers/outpost-process.js'

function uniqueId(name: string): string {
  return unique(name, 'e2e5')
}

/** The v5 properties mosquitto_sub can print, by the name used in the assertions. */
const PROPS = [
  ['userProperties', 'P'],
  ['contentType', 'C'],
  ['responseTopic', 'R'],
  ['correlationData', 'D'],
  ['messageExpiry', 'E'],
  ['payloadFormat', 'F'],
  ['topicAlias', 'A'],
  ['subscriptionId', 'S'],
] as const

interface SubMessage extends BaseMessage {
  /** The properties present on the PUBLISH, as mosquitto_sub printed them. */
  props: Record<string, string>
}

/** `-F` format: one line per message, marked so it cannot be confused with `-d` debug lines. */
const FORMAT = `MSG|%q|%r|%t|${PROPS.map(([, code]) => `%${code}`).join('|')}|%p`

function parseMessage(line: string): SubMessage | undefined {
  if (!line.startsWith('MSG|')) return undefined
  const [, qos, retain, topic, ...rest] = line.split('|')
  const props: Record<string, string> = {}
  for (const [name] of PROPS) {
    const value = rest.shift() ?? ''
    if (value !== '') props[name] = value
  }
  return { qos: Number(qos), retain: retain === '1', topic: topic ?? '', props, payload: rest.join('|') }
}

/** `mosquitto_sub -V mqttv5 -d -F FORMAT args`; see MosquittoSub.start. */
function startSub(t: TestContext, broker: OutpostProcess, args: readonly string[], waitSubscribed = true): Promise<MosquittoSub<SubMessage>> {
  return MosquittoSub.start(t, broker, { args: ['-V', 'mqttv5'], format: FORMAT, parse: parseMessage }, args, waitSubscribed)
}

/** `mosquitto_pub -V 5 args` to completion (feeding `input` on stdin), asserted to succeed. */
function mosquittoPub(broker: OutpostProcess, args: readonly string[], input?: string): Promise<void> {
  return runPub(broker, ['-V', '5', ...args], input)
}

function connectLines(broker: OutpostProcess, clientId: string): LogRecord[] {
  return broker.records('client connected').filter((r) => r.clientId === clientId)
}

/** The broker's log time of a record, in ms. */
function logTime(r: LogRecord): number {
  return typeof r.time === 'number' ? r.time : Date.parse(String(r.time))
}

describe('e2e: mosquitto_pub / mosquitto_sub -V 5 against the outpost binary', () => {
  for (const qos of [0, 1, 2] as const) {
    test(`QoS ${qos} round trip with -V mqttv5 / -V 5, no properties and no topic alias unasked [MQTT-3.1.2-27]`, async (t) => {
      const broker = await startOutpost(t)
      const subId = uniqueId(`sub-q${qos}`)
      const pubId = uniqueId(`pub-q${qos}`)
      const sub = await startSub(t, broker, ['-i', subId, '-q', String(qos), '-t', 'v5/rt'])
      await mosquittoPub(broker, ['-i', pubId, '-q', String(qos), '-t', 'v5/rt', '-m', `hello ${qos}`])
      const m = await sub.waitForMessage((x) => x.topic === 'v5/rt', 'the message')
      assert.deepEqual(m, { qos, retain: false, topic: 'v5/rt', props: {}, payload: `hello ${qos}` })
      for (const id of [subId, pubId]) {
        const line = await broker.waitForLog((r) => r.msg === 'client connected' && r.clientId === id, WAIT_MS, `connect line of ${id}`)
        assert.equal(line.protocolVersion, 5, `${id} connected with MQTT 5`)
      }
    })
  }

  test('user properties from -D PUBLISH user-property arrive unaltered and in order, repeated names included [MQTT-3.3.2-17] [MQTT-3.3.2-18]', async (t) => {
    const broker = await startOutpost(t)
    const sub = await startSub(t, broker, ['-q', '1', '-t', 'v5/up'])
    const pairs = [['zeta', '1'], ['alpha', '2'], ['zeta', '3'], ['mid', 'x=y']]
    await mosquittoPub(broker, ['-q', '1', '-t', 'v5/up', '-m', 'with props', ...pairs.flatMap(([k, v]) => ['-D', 'PUBLISH', 'user-property', k ?? '', v ?? ''])])
    const m = await sub.waitForMessage((x) => x.topic === 'v5/up', 'the message')
    assert.deepEqual(m.props, { userProperties: pairs.map(([k, v]) => `${k}:${v}`).join(' ') })
    assert.equal(m.payload, 'with props')
  })

  test('content type, response topic, correlation data and payload format indicator pass through unaltered [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-20]', async (t) => {
    const broker = await startOutpost(t)
    const sub = await startSub(t, broker, ['-q', '2', '-t', 'v5/req'])
    await mosquittoPub(broker, [
      '-q', '2', '-t', 'v5/req', '-m', '{"cmd":"ping"}',
      '-D', 'PUBLISH', 'content-type', 'application/json',
      '-D', 'PUBLISH', 'response-topic', 'v5/reply/abc',
      '-D', 'PUBLISH', 'correlation-data', 'req-0042',
      '-D', 'PUBLISH', 'payload-format-indicator', '1',
    ])
    const m = await sub.waitForMessage((x) => x.topic === 'v5/req', 'the request')
    assert.deepEqual(m, {
      qos: 2,
      retain: false,
      topic: 'v5/req',
      props: { contentType: 'application/json', responseTopic: 'v5/reply/abc', correlationData: 'req-0042', payloadFormat: '1' },
      payload: '{"cmd":"ping"}',
    })
  })

  test('message expiry: forwarded as the remaining lifetime; a message that expires while the subscriber is away is not delivered [MQTT-3.3.2-5] [MQTT-3.3.2-6]', async (t) => {
    const broker = await startOutpost(t)
    const id = uniqueId('expiry')
    const args = ['-c', '-x', '60', '-i', id, '-q', '1', '-t', 'v5/exp']
    const first = await startSub(t, broker, args)
    await mosquittoPub(broker, ['-q', '1', '-t', 'v5/exp', '-m', 'live', '-D', 'PUBLISH', 'message-expiry-interval', '10'])
    const live = await first.waitForMessage((x) => x.payload === 'live', 'the live message')
    const left = Number(live.props.messageExpiry)
    assert.ok(left > 0 && left <= 10, `live delivery carries Message Expiry Interval ${live.props.messageExpiry}, expected 1..10`)

    await first.kill('SIGTERM')
    await broker.waitForLog((r) => r.msg === 'client disconnected' && r.clientId === id, WAIT_MS, 'disconnect line')
    const publishedAt = Date.now()
    await mosquittoPub(broker, ['-q', '1', '-t', 'v5/exp', '-m', 'short-lived', '-D', 'PUBLISH', 'message-expiry-interval', '1'])
    await mosquittoPub(broker, ['-q', '1', '-t', 'v5/exp', '-m', 'long-lived', '-D', 'PUBLISH', 'message-expiry-interval', '60'])
    // Waiting out the 1 s lifetime is the point of the test; a little over, not a guess at a race.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, publishedAt + 1_200 - Date.now())))

    const again = await startSub(t, broker, args, false)
    await again.waitUntil(() => again.lines.some((l) => l.startsWith('Subscribed ')), 'SUBACK')
    await mosquittoPub(broker, ['-q', '1', '-t', 'v5/exp', '-m', 'sentinel'])
    await again.waitForMessage((x) => x.payload === 'sentinel', 'sentinel')
    assert.deepEqual(again.received.map((m) => m.payload), ['long-lived'], 'only the message with lifetime left')
    const remaining = Number(again.received[0]?.props.messageExpiry)
    assert.ok(remaining >= 1 && remaining <= 59, `queued message forwarded with Message Expiry Interval ${again.received[0]?.props.messageExpiry}, expected 60 minus >= 1.2 s waiting`)
  })

  test('retained with -r: a later subscriber gets it with the retain flag and its properties [MQTT-3.3.1-8] [MQTT-3.3.2-17]', async (t) => {
    const broker = await startOutpost(t)
    const live = await startSub(t, broker, ['-q', '1', '-t', 'v5/ret'])
    await mosquittoPub(broker, ['-q', '1', '-r', '-t', 'v5/ret', '-m', 'kept', '-D', 'PUBLISH', 'user-property', 'source', 'sensor-7', '-D', 'PUBLISH', 'content-type', 'text/plain'])
    const props = { userProperties: 'source:sensor-7', contentType: 'text/plain' }
    // An existing subscriber gets the live publish with retain 0 [MQTT-3.3.1-9].
    assert.deepEqual(await live.waitForMessage((x) => x.topic === 'v5/ret', 'live retained publish'), { qos: 1, retain: false, topic: 'v5/ret', props, payload: 'kept' })
    const late = await startSub(t, broker, ['-q', '1', '-t', 'v5/ret'])
    assert.deepEqual(await late.waitForMessage((x) => x.topic === 'v5/ret', 'retained message'), { qos: 1, retain: true, topic: 'v5/ret', props, payload: 'kept' })
  })

  test('session expiry -x 60: a QoS 1 message published while the client is away arrives on its return [MQTT-3.1.2-23]', async (t) => {
    const broker = await startOutpost(t)
    const id = uniqueId('persist')
    const args = ['-c', '-x', '60', '-i', id, '-q', '1', '-t', 'v5/persist']
    const first = await startSub(t, broker, args)
    // SIGTERM: mosquitto_sub sends DISCONNECT; the session outlives the connection by 60 s.
    await first.kill('SIGTERM')
    await broker.waitForLog((r) => r.msg === 'client disconnected' && r.clientId === id, WAIT_MS, 'disconnect line')
    await mosquittoPub(broker, ['-q', '1', '-t', 'v5/persist', '-m', 'while you were out', '-D', 'PUBLISH', 'user-property', 'k', 'v'])

    const again = await startSub(t, broker, [...args, '-C', '1'], false)
    const m = await again.waitForMessage((x) => x.topic === 'v5/persist', 'queued message')
    assert.deepEqual(m, { qos: 1, retain: false, topic: 'v5/persist', props: { userProperties: 'k:v' }, payload: 'while you were out' })
    await broker.waitForLog(() => connectLines(broker, id).length >= 2, WAIT_MS, 'second connect line')
    assert.deepEqual(connectLines(broker, id).map((r) => [r.sessionPresent, r.sessionExpiry]), [[false, 60], [true, 60]])
    assert.equal((await again.exited).code, 0, '-C 1 exits after the message')
  })

  test('session expiry -x 1: the session is removed about 1 s after the disconnect and messages for it are gone [MQTT-3.1.2-23]', async (t) => {
    const broker = await startOutpost(t)
    const id = uniqueId('expire')
    const args = ['-c', '-x', '1', '-i', id, '-q', '1', '-t', 'v5/gone']
    const first = await startSub(t, broker, args)
    await first.kill('SIGTERM')
    const disconnected = await broker.waitForLog((r) => r.msg === 'client disconnected' && r.clientId === id, WAIT_MS, 'disconnect line')
    await mosquittoPub(broker, ['-q', '1', '-t', 'v5/gone', '-m', 'for a session about to expire'])
    const expired = await broker.waitForLog((r) => r.msg === 'persistent session expired' && r.clientId === id, 3_000, 'session expiry line')
    // The disconnect line is written just after the expiry clock starts, hence a little slack
    // below 1 s; above, the broker's 500 ms sweep and a busy CI machine.
    const after = logTime(expired) - logTime(disconnected)
    assert.ok(after >= 950 && after <= 2_500, `session removed ${after} ms after the disconnect, expected 1-2.5 s`)

    const again = await startSub(t, broker, args)
    await mosquittoPub(broker, ['-q', '1', '-t', 'v5/gone', '-m', 'sentinel'])
    await again.waitForMessage((x) => x.payload === 'sentinel', 'sentinel')
    assert.deepEqual(again.received, [], 'nothing from the expired session')
    assert.deepEqual(connectLines(broker, id).map((r) => r.sessionPresent), [false, false])
  })

  test('shared subscription $share/g/...: two mosquitto_sub -V 5 share the messages, each message to exactly one [MQTT-4.8.2]', async (t) => {
    const broker = await startOutpost(t)
    const filters = ['-q', '1', '-t', '$share/g/v5/jobs', '-t', 'v5/jobs/end']
    const members = [await startSub(t, broker, filters), await startSub(t, broker, filters)]
    for (const m of members) assert.ok(m.lines.includes('Subscribed (mid: 1): 1, 1'), `both filters granted QoS 1: ${m.lines.join('\n')}`)
    const jobs = Array.from({ length: 10 }, (_, i) => `job-${i}`)
    // -l: one PUBLISH per stdin line, all on one connection.
    await mosquittoPub(broker, ['-q', '1', '-t', 'v5/jobs', '-l'], `${jobs.join('\n')}\n`)
    await mosquittoPub(broker, ['-q', '1', '-t', 'v5/jobs/end', '-m', 'sentinel'])
    for (const m of members) await m.waitForMessage((x) => x.payload === 'sentinel', 'sentinel')
    const [a, b] = members.map((m) => m.received) as [SubMessage[], SubMessage[]]
    const all = [...a, ...b].map((m) => m.payload).sort((x, y) => Number(x.slice(4)) - Number(y.slice(4)))
    assert.deepEqual(all, jobs, 'each message delivered once, to one member')
    assert.ok(a.length > 0 && b.length > 0, `both members got messages: ${a.length} and ${b.length}`)
    for (const m of [...a, ...b]) assert.equal(m.topic, 'v5/jobs', 'delivered on the topic name, not the $share filter')
  })

  test('-D CONNECT topic-alias-maximum 5: aliases stay within 1..5 and every message has its own topic [MQTT-3.1.2-26] [MQTT-3.3.2-12]', async (t) => {
    const broker = await startOutpost(t)
    const sub = await startSub(t, broker, ['-q', '1', '-t', 'v5/al/#', '-D', 'CONNECT', 'topic-alias-maximum', '5'])
    // libmosquitto 2.0.11 refuses a PUBLISH with an empty topic name even when it carries a known
    // alias (eclipse/mosquitto#1468), so no topic repeats while its alias is still mapped: eight
    // topics, twice round, through five aliases, so each one is evicted (LRU) before it comes back
    // and the broker must send the name again with a reassigned alias.
    const topics = Array.from({ length: 8 }, (_, i) => `v5/al/topic-${i}`)
    const sent = [...topics, ...topics]
    for (const [i, topic] of sent.entries()) await mosquittoPub(broker, ['-q', '1', '-t', topic, '-m', `m${i}`])
    await sub.waitUntil(() => sub.messages.length >= sent.length, `${sent.length} messages`)
    assert.deepEqual(sub.messages.map((m) => [m.topic, m.payload]), sent.map((topic, i) => [topic, `m${i}`]))
    const aliases = sub.messages.map((m) => m.props.topicAlias)
    for (const a of aliases) assert.ok(a === undefined || (Number(a) >= 1 && Number(a) <= 5), `alias ${a} within the client's maximum 5`)
    assert.ok(aliases.some((a) => a !== undefined), `the broker used topic aliases: ${JSON.stringify(aliases)}`)
  })

  test('v5 will with -D WILL properties is published with them when the client is killed [MQTT-3.1.2-8] [MQTT-3.3.2-17]', async (t) => {
    const broker = await startOutpost(t)
    const watcher = await startSub(t, broker, ['-q', '1', '-t', 'v5/will/#'])
    const dying = await startSub(t, broker, [
      '-i', uniqueId('dying'), '-t', 'v5/other',
      '--will-topic', 'v5/will/a', '--will-payload', 'killed', '--will-qos', '1',
      '-D', 'WILL', 'user-property', 'reason', 'kill-9',
      '-D', 'WILL', 'content-type', 'text/plain',
      '-D', 'WILL', 'response-topic', 'v5/will/reply',
      '-D', 'WILL', 'correlation-data', 'w-1',
    ])
    await dying.kill('SIGKILL')
    const m = await watcher.waitForMessage((x) => x.topic === 'v5/will/a', 'will message')
    assert.deepEqual(m, {
      qos: 1,
      retain: false,
      topic: 'v5/will/a',
      props: { userProperties: 'reason:kill-9', contentType: 'text/plain', responseTopic: 'v5/will/reply', correlationData: 'w-1' },
      payload: 'killed',
    })
  })

  test('-D WILL will-delay-interval 1: the will waits 1 s, and a client back within the delay cancels its will [MQTT-3.1.3-9]', async (t) => {
    const broker = await startOutpost(t)
    const watcher = await startSub(t, broker, ['-q', '1', '-t', 'v5/delay/#'])
    const willArgs = (name: string): string[] => ['-c', '-x', '30', '-t', 'v5/other', '--will-topic', `v5/delay/${name}`, '--will-payload', name, '--will-qos', '1', '-D', 'WILL', 'will-delay-interval', '1']
    // "back" dies first and returns at once: its will would be due no later than "gone"'s.
    const backId = uniqueId('back')
    const back = await startSub(t, broker, ['-i', backId, ...willArgs('back')])
    await back.kill('SIGKILL')
    await broker.waitForLog((r) => r.msg === 'client disconnected' && r.clientId === backId, WAIT_MS, 'disconnect line of "back"')
    await startSub(t, broker, ['-i', backId, '-c', '-x', '30', '-t', 'v5/other'])

    const gone = await startSub(t, broker, ['-i', uniqueId('gone'), ...willArgs('gone')])
    const killedAt = Date.now()
    await gone.kill('SIGKILL')
    await watcher.waitForMessage((x) => x.topic === 'v5/delay/gone', 'the delayed will')
    const after = Date.now() - killedAt
    assert.ok(after >= 1_000 && after <= 3_000, `will published ${after} ms after the kill, expected 1-3 s`)
    await mosquittoPub(broker, ['-q', '1', '-t', 'v5/delay/end', '-m', 'sentinel'])
    await watcher.waitForMessage((x) => x.payload === 'sentinel', 'sentinel')
    assert.deepEqual(watcher.received.map((m) => m.topic), ['v5/delay/gone'], 'no will from the client that came back')
  })
})
