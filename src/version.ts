import { readFileSync } from 'node:fs'

/**
 * The version in package.json, read at run time so a release needs one edit, not two.
 * Both `src/version.ts` and its compiled `dist/src/version.js` sit two levels below the package root.
 */
export function readVersion(): string {
  const url = new URL('../../package.json', import.meta.url)
  const pkg: unknown = JSON.parse(readFileSync(url, 'utf8'))
  if (typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string') return pkg.version
  throw new Error(`${url.pathname} has no "version" string`)
}
