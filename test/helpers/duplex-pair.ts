import { Duplex } from 'node:stream'

/**
 * Two connected in-memory duplex streams: what one writes the other reads. Node 20 has no
 * stream.duplexPair (it arrives in 22), so this is the few lines it takes.
 */
export function duplexPair(): [Duplex, Duplex] {
  let a: Duplex | undefined
  let b: Duplex | undefined
  const make = (peer: () => Duplex | undefined): Duplex =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        peer()?.push(chunk)
        cb()
      },
      final(cb) {
        peer()?.push(null)
        cb()
      },
      destroy(err, cb) {
        const p = peer()
        if (p !== undefined && !p.destroyed) p.push(null)
        cb(err)
      },
    })
  a = make(() => b)
  b = make(() => a)
  return [a, b]
}
