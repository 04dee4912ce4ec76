/**
 * The validated `serial:` section: one entry per port. Keys in the YAML file are the snake_case
 * spelling of these fields (`baud_rate`, `field_topic`, ...). Everything here is fully defaulted
 * except the per-device and per-field overrides, which are partial by nature.
 */
import type { LineFormat } from '../serial/codecs/line-parsers.js'
import type { PortSelector } from '../serial/resolve.js'

export type SerialFraming = 'lines' | 'outpost-link'
/** zigbee2mqtt's choices: one JSON object per reading, one topic per field, or both. */
export type OutputShape = 'json' | 'fields' | 'both'
/** What a JSON payload's `time` key holds; `none` leaves it out. */
export type TimestampFormat = 'iso' | 'epoch_ms' | 'none'
/** How an MQTT payload becomes a CMD frame's argument bytes. */
export type CommandArgType = 'raw' | 'string' | 'int32' | 'uint32' | 'float32' | 'bool'
export type QoS = 0 | 1 | 2

/** Per field (keyed by the name the device uses). Unset keys fall back to the device, then the port. */
export interface FieldRule {
  /** Name in topics and JSON keys; default the device's own name. */
  name?: string
  /** Multiplies numeric readings (a device sending tenths of a degree wants 0.1). */
  scale?: number
  /** Decimal places kept after scaling; default: float32 readings to 7 significant digits, others as they are. */
  precision?: number
  /** Overrides the unit a HELLO announced; carried as the `unit` user property on field topics. */
  unit?: string
  throttle?: number
  deadband?: number
  qos?: QoS
  retain?: boolean
  /** Drop this field entirely. */
  ignore?: boolean
}

/** How readings become messages; the port sets all of it, a device entry may override each part of it. */
export interface MappingRule {
  /** Topic of the JSON object per reading. Placeholders: `{port}`, `{device}`. */
  topic: string
  /** Topic of one field's value. Placeholders: `{port}`, `{device}`, `{field}`. */
  fieldTopic: string
  output: OutputShape
  qos: QoS
  retain: boolean
  timestamp: TimestampFormat
  /** Seconds: at most one message per interval per topic, the last value wins; 0 = off. */
  throttle: number
  /** Publish a number only when it moved at least this far from the last published value; 0 = off. */
  deadband: number
  fields: Record<string, FieldRule>
}

export type DeviceRule = Partial<Omit<MappingRule, 'fields'>> & { fields?: Record<string, FieldRule> }

/** Options of the `lines` framing. */
export interface LinesConfig {
  /** Default "\n". */
  delimiter: string
  /** Bytes, without the delimiter. Default 1024. */
  maxLength: number
  format: LineFormat
  /** Device id for every line of this port; default the port's name. */
  device: string | undefined
  /** Or: take the device id from this field of each line (a radio hub relaying many nodes). */
  deviceField: string | undefined
}

export interface SerialPortConfig {
  /** `{port}` in topics and the name in logs; default derived from the path or selector. */
  name: string
  selector: PortSelector
  baudRate: number
  dataBits: 5 | 6 | 7 | 8
  parity: 'none' | 'even' | 'odd'
  stopBits: 1 | 2
  rtscts: boolean
  framing: SerialFraming
  lines: LinesConfig
  mapping: MappingRule
  /** Overrides keyed by device id (from HELLO, or `lines.device`). */
  devices: Record<string, DeviceRule>
  /** Retained `online` / `offline` per device; '' = off. Placeholders: `{port}`, `{device}`. */
  availabilityTopic: string
  /** Seconds without a frame before a device is `offline`; 0 = only the port state decides. */
  availabilityTimeout: number
  /** Retained JSON port state (`open`, `waiting`, `failed` with the reason); '' = off. Placeholder: `{port}`. */
  stateTopic: string
  /** Filter whose messages become commands; '' = no commands. `{device}` must be a whole level; ends in `/#` for named commands. */
  commandTopic: string
  /** Where ACK / NAK / timeout results go when the request carries no v5 Response Topic; '' = nowhere. */
  responseTopic: string
  /** Seconds to wait for ACK or NAK before sending a CMD again. */
  commandTimeout: number
  /** Sends of one CMD before it is reported as a timeout. */
  commandAttempts: number
  /** Argument encoding per command name; a command named like a HELLO field takes that field's type, else `raw`. */
  commandArgs: Record<string, CommandArgType>
  /** Publish Home Assistant MQTT discovery configs (retained, under `homeassistant/`) for each device's fields. */
  homeassistant: boolean
  /** `lines` framing: the line written for a command. Placeholders: `{device}`, `{command}`, `{payload}`. */
  commandLine: string
}
