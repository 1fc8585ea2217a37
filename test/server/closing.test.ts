/**
 * "Closing, precisely": each row of the table in DESIGN.md, seen from both ends.
 */

import test from 'ava'
import { CloseCode, ConnectionClosedError, ProtocolError, type CloseInfo, type Connection } from '../../src/index.js'
import { VirtualClock } from '../../src/testing.js'
import { clientFrame, closePayload, echo, nextRead, RawClient, sleep, startServer, until, watch, within, WsPeer } from './helpers.js'

/** A handler that records its connection and then runs `body`; `done` settles when the handler has returned. */
function recording (body: (c: Connection) => void | Promise<void>): { handler: (c: Connection) => void | Promise<void>, conn: () => Promise<Connection>, done: () => Promise<void> } {
  let resolve!: (c: Connection) => void
  const p = new Promise<Connection>((r) => { resolve = r })
  let finished: Promise<void> | undefined
  return {
    handler: (c) => {
      resolve(c)
      const ran = (async () => { await body(c) })()
      finished = ran.catch(() => {})
      return ran
    },
    conn: () => within(p, 5000, 'handler called'),
    done: async () => { await within(p, 5000, 'handler called'); await within(finished!, 5000, 'the handler to return') }
  }
}

/** A ping and its pong: the server has handled everything the peer sent before, and was open to answer. */
async function roundTrip (peer: WsPeer): Promise<void> {
  await within(new Promise<void>((resolve) => { peer.ws.once('pong', () => resolve()); peer.ws.ping() }), 5000, 'the pong')
}

for (const style of ['throws synchronously', 'rejects']) {
  test(`a handler that ${style} → 1011, logged with protocol and address, not sent, next connection served`, async (t) => {
    let calls = 0
    const { url, entries } = await startServer(t, {
      chat: (c) => {
        if (calls++ > 0) return echo(c)
        if (style === 'rejects') return Promise.reject(new Error('secret: db password'))
        throw new Error('secret: db password')
      }
    })
    const peer = new WsPeer(url, 'chat')
    const closed = await within(peer.closed, 5000, 'close')
    t.is(closed.code, 1011)
    t.is(closed.reason, '', 'the error message is never sent')
    const logged = entries.filter((e) => e.level === 'error')
    t.is(logged.length, 1)
    t.is(logged[0].obj.err.message, 'secret: db password')
    t.is(logged[0].obj.protocol, 'chat')
    t.is(logged[0].obj.remoteAddress, '127.0.0.1')

    const next = await WsPeer.open(url, 'chat')
    await next.send('again')
    t.is((await next.next()).data.toString(), 'again')
    await next.close(1000)
  })
}

test('a handler that throws: conn.closed settles 1011', async (t) => {
  const rec = recording(async () => { throw new Error('boom') })
  const { url } = await startServer(t, { '': rec.handler })
  const peer = new WsPeer(url)
  const conn = await rec.conn()
  const info = await within(conn.closed, 5000, 'closed')
  t.is(info.code, 1011)
  t.is((await peer.closed).code, 1011)
})

test('a handler that returns synchronously → 1000, clean', async (t) => {
  const rec = recording(() => {})
  const { url } = await startServer(t, { '': rec.handler })
  const peer = new WsPeer(url)
  t.deepEqual(await within(peer.closed, 5000, 'close'), { code: 1000, reason: '' })
  t.deepEqual(await (await rec.conn()).closed, { code: 1000, reason: '', wasClean: true })
})

test('a handler that returns a thenable (not a native Promise) is awaited too', async (t) => {
  const { url } = await startServer(t, {
    '': (c) => {
      const done = (async () => {
        for await (const m of c.source) {
          await c.sink([m])
          return
        }
      })()
      // A minimal PromiseLike, as another promise library would return.
      return { then: (ok: () => void, fail: (e: unknown) => void) => done.then(ok, fail) } as unknown as Promise<void>
    }
  })
  const peer = await WsPeer.open(url)
  await roundTrip(peer)
  t.is(peer.ws.readyState, peer.ws.OPEN, 'not closed while the thenable is pending')
  await peer.send('thenable')
  t.is((await peer.next()).data.toString(), 'thenable')
  t.is((await within(peer.closed, 5000, 'closed')).code, 1000)
})

