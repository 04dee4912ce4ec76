import { isMap } from 'yaml'
import { checked, plainValue, readMapping, report, scalar, type FieldSpec, type Walk } from './validate.js'
import { describeValue, integer, nonEmptyString, quoteIt, readableFileProblem, type Rule } from './rules.js'
import type { HttpConfig, OutpostConfig } from './types.js'

/** The `http` section: health, metrics and the dashboard. Off unless present. */

const filePath: Rule<string> = { ...nonEmptyString, expected: 'a file path', hint: quoteIt }

interface Draft {
  h: HttpConfig
  port: number | undefined
}

const FIELDS: Readonly<Record<string, FieldSpec<Draft>>> = {
  port: scalar(integer(0, 65535), (d, v) => { d.port = v }),
  bind: scalar(nonEmptyString, (d, v) => { d.h.bind = v }),
  password_file: checked(filePath, readableFileProblem, (d, v) => { d.h.passwordFile = v }),
}

/** Every key the `http` mapping accepts. */
export const HTTP_KEYS: readonly string[] = Object.keys(FIELDS)

/** The `http` section with its defaults, before `port` is known. */
export function defaultHttp(port: number): HttpConfig {
  return { port, bind: '127.0.0.1', passwordFile: undefined }
}

export function readHttp(w: Walk, node: unknown, offset: number, field: string, target: OutpostConfig): void {
  if (!isMap(node)) {
    report(w, offset, field, `expected a mapping (for example port: 8080), got ${describeValue(plainValue(node))}`)
    return
  }
  const d: Draft = { h: defaultHttp(0), port: undefined }
  const before = w.problems.length
  const seen = readMapping(w, node, field, FIELDS, d)
  if (!seen.has('port')) report(w, offset, `${field}.port`, 'missing; expected an integer 0..65535, e.g. 8080')
  if (w.problems.length > before || d.port === undefined) return
  d.h.port = d.port
  target.http = d.h
}
