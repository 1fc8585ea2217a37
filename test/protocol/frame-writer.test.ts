/**
 * FrameWriter, the session's outbound side, on its own: small frames packed into a slab that is
 * reused across takes and grows by doubling, large payloads queued by reference from one past the
 * copy limit, §5.3 masking with a fresh key per frame (and across the parts of one frame), and
 * the queue's order and byte count.
 */

import test from 'ava'
import { FrameParser, Opcode, type Frame, type Role } from '../../src/protocol/index.js'
import { COPY_LIMIT, FrameWriter, SLAB_KEEP, SLAB_MAX, SLAB_MIN } from '../../src/protocol/frame-writer.js'
import { concat, naiveMask, utf8 } from './helpers.js'

/** A mask source that writes 1,2,3,4 then 5,6,7,8 and so on, and counts its calls. */
function countingMask (): { source: (key: Uint8Array) => void, keys: number[][] } {
  const keys: number[][] = []
  let n = 1
  return {
    keys,
    source: (key) => {
      const k = [n, n + 1, n + 2, n + 3]
      n += 4
      key.set(k)
      keys.push(k)
    }
  }
}

/** An allocator that records every size asked for. */
function countingAlloc (): { alloc: (size: number) => Uint8Array, sizes: number[] } {
  const sizes: number[] = []
  return { sizes, alloc: (size) => { sizes.push(size); return new Uint8Array(size) } }
}

/** Parse what a writer of `role` produced, as its peer would. */
function frames (role: Role, out: readonly Uint8Array[]): Frame[] {
  return new FrameParser({ role: role === 'server' ? 'client' : 'server', maxFrameSize: Infinity, allowedReservedBits: 0x40 }).push(concat(out))
}

function bytes (n: number, fill = 0x61): Uint8Array {
  return new Uint8Array(n).fill(fill)
}

test('small frames share one slab and leave as one array; the queue parses back to the frames, in order', (t) => {
  const w = new FrameWriter(false, undefined)
  w.frame(Opcode.Text, utf8('one'), true, false)
  w.frame(Opcode.Binary, utf8('two'), false, false)
  w.frame(Opcode.Continuation, utf8('three'), true, false)
  t.is(w.pending, 5 + 5 + 7)
  const out = w.take()
  t.is(out.length, 1, 'one slice of one slab')
  const parsed = frames('server', out)
  t.deepEqual(parsed.map((f) => [f.opcode, f.fin, new TextDecoder().decode(f.payload)]), [[Opcode.Text, true, 'one'], [Opcode.Binary, false, 'two'], [Opcode.Continuation, true, 'three']])
  t.is(w.pending, 0)
})

test('the slab is reused after a take while it has room, and taken slices are never written over', (t) => {
  const { alloc, sizes } = countingAlloc()
  const w = new FrameWriter(false, undefined, alloc)
  w.frame(Opcode.Text, utf8('first'), true, false)
  const [first] = w.take()
  const firstCopy = first.slice()
  w.frame(Opcode.Text, utf8('second'), true, false)
  const [second] = w.take()
  t.deepEqual(sizes, [SLAB_MIN], 'one slab for both')
  t.is(second.buffer, first.buffer)
  t.is(second.byteOffset, first.byteOffset + first.length, 'written after the taken bytes')
  t.deepEqual(first, firstCopy)
})

test('takenReleased: once nothing holds what take() returned, the next frames are written over it from the slab\'s start; not while anything is queued', (t) => {
  const { alloc, sizes } = countingAlloc()
  const w = new FrameWriter(false, undefined, alloc)
  w.frame(Opcode.Binary, utf8('first'), true, false)
  const [first] = w.take()
  w.takenReleased()
  w.frame(Opcode.Binary, utf8('again'), true, false)
  const [second] = w.take()
  t.is(second.buffer, first.buffer)
  t.is(second.byteOffset, first.byteOffset, 'the same bytes again')
  t.deepEqual(new FrameParser({ role: 'client' }).push(second).map((f) => new TextDecoder().decode(f.payload)), ['again'])
  // Not released: the next frame goes after it. Released once more is queued: too late, nothing moves.
  w.frame(Opcode.Binary, utf8('third'), true, false)
  w.takenReleased()
  w.frame(Opcode.Binary, utf8('fourth'), true, false)
  const [both] = w.take()
  t.is(both.byteOffset, second.byteOffset + second.length)
  t.deepEqual(new FrameParser({ role: 'client' }).push(both).map((f) => new TextDecoder().decode(f.payload)), ['third', 'fourth'])
  // Many batches, each released: one slab of the first size does for all of them.
  for (let i = 0; i < 1000; i++) {
    w.takenReleased()
    w.frame(Opcode.Binary, new Uint8Array(100), true, false)
    w.take()
  }
  t.deepEqual(sizes, [SLAB_MIN])
})

