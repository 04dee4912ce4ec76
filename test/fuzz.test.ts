/**
 * Fuzz: malformed and mangled input on real TCP connections must never crash the broker, leak a
 * connection, or stall other clients. 8,000 cases (generator in helpers/fuzz-gen.ts) over 8
 * parallel sockets, each a fresh connection that writes one case and half-closes, while an
 * MQTT.js canary does QoS 1 round trips throughout and must never miss one.
 *
 * The seed is random unless OUTPOST_FUZZ_SEED is set and is printed; a failing case is listed
 * with its own seed and bytes (hex), and replays with `fuzzCase(seededRandom(caseSeed), index)`.
 * The long run is `npm run fuzz` (scripts/fuzz.ts).
 */
import assert from 'node:assert/strict'
import { randomInt } from 'node:crypto'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { memoryBroker } from './helpers/broker.js'
import { fullGc, runFuzz, startCanary } from './helpers/fuzz-gen.js'

const SEED = process.env.OUTPOST_FUZZ_SEED !== undefined ? Number.parseInt(process.env.OUTPOST_FUZZ_SEED, 10) : randomInt(1, 2 ** 31)
const CASES = 8000
const MB = 1024 * 1024
const gc = fullGc()

/** Polls `check` until true or `ms` passed; the assertions after it say what was wrong. */
async function settle(check: () => boolean, ms: number): Promise<void> {
  for (const end = Date.now() + ms; !check() && Date.now() < end; ) await sleep(20)
}

/** The heap after full GCs (fullGc turns --expose-gc on at run time). */
async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc()
    await sleep(50)
  }
  return process.memoryUsage().heapUsed
}

test(`fuzz: ${CASES} malformed/mutated cases on TCP, no crash, no leaked connection, canary never misses (seed ${SEED})`, { timeout: 60_000 }, async (t) => {
  t.diagnostic(`seed ${SEED} (replay with OUTPOST_FUZZ_SEED=${SEED})`)
  const crashes: unknown[] = []
  const onCrash = (err: unknown): void => {
    crashes.push(err)
  }
  process.on('uncaughtException', onCrash)
  process.on('unhandledRejection', onCrash)
  t.after(() => {
    process.off('uncaughtException', onCrash)
    process.off('unhandledRejection', onCrash)
  })

  const { broker, port } = await memoryBroker(t, {}, undefined, 'tcp')
  const canary = await startCanary(port, 2000)
  const heapBefore = await settledHeap()

  const started = Date.now()
  const stats = await runFuzz(port, SEED, { count: CASES, parallel: 8, timeoutMs: 3000 })
  const seconds = (Date.now() - started) / 1000
  t.diagnostic(`${stats.cases} cases in ${seconds.toFixed(1)} s (${JSON.stringify(stats.byKind)}), canary ${canary.roundTrips} round trips`)

  // Only the canary is left once the broker has seen every fuzz socket close.
  await settle(() => broker.connectionCount === 1, 5000)
  const leaked = broker.connectionCount - 1
  const online = broker.connectedCount
  await canary.stop()
  await settle(() => broker.connectionCount === 0, 5000)
  const heapAfter = await settledHeap()
  t.diagnostic(`heapUsed ${(heapBefore / MB).toFixed(1)} -> ${(heapAfter / MB).toFixed(1)} MB`)

  assert.deepEqual(crashes, [], `uncaught errors during the fuzz (seed ${SEED})`)
  assert.deepEqual(stats.hung, [], `connections the broker kept open after the client's FIN (seed ${SEED})`)
  assert.deepEqual(canary.misses, [], `canary round trips lost while fuzzing (seed ${SEED})`)
  assert.ok(canary.roundTrips > 0, 'the canary made no round trip at all')
  assert.equal(leaked, 0, `fuzz connections still open on the broker (seed ${SEED})`)
  assert.equal(online, 1, `sessions still online besides the canary (seed ${SEED})`)
  assert.equal(broker.connectionCount, 0, 'canary connection not closed')
  // Loose on purpose: a few MB move with JIT code and V8 caches; a per-connection leak of 8,000
  // connections is far more.
  assert.ok(heapAfter - heapBefore < 30 * MB, `heap grew ${((heapAfter - heapBefore) / MB).toFixed(1)} MB over the fuzz (seed ${SEED})`)
})
