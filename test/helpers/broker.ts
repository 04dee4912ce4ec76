import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
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

/** An in-process broker with no sockets: clients connect over in-memory streams. */
export async function memoryBroker(t: TestContext, overrides: Partial<OutpostConfig> = {}, hooks?: BrokerHooks): Promise<{
  broker: Broker
  client(): RawClient
}> {
  const config = { ...defaultConfig(), sysInterval: 0, ...overrides }
  const broker = new Broker({ config, log: pino({ level: 'silent' }), ...(hooks === undefined ? {} : { hooks }) })
  await broker.start()
  t.after(() => broker.close())
  return {
    broker,
    client(): RawClient {
      const [ours, theirs] = duplexPair()
      broker.handle(theirs, { remoteAddress: 'memory' })
      const c = new RawClient(ours)
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
