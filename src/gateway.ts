import { accessSync, constants, existsSync, mkdirSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { Broker } from './broker/broker.js'
import type { OutpostConfig } from './config/types.js'
import { OutpostError } from './errors.js'
import { ListenerSecurity } from './auth/listener-security.js'
import { Listener } from './listeners/listener.js'
import type { SerialBridge } from './serial/bridge.js'
import type { UpstreamBridge } from './upstream/bridge.js'
import { OUTBOX_PREFIX } from './upstream/outbox-id.js'
import { LevelStore, moveStoreAside } from './store/level.js'
import { storeLocation } from './store/level-open.js'
import type { Store } from './store/types.js'
import { readVersion } from './version.js'

export interface GatewayOptions {
  /** Rename an existing store aside (`store.broken-<time>`) and start with an empty one. */
  readonly moveAsideStore?: boolean
}

/** A running Outpost: the broker, its store, its listeners and its serial ports. */
export interface Gateway {
  readonly broker: Broker
  /** Undefined when the config has no `serial:` ports. */
  readonly serial: SerialBridge | undefined
  /** One per `upstream:` entry. */
  readonly upstream: readonly UpstreamBridge[]
  addresses(): AddressInfo[]
  /**
   * Reads every listener's TLS files, password file and ACL file again (SIGHUP), for the
   * connections that come next. A file that fails to load keeps that listener's old settings; the
   * error is thrown after the other listeners are done.
   */
  reload(): Promise<void>
  /** Stops accepting, closes every client, flushes the store. Safe to call twice. */
  close(reason?: string): Promise<void>
}

/**
 * Wires a validated config into a running gateway. Everything that can fail at start (ports in
 * use) fails here, before the caller reports ready.
 */
export async function startGateway(config: OutpostConfig, log: Logger, options: GatewayOptions = {}): Promise<Gateway> {
  prepareDataDir(config.dataDir)
  if (options.moveAsideStore === true && existsSync(storeLocation(config.dataDir))) {
    const to = moveStoreAside(config.dataDir)
    log.warn({ movedTo: to }, 'moved the old store aside as asked (--move-aside-store); starting with an empty one')
  }
  // Everything acknowledged lives here; a store that cannot be opened stops the start with its
  // code (locked, corrupt, unknown format) rather than silently starting empty.
  const store: Store = await LevelStore.open(config.dataDir, { durability: config.durability })
  const broker = new Broker({ config, log: log.child({ component: 'broker' }), store, version: readVersion() })
  const listeners: Listener[] = []
  const addresses: AddressInfo[] = []
  let serial: SerialBridge | undefined
  const upstream: UpstreamBridge[] = []
  try {
    await broker.start()
    // Before any listener opens: the outboxes take over their stored sessions before a network
    // client could, and nothing published locally is missed by an `out` rule.
    // MQTT.js and TLS cost several MB of RSS; loaded only when a bridge is configured.
    if (config.upstream.length > 0) {
      const { UpstreamBridge } = await import('./upstream/bridge.js')
      for (const u of config.upstream) {
        const bridge = new UpstreamBridge(broker, u, config.gatewayId, log.child({ component: 'upstream' }))
        upstream.push(bridge)
        await bridge.start()
      }
    }
    // A bridge removed from the config would otherwise keep its outbox filling up forever.
    for (const id of broker.sessionIdsWithPrefix(OUTBOX_PREFIX)) {
      if (upstream.some((b) => b.outboxId === id)) continue
      const dropped = broker.endOfflineSession(id)
      log.warn({ outbox: id, droppedMessages: dropped }, 'removed the outbox of a bridge that is no longer configured')
    }
    // Ports that are missing or failing do not stop the start: they wait and retry on their own.
    if (config.serial.length > 0) {
      // serialport's native binding is loaded only when a port is configured, like MQTT.js above.
      const { SerialBridge } = await import('./serial/bridge.js')
      serial = new SerialBridge(broker, config.serial, log.child({ component: 'serial' }))
      await serial.start()
    }
    for (const lc of config.listeners) {
      const security = await ListenerSecurity.load(lc, config.allowAnonymous)
      const listener = new Listener(broker, lc, log.child({ component: 'listener' }), security)
      listeners.push(listener)
      addresses.push(await listener.listen())
    }
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()))
    await serial?.close()
    await Promise.all(upstream.map((u) => u.close()))
    await broker.close()
    await store.close()
    throw err
  }

  let closing: Promise<void> | undefined
  return {
    broker,
    serial,
    upstream,
    addresses: () => [...addresses],
    async reload(): Promise<void> {
      const errors: unknown[] = []
      for (const l of listeners) {
        try {
          const security = await ListenerSecurity.load(l.config, config.allowAnonymous)
          l.reloadTls()
          l.security = security
        } catch (err) {
          errors.push(err)
        }
      }
      if (errors.length > 0) throw errors.length === 1 ? errors[0] : new AggregateError(errors, `${errors.length} listeners could not reload`)
      log.info({ listeners: listeners.length }, 'reloaded TLS certificates, password and ACL files')
    },
    close(reason?: string): Promise<void> {
      closing ??= (async () => {
        const stopped = Promise.all(listeners.map((l) => l.close()))
        // Before the broker closes, so `offline` and `stopped` reach the store and subscribers.
        await serial?.close()
        // After the serial ports: their last `offline` messages are in the outboxes by then.
        await Promise.all(upstream.map((u) => u.close()))
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
