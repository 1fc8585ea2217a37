/**
 * wspipe/testing: connectInMemory runs a handler against an in-memory client through the real
 * framing and closing code, so a test sees what a peer would: message types, close codes, 1011
 * when the handler throws (the error kept in `client.errors`, never sent), limits.
 */

import test from 'ava'
import { CloseCode, ConnectionClosedError, isText, ProtocolError, type Connection, type Logger } from '../../src/index.js'
import { collect, connectInMemory, take, text } from '../../src/testing.js'

const echo = ({ source, sink }: Connection): Promise<void> => sink(source)

test('echo: strings come back as text, bytes as binary, empty ones too, one message per item', async (t) => {
  const client = await connectInMemory(echo)
  await client.sink(['hello', new Uint8Array([1, 2]), '', new Uint8Array(0)])
  const [a, b, c, d] = await take(client.source, 4)
  t.true(isText(a))
  t.is(text(a), 'hello')
  t.false(isText(b))
  t.deepEqual([...b], [1, 2])
  t.true(isText(c))
  t.is(c.length, 0)
  t.false(isText(d))
  t.is(d.length, 0)
  client.close()
  t.deepEqual(await client.closed, { code: 1000, reason: '', wasClean: true })
  t.deepEqual(client.errors, [])
})

test('a large message goes through the real framing whole', async (t) => {
  const client = await connectInMemory(echo)
  const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => i * 7)
  await client.sink([big])
  const [m] = await take(client.source, 1)
  t.is(m.length, big.length)
  t.true(Buffer.from(m.buffer, m.byteOffset, m.length).equals(big), 'same bytes')
  client.close()
  await client.closed
})

test('take() leaves the source open: it can be read again', async (t) => {
  const client = await connectInMemory(echo)
  await client.sink(['1', '2', '3'])
  t.deepEqual(text(await take(client.source, 2)), ['1', '2'])
  t.deepEqual(text(await take(client.source, 1)), ['3'])
  client.close()
  t.deepEqual(await take(client.source, 5), [], 'fewer than asked once the source ends')
})

test('the handler returning closes with 1000 once the client has read its messages', async (t) => {
  const client = await connectInMemory(async ({ sink }) => { await sink(['bye']) })
  t.deepEqual(text(await collect(client.source)), ['bye'])
  t.deepEqual(await client.closed, { code: 1000, reason: '', wasClean: true })
  t.deepEqual(await client.server.closed, { code: 1000, reason: '', wasClean: true })
})

test('a synchronous handler that returns nothing closes with 1000 at once', async (t) => {
  const client = await connectInMemory(() => {})
  t.deepEqual(await collect(client.source), [])
  t.is((await client.closed).code, 1000)
})

test('a handler that throws: 1011, the error captured in client.errors and not sent', async (t) => {
  const boom = new Error('secret database password in here')
  const client = await connectInMemory(() => { throw boom })
  t.deepEqual(await collect(client.source), [])
  const closed = await client.closed
  t.is(closed.code, CloseCode.InternalError)
  t.is(closed.reason, '', 'the error is not sent to the peer')
  t.deepEqual(client.errors, [boom])
})

test('a handler that rejects after some messages: they arrive, then 1011', async (t) => {
  const client = await connectInMemory(async ({ source, sink }) => {
    await sink((async function * () {
      for await (const m of source) {
        if (text(m) === 'fail') throw new Error('asked to fail')
        yield m
      }
    })())
  })
  await client.sink(['a', 'b', 'fail'])
  t.deepEqual(text(await collect(client.source)), ['a', 'b'])
  t.is((await client.closed).code, 1011)
  t.is(client.errors.length, 1)
  t.is((client.errors[0] as Error).message, 'asked to fail')
})

test('errors go to a given logger too, and are still captured', async (t) => {
  const logged: unknown[] = []
  const logger: Logger = { error: (obj) => logged.push(obj), warn: () => {}, info: () => {}, debug: () => {} }
  const boom = new Error('x')
  const client = await connectInMemory(async () => { throw boom }, { logger })
  await collect(client.source)
  await client.closed
  t.deepEqual(client.errors, [boom])
  t.is(logged.length, 1)
  t.is((logged[0] as { err: unknown }).err, boom)
})

test('the client closing with a code: the handler\'s source ends and the server side sees that code', async (t) => {
  let handlerSawEnd = false
  const client = await connectInMemory(async ({ source }) => {
    for await (const _ of source) { /* drain */ }
    handlerSawEnd = true
  })
  client.close(4000, 'done here')
  t.deepEqual(await client.closed, { code: 4000, reason: 'done here', wasClean: true })
  t.deepEqual(await client.server.closed, { code: 4000, reason: 'done here', wasClean: true })
  t.true(handlerSawEnd)
})

test('the handler closing with its own code', async (t) => {
  const client = await connectInMemory((conn) => { conn.close(4403, 'not allowed') })
  t.deepEqual(await collect(client.source), [])
  t.deepEqual(await client.closed, { code: 4403, reason: 'not allowed', wasClean: true })
})

