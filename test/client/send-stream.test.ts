/**
 * `send()` of a streamed message on the client: it does not outlive the connection when its
 * chunk source stalls, a chunk source's error closes the connection with 1011, and the chunks
 * it has sent are not held until the message ends.
 */

import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import test from 'ava'
import { connect, ConnectionClosedError, WebSocketServer, type Connection, type StreamHandler } from '../../src/index.js'
import { nextRead } from '../server/helpers.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

async function server (t: import('ava').ExecutionContext, handler: Parameters<WebSocketServer['register']>[1], stream = false): Promise<string> {
  const s = new WebSocketServer({ logger: { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} } })
  if (stream) s.register('', handler as unknown as StreamHandler, { messages: 'stream', maxMessageSize: Infinity })
  else s.register('', handler)
  const { port } = await s.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => s.close())
  return `ws://127.0.0.1:${port}/`
}

test('a chunk source that stalls: send() rejects once the server closes, and the source is stopped', async (t) => {
  // The server closes after a little of the message has arrived.
  // `close` destructured: bound, like `sink` and `send`.
  const url = await server(t, async (conn) => {
    const { source, close } = conn
    // Once the first of the message has been read from the socket.
    const read = nextRead(conn)
    void source.next()
    await read
    close(4000, 'enough')
  })
  const conn = await connect(url)
  // An iterator whose second chunk never comes, which records being stopped.
  let pulls = 0
  let returned = false
  const stalls: AsyncIterableIterator<Uint8Array> = {
    next: () => ++pulls === 1 ? Promise.resolve({ done: false, value: new Uint8Array(1000) }) : new Promise(() => {}),
    return: () => {
      returned = true
      return Promise.resolve({ done: true, value: undefined })
    },
    [Symbol.asyncIterator] () { return this }
  }
  const error = await t.throwsAsync(conn.send({ type: 'binary', chunks: stalls }), { instanceOf: ConnectionClosedError })
  t.is(error?.closeCode, 4000)
  t.is((await conn.closed).code, 4000)
  t.is(pulls, 2)
  t.true(returned, 'the stalled source was stopped')
})

test('a chunk source that throws part-way: send() rejects with its error and the connection closes with 1011', async (t) => {
  const url = await server(t, async ({ source }) => { for await (const _ of source) { /* read everything */ } })
  const conn = await connect(url)
  async function * breaks (): AsyncGenerator<string> {
    yield 'part of a message'
    throw new Error('the source broke')
  }
  await t.throwsAsync(conn.send({ type: 'text', chunks: breaks() }), { message: 'the source broke' })
  await t.throwsAsync(conn.send('after'), { instanceOf: ConnectionClosedError })
  t.is((await conn.closed).code, 1011)
})

test('send() keeps the order of whole and streamed messages', async (t) => {
  const url = await server(t, ({ source, sink }) => sink(source))
  const conn = await connect(url)
  async function * slow (): AsyncGenerator<string> {
    for (const part of ['b1', 'b2', 'b3']) {
      await new Promise((resolve) => setTimeout(resolve, 5))
      yield part
    }
  }
  const sends = [conn.send('a'), conn.send({ type: 'text', chunks: slow() }), conn.send('c'), conn.send({ type: 'binary', chunks: [new Uint8Array([1]), new Uint8Array([2])] }), conn.send('d')]
  await Promise.all(sends)
  const got: string[] = []
  for (let i = 0; i < 5; i++) got.push(Buffer.from((await conn.source.next()).value!).toString('hex'))
  t.deepEqual(got, ['a', 'b1b2b3', 'c'].map((s) => Buffer.from(s).toString('hex')).concat(['0102', Buffer.from('d').toString('hex')]))
  conn.close()
})

test('close, ping and send destructured from the connection work (they were unbound: close threw a TypeError, so the handler failed with 1011)', async (t) => {
  const url = await server(t, async ({ source, send, ping, close }) => {
    const rtt = await ping('are you there')
    await send(`rtt is a number: ${typeof rtt === 'number'}`)
    await source.next()
    close(4001, 'bye')
  })
  const conn = await connect(url)
  t.is(Buffer.from((await conn.source.next()).value!).toString(), 'rtt is a number: true')
  const { send } = conn
  await send('ok')
  t.deepEqual(await conn.closed, { code: 4001, reason: 'bye', wasClean: true })
})

