/**
 * Runner for the byte-level MQTT conformance vectors (Eclipse Mosquitto's broker test data,
 * kept outside the project in `../shared/conformance/mosquitto-vectors`; the format is described
 * in that folder's README). Used by `test/conformance.test.ts` against in-process Outpost brokers
 * and by `scripts/conformance.ts` against any broker on the network.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, connect as tcpConnect, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

export type ProtocolLevel = 3 | 4 | 5
export const PROTOCOL_LEVELS: readonly ProtocolLevel[] = [3, 4, 5]

export type Step =
  | { type: 'send'; bytes: Buffer; comment?: string }
  | { type: 'recv'; bytes: Buffer; comment?: string }
  | { type: 'publish'; topic: string; qos: 0 | 1 | 2; payload: string; comment?: string }

/** One packet sequence from a vector file, with the file's defaults applied. */
export interface ConformanceVector {
  /** File name without `.json`, e.g. `PUBLISH`. */
  file: string
  group: string
  name: string
  /** 1 for the first vector with this file, ver and name, 2 for the next: a few names repeat. */
  occurrence: number
  /**
   * The protocol level the vector speaks, which is what it is counted and asserted under: the
   * file's `ver`, except for a vector that opens with its own CONNECT (`connect: false`), which
   * speaks that CONNECT's level. Mosquitto's runner reads `ver` only to build the default CONNECT,
   * so the files leave it out there: the 22 vectors of CONNECT.json's "v5.0 CONNECT" groups send
   * MQTT 5 CONNECTs under the default ver 4, and two of "v3.1 CONNECT" send MQTT 3.1 ones.
   */
  ver: ProtocolLevel
  /** `ver` as the file gives it (4 when absent). */
  fileVer: ProtocolLevel
  connect: boolean
  expectDisconnect: boolean
  steps: Step[]
}

export interface VectorFile {
  name: string
  path: string
  vectors: ConformanceVector[]
}

/**
 * A vector Outpost is allowed to answer differently from the file.
 * `may`: the spec leaves the behaviour to the server, so both outcomes are accepted.
 * `differs`: Outpost deliberately takes another answer the spec allows; the vector is expected to fail.
 */
export interface ConformanceException {
  file: string
  ver: ProtocolLevel
  name: string
  occurrence?: number
  kind: 'may' | 'differs'
  /** The spec statement that leaves the choice to the server, e.g. `[MQTT-3.1.3-5]`. */
  clause: string
  why: string
}

export interface Endpoint {
  host: string
  port: number
}

export interface BrokerHandle {
  endpoint: Endpoint
  close(): Promise<void>
}

/** Gives each vector file the broker it runs against; called once per file. */
export type BrokerFactory = (file: VectorFile) => Promise<BrokerHandle>

export type VectorStatus = 'pass' | 'fail' | 'may' | 'excepted'

export interface VectorResult {
  vector: ConformanceVector
  passed: boolean
  /** Why the vector failed: the step and the bytes; absent when it passed. */
  reason?: string
  exception?: ConformanceException
  status: VectorStatus
  durationMs: number
}

export interface RunOptions {
  files: readonly VectorFile[]
  broker: BrokerFactory
  /** Per read, per close wait, per TCP connect. */
  timeoutMs?: number
  /** How many files run at once; vectors inside a file always run in order. */
  parallelFiles?: number
  /** Vectors not started within this many ms of the run's start are failed as not run. */
  budgetMs?: number
  exceptions?: readonly ConformanceException[]
  onResult?: (result: VectorResult) => void
}

export interface ConformanceReport {
  results: VectorResult[]
  durationMs: number
}

export const DEFAULT_TIMEOUT_MS = 1500
export const CONFORMANCE_DIR_ENV = 'OUTPOST_CONFORMANCE_DIR'

// ---------------------------------------------------------------------------------------------
// Locating and loading the vectors

/** The nearest directory at or above `start` that holds a package.json. */
export function findProjectRoot(start: string): string {
  let dir = resolve(start)
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir
    const parent = dirname(dir)
    if (parent === dir) throw new Error(`no package.json at or above ${start}`)
    dir = parent
  }
}

/**
 * The vectors live beside the project, not in it (their licence and size keep them out of the
 * repository): `<projectRoot>/../shared/conformance/mosquitto-vectors`, which is also where a CI
 * checkout puts them. `OUTPOST_CONFORMANCE_DIR` overrides.
 */
