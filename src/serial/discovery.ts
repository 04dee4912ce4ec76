/**
 * Home Assistant MQTT discovery for serial devices, as zigbee2mqtt users get it: one retained
 * config message per field under `homeassistant/`, so a sensor wired to the Pi shows up in Home
 * Assistant with its unit, its availability and a device card, without YAML on the HA side.
 *
 * https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery
 */
import type { FieldRule, MappingRule } from '../config/serial-types.js'
import type { FieldValue } from './codecs/line-parsers.js'
import type { Publication } from './mapper.js'
import { safeLevel, TopicTemplate, type Placeholder } from './template.js'

export const DISCOVERY_PREFIX = 'homeassistant'
/** Fields announced per device: a line device inventing keys cannot make us announce forever. */
export const MAX_ANNOUNCED_FIELDS = 64
const FIELD_TOPIC: readonly Placeholder[] = ['port', 'device', 'field']

export interface AnnouncedField {
  /** The device's own name for the field. */
  readonly field: string
  readonly kind: 'number' | 'bool' | 'string'
  readonly unit?: string | undefined
}

export interface DeviceInfo {
  readonly port: string
  readonly device: string
  readonly firmware?: string | undefined
  /** The port's rule with the device's overrides (what the mapper uses). */
  readonly rule: Omit<MappingRule, 'fields'>
  readonly fields: Record<string, FieldRule>
  /** Rendered availability topic, or undefined when availability is off. */
  readonly availabilityTopic: string | undefined
}

/** Guesses Home Assistant's device_class from the unit, which decides the icon and the graphs. */
function deviceClass(unit: string | undefined, name: string): string | undefined {
  switch (unit) {
    case '°C':
    case '°F':
    case 'K':
      return 'temperature'
    case 'hPa':
    case 'Pa':
    case 'mbar':
      return 'pressure'
    case 'V':
    case 'mV':
      return 'voltage'
    case 'A':
    case 'mA':
      return 'current'
    case 'W':
    case 'kW':
      return 'power'
    case 'kWh':
    case 'Wh':
      return 'energy'
    case 'lx':
      return 'illuminance'
    case '%':
      return /humid/i.test(name) ? 'humidity' : /batt/i.test(name) ? 'battery' : undefined
    default:
      return undefined
  }
}

/**
 * The retained discovery messages for `fields` of one device. Returns nothing for ignored fields;
 * the state topic and template follow the output shape (JSON object or one topic per field).
 */
export function discoveryMessages(info: DeviceInfo, fields: readonly AnnouncedField[]): Publication[] {
  const out: Publication[] = []
  const { rule } = info
  const vars = { port: info.port, device: info.device }
  const jsonTopic = TopicTemplate.compile(rule.topic, FIELD_TOPIC).render(vars)
  const nodeId = safeId(`outpost_${info.port}_${info.device}`)
  for (const f of fields) {
    const r = info.fields[f.field] ?? {}
    if (r.ignore === true) continue
    const name = r.name ?? f.field
    const unit = r.unit ?? (f.unit === '' ? undefined : f.unit)
    const byField = rule.output !== 'json'
    const stateTopic = byField ? TopicTemplate.compile(rule.fieldTopic, FIELD_TOPIC).render({ ...vars, field: name }) : jsonTopic
    const component = f.kind === 'bool' ? 'binary_sensor' : 'sensor'
    const key = JSON.stringify(name)
    const config: Record<string, unknown> = {
      name,
      unique_id: safeId(`${nodeId}_${name}`),
      object_id: safeId(`${info.device}_${name}`),
      state_topic: stateTopic,
      device: { identifiers: [nodeId], name: info.device, manufacturer: 'Outpost serial bridge', ...(info.firmware === undefined ? {} : { sw_version: info.firmware }) },
      origin: { name: 'Outpost' },
    }
    if (f.kind === 'bool') {
      config.payload_on = 'true'
      config.payload_off = 'false'
      if (!byField) config.value_template = `{{ 'true' if value_json[${key}] else 'false' }}`
    } else if (!byField) {
      config.value_template = `{{ value_json[${key}] }}`
    }
    if (f.kind === 'number') {
      config.state_class = 'measurement'
      if (unit !== undefined) config.unit_of_measurement = unit
      const dc = deviceClass(unit, name)
      if (dc !== undefined) config.device_class = dc
    }
    if (info.availabilityTopic !== undefined) {
      config.availability_topic = info.availabilityTopic
      config.payload_available = 'online'
      config.payload_not_available = 'offline'
    }
    out.push({ topic: `${DISCOVERY_PREFIX}/${component}/${nodeId}/${safeId(name)}/config`, payload: JSON.stringify(config), qos: 1, retain: true })
  }
  return out
}

export function kindOf(value: FieldValue): AnnouncedField['kind'] {
  return typeof value === 'number' ? 'number' : typeof value === 'boolean' ? 'bool' : 'string'
}

/** Discovery ids allow `[a-zA-Z0-9_-]` only. */
function safeId(text: string): string {
  return safeLevel(text).replace(/[^A-Za-z0-9_-]/g, '_')
}