test('a handler that stops reading, then streams a reply with send(): the message is finished before the done-reading close', async (t) => {
  // The done-reading rule closed one turn later, in the middle of the streamed send().
  const url = await server(t, async ({ source, send }) => {
    await source.return!()
    async function * slow (): AsyncGenerator<string> {
      for (const part of ['one ', 'two ', 'three']) {
        await new Promise((resolve) => setTimeout(resolve, 20))
        yield part
      }
    }
    await send({ type: 'text', chunks: slow() })
    await new Promise(() => {}) // the handler itself never ends: the rule must close
  })
  const conn = await connect(url)
  t.is(Buffer.from((await conn.source.next()).value!).toString(), 'one two three')
  t.deepEqual(await conn.closed, { code: 1000, reason: '', wasClean: true })
})

// Each chunk's Promise.race against a promise of the close, which stays pending for the whole
// message, kept every chunk sent until the send ended: 512 MiB sent cost 522 MB of RSS.
for (const via of ['send', 'sink'] as const) {
  test(`a streamed message through ${via}(): the chunks already sent can be collected while it goes on`, async (t) => {
    // A stream-mode server that reads and drops every byte.
    const drain: StreamHandler = async ({ source }) => { for await (const m of source) for await (const _ of m.chunks) { /* dropped */ } }
    const url = await server(t, drain as unknown as Parameters<WebSocketServer['register']>[1], true)
    const conn: Connection = await connect(url, { heartbeat: false })
    t.teardown(() => conn.close())
    const CHUNKS = 64
    const sent: Array<WeakRef<Uint8Array>> = []
    let paused!: () => void
    const atPause = new Promise<void>((resolve) => { paused = resolve })
    let resume!: () => void
    const resumed = new Promise<void>((resolve) => { resume = resolve })
    async function * chunks (): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < CHUNKS; i++) {
        // A fresh buffer per chunk, as a file read gives.
        const chunk = new Uint8Array(64 * 1024).fill(i)
        sent.push(new WeakRef(chunk))
        yield chunk
      }
      paused()
      await resumed
      yield new Uint8Array(1)
    }
    const message = { type: 'binary' as const, chunks: chunks() }
    const done = via === 'send' ? conn.send(message) : conn.sink([message])
    await atPause
    // Out of the job that made the WeakRefs (they hold their targets until it ends), then a full GC.
    await new Promise(setImmediate)
    gc()
    const alive = sent.filter((r) => r.deref() !== undefined).length
    resume()
    await done
    // The client masks each chunk into a copy as it queues it; only the last may still be referenced.
    t.true(alive <= 1, `${alive} of ${CHUNKS} chunks sent are still held`)
  })
}

// The fragment size of a streamed send is maxFrameSize (else maxMessageSize): at 0 the fragment
// loop never advanced, queueing empty frames for ever in one synchronous call (the process hung,
// its memory growing), and a client reached it only after connecting.
test('a frame or message limit under 1 byte is refused up front: connect() rejects and new WebSocketServer() throws, with a RangeError', async (t) => {
  for (const limits of [{ maxFrameSize: 0 }, { maxFrameSize: -1 }, { maxFrameSize: Number.NaN }, { maxMessageSize: 0 }, { maxMessageSize: 0.5 }]) {
    const name = JSON.stringify(limits).replace('null', 'NaN')
    t.throws(() => new WebSocketServer(limits), { instanceOf: RangeError }, `server ${name}`)
    // Rejected before any connection is made: nothing listens on port 9 (discard).
    await t.throwsAsync(connect('ws://127.0.0.1:9/', limits), { instanceOf: RangeError }, `client ${name}`)
    await t.throwsAsync(connect('ws://127.0.0.1:9/', { ...limits, messages: 'stream' }), { instanceOf: RangeError }, `stream client ${name}`)
  }
  // Infinity is allowed: no limit.
  t.notThrows(() => new WebSocketServer({ maxMessageSize: Infinity, maxFrameSize: Infinity }))
})
