/**
 * DESIGN.md "Closing, precisely" again, row by row, this time through the whole driver
 * (`connectInMemory`: real framing, masking, closing part and in-memory transports) in VIRTUAL
 * time: `closeTimeout` and the reply grace elapse by `clock.advance`, never by sleeping. Each row
 * checks the close frame the peer sees, how `source` ends, what `closed` settles with on both
 * sides, and who ends TCP first (§7.1.1: the server; a client waits for it within closeTimeout).
 * Two rows need what connectInMemory does not give (a server's memoryBudget, connect's signal):
 * they run a real server on 127.0.0.1, with the timers of both ends on the VirtualClock.
 */

import test, { type ExecutionContext } from 'ava'
import { connectInMemory, take, text, VirtualClock, type InMemoryClient } from '../../src/testing.js'
import { ConnectionClosedError, ProtocolError, type CloseInfo, type Connection } from '../../src/index.js'
import { REPLY_GRACE } from '../../src/driver/closing.js'
import { Opcode } from '../../src/protocol/opcode.js'
import { peerFrame, utf8 } from '../protocol/helpers.js'
import { connect } from '../../src/client.js'
import { deferred, startServer, within } from '../server/helpers.js'

const CLOSE_TIMEOUT = 30_000

/** The byte stream under a connection (the in-memory socket), as the driver holds it. */
interface Wire {
  end: () => unknown
  pause: () => unknown
  write: (bytes: Uint8Array) => unknown
  once: (event: 'finish' | 'close', listener: () => void) => unknown
  destroy: () => unknown
  writableEnded: boolean
}
const wire = (conn: Connection): Wire => (conn as unknown as { transport: Wire }).transport

/** Which side's transport ended (FIN) first, as the in-memory sockets saw it. */
function finOrder (client: InMemoryClient): string[] {
  const order: string[] = []
  wire(client.server).once('finish', () => order.push('server'))
  wire(client).once('finish', () => order.push('client'))
  return order
}

/** `closed`, if it has settled by now (no waiting). */
async function settled (clock: VirtualClock, conn: Connection): Promise<CloseInfo | undefined> {
  let info: CloseInfo | undefined
  void conn.closed.then((i) => { info = i })
  await clock.settle()
  return info
}

async function assertClosed (t: ExecutionContext, clock: VirtualClock, conn: Connection, want: CloseInfo, what: string): Promise<void> {
  t.deepEqual(await settled(clock, conn), want, what)
}

// ── Row 1: the handler's promise resolves → 1000 at once, clean once the peer answers ─────────────

test('row "handler\'s promise resolves": 1000 at once; the client\'s source ends; both 1000 clean; the server ends TCP first', async (t) => {
  const clock = new VirtualClock()
  const client = await connectInMemory(async ({ sink }) => { await sink(['bye']) }, { clock, closeTimeout: CLOSE_TIMEOUT })
  const fins = finOrder(client)
  await clock.advance(0)
  t.deepEqual(text(await take(client.source, 10)), ['bye'], 'source ends after the last message')
  await assertClosed(t, clock, client, { code: 1000, reason: '', wasClean: true }, 'the client')
  await assertClosed(t, clock, client.server, { code: 1000, reason: '', wasClean: true }, 'the server')
  t.deepEqual(fins, ['server', 'client'])
  t.is(clock.now(), 0, 'no timer was needed')
})

// ── Row 2: the handler throws → 1011 ──────────────────────────────────────────────────────────────

test('row "handler throws": 1011 (the error logged, not sent); both sides 1011', async (t) => {
  const clock = new VirtualClock()
  const client = await connectInMemory(async () => { throw new Error('secret detail') }, { clock, closeTimeout: CLOSE_TIMEOUT })
  await clock.advance(0)
  await assertClosed(t, clock, client, { code: 1011, reason: '', wasClean: true }, 'the client sees 1011 without the detail')
  t.is((await client.server.closed).code, 1011)
  t.is((client.errors[0] as Error).message, 'secret detail')
})

// ── Row 3: the sink's iterable ends → nothing yet ─────────────────────────────────────────────────

