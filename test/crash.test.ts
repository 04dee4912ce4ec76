/**
 * Crash and restart: the compiled `outpost` binary as a child process, killed with SIGKILL (a
 * crash: nothing flushed, nothing closed) or stopped with SIGTERM (a clean shutdown), then started
 * again on the same data dir. What the broker acknowledged before it went down must still be
 * there after: a PUBACK / PUBREC / SUBACK is a promise that the message or subscription is on
 * disk (issue 4).
 *
 * Crash rounds stream QoS 1 or QoS 2 messages as fast as the publisher's window allows and
 * SIGKILL the broker at the n-th acknowledgement, n chosen by a seeded PRNG. The seeds are random
 * unless OUTPOST_CRASH_SEEDS=s1,s2,... is set; each round prints its seed and what it chose, so a
 * failing round replays with e.g. `OUTPOST_CRASH_SEEDS=123,456,789 node scripts/run-tests.mjs crash`.
 * (A replay repeats the kill point, counted in acks, not the exact timing inside the broker.)
 *
 * Restart tests take one kind of stored state each (subscriptions, retained messages, queued and
 * in-flight messages, an incoming QoS 2 message awaiting PUBREL, wills) through a SIGTERM restart
 * and a SIGKILL restart.
 *
 * "Nothing else arrived" is checked with a sentinel published last on the same path; no fixed sleeps.
 */
import assert from 'node:assert/strict'
import { randomInt } from 'node:crypto'
import { describe, test, type TestContext } from 'node:test'
import type { IConnackPacket, IConnectPacket, Packet, QoS } from 'mqtt-packet'
import { between, isCmd, Receiver, seededRandom, Streamer, Wire, type Address, type Delivery } from './helpers/crash-clients.js'
import { restartOutpost, startOutpost, type OutpostProcess, type StartOptions } from './helpers/outpost-process.js'

/** $SYS off: nothing in these tests subscribes to it, and it is one less thing writing. */
const BASE_CONFIG = { sys_interval: 0 }
/**
 * No queue cap: with the default (1000, drop_oldest) an offline subscriber's queue would drop
 * acknowledged messages by design, which is not what these rounds test.
 */
const CRASH_CONFIG = { ...BASE_CONFIG, max_queued_messages: 0 }
const RESTART_OPTIONS: StartOptions = { config: BASE_CONFIG }

const SEEDS: readonly number[] = (() => {
  const env = process.env.OUTPOST_CRASH_SEEDS
  if (env !== undefined && env.trim() !== '') return env.split(',').map((s) => Number.parseInt(s.trim(), 10))
  return [randomInt(1, 2 ** 31), randomInt(1, 2 ** 31), randomInt(1, 2 ** 31)]
})()

/** Rejects with `what` when `promise` takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what()} (after ${ms} ms)`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** A plain client: every packet it gets is in `wire.received`; it acknowledges nothing by itself. */
async function client(t: TestContext, at: Address, clientId: string, connect: Partial<IConnectPacket> = {}): Promise<{ wire: Wire; connack: IConnackPacket }> {
  return Wire.connect(t, at, { clientId, ...connect })
}

let nextMessageId = 1
/** Packet ids unique across the file, so a wait for "the PUBACK for id n" cannot match an older one. */
function messageId(): number {
  const id = nextMessageId
  nextMessageId = id === 65535 ? 1 : id + 1
  return id
}

/** SUBSCRIBE and the granted QoS from the SUBACK. */
async function subscribe(wire: Wire, filters: ReadonlyArray<readonly [string, QoS]>): Promise<number[]> {
  const id = messageId()
  wire.send({ cmd: 'subscribe', messageId: id, subscriptions: filters.map(([topic, qos]) => ({ topic, qos })) })
  const ack = await wire.packet(isCmd('suback', id), `SUBACK ${id}`)
  return ack.granted.map(Number)
}

async function unsubscribe(wire: Wire, filters: readonly string[]): Promise<void> {
  const id = messageId()
  wire.send({ cmd: 'unsubscribe', messageId: id, unsubscriptions: [...filters] })
  await wire.packet(isCmd('unsuback', id), `UNSUBACK ${id}`)
}

/**
 * Publishes and completes the flow: PUBACK for QoS 1, PUBREC-PUBREL-PUBCOMP for QoS 2. For QoS 0
 * a QoS 1 message to a topic nobody uses follows, so that once its PUBACK is in, the broker has
 * read and handled the QoS 0 one too (it handles a connection's packets in order).
 */
async function publish(wire: Wire, topic: string, payload: string, qos: QoS, retain = false): Promise<void> {
  if (qos === 0) {
    wire.send({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, dup: false, retain })
    await publish(wire, 'nobody/listens', 'x', 1)
    return
  }
  const id = messageId()
  wire.send({ cmd: 'publish', topic, payload: Buffer.from(payload), qos, messageId: id, dup: false, retain })
  if (qos === 1) {
    await wire.packet(isCmd('puback', id), `PUBACK ${id} for ${topic}`)
    return
  }
  await wire.packet(isCmd('pubrec', id), `PUBREC ${id} for ${topic}`)
  wire.send({ cmd: 'pubrel', messageId: id })
  await wire.packet(isCmd('pubcomp', id), `PUBCOMP ${id} for ${topic}`)
}

