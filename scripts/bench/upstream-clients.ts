import { openClient, withTimeout, writePubacks } from './clients.js';
import { DISCONNECT_PACKET, PacketType, lastPublish, publishPayload, subscribePacket } from './wire.js';

/**
 * The bench's own MQTT clients in the upstream run: the consumer at the cloud that ticks off
 * every message a bridge forwards, and a reader of the local `$SYS` bridge figures.
 */

const HANDSHAKE_MS = 15_000;

/** Epoch milliseconds with sub-millisecond resolution, comparable with Outpost's log times. */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/** What the consumer at the cloud saw. */
export interface ConsumerTally {
  /** PUBLISHes, repeats included. */
  received: number;
  /** Different (publisher, sequence number) pairs. */
  distinct: number;
  duplicates: number;
  /** Lower sequence number than one already seen from the same publisher. */
  outOfOrder: number;
  /** PUBLISHes with the DUP flag (redeliveries). */
  dupFlag: number;
  /** Payloads the bench did not send. */
  anomalies: number;
  /** Epoch ms of the first PUBLISH, and of the one that made `distinct` reach the total. */
  firstAt: number;
  lastNewAt: number;
  /** Epoch ms of the latest PUBLISH of any kind. */
  latestAt: number;
  /** The cloud closed the connection. */
  closed: boolean;
}

/**
 * A raw MQTT 3.1.1 client with a persistent session at the cloud, subscribed at QoS 1 to what the
 * bridge sends. The payloads are the load generator's: publisher index and sequence number
 * (uint32 BE each) first, so loss, repeats and reordering can be told apart.
 */
export class Consumer {
  readonly tally: ConsumerTally = {
    received: 0, distinct: 0, duplicates: 0, outOfOrder: 0, dupFlag: 0, anomalies: 0,
    firstAt: -1, lastNewAt: -1, latestAt: -1, closed: false,
  };
  /** Called once, at the first PUBLISH. */
  onFirstMessage: () => void = () => undefined;
  /** Called once, when the last missing message arrives. */
  onAllArrived: () => void = () => undefined;
  readonly #seen: Uint8Array[];
  readonly #lastSeq: Float64Array;
  readonly #total: number;
  readonly #payloadBytes: number;

  /** `shares[i]`: messages publisher i sends. */
  constructor(shares: readonly number[], payloadBytes: number) {
    this.#seen = shares.map((n) => new Uint8Array(n));
    this.#lastSeq = new Float64Array(shares.length).fill(-1);
    this.#total = shares.reduce((a, b) => a + b, 0);
    this.#payloadBytes = payloadBytes;
  }

  /** Makes the persistent session with its subscription, then leaves it (DISCONNECT). */
  static async makeSession(port: number, clientId: string, filter: string): Promise<void> {
    let onSuback: ((code: number) => void) | undefined;
    const subacked = new Promise<number>((resolve) => {
      onSuback = resolve;
    });
    const { socket } = await openClient(port, clientId, 4, HANDSHAKE_MS, {
      onFrame: (type, _flags, buf, start, length) => {
        if (type === PacketType.suback && length >= 3) onSuback?.(buf.readUInt8(start + 2));
      },
      onClose: () => undefined,
    }, false);
    try {
      socket.write(subscribePacket(filter, 1, 1, 4));
      const granted = await withTimeout(subacked, HANDSHAKE_MS, 'no SUBACK');
      if (granted !== 1) throw new Error(`the cloud granted 0x${granted.toString(16)} for a QoS 1 subscription`);
    } finally {
      socket.end(DISCONNECT_PACKET);
    }
  }

  /** Connects to the session and takes whatever comes; returns a function that disconnects. */
  async attach(port: number, clientId: string): Promise<() => void> {
    const acks: number[] = [];
    const t = this.tally;
    let leaving = false;
    const { socket, sessionPresent } = await openClient(port, clientId, 4, HANDSHAKE_MS, {
      onFrame: (type, flags, buf, start, length) => {
        if (type !== PacketType.publish) return;
        const payload = publishPayload(flags, buf, start, length, 4);
        if (lastPublish.packetId !== 0) acks.push(lastPublish.packetId);
        const now = epochNow();
        t.received++;
        t.latestAt = now;
        if (t.firstAt < 0) {
          t.firstAt = now;
          this.onFirstMessage();
        }
        if ((flags & 0x08) !== 0) t.dupFlag++;
        if (start + length - payload !== this.#payloadBytes) {
          t.anomalies++;
          return;
        }
        const publisher = buf.readUInt32BE(payload);
        const seq = buf.readUInt32BE(payload + 4);
        const marks = this.#seen[publisher];
        if (marks === undefined || seq >= marks.length) {
          t.anomalies++;
          return;
        }
        if (marks[seq] === 1) {
          t.duplicates++;
          return;
        }
        marks[seq] = 1;
        if (++t.distinct === this.#total) {
          t.lastNewAt = now;
          this.onAllArrived();
        }
        if (seq < (this.#lastSeq[publisher] ?? -1)) t.outOfOrder++;
        else this.#lastSeq[publisher] = seq;
      },
      afterChunk: (sock) => writePubacks(sock, acks),
      onClose: () => {
        if (!leaving) t.closed = true;
      },
    }, false);
    if (!sessionPresent) {
      socket.destroy();
      throw new Error('the cloud had lost the consumer session (CONNACK session present 0)');
    }
    return () => {
      leaving = true;
      socket.end(DISCONNECT_PACKET);
    };
  }
}

/** Latest value of each local `$SYS/broker/bridge/...` topic, from a raw QoS 0 subscriber. */
export class SysReader {
  readonly latest = new Map<string, string>();
  #close: () => void = () => undefined;

  async attach(port: number, filter: string): Promise<void> {
    const { socket } = await openClient(port, 'bench-upstream-sys', 4, HANDSHAKE_MS, {
      onFrame: (type, flags, buf, start, length) => {
        if (type !== PacketType.publish) return;
        const topic = buf.toString('utf8', start + 2, start + 2 + buf.readUInt16BE(start));
        this.latest.set(topic, buf.toString('utf8', publishPayload(flags, buf, start, length, 4), start + length));
      },
      onClose: () => undefined,
    });
    socket.write(subscribePacket(filter, 0, 1, 4));
    this.#close = () => socket.end(DISCONNECT_PACKET);
  }

  number(topic: string): number | undefined {
    const value = this.latest.get(topic);
    return value === undefined ? undefined : Number(value);
  }

  close(): void {
    this.#close();
  }
}