test('when the connection closes, the sink stops and the handler\'s generator runs its finally', async (t) => {
  let cleanedUp = false
  let produced = 0
  const client = await connectInMemory(async ({ source, sink }) => {
    // The handler reads its source too (it ends with the peer's close), as a pipe() handler does.
    const reading = collect(source)
    await sink((async function * () {
      try {
        for (let i = 0; i < 1_000_000; i++) {
          produced++
          yield `tick ${i}`
        }
      } finally {
        cleanedUp = true
      }
    })())
    await reading
  })
  const first = await take(client.source, 3)
  t.deepEqual(text(first), ['tick 0', 'tick 1', 'tick 2'])
  client.close()
  // What the handler sent before our close arrived is still delivered; the source ends with its answer.
  await collect(client.source)
  t.deepEqual(await client.closed, { code: 1000, reason: '', wasClean: true })
  await client.server.closed
  t.true(cleanedUp, 'finally ran')
  t.true(produced < 1_000_000, 'the generator was not drained')
})

test('maxMessageSize: one byte over fails with 1009; the handler\'s source throws a ProtocolError, not logged as a handler bug', async (t) => {
  let handlerError: unknown
  const received: string[] = []
  const client = await connectInMemory(async ({ source }) => {
    try {
      for await (const m of source) received.push(text(m))
    } catch (err) {
      handlerError = err
      throw err
    }
  }, { maxMessageSize: 1024 })
  await client.sink(['x'.repeat(1024), 'y'.repeat(1025)])
  const closed = await client.closed
  t.is(closed.code, CloseCode.MessageTooBig)
  t.deepEqual(received, ['x'.repeat(1024)], 'the message at the limit was delivered')
  t.true(handlerError instanceof ProtocolError)
  t.is((handlerError as ProtocolError).closeCode, 1009)
  t.deepEqual(client.errors, [], 'the peer\'s fault is not a handler error')
})

test('maxMessageSize also limits what the in-memory client accepts', async (t) => {
  const client = await connectInMemory(({ sink }) => sink(['z'.repeat(2048)]), { maxMessageSize: 1024 })
  const err = await t.throwsAsync(collect(client.source), { instanceOf: ProtocolError })
  t.is(err?.closeCode, 1009)
  t.is((await client.closed).code, 1009)
})

test('maxFragments and maxFrameSize are the real limits (options pass through)', async (t) => {
  const client = await connectInMemory(echo, { maxFrameSize: 100 })
  await client.sink(['a'.repeat(101)])
  t.is((await client.closed).code, 1009)
})

test('the handler sees protocol, url, path and headers', async (t) => {
  let seen: Pick<Connection, 'protocol' | 'url' | 'path' | 'headers'> | undefined
  const client = await connectInMemory((conn) => { seen = { protocol: conn.protocol, url: conn.url, path: conn.path, headers: conn.headers } }, {
    protocol: 'chat', url: '/room/1?name=ann', headers: { authorization: 'Bearer x' }
  })
  await collect(client.source)
  await client.closed
  t.deepEqual(seen, { protocol: 'chat', url: '/room/1?name=ann', path: '/room/1', headers: { authorization: 'Bearer x' } })
  t.is(client.protocol, 'chat')
})

test('client.server is the handler\'s connection: its signal aborts on close', async (t) => {
  let handlerConn: Connection | undefined
  const client = await connectInMemory(async (conn) => {
    handlerConn = conn
    await new Promise((resolve) => conn.signal.addEventListener('abort', resolve))
  })
  t.true(client.server === handlerConn, 'the same object')
  t.false(client.server.signal.aborted)
  client.close()
  await client.closed
  t.true(client.server.signal.aborted)
})

test('ping from either side resolves with a round-trip time', async (t) => {
  const client = await connectInMemory(async (conn) => { await conn.ping(); await collect(conn.source) })
  t.true(await client.ping(new Uint8Array([1])) >= 0)
  client.close()
  await client.closed
})

test('the in-memory link has backpressure: a handler that does not read makes the client\'s sink wait', async (t) => {
  let release!: () => void
  const released = new Promise<void>((resolve) => { release = resolve })
  let serverReceived = 0
  const client = await connectInMemory(async ({ source }) => {
    await released
    for await (const _ of source) serverReceived++
  }, { receiveHighWaterMark: 64 * 1024, sendHighWaterMark: 64 * 1024 })
  let pulled = 0
  const chunk = new Uint8Array(16 * 1024)
  const sending = client.sink((function * () {
    for (let i = 0; i < 1000; i++) {
      pulled++
      yield chunk
    }
  })())
  let waited = 0
  // Let the link fill up: bounded steps, each one macrotask.
  while (waited < 200 && !(client.server.stats().pauses > 0 && client.stats().queuedOutBytes >= 64 * 1024)) {
    await new Promise((resolve) => setImmediate(resolve))
    waited++
  }
  t.true(client.server.stats().pauses > 0, 'the server side paused reading')
  t.true(pulled < 1000, `the client's sink stopped pulling (pulled ${pulled})`)
  release()
  await sending
  client.close()
  await client.closed
  t.is(serverReceived, 1000)
})

test('a reset of the in-memory link: 1006, the source throws', async (t) => {
  const client = await connectInMemory(async ({ source }) => { for await (const _ of source) { /* wait */ } })
  const reading = collect(client.source)
  ;(client as unknown as { terminate: () => void }).terminate()
  t.deepEqual(await client.closed, { code: 1006, reason: '', wasClean: false })
  await t.throwsAsync(reading, { instanceOf: ConnectionClosedError })
  t.is((await client.server.closed).code, 1006)
})
