// Stream mode's source on its own, with a fake connection: chunks in order, the cost of the queue
// and its water marks, abandoning (return() and moving on), the end of the connection mid-message.
import test from 'ava'
import { ConnectionClosedError, MessageAbandonedError } from '../../src/errors.js'
import { claimForSending, StreamSource, type StreamOwner } from '../../src/driver/streamed.js'
import type { ReceivedStream } from '../../src/driver/types.js'
import { ITEM_OVERHEAD } from '../../src/protocol/gather.js'

interface Fake extends StreamOwner {
  full: boolean[]
  drained: number
  returned: number
  emptied: number
}

function fake (): Fake {
  const o: Fake = {
    full: [],
    drained: 0,
    returned: 0,
    emptied: 0,
    dropWhenFull: false,
    queueFull: (full) => { o.full.push(full) },
    onSourceDrained: () => { o.drained++ },
    onSourceReturned: () => { o.returned++ },
    onQueueEmptied: () => { o.emptied++ },
    closingError: () => new ConnectionClosedError('the connection is closing', 1000)
  }
  return o
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
const str = (b: Uint8Array | undefined): string => new TextDecoder().decode(b)

/** Read the rest of `chunks` as strings. */
async function rest (chunks: AsyncIterator<Uint8Array>): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < 1000; i++) {
    const r = await chunks.next()
    if (r.done === true) return out
    out.push(str(r.value))
  }
  throw new Error('too many chunks')
}

/** A source with the first chunk ('a') of a binary message queued, and that message opened. */
async function opened (): Promise<{ o: Fake, src: StreamSource, m: ReceivedStream }> {
  const o = fake()
  const src = new StreamSource(o, 1 << 20, 1 << 18)
  src.push(bytes('a'), false, true, false)
  const m = (await src.next()).value!
  return { o, src, m }
}

test('chunks come in order, typed by the first; received counts; an empty first chunk is skipped', async (t) => {
  const src = new StreamSource(fake(), 1 << 20, 1 << 18)
  src.push(new Uint8Array(0), true, true, false)
  src.push(bytes('ab'), true, false, false)
  src.push(bytes('cd'), true, false, true)
  src.push(bytes('xy'), false, true, true)
  const a = (await src.next()).value!
  t.is(a.type, 'text')
  t.deepEqual(await rest(a.chunks), ['ab', 'cd'])
  t.is(a.received, 4)
  t.deepEqual(await a.chunks.next(), { done: true, value: undefined })
  const b = (await src.next()).value!
  t.is(b.type, 'binary')
  t.deepEqual(await rest(b.chunks), ['xy'])
})

test('an empty message: its chunks end at once', async (t) => {
  const src = new StreamSource(fake(), 1 << 20, 1 << 18)
  src.push(new Uint8Array(0), false, true, true)
  const m = (await src.next()).value!
  t.is(m.type, 'binary')
  t.deepEqual(await rest(m.chunks), [])
  t.is(m.received, 0)
})

test('a waiting reader gets each chunk as it is pushed', async (t) => {
  const src = new StreamSource(fake(), 1 << 20, 1 << 18)
  const pending = src.next()
  src.push(bytes('1'), true, true, false)
  const m = (await pending).value!
  const c = m.chunks.next()
  src.push(bytes('2'), true, false, false)
  t.deepEqual(str((await c).value), '1')
  t.deepEqual(str((await m.chunks.next()).value), '2')
  const d = m.chunks.next()
  src.push(bytes('3'), true, false, true)
  t.is(str((await d).value), '3')
  t.true((await m.chunks.next()).done)
})

test('the queue costs bytes + ITEM_OVERHEAD per chunk; past the high mark reading pauses, at a quarter it resumes', async (t) => {
  const o = fake()
  const high = 4 * (100 + ITEM_OVERHEAD)
  const src = new StreamSource(o, high, high >>> 2)
  for (let i = 0; i < 5; i++) src.push(new Uint8Array(100), false, i === 0, i === 4)
  t.is(src.cost, 5 * (100 + ITEM_OVERHEAD))
  t.is(src.peak, src.cost)
  t.deepEqual(o.full, [true])
  const m = (await src.next()).value!
  for (let i = 0; i < 3; i++) await m.chunks.next()
  t.deepEqual(o.full, [true], 'still above a quarter')
  await m.chunks.next()
  t.deepEqual(o.full, [true, false])
  await m.chunks.next()
  t.is(src.cost, 0)
  t.true(o.emptied > 0)
})

