/**
 * A strict reader of the Prometheus text exposition format 0.0.4, enough to tell whether
 * `/metrics` would be accepted by a scraper: names, HELP and TYPE once per family before its
 * samples, samples of a family together, label syntax with its escapes, numeric values, counters
 * named `_total`, no series twice. Throws naming the line on the first problem.
 */
export interface ParsedSample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export interface ParsedFamily {
  readonly name: string
  readonly help: string
  readonly type: string
  readonly samples: ParsedSample[]
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

function unescape(text: string, what: 'help' | 'label'): string {
  return text.replace(/\\(.)/g, (_, c: string) => {
    if (c === 'n') return '\n'
    if (c === '\\') return '\\'
    if (c === '"' && what === 'label') return '"'
    throw new Error(`bad escape \\${c}`)
  })
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {}
  let i = 0
  while (i < text.length) {
    const eq = text.indexOf('=', i)
    if (eq < 0) throw new Error(`label without =: ${text.slice(i)}`)
    const name = text.slice(i, eq)
    if (!LABEL_NAME.test(name)) throw new Error(`bad label name ${name}`)
    if (text[eq + 1] !== '"') throw new Error(`label ${name}: value not quoted`)
    let j = eq + 2
    let raw = ''
    for (; j < text.length && text[j] !== '"'; j++) {
      if (text[j] === '\\') raw += text[j++] ?? ''
      raw += text[j] ?? ''
    }
    if (j >= text.length) throw new Error(`label ${name}: unterminated value`)
    if (name in labels) throw new Error(`label ${name} twice`)
    labels[name] = unescape(raw, 'label')
    i = j + 1
    if (text[i] === ',') i++
    else if (i < text.length) throw new Error(`expected , after label ${name}`)
  }
  return labels
}

function parseValue(text: string): number {
  if (text === 'NaN') return Number.NaN
  if (text === '+Inf') return Number.POSITIVE_INFINITY
  if (text === '-Inf') return Number.NEGATIVE_INFINITY
  if (!/^[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)$/.test(text)) throw new Error(`bad value ${text}`)
  return Number(text)
}

export function parsePrometheus(text: string): Map<string, ParsedFamily> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline')
  const families = new Map<string, ParsedFamily>()
  const help = new Map<string, string>()
  const series = new Set<string>()
  let current: string | undefined
  const lines = text.slice(0, -1).split('\n')
  lines.forEach((line, index) => {
    const where = `line ${index + 1} (${line})`
    try {
      if (line.startsWith('# HELP ')) {
        const rest = line.slice(7)
        const sp = rest.indexOf(' ')
        const name = sp < 0 ? rest : rest.slice(0, sp)
        if (!NAME.test(name)) throw new Error(`bad name ${name}`)
        if (help.has(name)) throw new Error(`HELP for ${name} twice`)
        help.set(name, sp < 0 ? '' : unescape(rest.slice(sp + 1), 'help'))
        return
      }
      if (line.startsWith('# TYPE ')) {
        const [name = '', type = '', extra] = line.slice(7).split(' ')
        if (!NAME.test(name) || !TYPES.has(type) || extra !== undefined) throw new Error('bad TYPE line')
        if (families.has(name)) throw new Error(`TYPE for ${name} twice`)
        if (type === 'counter' && !name.endsWith('_total')) throw new Error(`counter ${name} does not end in _total`)
        families.set(name, { name, help: help.get(name) ?? '', type, samples: [] })
        current = name
        return
      }
      if (line.startsWith('#') || line === '') throw new Error('unexpected comment or blank line')
      const brace = line.indexOf('{')
      const sp = brace < 0 ? line.indexOf(' ') : line.indexOf('} ') + 1
      if (sp <= 0) throw new Error('no value')
      const name = brace < 0 ? line.slice(0, sp) : line.slice(0, brace)
      const labels = brace < 0 ? {} : parseLabels(line.slice(brace + 1, sp - 1))
      const value = parseValue(line.slice(sp + 1))
      if (name !== current) throw new Error(`sample of ${name} outside its family (current ${current ?? 'none'})`)
      const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`
      if (series.has(key)) throw new Error('the same series twice')
      series.add(key)
      families.get(name)?.samples.push({ name, labels, value })
    } catch (err) {
      throw new Error(`${where}: ${err instanceof Error ? err.message : String(err)}`)
    }
  })
  return families
}

/** The value of one series, or undefined when it is not there. */
export function valueOf(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels)
  return families.get(name)?.samples.find((s) => want.every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === want.length)?.value
}
