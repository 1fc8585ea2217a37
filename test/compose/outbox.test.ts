/**
 * Outbox (exported by wspipe): a bounded queue a connection's sink drains. push() never waits;
 * it returns false when full; end() lets the sink finish; a stopped sink ends the outbox.
 */

import test from 'ava'
import { DEFAULT_OUTBOX_LIMIT, InvalidStateError, isText, Outbox } from '../../src/index.js'
import { connectInMemory, take, text } from '../../src/testing.js'

test('push queues up to the limit, then returns false and queues nothing', (t) => {
  const outbox = new Outbox(2)
  t.true(outbox.push('a'))
  t.true(outbox.push('b'))
  t.false(outbox.push('c'))
  t.is(outbox.size, 2)
  t.is(new Outbox().limit, DEFAULT_OUTBOX_LIMIT)
})

test('a bad limit is a RangeError', (t) => {
  for (const limit of [0, -1, 1.5, Number.NaN]) t.throws(() => new Outbox(limit), { instanceOf: RangeError })
})

test('the iterator yields in order, waits when empty, ends after end() once drained', async (t) => {
  const outbox = new Outbox<number>(10)
  outbox.push(1)
  const it = outbox[Symbol.asyncIterator]()
  t.deepEqual(await it.next(), { done: false, value: 1 })
  const waiting = it.next()
  outbox.push(2)
  t.deepEqual(await waiting, { done: false, value: 2 }, 'a waiting reader gets the next push')
  outbox.push(3)
  outbox.end()
  t.true(outbox.ended)
  t.deepEqual(await it.next(), { done: false, value: 3 }, 'queued messages are still read after end()')
  t.deepEqual(await it.next(), { done: true, value: undefined })
  t.true(outbox.push(4), 'after the end a push is dropped, not refused')
  t.is(outbox.size, 0)
})

test('one sink only: a second iterator is an error', (t) => {
  const outbox = new Outbox()
  outbox[Symbol.asyncIterator]()
  t.throws(() => outbox[Symbol.asyncIterator](), { instanceOf: InvalidStateError, code: 'WS_ERR_INVALID_STATE', message: /one sink only/ })
})

test('as a sink\'s iterable: strings go as text, bytes as binary; end() lets the sink resolve', async (t) => {
  const client = await connectInMemory(({ source, sink }) => sink(source))
  const outbox = new Outbox()
  const sending = client.sink(outbox)
  outbox.push('hello')
  outbox.push(new Uint8Array([1]))
  const [a, b] = await take(client.source, 2)
  t.true(isText(a))
  t.is(text(a), 'hello')
  t.false(isText(b))
  outbox.end()
  await sending
  t.false(client.signal.aborted, 'the sink\'s end does not close the connection')
  client.close()
  await client.closed
})

test('when the connection closes, the sink stops and the outbox ends, dropping what was queued', async (t) => {
  const outbox = new Outbox()
  const c = await connectInMemory(async (conn) => { conn.close(4000) })
  const sending = c.sink(outbox)
  await c.closed
  await sending
  t.true(outbox.ended)
  t.true(outbox.push('late'))
  t.is(outbox.size, 0)
})

test('return() while a next() waits ends that next() at once (it held its reader until the next push)', async (t) => {
  const outbox = new Outbox<number>(10)
  const iterator = outbox[Symbol.asyncIterator]()
  const pending = iterator.next()
  await iterator.return!()
  t.deepEqual(await pending, { done: true, value: undefined })
})
