/**
 * Parsers for one text line from a device that prints readings instead of speaking
 * outpost-link: JSON objects, key=value pairs, CSV with configured columns, or the raw line.
 * Each turns a line into named scalar fields or a typed error; none throws on device input.
 */

export type FieldValue = number | string | boolean
export type Fields = Record<string, FieldValue>

/** 'syntax': the line is not in the format at all; 'shape': it is, but not as flat named scalars. */
export type ParseErrorKind = 'syntax' | 'shape'
export interface ParseError {
  kind: ParseErrorKind
  detail: string
}
export type ParseResult = { ok: true; fields: Fields } | { ok: false; error: ParseError }
export type LineParser = (line: string) => ParseResult

export type KeyValueSeparator = ' ' | ',' | ';'
export type CsvSeparator = ',' | ';' | '\t'

/** How a port's lines are parsed; the serial config section will name one of these. */
export type LineFormat =
  | { format: 'json' }
  | { format: 'key-value'; separator?: KeyValueSeparator; typed?: boolean }
  | { format: 'csv'; columns: readonly string[]; separator?: CsvSeparator; typed?: boolean }
  | { format: 'raw'; field?: string }

export function createLineParser(format: LineFormat): LineParser {
  switch (format.format) {
    case 'json':
      return parseJsonLine
    case 'key-value':
      return keyValueParser(format.separator ?? ' ', format.typed ?? true)
    case 'csv':
      return csvParser(format.columns, format.separator ?? ',', format.typed ?? true)
    case 'raw':
      return rawParser(format.field ?? 'raw')
  }
}

/** A JSON object whose values are numbers, strings or booleans: `{"t":21.5,"ok":true}`. */
export function parseJsonLine(line: string): ParseResult {
  let parsed: unknown
  try {
    parsed = JSON.parse(line)
  } catch (err) {
    return fail('syntax', `not JSON: ${err instanceof Error ? err.message : String(err)}`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return fail('shape', 'JSON is not an object')
  const entries: [string, FieldValue][] = []
  for (const [name, value] of Object.entries(parsed)) {
    if (name === '') return fail('shape', 'empty field name')
    // Nested objects, arrays and null have no single MQTT value; refusing them beats guessing.
    if (typeof value === 'string' || typeof value === 'boolean') entries.push([name, value])
    else if (typeof value === 'number' && Number.isFinite(value)) entries.push([name, value])
    else return fail('shape', `field "${name}" is not a finite number, string or boolean`)
  }
  return ok(entries)
}

/**
 * `t=21.5 h=40 door=open`. Values cannot contain the separator (there is no quoting); with ' '
 * any run of spaces or tabs separates. Keys appear once: a repeated key means a garbled line.
 */
export function keyValueParser(separator: KeyValueSeparator, typed: boolean): LineParser {
  return (line) => {
    const tokens = separator === ' ' ? line.trim().split(/[ \t]+/) : line.split(separator).map((t) => t.trim())
    const entries: [string, FieldValue][] = []
    const seen = new Set<string>()
    for (const token of tokens) {
      if (token === '') continue
      const eq = token.indexOf('=')
      if (eq === -1) return fail('syntax', `"${token}" has no "="`)
      const name = token.slice(0, eq).trim()
      if (name === '') return fail('syntax', `"${token}" has no key`)
      if (seen.has(name)) return fail('shape', `key "${name}" appears twice`)
      seen.add(name)
      entries.push([name, scalar(token.slice(eq + 1).trim(), typed)])
    }
    if (entries.length === 0) return fail('syntax', 'no key=value pairs')
    return ok(entries)
  }
}

/**
 * One CSV record (RFC 4180 quoting) with exactly `columns.length` cells. A quoted cell is always
 * a string; an empty unquoted cell is a missing reading, so its field is left out.
 */
export function csvParser(columns: readonly string[], separator: CsvSeparator, typed: boolean): LineParser {
  if (columns.length === 0) throw new RangeError('csv: at least one column name is needed')
  if (columns.some((c) => c === '')) throw new RangeError('csv: column names cannot be empty')
  if (new Set(columns).size !== columns.length) throw new RangeError('csv: column names must be unique')
  return (line) => {
    const cells = splitCsv(line, separator)
    if (typeof cells === 'string') return fail('syntax', cells)
    if (cells.length !== columns.length) return fail('shape', `${cells.length} cells, ${columns.length} columns configured`)
    const entries: [string, FieldValue][] = []
    for (const [i, name] of columns.entries()) {
      const cell = cells[i]
      if (cell === undefined || (!cell.quoted && cell.text === '')) continue
      entries.push([name, cell.quoted ? cell.text : scalar(cell.text, typed)])
    }
    return ok(entries)
  }
}

/** The whole line as one string field, unchanged (a CRLF device wants delimiter "\r\n"). */
export function rawParser(field: string): LineParser {
  if (field === '') throw new RangeError('raw: the field name cannot be empty')
  return (line) => ok([[field, line]])
}

interface Cell {
  text: string
  quoted: boolean
}

/** The cells of one record, or why it is not CSV. */
function splitCsv(line: string, sep: CsvSeparator): Cell[] | string {
  const cells: Cell[] = []
  const blank = (c: string | undefined): boolean => c === ' ' || (c === '\t' && sep !== '\t')
  let i = 0
  for (;;) {
    while (blank(line[i])) i++
    if (line[i] === '"') {
      let text = ''
      i++
      for (;;) {
        const q = line.indexOf('"', i)
        if (q === -1) return `unterminated quote in cell ${cells.length + 1}`
        text += line.slice(i, q)
        i = q + 1
        if (line[i] !== '"') break
        text += '"'
        i++
      }
      while (blank(line[i])) i++
      if (i < line.length && line[i] !== sep) return `text after the closing quote in cell ${cells.length + 1}`
      cells.push({ text, quoted: true })
    } else {
      const end = line.indexOf(sep, i)
      const stop = end === -1 ? line.length : end
      cells.push({ text: line.slice(i, stop).trim(), quoted: false })
      i = stop
    }
    if (i >= line.length) return cells
    i++ // past the separator; a separator at the very end leaves one more, empty, cell
  }
}

const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/

/** With `typed`, decimal numbers and true/false become typed; anything else, or a number out of range, stays text. */
function scalar(text: string, typed: boolean): FieldValue {
  if (!typed) return text
  if (text === 'true') return true
  if (text === 'false') return false
  if (NUMBER.test(text)) {
    const n = Number(text)
    if (Number.isFinite(n)) return n
  }
  return text
}

function ok(entries: [string, FieldValue][]): ParseResult {
  // fromEntries defines own properties, so a field named "__proto__" is data, not a prototype.
  return { ok: true, fields: Object.fromEntries(entries) }
}

function fail(kind: ParseErrorKind, detail: string): ParseResult {
  return { ok: false, error: { kind, detail } }
}
