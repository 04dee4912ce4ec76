/**
 * Client ids of outboxes. No network client takes one over: the bridges claim theirs before the
 * listeners open, and the broker refuses a CONNECT with the id of an internal client. Kept apart
 * from bridge.ts so a gateway without upstreams can clean up old outboxes without loading MQTT.js.
 */
export const OUTBOX_PREFIX = '$bridge/'
