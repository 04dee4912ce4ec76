/**
 * What the MQTT 5 test files share: the in-process broker on a real TCP port (MQTT.js needs a
 * port), raw v5 clients, MQTT.js v5 clients with their messages recorded, and waits on packets.
 * Everything opened here is closed in `t.after`.
 */
import assert from 'node:assert/strict'
import { EventEmitter, once } from 'node:events'
import type { TestContext } from 'node:test'
import { connect, type IClientOptions, type MqttClient } from 'mqtt'
import type { IConnackPacket, IConnectPacket, IDisconnectPacket, IPublishPacket, ISubscription, Packet, PacketCmd } from 'mqtt-packet'
import type { Broker, BrokerHooks } from '../../src/broker/broker.js'
import type { OutpostConfig } from '../../src/config/types.js'
import { memoryBroker, tcpClient } from './broker.js'
import type { RawClient } from './raw-client.js'

/** How long a wait for something the broker should send lasts before the test fails. */
export const WAIT_MS = 3000

/** The payload of "nothing else arrived" sentinels; `Inbox.payloads()` leaves it out. */
export const SENTINEL = 'sentinel'

export interface V5Broker {
  broker: Broker
  port: number
  /** A raw v5 client, not yet connected. */
  raw(): RawClient
  /** A raw client of any version (3.1.1 unless told). */
  client(protocolVersion?: 3 | 4 | 5): RawClient
}

/** memoryBroker served on a real socket on port 0. */
export async function v5Broker(t: TestContext, overrides: Partial<OutpostConfig> = {}, hooks?: BrokerHooks): Promise<V5Broker> {
  const { broker, port, client } = await memoryBroker(t, overrides, hooks, 'tcp')
  return { broker, port, client, raw: () => client(5) }
}

/** A raw MQTT 5 client connected as `clientId` (CONNACK reason code 0 asserted), and its CONNACK. */
export async function raw5Connack(t: TestContext, port: number, clientId: string, connect: Partial<IConnectPacket> = {}): Promise<{ c: RawClient; connack: IConnackPacket }> {
  const c = tcpClient(t, port, 5)
  const connack = await c.connect({ protocolVersion: 5, clientId, ...connect })
  assert.equal(connack.reasonCode, 0, `${clientId}: CONNACK reason code`)
  return { c, connack }
}

/** A raw MQTT 5 client, connected (CONNACK 0) when this resolves. */
export async function raw5(t: TestContext, port: number, clientId: string, connect: Partial<IConnectPacket> = {}): Promise<RawClient> {
  return (await raw5Connack(t, port, clientId, connect)).c
}

/** SUBSCRIBE with v5 options and an optional Subscription Identifier; returns the SUBACK's reason codes. */
export async function sub5(c: RawClient, subscriptions: ISubscription[], subscriptionIdentifier?: number, messageId = 1): Promise<number[]> {
  c.send({ cmd: 'subscribe', messageId, subscriptions, ...(subscriptionIdentifier === undefined ? {} : { properties: { subscriptionIdentifier } }) }, 5)
  const ack = await c.next(WAIT_MS)
  assert.equal(ack.cmd, 'suback', `expected SUBACK, got ${JSON.stringify(ack)}`)
  return ack.cmd === 'suback' ? ack.granted.map(Number) : []
}

export function isCmd<C extends PacketCmd>(p: Packet, cmd: C): p is Extract<Packet, { cmd: C }> {
  return p.cmd === cmd
}

/** The next packet, which must be a `cmd`. */
export async function nextOf<C extends PacketCmd>(c: RawClient, cmd: C, ms = WAIT_MS): Promise<Extract<Packet, { cmd: C }>> {
  const p = await c.next(ms)
  if (!isCmd(p, cmd)) assert.fail(`expected ${cmd.toUpperCase()}, got ${JSON.stringify(p)}`)
  return p
}

/** The next packet must be a DISCONNECT, and the broker must close the connection after it. */
export async function serverDisconnect(c: RawClient, ms = WAIT_MS): Promise<IDisconnectPacket> {
  const p = await nextOf(c, 'disconnect', ms)
  await c.closed()
  return p
}

/** Every message an MQTT.js client receives, in order. */
export class Inbox {
  readonly messages: Array<{ topic: string; payload: string; packet: IPublishPacket }> = []
  readonly #events = new EventEmitter()

  constructor(client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.messages.push({ topic, payload: payload.toString(), packet })
      this.#events.emit('message')
    })
  }

  /** Resolves once `check` holds, re-checked on every message; rejects after WAIT_MS. */
  async until(check: () => boolean, what: string): Promise<void> {
    // performance.now(), not Date.now(): some tests mock Date.
    const deadline = performance.now() + WAIT_MS
    while (!check()) {
      if (performance.now() > deadline) throw new Error(`${what}; got ${JSON.stringify(this.messages.map((m) => [m.topic, m.payload]))}`)
      await Promise.race([once(this.#events, 'message'), new Promise((r) => setTimeout(r, 50))])
    }
  }

  /** Resolves once `n` messages are in; rejects after WAIT_MS. */
  count(n: number): Promise<void> {
    return this.until(() => this.messages.length >= n, `expected ${n} messages`)
  }

  /** Payloads received, sentinels left out. */
  payloads(): string[] {
    return this.messages.filter((m) => m.payload !== SENTINEL).map((m) => m.payload)
  }
}

export interface Mqtt5 {
  client: MqttClient
  inbox: Inbox
  connack: IConnackPacket
}

/** An MQTT.js v5 client with its inbox listening before CONNECT goes out; ended without DISCONNECT after the test. */
export function mqtt5(t: TestContext, port: number, clientId: string, opts: IClientOptions = {}): Promise<Mqtt5> {
  const client = connect({ host: '127.0.0.1', port, protocolVersion: 5, clientId, reconnectPeriod: 0, connectTimeout: WAIT_MS, ...opts })
  const inbox = new Inbox(client)
  t.after(() => client.endAsync(true))
  return new Promise((resolve, reject) => {
    client.once('connect', (connack) => resolve({ client, inbox, connack }))
    client.once('error', reject)
  })
}

/** Splits a byte stream from the broker into packets (fixed header, varint length, body). */
export function splitPackets(bytes: Buffer): Buffer[] {
  const out: Buffer[] = []
  let at = 0
  while (at < bytes.length) {
    let len = 0
    let mul = 1
    let i = at + 1
    for (;;) {
      const b = bytes[i++] as number
      len += (b & 0x7f) * mul
      mul *= 128
      if ((b & 0x80) === 0) break
    }
    out.push(bytes.subarray(at, i + len))
    at = i + len
  }
  return out
}