test('row "sink\'s iterable ends": nothing is sent, the handler still reads; its settling closes (1000)', async (t) => {
  const clock = new VirtualClock()
  let heard: string[] = []
  const client = await connectInMemory(async ({ sink, source }) => {
    await sink(['hello'])
    heard = text(await take(source, 1)) as string[]
  }, { clock, closeTimeout: CLOSE_TIMEOUT })
  t.deepEqual(text(await take(client.source, 1)), ['hello'])
  await clock.advance(10 * CLOSE_TIMEOUT)
  t.is(await settled(clock, client), undefined, 'still open long after the sink ended')
  await client.send('late')
  await clock.advance(0)
  t.deepEqual(heard, ['late'])
  await assertClosed(t, clock, client, { code: 1000, reason: '', wasClean: true }, 'the handler settled')
})

// ── Row 4: the peer sends close → the same code back ──────────────────────────────────────────────

test('row "peer sends close": the same code back; source yields what was queued, then ends; later writes dropped; the peer\'s code, clean', async (t) => {
  const clock = new VirtualClock()
  let received: string[] = []
  let wrote = 0
  const client = await connectInMemory(async ({ source, sink }) => {
    // Reads only after the close has come: what was queued is still yielded.
    await new Promise((resolve) => setImmediate(resolve))
    received = text(await take(source, 10)) as string[]
    await sink((function * () { for (let i = 0; i < 3; i++) { wrote++; yield 'late' } })())
  }, { clock, closeTimeout: CLOSE_TIMEOUT })
  await client.sink(['a', 'b'])
  client.close(4001, 'done')
  await clock.advance(0)
  t.deepEqual(received, ['a', 'b'])
  t.true(wrote <= 1, `the sink stops (${wrote} pulled)`)
  await assertClosed(t, clock, client.server, { code: 4001, reason: 'done', wasClean: true }, 'the server')
  await assertClosed(t, clock, client, { code: 4001, reason: 'done', wasClean: true }, 'the client')
  t.deepEqual(text(await take(client.source, 10)), [], 'no late message reached the client')
})

// ── Row 5: conn.close(code, reason) → that code, or closeTimeout ───────────────────────────────────

test('row "conn.close(code, reason)": that code; source ends at the peer\'s answer; clean', async (t) => {
  const clock = new VirtualClock()
  const client = await connectInMemory(async ({ close, source }) => {
    close(4000, 'bye')
    for await (const _ of source) { /* until the answer */ }
  }, { clock, closeTimeout: CLOSE_TIMEOUT })
  const fins = finOrder(client)
  await clock.advance(0)
  await assertClosed(t, clock, client.server, { code: 4000, reason: 'bye', wasClean: true }, 'the server')
  await assertClosed(t, clock, client, { code: 4000, reason: 'bye', wasClean: true }, 'the client')
  t.deepEqual(fins, ['server', 'client'])
})

test('row "conn.close(code, reason)", closeTimeout: a peer that never answers is dropped at closeTimeout, not before; that code, not clean', async (t) => {
  const clock = new VirtualClock()
  let sourceEnded = false
  const client = await connectInMemory(async ({ close, source }) => {
    close(4000, 'bye')
    for await (const _ of source) { /* until the end */ }
    sourceEnded = true
  }, { clock, closeTimeout: CLOSE_TIMEOUT })
  // The client stops reading: our close never reaches its session.
  wire(client).pause()
  await clock.advance(CLOSE_TIMEOUT - 1)
  t.is(await settled(clock, client.server), undefined, 'not before closeTimeout')
  await clock.advance(1)
  await assertClosed(t, clock, client.server, { code: 4000, reason: 'bye', wasClean: false }, 'the server')
  t.true(sourceEnded, 'source ends (no error) once closeTimeout has ended it')
})

// ── Row 6: a protocol error by the peer → 1002 / 1007 / 1009 ───────────────────────────────────────

const badFrames: Array<[string, () => Uint8Array, number, number | undefined]> = [
  ['1002 (an unknown opcode)', () => peerFrame('server', { opcode: 3 }), 1002, undefined],
  ['1007 (text that is not UTF-8)', () => peerFrame('server', { opcode: Opcode.Text, payload: Uint8Array.of(0xc3, 0x28) }), 1007, undefined],
  ['1009 (a message over maxMessageSize)', () => peerFrame('server', { opcode: Opcode.Binary, payload: new Uint8Array(65) }), 1009, 64]
]