test('return() on chunks drops the queued chunks and the ones still to come; the next message is intact', async (t) => {
  const o = fake()
  const src = new StreamSource(o, 1 << 20, 1 << 18)
  src.push(bytes('a1'), false, true, false)
  src.push(bytes('a2'), false, false, false)
  const a = (await src.next()).value!
  t.is(str((await a.chunks.next()).value), 'a1')
  await a.chunks.return!()
  t.is(src.cost, 0)
  src.push(bytes('a3'), false, false, false)
  src.push(bytes('a4'), false, false, true)
  t.is(src.cost, 0, 'the rest of an abandoned message is not queued')
  t.true((await a.chunks.next()).done, 'after return() the chunks just end')
  src.push(bytes('b1'), true, true, true)
  const b = (await src.next()).value!
  t.is(b.type, 'text')
  t.deepEqual(await rest(b.chunks), ['b1'])
  t.deepEqual(o.full, [])
})

test('source.next() abandons the current message: a pending and a later chunks.next() reject with MessageAbandonedError', async (t) => {
  const src = new StreamSource(fake(), 1 << 20, 1 << 18)
  src.push(bytes('a1'), false, true, false)
  const a = (await src.next()).value!
  await a.chunks.next()
  const pending = a.chunks.next()
  const b = src.next()
  await t.throwsAsync(pending, { instanceOf: MessageAbandonedError })
  await t.throwsAsync(a.chunks.next(), { instanceOf: MessageAbandonedError })
  src.push(bytes('a2'), false, false, true)
  src.push(bytes('b1'), true, true, true)
  const m = (await b).value!
  t.deepEqual(await rest(m.chunks), ['b1'])
})

test('the connection failing mid-message: the chunk reader gets the error (again if it asks again); source then ends, not throwing it twice', async (t) => {
  const src = new StreamSource(fake(), 1 << 20, 1 << 18)
  src.push(bytes('ok'), true, true, false)
  const m = (await src.next()).value!
  t.is(str((await m.chunks.next()).value), 'ok')
  const pending = m.chunks.next()
  const failure = new Error('1007')
  src.end(failure)
  t.is(await t.throwsAsync(pending), failure)
  t.is(await t.throwsAsync(m.chunks.next()), failure)
  t.true((await src.next()).done)
})

test('the connection failing mid-message, its chunks read later: they throw the error, and source ends', async (t) => {
  const src = new StreamSource(fake(), 1 << 20, 1 << 18)
  src.push(bytes('ok'), true, true, false)
  const m = (await src.next()).value!
  const failure = new Error('1009')
  src.end(failure)
  t.is(str((await m.chunks.next()).value), 'ok')
  t.is(await t.throwsAsync(m.chunks.next()), failure)
  t.true((await src.next()).done)
})

test('the connection failing with no chunks read: source throws the error once (moving on abandons the message), then ends', async (t) => {
  const src = new StreamSource(fake(), 1 << 20, 1 << 18)
  src.push(bytes('ok'), true, true, false)
  await src.next()
  const failure = new Error('1002')
  src.end(failure)
  t.is(await t.throwsAsync(src.next()), failure)
  t.true((await src.next()).done)
  // A next() already waiting gets it the same way.
  const waiting = new StreamSource(fake(), 1 << 20, 1 << 18)
  const pending = waiting.next()
  waiting.end(failure)
  t.is(await t.throwsAsync(pending), failure)
  t.true((await waiting.next()).done)
})

test('a clean close mid-message: queued chunks are still read, then the chunks reject with the closing error and source ends', async (t) => {
  const o = fake()
  const src = new StreamSource(o, 1 << 20, 1 << 18)
  src.push(bytes('q1'), false, true, false)
  src.push(bytes('q2'), false, false, false)
  src.end()
  const m = (await src.next()).value!
  t.is(str((await m.chunks.next()).value), 'q1')
  t.is(str((await m.chunks.next()).value), 'q2')
  const err = await t.throwsAsync(m.chunks.next(), { instanceOf: ConnectionClosedError })
  t.is((err as ConnectionClosedError).closeCode, 1000)
  t.true((await src.next()).done)
  t.true(o.drained > 0)
})

test('chunks.next() while one is pending rejects; so does source.next() while one is pending', async (t) => {
  const src = new StreamSource(fake(), 1 << 20, 1 << 18)
  const first = src.next()
  await t.throwsAsync(src.next(), { message: /pending/ })
  src.push(bytes('x'), false, true, false)
  const m = (await first).value!
  await m.chunks.next()
  const pending = m.chunks.next()
  await t.throwsAsync(m.chunks.next(), { message: /pending/ })
  src.push(bytes('y'), false, false, true)
  t.is(str((await pending).value), 'y')
})

