// The in-memory link under connectInMemory, on its own: copies, backpressure, end each way,
// destroy each way, and the order of events, as a TCP socket shows them to the driver.
import test from 'ava'
import { MemoryTransport, RECEIVE_WINDOW, WRITE_HIGH_WATER } from '../../src/memory-transport.js'

/** Let the event loop turn `n` times (bounded). */
async function turns (n = 10): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve))
}

/** Record every event of `end` as `name:event` (with an error's code), and the bytes it reads. */
function record (end: MemoryTransport, name: string, log: string[]): { bytes: () => number[] } {
  const got: number[] = []
  end.on('data', (chunk: Uint8Array) => { got.push(...chunk) })
  for (const event of ['end', 'finish', 'drain', 'close'] as const) end.on(event, () => log.push(`${name}:${event}`))
  end.on('error', (err: Error & { code?: string }) => log.push(`${name}:error:${err.code ?? err.message}`))
  return { bytes: () => got }
}

test('bytes arrive on a later turn, copied: the receiver may change them in place, and a corked batch is one chunk', async (t) => {
  const [a, b] = MemoryTransport.pair()
  const chunks: Uint8Array[] = []
  b.on('data', (chunk: Uint8Array) => { chunks.push(chunk) })
  const sent = new Uint8Array([1, 2, 3])
  a.write(sent)
  t.is(chunks.length, 0, 'not within write()')
  await turns()
  t.deepEqual(chunks.map((c) => [...c]), [[1, 2, 3]])
  chunks[0][0] = 9
  t.deepEqual([...sent], [1, 2, 3], 'the sender\'s bytes are its own')
  a.cork()
  a.write(new Uint8Array([4]))
  a.write(new Uint8Array([5, 6]))
  a.uncork()
  await turns()
  t.deepEqual(chunks.map((c) => [...c]), [[9, 2, 3], [4, 5, 6]], 'the batch in one chunk, in order')
})

test('backpressure: a paused end takes in its window, the rest stays in the writer\'s writableLength; write() says when to stop; drain once all is taken', async (t) => {
  const [a, b] = MemoryTransport.pair()
  const log: string[] = []
  const { bytes } = record(b, 'b', log)
  record(a, 'a', log)
  b.pause()
  const piece = 8 * 1024
  const total = RECEIVE_WINDOW + WRITE_HIGH_WATER + 4 * piece
  const answers: boolean[] = []
  let called = 0
  for (let at = 0; at < total; at += piece) answers.push(a.write(new Uint8Array(piece).fill(at / piece), () => { called++ }))
  t.is(answers.indexOf(false), WRITE_HIGH_WATER / piece - 1, 'false once the queue reaches the high-water mark')
  await turns(20)
  t.is(bytes().length, 0, 'nothing read while paused')
  t.is(a.writableLength, total - RECEIVE_WINDOW, 'the window taken in, the rest still queued')
  t.is(called, RECEIVE_WINDOW / piece, 'callbacks for what was taken in only')
  t.deepEqual(log, [], 'no drain yet')
  b.resume()
  await turns(20)
  t.is(bytes().length, total)
  t.deepEqual(bytes().filter((_, i) => i % piece === 0), Array.from({ length: total / piece }, (_, i) => i), 'in order')
  t.is(a.writableLength, 0)
  t.is(called, total / piece)
  t.deepEqual(log, ['a:drain'], 'one drain')
})

test('no drain when write() never said false', async (t) => {
  const [a, b] = MemoryTransport.pair()
  const log: string[] = []
  record(a, 'a', log)
  record(b, 'b', log)
  t.true(a.write(new Uint8Array(100)))
  await turns()
  t.deepEqual(log, [])
})

for (const first of ['a', 'b'] as const) {
  test(`end() from ${first}: queued bytes first, then the peer's end; it ends its side too; finish, end and close once each, in order`, async (t) => {
    const pair = MemoryTransport.pair()
    const [x, y] = first === 'a' ? pair : [pair[1], pair[0]]
    const log: string[] = []
    const { bytes } = record(y, 'peer', log)
    record(x, 'first', log)
    x.write(new Uint8Array([1, 2]))
    x.end()
    t.true(x.writableEnded)
    await turns()
    t.deepEqual(bytes(), [1, 2])
    // Each closes once both its ways are done: the peer as its end goes out, the first as it arrives.
    t.deepEqual(log, ['first:finish', 'peer:end', 'peer:finish', 'first:end', 'peer:close', 'first:close'])
    t.true(x.destroyed && y.destroyed)
    t.true(x.readableEnded && y.readableEnded && x.writableFinished && y.writableFinished)
  })
}

