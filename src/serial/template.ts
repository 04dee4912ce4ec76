/**
 * Topic templates of the serial bridge: `sensors/{device}/{field}` and the like. A template is
 * compiled once (from the config) and then rendered per reading, or turned into a subscription
 * filter and matched against incoming command topics.
 */

export type Placeholder = 'port' | 'device' | 'field' | 'command' | 'payload' | 'gateway_id' | 'name'
export type Vars = Partial<Record<Placeholder, string>>

type Part = { text: string } | { name: Placeholder }

export class TopicTemplate {
  readonly source: string
  readonly #parts: readonly Part[]

  private constructor(source: string, parts: Part[]) {
    this.source = source
    this.#parts = parts
  }

  /**
   * Compiles `source`, allowing only the placeholders in `allowed`. Returns the reason as a
   * string when it is not a valid template, for the config validator to report.
   */
  static parse(source: string, allowed: readonly Placeholder[]): TopicTemplate | string {
    const parts: Part[] = []
    const re = /\{([^{}]*)\}/g
    let last = 0
    for (let m = re.exec(source); m !== null; m = re.exec(source)) {
      if (m.index > last) parts.push({ text: source.slice(last, m.index) })
      const name = m[1] ?? ''
      const found = allowed.find((a) => a === name)
      if (found === undefined) return `unknown placeholder {${name}}; this key takes ${allowed.map((a) => `{${a}}`).join(', ')}`
      parts.push({ name: found })
      last = re.lastIndex
    }
    const rest = source.slice(last)
    if (/[{}]/.test(rest) || parts.some((p) => 'text' in p && /[{}]/.test(p.text))) return 'unbalanced { or }'
    if (rest !== '') parts.push({ text: rest })
    return new TopicTemplate(source, parts)
  }

  /**
   * For templates the config validator has already accepted: a bad one here is a bug in the
   * validator, so it throws rather than returning the reason.
   */
  static compile(source: string, allowed: readonly Placeholder[]): TopicTemplate {
    const t = TopicTemplate.parse(source, allowed)
    if (typeof t === 'string') throw new Error(`invalid topic template ${source}: ${t}`)
    return t
  }

  /** Placeholders used, in order. */
  get placeholders(): Placeholder[] {
    return this.#parts.flatMap((p) => ('name' in p ? [p.name] : []))
  }

  /** True when every placeholder fills a whole topic level, so it can become `+` in a filter. */
  get wholeLevels(): boolean {
    const parts = this.#parts
    return parts.every((p, i) => {
      if (!('name' in p)) return true
      const before = parts[i - 1]
      const after = parts[i + 1]
      const okBefore = before === undefined || ('text' in before && before.text.endsWith('/'))
      const okAfter = after === undefined || ('text' in after && after.text.startsWith('/'))
      return okBefore && okAfter
    })
  }

  /**
   * The text with placeholders filled. Values go in as one topic level each: `/`, `+`, `#` and
   * U+0000 in a device-supplied name would otherwise change the topic tree, so they become `_`.
   */
  render(vars: Vars): string {
    let out = ''
    for (const p of this.#parts) out += 'text' in p ? p.text : safeLevel(vars[p.name] ?? '')
    return out
  }

  /** A subscription filter: known vars filled in, the others `+`. Needs `wholeLevels`. */
  toFilter(vars: Vars = {}): string {
    let out = ''
    for (const p of this.#parts) {
      if ('text' in p) out += p.text
      else out += vars[p.name] === undefined ? '+' : safeLevel(vars[p.name] ?? '')
    }
    return out
  }

  /**
   * Reads the placeholders back out of a concrete topic, or undefined when it does not match.
   * A template ending in `/#` also yields `rest`: the levels `#` matched ('' for none).
   */
  match(topic: string): (Vars & { rest?: string }) | undefined {
    const filter = this.toFilter()
    const fLevels = filter.split('/')
    const tLevels = topic.split('/')
    const names = this.#levelNames()
    const vars: Vars & { rest?: string } = {}
    for (let i = 0; i < fLevels.length; i++) {
      const f = fLevels[i]
      if (f === '#') {
        vars.rest = tLevels.slice(i).join('/')
        return vars
      }
      const t = tLevels[i]
      if (t === undefined) return undefined
      if (f === '+') {
        const name = names.get(i)
        if (name !== undefined) vars[name] = t
        continue
      }
      if (f !== t) return undefined
    }
    return tLevels.length === fLevels.length ? vars : undefined
  }

  /** Which placeholder fills each whole level, by level index. */
  #levelNames(): Map<number, Placeholder> {
    const names = new Map<number, Placeholder>()
    let level = 0
    for (const p of this.#parts) {
      if ('name' in p) names.set(level, p.name)
      else level += p.text.split('/').length - 1
    }
    return names
  }
}

export function safeLevel(value: string): string {
  return value.replace(/[/+#\u0000]/g, '_')
}
