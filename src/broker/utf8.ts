/**
 * UTF-8 string checks that mqtt-packet does not make. It decodes strings with
 * Buffer#toString, which turns ill-formed bytes into U+FFFD instead of failing.
 */

// U+0000 is forbidden [MQTT-1.5.3-2]; U+0001..U+001F and U+007F..U+009F are "SHOULD NOT"
// in the spec, and Mosquitto refuses them, so a client that works here works there too.
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f]/

/**
 * True when `s`, decoded from the raw packet `raw`, was well-formed UTF-8 without forbidden
 * code points. A U+FFFD in the decoded string came from ill-formed bytes [MQTT-1.5.3-1] unless
 * the packet really carries its encoding (EF BF BD), which well-formed input may do.
 */
export function isValidMqttString(s: string, raw: Buffer): boolean {
  if (FORBIDDEN.test(s)) return false
  if (s.includes('\ufffd') && !raw.includes(REPLACEMENT)) return false
  return true
}

const REPLACEMENT = Buffer.from([0xef, 0xbf, 0xbd])
