import type { ProtocolVersion } from './wire.js';

/**
 * Messages between the bench orchestrator and a load-generator child (`load.ts`) over the
 * Node IPC channel. Both directions arrive as `unknown` and are narrowed here.
 */

/** A bounded throughput run: `publishers` clients publish to one topic filter that `subscribers` clients share. */
export interface ThroughputJob {
  readonly kind: 'throughput';
  readonly port: number;
  /** Protocol level every client of the run connects with. */
  readonly protocol: ProtocolVersion;
  readonly qos: 0 | 1;
  readonly publishers: number;
  readonly subscribers: number;
  readonly payloadBytes: number;
  /** Unacknowledged QoS 1 PUBLISHes each publisher keeps outstanding (MQTT 5: at most the Receive Maximum). */
  readonly window: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  /** Makes topics and client ids unique per run so nothing leaks between runs. */
  readonly tag: string;
}

/** Opens raw idle connections up to each target in `steps`, pausing for the parent after each. */
export interface IdleJob {
  readonly kind: 'idle';
  readonly port: number;
  readonly steps: readonly number[];
  /** Connections opened concurrently; more than the listen backlog would drop SYNs. */
  readonly batchSize: number;
  readonly connectTimeoutMs: number;
}

/**
 * One step of the backlog run (backlog.ts), on an offline persistent session:
 * `subscribe` makes the session (clean session 0, QoS 1 subscription to `filter`) and disconnects;
 * `publish` sends `messages` QoS 1 PUBLISHes from `publishers` clients to `<topicPrefix>/p<i>`;
 * `drain` reconnects the session and takes the backlog until every message arrived or none came
 * for `stallMs`.
 */
export interface BacklogJob {
  readonly kind: 'backlog';
  readonly phase: 'subscribe' | 'publish' | 'drain';
  readonly port: number;
  /** The persistent subscriber's client id. */
  readonly clientId: string;
  readonly filter: string;
  readonly topicPrefix: string;
  /** In all, split evenly over the publishers. */
  readonly messages: number;
  readonly publishers: number;
  readonly payloadBytes: number;
  readonly window: number;
  readonly stallMs: number;
}

export type LoadJob = ThroughputJob | IdleJob | BacklogJob;

/** Parent to child. */
export type ParentMessage =
  | { readonly type: 'job'; readonly job: LoadJob }
  /** Idle job: the parent has read RSS, go on to the next step. */
  | { readonly type: 'continue' };

export interface ThroughputResult {
  /** PUBLISH packets received by all subscribers in the measured window, per second. */
  readonly deliveredPerSec: number;
  /** QoS 0: PUBLISH packets handed to the socket; QoS 1: PUBACKs received — per second. */
  readonly publishedPerSec: number;
  /** Delivered rate of each ~1 s slice of the measured window. */
  readonly samplesPerSec: readonly number[];
  /** Load generator CPU (user + system) over the measured window, % of one core. */
  readonly loadCpuPercent: number;
  readonly measuredMs: number;
  /** Connections that closed or errored while the run was going. */
  readonly unexpectedCloses: number;
  /** PUBLISHes whose payload was not one we sent, or PUBACKs for unknown ids. */
  readonly anomalies: number;
  /** MQTT 5 PUBACKs to publishers with a failure reason code (>= 0x80); not counted as published. */
  readonly refusedAcks: number;
  /**
   * Lowest Receive Maximum the broker's CONNACKs gave the publishers (65535 when absent or 3.1.1);
   * QoS 1 publishers keep no more than this in flight.
   */
  readonly receiveMaximum: number;
  /** PUBLISHes received over the whole run, warmup included; the base for the two below. */
  readonly receivedTotal: number;
  /** PUBLISHes that arrived twice or behind a later one from the same publisher (whole run). */
  readonly outOfOrder: number;
  /** Sequence numbers a subscriber skipped: messages lost (whole run, tail excluded). */
  readonly missing: number;
}

/** What one backlog step saw; fields a step does not use are 0 / false. */
export interface BacklogPhaseResult {
  /** publish: first PUBLISH written to last PUBACK; drain: CONNECT sent to last message received. */
  readonly elapsedMs: number;
  /** PUBACKs with success to the publishers. */
  readonly acked: number;
  readonly refusedAcks: number;
  /** The subscriber's CONNACK said the broker had kept its session. */
  readonly sessionPresent: boolean;
  /** drain: CONNECT sent to CONNACK, and to the first PUBLISH. */
  readonly connackMs: number;
  readonly firstMessageMs: number;
  /** PUBLISHes the subscriber received, repeats included. */
  readonly received: number;
  /** Different (publisher, sequence number) pairs among them. */
  readonly distinct: number;
  /** Received again after the first time. */
  readonly duplicates: number;
  /** Arrived with a lower sequence number than one already seen from the same publisher. */
  readonly outOfOrder: number;
  /** PUBLISHes with the DUP flag set (redeliveries). */
  readonly dupFlag: number;
  /** The drain ended because nothing came for `stallMs`, not because everything had arrived. */
  readonly stalled: boolean;
  readonly anomalies: number;
  readonly unexpectedCloses: number;
  /** Load generator CPU over `elapsedMs`, % of one core. */
  readonly loadCpuPercent: number;
}

