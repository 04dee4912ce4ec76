import { Duplex } from 'node:stream'

/**
 * Two connected in-memory duplex streams: what one writes the other reads, with backpressure
 * (a write completes only when the reader has room), so slow-consumer behaviour is real.
 * Node 20 has no stream.duplexPair (it arrives in 22).
 */
export function duplexPair(): [Duplex, Duplex] {
  const ends: Duplex[] = []
  const waiting: Array<(() => void) | undefined> = [undefined, undefined]
  const make = (self: number): Duplex => {
    const other = 1 - self
    return new Duplex({
      read() {
        // The reader wants more: let the peer's blocked write complete.
        const cb = waiting[other]
        waiting[other] = undefined
        cb?.()
      },
      write(chunk: Buffer, _enc, cb) {
        const peer = ends[other]
        if (peer === undefined || peer.destroyed) return cb()
        if (peer.push(chunk)) cb()
        else waiting[self] = cb
      },
      final(cb) {
        ends[other]?.push(null)
        cb()
      },
      destroy(err, cb) {
        const peer = ends[other]
        if (peer !== undefined && !peer.destroyed) peer.push(null)
        const pending = waiting[self]
        waiting[self] = undefined
        pending?.()
        cb(err)
      },
    })
  }
  ends.push(make(0), make(1))
  return [ends[0] as Duplex, ends[1] as Duplex]
}
