import { hostname } from 'node:os'
import type { PortSelector } from '../serial/resolve.js'
import type { SerialPortConfig } from './serial-types.js'
import type { UpstreamConfig } from './upstream-types.js'
import type { ListenerConfig, OutpostConfig } from './types.js'

/** The embedded default: what `outpost` with no arguments runs. */
export function defaultConfig(): OutpostConfig {
  return {
    listeners: [defaultListener('mqtt', 1883, '127.0.0.1')],
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
    connectTimeout: 10,
    maxKeepalive: 65535,
    // Per-client limits: off unless configured, as the issue and Mosquitto have them.
    maxTopicLevels: 0,
    maxTopicLength: 0,
    maxSubscriptions: 0,
    maxPublishRate: 0,
    maxPublishBytesRate: 0,
    drainTimeout: 0,
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
    serial: [],
    gatewayId: defaultGatewayId(),
    upstream: [],
    http: undefined,
  }
}

/**
 * One `serial:` entry with nothing but its port given. The topics suit a first run
 * (`mosquitto_sub -t 'sensors/#' -v` shows everything); the timings are PROTOCOL.md's.
 */
export function defaultSerialPort(name: string, selector: PortSelector): SerialPortConfig {
  return {
    name,
    selector,
    baudRate: 115200,
    dataBits: 8,
    parity: 'none',
    stopBits: 1,
    rtscts: false,
    framing: 'lines',
    lines: { delimiter: '\n', maxLength: 1024, format: { format: 'json' }, device: undefined, deviceField: undefined },
    mapping: {
      topic: 'sensors/{device}',
      fieldTopic: 'sensors/{device}/{field}',
      output: 'json',
      qos: 0,
      retain: false,
      timestamp: 'iso',
      throttle: 0,
      deadband: 0,
      fields: {},
    },
    devices: {},
    availabilityTopic: 'sensors/{device}/availability',
    // Three missed 5 s PINGs (PROTOCOL.md); `lines` devices have no heartbeat, so the validator
    // turns this to 0 for them unless the file sets it.
    availabilityTimeout: 15,
    stateTopic: 'outpost/serial/{port}/state',
    commandTopic: 'sensors/{device}/set/#',
    responseTopic: 'sensors/{device}/response',
    commandTimeout: 0.5,
    commandAttempts: 3,
    commandArgs: {},
    commandLine: '{command} {payload}',
    homeassistant: false,
  }
}

/** The host name as one topic level and client id part: `/`, `+`, `#` and spaces become `-`. */
export function defaultGatewayId(): string {
  return hostname().replace(/[/+#\s]/g, '-') || 'outpost'
}

/**
 * One `upstream:` entry with nothing but its URL given: a persistent MQTT 3.1.1 session, nothing
 * forwarded until `topics` says what, an outbox of up to a million messages on disk.
 */
export function defaultUpstream(name: string, url: string): UpstreamConfig {
  return {
    name,
    url,
    clientId: 'outpost-{gateway_id}',
    username: undefined,
    password: undefined,
    protocolVersion: 4,
    keepalive: 60,
    cleanSession: false,
    tls: { caFile: undefined, certFile: undefined, keyFile: undefined, serverName: undefined, verify: true },
    topics: [],
    prefix: '',
    reconnectMin: 1,
    reconnectMax: 60,
    maxInflight: 100,
    maxQueuedMessages: 1_000_000,
    maxQueuedBytes: 0,
    queueFullPolicy: 'drop_oldest',
    notificationTopic: 'outpost/{gateway_id}/bridge/{name}/state',
  }
}

/** A listener with only protocol, port and bind given: no TLS, no files, the anonymous default. */
export function defaultListener(protocol: ListenerConfig['protocol'], port: number, bind: string): ListenerConfig {
  return {
    protocol,
    port,
    bind,
    path: '/mqtt',
    tls: undefined,
    allowAnonymous: undefined,
    passwordFile: undefined,
    aclFile: undefined,
    maxConnections: 0,
    mountPoint: '',
  }
}
