import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { SerialPort } from 'serialport'

/**
 * How a config names a port. A path is simplest but moves when USB adapters are plugged in another
 * order; a `/dev/serial/by-id/` name, or the adapter's USB vendor and product id (and serial number
 * when two identical adapters are attached), follows the device.
 */
export type PortSelector =
  | { readonly path: string }
  | { readonly byId: string }
  | { readonly vendorId: string; readonly productId: string; readonly serialNumber?: string | undefined }

/** What is plugged in now: names under the by-id directory and the ports the OS lists. */
export interface PortCandidates {
  readonly byIdDir: string
  readonly byIdNames: readonly string[]
  readonly ports: ReadonlyArray<{ readonly path: string; readonly vendorId?: string | undefined; readonly productId?: string | undefined; readonly serialNumber?: string | undefined }>
}

export const BY_ID_DIR = '/dev/serial/by-id'

/** The path to open for `selector`, or undefined when nothing plugged in matches (the link waits). */
export function resolvePort(selector: PortSelector, c: PortCandidates): string | undefined {
  if ('path' in selector) return selector.path
  if ('byId' in selector) {
    const re = globToRegExp(selector.byId)
    const name = [...c.byIdNames].sort().find((n) => re.test(n))
    return name === undefined ? undefined : join(c.byIdDir, name)
  }
  const want = (v: string | undefined): string => (v ?? '').toLowerCase().replace(/^0x/, '')
  const match = [...c.ports]
    .sort((a, b) => a.path.localeCompare(b.path))
    .find((p) => want(p.vendorId) === want(selector.vendorId) && want(p.productId) === want(selector.productId) && (selector.serialNumber === undefined || p.serialNumber === selector.serialNumber))
  return match?.path
}

/** Reads what is plugged in; a missing by-id directory (no USB serial device yet) is no names. */
export async function listCandidates(byIdDir = BY_ID_DIR): Promise<PortCandidates> {
  const byIdNames = await readdir(byIdDir).catch(() => [] as string[])
  const ports = await SerialPort.list().catch(() => [])
  return { byIdDir, byIdNames, ports }
}

/** `*` any run of characters, `?` one character; everything else literal. */
function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')
  return new RegExp(`^${body}$`)
}