test('a handler whose promise resolves → 1000 at once, even with the peer silent', async (t) => {
  const rec = recording(async () => { await new Promise(setImmediate) })
  const { url } = await startServer(t, { '': rec.handler })
  const peer = new WsPeer(url)
  t.deepEqual(await within(peer.closed, 5000, 'close'), { code: 1000, reason: '' })
  t.deepEqual(await (await rec.conn()).closed, { code: 1000, reason: '', wasClean: true })
})

test('client closes with 4000 "bye" → conn.closed is {4000, "bye", clean}, and the code comes back', async (t) => {
  const rec = recording(echo)
  const { url } = await startServer(t, { '': rec.handler })
  const peer = await WsPeer.open(url)
  const answered = await peer.close(4000, 'bye')
  t.is(answered.code, 4000)
  t.deepEqual(await within((await rec.conn()).closed, 5000, 'closed'), { code: 4000, reason: 'bye', wasClean: true })
})

test('server conn.close(4001, "x") → the client sees it; source ends; closed settles clean', async (t) => {
  let sourceEnded = false
  const rec = recording(async (c) => {
    setTimeout(() => c.close(4001, 'x'), 50)
    for await (const _ of c.source) {} // eslint-disable-line no-empty
    sourceEnded = true
  })
  const { url } = await startServer(t, { '': rec.handler })
  const peer = await WsPeer.open(url)
  t.deepEqual(await within(peer.closed, 5000, 'close'), { code: 4001, reason: 'x' })
  t.deepEqual(await (await rec.conn()).closed, { code: 4001, reason: 'x', wasClean: true })
  t.true(sourceEnded)
})

test('peer close: source yields what was already queued, then ends; later sink writes are dropped', async (t) => {
  const got: string[] = []
  let conn: Connection | undefined
  const handlerDone = new Promise<void>((resolve) => {
    const { handler } = recording(async (c) => {
      conn = c
      await c.closed // do not read until the peer has closed
      for await (const m of c.source) got.push(Buffer.from(m).toString())
      await c.sink(['too late'])
      resolve()
    })
    void startServer(t, { '': handler }).then(async ({ url }) => {
      const peer = await WsPeer.open(url)
      await peer.send('one')
      await peer.send('two')
      await peer.send('three')
      t.is((await peer.close(1000, 'done')).code, 1000)
      t.is(peer.queued, 0, 'nothing is sent after the close')
    })
  })
  await within(handlerDone, 10_000, 'handler finished')
  t.deepEqual(got, ['one', 'two', 'three'])
  t.deepEqual(await conn!.closed, { code: 1000, reason: 'done', wasClean: true })
})

test('a close frame without a code → conn.closed is 1005', async (t) => {
  const rec = recording(echo)
  const { port } = await startServer(t, { '': rec.handler })
  const client = await RawClient.connect(port)
  client.send(clientFrame(8, new Uint8Array(0)))
  t.deepEqual(await client.nextClose(), { code: 1005, reason: '' }, 'an empty close is answered with an empty close')
  t.deepEqual(await (await rec.conn()).closed, { code: 1005, reason: '', wasClean: true })
})

test('after the closing handshake the server ends TCP first (§7.1.1)', async (t) => {
  const { port } = await startServer(t, { '': echo })
  const client = await RawClient.connect(port)
  const gotEnd = new Promise<void>((resolve) => client.socket.once('end', resolve))
  client.send(clientFrame(8, closePayload(1000)))
  t.deepEqual(await client.nextClose(), { code: 1000, reason: '' })
  await within(gotEnd, 5000, 'the server sends FIN')
  t.pass()
  client.destroy()
})

test('a peer that sends its close and half-closes TCP still gets the close answered; closed is clean', async (t) => {
  const rec = recording(async (c) => { await c.closed })
  const { port } = await startServer(t, { '': rec.handler })
  const client = await RawClient.connect(port)
  await rec.conn()
  client.send(clientFrame(8, closePayload(4005, 'half')))
  client.socket.end()
  t.deepEqual(await client.nextClose(), { code: 4005, reason: '' })
  t.deepEqual(await within((await rec.conn()).closed, 5000, 'closed'), { code: 4005, reason: 'half', wasClean: true })
})

