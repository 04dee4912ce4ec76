import type { ConformanceException } from './helpers/conformance.js'

/**
 * Vectors Outpost is allowed to answer differently from Mosquitto's files. Each entry names the
 * vector exactly as the runner prints it (file, ver, name and, for a repeated name, occurrence)
 * and the spec statement that leaves the answer to the server:
 *
 * - `kind: 'may'`: the spec says MAY, so both outcomes are accepted and counted apart.
 * - `kind: 'differs'`: Outpost takes another answer the spec allows; the vector is expected to fail.
 *
 * A wish to pass a test is not a reason: without a clause that permits the other answer, fix Outpost.
 * `test/conformance.test.ts` fails on an entry that names no vector.
 */
/**
 * A malformed MQTT 5 CONNECT: Mosquitto closes at once; Outpost first sends CONNACK with the
 * reason code (and a Reason String outside the conformance run), so the client can say why.
 */
function connackBeforeClose(name: string): ConformanceException {
  return {
    file: 'CONNECT',
    ver: 5,
    name,
    kind: 'may',
    clause: 'MQTT 5.0 section 3.1.4: "The Server MAY send a CONNACK with a Reason Code of 0x80 or greater as described in section 4.13 before closing the Network Connection" [MQTT-3.1.4-1] [MQTT-3.1.4-2]',
    why: 'Outpost sends CONNACK 0x81 before closing, so the client learns the CONNECT was malformed',
  }
}

export const conformanceExceptions: readonly ConformanceException[] = [
  connackBeforeClose('10 Client ID with 0x0000'),
  connackBeforeClose('10 Client ID with U+D800'),
  connackBeforeClose('10 Client ID with U+0001'),
  connackBeforeClose('10 Client ID with U+001F'),
  connackBeforeClose('10 Client ID with U+007F'),
  connackBeforeClose('10 Client ID with U+009F'),
  connackBeforeClose('10 Client ID with U+FFFF'),
  connackBeforeClose('10 [MQTT-3.1.2-16]'),
  connackBeforeClose('10 [MQTT-3.1.2-17]'),
  connackBeforeClose('10 Username with 0x0000'),
  connackBeforeClose('10 Username with 0xD800'),
  connackBeforeClose('10 Username with 0x0001'),
  connackBeforeClose('10 Username with 0x001F'),
  connackBeforeClose('10 Username with 0x007F'),
  connackBeforeClose('10 Username with 0x009F'),
  connackBeforeClose('10 Username with 0xFFFF'),
  connackBeforeClose('10 [MQTT-3.1.2-18]'),
  connackBeforeClose('10 [MQTT-3.1.2-19]'),
]