for (const [name, bad, code, maxMessageSize] of badFrames) {
  test(`row "protocol error by the peer" ${name}: the messages before it, then a typed error; the close after the replies; that code, not clean`, async (t) => {
    const clock = new VirtualClock()
    const got: string[] = []
    let thrown: unknown
    const client = await connectInMemory(async ({ source, sink }) => {
      const replies: string[] = []
      try {
        for await (const m of source) {
          got.push(new TextDecoder().decode(m))
          replies.push(`re: ${got.at(-1)!}`)
        }
      } catch (err) {
        thrown = err
      }
      await sink(replies)
    }, { clock, closeTimeout: CLOSE_TIMEOUT, ...(maxMessageSize === undefined ? {} : { maxMessageSize }) })
    const fins = finOrder(client)
    await client.send('first')
    await clock.advance(0)
    wire(client).write(bad())
    await clock.advance(0)
    t.deepEqual(got, ['first'])
    t.true(thrown instanceof ProtocolError)
    t.is((thrown as ProtocolError).closeCode, code)
    t.deepEqual(text(await take(client.source, 10)), ['re: first'], 'the reply went before the close')
    const server = await settled(clock, client.server)
    t.is(server?.code, code)
    t.false(server?.wasClean)
    t.is((await client.closed).code, code)
    t.is(fins[0], 'server')
  })
}

test('row "protocol error by the peer", a handler that does not read: the close goes after the reply grace, in virtual time', async (t) => {
  const clock = new VirtualClock()
  const client = await connectInMemory(async ({ closed }) => { await closed }, { clock, closeTimeout: CLOSE_TIMEOUT })
  await client.send('unread')
  await clock.advance(0)
  wire(client).write(peerFrame('server', { opcode: 3 }))
  await clock.advance(REPLY_GRACE - 1)
  t.is(await settled(clock, client), undefined, 'the close waits for the handler')
  await clock.advance(1)
  t.is((await settled(clock, client))?.code, 1002)
  t.is((await settled(clock, client.server))?.code, 1002)
})

/** A handler that reads `source` to its end and keeps what it threw, if anything. */
function readToEnd (): { handler: (conn: { source: AsyncIterable<Uint8Array> }) => Promise<void>, thrown: unknown } {
  const reader = {
    thrown: undefined as unknown,
    handler: async ({ source }: { source: AsyncIterable<Uint8Array> }): Promise<void> => {
      try {
        for await (const _ of source) { /* until the end */ }
      } catch (err) {
        reader.thrown = err
      }
    }
  }
  return reader
}

// ── Row 7: socket reset → 1006 ────────────────────────────────────────────────────────────────────

test('row "socket reset": no close frame; source throws; 1006, not clean', async (t) => {
  const clock = new VirtualClock()
  const reader = readToEnd()
  const client = await connectInMemory(reader.handler, { clock, closeTimeout: CLOSE_TIMEOUT })
  // A reset: the client's socket is destroyed (the in-memory pair takes the server's down too).
  wire(client).destroy()
  await clock.advance(0)
  await assertClosed(t, clock, client.server, { code: 1006, reason: '', wasClean: false }, 'the server')
  t.true(reader.thrown instanceof ConnectionClosedError)
  await assertClosed(t, clock, client, { code: 1006, reason: '', wasClean: false }, 'the client')
})

// ── Who ends TCP, and the timers of the last stage ────────────────────────────────────────────────

test('§7.1.1 a client waits for the server to end TCP: a server that never does is dropped at closeTimeout; the handshake was clean', async (t) => {
  const clock = new VirtualClock()
  const client = await connectInMemory(async ({ source }) => {
    for await (const _ of source) { /* until the close */ }
  }, { clock, closeTimeout: CLOSE_TIMEOUT })
  // The server answers but never ends TCP.
  wire(client.server).end = () => {}
  client.close(4002)
  await clock.advance(CLOSE_TIMEOUT - 1)
  t.is(await settled(clock, client), undefined, 'the client waits for the server\'s end')
  t.false(wire(client).writableEnded, 'and does not end TCP first')
  await clock.advance(1)
  await assertClosed(t, clock, client, { code: 4002, reason: '', wasClean: true }, 'the client')
})

