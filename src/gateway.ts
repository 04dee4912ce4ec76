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
import { applyConfig, emptyReport, type GatewayParts, type ReloadReport } from './reload.js'
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
  /** Undefined while the config has no `serial:` ports (a reload may add some). */
  readonly serial: SerialBridge | undefined
  /** One per `upstream:` entry; the same array throughout, a reload adds and removes bridges in it. */
  readonly upstream: readonly UpstreamBridge[]
  addresses(): AddressInfo[]
  /**
   * SIGHUP. Without `next`: reads every listener's TLS files, password file and ACL file again,
   * for the connections that come next; a file that fails to load keeps that listener's old
   * settings, and the error is thrown after the other listeners are done.
   *
   * With `next` (a validated config, from `--config FILE` read again): applies what changed, see
   * reload.ts. Throws `ReloadRefused` with nothing changed when a listener's files cannot be
   * loaded. Reloads run one at a time.
   */
  reload(next?: OutpostConfig): Promise<ReloadReport>
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
  const parts: GatewayParts = { broker, log, config, listeners, upstream: [], serial: undefined }
  const upstream = parts.upstream
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
      parts.serial = new SerialBridge(broker, config.serial, log.child({ component: 'serial' }))
      await parts.serial.start()
    }
    for (const lc of config.listeners) {
      const security = await ListenerSecurity.load(lc, config.allowAnonymous)
      const listener = new Listener(broker, lc, log.child({ component: 'listener' }), security)
      listeners.push(listener)
      addresses.push(await listener.listen())
      if (security.admitsNobody) {
        // Secure by default, but silent refusals look like a broken install: say what to set.
        log.warn({ listener: listener.name }, 'this listener admits no client: it is not on loopback, so allow_anonymous is false, and it has no password_file; set password_file (outpost passwd -c FILE USER) or allow_anonymous: true')
      }
    }
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()))
    await parts.serial?.close()
    await Promise.all(upstream.map((u) => u.close()))
    await broker.close()
    await store.close()
    throw err
  }

  let closing: Promise<void> | undefined
  /** The reload in progress (or the last one): reloads run one after the other, and close waits for it. */
  let reloading: Promise<unknown> = Promise.resolve()
  const reloadFiles = async (): Promise<ReloadReport> => {
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
    return { ...emptyReport(), listeners: listeners.length }
  }
  return {
    broker,
    get serial() {
      return parts.serial
    },
    upstream,
    addresses: () => [...addresses],
    reload(next?: OutpostConfig): Promise<ReloadReport> {
      if (closing !== undefined) return Promise.reject(new Error('the gateway is stopping; not reloaded'))
      const run = reloading.then(() => (next === undefined ? reloadFiles() : applyConfig(parts, next)))
      reloading = run.catch(() => undefined)
      return run
    },
    close(reason?: string): Promise<void> {
      closing ??= (async () => {
        // A reload half done would start or stop ports and bridges under our feet.
        await reloading
        const stopped = Promise.all(listeners.map((l) => l.close()))
        // Before the broker closes, so `offline` and `stopped` reach the store and subscribers.
        await parts.serial?.close()
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
