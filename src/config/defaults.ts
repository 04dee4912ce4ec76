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
    queueFullPolicy: 'drop_oldest',
    // EMQX's defaults.
    maxAwaitingRel: 100,
    awaitRelTimeout: 300,
    maxKeepalive: 65535,
    sysInterval: 10,
    retainAvailable: true,
    persistentClientExpiration: 0,
    // Mosquitto's values, which MQTT 5 clients and Mosquitto's own test vectors expect.
    receiveMaximum: 20,
    topicAliasMaximum: 10,
    maxPacketSize: 0,
    maxQos: 2,
    wildcardSubscriptions: true,
    subscriptionIdentifiers: true,
    sharedSubscriptions: true,
    sharedSubscriptionStrategy: 'round_robin',
    responseInformation: '',
    reasonStrings: true,
    durability: 'sync',
    store: { maxBytes: 0 },
  }
}
