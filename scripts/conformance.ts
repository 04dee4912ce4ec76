/**
 * Runs the byte-level conformance vectors against any broker, to check the runner itself against
 * Mosquitto and to look at one file or version while working on Outpost:
 *
 *   node dist/scripts/conformance.js --target 127.0.0.1:1883 [--ver 4] [--file PUBLISH] [--verbose]
 *   node dist/scripts/conformance.js --mosquitto /usr/sbin/mosquitto
 *
 * With --target, files run one after another by default: they share the broker, and their client
 * ids (the test names, and `helper`) and topics would collide if they overlapped. With --mosquitto,
 * each file gets a Mosquitto of its own and all files run at once, the shape of `npm test`.
 */
import { parseArgs } from 'node:util'
import { conformanceExceptions } from '../test/conformance-exceptions.js'
import {
  DEFAULT_TIMEOUT_MS,
  formatResult,
  formatSummaryTable,
  formatTotals,
  loadVectorFiles,
  resolveVectorDir,
  runConformance,
  startMosquitto,
  type BrokerFactory,
  type Endpoint,
  type VectorFile,
} from '../test/helpers/conformance.js'

const USAGE = `usage: node dist/scripts/conformance.js (--target HOST:PORT | --mosquitto PATH) [options]
  --target HOST:PORT   broker to test
  --mosquitto PATH     instead: start this mosquitto binary once per file, files in parallel
  --ver 3|4|5          only vectors of this protocol level
  --file NAME[,NAME]   only these vector files (PUBLISH, CONNECT, ...; case-insensitive)
  --verbose            print every vector, not only failures
  --timeout MS         per read / close wait (default ${DEFAULT_TIMEOUT_MS})
  --jobs N             files at once (default 1 with --target, where >1 lets files interfere;
                       all with --mosquitto)
  --exceptions         apply Outpost's exceptions list (test/conformance-exceptions.ts)
  --dir PATH           vector directory (default: OUTPOST_CONFORMANCE_DIR or ../shared/...)`

function parseTarget(text: string): Endpoint {
  const match = /^(.*):(\d+)$/.exec(text)
  const port = Number(match?.[2])
  if (match === null || match[1] === undefined || match[1] === '' || !(port > 0 && port < 65536)) {
    throw new Error(`--target must be HOST:PORT, got ${JSON.stringify(text)}`)
  }
  return { host: match[1].replace(/^\[(.*)\]$/, '$1'), port }
}

function positiveInt(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer`)
  return n
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string' },
      mosquitto: { type: 'string' },
      ver: { type: 'string' },
      file: { type: 'string' },
      verbose: { type: 'boolean', default: false },
      timeout: { type: 'string' },
      jobs: { type: 'string' },
      exceptions: { type: 'boolean', default: false },
      dir: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help || (values.target === undefined) === (values.mosquitto === undefined)) {
    console.log(USAGE)
    return values.help ? 0 : 2
  }
  const mosquitto = values.mosquitto
  const endpoint = values.target === undefined ? undefined : parseTarget(values.target)
  const ver = values.ver === undefined ? undefined : Number(values.ver)
  if (ver !== undefined && ver !== 3 && ver !== 4 && ver !== 5) throw new Error('--ver must be 3, 4 or 5')
  const wanted = values.file?.split(',').map((f) => f.trim().replace(/\.json$/i, '').toUpperCase())

  const dir = values.dir ?? resolveVectorDir(import.meta.dirname)
  const files: VectorFile[] = (await loadVectorFiles(dir))
    .filter((f) => wanted === undefined || wanted.includes(f.name.toUpperCase()))
    .map((f) => ({ ...f, vectors: f.vectors.filter((v) => ver === undefined || v.ver === ver) }))
    .filter((f) => f.vectors.length > 0)
  if (files.length === 0) throw new Error(`no vectors match --file ${values.file ?? '*'} --ver ${values.ver ?? '*'} in ${dir}`)

  const broker: BrokerFactory =
    endpoint === undefined
      ? () => startMosquitto(mosquitto ?? 'mosquitto')
      : () => Promise.resolve({ endpoint, close: () => Promise.resolve() })
  const report = await runConformance({
    files,
    broker,
    timeoutMs: positiveInt(values.timeout, '--timeout', DEFAULT_TIMEOUT_MS),
    parallelFiles: positiveInt(values.jobs, '--jobs', endpoint === undefined ? files.length : 1),
    exceptions: values.exceptions ? conformanceExceptions : [],
    onResult: (r) => {
      if (values.verbose || r.status === 'fail') console.log(formatResult(r))
    },
  })
  console.log('')
  for (const line of formatSummaryTable(report)) console.log(line)
  console.log('')
  const against = endpoint === undefined ? `${mosquitto ?? ''}, one per file` : `${endpoint.host}:${endpoint.port}`
  console.log(`${formatTotals(report)} against ${against}`)
  const failed = report.results.filter((r) => r.status === 'fail').length
  console.log(`${report.results.length - failed} of ${report.results.length} passed or excepted, ${failed} failed`)
  return failed === 0 ? 0 : 1
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err))
    process.exitCode = 2
  },
)