/**
 * Makes everything the broker has written so far durable before the test goes on. Some writes
 * are, by design, not waited for (a packet id given to a QoS 1 delivery, an ack, a will stored
 * at CONNECT or at disconnect: losing one of those costs a duplicate, not a message). Tests about
 * what a restart restores, rather than about that window, pass this barrier first: a retained
 * QoS 1 PUBLISH is acknowledged only after its write, and the store commits in order, so
 * everything written before it is on disk once the PUBACK is in.
 */
async function durable(t: TestContext, at: Address): Promise<void> {
  const { wire } = await client(t, at, `barrier-${messageId()}`)
  await publish(wire, 'barrier/retained', 'barrier', 1, true)
  await wire.disconnect()
}

/** Publishes `payload` to `topic` at QoS 1 from a fresh client and waits until `receiver` has it. */
async function sentinel(t: TestContext, at: Address, receiver: Receiver, topic: string, timeoutMs = 5_000): Promise<void> {
  const { wire } = await client(t, at, `sentinel-${messageId()}`)
  await publish(wire, topic, 'sentinel', 1)
  await receiver.waitFor((d) => d.topic === topic && d.payload === 'sentinel', `sentinel on ${topic}`, timeoutMs)
  await wire.disconnect()
}

/** How many times each string occurs. */
function counts(values: readonly string[]): Map<string, number> {
  const out = new Map<string, number>()
  for (const v of values) out.set(v, (out.get(v) ?? 0) + 1)
  return out
}

/** Up to `n` items of a list, for failure messages. */
function some(values: readonly number[], n = 20): string {
  return values.length <= n ? JSON.stringify(values) : `${JSON.stringify(values.slice(0, n))} and ${values.length - n} more`
}

function summarize(deliveries: readonly Delivery[]): string {
  return JSON.stringify(deliveries.map((d) => [d.topic, d.payload, d.qos, d.dup ? 'dup' : ''].join(' ')))
}

/** What one crash round did and saw; printed as a diagnostic. */
interface RoundReport {
  seed: number
  qos: 1 | 2
  window: number
  killAt: number
  subscriber: 'online' | 'offline'
  ackDelayMs: number
  durability: 'sync' | 'os'
  sent: number
  acked: number
  completed: number
  resentPublish: number
  resentPubrel: number
  deliveredTotal: number
  deliveredUnique: number
  duplicates: number
  withoutAck: number
  suppressedDupPublish: number
  ms: number
}

function report(t: TestContext, r: RoundReport): void {
  const ackName = r.qos === 1 ? 'PUBACKed' : 'PUBRECed'
  t.diagnostic(
    `seed ${r.seed} (replay: OUTPOST_CRASH_SEEDS=${r.seed}): QoS ${r.qos}, window ${r.window}, SIGKILL at ${ackName} #${r.killAt}, ` +
      `subscriber ${r.subscriber} (ack delay ${r.ackDelayMs} ms), durability ${r.durability}; ` +
      `sent ${r.sent}, ${ackName} ${r.acked}` +
      (r.qos === 2 ? `, PUBCOMPed ${r.completed}, resent ${r.resentPublish} PUBLISH + ${r.resentPubrel} PUBREL after restart` : '') +
      `; delivered ${r.deliveredUnique} unique / ${r.deliveredTotal} in all, duplicates ${r.duplicates}, ` +
      `delivered without ${r.qos === 1 ? 'PUBACK' : 'PUBREC'} ${r.withoutAck}` +
      (r.qos === 2 ? `, DUP resends the subscriber held back ${r.suppressedDupPublish}` : '') +
      `; ${r.ms} ms`,
  )
}

interface RoundPlan {
  seed: number
  subscriber: 'online' | 'offline'
  durability: 'sync' | 'os'
}

/**
 * One QoS 1 crash round. The publisher does not resend after the restart (its session is clean):
 * what it had PUBACKed is what the broker promised to keep, and only that is required.
 */
