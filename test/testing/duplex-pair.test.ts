/**
 * wspipe/testing: duplexPair, two in-memory duplexes with no framing, for a handler's data flow.
 */

import test from 'ava'
import map from 'it-map'
import { pipe } from 'it-pipe'
import { InvalidStateError } from '../../src/index.js'
import { collect, duplexPair, take } from '../../src/testing.js'

test('what one end\'s sink consumes, the other end\'s source yields, in order; both directions', async (t) => {
  const [a, b] = duplexPair<string>()
  const [, , fromA, fromB] = await Promise.all([a.sink(['1', '2']), b.sink(['x']), collect(b.source), collect(a.source)])
  t.deepEqual(fromA, ['1', '2'])
  t.deepEqual(fromB, ['x'])
})

test('a handler piped over one end: pipe(end, map(f), end)', async (t) => {
  const [client, server] = duplexPair<string>()
  const handler = pipe(server, (source) => map(source, (s) => s.toUpperCase()), server)
  const [replies] = await Promise.all([collect(client.source), client.sink(['a', 'b', 'c'])])
  await handler
  t.deepEqual(replies, ['A', 'B', 'C'])
})

test('one item at a time: a sink waits until its item is taken', async (t) => {
  const [a, b] = duplexPair<number>()
  let pulled = 0
  const sending = a.sink((function * () {
    for (let i = 0; i < 100; i++) {
      pulled++
      yield i
    }
  })())
  await new Promise((resolve) => setImmediate(resolve))
  t.true(pulled <= 2, `pulled ${pulled} before anything was read`)
  t.deepEqual(await take(b.source, 3), [0, 1, 2])
  t.true(pulled <= 5, `pulled ${pulled} after 3 were read`)
  t.is((await collect(b.source)).length, 97)
  await sending
  t.is(pulled, 100)
})

test('a sink whose iterable throws: the other source yields what came before, then throws that error', async (t) => {
  const [a, b] = duplexPair<string>()
  const boom = new Error('producer failed')
  const sending = a.sink((async function * () {
    yield 'ok'
    throw boom
  })())
  const received: string[] = []
  const err = await t.throwsAsync(async () => { for await (const s of b.source) received.push(s) })
  t.is(err, boom)
  t.deepEqual(received, ['ok'])
  t.is(await sending.catch((e: unknown) => e), boom)
})

test('a reader that stops: the writing sink stops pulling, runs its finally and resolves', async (t) => {
  const [a, b] = duplexPair<number>()
  let cleanedUp = false
  let pulled = 0
  const sending = a.sink((async function * () {
    try {
      for (let i = 0; i < 1_000_000; i++) {
        pulled++
        yield i
      }
    } finally {
      cleanedUp = true
    }
  })())
  for await (const n of b.source) {
    if (n === 2) break
  }
  await sending
  t.true(cleanedUp)
  t.true(pulled < 10, `pulled ${pulled}`)
})

test('each end\'s sink may be called once', async (t) => {
  const [a, b] = duplexPair<number>()
  const first = a.sink([1])
  await t.throwsAsync(a.sink([2]), { instanceOf: InvalidStateError, code: 'WS_ERR_INVALID_STATE', message: /once/ })
  t.deepEqual(await collect(b.source), [1])
  await first
})

test('an empty sink ends the other source at once', async (t) => {
  const [a, b] = duplexPair<number>()
  await Promise.all([a.sink([]), collect(b.source).then((items) => t.deepEqual(items, []))])
})
