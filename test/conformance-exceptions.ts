import type { ConformanceException } from './helpers/conformance.js'

/**
 * Vectors Outpost is allowed to answer differently from Mosquitto's files. Each entry names the
 * vector exactly as the runner prints it (file, ver, name and, for a repeated name, occurrence)
 * and the spec statement that leaves the answer to the server:
 *
 * - `kind: 'may'`: the spec says MAY, so both outcomes are accepted and counted apart.
 * - `kind: 'differs'`: Outpost takes another answer the spec allows; the vector is expected to fail.
 *
 * A wish to pass a test is not a reason: without a clause that permits the other answer, fix Outpost.
 * `test/conformance.test.ts` fails on an entry that names no vector.
 */
export const conformanceExceptions: readonly ConformanceException[] = []
