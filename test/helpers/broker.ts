import { mkdtempSync, rmSync } from 'node:fs'
import { connect as netConnect, createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { pino, type Logger } from 'pino'
import { Broker, type BrokerHooks } from '../../src/broker/broker.js'
import { defaultConfig, defaultListener } from '../../src/config/defaults.js'
import type { OutpostConfig } from '../../src/config/types.js'
import { startGateway, type Gateway } from '../../src/gateway.js'
import { duplexPair } from './duplex-pair.js'
import { RawClient } from './raw-client.js'

export type Transport = 'memory' | 'tcp'

export interface MemoryBroker {
  broker: Broker
  /** A raw client speaking `protocolVersion` (3.1.1 unless told), ended after the test. */
  client(protocolVersion?: 3 | 4 | 5): RawClient
}

/**
 * A raw client on TCP `port` of this machine, ended after the test. It is returned at once:
 * writes before the connect completes are buffered by the socket.
 */
export function tcpClient(t: TestContext, port: number, protocolVersion: 3 | 4 | 5 = 4): RawClient {
  const c = new RawClient(netConnect(port, '127.0.0.1'), protocolVersion)
  t.after(() => c.end())
  return c
}

/**
 * An in-process broker. With 'memory' clients connect over in-memory stream pairs; with 'tcp'
 * the broker is served on a real socket on port 0, the way a listener hands it streams, and
 * `port` is that socket's port (for MQTT.js and other clients of the test's own).
 */
export async function memoryBroker(t: TestContext, overrides?: Partial<OutpostConfig>, hooks?: BrokerHooks, transport?: 'memory'): Promise<MemoryBroker>
export async function memoryBroker(t: TestContext, overrides: Partial<OutpostConfig> | undefined, hooks: BrokerHooks | undefined, transport: 'tcp'): Promise<MemoryBroker & { port: number }>
export async function memoryBroker(t: TestContext, overrides?: Partial<OutpostConfig>, hooks?: BrokerHooks, transport?: Transport): Promise<MemoryBroker & { port?: number }>
export async function memoryBroker(
  t: TestContext,
  overrides: Partial<OutpostConfig> = {},
  hooks?: BrokerHooks,
  transport: Transport = 'memory',
): Promise<MemoryBroker & { port?: number }> {
  const config = { ...defaultConfig(), sysInterval: 0, ...overrides }
  const broker = new Broker({ config, log: pino({ level: 'silent' }), ...(hooks === undefined ? {} : { hooks }) })
  await broker.start()
  t.after(() => broker.close())
  if (transport === 'tcp') {
    const server = createServer((socket) => broker.handle(socket, { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort }))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const { port } = server.address() as AddressInfo
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
    return { broker, port, client: (protocolVersion = 4) => tcpClient(t, port, protocolVersion) }
  }
  return { broker, client: (protocolVersion = 4) => pipeClient(t, broker, protocolVersion) }
}

/** A raw client of `broker` over an in-memory stream pair, ended after the test. */
export function pipeClient(t: TestContext, broker: Broker, protocolVersion: 3 | 4 | 5 = 4): RawClient {
  const [ours, theirs] = duplexPair()
  broker.handle(theirs, { remoteAddress: 'memory' })
  const c = new RawClient(ours, protocolVersion)
  t.after(() => c.end())
  return c
}

/** A full gateway on a real TCP port 0. */
export async function tcpGateway(t: TestContext, overrides: Partial<OutpostConfig> = {}, log: Logger = pino({ level: 'silent' })): Promise<{ port: number; broker: Broker; gateway: Gateway; dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'outpost-test-'))
  t.after(() => rmSync(dataDir, { recursive: true, force: true }))
  const config: OutpostConfig = {
    ...defaultConfig(),
    sysInterval: 0,
    dataDir,
    ...overrides,
    listeners: [defaultListener('mqtt', 0, '127.0.0.1')],
  }
  const gw = await startGateway(config, log)
  t.after(() => gw.close())
  const addr = gw.addresses()[0] as AddressInfo
  return { port: addr.port, broker: gw.broker, gateway: gw, dataDir }
}