test('sink\'s iterable ends: nothing is closed yet, the handler may still read', async (t) => {
  const rec = recording(async ({ source, sink }) => {
    await sink(['first', 'second'])
    for await (const m of source) {
      await Promise.resolve()
      return void t.is(Buffer.from(m).toString(), 'after')
    }
  })
  const { url } = await startServer(t, { '': rec.handler })
  const peer = await WsPeer.open(url)
  t.is((await peer.next()).data.toString(), 'first')
  t.is((await peer.next()).data.toString(), 'second')
  await roundTrip(peer)
  t.is(peer.ws.readyState, peer.ws.OPEN)
  await peer.send('after')
  t.deepEqual(await within(peer.closed, 5000, 'close'), { code: 1000, reason: '' })
})

test('the sink stops on close and return()s the iterator: the generator\'s finally runs', async (t) => {
  let finallyRan = false
  let produced = 0
  const rec = recording(async ({ sink }) => {
    async function * ticks (): AsyncGenerator<string> {
      try {
        for (let i = 0; i < 100_000; i++) {
          produced++
          yield `tick ${i}`
          await sleep(5)
        }
      } finally {
        finallyRan = true
      }
    }
    await sink(ticks())
  })
  const { url } = await startServer(t, { '': rec.handler })
  const peer = await WsPeer.open(url)
  await peer.next()
  await peer.close(1000)
  const conn = await rec.conn()
  await conn.closed
  await until(() => finallyRan, 5000, 'the generator finally block')
  const at = produced
  await sleep(50)
  t.is(produced, at, 'nothing is pulled after the close')
})

test('the sink stops when the server closes too (conn.close from elsewhere)', async (t) => {
  let finallyRan = false
  const rec = recording(async (c) => {
    async function * forever (): AsyncGenerator<Uint8Array> {
      try {
        for (let i = 0; i < 100_000; i++) {
          yield new Uint8Array([i & 0xff])
          await sleep(5)
        }
      } finally {
        finallyRan = true
      }
    }
    setTimeout(() => c.close(4002, 'enough'), 50)
    await c.sink(forever())
  })
  const { url } = await startServer(t, { '': rec.handler })
  const peer = await WsPeer.open(url)
  t.deepEqual(await within(peer.closed, 5000, 'close'), { code: 4002, reason: 'enough' })
  await until(() => finallyRan, 5000, 'the generator finally block')
  t.pass()
})

test('a message the sink cannot send (not a string or bytes): the handler fails with 1011 and the generator\'s finally runs', async (t) => {
  let finallyRan = false
  const { url, entries } = await startServer(t, {
    '': async ({ sink }) => {
      async function * bad (): AsyncGenerator<unknown> {
        try {
          yield 'fine'
          yield 42
          yield 'never'
        } finally {
          finallyRan = true
        }
      }
      await sink(bad() as AsyncGenerator<string>)
    }
  })
  const peer = new WsPeer(url)
  t.is((await peer.next()).data.toString(), 'fine')
  t.is((await within(peer.closed, 5000, 'closed')).code, 1011)
  await until(() => finallyRan, 5000, 'the generator finally block')
  t.true(entries.some((e) => e.level === 'error' && e.obj.err instanceof TypeError))
})

test('a source that throws: the sink rejects with its error, the handler fails with 1011', async (t) => {
  const { url, entries } = await startServer(t, {
    '': async ({ sink }) => {
      async function * failing (): AsyncGenerator<string> {
        yield 'one'
        throw new Error('generator broke')
      }
      await sink(failing())
    }
  })
  const peer = new WsPeer(url)
  t.is((await peer.next()).data.toString(), 'one')
  t.is((await within(peer.closed, 5000, 'closed')).code, 1011)
  t.true(entries.some((e) => e.level === 'error' && e.obj.err.message === 'generator broke'))
})

test('a peer\'s protocol error (an unmasked frame) → 1002; source yields earlier messages, then throws ProtocolError', async (t) => {
  const got: string[] = []
  let thrown: unknown
  const rec = recording(async (c) => {
    const { source } = c
    await nextRead(c) // the three frames arrive in one go, before the handler reads
    try {
      for await (const m of source) got.push(Buffer.from(m).toString())
    } catch (err) {
      thrown = err
    }
  })
  const { port } = await startServer(t, { '': rec.handler })
  const client = await RawClient.connect(port)
  client.send(Buffer.concat([clientFrame(1, 'a'), clientFrame(1, 'b'), clientFrame(1, 'unmasked', { mask: false })]))
  const close = await client.nextClose()
  t.is(close?.code, 1002)
  await client.waitClosed()
  const info: CloseInfo = await (await rec.conn()).closed
  t.is(info.code, 1002)
  t.false(info.wasClean)
  await rec.done()
  t.deepEqual(got, ['a', 'b'])
  t.true(thrown instanceof ProtocolError)
  t.is((thrown as ProtocolError).closeCode, 1002)
})

