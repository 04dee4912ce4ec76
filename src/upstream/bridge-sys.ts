/** One bridge's `$SYS/broker/bridge/{name}/...` topics. */
import type { BridgeStats } from './bridge.js'

export class BridgeSysReport {
  /** For `drain-rate`: the sent count and time at the last `$SYS` round. */
  #last = { at: Date.now(), sent: 0 }

  /** The topics (below `$SYS/broker/`) and values of one round. */
  round(name: string, s: BridgeStats): Record<string, string | number> {
    const base = `bridge/${name}`
    const now = Date.now()
    const rate = ((s.sent - this.#last.sent) * 1000) / Math.max(1, now - this.#last.at)
    this.#last = { at: now, sent: s.sent }
    return {
      [`${base}/state`]: s.state,
      [`${base}/backlog/messages`]: s.backlogMessages,
      [`${base}/backlog/bytes`]: s.backlogBytes,
      [`${base}/backlog/oldest-age`]: s.oldestAgeSeconds,
      [`${base}/reconnects`]: s.reconnects,
      [`${base}/dropped`]: s.dropped,
      [`${base}/messages/sent`]: s.sent,
      [`${base}/messages/received`]: s.received,
      // Messages acknowledged upstream per second since the last round.
      [`${base}/drain-rate`]: Math.round(rate),
    }
  }
}