test(`a slab with less than ${SLAB_KEEP} bytes of room is let go at a take; one with exactly ${SLAB_KEEP} is kept`, (t) => {
  // A server frame of n ≤ 125 bytes takes n + 2 in the slab.
  const fill = (w: FrameWriter, room: number): void => {
    let left = SLAB_MIN - room
    while (left > 0) {
      const n = Math.min(125, left - 2)
      w.frame(Opcode.Binary, bytes(n), true, false)
      left -= n + 2
    }
  }
  for (const [room, kept] of [[SLAB_KEEP, true], [SLAB_KEEP - 1, false]] as const) {
    const { alloc, sizes } = countingAlloc()
    const w = new FrameWriter(false, undefined, alloc)
    fill(w, room)
    const taken = concat(w.take())
    t.is(taken.length, SLAB_MIN - room)
    w.frame(Opcode.Binary, bytes(1), true, false)
    t.is(sizes.length, kept ? 1 : 2, `room ${room}`)
  }
})

test(`slabs grow by doubling from ${SLAB_MIN} to ${SLAB_MAX} bytes and stop there; a frame larger than the next slab gets a slab its size`, (t) => {
  const { alloc, sizes } = countingAlloc()
  const w = new FrameWriter(false, undefined, alloc)
  for (let i = 0; i < 400; i++) w.frame(Opcode.Binary, bytes(1000), true, false)
  const expected = [SLAB_MIN, SLAB_MIN]
  while (expected[expected.length - 1] < SLAB_MAX) expected.push(expected[expected.length - 1] * 2)
  t.deepEqual(sizes.slice(0, expected.length), expected)
  t.true(sizes.slice(expected.length).every((s) => s === SLAB_MAX), sizes.join(','))
  t.is(concat(w.take()).length, 400 * 1004)

  const big = countingAlloc()
  const w2 = new FrameWriter(false, undefined, big.alloc)
  w2.frame(Opcode.Binary, bytes(4000), true, false)
  t.deepEqual(big.sizes, [4004])
})

test(`a frame of header and payload up to ${COPY_LIMIT} bytes is copied; one byte past, its payload is queued by reference`, (t) => {
  // 4 header bytes (the 16-bit length form) + 4092 = COPY_LIMIT.
  const atLimit = bytes(COPY_LIMIT - 4)
  const past = bytes(COPY_LIMIT - 3)
  t.false(FrameWriter.byReference(atLimit.length))
  t.true(FrameWriter.byReference(past.length))
  const w = new FrameWriter(false, undefined)
  w.frame(Opcode.Binary, atLimit, true, false)
  const copied = w.take()
  t.is(copied.length, 1)
  t.not(copied[0].buffer, atLimit.buffer)
  w.frame(Opcode.Binary, past, true, false)
  t.is(w.pending, 4 + past.length)
  const out = w.take()
  t.is(out.length, 2, 'the header, then the payload')
  t.is(out[1], past, 'the very object')
  t.deepEqual(frames('server', out)[0].payload, past)
})

test('a client masks every frame with a fresh key (§5.3) and never changes the caller\'s payload, small or large', (t) => {
  const { source, keys } = countingMask()
  const w = new FrameWriter(true, source)
  const small = utf8('hello')
  const large = bytes(COPY_LIMIT * 2, 0x5a)
  w.frame(Opcode.Text, small, true, false)
  w.frame(Opcode.Binary, large, true, false)
  w.frame(Opcode.Ping, new Uint8Array(0), true, false)
  const out = w.take()
  t.is(keys.length, 3, 'one key per frame')
  // The first frame on the wire: 2 header bytes, its key, then the masked payload.
  const wire = concat(out)
  t.deepEqual([...wire.subarray(2, 6)], keys[0])
  t.deepEqual(wire.subarray(6, 11), naiveMask(small, keys[0]))
  t.false(out.includes(large), 'a masked copy, not the payload')
  t.deepEqual(large, bytes(COPY_LIMIT * 2, 0x5a))
  t.deepEqual(small, utf8('hello'))
  const parsed = frames('client', out)
  t.deepEqual(parsed.map((f) => f.payload.length), [5, COPY_LIMIT * 2, 0])
  t.deepEqual(parsed[1].payload, large)
})

