/**
 * Mosquitto's byte-level conformance vectors (../shared/conformance/mosquitto-vectors) against
 * in-process Outpost brokers: one broker per vector file, the files in parallel, each file's
 * vectors in order. One test per protocol version, so the output is a summary, not 1,483 subtests.
 */
import * as assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { before, test } from 'node:test'
import { pino } from 'pino'
import { defaultConfig, defaultListener } from '../src/config/defaults.js'
import { startGateway } from '../src/gateway.js'
import { conformanceExceptions } from './conformance-exceptions.js'
import {
  findStaleExceptions,
  formatResult,
  formatSummaryTable,
  formatTotals,
  loadVectorFiles,
  resolveVectorDir,
  resultsFor,
  runConformance,
  vectorLabel,
  type BrokerHandle,
  type ConformanceReport,
  type ProtocolLevel,
  type VectorFile,
} from './helpers/conformance.js'

/**
 * Failing vectors wait for read timeouts, so the budget caps this file's share of `npm test`
 * even if Outpost regresses badly; vectors not started by then count as failures.
 */
const TIMEOUT_MS = 1500
const BUDGET_MS = 50_000

async function startOutpost(): Promise<BrokerHandle> {
  const dataDir = await mkdtemp(join(tmpdir(), 'outpost-conformance-'))
  try {
    const gateway = await startGateway(
      {
        ...defaultConfig(),
        listeners: [defaultListener('mqtt', 0, '127.0.0.1')],
        sysInterval: 0,
        // The vectors expect Mosquitto's bare reason codes; Outpost would add a Reason String.
        reasonStrings: false,
        dataDir,
        logLevel: 'silent',
      },
      pino({ level: 'silent' }),
    )
    const address = gateway.addresses()[0]
    if (address === undefined) {
      await gateway.close('no listening address')
      throw new Error('gateway has no listening address')
    }
    return {
      endpoint: { host: address.address, port: address.port },
      close: async () => {
        await gateway.close('conformance file done')
        await rm(dataDir, { recursive: true, force: true })
      },
    }
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true })
    throw err
  }
}

let files: VectorFile[] = []
let report: ConformanceReport = { results: [], durationMs: 0 }

before(async () => {
  files = await loadVectorFiles(resolveVectorDir(import.meta.dirname))
  report = await runConformance({
    files,
    broker: startOutpost,
    timeoutMs: TIMEOUT_MS,
    budgetMs: BUDGET_MS,
    exceptions: conformanceExceptions,
  })
})

test('conformance summary', (t) => {
  for (const line of formatSummaryTable(report)) t.diagnostic(line)
  t.diagnostic(formatTotals(report))
  for (const r of report.results) {
    if (r.exception !== undefined && r.passed && r.exception.kind === 'differs') {
      t.diagnostic(`exception no longer needed, vector passes: ${vectorLabel(r.vector)}`)
    }
  }
  assert.equal(report.results.length, files.reduce((n, f) => n + f.vectors.length, 0))
})

function checkVersion(ver: ProtocolLevel, title: string): void {
  test(title, (t) => {
    const results = resultsFor(report, ver)
    const failed = results.filter((r) => r.status === 'fail')
    const accepted = results.filter((r) => r.status === 'may' || r.status === 'excepted')
    t.diagnostic(`v${ver}: ${results.length - failed.length - accepted.length}/${results.length} passed, ${accepted.length} through exceptions, ${failed.length} failed`)
    for (const r of accepted) t.diagnostic(formatResult(r))
    for (const r of failed) t.diagnostic(formatResult(r))
    // The count, not the list: the list with reasons is in the diagnostics above, one line each.
    assert.equal(
      failed.length,
      0,
      `${failed.length} v${ver} vectors failed (listed above); fix Outpost, or list a vector in test/conformance-exceptions.ts with the spec clause that allows the other answer`,
    )
  })
}

checkVersion(3, 'MQTT 3.1 (ver 3) vectors pass')
checkVersion(4, 'MQTT 3.1.1 (ver 4) vectors pass')
checkVersion(5, 'MQTT 5.0 (ver 5) vectors pass')

test('every conformance exception names an existing vector', () => {
  const stale = findStaleExceptions(conformanceExceptions, files).map(vectorLabel)
  assert.deepEqual(stale, [], 'stale entries in test/conformance-exceptions.ts')
  const labels = conformanceExceptions.map(vectorLabel)
  assert.deepEqual(labels.filter((l, i) => labels.indexOf(l) !== i), [], 'duplicate entries in test/conformance-exceptions.ts')
})