export function resolveVectorDir(start: string, env: NodeJS.ProcessEnv = process.env): string {
  const override = env[CONFORMANCE_DIR_ENV]
  if (override !== undefined && override !== '') return resolve(override)
  return join(findProjectRoot(start), '..', 'shared', 'conformance', 'mosquitto-vectors')
}

export async function loadVectorFiles(dir: string): Promise<VectorFile[]> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (err) {
    throw new Error(
      `conformance vectors not found in ${dir} (${errorText(err)}); clone shared/ beside the project or set ${CONFORMANCE_DIR_ENV}`,
    )
  }
  const files: VectorFile[] = []
  for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
    const path = join(dir, name)
    const json: unknown = JSON.parse(await readFile(path, 'utf8'))
    files.push({ name: basename(name, '.json'), path, vectors: parseVectorFile(basename(name, '.json'), json) })
  }
  if (files.length === 0) throw new Error(`no *.json vector files in ${dir}`)
  return files
}

/** Narrows one file's JSON to vectors; throws on anything the format does not describe. */
export function parseVectorFile(file: string, json: unknown): ConformanceVector[] {
  const where = `${file}.json`
  const vectors: ConformanceVector[] = []
  const seen = new Map<string, number>()
  for (const [gi, groupValue] of asArray(json, where).entries()) {
    const gWhere = `${where} group ${gi}`
    const group = asRecord(groupValue, gWhere)
    if (optionalBoolean(group, 'disable', gWhere) === true) continue
    const groupName = requiredString(group, 'group', gWhere)
    // Mosquitto's own runner also reads these three from the group; no file uses that today.
    const groupVer = optionalLevel(group, gWhere) ?? 4
    const groupConnect = optionalBoolean(group, 'connect', gWhere) ?? true
    const groupExpectDisconnect = optionalBoolean(group, 'expect_disconnect', gWhere) ?? true
    for (const [ti, testValue] of asArray(group.tests, `${gWhere} tests`).entries()) {
      const tWhere = `${gWhere} test ${ti}`
      const test = asRecord(testValue, tWhere)
      const name = requiredString(test, 'name', tWhere)
      const fileVer = optionalLevel(test, tWhere) ?? groupVer
      const connect = optionalBoolean(test, 'connect', tWhere) ?? groupConnect
      const steps = asArray(test.msgs, `${tWhere} msgs`).map((m, mi) => parseStep(m, `${tWhere} msg ${mi}`))
      const ver = (connect ? undefined : spokenLevel(steps[0])) ?? fileVer
      const key = `${ver}\u0000${name}`
      const occurrence = (seen.get(key) ?? 0) + 1
      seen.set(key, occurrence)
      vectors.push({
        file,
        group: groupName,
        name,
        occurrence,
        ver,
        fileVer,
        connect,
        expectDisconnect: optionalBoolean(test, 'expect_disconnect', tWhere) ?? groupExpectDisconnect,
        steps,
      })
    }
  }
  return vectors
}

/** The level of a well-formed CONNECT's protocol name and level (`MQIsdp` 3, `MQTT` 4 or 5), else undefined. */
function spokenLevel(step: Step | undefined): ProtocolLevel | undefined {
  if (step?.type !== 'send' || (step.bytes[0] ?? 0) >> 4 !== 1) return undefined
  const rl = decodeVarint(step.bytes, 1)
  if (rl === undefined || step.bytes.length < 1 + rl.length + 2) return undefined
  const at = 1 + rl.length
  const nameLength = step.bytes.readUInt16BE(at)
  const protocol = step.bytes.subarray(at + 2, at + 2 + nameLength).toString('latin1')
  const level = step.bytes[at + 2 + nameLength]
  if (protocol === 'MQIsdp' && level === 3) return 3
  if (protocol === 'MQTT' && (level === 4 || level === 5)) return level
  return undefined
}

function parseStep(value: unknown, where: string): Step {
  const msg = asRecord(value, where)
  const type = requiredString(msg, 'type', where)
  const comment = optionalString(msg, 'comment', where)
  const extra = comment === undefined ? {} : { comment }
  switch (type) {
    case 'send':
    case 'recv':
      return { type, bytes: parseHex(requiredString(msg, 'payload', where), where), ...extra }
    case 'publish': {
      const qos = msg.qos
      if (qos !== 0 && qos !== 1 && qos !== 2) throw new Error(`${where}: qos must be 0, 1 or 2`)
      return {
        type,
        topic: requiredString(msg, 'topic', where),
        qos,
        payload: requiredString(msg, 'payload', where),
        ...extra,
      }
    }
    default:
      throw new Error(`${where}: unknown step type ${JSON.stringify(type)}`)
  }
}