test('a client cannot write without a mask source; a server never masks', (t) => {
  t.throws(() => new FrameWriter(true, undefined), { instanceOf: TypeError })
  const w = new FrameWriter(false, undefined)
  w.frame(Opcode.Text, utf8('x'), true, false)
  const [out] = w.take()
  t.is(out[1] & 0x80, 0, 'no mask bit')
})

test('one frame from parts: one header, the parts as they are for a server, a masked copy whose key runs on across the parts for a client', (t) => {
  const parts = [utf8('abc'), utf8('defgh'), utf8('ij')]
  const server = new FrameWriter(false, undefined)
  server.parts(Opcode.Binary, parts, true)
  const sout = server.take()
  t.is(sout.length, 4)
  t.is(sout[1], parts[0])
  const [sf] = frames('server', sout)
  t.true(sf.fin && sf.rsv1)
  t.is(new TextDecoder().decode(sf.payload), 'abcdefghij')

  const { source, keys } = countingMask()
  const client = new FrameWriter(true, source)
  client.parts(Opcode.Binary, parts, false)
  const cout = client.take()
  t.is(keys.length, 1)
  t.deepEqual(concat(cout.slice(1)), naiveMask(utf8('abcdefghij'), keys[0]))
  t.deepEqual(parts.map((p) => new TextDecoder().decode(p)), ['abc', 'defgh', 'ij'])
})

test('a frame encoded elsewhere goes by reference between what the slab holds, in order; pending counts it', (t) => {
  const w = new FrameWriter(false, undefined)
  const encoded = concat([new Uint8Array([0x82, 0x03]), utf8('xyz')])
  w.frame(Opcode.Text, utf8('a'), true, false)
  w.encoded(encoded)
  w.frame(Opcode.Text, utf8('b'), true, false)
  t.is(w.pending, 3 + 5 + 3)
  const out = w.take()
  t.is(out.length, 3)
  t.is(out[1], encoded)
  t.deepEqual(frames('server', out).map((f) => new TextDecoder().decode(f.payload)), ['a', 'xyz', 'b'])
})

test('take with nothing queued returns a fresh empty array each time', (t) => {
  const w = new FrameWriter(false, undefined)
  const a = w.take()
  const b = w.take()
  t.deepEqual(a, [])
  t.not(a, b)
})

test('frameAt writes the same bytes as frame() for a payload given by its place in a larger array: every length 0-130 and across the copy limit, server and client', (t) => {
  const source = new Uint8Array(COPY_LIMIT + 64)
  for (let i = 0; i < source.length; i++) source[i] = (i * 7 + 3) & 0xff
  for (const masked of [false, true]) {
    const lengths = [...Array.from({ length: 131 }, (_, i) => i), COPY_LIMIT - 2, COPY_LIMIT + 1]
    for (const length of lengths) {
      const start = length % 13
      const byPlace = new FrameWriter(masked, masked ? countingMask().source : undefined)
      const byView = new FrameWriter(masked, masked ? countingMask().source : undefined)
      byPlace.frameAt(Opcode.Binary, source, start, start + length)
      byView.frame(Opcode.Binary, source.subarray(start, start + length), true, false)
      t.deepEqual(concat(byPlace.take()), concat(byView.take()), `length ${length}, ${masked ? 'client' : 'server'}`)
    }
  }
})

