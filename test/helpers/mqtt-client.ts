/** An MQTT.js client connected for one test, with an Inbox of what it receives, ended after the test. */
import type { TestContext } from 'node:test'
import { connect, type IClientOptions, type MqttClient } from 'mqtt'
import { Inbox } from './inbox.js'

/** Connects to `url` (no reconnects: a drop must show as one), and rejects on a refused CONNECT. */
export async function connectedClient(t: TestContext, url: string, options: IClientOptions = {}): Promise<{ client: MqttClient; inbox: Inbox }> {
  const client = connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options })
  const inbox = new Inbox(client)
  t.after(() => client.endAsync(true))
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
  })
  return { client, inbox }
}