/**
 * Spaces only group bytes for the reader, and two vectors put one inside a byte
 * (`1F0001701 F000171`), so all whitespace goes before decoding instead of splitting on it.
 */
export function parseHex(text: string, where = 'hex'): Buffer {
  const compact = text.replace(/\s+/g, '')
  if (compact.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(compact)) {
    throw new Error(`${where}: not an even run of hex digits: ${JSON.stringify(text)}`)
  }
  return Buffer.from(compact, 'hex')
}

function asArray(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${where}: expected an array`)
  return value
}

function asRecord(value: unknown, where: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${where}: expected an object`)
  }
  return value as Record<string, unknown>
}

function requiredString(obj: Record<string, unknown>, key: string, where: string): string {
  const v = obj[key]
  if (typeof v !== 'string') throw new Error(`${where}: "${key}" must be a string`)
  return v
}

function optionalString(obj: Record<string, unknown>, key: string, where: string): string | undefined {
  const v = obj[key]
  if (v === undefined) return undefined
  if (typeof v !== 'string') throw new Error(`${where}: "${key}" must be a string`)
  return v
}

function optionalBoolean(obj: Record<string, unknown>, key: string, where: string): boolean | undefined {
  const v = obj[key]
  if (v === undefined) return undefined
  if (typeof v !== 'boolean') throw new Error(`${where}: "${key}" must be true or false`)
  return v
}

function optionalLevel(obj: Record<string, unknown>, where: string): ProtocolLevel | undefined {
  const v = obj.ver
  if (v === undefined) return undefined
  if (v !== 3 && v !== 4 && v !== 5) throw new Error(`${where}: "ver" must be 3, 4 or 5`)
  return v
}

// ---------------------------------------------------------------------------------------------
// Packets the runner itself writes

const PINGREQ = Buffer.from([0xc0, 0x00])
const PINGRESP = Buffer.from([0xd0, 0x00])
const DISCONNECT_V4 = Buffer.from([0xe0, 0x00])
const CONNACK = 0x20
const DISCONNECT = 0xe0
const KEEPALIVE_S = 60
const CLEAN_SESSION = 0x02

function encodeVarint(value: number): Buffer {
  const out: number[] = []
  let v = value
  do {
    let byte = v % 128
    v = Math.floor(v / 128)
    if (v > 0) byte |= 0x80
    out.push(byte)
  } while (v > 0)
  return Buffer.from(out)
}

/** The value and byte count of a variable byte integer, or undefined while it is incomplete or over 4 bytes. */
export function decodeVarint(buf: Buffer, offset: number): { value: number; length: number } | undefined {
  let value = 0
  let multiplier = 1
  for (let i = 0; i < 4; i++) {
    const byte = buf[offset + i]
    if (byte === undefined) return undefined
    value += (byte & 0x7f) * multiplier
    if ((byte & 0x80) === 0) return { value, length: i + 1 }
    multiplier *= 128
  }
  return undefined
}

function mqttString(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8')
  const len = Buffer.alloc(2)
  len.writeUInt16BE(bytes.length)
  return Buffer.concat([len, bytes])
}

function packet(firstByte: number, ...body: Buffer[]): Buffer {
  const payload = Buffer.concat(body)
  return Buffer.concat([Buffer.from([firstByte]), encodeVarint(payload.length), payload])
}

function u16(value: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(value)
  return b
}

/** The CONNECT every vector starts with unless it says `"connect": false` (README "The default CONNECT"). */
export function defaultConnect(ver: ProtocolLevel, clientId: string): Buffer {
  return packet(
    0x10,
    mqttString(ver === 3 ? 'MQIsdp' : 'MQTT'),
    Buffer.from([ver, CLEAN_SESSION]),
    u16(KEEPALIVE_S),
    ver === 5 ? Buffer.from([0x00]) : Buffer.alloc(0),
    mqttString(clientId),
  )
}

function helperPublish(topic: string, qos: 0 | 1 | 2, payload: string): Buffer {
  const packetId = qos === 0 ? Buffer.alloc(0) : u16(1)
  return packet(0x30 | (qos << 1), mqttString(topic), packetId, Buffer.from(payload, 'utf8'))
}

export function toHex(bytes: Buffer, max = 48): string {
  const shown = [...bytes.subarray(0, max)].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(' ')
  if (bytes.length === 0) return '(nothing)'
  return bytes.length > max ? `${shown} ... (${bytes.length} bytes)` : shown
}

