/**
 * applyMask (RFC 6455 §5.3) against the naive byte loop: every alignment, key offset and length
 * around the word-loop threshold, then random lengths, alignments and key offsets.
 */

import test from 'ava'
import fc from 'fast-check'
import { applyMask } from '../../src/protocol/index.js'
import { copyUnmasked, simdUnmask } from '../../src/protocol/mask.js'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { naiveMask, RFC_KEY, hex } from './helpers.js'

/** Mask `data` placed at `align` bytes into a fresh buffer, so byteOffset % 4 === align. */
function maskAt (data: Uint8Array, key: readonly number[], align: number, offset: number): Uint8Array {
  const backing = new Uint8Array(align + data.length + 4).fill(0xee)
  const view = backing.subarray(align, align + data.length)
  view.set(data)
  applyMask(view, key[0], key[1], key[2], key[3], offset)
  // The bytes around the view are untouched.
  for (let i = 0; i < align; i++) if (backing[i] !== 0xee) throw new Error('wrote before the view')
  for (let i = align + data.length; i < backing.length; i++) if (backing[i] !== 0xee) throw new Error('wrote after the view')
  return view.slice()
}

test('§5.7: masking "Hello" with 37 fa 21 3d gives the RFC bytes, and masking twice restores it', (t) => {
  const data = new TextEncoder().encode('Hello')
  applyMask(data, ...RFC_KEY)
  t.deepEqual(data, hex('7f 9f 4d 51 58'))
  applyMask(data, ...RFC_KEY)
  t.deepEqual(data, new TextEncoder().encode('Hello'))
})

test('every length 0..80 (across the word-loop threshold) × alignment 0..3 × key offset 0..7 matches the byte loop', (t) => {
  const key = [0x01, 0x80, 0xfe, 0x7f]
  let mismatches = 0
  for (let len = 0; len <= 80; len++) {
    const data = Uint8Array.from({ length: len }, (_, i) => (i * 37 + 11) & 0xff)
    for (let align = 0; align < 4; align++) {
      for (let offset = 0; offset < 8; offset++) {
        const got = maskAt(data, key, align, offset)
        const want = naiveMask(data, key, offset)
        if (got.some((b, i) => b !== want[i])) mismatches++
      }
    }
  }
  t.is(mismatches, 0)
})

test('masking a payload in pieces, with the key offset of each piece, equals masking it whole', (t) => {
  const data = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff)
  const whole = naiveMask(data, RFC_KEY)
  const pieces = data.slice()
  const cuts = [0, 3, 4, 37, 38, 100, 101, 999, 1000]
  for (let i = 0; i + 1 < cuts.length; i++) applyMask(pieces.subarray(cuts[i], cuts[i + 1]), ...RFC_KEY, cuts[i])
  t.deepEqual(pieces, whole)
})

test('property: random data, alignment, key and key offset match the byte loop', (t) => {
  fc.assert(fc.property(
    fc.uint8Array({ maxLength: 600 }),
    fc.integer({ min: 0, max: 3 }),
    fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 })),
    fc.nat({ max: 1 << 20 }),
    (data, align, key, offset) => {
      const got = maskAt(data, key, align, offset)
      const want = naiveMask(data, key, offset)
      return got.length === want.length && got.every((b, i) => b === want[i])
    }), { numRuns: 1000 })
  t.pass()
})

test('copyUnmasked and applyMask equal the naive loop at every key offset, around the kernel threshold and block size, leaving the source and the bytes around the destination alone', (t) => {
  // Node 20 has WebAssembly SIMD, so the kernel is what large parts go through here.
  t.true(simdUnmask)
  const key = [0x9a, 0x01, 0xfe, 0x37] as const
  for (const n of [0, 1, 3, 63, 2047, 2048, 2049, 4099, 65535, 65536, 65537, 200003]) {
    const src = Uint8Array.from({ length: n }, (_, i) => (i * 13 + (i >>> 8)) & 0xff)
    const before = src.slice()
    for (let offset = 0; offset < 4; offset++) {
      for (const at of [0, 3]) {
        const dst = new Uint8Array(at + n + 5).fill(0xee)
        copyUnmasked(dst, at, src, key[0], key[1], key[2], key[3], offset)
        t.deepEqual(dst.subarray(at, at + n), naiveMask(src, key, offset), `n ${n}, offset ${offset}, at ${at}`)
        t.true(dst.subarray(0, at).every(b => b === 0xee) && dst.subarray(at + n).every(b => b === 0xee))
        // applyMask in place (large lengths go through the kernel as well)
        t.deepEqual(maskAt(src, key, at, offset), naiveMask(src, key, offset), `in place: n ${n}, offset ${offset}, align ${at}`)
      }
    }
    t.deepEqual(src, before)
  }
})

test('without WebAssembly (node --jitless) the plain-JavaScript path unmasks large parts the same', (t) => {
  const mask = fileURLToPath(new URL('../../src/protocol/mask.ts', import.meta.url))
  const script = `
    const m = await import(${JSON.stringify(mask)})
    const key = [0x9a, 0x01, 0xfe, 0x37]
    let bad = 0
    for (const n of [2048, 4099, 70001]) for (let off = 0; off < 4; off++) {
      const src = Uint8Array.from({ length: n }, (_, i) => (i * 7) & 0xff)
      const a = new Uint8Array(n + 1); m.copyUnmasked(a, 1, src, ...key, off)
      const b = src.slice(); m.applyMask(b, ...key, off)
      for (let i = 0; i < n; i++) { const e = src[i] ^ key[(i + off) & 3]; if (a[i + 1] !== e || b[i] !== e) bad++ }
    }
    console.log(JSON.stringify({ simd: m.simdUnmask, wasm: typeof WebAssembly, bad }))`
  const out = execFileSync(process.execPath, ['--jitless', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'ignore'] })
  t.deepEqual(JSON.parse(out.trim().split('\n').pop()!), { simd: false, wasm: 'undefined', bad: 0 })
})

