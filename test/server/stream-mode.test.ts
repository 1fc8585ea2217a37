/**
 * Stream mode through real sockets: chunks come as they arrive, UTF-8 fails late but after the
 * earlier chunks, control frames between fragments, abandoning a message, TCP backpressure from
 * a slow reader, the limits and the budget, and what goes out on the wire. Counts, never timings.
 */

import { createHash } from 'node:crypto'
import test, { type ExecutionContext } from 'ava'
import { connect, MessageAbandonedError, ProtocolError, WebSocketServer, type ReceivedStream, type StreamConnection, type StreamHandler, type WebSocketServerOptions } from '../../src/index.js'
import { ITEM_OVERHEAD } from '../../src/protocol/gather.js'
import { captureLogger, clientFrame, closePayload, RawClient, sleep, until, within, WsPeer } from './helpers.js'

const MiB = 1024 * 1024
const decode = (b: Uint8Array): string => new TextDecoder().decode(b)

/** A server with `handler` in stream mode on subprotocol `s` (and on none); closed in teardown. */
async function streamServer (t: ExecutionContext, handler: StreamHandler, options: WebSocketServerOptions = {}, maxMessageSize?: number): Promise<{ server: WebSocketServer, port: number, url: string }> {
  const server = new WebSocketServer({ logger: captureLogger().logger, ...options })
  server.register('s', handler, { messages: 'stream', maxMessageSize })
  server.register('', handler, { messages: 'stream', maxMessageSize })
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await within(server.close(), 15_000, 'server.close') })
  return { server, port, url: `ws://127.0.0.1:${port}/` }
}

const echoStream: StreamHandler = ({ source, sink }) => sink(source)

test('a chunk is handed to the handler before the rest of its message has been sent', async (t) => {
  const { port } = await streamServer(t, async ({ source, send }) => {
    for await (const message of source) {
      for await (const chunk of message.chunks) await send(`got ${chunk.length}`)
      await send('end')
    }
  })
  const client = await RawClient.connect(port)
  client.send(clientFrame(2, new Uint8Array(1000), { fin: false }))
  // The rest is sent only once the handler has seen the first fragment.
  t.is((await client.nextFrame())?.payload.toString(), 'got 1000')
  client.send(clientFrame(0, new Uint8Array(500)))
  t.is((await client.nextFrame())?.payload.toString(), 'got 500')
  t.is((await client.nextFrame())?.payload.toString(), 'end')
  client.destroy()
})

test('text whose invalid UTF-8 is in the last fragment: the earlier chunks reach the handler, then chunks throws 1007 and the peer gets 1007', async (t) => {
  const seen: string[] = []
  let thrown: unknown
  const { port } = await streamServer(t, async ({ source }) => {
    try {
      for await (const message of source) for await (const chunk of message.chunks) seen.push(decode(chunk))
    } catch (err) {
      thrown = err
    }
  })
  const client = await RawClient.connect(port)
  client.send(clientFrame(1, 'héllo ', { fin: false }))
  client.send(clientFrame(0, 'wörld ', { fin: false }))
  await until(() => seen.length === 2, 5000, 'the first two chunks')
  client.send(clientFrame(0, Buffer.concat([Buffer.from('and then '), Buffer.from([0xc3, 0x28])])))
  t.is((await client.nextClose())?.code, 1007)
  t.deepEqual(seen, ['héllo ', 'wörld '])
  t.true(thrown instanceof ProtocolError)
  t.is((thrown as ProtocolError).closeCode, 1007)
  client.destroy()
})

test('control frames between fragments: pings are answered in place, and the echo is the whole message', async (t) => {
  const { port } = await streamServer(t, echoStream)
  const client = await RawClient.connect(port)
  client.send(clientFrame(1, 'one ', { fin: false }))
  client.send(clientFrame(9, 'p1'))
  client.send(clientFrame(0, 'two ', { fin: false }))
  client.send(clientFrame(10, 'unsolicited'))
  client.send(clientFrame(9, 'p2'))
  client.send(clientFrame(0, 'three'))
  const frames = []
  let text = ''
  for (let i = 0; i < 20; i++) {
    const f = await client.nextFrame()
    if (f === undefined) break
    frames.push(f.opcode)
    if (f.opcode === 1 || f.opcode === 0) text += f.payload.toString()
    if (f.opcode !== 9 && f.opcode !== 10 && f.fin) break
  }
  t.is(text, 'one two three')
  t.is(frames.find((o) => o === 1 || o === 2), 1, 'the echo is text')
  t.deepEqual(frames.filter((o) => o === 10).length, 2, 'both pings answered')
  client.send(clientFrame(8, closePayload(1000)))
  t.is((await client.nextClose())?.code, 1000)
  client.destroy()
})

