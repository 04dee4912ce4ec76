/**
 * Dashboard logins: users and passwords from `http.password_file` (Mosquitto's format, read
 * again at every login so an edited file counts at once, without SIGHUP), refusals slowed per
 * address by the same LoginThrottle the MQTT listeners use, and sessions as random cookies that
 * end after 12 hours without a request or at logout. Sessions live in memory only: a restart logs
 * everyone out, which is fine for a box's caretaker page.
 */
import { randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { Logger } from 'pino'
import { LoginThrottle } from '../auth/login-throttle.js'
import { PasswordFile } from '../auth/passwd.js'

export const COOKIE = 'outpost_session'
export const IDLE_MS = 12 * 60 * 60 * 1000
/** Sessions kept at once; past it the least recently used one ends (a loop of logins cannot grow memory). */
const MAX_SESSIONS = 256

interface DashboardSession {
  readonly user: string
  lastSeen: number
}

export type LoginResult = { ok: true; token: string } | { ok: false; delayMs: number; reason: 'bad-credentials' | 'unavailable' }

export class DashboardAuth {
  readonly passwordFile: string
  readonly throttle = new LoginThrottle()
  readonly #log: Logger
  /** In least-recently-used order: a session is re-inserted at each use. */
  readonly #sessions = new Map<string, DashboardSession>()

  constructor(passwordFile: string, log: Logger) {
    this.passwordFile = passwordFile
    this.#log = log
  }

  async login(address: string, user: string, password: string): Promise<LoginResult> {
    let file: PasswordFile
    try {
      file = await PasswordFile.load(this.passwordFile)
    } catch (err) {
      this.#log.error({ err, passwordFile: this.passwordFile }, 'dashboard login: the password file could not be read')
      return { ok: false, delayMs: 0, reason: 'unavailable' }
    }
    if (user !== '' && (await file.verify(user, password))) {
      this.throttle.succeeded(address)
      const token = randomBytes(32).toString('base64url')
      this.#sessions.set(token, { user, lastSeen: Date.now() })
      if (this.#sessions.size > MAX_SESSIONS) {
        const oldest = this.#sessions.keys().next().value
        if (oldest !== undefined) this.#sessions.delete(oldest)
      }
      this.#log.info({ user, remote: address }, 'dashboard login')
      return { ok: true, token }
    }
    const t = this.throttle.failed(address)
    if (t.log) this.#log.warn({ user, remote: address, unloggedFailures: t.unlogged }, 'dashboard login refused')
    return { ok: false, delayMs: t.delayMs, reason: 'bad-credentials' }
  }

  /** The session of the request's cookie, refreshed; undefined when there is none or it lapsed. */
  session(req: IncomingMessage): { token: string; user: string } | undefined {
    const token = cookieValue(req.headers.cookie, COOKIE)
    if (token === undefined) return undefined
    const s = this.#sessions.get(token)
    if (s === undefined) return undefined
    const now = Date.now()
    this.#sessions.delete(token)
    if (now - s.lastSeen > IDLE_MS) return undefined
    s.lastSeen = now
    this.#sessions.set(token, s)
    return { token, user: s.user }
  }

  logout(req: IncomingMessage): void {
    const token = cookieValue(req.headers.cookie, COOKIE)
    if (token === undefined) return
    const s = this.#sessions.get(token)
    this.#sessions.delete(token)
    if (s !== undefined) this.#log.info({ user: s.user }, 'dashboard logout')
  }
}

/**
 * Set-Cookie for a new session, or (token undefined) one that clears it. No Max-Age: the 12 hours
 * are counted from the last request, on this side; a browser cookie would count from the login.
 */
export function sessionCookie(token: string | undefined): string {
  const base = 'HttpOnly; SameSite=Strict; Path=/'
  return token === undefined ? `${COOKIE}=; ${base}; Max-Age=0` : `${COOKIE}=${token}; ${base}`
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

/**
 * Cross-site request forgery: a browser sends Origin with every POST; it must name this host.
 * A request without one (curl, a script) is not a browser riding on a cookie, so it passes; the
 * SameSite=Strict cookie is the second wall.
 */
export function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin
  if (origin === undefined) return req.headers['sec-fetch-site'] !== 'cross-site'
  // Chromium sends `Origin: null` on a form POST from a page with a no-referrer policy; its
  // Sec-Fetch-Site still tells whether the form was on this origin.
  if (origin === 'null') return req.headers['sec-fetch-site'] === 'same-origin'
  try {
    return new URL(origin).host === req.headers.host
  } catch {
    return false
  }
}
