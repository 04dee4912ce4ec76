/** Characters of a payload shown on the dashboard. */
export const PREVIEW_CHARS = 100

/**
 * A payload as short display text: UTF-8 (invalid bytes become U+FFFD), control characters and
 * other non-printables replaced by `.`, at most PREVIEW_CHARS characters (an ellipsis marks a cut).
 */
export function preview(payload: Buffer): string {
  // Decoding only what can show: a 1 MB payload is not turned into a 1 MB string every poll.
  const text = payload.subarray(0, PREVIEW_CHARS * 4).toString('utf8')
  const chars = Array.from(text)
  const cut = chars.length > PREVIEW_CHARS || payload.length > PREVIEW_CHARS * 4
  const shown = chars.slice(0, PREVIEW_CHARS).join('').replace(/[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/gu, '.')
  return cut ? `${shown}…` : shown
}