async function qos1Round(t: TestContext, plan: RoundPlan): Promise<void> {
  const started = performance.now()
  const rand = seededRandom(plan.seed)
  const window = between(rand, 10, 50)
  const killAt = between(rand, 50, 2000)
  const ackDelayMs = plan.subscriber === 'online' ? between(rand, 0, 3) : 0
  const config = { ...CRASH_CONFIG, durability: plan.durability }
  t.diagnostic(`seed ${plan.seed}: QoS 1, window ${window}, SIGKILL at PUBACK #${killAt}, subscriber ${plan.subscriber}, durability ${plan.durability}`)

  const broker = await startOutpost(t, { config })
  const subId = `crash-q1-sub-${plan.seed}`
  const sub = new Receiver(ackDelayMs)
  await sub.connect(t, broker, { clientId: subId, clean: false })
  assert.deepEqual(await subscribe(sub.wire as Wire, [['crash/q1/#', 1]]), [1])
  // Offline: everything queues on disk for it. Online and slow: messages are in every state (queued,
  // sent, acked but the ack not yet handled) when the broker dies.
  if (plan.subscriber === 'offline') await (sub.wire as Wire).disconnect()

  const pub = new Streamer(1, 'crash/q1/stream', window)
  await pub.connect(t, broker, { clientId: `crash-q1-pub-${plan.seed}`, clean: true })
  pub.onAck = (n) => {
    if (n === killAt) broker.child.kill('SIGKILL')
  }
  pub.start()
  const exit = await within(broker.exited, 15_000, () => `kill point not reached: ${pub.stats.acked.size} of ${killAt} PUBACKs (seed ${plan.seed})`)
  assert.equal(exit.signal, 'SIGKILL')
  await pub.wire?.closed
  const acked = new Set(pub.stats.acked)
  const sent = pub.stats.sent

  const after = await startOutpost(t, { config, dataDir: broker.dataDir })
  const connack = await sub.connect(t, after, { clientId: subId, clean: false })
  assert.equal(connack.sessionPresent, true, `the subscriber's persistent session survives the crash [MQTT-3.2.2-2] (seed ${plan.seed})`)
  await sentinel(t, after, sub, 'crash/q1/end', 10_000)
  const isDelivered = (): boolean => {
    const got = new Set(sub.payloads('crash/q1/stream'))
    return [...acked].every((s) => got.has(String(s)))
  }
  // The sentinel normally comes last; if the broker sent it ahead of restored messages, give those a moment.
  await sub.until(isDelivered, 2_000)

  const stream = sub.payloads('crash/q1/stream')
  const seen = counts(stream)
  const missing = [...acked].filter((s) => !seen.has(String(s))).sort((a, b) => a - b)
  const phantom = [...seen.keys()].filter((p) => !/^\d+$/.test(p) || Number(p) >= sent)
  const withoutAck = [...seen.keys()].filter((p) => !acked.has(Number(p))).length
  report(t, {
    seed: plan.seed, qos: 1, window, killAt, subscriber: plan.subscriber, ackDelayMs, durability: plan.durability,
    sent, acked: acked.size, completed: 0, resentPublish: 0, resentPubrel: 0,
    deliveredTotal: stream.length, deliveredUnique: seen.size, duplicates: stream.length - seen.size, withoutAck,
    suppressedDupPublish: 0, ms: Math.round(performance.now() - started),
  })
  // One publisher, one topic: an ordered topic [MQTT-4.6.0-6]. Redelivery repeats messages, but
  // each message's first arrival must come in publish order.
  const firsts = [...seen.keys()].map(Number)
  const outOfOrder = firsts.findIndex((s, i) => i > 0 && s < (firsts[i - 1] as number))
  // Every problem at once, so one failing round shows the whole picture.
  const problems: string[] = []
  if (phantom.length > 0) problems.push(`messages nobody published: ${JSON.stringify(phantom.slice(0, 20))}`)
  if (missing.length > 0) problems.push(`[MQTT-4.3.2-2] ${missing.length} PUBACKed messages lost in the crash: ${some(missing)}`)
  if (outOfOrder !== -1) problems.push(`[MQTT-4.6.0-6] first arrivals out of publish order at position ${outOfOrder}: ${some(firsts.slice(Math.max(0, outOfOrder - 5), outOfOrder + 5))}`)
  assert.deepEqual(problems, [], `seed ${plan.seed}, kill at PUBACK #${killAt} of ${acked.size}`)
}

/**
 * One QoS 2 crash round. Both ends keep their session (clean session 0): after the restart the
 * publisher resends PUBREL for what had PUBREC and PUBLISH (DUP) for what had not [MQTT-4.4.0-1],
 * and the subscriber holds the packet ids it PUBRECed until PUBREL. Every message the publisher
 * sent must then arrive exactly once, and in particular every one it had PUBREC for.
 */