test('an end that reaches a paused peer waits, as the bytes before it do, until the peer reads', async (t) => {
  const [a, b] = MemoryTransport.pair()
  const log: string[] = []
  const { bytes } = record(b, 'b', log)
  record(a, 'a', log)
  b.pause()
  a.write(new Uint8Array([7]))
  a.end()
  await turns()
  t.deepEqual(log, ['a:finish'])
  t.deepEqual(bytes(), [])
  b.resume()
  await turns()
  t.deepEqual(bytes(), [7])
  t.deepEqual(log, ['a:finish', 'b:end', 'b:finish', 'a:end', 'b:close', 'a:close'])
})

test('the peer\'s writes meanwhile still go out before its own end (no half-open: it ends on the next tick)', async (t) => {
  const [a, b] = MemoryTransport.pair()
  const log: string[] = []
  const fromB = record(a, 'a', log)
  b.on('end', () => { b.write(new Uint8Array([42])) })
  record(b, 'b', log)
  a.end()
  await turns()
  t.deepEqual(fromB.bytes(), [42], 'written in its end handler, delivered before its end')
  t.deepEqual(log, ['a:finish', 'b:end', 'b:finish', 'a:end', 'b:close', 'a:close'])
})

for (const first of ['a', 'b'] as const) {
  test(`destroy(error) of ${first}: its error and close; queued callbacks fail; the peer sees a reset (ECONNRESET, close, no end)`, async (t) => {
    const pair = MemoryTransport.pair()
    const [x, y] = first === 'a' ? pair : [pair[1], pair[0]]
    const log: string[] = []
    record(x, 'x', log)
    record(y, 'y', log)
    y.pause()
    const results: unknown[] = []
    // More than the peer's window: some of it is still queued here.
    for (let i = 0; i < 10; i++) x.write(new Uint8Array(RECEIVE_WINDOW / 4), (err) => { results.push((err as { code?: string } | null | undefined)?.code ?? 'ok') })
    await turns()
    x.destroy(new Error('boom'))
    t.true(x.destroyed)
    t.is(x.writableLength, 0)
    await turns()
    t.deepEqual(results, [...Array(4).fill('ok'), ...Array(6).fill('ERR_STREAM_DESTROYED')])
    t.deepEqual(log, ['x:error:boom', 'x:close', 'y:error:ECONNRESET', 'y:close'])
    t.true(y.destroyed)
  })

  test(`destroy() of ${first} with nothing unread: the peer sees the end of the stream, not an error, and goes too`, async (t) => {
    const pair = MemoryTransport.pair()
    const [x, y] = first === 'a' ? pair : [pair[1], pair[0]]
    const log: string[] = []
    record(x, 'x', log)
    const { bytes } = record(y, 'y', log)
    x.write(new Uint8Array([1]))
    await turns()
    x.destroy()
    await turns()
    t.deepEqual(bytes(), [1])
    t.deepEqual(log, ['x:close', 'y:end', 'y:finish', 'y:close'])
  })

  test(`destroy() of ${first} with bytes it never read: the peer sees a reset`, async (t) => {
    const pair = MemoryTransport.pair()
    const [x, y] = first === 'a' ? pair : [pair[1], pair[0]]
    const log: string[] = []
    record(x, 'x', log)
    record(y, 'y', log)
    x.pause()
    y.write(new Uint8Array([1]))
    await turns()
    x.destroy()
    await turns()
    t.deepEqual(log, ['x:close', 'y:error:ECONNRESET', 'y:close'])
  })
}

test('a write to an end that is gone fails with EPIPE (after the end of the stream it saw)', async (t) => {
  const [a, b] = MemoryTransport.pair()
  const log: string[] = []
  record(a, 'a', log)
  record(b, 'b', log)
  b.destroy()
  let failed: string | undefined
  a.write(new Uint8Array([1]), (err) => { failed = (err as { code?: string } | null | undefined)?.code })
  await turns()
  t.is(failed, 'ERR_STREAM_DESTROYED')
  t.deepEqual(log, ['b:close', 'a:end', 'a:error:EPIPE', 'a:close'])
})

test('a write after end() fails, and destroys the end, as a stream does', async (t) => {
  const [a, b] = MemoryTransport.pair()
  const log: string[] = []
  record(a, 'a', log)
  record(b, 'b', log)
  b.pause()
  a.end()
  let failed: string | undefined
  t.false(a.write(new Uint8Array([1]), (err) => { failed = (err as { code?: string } | null | undefined)?.code }))
  await turns()
  t.is(failed, 'ERR_STREAM_WRITE_AFTER_END')
  // Destroyed with an error: the peer sees a reset, paused or not.
  t.deepEqual(log, ['a:error:ERR_STREAM_WRITE_AFTER_END', 'a:close', 'b:error:ECONNRESET', 'b:close'])
})

test('what arrives before a data listener is kept for it', async (t) => {
  const [a, b] = MemoryTransport.pair()
  a.write(new Uint8Array([5]))
  await turns()
  const got: number[] = []
  b.on('data', (chunk: Uint8Array) => { got.push(...chunk) })
  await turns(2)
  t.deepEqual(got, [5])
})
