/**
 * `npm run fuzz`: the long fuzz run. The same cases as test/fuzz.test.ts (test/helpers/fuzz-gen.ts)
 * against an in-process broker on a real TCP port, for a duration instead of a count, with the
 * MQTT.js canary doing round trips throughout.
 *
 *   node dist/scripts/fuzz.js [--seconds N (60)] [--seed N (random)] [--parallel N (8)]
 *
 * Prints cases/s, crashes (must be 0), hung connections, canary misses and RSS before/after;
 * exits 1 on any crash, hang, canary miss or leaked connection. Heap figures are after full GCs.
 */
import { randomInt } from 'node:crypto'
import { createServer, type AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { Broker } from '../src/broker/broker.js'
import { defaultConfig } from '../src/config/defaults.js'
import { fullGc, runFuzz, startCanary } from '../test/helpers/fuzz-gen.js'

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '60' }, seed: { type: 'string' }, parallel: { type: 'string', default: '8' } } })
const seconds = Number(values.seconds)
const seed = values.seed === undefined ? randomInt(1, 2 ** 31) : Number.parseInt(values.seed, 10)
const parallel = Number(values.parallel)
if (!(seconds > 0) || !Number.isInteger(seed) || !(parallel > 0)) {
  console.error('usage: node dist/scripts/fuzz.js [--seconds N] [--seed N] [--parallel N]')
  process.exit(2)
}

const MB = 1024 * 1024
const gc = fullGc()
const mb = (n: number): string => `${(n / MB).toFixed(1)} MB`

async function settled(): Promise<NodeJS.MemoryUsage> {
  for (let i = 0; i < 3; i++) {
    gc()
    await sleep(50)
  }
  return process.memoryUsage()
}

const crashes: unknown[] = []
process.on('uncaughtException', (err) => crashes.push(err))
process.on('unhandledRejection', (err) => crashes.push(err))

const broker = new Broker({ config: { ...defaultConfig(), sysInterval: 0 }, log: pino({ level: 'silent' }) })
await broker.start()
const server = createServer((socket) => broker.handle(socket, { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort }))
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
const { port } = server.address() as AddressInfo

console.log(`fuzz: seed ${seed}, ${seconds} s, ${parallel} parallel sockets, broker on 127.0.0.1:${port}`)
const canary = await startCanary(port, 2000)
const before = await settled()
const started = Date.now()
const end = started + seconds * 1000
const progress = setInterval(() => console.log(`  ${((Date.now() - started) / 1000).toFixed(0)} s: canary ${canary.roundTrips} round trips, ${broker.connectionCount} connections open`), 10_000)
const stats = await runFuzz(port, seed, { until: () => Date.now() >= end, parallel, timeoutMs: 3000 })
clearInterval(progress)
const elapsed = (Date.now() - started) / 1000

for (let i = 0; i < 100 && broker.connectionCount > 1; i++) await sleep(50)
const leaked = broker.connectionCount - 1
await canary.stop()
const after = await settled()

console.log(`cases: ${stats.cases} in ${elapsed.toFixed(1)} s = ${(stats.cases / elapsed).toFixed(0)} cases/s ${JSON.stringify(stats.byKind)}`)
console.log(`crashes: ${crashes.length}`)
for (const c of crashes) console.log('  ', c)
console.log(`hung (still open ${3000} ms after the client's FIN): ${stats.hung.length}`)
for (const h of stats.hung.slice(0, 10)) console.log(`  case ${h.index} (case seed ${h.seed}) ${h.label}\n    ${h.hex.slice(0, 400)}`)
console.log(`canary: ${canary.roundTrips} round trips, ${canary.misses.length} misses${canary.misses.length > 0 ? ': ' + canary.misses.slice(0, 5).join('; ') : ''}`)
console.log(`leaked connections: ${leaked}; sessions left: ${broker.sessionCount}`)
console.log(`RSS ${mb(before.rss)} -> ${mb(after.rss)}; heapUsed ${mb(before.heapUsed)} -> ${mb(after.heapUsed)}`)

await new Promise<void>((resolve) => server.close(() => resolve()))
await broker.close()
const failed = crashes.length > 0 || stats.hung.length > 0 || canary.misses.length > 0 || leaked !== 0
console.log(failed ? `FAIL (seed ${seed})` : 'OK')
process.exit(failed ? 1 : 0)