async function qos2Round(t: TestContext, plan: RoundPlan): Promise<void> {
  const started = performance.now()
  const rand = seededRandom(plan.seed)
  const window = between(rand, 10, 40)
  const killAt = between(rand, 30, 600)
  const ackDelayMs = plan.subscriber === 'online' ? between(rand, 0, 3) : 0
  const config = { ...CRASH_CONFIG, durability: plan.durability }
  t.diagnostic(`seed ${plan.seed}: QoS 2, window ${window}, SIGKILL at PUBREC #${killAt}, subscriber ${plan.subscriber}, durability ${plan.durability}`)

  const broker = await startOutpost(t, { config })
  const subId = `crash-q2-sub-${plan.seed}`
  const pubId = `crash-q2-pub-${plan.seed}`
  const sub = new Receiver(ackDelayMs)
  await sub.connect(t, broker, { clientId: subId, clean: false })
  assert.deepEqual(await subscribe(sub.wire as Wire, [['crash/q2/#', 2]]), [2])
  if (plan.subscriber === 'offline') await (sub.wire as Wire).disconnect()

  const pub = new Streamer(2, 'crash/q2/stream', window)
  await pub.connect(t, broker, { clientId: pubId, clean: false })
  pub.onAck = (n) => {
    if (n === killAt) broker.child.kill('SIGKILL')
  }
  pub.start()
  const exit = await within(broker.exited, 15_000, () => `kill point not reached: ${pub.stats.acked.size} of ${killAt} PUBRECs (seed ${plan.seed})`)
  assert.equal(exit.signal, 'SIGKILL')
  await pub.wire?.closed
  const pubreced = new Set(pub.stats.acked)
  const completedBefore = pub.stats.completed.size
  const sent = pub.stats.sent
  pub.stop()

  const after = await startOutpost(t, { config, dataDir: broker.dataDir })
  const subConnack = await sub.connect(t, after, { clientId: subId, clean: false })
  const pubConnack = await pub.connect(t, after, { clientId: pubId, clean: false }, true)
  assert.equal(subConnack.sessionPresent, true, `the subscriber's persistent session survives the crash [MQTT-3.2.2-2] (seed ${plan.seed})`)
  await within(pub.idle(10_000), 11_000, () => `publisher: ${pub.inflightCount} messages unfinished after the restart (seed ${plan.seed})`)
  await sentinel(t, after, sub, 'crash/q2/end', 10_000)
  const all = Array.from({ length: sent }, (_, i) => i)
  const isDelivered = (): boolean => {
    const got = new Set(sub.payloads('crash/q2/stream'))
    return all.every((s) => got.has(String(s)))
  }
  await sub.until(isDelivered, 2_000)
  // The last PUBRELs may still be on their way when the sentinel (QoS 1) is in.
  await sub.until(() => sub.awaitingRel.size === 0, 2_000)

  const stream = sub.payloads('crash/q2/stream')
  const seen = counts(stream)
  const duplicates = [...seen].filter(([, n]) => n > 1).map(([p]) => Number(p)).sort((a, b) => a - b)
  const missingAcked = [...pubreced].filter((s) => !seen.has(String(s))).sort((a, b) => a - b)
  const missingOther = all.filter((s) => !pubreced.has(s) && !seen.has(String(s)))
  const phantom = [...seen.keys()].filter((p) => !/^\d+$/.test(p) || Number(p) >= sent)
  report(t, {
    seed: plan.seed, qos: 2, window, killAt, subscriber: plan.subscriber, ackDelayMs, durability: plan.durability,
    sent, acked: pubreced.size, completed: completedBefore, resentPublish: pub.stats.resentPublish, resentPubrel: pub.stats.resentPubrel,
    deliveredTotal: stream.length, deliveredUnique: seen.size, duplicates: stream.length - seen.size,
    withoutAck: [...seen.keys()].filter((p) => !pubreced.has(Number(p))).length,
    suppressedDupPublish: sub.suppressed, ms: Math.round(performance.now() - started),
  })
  const problems: string[] = []
  if (phantom.length > 0) problems.push(`messages nobody published: ${JSON.stringify(phantom.slice(0, 20))}`)
  if (!pubConnack.sessionPresent) problems.push(`[MQTT-3.2.2-2] the publisher's session (incoming QoS 2 messages awaiting PUBREL) did not survive the crash: session present 0`)
  if (missingAcked.length > 0) problems.push(`[MQTT-4.3.3-2] ${missingAcked.length} PUBRECed messages lost in the crash: ${some(missingAcked)}`)
  if (duplicates.length > 0) {
    // How each copy came: packet id, DUP flag, which subscriber connection (0 = before the crash).
    const copies = duplicates.slice(0, 5).map((seq) => `${seq}: ${JSON.stringify(sub.delivered.filter((d) => d.payload === String(seq)).map((d) => ({ id: d.packetId, dup: d.dup, conn: d.connection })))}`)
    problems.push(`[MQTT-4.3.3-1] [MQTT-4.3.3-2] ${duplicates.length} QoS 2 messages delivered more than once: ${some(duplicates)}; copies ${copies.join('; ')}`)
  }
  if (missingOther.length > 0) problems.push(`${missingOther.length} messages resent by the publisher after the restart never delivered: ${some(missingOther)}`)
  if (sub.awaitingRel.size > 0) problems.push(`the subscriber still waits for PUBREL for packet ids ${JSON.stringify([...sub.awaitingRel])}`)
  assert.deepEqual(problems, [], `seed ${plan.seed}, kill at PUBREC #${killAt} of ${pubreced.size}`)
}

describe('crash: SIGKILL while publishing, restart on the same data dir', () => {
  const qos1Plans: RoundPlan[] = [
    { seed: SEEDS[0] as number, subscriber: 'offline', durability: 'sync' },
    { seed: SEEDS[1 % SEEDS.length] as number, subscriber: 'online', durability: 'sync' },
    { seed: SEEDS[2 % SEEDS.length] as number, subscriber: 'online', durability: 'os' },
  ]
  for (const plan of qos1Plans) {
    test(`QoS 1: every PUBACKed message reaches the persistent subscriber at least once [MQTT-4.3.2-2] [MQTT-4.4.0-1] (seed ${plan.seed}, subscriber ${plan.subscriber}, durability ${plan.durability})`, (t) =>
      qos1Round(t, plan))
  }
  // Different rounds from the same seeds: the QoS 2 rounds draw their own kill points from them.
  const qos2Plans: RoundPlan[] = [
    { seed: SEEDS[0] as number, subscriber: 'online', durability: 'sync' },
    { seed: SEEDS[1 % SEEDS.length] as number, subscriber: 'offline', durability: 'sync' },
    { seed: SEEDS[2 % SEEDS.length] as number, subscriber: 'online', durability: 'os' },
  ]
  for (const plan of qos2Plans) {
    test(`QoS 2: every PUBRECed message reaches the subscriber exactly once after both ends resume their sessions [MQTT-4.3.3-2] [MQTT-4.4.0-1] (seed ${plan.seed}, subscriber ${plan.subscriber}, durability ${plan.durability})`, (t) =>
      qos2Round(t, plan))
  }
})