/** A complete single packet with this first byte, and nothing after it. */
function isSinglePacket(bytes: Buffer, firstByte: number): boolean {
  if (bytes[0] !== firstByte) return false
  const rl = decodeVarint(bytes, 1)
  return rl !== undefined && 1 + rl.length + rl.value === bytes.length
}

/**
 * The body (flags, reason code, properties) of an expected v5 CONNACK, or undefined for anything
 * else; a 3.1/3.1.1 CONNACK always has remaining length 2, a v5 one at least 3 (its property block).
 */
function v5ConnackBody(bytes: Buffer): Buffer | undefined {
  if (!isSinglePacket(bytes, CONNACK)) return undefined
  const rl = decodeVarint(bytes, 1)
  if (rl === undefined || rl.value < 3) return undefined
  return bytes.subarray(1 + rl.length)
}

// ---------------------------------------------------------------------------------------------
// One TCP connection, read as a byte stream

type ReadOutcome = { status: 'ok'; bytes: Buffer } | { status: 'closed' | 'timeout'; bytes: Buffer }

/**
 * Buffers what the server sends so steps can ask for exact byte counts. Nothing the vectors expect
 * comes near the cap; past it the server is flooding us and the connection is dropped rather
 * than growing the buffer without bound.
 */
class ByteConnection {
  static readonly MAX_BUFFERED = 1 << 20
  readonly #socket: Socket
  #buffer: Buffer = Buffer.alloc(0)
  #closed = false
  #closeNote = ''
  #wake: (() => void) | undefined

