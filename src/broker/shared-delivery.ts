import type { BrokerConfig } from './broker-options.js'
import type { Queued, Session } from './session.js'
import { pickMember } from './shared.js'
import type { SharedGroup, SubscriptionTree } from './subscription-tree.js'
import type { Message } from './types.js'

/** Which member of a shared subscription gets a message, and where a leaving member's messages go. */
export class SharedDelivery {
  /** Read at each use: a reload (SIGHUP) updates this object in place. */
  readonly #config: Pick<BrokerConfig, 'sharedSubscriptionStrategy'>
  readonly #sessions: ReadonlyMap<string, Session>
  readonly #tree: Pick<SubscriptionTree, 'sharedGroup'>
  /** Stores (when the target's session needs it) and delivers one redistributed message. */
  readonly #place: (target: Session, item: Queued) => void

  constructor(
    config: Pick<BrokerConfig, 'sharedSubscriptionStrategy'>,
    sessions: ReadonlyMap<string, Session>,
    tree: Pick<SubscriptionTree, 'sharedGroup'>,
    place: (target: Session, item: Queued) => void,
  ) {
    this.#config = config
    this.#sessions = sessions
    this.#tree = tree
    this.#place = place
  }

  /**
   * The member of a shared subscription that gets the message; `exclude` is a member that just
   * left. A member whose ACL does not let it read the topic is passed over like one that cannot
   * take the message at all [acl_file], so the group's other members get it; when none may read
   * it, no one does, as for a plain subscription.
   */
  pick(group: SharedGroup, message: Message, exclude: string | undefined): [Session, Queued] | undefined {
    const sub = pickMember(group, this.#config.sharedSubscriptionStrategy, message.topic, message.origin, (s) => {
      if (s.clientId === exclude) return 0
      const member = this.#sessions.get(s.clientId)
      if (member === undefined || (member.canRead !== undefined && !member.canRead(message.topic))) return 0
      return member.fitness()
    })
    const session = sub === undefined ? undefined : this.#sessions.get(sub.clientId)
    if (sub === undefined || session === undefined) return undefined
    const id = sub.subscriptionId
    return [session, {
      message,
      qos: sub.qos < message.qos ? sub.qos : message.qos,
      retain: sub.retainAsPublished === true && message.retain,
      subscriptionIds: id === undefined ? undefined : [id],
      share: group.key,
    }]
  }

  /** Messages a shared subscription gave `session`, not yet acknowledged, go to another member. */
  redistribute(session: Session): void {
    session.releaseShared((item) => {
      const group = item.share === undefined ? undefined : this.#tree.sharedGroup(item.share)
      const target = group === undefined ? undefined : this.pick(group, item.message, session.clientId)
      if (target === undefined) return false
      this.#place(target[0], target[1])
      return true
    })
  }
}