type How = 'SIGTERM' | 'SIGKILL'

/** One kind of stored state, taken through a restart; each runs once per way of stopping. */
interface RestartCase {
  name(how: How): string
  run(t: TestContext, how: How): Promise<void>
  /** Which ways of stopping apply; both unless said. */
  hows: readonly How[]
}
const restartCases: RestartCase[] = []
function restartCase(
  name: (how: How) => string,
  run: (t: TestContext, how: How) => Promise<void>,
  options: { hows?: readonly How[] } = {},
): void {
  restartCases.push({ name, run, hows: options.hows ?? ['SIGTERM', 'SIGKILL'] })
}

// The will cases come first: they wait out a will delay, and the others run alongside them.

restartCase((how) => `a will waiting for its Will Delay Interval survives the restart and goes out once, not before its time [MQTT-3.1.3-9] (${how})`, async (t, how) => {
  const delaySeconds = 3
  const broker = await startOutpost(t, RESTART_OPTIONS)
  const watcher = new Receiver()
  await watcher.connect(t, broker, { clientId: 'delay-watcher', clean: false })
  await subscribe(watcher.wire as Wire, [['restart/will/#', 2]])
  const { wire: doomed } = await client(t, broker, 'delayed-will', {
    protocolVersion: 5,
    clean: true,
    properties: { sessionExpiryInterval: 60 },
    will: { topic: 'restart/will/delayed', payload: Buffer.from('gone for good'), qos: 2, retain: false, properties: { willDelayInterval: delaySeconds } },
  })
  const droppedAt = Date.now()
  await doomed.drop()
  await broker.waitForLog((r) => r.msg === 'client disconnected' && r.clientId === 'delayed-will', 5_000, 'the disconnect of delayed-will')
  await durable(t, broker)
  const after = await restartOutpost(t, broker, how, RESTART_OPTIONS)
  const early = watcher.delivered.filter((d) => d.topic === 'restart/will/delayed')
  assert.ok(Date.now() < droppedAt + delaySeconds * 1000, `the restart took longer than the will delay (${delaySeconds} s): this test needs a longer delay`)
  await watcher.connect(t, after, { clientId: 'delay-watcher', clean: false })
  const will = await watcher.waitFor((d) => d.topic === 'restart/will/delayed', 'the delayed will', delaySeconds * 1000 + 5_000)
  const at = Date.now()
  await sentinel(t, after, watcher, 'restart/will/sentinel')
  assert.deepEqual(early.map((d) => d.payload), [], 'the will went out before its delay had passed, while the broker was still up')
  assert.ok(at >= droppedAt + delaySeconds * 1000 - 50, `the will arrived ${at - droppedAt} ms after the connection dropped, before its ${delaySeconds} s delay`)
  assert.equal(will.payload, 'gone for good')
  assert.equal(watcher.delivered.filter((d) => d.topic === 'restart/will/delayed').length, 1, `the will went out more than once: ${summarize(watcher.delivered)}`)
})

restartCase((how) => `a connected client's will is published after the ${how === 'SIGKILL' ? 'crash' : 'shutdown'} ends its connection, exactly once [MQTT-3.1.2-8] (${how})`, async (t, how) => {
  const broker = await startOutpost(t, RESTART_OPTIONS)
  const watcher = new Receiver()
  await watcher.connect(t, broker, { clientId: 'conn-watcher', clean: false })
  await subscribe(watcher.wire as Wire, [['restart/will/#', 2]])
  await client(t, broker, 'doomed', { will: { topic: 'restart/will/conn', payload: Buffer.from('doomed is gone'), qos: 2, retain: false } })
  // The will is stored at CONNECT without waiting for the disk; the barrier makes sure it is.
  await durable(t, broker)
  const after = await restartOutpost(t, broker, how, RESTART_OPTIONS)
  // The watcher may have got it before the restart (a clean shutdown closing the connection)
  // or gets it now; QoS 2 with its packet ids held makes "exactly once" checkable either way.
  await watcher.connect(t, after, { clientId: 'conn-watcher', clean: false })
  await watcher.waitFor((d) => d.topic === 'restart/will/conn', 'the will')
  await sentinel(t, after, watcher, 'restart/will/sentinel')
  const wills = watcher.delivered.filter((d) => d.topic === 'restart/will/conn')
  assert.deepEqual(wills.map((d) => d.payload), ['doomed is gone'], `exactly once: ${summarize(wills)}`)
})

/**
 * A will stored at CONNECT: the client was told (CONNACK) that it is connected with a will, so a
 * crash straight after must not lose it. No barrier here, unlike the test above.
 */
async function willRightAfterConnack(t: TestContext, clean: boolean): Promise<void> {
  const broker = await startOutpost(t, RESTART_OPTIONS)
  const watcher = new Receiver()
  await watcher.connect(t, broker, { clientId: 'fast-watcher', clean: false })
  await subscribe(watcher.wire as Wire, [['restart/will/#', 2]])
  await client(t, broker, 'fast-doomed', { clean, will: { topic: 'restart/will/fast', payload: Buffer.from('gone at once'), qos: 2, retain: false } })
  broker.child.kill('SIGKILL')
  const after = await restartOutpost(t, broker, 'SIGKILL', RESTART_OPTIONS)
  await watcher.connect(t, after, { clientId: 'fast-watcher', clean: false })
  // Restored wills go out on the broker's timer sweep (every 500 ms), so wait for it, then check
  // with the sentinel that it came once.
  await watcher.until(() => watcher.delivered.some((d) => d.topic === 'restart/will/fast'), 3_000)
  await sentinel(t, after, watcher, 'restart/will/sentinel')
  const wills = watcher.delivered.filter((d) => d.topic === 'restart/will/fast')
  assert.deepEqual(wills.map((d) => d.payload), ['gone at once'], `the will of a client killed with the broker right after its CONNACK: ${summarize(wills)}`)
}

