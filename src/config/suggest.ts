/**
 * The known name closest to a mistyped one, for "did you mean …?" hints on unknown config keys
 * and flags. Returns undefined when nothing is close enough to be a plausible typo.
 */
export function suggest(unknown: string, known: readonly string[]): string | undefined {
  // Catches the commonest slip first: camelCase or kebab-case for a snake_case key (dataDir, data-dir).
  const norm = (s: string): string => s.toLowerCase().replace(/[-_]/g, '')
  const same = known.find((k) => norm(k) === norm(unknown))
  if (same !== undefined) return same
  let best: string | undefined
  let bestDistance = Math.max(1, Math.min(3, Math.floor(unknown.length / 3)))
  for (const k of known) {
    const d = editDistance(unknown.toLowerCase(), k.toLowerCase())
    if (d <= bestDistance) {
      best = k
      bestDistance = d - 1
    }
  }
  return best
}

/** Edit distance where swapping two neighbouring letters counts as one edit (`prot` for `port`). */
function editDistance(a: string, b: string): number {
  const rows: number[][] = []
  for (let i = 0; i <= a.length; i++) {
    const row: number[] = []
    for (let j = 0; j <= b.length; j++) {
      if (i === 0 || j === 0) {
        row.push(i + j)
        continue
      }
      const up = rows[i - 1] ?? []
      let d = Math.min((up[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (up[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1))
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, (rows[i - 2]?.[j - 2] ?? 0) + 1)
      row.push(d)
    }
    rows.push(row)
  }
  return rows[a.length]?.[b.length] ?? 0
}
