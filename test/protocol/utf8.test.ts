/**
 * The UTF-8 validator (RFC 3629 §4, required for text by RFC 6455 §8.1), checked against Node's
 * native `buffer.isUtf8`: named boundary cases, exhaustive short sequences, and properties over
 * random bytes and random strings fed in random splits.
 */

import { isUtf8 as nodeIsUtf8 } from 'node:buffer'
import test from 'ava'
import fc from 'fast-check'
import { Utf8Validator, isUtf8 } from '../../src/protocol/index.js'
import { hex, splitAt } from './helpers.js'

/** Feed `bytes` to a fresh validator in the given pieces: valid means every push passed and it ended complete. */
function validInPieces (pieces: readonly Uint8Array[]): boolean {
  const v = new Utf8Validator()
  for (const p of pieces) if (!v.push(p)) return false
  return v.complete
}

/** Every way of checking a byte string must agree with Node, including every single cut point. */
function agreesWithNode (bytes: Uint8Array): boolean {
  const want = nodeIsUtf8(bytes)
  if (isUtf8(bytes) !== want) return false
  if (validInPieces([bytes]) !== want) return false
  for (let cut = 1; cut < bytes.length; cut++) {
    if (validInPieces([bytes.subarray(0, cut), bytes.subarray(cut)]) !== want) return false
  }
  return true
}

const CASES: Array<[string, string, boolean]> = [
  ['empty', '', true],
  ['ASCII', '48 65 6c 6c 6f', true],
  ['U+0000', '00', true],
  ['U+007F, last 1-byte', '7f', true],
  ['U+0080, first 2-byte', 'c2 80', true],
  ['U+07FF, last 2-byte', 'df bf', true],
  ['U+0800, first 3-byte', 'e0 a0 80', true],
  ['U+D7FF, just below the surrogates', 'ed 9f bf', true],
  ['U+D800, first surrogate', 'ed a0 80', false],
  ['U+DBFF/U+DC00 surrogate pair encoded as two', 'ed af bf ed b0 80', false],
  ['U+DFFF, last surrogate', 'ed bf bf', false],
  ['U+E000, just above the surrogates', 'ee 80 80', true],
  ['U+FFFD', 'ef bf bd', true],
  ['U+FFFF, last 3-byte', 'ef bf bf', true],
  ['U+10000, first 4-byte', 'f0 90 80 80', true],
  ['U+10FFFF, last code point', 'f4 8f bf bf', true],
  ['U+110000, above the last code point', 'f4 90 80 80', false],
  ['F5 lead (above U+13FFFF)', 'f5 80 80 80', false],
  ['F8 lead (old 5-byte form)', 'f8 88 80 80 80', false],
  ['FC lead (old 6-byte form)', 'fc 84 80 80 80 80', false],
  ['FE', 'fe', false],
  ['FF', 'ff', false],
  ['overlong NUL in 2 bytes', 'c0 80', false],
  ['overlong U+007F in 2 bytes', 'c1 bf', false],
  ['overlong U+07FF in 3 bytes', 'e0 9f bf', false],
  ['overlong NUL in 3 bytes', 'e0 80 80', false],
  ['overlong U+FFFF in 4 bytes', 'f0 8f bf bf', false],
  ['overlong NUL in 4 bytes', 'f0 80 80 80', false],
  ['stray continuation byte', '80', false],
  ['stray continuation after ASCII', '61 bf', false],
  ['lead followed by ASCII', 'c2 41', false],
  ['3-byte lead followed by ASCII in the middle', 'e2 82 41', false],
  ['truncated 2-byte at the end', '61 c2', false],
  ['truncated 3-byte at the end', 'e2 82', false],
  ['truncated 4-byte at the end', 'f0 9f 98', false],
  ['lead then lead', 'c2 c2 80', false],
  ['Autobahn 6.4.1-style: valid prefix, then F4 90', 'ce ba e1 bd b9 cf 83 ce bc ce b5 f4 90 80 80', false],
  ['Greek "κόσμε"', 'ce ba e1 bd b9 cf 83 ce bc ce b5', true],
  ['emoji', 'f0 9f 98 80', true]
]

for (const [name, bytes, valid] of CASES) {
  test(`RFC 3629: ${name} is ${valid ? 'valid' : 'invalid'}, as buffer.isUtf8 says, at every split`, (t) => {
    const b = hex(bytes)
    t.is(nodeIsUtf8(b), valid, 'the table agrees with Node')
    t.is(isUtf8(b), valid)
    t.true(agreesWithNode(b))
  })
}

test('push() returns true for a valid prefix that ends mid-character; complete says it is open', (t) => {
  const v = new Utf8Validator()
  t.true(v.push(hex('f0 9f')))
  t.false(v.complete)
  t.true(v.push(hex('98')))
  t.false(v.complete)
  t.true(v.push(hex('80 41')))
  t.true(v.complete)
})

test('the range after E0, ED, F0, F4 is narrowed only for the byte right after the lead, even across pushes', (t) => {
  const v = new Utf8Validator()
  t.true(v.push(hex('ed')))
  t.false(v.push(hex('a0')), 'ED A0 is a surrogate')
  const w = new Utf8Validator()
  t.true(w.push(hex('ed')))
  t.true(w.push(hex('9f')))
  t.true(w.push(hex('bf')), 'the third byte has the full range again')
  t.true(w.complete)
  const x = new Utf8Validator()
  t.true(x.push(hex('f4 8f')))
  t.true(x.push(hex('bf bf')))
  t.true(x.complete)
})