test('abandoning a message: leaving its chunks early drops the rest, unread and without pausing; the next message comes whole', async (t) => {
  const reports: string[] = []
  let server: StreamConnection | undefined
  const { url } = await streamServer(t, async (conn) => {
    server = conn
    for await (const message of conn.source) {
      let bytes = 0
      for await (const chunk of message.chunks) {
        bytes += chunk.length
        if (message.type === 'binary') break // the first chunk is enough
      }
      reports.push(`${message.type}:${bytes}`)
      await conn.send(reports.at(-1)!)
    }
  }, { receiveHighWaterMark: MiB }, Infinity)
  const conn = await connect(url, { messages: 'stream' })
  const big = new Uint8Array(256 * 1024)
  async function * twentyMiB (): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < 80; i++) yield big
  }
  await conn.send({ type: 'binary', chunks: twentyMiB() })
  await conn.send('after')
  const replies: string[] = []
  for (let i = 0; i < 2; i++) {
    const { value } = await within(conn.source.next(), 20_000, 'a reply')
    let s = ''
    for await (const c of value!.chunks) s += decode(c)
    replies.push(s)
  }
  t.true(/^binary:\d+$/.test(replies[0]) && Number(replies[0].slice(7)) < 20 * MiB, replies[0])
  t.is(replies[1], 'text:5')
  t.is(server!.stats().pauses, 0, 'the 20 MiB that was dropped never paused reading')
  conn.close()
})

test('asking source for the next message abandons the current one: its chunks then throw MessageAbandonedError', async (t) => {
  let error: unknown
  const { url } = await streamServer(t, async ({ source, send }) => {
    const first = (await source.next()).value as ReceivedStream
    const second = (await source.next()).value as ReceivedStream
    error = await first.chunks.next().then(() => undefined, (err: unknown) => err)
    let s = ''
    for await (const c of second.chunks) s += decode(c)
    await send(s)
  })
  const conn = await connect(url)
  await conn.send({ type: 'text', chunks: ['skipped ', 'entirely'] })
  await conn.send('read')
  t.is(decode((await conn.source.next()).value!), 'read')
  t.true(error instanceof MessageAbandonedError)
  conn.close()
})

test('a handler that reads slowly slows the peer through TCP: the server pauses reading, queues at most its mark plus a read, and the client\'s writes back up', async (t) => {
  t.timeout(60_000)
  let server: StreamConnection | undefined
  let release: (() => void) | undefined
  const gate = new Promise<void>((resolve) => { release = resolve })
  const hash = createHash('sha256')
  let bytes = 0
  const { url } = await streamServer(t, async (conn) => {
    server = conn
    for await (const message of conn.source) {
      for await (const chunk of message.chunks) {
        hash.update(chunk)
        bytes += chunk.length
        if (bytes === chunk.length) await gate // stall after the first chunk until the test says
      }
      await conn.send(`${bytes}`)
    }
  }, { receiveHighWaterMark: 256 * 1024 }, Infinity)
  const conn = await connect(url, { messages: 'stream' })
  const size = 64 * MiB
  const piece = Buffer.alloc(MiB, 7)
  async function * data (): AsyncGenerator<Uint8Array> {
    for (let sent = 0; sent < size; sent += piece.length) yield piece
  }
  let sendDone = false
  const sending = conn.send({ type: 'binary', chunks: data() }).then(() => { sendDone = true })
  await until(() => server !== undefined && server.stats().pauses > 0, 10_000, 'the server pausing')
  // Let the link fill: the client's send() cannot finish while the handler waits.
  await sleep(300)
  t.false(sendDone, 'the client is held back')
  t.true(conn.stats().queuedOutBytes > 0, 'the client has output waiting')
  const peak = server!.stats().peakQueuedInBytes
  t.true(peak <= 256 * 1024 + 64 * 1024 + 64 * ITEM_OVERHEAD, `server peakQueuedInBytes ${peak}`)
  release!()
  await within(sending, 30_000, 'the send')
  const { value } = await within(conn.source.next(), 30_000, 'the reply')
  let reply = ''
  for await (const c of value!.chunks) reply += decode(c)
  t.is(Number(reply), size)
  t.is(hash.digest('hex'), createHash('sha256').update(Buffer.alloc(size, 7)).digest('hex'))
  conn.close()
})