restartCase(() => 'a persistent session\'s will is on disk before CONNACK: a crash right after it still publishes the will [MQTT-3.1.2-8] (SIGKILL)', (t) => willRightAfterConnack(t, false), { hows: ['SIGKILL'] })

restartCase(() => 'a clean session\'s will is on disk before CONNACK: a crash right after it still publishes the will [MQTT-3.1.2-8] (SIGKILL)', (t) => willRightAfterConnack(t, true), { hows: ['SIGKILL'] })

restartCase((how) => `a persistent session's subscriptions come back: session present 1, messages reach it without a new SUBSCRIBE, at the granted QoS [MQTT-3.2.2-2] [MQTT-4.1.0-1] (${how})`, async (t, how) => {
  const broker = await startOutpost(t, RESTART_OPTIONS)
  const sub = new Receiver()
  assert.equal((await sub.connect(t, broker, { clientId: 'keeper', clean: false })).sessionPresent, false)
  assert.deepEqual(await subscribe(sub.wire as Wire, [['restart/subs/+', 1], ['restart/subs2', 2]]), [1, 2])
  // The subscriber is still connected when the broker goes down; SUBACK means stored, so no barrier.
  const after = await restartOutpost(t, broker, how, RESTART_OPTIONS)
  assert.equal((await sub.connect(t, after, { clientId: 'keeper', clean: false })).sessionPresent, true, '[MQTT-3.2.2-2] session present after the restart')
  const { wire: pub } = await client(t, after, 'pub')
  await publish(pub, 'restart/subs/a', 'one', 1)
  await publish(pub, 'restart/subs2', 'two', 2)
  await sub.waitFor((d) => d.payload === 'two', 'the QoS 2 message')
  assert.deepEqual(
    sub.delivered.map((d) => [d.topic, d.payload, d.qos]),
    [['restart/subs/a', 'one', 1], ['restart/subs2', 'two', 2]],
    'the subscriptions as they were before the restart, at their granted QoS',
  )
})

restartCase((how) => `an UNSUBSCRIBE acknowledged before the restart stays done: no messages for that filter after it [MQTT-3.10.4-2] (${how})`, async (t, how) => {
  const broker = await startOutpost(t, RESTART_OPTIONS)
  const sub = new Receiver()
  await sub.connect(t, broker, { clientId: 'unkeeper', clean: false })
  await subscribe(sub.wire as Wire, [['restart/unsub/kept', 1], ['restart/unsub/gone', 1]])
  await unsubscribe(sub.wire as Wire, ['restart/unsub/gone'])
  // Straight after the UNSUBACK: that is what the client was told, crash or not.
  const after = await restartOutpost(t, broker, how, RESTART_OPTIONS)
  assert.equal((await sub.connect(t, after, { clientId: 'unkeeper', clean: false })).sessionPresent, true, '[MQTT-3.2.2-2]')
  const { wire: pub } = await client(t, after, 'unsub-pub')
  await publish(pub, 'restart/unsub/gone', 'unsubscribed before the restart', 1)
  await publish(pub, 'restart/unsub/kept', 'kept', 1)
  await sub.waitFor((d) => d.payload === 'kept', 'the message on the kept filter')
  assert.deepEqual(sub.delivered.map((d) => [d.topic, d.payload]), [['restart/unsub/kept', 'kept']], 'the UNSUBSCRIBEd filter came back after the restart')
})

restartCase((how) => `retained messages come back: set, replaced and cleared ones as they were [MQTT-3.3.1-5] [MQTT-3.3.1-10] (${how})`, async (t, how) => {
  const broker = await startOutpost(t, RESTART_OPTIONS)
  const { wire: pub } = await client(t, broker, 'retainer')
  await publish(pub, 'restart/retained/q1', 'kept at QoS 1', 1, true)
  await publish(pub, 'restart/retained/q2', 'kept at QoS 2', 2, true)
  await publish(pub, 'restart/retained/cleared', 'soon gone', 1, true)
  await publish(pub, 'restart/retained/cleared', '', 1, true)
  await publish(pub, 'restart/retained/replaced', 'old', 1, true)
  await publish(pub, 'restart/retained/replaced', 'new', 2, true)
  const expected = [
    ['restart/retained/q1', 'kept at QoS 1', 1],
    ['restart/retained/q2', 'kept at QoS 2', 2],
    ['restart/retained/replaced', 'new', 2],
  ]
  if (how === 'SIGTERM') {
    // A QoS 0 retained message has no ack to wait for, so a crash may lose it; a clean
    // shutdown, after the broker has handled it, must not.
    await publish(pub, 'restart/retained/q0', 'kept at QoS 0', 0, true)
    expected.push(['restart/retained/q0', 'kept at QoS 0', 0])
  }
  const after = await restartOutpost(t, broker, how, RESTART_OPTIONS)
  const sub = new Receiver()
  await sub.connect(t, after, { clientId: 'late-reader' })
  await subscribe(sub.wire as Wire, [['restart/retained/#', 2]])
  await sub.until(() => sub.delivered.length >= expected.length, 5_000)
  await sentinel(t, after, sub, 'restart/retained/sentinel')
  const got = sub.delivered.filter((d) => d.payload !== 'sentinel')
  assert.ok(got.every((d) => d.retain), `retained messages are sent with retain 1 [MQTT-3.3.1-8]: ${summarize(got)}`)
  assert.deepEqual(
    got.map((d) => [d.topic, d.payload, d.qos]).sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    expected.sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
  )
})

