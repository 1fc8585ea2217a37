// Gatherer: memory held stays a small multiple of the bytes counted, whatever the part sizes.
import test from 'ava'
import { Gatherer, ITEM_OVERHEAD, KEEP_BY_REFERENCE } from '../../src/protocol/gather.js'

const alloc = (n: number): Uint8Array => new Uint8Array(n)

test('small parts are copied: none is a view of the buffer it came in', (t) => {
  const g = new Gatherer()
  const reads = Array.from({ length: 100 }, (_, i) => { const r = new Uint8Array(65536); r[10] = i; return r })
  for (const r of reads) g.append(r.subarray(10, 11))
  for (const part of g.parts) t.false(reads.some((r) => r.buffer === part.buffer))
  t.deepEqual([...g.join(alloc)], Array.from({ length: 100 }, (_, i) => i))
  t.true(g.held <= 100 + 1024 + ITEM_OVERHEAD, `held ${g.held}`)
})

test('a large part that is most of its buffer is kept by reference (zero-copy)', (t) => {
  const g = new Gatherer()
  const read = new Uint8Array(65536).fill(3)
  g.append(read)
  t.is(g.parts[0], read)
  t.is(g.join(alloc), read)
})

test('a large part that is a small view of a larger buffer is copied', (t) => {
  const g = new Gatherer()
  const read = new Uint8Array(16 * KEEP_BY_REFERENCE)
  g.append(read.subarray(0, KEEP_BY_REFERENCE))
  t.not(g.parts[0].buffer, read.buffer)
})

test('alternating 1-byte and 4096-byte parts of 64 KiB reads: held stays within 2x the bytes', (t) => {
  const g = new Gatherer()
  for (let i = 0; i < 200; i++) {
    const read = new Uint8Array(65536)
    g.append(read.subarray(0, i % 2 === 0 ? 1 : 4096))
  }
  t.is(g.bytes, 100 * 4097)
  t.true(g.held <= 2 * g.bytes, `held ${g.held} for ${g.bytes}`)
})

test('a tail is never larger than what is still expected', (t) => {
  const g = new Gatherer()
  g.append(new Uint8Array(1), 5)
  t.true(g.held <= 5 + ITEM_OVERHEAD)
})