test('§7.1.1 the server ends TCP first, and does not wait past closeTimeout for the client\'s end', async (t) => {
  const clock = new VirtualClock()
  const client = await connectInMemory(async ({ source }) => {
    for await (const _ of source) { /* until the close */ }
  }, { clock, closeTimeout: CLOSE_TIMEOUT })
  // The client never ends its side.
  wire(client).end = () => {}
  client.close(4003)
  await clock.advance(0)
  t.true(wire(client.server).writableEnded, 'the server ended TCP')
  t.is(await settled(clock, client.server), undefined, 'and waits for the client\'s end')
  await clock.advance(CLOSE_TIMEOUT)
  await assertClosed(t, clock, client.server, { code: 4003, reason: '', wasClean: true }, 'the server')
})

test('both close at once: each reports its own code, clean; the server ends TCP first', async (t) => {
  const clock = new VirtualClock()
  const client = await connectInMemory(async ({ close, closed }) => {
    close(4010, 'server')
    await closed
  }, { clock, closeTimeout: CLOSE_TIMEOUT })
  const fins = finOrder(client)
  client.close(4011, 'client')
  await clock.advance(0)
  await assertClosed(t, clock, client.server, { code: 4010, reason: 'server', wasClean: true }, 'the server')
  await assertClosed(t, clock, client, { code: 4011, reason: 'client', wasClean: true }, 'the client')
  t.deepEqual(fins, ['server', 'client'])
})

test('a close after a protocol error sends the error\'s close, not its own', async (t) => {
  const clock = new VirtualClock()
  const client = await connectInMemory(async ({ source, close }) => {
    try {
      for await (const _ of source) { /* until the error */ }
    } catch {
      close(4000, 'mine')
    }
  }, { clock, closeTimeout: CLOSE_TIMEOUT })
  wire(client).write(peerFrame('server', { opcode: Opcode.Text, payload: utf8('ok'), rsv: 0x20 }))
  await clock.advance(0)
  t.is((await settled(clock, client))?.code, 1002)
  t.is((await settled(clock, client.server))?.code, 1002)
})

// ── Row 7, its "heartbeat timeout" half → 1006 ────────────────────────────────────────────────────

test('row "heartbeat timeout": a silent peer is dropped at interval + timeout exactly, not before; no close frame; source throws; 1006', async (t) => {
  const clock = new VirtualClock()
  const reader = readToEnd()
  const client = await connectInMemory(reader.handler, { clock, closeTimeout: CLOSE_TIMEOUT, heartbeat: { interval: 1000, timeout: 1000 } })
  // The client goes silent: it reads nothing, so it never answers the server's ping.
  wire(client).pause()
  await clock.advance(1999)
  t.is(await settled(clock, client.server), undefined, 'not before interval + timeout')
  await clock.advance(1)
  await assertClosed(t, clock, client.server, { code: 1006, reason: '', wasClean: false }, 'the server')
  t.true(reader.thrown instanceof ConnectionClosedError, 'source throws')
})

// ── docs/server.md's row "source returned" → 1000 once the sending side is done ───────────────────

test('row "source returned": a handler that stops reading, with no sink running, closes 1000 on the next turn; later messages are dropped; clean', async (t) => {
  const clock = new VirtualClock()
  const got: string[] = []
  let settledHandler = false
  const client = await connectInMemory(async ({ source, closed }) => {
    for await (const m of source) {
      got.push(text(m))
      break
    }
    // The source is returned (break): done reading. The handler itself has not settled.
    await closed
    settledHandler = true
  }, { clock, closeTimeout: CLOSE_TIMEOUT })
  await client.send('one')
  await client.send('two')
  await clock.advance(0)
  t.deepEqual(got, ['one'], 'later messages are dropped')
  await assertClosed(t, clock, client, { code: 1000, reason: '', wasClean: true }, 'the client')
  await assertClosed(t, clock, client.server, { code: 1000, reason: '', wasClean: true }, 'the server')
  t.true(settledHandler)
  t.is(clock.now(), 0, 'no timer was needed')
})

test('row "source returned" while the sink runs: nothing closes until the sink\'s iterable ends, then 1000', async (t) => {
  const clock = new VirtualClock()
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const client = await connectInMemory(async ({ source, sink, closed }) => {
    const sending = sink((async function * () { yield 'a'; await gate; yield 'b' })())
    for await (const _ of source) break
    await sending
    // The handler has not settled: the close comes from source's return and the sink's end.
    await closed
  }, { clock, closeTimeout: CLOSE_TIMEOUT })
  await client.send('x')
  await clock.advance(10 * CLOSE_TIMEOUT)
  t.is(await settled(clock, client), undefined, 'still open while the sink runs')
  release()
  await clock.advance(0)
  t.deepEqual(text(await take(client.source, 10)), ['a', 'b'])
  await assertClosed(t, clock, client, { code: 1000, reason: '', wasClean: true }, 'the client')
})

