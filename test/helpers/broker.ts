import { mkdtempSync, rmSync } from 'node:fs'
import { connect as netConnect, createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { pino } from 'pino'
import { Broker, type BrokerHooks } from '../../src/broker/broker.js'
import { defaultConfig } from '../../src/config/defaults.js'
import type { OutpostConfig } from '../../src/config/types.js'
import { startGateway } from '../../src/gateway.js'
import { duplexPair } from './duplex-pair.js'
import { RawClient } from './raw-client.js'

export type Transport = 'memory' | 'tcp'

/**
 * An in-process broker. With 'memory' clients connect over in-memory stream pairs; with 'tcp'
 * the broker is served on a real socket on port 0, the way a listener hands it streams.
 */
export async function memoryBroker(
  t: TestContext,
  overrides: Partial<OutpostConfig> = {},
  hooks?: BrokerHooks,
  transport: Transport = 'memory',
): Promise<{
  broker: Broker
  client(): RawClient
}> {
  const config = { ...defaultConfig(), sysInterval: 0, ...overrides }
  const broker = new Broker({ config, log: pino({ level: 'silent' }), ...(hooks === undefined ? {} : { hooks }) })
  await broker.start()
  t.after(() => broker.close())
  let port = 0
  if (transport === 'tcp') {
    const server = createServer((socket) => broker.handle(socket, { remoteAddress: socket.remoteAddress, remotePort: socket.remotePort }))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    port = (server.address() as AddressInfo).port
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  }
  return {
    broker,
    client(): RawClient {
      let c: RawClient
      if (transport === 'tcp') {
        // Writes before the connect completes are buffered by the socket.
        c = new RawClient(netConnect(port, '127.0.0.1'))
      } else {
        const [ours, theirs] = duplexPair()
        broker.handle(theirs, { remoteAddress: 'memory' })
        c = new RawClient(ours)
      }
      t.after(() => c.end())
      return c
    },
  }
}

/** A full gateway on a real TCP port 0. */
export async function tcpGateway(t: TestContext, overrides: Partial<OutpostConfig> = {}): Promise<{ port: number; broker: Broker }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'outpost-test-'))
  t.after(() => rmSync(dataDir, { recursive: true, force: true }))
  const config: OutpostConfig = {
    ...defaultConfig(),
    sysInterval: 0,
    dataDir,
    ...overrides,
    listeners: [{ protocol: 'mqtt', port: 0, bind: '127.0.0.1' }],
  }
  const gw = await startGateway(config, pino({ level: 'silent' }))
  t.after(() => gw.close())
  const addr = gw.addresses()[0] as AddressInfo
  return { port: addr.port, broker: gw.broker }
}