test('frameAt from several arrays in turn (views at an offset into larger buffers), over many slabs, writes the same bytes as frame()', (t) => {
  const backing = new Uint8Array(4096)
  for (let i = 0; i < backing.length; i++) backing[i] = (i * 11 + 5) & 0xff
  const sources = [backing.subarray(3, 1500), backing.subarray(1001), new Uint8Array(backing.buffer, 7, 999)]
  const byPlace = new FrameWriter(false, undefined)
  const byView = new FrameWriter(false, undefined)
  const placed: Uint8Array[] = []
  const viewed: Uint8Array[] = []
  // 600 frames of up to 200 bytes: past the first slabs' sizes, so frames land in fresh slabs.
  for (let i = 0; i < 600; i++) {
    const source = sources[i % sources.length]
    const length = (i * 37) % 201
    const start = (i * 13) % (source.length - length)
    byPlace.frameAt(Opcode.Binary, source, start, start + length)
    byView.frame(Opcode.Binary, source.subarray(start, start + length), true, false)
    if (i % 97 === 0) { placed.push(...byPlace.take()); viewed.push(...byView.take()) }
  }
  placed.push(...byPlace.take()); viewed.push(...byView.take())
  t.deepEqual(concat(placed), concat(viewed))
})

test('frameFrom writes the same bytes as frame() of the unmasked payload: every length 0-125, at every offset mod 4, masked with a key or not; a client writer, or a longer payload, still gets a correct frame', (t) => {
  const masked = new Uint8Array(300)
  for (let i = 0; i < masked.length; i++) masked[i] = (i * 7 + 3) & 0xff
  const view = new DataView(masked.buffer)
  for (const key of [0, 0x12345678, -0x5a5a5a5b]) {
    const keyBytes = [key >>> 24, (key >>> 16) & 0xff, (key >>> 8) & 0xff, key & 0xff]
    for (let length = 0; length <= 125; length++) {
      const start = length % 4 + 1
      // What a receiver unmasks (§5.3: octet i XOR key octet i mod 4).
      const plain = masked.slice(start, start + length).map((b, i) => b ^ keyBytes[i & 3])
      const from = new FrameWriter(false, undefined)
      const expected = new FrameWriter(false, undefined)
      from.frameFrom(Opcode.Binary, view, start, start + length, key)
      expected.frame(Opcode.Binary, plain, true, false)
      t.deepEqual(concat(from.take()), concat(expected.take()), `length ${length}, key ${key}`)
    }
    const plain = masked.slice(5, 205).map((b, i) => b ^ keyBytes[i & 3])
    const long = new FrameWriter(false, undefined)
    long.frameFrom(Opcode.Text, view, 5, 205, key)
    t.deepEqual(new FrameParser({ role: 'client' }).push(concat(long.take())).map((f) => f.payload), [plain])
    const client = new FrameWriter(true, countingMask().source)
    client.frameFrom(Opcode.Binary, view, 5, 40, key)
    t.deepEqual(new FrameParser({ role: 'server' }).push(concat(client.take())).map((f) => f.payload), [plain.subarray(0, 35)])
  }
})

test('take(max): at most max bytes, a chunk that crosses it cut; the rest stays queued, in order, and the next takes carry on where it stopped', (t) => {
  const w = new FrameWriter(false, undefined)
  w.frame(Opcode.Text, utf8('hi'), true, false)
  w.frame(Opcode.Binary, bytes(10_000, 0x62), true, false)
  w.frame(Opcode.Ping, utf8('p'), true, false)
  const total = w.pending
  t.is(total, 4 + 4 + 10_000 + 3)
  const taken: Uint8Array[][] = []
  for (let i = 0; i < 20 && w.pending > 0; i++) {
    const out = w.take(3000)
    t.true(out.reduce((n, c) => n + c.length, 0) <= 3000)
    taken.push(out)
  }
  t.is(taken.length, 4, '10,011 bytes in takes of at most 3,000')
  t.deepEqual(taken.map((out) => out.reduce((n, c) => n + c.length, 0)), [3000, 3000, 3000, total - 9000])
  t.deepEqual(frames('server', taken.flat()).map((f) => [f.opcode, f.payload.length]), [[Opcode.Text, 2], [Opcode.Binary, 10_000], [Opcode.Ping, 1]])
  t.true(frames('server', taken.flat())[1].payload.every((b) => b === 0x62))
  // Everything fits: one take, as without a limit.
  w.frame(Opcode.Text, utf8('x'), true, false)
  t.is(w.take(3000).reduce((n, c) => n + c.length, 0), 3)
  t.is(w.pending, 0)
})
