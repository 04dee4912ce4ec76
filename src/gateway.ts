import { accessSync, constants, mkdirSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { Broker } from './broker/broker.js'
import type { OutpostConfig } from './config/types.js'
import { OutpostError } from './errors.js'
import { TcpListener } from './listeners/tcp.js'
import { MemoryStore } from './store/memory.js'
import type { Store } from './store/types.js'
import { readVersion } from './version.js'

/** A running Outpost: the broker, its store and its listeners. */
export interface Gateway {
  readonly broker: Broker
  addresses(): AddressInfo[]
  /** Stops accepting, closes every client, flushes the store. Safe to call twice. */
  close(reason?: string): Promise<void>
}

/**
 * Wires a validated config into a running gateway. Everything that can fail at start (ports in
 * use) fails here, before the caller reports ready.
 */
export async function startGateway(config: OutpostConfig, log: Logger): Promise<Gateway> {
  prepareDataDir(config.dataDir)
  const store: Store = new MemoryStore()
  const broker = new Broker({ config, log: log.child({ component: 'broker' }), store, version: readVersion() })
  await broker.start()
  const listeners: TcpListener[] = []
  const addresses: AddressInfo[] = []
  try {
    for (const lc of config.listeners) {
      const listener = new TcpListener(broker, lc, log.child({ component: 'listener' }))
      listeners.push(listener)
      addresses.push(await listener.listen())
    }
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()))
    await broker.close()
    await store.close()
    throw err
  }

  let closing: Promise<void> | undefined
  return {
    broker,
    addresses: () => [...addresses],
    close(reason?: string): Promise<void> {
      closing ??= (async () => {
        const stopped = Promise.all(listeners.map((l) => l.close()))
        await broker.close(reason)
        await stopped
        await store.close()
        log.info({ reason }, 'outpost stopped')
      })()
      return closing
    },
  }
}

/** Creates the data directory up front so a bad path fails at start, not at the first write. */
function prepareDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true })
    accessSync(dir, constants.W_OK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err)
    throw new OutpostError('OUTPOST_E_DATA_DIR', `data_dir ${dir} cannot be used: ${code}`)
  }
}
