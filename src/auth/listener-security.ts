/**
 * What one listener admits and allows: anonymous access, its password file, its ACL file and the
 * certificate identity. The broker sees it through the `ConnectionSecurity` interface on each
 * connection's StreamMeta, so the broker core does not depend on file formats.
 */
import type { ConnectionSecurity, SecurityVerdict } from '../broker/types.js'
import type { ListenerConfig } from '../config/types.js'
import { AclFile, type AclAccess } from './acl.js'
import { PasswordFile } from './passwd.js'

/** A listener bound to loopback only is reachable from this machine alone. */
export function isLoopback(bind: string): boolean {
  return bind === '127.0.0.1' || bind === '::1' || bind === 'localhost' || bind.startsWith('127.')
}

export class ListenerSecurity implements ConnectionSecurity {
  readonly allowAnonymous: boolean
  readonly #passwords: PasswordFile | undefined
  readonly #acl: AclFile | undefined
  readonly #identityAsUsername: boolean

  private constructor(allowAnonymous: boolean, passwords: PasswordFile | undefined, acl: AclFile | undefined, identityAsUsername: boolean) {
    this.allowAnonymous = allowAnonymous
    this.#passwords = passwords
    this.#acl = acl
    this.#identityAsUsername = identityAsUsername
  }

  /**
   * Loads the listener's files. `globalAnonymous` is the top-level `allow_anonymous`, which only
   * a loopback listener inherits: one on a network address is closed unless it says otherwise.
   */
  static async load(config: ListenerConfig, globalAnonymous: boolean): Promise<ListenerSecurity> {
    const allowAnonymous = config.allowAnonymous ?? (isLoopback(config.bind) ? globalAnonymous : false)
    const passwords = config.passwordFile === undefined ? undefined : await PasswordFile.load(config.passwordFile)
    const acl = config.aclFile === undefined ? undefined : await AclFile.load(config.aclFile)
    return new ListenerSecurity(allowAnonymous, passwords, acl, config.tls?.useIdentityAsUsername === true)
  }

  /**
   * Mosquitto's rules: a certificate identity is the username and needs no password; a username
   * with a password file must match it; a username without a password file is taken as given
   * (it is only a label for the ACL) unless anonymous access is off, in which case there is
   * nothing to check it against and the client is refused, as Mosquitto 2.0 does.
   */
  async authenticate(req: { username: string | undefined; password: Buffer | undefined; certificateIdentity: string | undefined }): Promise<SecurityVerdict> {
    if (this.#identityAsUsername) {
      return req.certificateIdentity === undefined ? { verdict: 'not-authorized' } : { verdict: 'ok', username: req.certificateIdentity }
    }
    if (req.username === undefined) return { verdict: this.allowAnonymous ? 'ok' : 'not-authorized' }
    const passwords = this.#passwords
    if (passwords === undefined) return this.allowAnonymous ? { verdict: 'ok', username: req.username } : { verdict: 'not-authorized' }
    const ok = await passwords.verify(req.username, req.password?.toString('utf8') ?? '')
    return ok ? { verdict: 'ok', username: req.username } : { verdict: 'bad-credentials' }
  }

  /** True when no client can get in: no anonymous access, no password file, no certificate identity. */
  get admitsNobody(): boolean {
    return !this.allowAnonymous && this.#passwords === undefined && !this.#identityAsUsername
  }

  /** Without an ACL file everything is allowed. */
  allows(access: AclAccess, clientId: string, username: string | undefined, topic: string): boolean {
    return this.#acl === undefined || this.#acl.check(access, clientId, username, topic)
  }

  get hasAcl(): boolean {
    return this.#acl !== undefined
  }
}
