/**
 * Fuzz cases for the broker's wire input, shared by test/fuzz.test.ts (short, in `npm test`) and
 * scripts/fuzz.ts (the long run). Every case is derived from a seeded PRNG only, so a failing case
 * is replayed from `(seed, index)` alone: `fuzzCase(seededRandom(caseSeed(seed, index)))`.
 *
 * Two families:
 *  - `random`: random bytes of random length (0..4 KB), half the time behind a plausible fixed
 *    header byte so the framer gets past its first check and into the packet parsers.
 *  - `mutated`: a valid CONNECT (v3.1, v3.1.1 or 5.0), then one valid packet of the same version
 *    (PUBLISH QoS 0/1/2 with properties, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT) run through
 *    1..3 mutations (bit flips, truncation, duplicated slice, rewritten remaining length, inserted
 *    0xFF runs, changed property ids). Now and then the CONNECT itself is the mutated packet.
 */
import { Socket, connect as netConnect } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { connectAsync } from 'mqtt'
import { generate, type Packet, type QoS } from 'mqtt-packet'
import { seededRandom } from './prng.js'

export type Rand = () => number

export interface FuzzCase {
  kind: 'random' | 'mutated' | 'mutated-connect'
  /** What was generated and how it was mangled, for the failure report. */
  label: string
  /** Written in order, one `write` each. */
  chunks: Buffer[]
}

/** The per-case seed, so one case replays without running the ones before it. */
export function caseSeed(seed: number, index: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) + index) >>> 0
}

const int = (rand: Rand, n: number): number => Math.floor(rand() * n)
function pick<T>(rand: Rand, items: readonly T[]): T {
  const item = items[int(rand, items.length)]
  if (item === undefined) throw new Error('test/helpers/fuzz-gen.ts: pick from an empty list')
  return item
}
const QOS: readonly QoS[] = [0, 1, 2]

/** First bytes of real packets: CONNECT, PUBLISH (plain, QoS 1, QoS 2 + retain), SUBSCRIBE, ... */
const HEADER_BYTES = [0x10, 0x30, 0x32, 0x35, 0x82, 0xa2, 0xc0, 0xe0, 0xf0, 0x62, 0x40] as const
/** Valid v5 property ids plus a few that are not (0x00, 0x04, 0x7f, 0xff). */
const PROPERTY_IDS = [0x01, 0x02, 0x03, 0x08, 0x09, 0x0b, 0x11, 0x15, 0x16, 0x17, 0x19, 0x1f, 0x21, 0x23, 0x24, 0x26, 0x27, 0x28, 0x00, 0x04, 0x7f, 0xff] as const

function randomBytes(rand: Rand, n: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = int(rand, 256)
  return b
}

function randomCase(rand: Rand): FuzzCase {
  const len = int(rand, 4097)
  const body = randomBytes(rand, len)
  if (len > 0 && rand() < 0.5) {
    const first = pick(rand, HEADER_BYTES)
    body[0] = first
    return { kind: 'random', label: `random ${len} bytes after header 0x${first.toString(16)}`, chunks: [body] }
  }
  return { kind: 'random', label: `random ${len} bytes`, chunks: [body] }
}

type Version = 3 | 4 | 5

function connectPacket(rand: Rand, v: Version, n: number): Packet {
  return {
    cmd: 'connect',
    protocolId: v === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: v,
    // Clean sessions without expiry: a fuzz client leaves no session behind when it goes.
    clean: true,
    keepalive: int(rand, 120),
    clientId: `fuzz-${n}`,
    ...(rand() < 0.3 ? { will: { topic: 'fuzz/will', payload: Buffer.from('w'), qos: pick(rand, QOS), retain: false } } : {}),
    ...(v === 5 && rand() < 0.5 ? { properties: { receiveMaximum: 1 + int(rand, 100), topicAliasMaximum: int(rand, 10), userProperties: { k: 'v' } } } : {}),
  }
}

function validPacket(rand: Rand, v: Version): Packet {
  const messageId = 1 + int(rand, 65535)
  const topic = pick(rand, ['fuzz/a', 'fuzz/b/c', 'fuzz/+', 'fuzz/#', '$SYS/x', '', 'fuzz/\u00e9'])
  switch (int(rand, 6)) {
    case 0:
    case 1: {
      const qos = pick(rand, QOS)
      return {
        cmd: 'publish',
        topic: topic.includes('+') || topic.includes('#') || topic === '' ? 'fuzz/p' : topic,
        payload: randomBytes(rand, int(rand, 300)),
        qos,
        retain: rand() < 0.2,
        dup: false,
        ...(qos > 0 ? { messageId } : {}),
        ...(v === 5 ? { properties: { payloadFormatIndicator: rand() < 0.5, messageExpiryInterval: int(rand, 100), contentType: 'x/y', userProperties: { a: 'b' }, ...(rand() < 0.5 ? { topicAlias: 1 + int(rand, 5) } : {}) } } : {}),
      }
    }
    case 2:
      return {
        cmd: 'subscribe',
        messageId,
        subscriptions: [{ topic: topic === '' ? 'fuzz/s' : topic, qos: pick(rand, QOS), ...(v === 5 ? { nl: rand() < 0.5, rap: rand() < 0.5, rh: int(rand, 3) } : {}) }],
        ...(v === 5 ? { properties: { subscriptionIdentifier: 1 + int(rand, 1000), userProperties: { s: 't' } } } : {}),
      }
    case 3:
      return { cmd: 'unsubscribe', messageId, unsubscriptions: [topic === '' ? 'fuzz/s' : topic], ...(v === 5 ? { properties: { userProperties: { u: 'v' } } } : {}) }
    case 4:
      return { cmd: 'pingreq' }
    default:
      return { cmd: 'disconnect', ...(v === 5 ? { reasonCode: 0 } : {}) }
  }
}

