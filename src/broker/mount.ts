import { parseSharedFilter } from './topics.js'
import type { Message } from './types.js'

/**
 * A listener's `mount_point` (Mosquitto's option): its clients' topics live under the prefix in
 * the broker, and they see them without it. `sensors/t` from a client on a listener mounted at
 * `site1/` is `site1/sensors/t` to everyone else, and its subscription to `sensors/#` is
 * `site1/sensors/#`. The ACL sees the broker's (mounted) topics, as in Mosquitto.
 */
export function mountTopic(mount: string, topic: string): string {
  return mount === '' ? topic : mount + topic
}

/** A filter under the mount point; for a shared filter the mount goes after the group. */
export function mountFilter(mount: string, filter: string): string {
  if (mount === '') return filter
  const shared = parseSharedFilter(filter)
  if (shared === undefined) return mount + filter
  return shared.group === '$queue' ? `$queue/${mount}${shared.filter}` : `$share/${shared.group}/${mount}${shared.filter}`
}

/**
 * Messages as the clients of one mount point see them. The copy without the prefix is made once
 * per message and shared by every client of that mount, so the encoders' per-message caches
 * (the QoS 0 bytes) still work for them.
 */
export class Unmounter {
  static readonly #byMount = new Map<string, Unmounter>()
  readonly #mount: string
  readonly #views = new WeakMap<Message, Message>()

  private constructor(mount: string) {
    this.#mount = mount
  }

  /** One per mount point for the whole process (mount points come from the config, so they are few). */
  static for(mount: string): Unmounter {
    let u = Unmounter.#byMount.get(mount)
    if (u === undefined) {
      u = new Unmounter(mount)
      Unmounter.#byMount.set(mount, u)
    }
    return u
  }

  /**
   * The message with the mount point taken off its topic; undefined when the topic is not under
   * it or is the mount point alone (an empty topic cannot be sent) [MQTT-4.7.3-1].
   */
  view(message: Message): Message | undefined {
    const mount = this.#mount
    const topic = message.topic
    if (topic.length <= mount.length || !topic.startsWith(mount)) return undefined
    let view = this.#views.get(message)
    if (view === undefined) {
      view = { ...message, topic: topic.slice(mount.length) }
      this.#views.set(message, view)
    }
    return view
  }
}
