import type { OutboundQueue } from './outbound-queue.js'
import type { Inflight, Outlet, Queued } from './session-types.js'

// What becomes of a session's unacknowledged messages when its client comes back (resent) or
// leaves a shared subscription group (handed to another member).

/**
 * Resends what the last connection left unacknowledged: PUBLISH with DUP for messages without
 * PUBREC, PUBREL for the rest, in their original order [MQTT-4.4.0-1]. `tooLarge` is told of each
 * one the new outlet refused, which is no longer in flight.
 */
export function resendInflight(inflight: Map<number, Inflight>, outlet: Outlet, tooLarge: () => void): void {
  for (const [id, f] of inflight) {
    if (f.state === 'pubrel') {
      outlet.sendPubrel(id)
    } else if (!outlet.sendPublish(f.message, f.qos, id, f.retain, true, f.subscriptionIds)) {
      // Only a client whose new Maximum Packet Size is smaller than the message gets here.
      inflight.delete(id)
      tooLarge()
    }
  }
}

/**
 * Offers the messages that came through shared subscriptions and that the client has not taken
 * to another member of their group, as this one goes away: those still queued, and QoS 1 ones
 * sent without a PUBACK. A QoS 2 PUBLISH already sent stays: only this client may complete it
 * [MQTT-4.8.2-4] [MQTT-4.8.2-5]. `route` returns true when another member took the message; a
 * message nobody else can take stays here, unchanged (same packet id, DUP on resend). `forget`
 * removes a message handed on from the session's store.
 */
export function releaseShared(
  inflight: Map<number, Inflight>,
  queue: OutboundQueue,
  route: (item: Queued) => boolean,
  forget: (item: Queued) => void,
): void {
  for (const [id, f] of inflight) {
    if (f.share !== undefined && f.state === 'publish' && f.qos === 1 && route(f)) {
      inflight.delete(id)
      forget(f)
    }
  }
  if (!queue.some((q) => q.share !== undefined)) return
  queue.filter((q) => {
    if (q.share === undefined || !route(q)) return true
    forget(q)
    return false
  })
}