test('push(bytes, start, end) validates only that window', (t) => {
  const bytes = hex('ff 61 e2 82 ac ff')
  const v = new Utf8Validator()
  t.true(v.push(bytes, 1, 5))
  t.true(v.complete)
  t.false(new Utf8Validator().push(bytes, 0, 2))
  t.false(new Utf8Validator().push(bytes, 4))
})

test('reset() forgets an open sequence', (t) => {
  const v = new Utf8Validator()
  t.true(v.push(hex('e2 82')))
  v.reset()
  t.true(v.complete)
  t.true(v.push(hex('41')))
  t.true(v.complete)
})

test('exhaustive: every 1- and 2-byte string agrees with buffer.isUtf8', (t) => {
  const b = new Uint8Array(2)
  let mismatches = 0
  for (let x = 0; x < 256; x++) {
    if (!agreesWithNode(new Uint8Array([x]))) mismatches++
    for (let y = 0; y < 256; y++) {
      b[0] = x; b[1] = y
      if (!agreesWithNode(b)) mismatches++
    }
  }
  t.is(mismatches, 0)
})

// The bytes that decide each range check: both edges of every continuation range and just outside them.
const EDGES = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2, 0xe0, 0xf0, 0xf4, 0xff]

test('exhaustive: every 3-byte string with a multi-byte lead, any second byte and an edge third byte, agrees with buffer.isUtf8', (t) => {
  const b = new Uint8Array(3)
  let mismatches = 0
  let checked = 0
  for (let x = 0xc0; x < 256; x++) {
    for (let y = 0; y < 256; y++) {
      for (const z of EDGES) {
        b[0] = x; b[1] = y; b[2] = z
        if (!agreesWithNode(b)) mismatches++
        checked++
      }
    }
  }
  t.is(mismatches, 0)
  t.is(checked, 64 * 256 * EDGES.length)
})

test('exhaustive: every 4-byte string with a 4-byte-range lead (F0–FF), any second byte and edge 3rd/4th bytes, agrees with buffer.isUtf8', (t) => {
  const b = new Uint8Array(4)
  let mismatches = 0
  for (let x = 0xf0; x < 256; x++) {
    for (let y = 0; y < 256; y++) {
      for (const z of EDGES) {
        for (const w of EDGES) {
          b[0] = x; b[1] = y; b[2] = z; b[3] = w
          if (nodeIsUtf8(b) !== validInPieces([b]) || nodeIsUtf8(b) !== isUtf8(b)) mismatches++
        }
      }
    }
  }
  t.is(mismatches, 0)
})

test('every code point U+0000..U+10FFFF (surrogates excluded) encodes to bytes the validator accepts, and the surrogates are refused', (t) => {
  const encoder = new TextEncoder()
  let bad = 0
  for (let cp = 0; cp <= 0x10ffff; cp += cp < 0x10000 ? 1 : 17) {
    if (cp >= 0xd800 && cp <= 0xdfff) continue
    if (!validInPieces([encoder.encode(String.fromCodePoint(cp))])) bad++
  }
  for (let cp = 0xd800; cp <= 0xdfff; cp++) {
    // Encoded by hand: TextEncoder would replace a lone surrogate with U+FFFD.
    const bytes = new Uint8Array([0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)])
    if (validInPieces([bytes])) bad++
  }
  t.is(bad, 0)
})

/** Random cut points for a byte string. */
const withCuts = <T extends Uint8Array>(arb: fc.Arbitrary<T>): fc.Arbitrary<[T, number[]]> =>
  arb.chain((bytes) => fc.tuple(fc.constant(bytes), fc.array(fc.nat({ max: bytes.length }), { maxLength: 8 })))

test('property: random bytes in random splits — the validator agrees with buffer.isUtf8', (t) => {
  // Bias towards bytes that make multi-byte sequences, so valid strings occur too.
  const byte = fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x80, 0x9f, 0xa0, 0xbf, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4))
  fc.assert(fc.property(withCuts(fc.array(byte, { maxLength: 40 }).map((a) => Uint8Array.from(a))), ([bytes, cuts]) => {
    const want = nodeIsUtf8(bytes)
    return validInPieces(splitAt(bytes, cuts)) === want && isUtf8(bytes) === want
  }), { numRuns: 3000 })
  t.pass()
})

test('property: random valid strings in random splits are valid; one corrupted byte agrees with buffer.isUtf8', (t) => {
  const encoded = fc.string({ unit: 'binary', maxLength: 30 }).map((s) => new TextEncoder().encode(s))
  fc.assert(fc.property(withCuts(encoded), fc.nat(), fc.integer({ min: 0, max: 255 }), ([bytes, cuts], at, value) => {
    if (!validInPieces(splitAt(bytes, cuts)) || !isUtf8(bytes)) return false
    if (bytes.length === 0) return true
    const corrupt = bytes.slice()
    corrupt[at % corrupt.length] = value
    return validInPieces(splitAt(corrupt, cuts)) === nodeIsUtf8(corrupt)
  }), { numRuns: 2000 })
  t.pass()
})
