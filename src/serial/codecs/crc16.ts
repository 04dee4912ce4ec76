/**
 * CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0; check("123456789") = 0x29B1.
 * Chosen for outpost-link because every microcontroller SDK ships it and a 256-entry table fits
 * in flash; the firmware side computes the same table.
 */
const TABLE = buildTable()

function buildTable(): Uint16Array {
  const table = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    table[i] = crc
  }
  return table
}

/** CRC of `data`; pass a previous result as `crc` to continue over several pieces. */
export function crc16(data: Uint8Array, crc = 0xffff): number {
  let c = crc & 0xffff
  for (const byte of data) c = ((c << 8) & 0xffff) ^ (TABLE[((c >> 8) ^ byte) & 0xff] as number)
  return c
}