test('invalid UTF-8 in a text message → 1007', async (t) => {
  const rec = recording(echo)
  const { port } = await startServer(t, { '': rec.handler })
  const client = await RawClient.connect(port)
  client.send(clientFrame(1, new Uint8Array([0x68, 0xc3, 0x28])))
  t.is((await client.nextClose())?.code, 1007)
  t.is((await (await rec.conn()).closed).code, 1007)
})

test('socket reset → source throws ConnectionClosedError; closed settles 1006, not clean', async (t) => {
  let thrown: unknown
  const rec = recording(async ({ source }) => {
    try {
      for await (const _ of source) {} // eslint-disable-line no-empty
    } catch (err) {
      thrown = err
    }
  })
  const { port } = await startServer(t, { '': rec.handler })
  const client = await RawClient.connect(port)
  const conn = await rec.conn()
  const read = nextRead(conn)
  client.send(clientFrame(1, 'hello'))
  await read
  client.socket.resetAndDestroy()
  const info = await within(conn.closed, 5000, 'closed')
  t.deepEqual(info, { code: 1006, reason: '', wasClean: false })
  await rec.done()
  t.true(thrown instanceof ConnectionClosedError)
  t.is((thrown as ConnectionClosedError).closeCode, 1006)
  t.true(conn.signal.aborted)
})

test('TCP closed without a close frame → 1006, source throws', async (t) => {
  let thrown: unknown
  const rec = recording(async ({ source }) => {
    try {
      for await (const _ of source) {} // eslint-disable-line no-empty
    } catch (err) {
      thrown = err
    }
  })
  const { port } = await startServer(t, { '': rec.handler })
  const client = await RawClient.connect(port)
  const conn = await rec.conn()
  client.socket.end()
  t.deepEqual(await within(conn.closed, 5000, 'closed'), { code: 1006, reason: '', wasClean: false })
  await rec.done()
  t.true(thrown instanceof ConnectionClosedError)
})

test('conn.close() to a peer that never answers: closed settles at closeTimeout (not 1 ms before), not clean', async (t) => {
  const clock = new VirtualClock()
  const rec = recording(async (c) => { c.close(4003, 'bye'); await c.closed })
  const { port } = await startServer(t, { '': rec.handler }, { closeTimeout: 30_000, clock })
  const client = await RawClient.connect(port)
  t.deepEqual(await client.nextClose(), { code: 4003, reason: 'bye' })
  // The raw client never answers.
  const conn = await rec.conn()
  const closed = watch(conn.closed)
  await clock.advance(29_999)
  t.false(closed(), 'open until closeTimeout')
  t.false(client.ended)
  await clock.advance(1)
  const info = await within(conn.closed, 5000, 'closed at the close timeout')
  t.is(info.code, 4003)
  t.false(info.wasClean)
  await client.waitClosed(5000)
})

test('conn.close(): source yields what came before the peer\'s close, then ends', async (t) => {
  const got: string[] = []
  let error: unknown
  const rec = recording(async (c) => {
    await nextRead(c) // 'before' has arrived
    c.close(4004, 'closing')
    try {
      for await (const m of c.source) got.push(Buffer.from(m).toString())
    } catch (err) {
      error = err
    }
  })
  const { port } = await startServer(t, { '': rec.handler })
  const client = await RawClient.connect(port)
  client.send(clientFrame(1, 'before'))
  t.deepEqual(await client.nextClose(), { code: 4004, reason: 'closing' })
  // §7.1.2: the peer may still send until its close; then it answers.
  client.send(Buffer.concat([clientFrame(1, 'in flight'), clientFrame(8, closePayload(4004))]))
  const info = await within((await rec.conn()).closed, 5000, 'closed')
  t.deepEqual(info, { code: 4004, reason: 'closing', wasClean: true })
  t.deepEqual(got, ['before', 'in flight'])
  t.is(error, undefined)
})

