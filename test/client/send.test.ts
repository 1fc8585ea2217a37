/**
 * `conn.send(message)`: one message at a time, for an interactive client (or a handler that
 * sends as it goes). It resolves once the message is queued with room to spare, waits for the
 * socket to drain when the output is at `sendHighWaterMark`, rejects with a
 * ConnectionClosedError once the connection closes, and is exclusive with `sink`.
 */

import test from 'ava'
import { asText, connect, ConnectionClosedError, InvalidStateError, isText, type Connection } from '../../src/index.js'
import { connectInMemory, text, VirtualClock } from '../../src/testing.js'
import { watch } from '../server/helpers.js'
import { echo, eventually, startOurServer, startWsServer, within, withPeer } from './helpers.js'

/** Send, await the reply, send again: no sink, no queue of one's own. */
async function converse (conn: Connection, questions: string[]): Promise<string[]> {
  const replies: string[] = []
  for (const q of questions) {
    await conn.send(q)
    const { value, done } = await conn.source.next()
    if (done === true) break
    replies.push(text(value))
  }
  return replies
}

for (const [name, start] of [['ws', () => startWsServer()], ['wspipe', () => startOurServer({ '': echo })]] as const) {
  test(`send, await the reply, send again (${name} echo server)`, async (t) => {
    await withPeer(await start(), async (conn) => {
      t.deepEqual(await converse(conn, ['one', 'two', 'three']), ['one', 'two', 'three'])
      t.false(conn.signal.aborted, 'next() leaves the connection open')
    })
  })
}

test('a string goes as text, bytes as binary, asText bytes as text', async (t) => {
  const kinds: boolean[] = []
  await withPeer(await startOurServer({ '': async ({ source }) => { for await (const m of source) kinds.push(isText(m)) } }), async (conn) => {
    await conn.send('text')
    await conn.send(new Uint8Array([1]))
    await conn.send(asText(new TextEncoder().encode('marked')))
    t.true(await eventually(() => kinds.length === 3))
    t.deepEqual(kinds, [true, false, true])
  })
})

test('send() and sink are exclusive, whichever comes first; sink once: an InvalidStateError with its code', async (t) => {
  const misuse = { instanceOf: InvalidStateError, code: 'WS_ERR_INVALID_STATE' }
  await withPeer(await startOurServer({ '': echo }), async (conn) => {
    await conn.send('first')
    const err = await t.throwsAsync(conn.sink(['x']), misuse)
    t.regex(err!.message, /send\(\) was used/)
  })
  await withPeer(await startOurServer({ '': echo }), async (conn) => {
    void conn.sink(['x'])
    const err = await t.throwsAsync(conn.send('y'), misuse)
    t.regex(err!.message, /sink was called/)
    const again = await t.throwsAsync(conn.sink(['z']), misuse)
    t.regex(again!.message, /only once/)
  })
})

test('send() rejects with a ConnectionClosedError once closing, and a TypeError for a non-message', async (t) => {
  await withPeer(await startOurServer({ '': echo }), async (conn) => {
    await t.throwsAsync(conn.send(42 as unknown as string), { instanceOf: TypeError })
    await conn.send('still open after a bad call')
    t.is(text((await conn.source.next()).value), 'still open after a bad call')
    conn.close(4000)
    const err = await t.throwsAsync(conn.send('too late'), { instanceOf: ConnectionClosedError })
    t.is((err as ConnectionClosedError).closeCode, 4000)
  })
})

test('after the peer closes, send() and ping() reject, saying the connection is closed', async (t) => {
  await withPeer(await startOurServer({ '': async (conn) => { conn.close(4001, 'bye') } }), async (conn) => {
    await within(conn.closed, 5000, 'closed')
    const err = await t.throwsAsync(conn.send('x'), { instanceOf: ConnectionClosedError, message: 'the connection is closed' })
    t.is((err as ConnectionClosedError).closeCode, 4001)
    await t.throwsAsync(conn.ping(), { instanceOf: ConnectionClosedError, message: 'the connection is closed' })
  })
})

test('while closing (close() called, the peer\'s close not yet in), send() says the connection is closing', async (t) => {
  await withPeer(await startOurServer({ '': echo }), async (conn) => {
    conn.close(4000)
    await t.throwsAsync(conn.send('x'), { instanceOf: ConnectionClosedError, message: 'the connection is closing' })
    await conn.closed
    await t.throwsAsync(conn.send('x'), { instanceOf: ConnectionClosedError, message: 'the connection is closed' })
  })
})

test('backpressure: send() waits while the output is at sendHighWaterMark, and goes on when the peer reads', async (t) => {
  let read: (() => void) | undefined
  const reading = new Promise<void>((resolve) => { read = resolve })
  let got = 0
  const peer = await startOurServer({
    '': async ({ source }) => {
      await reading
      for await (const m of source) got += m.length
    }
  }, { receiveHighWaterMark: 16 * 1024 })
  try {
    const conn = await connect(peer.url, { heartbeat: false, sendHighWaterMark: 64 * 1024 })
    const chunk = new Uint8Array(64 * 1024)
    let pending: Promise<void> | undefined
    let sent = 0
    // Bounded: the server reads nothing, so TCP buffers fill within a few MB.
    for (let i = 0; i < 2000 && pending === undefined; i++) {
      const p = conn.send(chunk)
      sent++
      const settled = await Promise.race([p.then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), 50))])
      if (!settled) pending = p
    }
    t.not(pending, undefined, 'a send() waits once the socket is full')
    t.true(conn.stats().queuedOutBytes >= 64 * 1024)
    read!()
    await within(pending!, 10_000, 'the waiting send() resolves once the server reads')
    t.true(await eventually(() => got === sent * chunk.length, 1000), 'every message arrived')
    conn.close()
    await conn.closed
  } finally {
    await peer.close()
  }
})

test('a send() waiting for room rejects when the connection closes', async (t) => {
  const peer = await startOurServer({ '': async ({ signal }) => { await new Promise((resolve) => signal.addEventListener('abort', resolve)) } }, { receiveHighWaterMark: 16 * 1024 })
  try {
    // The close timer on a VirtualClock: the send() rejects at close(), not when the close
    // the server never reads times out.
    const clock = new VirtualClock()
    const conn = await connect(peer.url, { heartbeat: false, sendHighWaterMark: 64 * 1024, closeTimeout: 200, clock })
    const chunk = new Uint8Array(64 * 1024)
    let pending: Promise<void> | undefined
    for (let i = 0; i < 2000 && pending === undefined; i++) {
      const p = conn.send(chunk)
      const settled = await Promise.race([p.then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), 50))])
      if (!settled) pending = p
    }
    t.not(pending, undefined)
    conn.close()
    await t.throwsAsync(within(pending!, 5000, 'rejects'), { instanceOf: ConnectionClosedError })
    const closed = watch(conn.closed)
    await clock.advance(199)
    t.false(closed(), 'the close is awaited until closeTimeout')
    await clock.advance(1)
    t.like(await within(conn.closed, 5000, undefined), { code: 1000, wasClean: false })
  } finally {
    await peer.close()
  }
})

test('a handler can send() as it goes (in memory)', async (t) => {
  const client = await connectInMemory(async (conn) => {
    await conn.send('welcome')
    for await (const m of conn.source) await conn.send(`you said ${text(m)}`)
  })
  t.is(text((await client.source.next()).value), 'welcome')
  t.deepEqual(await converse(client, ['a', 'b']), ['you said a', 'you said b'])
  client.close()
  t.deepEqual(await client.closed, { code: 1000, reason: '', wasClean: true })
  t.deepEqual(client.errors, [])
})