  private constructor(socket: Socket) {
    this.#socket = socket
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk])
      if (this.#buffer.length > ByteConnection.MAX_BUFFERED) {
        this.#markClosed(' (dropped by the runner: over 1 MiB unread)')
        socket.destroy()
      }
      this.#notify()
    })
    socket.on('end', () => this.#markClosed(''))
    socket.on('close', () => this.#markClosed(''))
    // A reset is the server closing too; without this listener it would crash the process.
    socket.on('error', (err: Error) => this.#markClosed(` (${errorText(err)})`))
  }

  static open(endpoint: Endpoint, timeoutMs: number): Promise<ByteConnection> {
    return new Promise((resolveOpen, rejectOpen) => {
      const socket = tcpConnect({ host: endpoint.host, port: endpoint.port })
      const timer = setTimeout(() => {
        socket.destroy()
        rejectOpen(new Error(`TCP connect to ${endpoint.host}:${endpoint.port} timed out`))
      }, timeoutMs)
      socket.once('connect', () => {
        clearTimeout(timer)
        socket.removeAllListeners('error')
        resolveOpen(new ByteConnection(socket))
      })
      socket.once('error', (err) => {
        clearTimeout(timer)
        rejectOpen(new Error(`TCP connect to ${endpoint.host}:${endpoint.port} failed: ${errorText(err)}`))
      })
    })
  }

  get closed(): boolean {
    return this.#closed
  }

  /** How the connection ended, e.g. ` (ECONNRESET)`; empty for an orderly close. */
  get closeNote(): string {
    return this.#closeNote
  }

  /** False when the server had already closed: the bytes were not written. */
  write(bytes: Buffer): boolean {
    if (this.#closed) return false
    this.#socket.write(bytes)
    return true
  }

  /** Exactly `n` bytes; on close or timeout, whatever had arrived (left in the buffer). */
  async read(n: number, deadline: number): Promise<ReadOutcome> {
    for (;;) {
      if (this.#buffer.length >= n) {
        const bytes = this.#buffer.subarray(0, n)
        this.#buffer = this.#buffer.subarray(n)
        return { status: 'ok', bytes }
      }
      if (this.#closed) return { status: 'closed', bytes: this.#buffer }
      if (Date.now() >= deadline) return { status: 'timeout', bytes: this.#buffer }
      await this.#waitForData(deadline)
    }
  }

  /** One whole MQTT packet, delimited by its remaining length. */
  async readPacket(deadline: number): Promise<ReadOutcome> {
    let headerLength = 2
    for (;;) {
      const head = await this.read(headerLength, deadline)
      if (head.status !== 'ok') return head
      // Peek: put the header back so a short read reports every byte that arrived.
      this.#buffer = Buffer.concat([head.bytes, this.#buffer])
      const rl = decodeVarint(head.bytes, 1)
      if (rl !== undefined) return this.read(1 + rl.length + rl.value, deadline)
      if (headerLength === 5) return this.read(this.#buffer.length, deadline) // malformed length: show it all
      headerLength++
    }
  }

  /** What has arrived and not been read yet, left in place; for failure messages. */
  buffered(): Buffer {
    return this.#buffer
  }

  /** Waits for the server to close; returns whether it did and every byte it sent first. */
  async waitForClose(deadline: number): Promise<{ closed: boolean; bytes: Buffer }> {
    while (!this.#closed && Date.now() < deadline) await this.#waitForData(deadline)
    const bytes = this.#buffer
    this.#buffer = Buffer.alloc(0)
    return { closed: this.#closed, bytes }
  }

  destroy(): void {
    this.#socket.destroy()
  }

  #markClosed(note: string): void {
    if (!this.#closed) this.#closeNote = note
    this.#closed = true
    this.#notify()
  }

  #notify(): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }

  #waitForData(deadline: number): Promise<void> {
    return new Promise((resolveWait) => {
      const timer = setTimeout(() => {
        this.#wake = undefined
        resolveWait()
      }, Math.max(0, deadline - Date.now()))
      this.#wake = () => {
        clearTimeout(timer)
        resolveWait()
      }
    })
  }
}

// ---------------------------------------------------------------------------------------------
// Running one vector

class VectorFailure extends Error {}

function fail(message: string): never {
  throw new VectorFailure(message)
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}

function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i
  return n
}

/** Fails unless the next packet is a CONNACK with return/reason code 0; its v5 properties are the server's choice. */
async function expectAcceptingConnack(conn: ByteConnection, label: string, timeoutMs: number): Promise<void> {
  const got = await conn.readPacket(Date.now() + timeoutMs)
  if (got.status === 'closed') fail(`${label}: server closed the connection${conn.closeNote} without a CONNACK; got ${toHex(got.bytes)}`)
  if (got.status === 'timeout') fail(`${label}: no CONNACK within ${seconds(timeoutMs)}; got ${toHex(got.bytes)}`)
  const rl = decodeVarint(got.bytes, 1)
  const body = rl === undefined ? Buffer.alloc(0) : got.bytes.subarray(1 + rl.length)
  if (got.bytes[0] !== CONNACK || body.length < 2) fail(`${label}: expected a CONNACK, got ${toHex(got.bytes)}`)
  const code = body[1] ?? 0
  if (code !== 0) fail(`${label}: CONNACK refused with code 0x${code.toString(16).padStart(2, '0')}: ${toHex(got.bytes)}`)
}

async function recvStep(conn: ByteConnection, expected: Buffer, label: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  const v5Connack = v5ConnackBody(expected)
  if (v5Connack !== undefined) {
    // A v5 CONNACK's properties are the server's own choice (README "The default CONNECT"): the
    // files expect Mosquitto's Topic Alias Maximum 10 and Receive Maximum 20. Compare packet type,
    // flags and reason code, and only require a well-formed property block.
    const got = await conn.readPacket(deadline)
    if (got.status !== 'ok') {
      fail(`${label}: ${got.status === 'closed' ? `server closed the connection${conn.closeNote}` : `timed out after ${seconds(timeoutMs)}`} having sent ${toHex(got.bytes)}; expected ${toHex(expected)}`)
    }
    const rl = decodeVarint(got.bytes, 1)
    const body = rl === undefined ? Buffer.alloc(0) : got.bytes.subarray(1 + rl.length)
    const props = decodeVarint(body, 2)
    const same =
      got.bytes[0] === CONNACK &&
      body.length >= 3 &&
      body[0] === v5Connack[0] &&
      body[1] === v5Connack[1] &&
      props !== undefined &&
      2 + props.length + props.value === body.length
    if (!same) fail(`${label}: got ${toHex(got.bytes)}, expected ${toHex(expected)} (CONNACK properties not compared)`)
    return
  }
  const got = await conn.read(expected.length, deadline)
  if (got.status === 'closed') {
    fail(`${label}: server closed the connection${conn.closeNote} after ${got.bytes.length} of ${expected.length} bytes: got ${toHex(got.bytes)}, expected ${toHex(expected)}`)
  }
  if (got.status === 'timeout') {
    fail(`${label}: timed out after ${seconds(timeoutMs)} with ${got.bytes.length} of ${expected.length} bytes: got ${toHex(got.bytes)}, expected ${toHex(expected)}`)
  }
  if (!got.bytes.equals(expected)) {
    const after = conn.buffered()
    fail(`${label}: got ${toHex(got.bytes)}, expected ${toHex(expected)} (first difference at byte ${firstDifference(got.bytes, expected)}${after.length > 0 ? `; then ${toHex(after, 16)}` : ''})`)
  }
}

/**
 * The second client of a `publish` step: 3.1.1, client id `helper`, clean session, keepalive 60,
 * packet id 1, the QoS handshake completed, then a DISCONNECT.
 */
async function publishAsHelper(endpoint: Endpoint, step: Extract<Step, { type: 'publish' }>, timeoutMs: number): Promise<void> {
  const conn = await ByteConnection.open(endpoint, timeoutMs).catch((err: unknown) => fail(`helper: ${errorText(err)}`))
  try {
    conn.write(defaultConnect(4, 'helper'))
    await expectAcceptingConnack(conn, 'helper CONNACK', timeoutMs)
    conn.write(helperPublish(step.topic, step.qos, step.payload))
    if (step.qos === 1) await recvStep(conn, Buffer.from([0x40, 0x02, 0x00, 0x01]), 'helper PUBACK', timeoutMs)
    if (step.qos === 2) {
      await recvStep(conn, Buffer.from([0x50, 0x02, 0x00, 0x01]), 'helper PUBREC', timeoutMs)
      conn.write(Buffer.from([0x62, 0x02, 0x00, 0x01]))
      await recvStep(conn, Buffer.from([0x70, 0x02, 0x00, 0x01]), 'helper PUBCOMP', timeoutMs)
    }
    conn.write(DISCONNECT_V4)
    // The broker closes after a DISCONNECT; waiting for that means it is done with `helper`
    // before the vector goes on (a later publish step reuses the client id). Not a check.
    await conn.waitForClose(Date.now() + timeoutMs)
  } finally {
    conn.destroy()
  }
}

async function finalCheck(conn: ByteConnection, vector: ConformanceVector, timeoutMs: number): Promise<void> {
  if (vector.expectDisconnect) {
    const { closed, bytes } = await conn.waitForClose(Date.now() + timeoutMs)
    if (!closed) {
      fail(`end: expected the server to close the connection; still open after ${seconds(timeoutMs)}${bytes.length > 0 ? `, having sent ${toHex(bytes)}` : ''}`)
    }
    // A v5 server may say why before it closes (MQTT 5.0 §4.13.1); any other byte is unexpected.
    const explained = vector.ver === 5 && isSinglePacket(bytes, DISCONNECT)
    if (bytes.length > 0 && !explained) fail(`end: server closed the connection as expected, but first sent unexpected ${toHex(bytes)}`)
    return
  }
  if (!conn.write(PINGREQ)) fail(`end: expected the connection to stay open; the server closed it${conn.closeNote}`)
  const got = await conn.readPacket(Date.now() + timeoutMs)
  if (got.status === 'closed') {
    fail(`end: expected the connection to stay open (PINGREQ -> PINGRESP); the server closed it${conn.closeNote}${got.bytes.length > 0 ? ` after sending ${toHex(got.bytes)}` : ''}`)
  }
  if (got.status === 'timeout') fail(`end: no PINGRESP within ${seconds(timeoutMs)}; got ${toHex(got.bytes)}`)
  if (!got.bytes.equals(PINGRESP)) fail(`end: expected PINGRESP D0 00 after PINGREQ, got ${toHex(got.bytes)}`)
}

function stepLabel(index: number, step: Step): string {
  return `step ${index + 1} ${step.type}${step.comment !== undefined && step.comment !== '' ? ` (${step.comment})` : ''}`
}

/** Runs one vector on a fresh connection; resolves with the failure reason, or undefined when it passed. */
export async function runVector(vector: ConformanceVector, endpoint: Endpoint, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string | undefined> {
  let conn: ByteConnection | undefined
  try {
    conn = await ByteConnection.open(endpoint, timeoutMs).catch((err: unknown) => fail(errorText(err)))
    if (vector.connect) {
      conn.write(defaultConnect(vector.ver, vector.name))
      await expectAcceptingConnack(conn, 'default CONNECT', timeoutMs)
    }
    for (const [i, step] of vector.steps.entries()) {
      const label = stepLabel(i, step)
      switch (step.type) {
        case 'send':
          // The files never write after a close they expect, so a close here came too early.
          if (!conn.write(step.bytes)) fail(`${label}: server had already closed the connection${conn.closeNote}`)
          break
        case 'recv':
          await recvStep(conn, step.bytes, label, timeoutMs)
          break
        case 'publish':
          await publishAsHelper(endpoint, step, timeoutMs).catch((err: unknown) => fail(`${label}: ${errorText(err)}`))
          break
      }
    }
    await finalCheck(conn, vector, timeoutMs)
    return undefined
  } catch (err) {
    return err instanceof VectorFailure ? err.message : `runner error: ${errorText(err)}`
  } finally {
    conn?.destroy()
  }
}

// ---------------------------------------------------------------------------------------------
// A reference broker

async function freePort(host: string): Promise<number> {
  const server = createServer()
  server.listen(0, host)
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

/**
 * Starts a Mosquitto of its own (anonymous, one listener on 127.0.0.1) for one vector file, so a
 * Mosquitto run has the same fresh-broker-per-file shape as the in-process Outpost run. Mosquitto
 * cannot be told to listen on port 0, hence the probe for a free port first.
 */
export async function startMosquitto(binary: string, timeoutMs = 5000): Promise<BrokerHandle> {
  const host = '127.0.0.1'
  const dir = await mkdtemp(join(tmpdir(), 'outpost-conformance-mosquitto-'))
  const port = await freePort(host)
  const conf = join(dir, 'mosquitto.conf')
  await writeFile(conf, `listener ${port} ${host}\nallow_anonymous true\n`)
  const child = spawn(binary, ['-c', conf], { stdio: 'ignore' })
  let running = true
  // 'error' instead of 'exit' when the binary cannot be started at all.
  const exited = new Promise<string>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit(`exited with ${signal ?? code}`))
    child.once('error', (err) => resolveExit(errorText(err)))
  }).then((how) => {
    running = false
    return how
  })
  const close = async (): Promise<void> => {
    if (running) child.kill('SIGTERM')
    await exited
    await rm(dir, { recursive: true, force: true })
  }
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      ;(await ByteConnection.open({ host, port }, timeoutMs)).destroy()
      return { endpoint: { host, port }, close }
    } catch (err) {
      if (!running || Date.now() > deadline) {
        const how = running ? errorText(err) : await exited
        await close()
        throw new Error(`${binary} did not start listening on ${host}:${port}: ${how}`)
      }
      await sleep(50)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Running files, and the report

export function vectorLabel(v: { file: string; ver: ProtocolLevel; name: string; occurrence?: number }): string {
  // Not `#2`: node:test escapes `#` in diagnostics.
  const n = v.occurrence ?? 1
  const nth = n > 1 ? ` (${n}${n === 2 ? 'nd' : n === 3 ? 'rd' : 'th'})` : ''
  return `${v.file} v${v.ver} ${JSON.stringify(v.name)}${nth}`
}

function exceptionKey(e: { file: string; ver: ProtocolLevel; name: string; occurrence?: number }): string {
  return `${e.file}\u0000${e.ver}\u0000${e.name}\u0000${e.occurrence ?? 1}`
}

/** Exceptions that name no vector in these files: renamed or removed vectors, or typos. */
export function findStaleExceptions(exceptions: readonly ConformanceException[], files: readonly VectorFile[]): ConformanceException[] {
  const known = new Set(files.flatMap((f) => f.vectors.map(exceptionKey)))
  return exceptions.filter((e) => !known.has(exceptionKey(e)))
}

function statusOf(passed: boolean, exception: ConformanceException | undefined): VectorStatus {
  if (exception?.kind === 'may') return 'may'
  if (exception?.kind === 'differs' && !passed) return 'excepted'
  return passed ? 'pass' : 'fail'
}

export async function runConformance(options: RunOptions): Promise<ConformanceReport> {
  const started = Date.now()
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const budgetEnd = options.budgetMs === undefined ? Infinity : started + options.budgetMs
  const exceptions = new Map((options.exceptions ?? []).map((e) => [exceptionKey(e), e]))
  const results: VectorResult[] = []

  const record = (vector: ConformanceVector, reason: string | undefined, durationMs: number): void => {
    const exception = exceptions.get(exceptionKey(vector))
    const passed = reason === undefined
    const result: VectorResult = { vector, passed, status: statusOf(passed, exception), durationMs }
    if (reason !== undefined) result.reason = reason
    if (exception !== undefined) result.exception = exception
    results.push(result)
    options.onResult?.(result)
  }

  const runFile = async (file: VectorFile): Promise<void> => {
    let broker: BrokerHandle
    try {
      broker = await options.broker(file)
    } catch (err) {
      for (const v of file.vectors) record(v, `broker for ${file.name} did not start: ${errorText(err)}`, 0)
      return
    }
    try {
      // In order, on one broker: later vectors rely on retained messages and sessions left by earlier ones.
      for (const vector of file.vectors) {
        if (Date.now() > budgetEnd) {
          record(vector, `not run: the ${seconds(options.budgetMs ?? 0)} time budget was used up`, 0)
          continue
        }
        const t0 = Date.now()
        record(vector, await runVector(vector, broker.endpoint, timeoutMs), Date.now() - t0)
      }
    } finally {
      await broker.close()
    }
  }

  const queue = [...options.files]
  const workers = Math.max(1, Math.min(options.parallelFiles ?? queue.length, queue.length))
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (let file = queue.shift(); file !== undefined; file = queue.shift()) await runFile(file)
    }),
  )
  // Workers finish in any order; report in file order, then the file's own order.
  const order = new Map(options.files.flatMap((f) => f.vectors).map((v, i) => [v, i]))
  results.sort((a, b) => (order.get(a.vector) ?? 0) - (order.get(b.vector) ?? 0))
  return { results, durationMs: Date.now() - started }
}

export interface Tally {
  total: number
  passed: number
  /** Accepted through the exceptions list: `may` vectors either way, `differs` vectors that failed. */
  excepted: number
  failed: number
}

export function tally(results: readonly VectorResult[]): Tally {
  const t: Tally = { total: results.length, passed: 0, excepted: 0, failed: 0 }
  for (const r of results) {
    if (r.status === 'pass') t.passed++
    else if (r.status === 'fail') t.failed++
    else t.excepted++
  }
  return t
}

export function resultsFor(report: ConformanceReport, ver: ProtocolLevel): VectorResult[] {
  return report.results.filter((r) => r.vector.ver === ver)
}

/** `conformance v3: X/3, v4: Y/292, v5: Z/1188, exceptions: N` */
export function formatTotals(report: ConformanceReport): string {
  const parts = PROTOCOL_LEVELS.map((ver) => {
    const t = tally(resultsFor(report, ver))
    return `v${ver}: ${t.passed}/${t.total}`
  })
  return `conformance ${parts.join(', ')}, exceptions: ${tally(report.results).excepted} (${seconds(report.durationMs)})`
}

/** Passed/total per file and version, then the totals row. */
export function formatSummaryTable(report: ConformanceReport): string[] {
  const files = [...new Set(report.results.map((r) => r.vector.file))]
  const cell = (results: VectorResult[]): string => {
    if (results.length === 0) return '-'
    const t = tally(results)
    return `${t.passed}/${t.total}${t.excepted > 0 ? ` +${t.excepted}x` : ''}`
  }
  const rows = files.map((file) => {
    const inFile = report.results.filter((r) => r.vector.file === file)
    return [file, ...PROTOCOL_LEVELS.map((ver) => cell(inFile.filter((r) => r.vector.ver === ver)))]
  })
  rows.push(['total', ...PROTOCOL_LEVELS.map((ver) => cell(resultsFor(report, ver)))])
  const header = ['file', ...PROTOCOL_LEVELS.map((v) => `v${v} passed`)]
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()
  const moved = report.results.filter((r) => r.vector.ver !== r.vector.fileVer)
  const notes = ['(+Nx: N more accepted through the exceptions list)']
  if (moved.length > 0) {
    const to = PROTOCOL_LEVELS.map((ver) => [ver, moved.filter((r) => r.vector.ver === ver).length] as const).filter(([, n]) => n > 0)
    notes.push(`(${moved.length} vectors that send their own CONNECT counted under its level, not the file's ver: ${to.map(([ver, n]) => `${n} to v${ver}`).join(', ')})`)
  }
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), ...notes]
}

/** One line per vector, e.g. `FAIL PUBLISH v4 "30 topic 0": end: expected the server to close ...`. */
export function formatResult(r: VectorResult): string {
  const tag = { pass: 'PASS', fail: 'FAIL', may: 'MAY ', excepted: 'EXC ' }[r.status]
  const why = r.exception === undefined ? '' : ` [${r.exception.kind} ${r.exception.clause}]`
  return `${tag} ${vectorLabel(r.vector)}${why}${r.reason === undefined ? '' : `: ${r.reason}`}`
}

export function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code
    return code !== undefined && !err.message.includes(code) ? `${code} ${err.message}` : err.message
  }
  return String(err)
}
