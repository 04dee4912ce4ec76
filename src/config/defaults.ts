import type { OutpostConfig } from './types.js'

/** The embedded default: what `outpost` with no arguments runs. */
export function defaultConfig(): OutpostConfig {
  return {
    listeners: [{ protocol: 'mqtt', port: 1883, bind: '127.0.0.1' }],
    dataDir: './data',
    logLevel: 'info',
    allowAnonymous: true,
    maxConnections: 0,
    messageSizeLimit: 0,
    maxInflight: 20,
    maxQueuedMessages: 1000,
    maxQueuedBytes: 0,
    queueQos0Messages: false,
    maxKeepalive: 65535,
    sysInterval: 10,
    retainAvailable: true,
    persistentClientExpiration: 0,
  }
}