/** Bytes of the fixed header (type byte + remaining-length varint) of a well-formed packet. */
function fixedHeaderLength(b: Buffer): number {
  let i = 1
  while (i < b.length && i < 5 && ((b[i] ?? 0) & 0x80) !== 0) i++
  return i + 1
}

/**
 * Offset of the property-length varint of a v5 packet, where it is easy to find; undefined
 * elsewhere (the mutation then hits a random byte instead).
 */
function propertiesOffset(p: Packet, b: Buffer): number | undefined {
  const h = fixedHeaderLength(b)
  if (p.cmd === 'publish') return h + 2 + Buffer.byteLength(p.topic) + (p.qos > 0 ? 2 : 0)
  if (p.cmd === 'subscribe' || p.cmd === 'unsubscribe') return h + 2
  return undefined
}

function encodeVarint(n: number): Buffer {
  const out: number[] = []
  do {
    let byte = n % 128
    n = Math.floor(n / 128)
    if (n > 0) byte |= 0x80
    out.push(byte)
  } while (n > 0 && out.length < 4)
  return Buffer.from(out)
}

function mutate(rand: Rand, b: Buffer, propsAt: number | undefined): [Buffer, string] {
  if (b.length === 0) return [b, 'empty']
  switch (int(rand, 6)) {
    case 0: {
      const out = Buffer.from(b)
      const flips = 1 + int(rand, 4)
      for (let i = 0; i < flips; i++) {
        const at = int(rand, out.length)
        out[at] = (out[at] ?? 0) ^ (1 << int(rand, 8))
      }
      return [out, `flip ${flips} bits`]
    }
    case 1: {
      const at = int(rand, b.length)
      return [b.subarray(0, at), `truncate to ${at}`]
    }
    case 2: {
      const from = int(rand, b.length)
      const to = from + 1 + int(rand, b.length - from)
      const at = int(rand, b.length + 1)
      return [Buffer.concat([b.subarray(0, at), b.subarray(from, to), b.subarray(at)]), `duplicate [${from},${to}) at ${at}`]
    }
    case 3: {
      // A remaining length that lies: smaller, larger, huge, or a 5-byte (invalid) varint.
      const h = fixedHeaderLength(b)
      const choice = int(rand, 4)
      const len = choice === 0 ? int(rand, b.length) : choice === 1 ? b.length + int(rand, 1000) : 268_435_455
      const varint = choice === 3 ? Buffer.from([0xff, 0xff, 0xff, 0xff, 0x7f]) : encodeVarint(len)
      return [Buffer.concat([b.subarray(0, 1), varint, b.subarray(h)]), choice === 3 ? 'remaining length 5-byte varint' : `remaining length ${len}`]
    }
    case 4: {
      const at = int(rand, b.length + 1)
      const n = 1 + int(rand, 8)
      return [Buffer.concat([b.subarray(0, at), Buffer.alloc(n, 0xff), b.subarray(at)]), `insert ${n}x0xFF at ${at}`]
    }
    default: {
      const out = Buffer.from(b)
      const id = pick(rand, PROPERTY_IDS)
      // Skip the one-byte property length (our properties stay under 128 bytes) to its first id.
      const at = propsAt !== undefined && propsAt + 1 < out.length ? propsAt + 1 : int(rand, out.length)
      out[at] = id
      return [out, `property id 0x${id.toString(16)} at ${at}`]
    }
  }
}

function mutateMany(rand: Rand, b: Buffer, propsAt: number | undefined): [Buffer, string] {
  const rounds = 1 + int(rand, 3)
  const what: string[] = []
  let out = b
  for (let i = 0; i < rounds; i++) {
    const [next, label] = mutate(rand, out, propsAt)
    out = next
    what.push(label)
  }
  return [out, what.join(', ')]
}

function mutatedCase(rand: Rand, n: number): FuzzCase {
  const v = pick(rand, [3, 4, 5] as const)
  const opts = { protocolVersion: v }
  const connect = generate(connectPacket(rand, v, n), opts)
  if (rand() < 0.15) {
    const [bad, how] = mutateMany(rand, connect, undefined)
    return { kind: 'mutated-connect', label: `v${v} CONNECT: ${how}`, chunks: [bad] }
  }
  const packet = validPacket(rand, v)
  const bytes = generate(packet, opts)
  const [bad, how] = mutateMany(rand, bytes, v === 5 ? propertiesOffset(packet, bytes) : undefined)
  return { kind: 'mutated', label: `v${v} CONNECT + ${packet.cmd}: ${how}`, chunks: [connect, bad] }
}