restartCase((how) => `messages queued for an offline persistent subscriber come back, in order, each once [MQTT-3.1.2-5] [MQTT-4.6.0-6] (${how})`, async (t, how) => {
  const broker = await startOutpost(t, RESTART_OPTIONS)
  const sub = new Receiver()
  await sub.connect(t, broker, { clientId: 'away', clean: false })
  await subscribe(sub.wire as Wire, [['restart/queue/#', 2]])
  await (sub.wire as Wire).disconnect()
  const { wire: pub } = await client(t, broker, 'queue-filler')
  const published: Array<[string, QoS]> = []
  for (let i = 0; i < 30; i++) {
    const qos: QoS = i % 3 === 0 ? 2 : 1
    await publish(pub, 'restart/queue/x', `m${i}`, qos)
    published.push([`m${i}`, qos])
  }
  const after = await restartOutpost(t, broker, how, RESTART_OPTIONS)
  assert.equal((await sub.connect(t, after, { clientId: 'away', clean: false })).sessionPresent, true, '[MQTT-3.2.2-2]')
  await sentinel(t, after, sub, 'restart/queue/end')
  const got = sub.delivered.filter((d) => d.topic === 'restart/queue/x')
  assert.deepEqual(got.map((d) => [d.payload, d.qos]), published, `queued messages, in publish order, at their QoS, each once: ${summarize(got)}`)
  // Never sent before the restart, so this is the first attempt: DUP 0 [MQTT-3.3.1-1].
  assert.deepEqual(got.filter((d) => d.dup).map((d) => d.payload), [], 'DUP set on a first delivery')
})

restartCase((how) => `in-flight deliveries come back under their packet ids: PUBLISH with DUP 1 until acknowledged, PUBREL once PUBRECed [MQTT-4.4.0-1] [MQTT-3.3.1-1] (${how})`, async (t, how) => {
  const broker = await startOutpost(t, RESTART_OPTIONS)
  // Acknowledges nothing by itself: the test decides what is left in flight.
  const { wire: sub } = await client(t, broker, 'holder', { clean: false })
  await subscribe(sub, [['restart/inflight/#', 2]])
  const { wire: pub } = await client(t, broker, 'inflight-pub')
  await publish(pub, 'restart/inflight/a', 'a', 1)
  await publish(pub, 'restart/inflight/b', 'b', 2)
  await publish(pub, 'restart/inflight/c', 'c', 2)
  const pa = await sub.packet((p): p is Extract<Packet, { cmd: 'publish' }> => p.cmd === 'publish' && p.topic === 'restart/inflight/a', 'PUBLISH a')
  const pb = await sub.packet((p): p is Extract<Packet, { cmd: 'publish' }> => p.cmd === 'publish' && p.topic === 'restart/inflight/b', 'PUBLISH b')
  const pc = await sub.packet((p): p is Extract<Packet, { cmd: 'publish' }> => p.cmd === 'publish' && p.topic === 'restart/inflight/c', 'PUBLISH c')
  assert.deepEqual([pa.qos, pb.qos, pc.qos, pa.dup, pb.dup, pc.dup], [1, 2, 2, false, false, false])
  const idA = pa.messageId as number
  const idB = pb.messageId as number
  const idC = pc.messageId as number
  sub.send({ cmd: 'pubrec', messageId: idC })
  await sub.packet(isCmd('pubrel', idC), `PUBREL ${idC}`)
  // The broker records a delivery's packet id and its PUBREC without waiting for the disk;
  // this test is about what is restored, so let those writes land first.
  await durable(t, broker)
  const after = await restartOutpost(t, broker, how, RESTART_OPTIONS)
  const { wire: back, connack } = await client(t, after, 'holder', { clean: false })
  assert.equal(connack.sessionPresent, true, '[MQTT-3.2.2-2]')
  const resent = await back.waitFor(() => (back.received.length >= 4 ? back.received.slice(1, 4) : undefined), () => `3 resends; got ${JSON.stringify(back.received)}`)
  const shape = resent.map((p) => (p.cmd === 'publish' ? ['publish', p.messageId, p.topic, p.qos, p.dup] : [p.cmd, (p as { messageId?: number }).messageId]))
  assert.deepEqual(shape, [
    ['publish', idA, 'restart/inflight/a', 1, true],
    ['publish', idB, 'restart/inflight/b', 2, true],
    ['pubrel', idC],
  ], 'resent in the original order, with the original packet ids')
  back.send({ cmd: 'puback', messageId: idA })
  back.send({ cmd: 'pubrec', messageId: idB })
  await back.packet(isCmd('pubrel', idB), `PUBREL ${idB}`)
  back.send({ cmd: 'pubcomp', messageId: idB })
  back.send({ cmd: 'pubcomp', messageId: idC })
  // After the acks nothing more comes for a, b or c: the next PUBLISH is the sentinel.
  const { wire: pub2 } = await client(t, after, 'inflight-pub2')
  await publish(pub2, 'restart/inflight/sentinel', 'sentinel', 1)
  const next = await back.packet((p): p is Extract<Packet, { cmd: 'publish' }> => p.cmd === 'publish' && p.topic === 'restart/inflight/sentinel', 'the sentinel')
  const extra = back.received.filter((p) => p.cmd === 'publish' && p !== next).slice(2)
  assert.deepEqual(extra, [], 'nothing resent after it was acknowledged')
})

