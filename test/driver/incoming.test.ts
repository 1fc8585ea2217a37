// The incoming queue on its own: cost per item, water marks, copying small views out.
import test from 'ava'
import { END, MessageSource, WAIT, type IncomingOwner } from '../../src/driver/incoming.js'
import { isText } from '../../src/text-mark.js'
import { ITEM_OVERHEAD } from '../../src/protocol/gather.js'
import { InvalidStateError } from '../../src/errors.js'

function owner (): IncomingOwner & { log: string[], dropWhenFull: boolean } {
  const log: string[] = []
  return {
    log,
    dropWhenFull: false,
    queueFull: (full) => { log.push(full ? 'full' : 'room') },
    onSourceDrained: () => { log.push('drained') },
    onSourceReturned: () => { log.push('returned') },
    wakeSink: () => { log.push('wake') },
    offerToSink: () => false,
    onQueueEmptied: () => { log.push('emptied') }
  }
}

test('empty messages cost ITEM_OVERHEAD each: the queue fills on count alone', (t) => {
  const o = owner()
  const q = new MessageSource(o, 10 * ITEM_OVERHEAD, 2 * ITEM_OVERHEAD)
  for (let i = 0; i < 11; i++) q.push(new Uint8Array(0), false)
  t.is(q.cost, 11 * ITEM_OVERHEAD)
  t.deepEqual(o.log, ['full'])
  for (let i = 0; i < 9; i++) q.poll()
  t.deepEqual(o.log, ['full', 'room'])
  t.is(q.taken, 9)
})

test('settle() copies queued small views out of their reads, keeping the text mark; large views stay', async (t) => {
  const q = new MessageSource(owner(), 1 << 20, 1 << 18)
  const read = new Uint8Array(65536)
  const small = read.subarray(0, 5)
  const big = read.subarray(0, 40000)
  q.push(small, true)
  q.push(big, false)
  q.settle()
  const a = (await q.next()).value as Uint8Array
  const b = q.poll() as Uint8Array
  t.not(a.buffer, read.buffer)
  t.is(a.buffer.byteLength, 5)
  t.true(isText(a), 'stamped when handed out by next()')
  t.is(b, big)
  t.false(q.lastText)
})

test('text marks are stamped when a message is handed out, not when polled by the own sink', async (t) => {
  const q = new MessageSource(owner(), 1 << 20, 1 << 18)
  const polled = new Uint8Array([1])
  q.push(polled, true)
  t.is(q.poll(), polled)
  t.true(q.lastText, 'poll() tells the sink through lastText')
  t.false(isText(polled), 'and leaves the message unmarked')
  const waiting = q.next()
  const handed = new Uint8Array([2])
  q.push(handed, true)
  t.is((await waiting).value, handed)
  t.true(isText(handed), 'a waiting reader gets it marked')
})

test('after our close, messages past the mark are dropped rather than reading paused', (t) => {
  const o = owner()
  o.dropWhenFull = true
  const q = new MessageSource(o, 2 * ITEM_OVERHEAD, 0)
  for (let i = 0; i < 5; i++) q.push(new Uint8Array(0), false)
  t.is(q.length, 2)
  t.deepEqual(o.log, [])
})

test('poll: WAIT then wake on push; END after end(); the error is thrown once', (t) => {
  const o = owner()
  const q = new MessageSource(o, 1 << 20, 1 << 18)
  t.is(q.poll(), WAIT)
  q.push(new Uint8Array([1]), false)
  t.true(o.log.includes('wake'))
  t.deepEqual([...(q.poll() as Uint8Array)], [1])
  q.end(new Error('boom'))
  t.throws(() => q.poll(), { message: 'boom' })
  t.is(q.poll(), END)
})

test('return() empties the queue, releases the pause and ends the source', async (t) => {
  const o = owner()
  const q = new MessageSource(o, ITEM_OVERHEAD, 0)
  q.push(new Uint8Array(10), false)
  q.push(new Uint8Array(10), false)
  await q.return()
  t.is(q.cost, 0)
  t.true(o.log.includes('room'))
  t.true(o.log.includes('returned'), 'the owner learns the consumer is done reading')
  t.deepEqual(await q.next(), { done: true, value: undefined })
})

test('an echo: while the own sink waits, a message is offered to it and never queued', (t) => {
  const offered: Uint8Array[] = []
  const o = { ...owner(), offerToSink: (m: Uint8Array) => { offered.push(m); return true } }
  const q = new MessageSource(o, 1 << 20, 1 << 18)
  t.is(q.poll(), WAIT)
  q.push(new Uint8Array([1]), false)
  q.push(new Uint8Array([2]), false)
  t.deepEqual(offered.map((m) => m[0]), [1, 2])
  t.is(q.length, 0)
  t.is(q.cost, 0)
  t.is(q.taken, 2)
})

test('return() ends a pending next(), and wakes a sink waiting on the source, which then polls END', async (t) => {
  const o = owner()
  const q = new MessageSource(o, 1 << 20, 1 << 18)
  const pending = q.next()
  t.is(q.poll(), WAIT)
  await q.return()
  t.true((await pending).done)
  t.true(o.log.includes('wake'), o.log.join(','))
  t.is(q.poll(), END)
})

test('a second next() while one is pending rejects with an InvalidStateError (WS_ERR_INVALID_STATE)', async (t) => {
  const q = new MessageSource(owner(), 1 << 20, 1 << 18)
  const pending = q.next()
  await t.throwsAsync(q.next(), { instanceOf: InvalidStateError, code: 'WS_ERR_INVALID_STATE', message: /pending/ })
  q.push(new Uint8Array([1]), false)
  t.deepEqual((await pending).value, new Uint8Array([1]))
})
