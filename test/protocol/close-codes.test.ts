/**
 * Close codes (RFC 6455 §7.4): the table, the predicate over all of 0..65535, and the close
 * payload parser (§5.5.1) with the error each bad payload yields.
 */

import test from 'ava'
import { CLOSE_CODES, CloseCode, ProtocolError, isValidCloseCode, parseClosePayload } from '../../src/protocol/index.js'
import { assertParseError, concat, hex, utf8 } from './helpers.js'

/** §7.4.1 / §7.4.2 and the IANA registry, written out independently of the implementation. */
const expectedValid = (c: number): boolean => (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999)

test('§7.4 isValidCloseCode over every code 0..65535', (t) => {
  const wrong: number[] = []
  for (let code = 0; code <= 0xffff; code++) if (isValidCloseCode(code) !== expectedValid(code)) wrong.push(code)
  t.deepEqual(wrong, [])
})

test('§7.4 the named edges: 1004–1006 and 1015 are never sent, 0–999, 1016–2999 and 5000+ are invalid', (t) => {
  for (const code of [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535]) t.false(isValidCloseCode(code), String(code))
  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999]) t.true(isValidCloseCode(code), String(code))
})

test('isValidCloseCode refuses non-integers and out-of-range numbers', (t) => {
  for (const code of [1000.5, 3000.5, -1000, Number.NaN, Infinity, 65536 + 1000]) t.false(isValidCloseCode(code), String(code))
})

test('the CloseCode names and the CLOSE_CODES table agree: 1000–1015 listed, sendable as §7.4.1 says', (t) => {
  t.deepEqual([...CLOSE_CODES.keys()], Array.from({ length: 16 }, (_, i) => 1000 + i))
  for (const code of Object.values(CloseCode)) {
    t.true(CLOSE_CODES.has(code))
    t.is(CLOSE_CODES.get(code)?.sendable, expectedValid(code))
  }
  t.is(CloseCode.ProtocolError, 1002)
  t.is(CloseCode.InvalidPayload, 1007)
  t.is(CloseCode.MessageTooBig, 1009)
  t.is(CloseCode.InternalError, 1011)
})

test('§5.5.1 parseClosePayload: empty is 1005 with no reason; code and UTF-8 reason are read', (t) => {
  t.deepEqual(parseClosePayload(new Uint8Array(0)), { code: 1005, reason: '' })
  t.deepEqual(parseClosePayload(hex('03 e8')), { code: 1000, reason: '' })
  t.deepEqual(parseClosePayload(concat([hex('0f a0'), utf8('κόσμε')])), { code: 4000, reason: 'κόσμε' })
})

test('§5.5.1 parseClosePayload: 1 byte → 1002; bad code → 1002; reason not UTF-8 → 1007', (t) => {
  assertParseError(t, () => parseClosePayload(hex('03')), 'WS_ERR_INVALID_CLOSE_PAYLOAD', 1002)
  assertParseError(t, () => parseClosePayload(hex('03 ed')), 'WS_ERR_INVALID_CLOSE_CODE', 1002)
  assertParseError(t, () => parseClosePayload(hex('03 e8 ff')), 'WS_ERR_INVALID_CLOSE_REASON', 1007)
  assertParseError(t, () => parseClosePayload(hex('03 e8 e2 82')), 'WS_ERR_INVALID_CLOSE_REASON', 1007)
})

test('§5.5.1 parseClosePayload over every code 0..65535 agrees with the §7.4 ranges', (t) => {
  const body = new Uint8Array(2)
  const wrong: number[] = []
  for (let code = 0; code <= 0xffff; code++) {
    body[0] = code >>> 8; body[1] = code & 0xff
    let ok: boolean
    try {
      ok = parseClosePayload(body).code === code
    } catch (err) {
      ok = false
      if (!(err instanceof ProtocolError) || err.closeCode !== 1002) wrong.push(code)
    }
    if (ok !== expectedValid(code)) wrong.push(code)
  }
  t.deepEqual(wrong, [])
})