/** Case `n` (used for client ids) from its own PRNG. */
export function fuzzCase(rand: Rand, n: number): FuzzCase {
  return rand() < 0.4 ? randomCase(rand) : mutatedCase(rand, n)
}

export type Outcome = 'closed' | 'hung'

/**
 * Connects to `port`, writes the case, half-closes, and waits for the socket to close. A broker
 * that answers FIN with FIN closes at once; 'hung' means it was still open after `timeoutMs`
 * (then destroyed here, so the run goes on). Socket errors (ECONNRESET when the broker kills a
 * bad client mid-write) are expected and count as closed.
 */
export function runCase(port: number, c: FuzzCase, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket: Socket = netConnect(port, '127.0.0.1')
    socket.on('error', () => undefined)
    socket.on('data', () => undefined)
    const timer = setTimeout(() => {
      socket.destroy()
      resolve('hung')
    }, timeoutMs)
    socket.on('close', () => {
      clearTimeout(timer)
      resolve('closed')
    })
    socket.on('connect', () => {
      for (const chunk of c.chunks) socket.write(chunk)
      socket.end()
    })
  })
}

export function hex(c: FuzzCase): string {
  return c.chunks.map((b) => b.toString('hex')).join(' | ')
}

export interface FuzzStats {
  cases: number
  hung: Array<{ index: number; seed: number; label: string; hex: string }>
  byKind: Record<FuzzCase['kind'], number>
}

/**
 * Runs cases `0, 1, ...` of `seed` over `parallel` sockets at a time until `count` cases ran or
 * `until()` says stop. Every case is on a fresh connection.
 */
export async function runFuzz(port: number, seed: number, opts: { count?: number; until?: () => boolean; parallel: number; timeoutMs: number }): Promise<FuzzStats> {
  const stats: FuzzStats = { cases: 0, hung: [], byKind: { random: 0, mutated: 0, 'mutated-connect': 0 } }
  let next = 0
  const more = (): boolean => (opts.count === undefined || next < opts.count) && (opts.until === undefined || !opts.until())
  const worker = async (): Promise<void> => {
    while (more()) {
      const index = next++
      const s = caseSeed(seed, index)
      const c = fuzzCase(seededRandom(s), index)
      stats.byKind[c.kind]++
      if ((await runCase(port, c, opts.timeoutMs)) === 'hung') stats.hung.push({ index, seed: s, label: c.label, hex: hex(c) })
      stats.cases++
    }
  }
  await Promise.all(Array.from({ length: opts.parallel }, () => worker()))
  return stats
}

export interface Canary {
  roundTrips: number
  misses: string[]
  stop(): Promise<void>
}

/**
 * A well-behaved MQTT.js client doing QoS 1 publish -> own subscription round trips back to back
 * for as long as it runs. A round trip not back within `timeoutMs` is a miss: the broker stopped
 * serving healthy clients while the fuzz ran.
 */
export async function startCanary(port: number, timeoutMs: number): Promise<Canary> {
  const client = await connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: `canary-${process.pid}`, reconnectPeriod: 0, clean: true, protocolVersion: 4 })
  await client.subscribeAsync('canary/#', { qos: 1 })
  const canary: Canary = { roundTrips: 0, misses: [], stop: async () => undefined }
  let running = true
  let waiting: { payload: string; done: () => void } | undefined
  client.on('message', (_topic, payload) => {
    if (waiting !== undefined && payload.toString() === waiting.payload) waiting.done()
  })
  client.on('close', () => {
    if (running) canary.misses.push('canary connection closed by the broker')
    running = false
  })
  const loop = (async () => {
    for (let n = 0; running; n++) {
      const payload = `rt-${n}`
      const arrived = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs)
        waiting = { payload, done: () => { clearTimeout(timer); resolve(true) } }
      })
      client.publish('canary/rt', payload, { qos: 1 })
      if (await arrived) canary.roundTrips++
      else if (running) canary.misses.push(`${payload} not back within ${timeoutMs} ms`)
    }
  })()
  canary.stop = async () => {
    // The round trip in flight comes back (or times out) before the loop sees `running`.
    running = false
    await loop
    await client.endAsync(true)
  }
  return canary
}

/**
 * A full GC function, even when node was not started with --expose-gc: the flag can be set at
 * run time and `gc` picked up from a fresh context. Without it a heap figure after the fuzz is
 * whatever V8 had not yet collected (seen: 12 MB or 67 MB growth for the same seed).
 */
export function fullGc(): () => void {
  const existing: unknown = Reflect.get(globalThis, 'gc')
  if (typeof existing === 'function') return () => void existing()
  setFlagsFromString('--expose-gc')
  const gc: unknown = runInNewContext('gc')
  if (typeof gc !== 'function') throw new Error('test/helpers/fuzz-gen.ts: fullGc: no gc() after --expose-gc')
  return () => void gc()
}
