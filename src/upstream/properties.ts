/**
 * MQTT 5 message properties across the bridge: the broker's own form (ordered User Property
 * pairs, an absolute expiry time) to MQTT.js's on the way up, and back on the way down.
 */
import type { IPublishPacket } from 'mqtt-packet'
import type { Message, MessageProperties } from '../broker/types.js'

type PacketProperties = NonNullable<IPublishPacket['properties']>

/** The properties of a local message as MQTT.js publishes them upstream (MQTT 5 links only). */
export function remoteProperties(m: Message): { properties?: PacketProperties } {
  const p = m.properties
  const expiry = m.expiresAt === undefined ? undefined : Math.max(1, Math.ceil((m.expiresAt - Date.now()) / 1000))
  if (p === undefined && expiry === undefined) return {}
  const user: Record<string, string | string[]> = {}
  for (const [k, v] of p?.userProperties ?? []) {
    const prev = user[k]
    user[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v]
  }
  return {
    properties: {
      ...(p?.contentType === undefined ? {} : { contentType: p.contentType }),
      ...(p?.correlationData === undefined ? {} : { correlationData: p.correlationData }),
      ...(p?.payloadFormatIndicator === undefined ? {} : { payloadFormatIndicator: p.payloadFormatIndicator === 1 }),
      ...(p?.responseTopic === undefined ? {} : { responseTopic: p.responseTopic }),
      ...(p?.userProperties === undefined ? {} : { userProperties: user }),
      ...(expiry === undefined ? {} : { messageExpiryInterval: expiry }),
    },
  }
}

/** The properties of a message from the cloud as the broker keeps them (the expiry interval travels apart). */
export function localProperties(props: PacketProperties | undefined): MessageProperties | undefined {
  return props === undefined
    ? undefined
    : {
        ...(props.contentType === undefined ? {} : { contentType: props.contentType }),
        ...(props.correlationData === undefined ? {} : { correlationData: props.correlationData }),
        ...(props.payloadFormatIndicator === undefined ? {} : { payloadFormatIndicator: props.payloadFormatIndicator ? 1 : 0 }),
        // A Response Topic is a topic of the cloud's: a local responder answers through an `out` rule.
        ...(props.responseTopic === undefined ? {} : { responseTopic: props.responseTopic }),
        ...(props.userProperties === undefined ? {} : { userProperties: userPairs(props.userProperties) }),
      }
}

/** MQTT.js folds User Properties into an object (a repeated name becomes an array); back to ordered pairs. */
function userPairs(props: Record<string, string | string[]>): Array<[string, string]> {
  const pairs: Array<[string, string]> = []
  for (const [k, v] of Object.entries(props)) for (const one of Array.isArray(v) ? v : [v]) pairs.push([k, one])
  return pairs
}
