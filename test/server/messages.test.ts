/**
 * What a received message is: a plain `Uint8Array` (not a Buffer, no visible properties), so it
 * prints as its bytes and `deepEqual` (ava's and node:assert's) compares bytes only; text stays
 * text on echo through an invisible mark (`isText`, `asText`). Checked on every path a message
 * can take: a frame inside one read, a frame split across reads, a fragmented message, a small
 * message copied out of a read while queued; on the server and on the client.
 */

import assert from 'node:assert'
import { inspect } from 'node:util'
import test from 'ava'
import { asText, connect, isText, type Connection } from '../../src/index.js'
import { take } from '../../src/testing.js'
import { clientFrame, nextRead, RawClient, startServer, utf8, within } from './helpers.js'

/** A message behaves like the bytes a user makes: prototype, printing, both deepEquals. */
function assertPlain (t: import('ava').ExecutionContext, m: Uint8Array, bytes: Uint8Array, what: string): void {
  t.is(Object.getPrototypeOf(m), Uint8Array.prototype, `${what}: a plain Uint8Array, not a Buffer`)
  t.deepEqual(m, bytes, `${what}: ava's deepEqual sees the bytes only`)
  t.notThrows(() => { assert.deepStrictEqual(m, bytes) }, `${what}: node:assert's deepStrictEqual sees the bytes only`)
  t.is(inspect(m), inspect(bytes), `${what}: prints as its bytes`)
  t.deepEqual(Reflect.ownKeys(m).filter((k) => typeof k === 'symbol'), [], `${what}: no symbol properties`)
}

test('server side: a text and a binary message are plain bytes; isText tells them apart', async (t) => {
  let got: Uint8Array[] = []
  const { url } = await startServer(t, {
    '': async ({ source }) => { got = await take(source, 2) }
  })
  const conn = await connect(url)
  await conn.sink(['hé', new Uint8Array([1, 2])])
  await within(conn.closed, 5000, 'the handler reads two messages and returns')
  const [text, binary] = got
  assertPlain(t, text, utf8('hé'), 'text')
  assertPlain(t, binary, new Uint8Array([1, 2]), 'binary')
  t.true(isText(text))
  t.false(isText(binary))
  t.is(inspect(binary), 'Uint8Array(2) [ 1, 2 ]')
})

test('client side: echoed messages are plain bytes, text came back as text', async (t) => {
  const { url } = await startServer(t, { '': ({ source, sink }) => sink(source) })
  const conn = await connect(url)
  await conn.sink(['hé', new Uint8Array([1, 2]), asText(utf8('marked'))])
  const [a, b, c] = await take(conn.source, 3)
  assertPlain(t, a, utf8('hé'), 'echoed text')
  assertPlain(t, b, new Uint8Array([1, 2]), 'echoed binary')
  assertPlain(t, c, utf8('marked'), 'echoed asText bytes')
  t.deepEqual([isText(a), isText(b), isText(c)], [true, false, true])
  conn.close()
  await conn.closed
})

test('sink(source) echoes text as text and binary as binary, on the wire', async (t) => {
  const { port } = await startServer(t, { '': ({ source, sink }) => sink(source) })
  const raw = await RawClient.connect(port)
  raw.send(clientFrame(1, 'text'))
  raw.send(clientFrame(2, new Uint8Array([9])))
  const a = await raw.nextFrame()
  const b = await raw.nextFrame()
  t.is(a?.opcode, 1)
  t.is(a?.payload.toString(), 'text')
  t.is(b?.opcode, 2)
  t.deepEqual([...(b?.payload ?? [])], [9])
  raw.destroy()
})

test('asText: marks bytes as text invisibly; marking twice is harmless', (t) => {
  const bytes = utf8('x')
  t.false(isText(bytes))
  t.is(asText(bytes), bytes, 'returns its argument')
  t.is(asText(bytes), bytes, 'a second mark is harmless')
  t.true(isText(bytes))
  assertPlain(t, bytes, utf8('x'), 'marked bytes')
})

test('a frame split across reads, a fragmented message and a queued small message are plain too', async (t) => {
  let serverSide: ((conn: Connection) => void) | undefined
  const opened = new Promise<Connection>((resolve) => { serverSide = resolve })
  const { port } = await startServer(t, {
    '': async (conn) => {
      serverSide!(conn)
      await new Promise<void>((resolve) => conn.signal.addEventListener('abort', () => resolve()))
    }
  })
  const raw = await RawClient.connect(port)
  t.teardown(() => { raw.destroy() })
  const server = await within(opened, 5000, 'the handler runs')
  // One frame in two reads (gathered), a message in three fragments (joined), then small
  // messages in one read that nobody reads yet (queued: copied out of the read).
  const split = clientFrame(1, 'split across reads')
  let read = nextRead(server)
  raw.send(split.subarray(0, 5))
  await read
  read = nextRead(server)
  raw.send(Buffer.concat([
    split.subarray(5),
    clientFrame(1, 'frag', { fin: false }),
    clientFrame(0, 'men', { fin: false }),
    clientFrame(0, 'ted'),
    clientFrame(1, 'a'),
    clientFrame(2, new Uint8Array([5])),
    clientFrame(1, 'b'.repeat(200))
  ]))
  await read
  const got = await within(take(server.source, 5), 5000, 'five messages')
  const want = [utf8('split across reads'), utf8('fragmented'), utf8('a'), new Uint8Array([5]), utf8('b'.repeat(200))]
  for (let i = 0; i < want.length; i++) assertPlain(t, got[i], want[i], `message ${i}`)
  t.deepEqual(got.map(isText), [true, true, true, false, true])
  // Queued small messages were copied out: they do not pin the read they came in.
  t.is(got[2].buffer.byteLength, 1)
  t.is(got[3].buffer.byteLength, 1)
})

test('with permessage-deflate, decompressed messages are plain bytes too, on both sides', async (t) => {
  let got: Uint8Array[] = []
  const { url } = await startServer(t, {
    '': async ({ source, sink }) => {
      got = await take(source, 2)
      await sink(got)
    }
  }, { perMessageDeflate: true })
  const conn = await connect(url, { perMessageDeflate: true })
  const big = 'compress me '.repeat(500)
  await conn.sink([big, new Uint8Array(3000).fill(7)])
  const back = await within(take(conn.source, 2), 5000, 'two echoes')
  for (const [side, [text, binary]] of [['server', got], ['client', back]] as const) {
    assertPlain(t, text, utf8(big), `${side}: text`)
    assertPlain(t, binary, new Uint8Array(3000).fill(7), `${side}: binary`)
    t.deepEqual([isText(text), isText(binary)], [true, false], `${side}: text stays text`)
  }
  conn.close()
  await conn.closed
})