test('the streamed limit: by default the server\'s maxMessageSize, one byte past it is 1009 after the earlier chunks; Infinity lets far more through', async (t) => {
  const seen: number[] = []
  const { url } = await streamServer(t, async ({ source }) => {
    for await (const m of source) for await (const c of m.chunks) seen.push(c.length)
  }, { maxMessageSize: 1000 })
  const conn = await connect(url, { messages: 'stream' })
  await conn.send({ type: 'binary', chunks: [new Uint8Array(600), new Uint8Array(400)] })
  await conn.send({ type: 'binary', chunks: [new Uint8Array(600), new Uint8Array(401)] })
  t.is((await conn.closed).code, 1009)
  t.is(seen.slice(0, 3).reduce((a, b) => a + b, 0), 1600, 'the whole first message and the first chunk of the second arrived')

  const { url: open } = await streamServer(t, async ({ source, send }) => {
    for await (const m of source) {
      let n = 0
      for await (const c of m.chunks) n += c.length
      await send(String(n))
    }
  }, { maxMessageSize: 1000 }, Infinity)
  const big = await connect(open, { messages: 'stream' })
  await big.send({ type: 'binary', chunks: [new Uint8Array(20 * MiB)] })
  const { value } = await big.source.next()
  let n = ''
  for await (const c of value!.chunks) n += decode(c)
  t.is(Number(n), 20 * MiB)
  big.close()
})

test('the server\'s memoryBudget counts queued chunks: a handler that does not read fails with 1013 once the budget is spent', async (t) => {
  const { port } = await streamServer(t, async ({ source, closed }) => {
    await source.next() // take the message, never read its chunks
    await closed
  }, { memoryBudget: 512 * 1024, receiveHighWaterMark: 4 * MiB })
  const client = await RawClient.connect(port)
  client.send(clientFrame(2, new Uint8Array(1000), { fin: false }))
  for (let i = 0; i < 20; i++) client.send(clientFrame(0, new Uint8Array(64 * 1024), { fin: false }))
  t.is((await client.nextClose(10_000))?.code, 1013)
  client.destroy()
})

test('sending a stream: each chunk goes as fragments of at most maxFrameSize, the message in order, text as text', async (t) => {
  const server = new WebSocketServer({ maxFrameSize: 1000 })
  server.register('', ({ sink }) => sink([{ type: 'text', chunks: ['a'.repeat(2500), 'b'.repeat(10)] }, { type: 'binary', chunks: [] }]))
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => server.close())
  const client = await RawClient.connect(port)
  const frames = []
  for (let i = 0; i < 10; i++) {
    const f = await client.nextFrame()
    if (f === undefined || f.opcode === 8) break
    frames.push([f.opcode, f.fin, f.payload.length])
  }
  t.deepEqual(frames, [[1, false, 1000], [0, false, 1000], [0, false, 500], [0, false, 10], [0, true, 0], [2, true, 0]])
  client.destroy()
})

test('real peers through echo-stream: the ws client\'s 20 MiB binary and text messages come back byte for byte, past the 16 MiB whole-message limit', async (t) => {
  t.timeout(60_000)
  const { url } = await streamServer(t, echoStream, {}, Infinity)
  const peer = await WsPeer.open(url, 's', { maxPayload: 64 * MiB })
  const binary = Buffer.alloc(20 * MiB)
  for (let i = 0; i < binary.length; i += 4096) binary[i] = i & 0xff
  await peer.send(binary)
  const back = await peer.next(30_000)
  t.true(back.isBinary)
  t.true(back.data.equals(binary))
  const text = 'ünïcödé '.repeat(3 * MiB)
  await peer.send(text)
  const textBack = await peer.next(30_000)
  t.false(textBack.isBinary)
  t.is(textBack.data.toString(), text)
  await peer.close()
})

test('a connection that ends in the middle of a message makes its chunks throw, not end quietly', async (t) => {
  let error: unknown
  let bytes = 0
  const { port } = await streamServer(t, async ({ source }) => {
    try {
      for await (const m of source) for await (const c of m.chunks) bytes += c.length
    } catch (err) {
      error = err
    }
  })
  const client = await RawClient.connect(port)
  client.send(clientFrame(2, new Uint8Array(100), { fin: false }))
  await until(() => bytes === 100, 5000, 'the first fragment')
  client.destroy()
  await until(() => error !== undefined, 5000, 'the chunks to throw')
  t.is((error as { closeCode?: number }).closeCode, 1006)
})