// ── docs/server.md's row "the memory budget is spent" → 1013 (a server's budget: a real server, its clock virtual) ──

test('row "memory budget spent": the messages before it, then WS_ERR_MEMORY_BUDGET; 1013 on both sides, not clean on the server', async (t) => {
  const clock = new VirtualClock()
  const got: string[] = []
  const thrown = deferred<unknown>()
  const serverClosed = deferred<CloseInfo>()
  const { url } = await startServer(t, {
    '': async ({ source, closed }) => {
      void closed.then(serverClosed.resolve)
      try {
        for await (const m of source) got.push(new TextDecoder().decode(m))
        thrown.resolve(undefined)
      } catch (err) {
        thrown.resolve(err)
      }
    }
  }, { clock, closeTimeout: CLOSE_TIMEOUT, heartbeat: false, memoryBudget: 64 * 1024 })
  const client = await connect(url, { clock, closeTimeout: CLOSE_TIMEOUT, heartbeat: false })
  await client.send('first')
  // One message larger than the whole budget: the connection needs more than it has.
  await client.send(new Uint8Array(256 * 1024))
  const err = await within(thrown.promise, 5000, 'the handler\'s source')
  t.deepEqual(got, ['first'], 'the message before it was read')
  t.true(err instanceof ProtocolError)
  t.is((err as ProtocolError).code, 'WS_ERR_MEMORY_BUDGET')
  t.is((err as ProtocolError).closeCode, 1013)
  // The close goes at once when the handler has read all before it, or after the reply grace.
  await clock.advance(REPLY_GRACE)
  const server = await within(serverClosed.promise, 5000, 'the server\'s closed')
  t.is(server.code, 1013)
  t.false(server.wasClean)
  t.is((await within(client.closed, 5000, 'the client\'s closed')).code, 1013)
})

// ── DESIGN "A client closes on … its signal aborting" (connect's signal; a real server, the clocks virtual) ──

test('a client\'s signal aborting after open: the client closes with 1000; both clean; no timer was needed', async (t) => {
  const clock = new VirtualClock()
  const serverClosed = deferred<CloseInfo>()
  const { url } = await startServer(t, { '': async ({ source, closed }) => { void closed.then(serverClosed.resolve); for await (const _ of source) { /* until the close */ } } }, { clock, closeTimeout: CLOSE_TIMEOUT, heartbeat: false })
  const controller = new AbortController()
  const client = await connect(url, { clock, closeTimeout: CLOSE_TIMEOUT, heartbeat: false, signal: controller.signal })
  t.false(client.signal.aborted)
  controller.abort()
  t.deepEqual(await within(client.closed, 5000, 'the client\'s closed'), { code: 1000, reason: '', wasClean: true })
  t.deepEqual(await within(serverClosed.promise, 5000, 'the server\'s closed'), { code: 1000, reason: '', wasClean: true })
  t.true(client.signal.aborted, 'the connection\'s own signal follows')
  t.is(clock.now(), 0, 'no timer was needed')
})

test('a client\'s signal aborting, the server silent: the client gives up at closeTimeout exactly (virtual time); 1000, not clean', async (t) => {
  const clock = new VirtualClock()
  const { url, server } = await startServer(t, { '': async ({ closed }) => { await closed } }, { heartbeat: false })
  const controller = new AbortController()
  const client = await connect(url, { clock, closeTimeout: CLOSE_TIMEOUT, heartbeat: false, signal: controller.signal })
  // The server stops reading: our close never reaches its session.
  for (const c of server.clients) (c as unknown as { transport: Wire }).transport.pause()
  controller.abort()
  await clock.advance(CLOSE_TIMEOUT - 1)
  t.is(await settled(clock, client), undefined, 'not before closeTimeout')
  await clock.advance(1)
  t.deepEqual(await within(client.closed, 5000, 'the client\'s closed'), { code: 1000, reason: '', wasClean: false })
})