test('conn.close() to a peer that never answers: at closeTimeout source ends (it does not throw)', async (t) => {
  const clock = new VirtualClock()
  let ended = false
  let error: unknown
  const rec = recording(async (c) => {
    c.close(4003, 'bye')
    try {
      for await (const _ of c.source) {} // eslint-disable-line no-empty
      ended = true
    } catch (err) {
      error = err
    }
  })
  const { port, entries } = await startServer(t, { '': rec.handler }, { closeTimeout: 30_000, clock })
  const client = await RawClient.connect(port)
  t.deepEqual(await client.nextClose(), { code: 4003, reason: 'bye' })
  const done = watch(rec.done())
  await clock.advance(29_999)
  t.false(done(), 'the source has not ended before closeTimeout')
  await clock.advance(1)
  const info = await within((await rec.conn()).closed, 5000, 'closed at the close timeout')
  t.is(info.code, 4003)
  t.false(info.wasClean)
  await rec.done()
  t.true(ended, String(error))
  t.false(entries.some((e) => e.level === 'error'))
})

test('conn.signal aborts when the connection starts closing', async (t) => {
  let aborted: boolean | undefined
  let abortedAfterwards = false
  const rec = recording(async (c) => {
    aborted = c.signal.aborted
    c.signal.addEventListener('abort', () => { abortedAfterwards = true })
    await echo(c)
  })
  const { url } = await startServer(t, { '': rec.handler })
  const peer = await WsPeer.open(url)
  await peer.send('x')
  await peer.next()
  const conn = await rec.conn()
  t.false(conn.signal.aborted)
  await peer.close(1000)
  await conn.closed
  t.false(aborted)
  t.true(abortedAfterwards)
  t.true(conn.signal.aborted)
})

test('conn.ping() resolves with a round-trip time; a ping on a closed connection rejects', async (t) => {
  const rec = recording(async (c) => {
    await c.closed
  })
  const { url } = await startServer(t, { '': rec.handler })
  const peer = await WsPeer.open(url)
  const conn = await rec.conn()
  const rtt = await within(conn.ping(), 5000, 'pong')
  t.is(typeof rtt, 'number')
  t.true(rtt >= 0 && rtt < 5000)
  const rtt2 = await within(conn.ping(new Uint8Array([1, 2, 3])), 5000, 'pong with payload')
  t.true(rtt2 >= 0)
  await peer.close(1000)
  await conn.closed
  await t.throwsAsync(conn.ping(), { instanceOf: ConnectionClosedError })
})

test('a ping whose pong never comes rejects when the connection closes', async (t) => {
  t.timeout(20_000)
  const rec = recording(async (c) => { await c.closed })
  const { port } = await startServer(t, { '': rec.handler }, { heartbeat: false })
  const client = await RawClient.connect(port)
  const conn = await rec.conn()
  const pinged = conn.ping()
  pinged.catch(() => {})
  t.is((await client.nextFrame())?.opcode, 9)
  client.socket.destroy()
  await t.throwsAsync(within(pinged, 5000, 'ping rejects'), { instanceOf: ConnectionClosedError })
})

test('the server answers pings with pongs carrying the same payload', async (t) => {
  const { port } = await startServer(t, { '': echo })
  const client = await RawClient.connect(port)
  client.send(clientFrame(9, 'are you there'))
  const pong = await client.nextFrame()
  t.is(pong?.opcode, 10)
  t.is(pong?.payload.toString(), 'are you there')
  client.send(clientFrame(8, closePayload(CloseCode.Normal)))
  t.is((await client.nextClose())?.code, 1000)
})

test('conn.close() twice, or after the connection is gone, does nothing; bad arguments throw RangeError', async (t) => {
  const rec = recording(async (c) => {
    t.throws(() => c.close(1005), { instanceOf: RangeError }, '1005 may not be sent')
    t.throws(() => c.close(4000, 'x'.repeat(124)), { instanceOf: RangeError }, 'a reason is at most 123 bytes')
    await t.throwsAsync(c.ping(new Uint8Array(126)), { instanceOf: RangeError })
    c.close(4007, 'first')
    c.close(4008, 'second')
    await c.closed
    c.close(4009, 'after')
  })
  const { url } = await startServer(t, { '': rec.handler })
  const peer = new WsPeer(url)
  t.deepEqual(await within(peer.closed, 5000, 'closed'), { code: 4007, reason: 'first' })
  t.deepEqual(await (await rec.conn()).closed, { code: 4007, reason: 'first', wasClean: true })
})