test('source.return() mid-message: done reading, later chunks ignored, the owner told once', async (t) => {
  const o = fake()
  const src = new StreamSource(o, 1 << 20, 1 << 18)
  src.push(bytes('a'), false, true, false)
  const m = (await src.next()).value!
  await src.return()
  await src.return()
  t.is(o.returned, 1)
  t.true(src.detached)
  src.push(bytes('b'), false, false, true)
  t.is(src.cost, 0)
  t.true((await src.next()).done)
  await t.throwsAsync(m.chunks.next(), { instanceOf: MessageAbandonedError })
})

test('source.return() while the current message is being sent (claimForSending): it finishes, the messages after it are dropped, then the owner is told', async (t) => {
  const { o, src, m } = await opened()
  claimForSending(m)
  t.is(str((await m.chunks.next()).value), 'a')
  src.push(bytes('b'), false, false, false)
  // Already queued: the rest of this message, then another message; dropped past this one's end.
  src.push(bytes('c'), false, false, true)
  src.push(bytes('later'), false, true, true)
  await src.return()
  t.is(o.returned, 0, 'not yet: the message is still being read')
  t.true((await src.next()).done)
  t.is(src.cost, 2 * (1 + ITEM_OVERHEAD))
  src.push(bytes('more later'), true, true, true)
  t.is(src.cost, 2 * (1 + ITEM_OVERHEAD), 'nothing past the message is queued')
  t.deepEqual(await rest(m.chunks), ['b', 'c'])
  t.is(o.returned, 1)
  t.true(src.detached)
  t.is(src.cost, 0)
})

test('source.return() while a message handed to send() is still arriving: left by chunks.return() (the send stopped), the source detaches', async (t) => {
  const { o, src, m } = await opened()
  claimForSending(m)
  await m.chunks.next()
  await src.return()
  t.is(o.returned, 0)
  await m.chunks.return!()
  t.is(o.returned, 1)
  t.true(src.detached)
})

test('source.return() while a next() is pending: that next() ends', async (t) => {
  const src = new StreamSource(fake(), 1 << 20, 1 << 18)
  const pending = src.next()
  await src.return()
  t.true((await pending).done)
})

test('settle(): a small queued view of a large read is copied out, so it does not pin the read', async (t) => {
  const src = new StreamSource(fake(), 1 << 20, 1 << 18)
  const read = new Uint8Array(65536)
  read.set(bytes('small'), 100)
  src.push(read.subarray(100, 105), false, true, false)
  src.push(read.subarray(0, 60000), false, false, true)
  src.settle()
  const m = (await src.next()).value!
  const small = (await m.chunks.next()).value!
  t.is(str(small), 'small')
  t.is(small.buffer.byteLength, 5)
  const large = (await m.chunks.next()).value!
  t.is(large.buffer, read.buffer, 'most of the read: handed out as a view')
})

test('after our close, past the mark the source ends rather than drop a chunk from the middle of a message', async (t) => {
  const o = fake()
  ;(o as { dropWhenFull: boolean }).dropWhenFull = true
  const s = new StreamSource(o, 3000, 1000)
  const kib = (): Uint8Array => new Uint8Array(1000)
  s.push(kib(), false, true, false)
  s.push(kib(), false, false, false)
  s.push(kib(), false, false, false) // over the mark: the source ends here
  s.push(new Uint8Array(10), false, false, true)
  const m = (await s.next()).value!
  t.is((await m.chunks.next()).value!.length, 1000)
  t.is((await m.chunks.next()).value!.length, 1000)
  await t.throwsAsync(m.chunks.next(), { instanceOf: ConnectionClosedError })
  t.deepEqual(o.full, [], 'reading never paused: the peer\'s close must be read')
})

test('source.return() while a chunk read is pending: once the message has all arrived, reading pauses until it is taken (a reader that stops then has the paused state\'s end)', async (t) => {
  const { o, src, m } = await opened()
  t.is(str((await m.chunks.next()).value), 'a')
  const pending = m.chunks.next()
  await src.return()
  t.deepEqual(o.full, [])
  src.push(bytes('b'), false, false, false)
  t.is(str((await pending).value), 'b')
  src.push(bytes('c'), false, false, true)
  t.deepEqual(o.full, [true], 'the message is all here: reading pauses')
  src.push(bytes('next'), false, true, true)
  t.is(src.cost, 1 + ITEM_OVERHEAD, 'what follows is dropped')
  t.is(o.returned, 0)
  t.deepEqual(await rest(m.chunks), ['c'])
  t.deepEqual(o.full, [true, false], 'taken: reading resumes')
  t.is(o.returned, 1)
})

test('source.return() with a message peeked but no read pending: it is abandoned at once', async (t) => {
  const { o, src, m } = await opened()
  await m.chunks.next()
  await src.return()
  t.is(o.returned, 1)
  t.true(src.detached)
  await t.throwsAsync(m.chunks.next(), { instanceOf: MessageAbandonedError })
})