export interface IdleStep {
  readonly target: number;
  readonly connected: number;
  readonly failed: number;
  /** Connections that got a CONNACK and were later closed by the broker. */
  readonly dropped: number;
}

/** Child to parent. */
export type ChildMessage =
  | { readonly type: 'window-start' }
  | { readonly type: 'window-end' }
  | { readonly type: 'result'; readonly result: ThroughputResult }
  | { readonly type: 'idle-step'; readonly step: IdleStep }
  | { readonly type: 'backlog-result'; readonly result: BacklogPhaseResult }
  | { readonly type: 'done' }
  | { readonly type: 'error'; readonly message: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function isThroughputJob(v: unknown): v is ThroughputJob {
  return (
    isRecord(v) &&
    v['kind'] === 'throughput' &&
    isFiniteNumber(v['port']) &&
    (v['protocol'] === 4 || v['protocol'] === 5) &&
    (v['qos'] === 0 || v['qos'] === 1) &&
    isFiniteNumber(v['publishers']) &&
    isFiniteNumber(v['subscribers']) &&
    isFiniteNumber(v['payloadBytes']) &&
    isFiniteNumber(v['window']) &&
    isFiniteNumber(v['warmupMs']) &&
    isFiniteNumber(v['measureMs']) &&
    typeof v['tag'] === 'string'
  );
}

function isBacklogJob(v: unknown): v is BacklogJob {
  return (
    isRecord(v) &&
    v['kind'] === 'backlog' &&
    (v['phase'] === 'subscribe' || v['phase'] === 'publish' || v['phase'] === 'drain') &&
    isFiniteNumber(v['port']) &&
    typeof v['clientId'] === 'string' &&
    typeof v['filter'] === 'string' &&
    typeof v['topicPrefix'] === 'string' &&
    ['messages', 'publishers', 'payloadBytes', 'window', 'stallMs'].every((k) => isFiniteNumber(v[k]))
  );
}

const BACKLOG_COUNTS = [
  'elapsedMs',
  'acked',
  'refusedAcks',
  'connackMs',
  'firstMessageMs',
  'received',
  'distinct',
  'duplicates',
  'outOfOrder',
  'dupFlag',
  'anomalies',
  'unexpectedCloses',
  'loadCpuPercent',
] as const satisfies readonly (keyof BacklogPhaseResult)[];

function isBacklogPhaseResult(v: unknown): v is BacklogPhaseResult {
  return (
    isRecord(v) &&
    typeof v['sessionPresent'] === 'boolean' &&
    typeof v['stalled'] === 'boolean' &&
    BACKLOG_COUNTS.every((k) => isFiniteNumber(v[k]))
  );
}

function isIdleJob(v: unknown): v is IdleJob {
  return (
    isRecord(v) &&
    v['kind'] === 'idle' &&
    isFiniteNumber(v['port']) &&
    Array.isArray(v['steps']) &&
    v['steps'].every(isFiniteNumber) &&
    isFiniteNumber(v['batchSize']) &&
    isFiniteNumber(v['connectTimeoutMs'])
  );
}

export function parseParentMessage(value: unknown): ParentMessage | undefined {
  if (!isRecord(value)) return undefined;
  if (value['type'] === 'continue') return { type: 'continue' };
  if (value['type'] !== 'job') return undefined;
  const job = value['job'];
  return isThroughputJob(job) || isIdleJob(job) || isBacklogJob(job) ? { type: 'job', job } : undefined;
}

function isThroughputResult(v: unknown): v is ThroughputResult {
  return (
    isRecord(v) &&
    isFiniteNumber(v['deliveredPerSec']) &&
    isFiniteNumber(v['publishedPerSec']) &&
    Array.isArray(v['samplesPerSec']) &&
    v['samplesPerSec'].every(isFiniteNumber) &&
    isFiniteNumber(v['loadCpuPercent']) &&
    isFiniteNumber(v['measuredMs']) &&
    isFiniteNumber(v['unexpectedCloses']) &&
    isFiniteNumber(v['anomalies']) &&
    isFiniteNumber(v['refusedAcks']) &&
    isFiniteNumber(v['receiveMaximum']) &&
    isFiniteNumber(v['receivedTotal']) &&
    isFiniteNumber(v['outOfOrder']) &&
    isFiniteNumber(v['missing'])
  );
}

function isIdleStep(v: unknown): v is IdleStep {
  return (
    isRecord(v) &&
    isFiniteNumber(v['target']) &&
    isFiniteNumber(v['connected']) &&
    isFiniteNumber(v['failed']) &&
    isFiniteNumber(v['dropped'])
  );
}

export function parseChildMessage(value: unknown): ChildMessage | undefined {
  if (!isRecord(value)) return undefined;
  switch (value['type']) {
    case 'window-start':
    case 'window-end':
    case 'done':
      return { type: value['type'] };
    case 'result':
      return isThroughputResult(value['result']) ? { type: 'result', result: value['result'] } : undefined;
    case 'backlog-result':
      return isBacklogPhaseResult(value['result']) ? { type: 'backlog-result', result: value['result'] } : undefined;
    case 'idle-step':
      return isIdleStep(value['step']) ? { type: 'idle-step', step: value['step'] } : undefined;
    case 'error':
      return typeof value['message'] === 'string' ? { type: 'error', message: value['message'] } : undefined;
    default:
      return undefined;
  }
}