restartCase((how) => `a QoS 2 delivery whose PUBREL went out is not sent again as PUBLISH after the restart [MQTT-4.3.3-1] (${how}, at the PUBREL)`, async (t, how) => {
  const broker = await startOutpost(t, RESTART_OPTIONS)
  const { wire: sub } = await client(t, broker, 'released', { clean: false })
  await subscribe(sub, [['restart/rel/#', 2]])
  // On PUBREL the subscriber lets go of the packet id (and would pass the message on, if it
  // held it until PUBREL): a PUBLISH under that id after this is a new message to it.
  let stopping: Promise<OutpostProcess> | undefined
  sub.onPacket = (p, w) => {
    if (p.cmd === 'publish' && p.qos === 2) w.send({ cmd: 'pubrec', messageId: p.messageId as number })
    if (p.cmd === 'pubrel' && stopping === undefined) {
      // Right at this point: for SIGKILL, before the broker can write anything more.
      if (how === 'SIGKILL') broker.child.kill('SIGKILL')
      stopping = restartOutpost(t, broker, how, RESTART_OPTIONS)
    }
  }
  const { wire: pub } = await client(t, broker, 'rel-pub')
  // Not awaited: the broker may be gone before this publisher's PUBCOMP is read.
  publish(pub, 'restart/rel/x', 'once', 2).catch(() => undefined)
  const after = await sub.waitFor(() => stopping, 'PUBREL')
  const receiver = new Receiver()
  // Pretend to be the same client: it has released the id, so it holds none awaiting PUBREL.
  assert.equal((await receiver.connect(t, after, { clientId: 'released', clean: false })).sessionPresent, true, '[MQTT-3.2.2-2]')
  await sentinel(t, after, receiver, 'restart/rel/sentinel')
  const again = receiver.delivered.filter((d) => d.payload === 'once')
  assert.deepEqual(again, [], `PUBLISH resent after PUBREL had been sent: ${summarize(again)}`)
})

restartCase((how) => `an incoming QoS 2 message awaiting PUBREL survives: PUBREL after the restart gets PUBCOMP and routes it exactly once [MQTT-4.3.3-2] (${how})`, async (t, how) => {
  const broker = await startOutpost(t, RESTART_OPTIONS)
  const sub = new Receiver()
  await sub.connect(t, broker, { clientId: 'incoming-sub', clean: false })
  await subscribe(sub.wire as Wire, [['restart/incoming/#', 2]])
  const { wire: pub } = await client(t, broker, 'half-done', { clean: false })
  pub.send({ cmd: 'publish', topic: 'restart/incoming/x', payload: Buffer.from('exactly once'), qos: 2, messageId: 7, dup: false, retain: false })
  await pub.packet(isCmd('pubrec', 7), 'PUBREC 7')
  // PUBREC means stored: no barrier before the kill.
  const after = await restartOutpost(t, broker, how, RESTART_OPTIONS)
  assert.equal((await sub.connect(t, after, { clientId: 'incoming-sub', clean: false })).sessionPresent, true, 'subscriber [MQTT-3.2.2-2]')
  const { wire: back, connack } = await client(t, after, 'half-done', { clean: false })
  back.send({ cmd: 'pubrel', messageId: 7 })
  await back.packet(isCmd('pubcomp', 7), 'PUBCOMP 7')
  // A second PUBREL (as if the PUBCOMP had been lost) is answered, and routes nothing.
  back.send({ cmd: 'pubrel', messageId: 7 })
  await back.waitFor(() => (back.received.filter(isCmd('pubcomp', 7)).length >= 2 ? true : undefined), 'a second PUBCOMP 7')
  await sentinel(t, after, sub, 'restart/incoming/sentinel')
  const got = sub.delivered.filter((d) => d.topic === 'restart/incoming/x')
  assert.deepEqual(
    { publisherSessionPresent: connack.sessionPresent, delivered: got.map((d) => d.payload) },
    { publisherSessionPresent: true, delivered: ['exactly once'] },
    "the publisher's session, holding the message awaiting PUBREL, is resumed [MQTT-3.2.2-2], and PUBREL routes the message exactly once",
  )
})

describe('restart on the same data dir (SIGTERM: clean shutdown; SIGKILL: crash): stored state comes back', { concurrency: 4 }, () => {
  for (const c of restartCases) {
    for (const how of c.hows) test(c.name(how), (t) => c.run(t, how))
  }
})
