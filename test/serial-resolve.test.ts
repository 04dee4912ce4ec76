/** Naming a serial port by path, by a /dev/serial/by-id/ glob, or by USB vendor/product id. */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { listCandidates, resolvePort, type PortCandidates } from '../src/serial/resolve.js'

const candidates: PortCandidates = {
  byIdDir: '/dev/serial/by-id',
  byIdNames: ['usb-Silicon_Labs_CP2102_0001-if00-port0', 'usb-FTDI_FT232R_A50285BI-if00-port0', 'usb-FTDI_FT232R_B1234567-if00-port0'],
  ports: [
    { path: '/dev/ttyUSB1', vendorId: '0403', productId: '6001', serialNumber: 'B1234567' },
    { path: '/dev/ttyUSB0', vendorId: '0403', productId: '6001', serialNumber: 'A50285BI' },
    { path: '/dev/ttyACM0', vendorId: '2341', productId: '0043', serialNumber: undefined },
    { path: '/dev/ttyAMA0' },
  ],
}

test('resolvePort: a path is used as given', () => {
  assert.equal(resolvePort({ path: '/dev/serial0' }, candidates), '/dev/serial0')
})

test('resolvePort: a by-id glob picks the first matching name in sorted order, or none', () => {
  assert.equal(resolvePort({ byId: 'usb-FTDI_*' }, candidates), '/dev/serial/by-id/usb-FTDI_FT232R_A50285BI-if00-port0')
  assert.equal(resolvePort({ byId: 'usb-FTDI_FT232R_B1234567-if00-port?' }, candidates), '/dev/serial/by-id/usb-FTDI_FT232R_B1234567-if00-port0')
  assert.equal(resolvePort({ byId: 'usb-Silicon_Labs_*' }, candidates), '/dev/serial/by-id/usb-Silicon_Labs_CP2102_0001-if00-port0')
  assert.equal(resolvePort({ byId: 'usb-Prolific_*' }, candidates), undefined)
  // Regex characters in a name are literal.
  assert.equal(resolvePort({ byId: 'usb-FTDI.FT232R*' }, candidates), undefined)
})

test('resolvePort: USB vendor and product id (any case, 0x prefix allowed), narrowed by serial number', () => {
  assert.equal(resolvePort({ vendorId: '0403', productId: '6001' }, candidates), '/dev/ttyUSB0')
  assert.equal(resolvePort({ vendorId: '0x0403', productId: '6001', serialNumber: 'B1234567' }, candidates), '/dev/ttyUSB1')
  assert.equal(resolvePort({ vendorId: '2341', productId: '0043' }, candidates), '/dev/ttyACM0')
  assert.equal(resolvePort({ vendorId: '10C4', productId: 'EA60' }, candidates), undefined)
})

test('listCandidates: reads the by-id directory (none when it does not exist yet)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-byid-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  assert.deepEqual((await listCandidates(join(dir, 'missing'))).byIdNames, [])
  symlinkSync('/dev/null', join(dir, 'usb-Test_Device_42-if00'))
  const c = await listCandidates(dir)
  assert.deepEqual(c.byIdNames, ['usb-Test_Device_42-if00'])
  assert.equal(resolvePort({ byId: 'usb-Test_*' }, c), join(dir, 'usb-Test_Device_42-if00'))
})
