// StreamSource (stream mode's `source`) on its own, with a fake connection.
import test from 'ava'
import { ConnectionClosedError, MessageAbandonedError } from '../../src/errors.js'
import { ITEM_OVERHEAD } from '../../src/protocol/gather.js'
import { StreamSource, type StreamOwner } from '../../src/driver/streamed.js'

interface Fake extends StreamOwner {
  full: boolean[]
  drained: number
  dropWhenFull: boolean
}

function fake (): Fake {
  const o: Fake = {
    full: [],
    drained: 0,
    dropWhenFull: false,
    queueFull: (full) => { o.full.push(full) },
    onSourceDrained: () => { o.drained++ },
    onSourceReturned: () => {},
    onQueueEmptied: () => {},
    closingError: () => new ConnectionClosedError('the connection is closing', 1000)
  }
  return o
}

const bytes = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill)

async function readAll (chunks: AsyncIterable<Uint8Array>): Promise<number[]> {
  const sizes: number[] = []
  for await (const c of chunks) sizes.push(c.length)
  return sizes
}

test('chunks queue with their cost; past the high mark reading pauses, and resumes at the low mark as they are read', async (t) => {
  const o = fake()
  // The low mark sits between one and two queued chunks (each 1000 + overhead).
  const s = new StreamSource(o, 3000, 1000 + ITEM_OVERHEAD)
  s.push(bytes(1000), false, true, false)
  s.push(bytes(1000), false, false, false)
  t.deepEqual(o.full, [])
  s.push(bytes(1000), false, false, true)
  t.is(s.cost, 3000 + 3 * ITEM_OVERHEAD)
  t.deepEqual(o.full, [true])
  const { value: message } = await s.next()
  t.is(message!.type, 'binary')
  await message!.chunks.next()
  t.deepEqual(o.full, [true])
  await message!.chunks.next()
  t.deepEqual(o.full, [true, false], 'resumed once at most the low mark was left')
  t.deepEqual(await readAll(message!.chunks), [1000])
  t.is(message!.received, 3000)
  t.is(s.cost, 0)
})

test('asking for the next message abandons the rest of this one: its queued chunks go, later ones are dropped as they come, and reading it throws', async (t) => {
  const o = fake()
  const s = new StreamSource(o, 1 << 20, 1 << 18)
  s.push(bytes(10), true, true, false)
  s.push(bytes(20), true, false, false)
  const first = (await s.next()).value!
  t.is(first.type, 'text')
  const pending = s.next()
  t.is(s.cost, 0)
  // The rest of the first message, then a second one.
  s.push(bytes(30), true, false, false)
  s.push(bytes(40), true, false, true)
  t.is(s.cost, 0, 'the abandoned message is dropped as it arrives')
  s.push(bytes(5, 2), false, true, true)
  const second = (await pending).value!
  t.is(second.type, 'binary')
  t.deepEqual(await readAll(second.chunks), [5])
  await t.throwsAsync(first.chunks.next(), { instanceOf: MessageAbandonedError })
})

test('leaving the chunks loop early abandons the message; the next one comes whole', async (t) => {
  const o = fake()
  const s = new StreamSource(o, 1 << 20, 1 << 18)
  s.push(bytes(10), false, true, false)
  const m = (await s.next()).value!
  for await (const c of m.chunks) {
    t.is(c.length, 10)
    break
  }
  t.deepEqual(await m.chunks.next(), { done: true, value: undefined })
  s.push(bytes(10), false, false, true)
  s.push(bytes(7), false, true, false)
  s.push(bytes(8), false, false, true)
  t.deepEqual(await readAll((await s.next()).value!.chunks), [7, 8])
})

test('an empty message yields no chunk; empty chunks are skipped', async (t) => {
  const o = fake()
  const s = new StreamSource(o, 1 << 20, 1 << 18)
  s.push(new Uint8Array(0), true, true, true)
  s.push(new Uint8Array(0), false, true, false)
  s.push(bytes(3), false, false, false)
  s.push(new Uint8Array(0), false, false, true)
  t.deepEqual(await readAll((await s.next()).value!.chunks), [])
  t.deepEqual(await readAll((await s.next()).value!.chunks), [3])
})

test('a message cut short by the end of the connection throws; source then ends', async (t) => {
  const o = fake()
  const s = new StreamSource(o, 1 << 20, 1 << 18)
  s.push(bytes(4), false, true, false)
  const m = (await s.next()).value!
  t.is((await m.chunks.next()).value!.length, 4)
  const waiting = m.chunks.next()
  s.end()
  await t.throwsAsync(waiting, { instanceOf: ConnectionClosedError })
  t.true(o.drained > 0, 'the reader has seen the end')
  t.deepEqual(await s.next(), { done: true, value: undefined })
})

test('after our close, past the mark the source ends rather than drop a chunk from the middle of a message', async (t) => {
  const o = fake()
  o.dropWhenFull = true
  const s = new StreamSource(o, 3000, 1000)
  s.push(bytes(1000), false, true, false)
  s.push(bytes(1000), false, false, false)
  s.push(bytes(1000), false, false, false) // over the mark: the source ends here
  s.push(bytes(10), false, false, true)
  const m = (await s.next()).value!
  t.deepEqual((await m.chunks.next()).value!.length, 1000)
  t.deepEqual((await m.chunks.next()).value!.length, 1000)
  await t.throwsAsync(m.chunks.next(), { instanceOf: ConnectionClosedError })
  t.deepEqual(o.full, [], 'reading never paused: the peer\'s close must be read')
})

test('settle copies queued chunks that are small views of a larger read', async (t) => {
  const o = fake()
  const s = new StreamSource(o, 1 << 20, 1 << 18)
  const read = new Uint8Array(65536)
  s.push(read.subarray(0, 100), false, true, false)
  s.push(read.subarray(100, 65536), false, false, true)
  s.settle()
  const m = (await s.next()).value!
  const a = (await m.chunks.next()).value!
  const b = (await m.chunks.next()).value!
  t.not(a.buffer, read.buffer, 'the small view was copied out')
  t.is(b.buffer, read.buffer, 'the view that is most of the read stays')
})
