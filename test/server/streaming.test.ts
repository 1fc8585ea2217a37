/**
 * Stream mode end to end (`register(protocol, handler, { messages: 'stream' })`): chunks reach
 * the handler as they arrive, failures (UTF-8, limits, the memory budget) come after the chunks
 * before them, abandoning a message drops its bytes, a slow reader applies TCP backpressure, and
 * streamed messages go out as fragments. Peers: raw frames, our client, `ws`, undici and Python
 * websockets. Counts only, never timings.
 */

import { createHash } from 'node:crypto'
import test, { type ExecutionContext } from 'ava'
import { WebSocket as UndiciWebSocket } from 'undici'
import { startDemo } from '../../examples/echo-server.js'
import { connect, ConnectionClosedError, isText, MessageAbandonedError, ProtocolError, WebSocketServer, type Connection, type Handler, type StreamConnection, type StreamHandler, type WebSocketServerOptions } from '../../src/index.js'
import { ITEM_OVERHEAD } from '../../src/protocol/gather.js'
import { peerTest } from '../peers.js'
import { runPythonClient } from './python-client.js'
import { captureLogger, clientFrame, closePayload, deferred, RawClient, sleep, until, within, WsPeer, type LogEntry, type RawFrame } from './helpers.js'

const MiB = 1024 * 1024
const decoder = new TextDecoder()

interface Served {
  server: WebSocketServer
  port: number
  url: string
  entries: LogEntry[]
}

/** A server on 127.0.0.1:0 with stream handlers (and, optionally, whole ones); closed in teardown. */
async function serve (t: ExecutionContext, streams: Record<string, StreamHandler>, options: WebSocketServerOptions & { stream?: { maxMessageSize?: number }, whole?: Record<string, Handler> } = {}): Promise<Served> {
  const { stream, whole, ...serverOptions } = options
  const captured = captureLogger()
  const server = new WebSocketServer({ logger: captured.logger, heartbeat: false, ...serverOptions })
  for (const [protocol, handler] of Object.entries(streams)) server.register(protocol, handler, { messages: 'stream', ...stream })
  for (const [protocol, handler] of Object.entries(whole ?? {})) server.register(protocol, handler)
  const address = await server.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await within(server.close(), 15_000, 'server.close in teardown') })
  return { server, port: address.port, url: `ws://127.0.0.1:${address.port}`, entries: captured.entries }
}

/** The one connection a test's server has. */
function onlyConnection (server: WebSocketServer): Connection | StreamConnection {
  const [conn] = server.clients
  if (conn === undefined) throw new Error('no connection')
  return conn
}

/** Frames from `client` up to and including the data frame with FIN, and the control frames seen meanwhile. */
async function readMessage (client: RawClient, ms = 10_000): Promise<{ data: RawFrame[], control: RawFrame[] }> {
  const data: RawFrame[] = []
  const control: RawFrame[] = []
  for (let i = 0; i < 100_000; i++) {
    const f = await client.nextFrame(ms)
    if (f === undefined) throw new Error('closed before the message ended')
    if (f.opcode >= 8) {
      control.push(f)
      continue
    }
    data.push(f)
    if (f.fin) return { data, control }
  }
  throw new Error('too many frames')
}

function joined (frames: RawFrame[]): Buffer {
  return Buffer.concat(frames.map((f) => f.payload))
}

/** Collect every chunk of a received stream as one Buffer. */
async function readAll (chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const c of chunks) parts.push(c.slice())
  return Buffer.concat(parts)
}

/** A bounded wait for a promise the test resolves: a handler that must not wait forever. */
function gate (): { open: () => void, wait: () => Promise<void> } {
  let open!: () => void
  const p = new Promise<void>((resolve) => { open = resolve })
  return { open, wait: () => within(p, 30_000, 'the test to open the gate') }
}

/** `count` chunks of `size` bytes: one reused buffer (the client masks into a copy). */
function * repeated (buffer: Uint8Array, count: number, onChunk?: (i: number) => void): Generator<Uint8Array> {
  for (let i = 0; i < count; i++) {
    onChunk?.(i)
    yield buffer
  }
}

function patterned (size: number, seed = 0): Uint8Array {
  const out = new Uint8Array(size)
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed) & 0xff
  return out
}

// ---------------------------------------------------------------------------------------------
// 1. UTF-8 failing late

test('text whose invalid UTF-8 is in the last fragment fails with 1007 after the earlier chunks reached the handler', async (t) => {
  t.timeout(20_000)
  const chunks: string[] = []
  let error: unknown
  const { port } = await serve(t, {
    '': async ({ source }) => {
      for await (const message of source) {
        try {
          for await (const chunk of message.chunks) chunks.push(decoder.decode(chunk))
        } catch (err) {
          error = err
          throw err
        }
      }
    }
  })
  const client = await RawClient.connect(port)
  client.send(clientFrame(1, 'héllo ', { fin: false }))
  client.send(clientFrame(0, 'wörld ', { fin: false }))
  await until(() => chunks.join('') === 'héllo wörld ', 5000, 'the first two chunks reach the handler')
  client.send(clientFrame(0, Buffer.from([0x61, 0xff, 0x62]), { fin: true }))
  t.is((await client.nextClose())?.code, 1007)
  await until(() => error !== undefined, 5000, 'the chunks loop throws')
  t.deepEqual(chunks, ['héllo ', 'wörld '])
  t.true(error instanceof ProtocolError)
  t.is((error as ProtocolError).closeCode, 1007)
  client.destroy()
})

// ---------------------------------------------------------------------------------------------
// 2. Control frames between fragments

test('pings and pongs between fragments: the pongs come back, the chunks arrive in order, an echo returns the whole message', async (t) => {
  t.timeout(20_000)
  const recorded: string[] = []
  const { port } = await serve(t, {
    record: async ({ source, send }) => {
      for await (const message of source) {
        for await (const chunk of message.chunks) recorded.push(decoder.decode(chunk))
        await send(`${message.type}:${message.received}`)
      }
    },
    echo: ({ source, sink }) => sink(source)
  })
  const frames = (): Buffer[] => [
    clientFrame(1, 'abc', { fin: false }),
    clientFrame(9, 'p1'),
    clientFrame(0, 'def', { fin: false }),
    clientFrame(10, 'unasked'),
    clientFrame(9, 'p2'),
    clientFrame(0, 'ghi', { fin: true })
  ]

  const rec = await RawClient.connect(port, { protocol: 'record' })
  for (const f of frames()) rec.send(f)
  const reply = await readMessage(rec)
  t.deepEqual(reply.control.map((f) => [f.opcode, f.payload.toString()]), [[10, 'p1'], [10, 'p2']])
  t.is(joined(reply.data).toString(), 'text:9')
  t.deepEqual(recorded, ['abc', 'def', 'ghi'])

  const echo = await RawClient.connect(port, { protocol: 'echo' })
  for (const f of frames()) echo.send(f)
  const back = await readMessage(echo)
  t.deepEqual(back.control.map((f) => [f.opcode, f.payload.toString()]), [[10, 'p1'], [10, 'p2']])
  t.is(back.data[0].opcode, 1)
  t.true(back.data.slice(1).every((f) => f.opcode === 0))
  t.is(joined(back.data).toString(), 'abcdefghi')
  rec.destroy()
  echo.destroy()
})

test('an echo of a received stream, through sink or send(), sets FIN on the last chunk\'s frame: no empty frame is added', async (t) => {
  t.timeout(20_000)
  const { port } = await serve(t, {
    sink: ({ source, sink }) => sink(source),
    send: async ({ source, send }) => {
      for await (const message of source) await send(message)
    }
  })
  for (const protocol of ['sink', 'send']) {
    const client = await RawClient.connect(port, { protocol })
    client.send(clientFrame(2, 'ab', { fin: false }))
    client.send(clientFrame(0, 'cd', { fin: true }))
    const back = await readMessage(client)
    t.is(joined(back.data).toString(), 'abcd', protocol)
    t.is(back.data[0].opcode, 2, protocol)
    t.true(back.data.every((f) => f.payload.length > 0), `${protocol}: ${back.data.map((f) => f.payload.length).join(',')}`)
    client.destroy()
  }
})

// ---------------------------------------------------------------------------------------------
// 3. Abandoning a message

test('break out of chunks after the first chunk of a large fragmented message: the next message comes intact', async (t) => {
  t.timeout(30_000)
  const { port } = await serve(t, {
    '': async ({ source, send }) => {
      const first = await source.next()
      let firstChunk = 0
      for await (const chunk of first.value!.chunks) {
        firstChunk = chunk.length
        break
      }
      const next = await source.next()
      const body = await readAll(next.value!.chunks)
      await send(`${first.value!.type} ${firstChunk > 0} ${first.value!.received === firstChunk} | ${next.value!.type} ${body.toString()}`)
    }
  }, { stream: { maxMessageSize: Infinity } })
  const client = await RawClient.connect(port)
  const part = patterned(MiB)
  client.send(clientFrame(2, part, { fin: false }))
  client.send(clientFrame(0, part, { fin: false }))
  client.send(clientFrame(0, part, { fin: true }))
  client.send(clientFrame(1, 'the next message'))
  const reply = await readMessage(client)
  t.is(joined(reply.data).toString(), 'binary true true | text the next message')
  t.is((await client.nextClose())?.code, 1000)
  client.destroy()
})

test('source.next() without reading the chunks abandons the message; its chunks then reject with MessageAbandonedError', async (t) => {
  t.timeout(20_000)
  let abandoned: unknown
  const { port } = await serve(t, {
    '': async ({ source, send }) => {
      const a = await source.next()
      const b = await source.next()
      const body = await readAll(b.value!.chunks)
      try {
        await a.value!.chunks.next()
      } catch (err) {
        abandoned = err
      }
      await send(body.toString())
    }
  })
  const client = await RawClient.connect(port)
  client.send(clientFrame(1, 'first, ', { fin: false }))
  client.send(clientFrame(0, 'never read', { fin: true }))
  client.send(clientFrame(1, 'second ', { fin: false }))
  client.send(clientFrame(0, 'whole', { fin: true }))
  const reply = await readMessage(client)
  t.is(joined(reply.data).toString(), 'second whole')
  t.true(abandoned instanceof MessageAbandonedError, String(abandoned))
  t.is((abandoned as MessageAbandonedError).code, 'WS_ERR_MESSAGE_ABANDONED')
  client.destroy()
})

test('a handler that never reads the chunks still gets every message, each abandoned by the next', async (t) => {
  t.timeout(20_000)
  const types: string[] = []
  const { port } = await serve(t, {
    '': async ({ source, send }) => {
      for await (const message of source) {
        types.push(message.type)
        if (types.length === 50) await send(`${types.length}`)
      }
    }
  })
  const client = await RawClient.connect(port)
  for (let i = 0; i < 50; i++) {
    client.send(clientFrame(i % 2 === 0 ? 1 : 2, `m${i}`, { fin: false }))
    client.send(clientFrame(0, ` part two of ${i}`, { fin: true }))
  }
  t.is(joined((await readMessage(client)).data).toString(), '50')
  t.deepEqual(types, Array.from({ length: 50 }, (_, i) => i % 2 === 0 ? 'text' : 'binary'))
  client.destroy()
})

test('the bytes of an abandoned 20 MiB message are dropped without pausing reading (1 MiB receive mark)', async (t) => {
  t.timeout(60_000)
  let conn: StreamConnection | undefined
  const { url } = await serve(t, {
    '': async (c) => {
      conn = c
      const { source, send } = c
      const first = await source.next()
      await first.value!.chunks.return!()
      const next = await source.next()
      const body = await readAll(next.value!.chunks)
      await send(body.toString())
    }
  }, { receiveHighWaterMark: MiB, stream: { maxMessageSize: Infinity } })
  const client = await connect(url)
  t.teardown(() => client.close())
  await client.send(patterned(20 * MiB))
  await client.send('after it')
  const { value } = await within(client.source.next(), 30_000, 'the reply')
  t.is(decoder.decode(value), 'after it')
  const stats = conn!.stats()
  t.is(stats.pauses, 0)
  t.true(stats.peakQueuedInBytes <= MiB, `peak ${stats.peakQueuedInBytes}`)
})

// ---------------------------------------------------------------------------------------------
// 4. Backpressure from a slow reader

test('a handler that reads slowly applies TCP backpressure: the server pauses, the client backs up, then everything arrives', async (t) => {
  t.timeout(120_000)
  const CHUNK = 64 * 1024
  const COUNT = 1024 // 64 MiB
  const high = MiB
  const resume = gate()
  let firstSeen = false
  let conn: StreamConnection | undefined
  const { url } = await serve(t, {
    '': async (c) => {
      conn = c
      const { value: message } = await c.source.next()
      const it = message!.chunks
      const hash = createHash('sha256')
      let total = 0
      const first = await it.next()
      hash.update(first.value!)
      total += first.value!.length
      firstSeen = true
      await resume.wait()
      for (let r = await it.next(); r.done !== true; r = await it.next()) {
        hash.update(r.value)
        total += r.value.length
      }
      await c.send(`${total} ${hash.digest('hex')}`)
    }
  }, { receiveHighWaterMark: high, stream: { maxMessageSize: Infinity } })

  const buffer = patterned(CHUNK, 7)
  const expected = createHash('sha256')
  for (let i = 0; i < COUNT; i++) expected.update(buffer)
  let produced = 0
  let sent = false
  const client = await connect(url)
  t.teardown(() => client.close())
  const sending = client.send({ type: 'binary', chunks: repeated(buffer, COUNT, (i) => { produced = i + 1 }) }).then(() => { sent = true })
  await until(() => firstSeen, 10_000, 'the handler reads its first chunk')
  // Wait until production stops moving with the server paused: the peer's writes have backed up.
  // (Production alone can stand still for 100 ms on a loaded machine before the mark is reached.)
  let last = -1
  for (let i = 0; i < 300 && (produced !== last || conn!.stats().pauses === 0); i++) {
    last = produced
    await sleep(100)
  }
  const server = conn!.stats()
  t.true(produced < COUNT, `the client stalls (${produced} of ${COUNT} chunks produced)`)
  t.false(sent, 'send() has not resolved')
  t.true(client.stats().queuedOutBytes > 0, `the client's output backs up (${client.stats().queuedOutBytes} B)`)
  t.true(server.pauses > 0, `the server paused reading (${server.pauses})`)
  // One socket read (64 KiB) may land past the mark, a few pieces of overhead with it.
  const bound = high + 64 * 1024 + 4 * ITEM_OVERHEAD
  t.true(server.peakQueuedInBytes <= bound, `peak ${server.peakQueuedInBytes} <= ${bound}`)

  resume.open()
  await within(sending, 60_000, 'the send to finish')
  const { value } = await within(client.source.next(), 60_000, 'the handler\'s reply')
  t.is(decoder.decode(value), `${CHUNK * COUNT} ${expected.digest('hex')}`)
  t.true(conn!.stats().peakQueuedInBytes <= bound, `peak ${conn!.stats().peakQueuedInBytes}`)
})

// ---------------------------------------------------------------------------------------------
// 5. As they come

test('the handler sees the first chunk before the client has sent the rest', async (t) => {
  t.timeout(20_000)
  const { port } = await serve(t, {
    '': async ({ source, send }) => {
      for await (const message of source) {
        const it = message.chunks
        const first = await it.next()
        await send(`got ${decoder.decode(first.value)}`)
        const rest = await readAll(it)
        await send(`then ${rest.toString()}`)
      }
    }
  })
  const client = await RawClient.connect(port)
  client.send(clientFrame(1, 'one ', { fin: false }))
  // Without the ack (a handler that only sees whole messages) this read times out.
  t.is(joined((await readMessage(client, 5000)).data).toString(), 'got one ')
  client.send(clientFrame(0, 'two', { fin: true }))
  t.is(joined((await readMessage(client)).data).toString(), 'then two')
  client.destroy()
})

// ---------------------------------------------------------------------------------------------
// 6. Limits

test('streamed maxMessageSize: exactly the limit passes; one byte past fails with 1009 after the earlier chunks', async (t) => {
  t.timeout(20_000)
  const sizes: number[] = []
  const errors: unknown[] = []
  const { port } = await serve(t, {
    '': async ({ source }) => {
      for await (const message of source) {
        try {
          for await (const chunk of message.chunks) sizes.push(chunk.length)
        } catch (err) {
          errors.push(err)
          throw err
        }
        sizes.push(-1) // end of message
      }
    }
  }, { stream: { maxMessageSize: 1000 } })
  const client = await RawClient.connect(port)
  client.send(clientFrame(2, new Uint8Array(600), { fin: false }))
  client.send(clientFrame(0, new Uint8Array(400), { fin: true }))
  client.send(clientFrame(2, new Uint8Array(600), { fin: false }))
  await until(() => sizes.length === 4, 5000, 'the first message and the first chunk of the second')
  client.send(clientFrame(0, new Uint8Array(401), { fin: true }))
  t.is((await client.nextClose())?.code, 1009)
  await until(() => errors.length === 1, 5000, 'the chunks loop throws')
  t.deepEqual(sizes, [600, 400, -1, 600])
  t.is((errors[0] as ProtocolError).closeCode, 1009)
  client.destroy()
})

// Issue 19 (7e), on the server: the 1009 came from `source` too (after the chunks had thrown it,
// or instead of them for a first frame refused from its header), so a handler that handled the
// message's failure in its chunks loop failed anyway, with the same error.
for (const [name, frames] of [
  ['one frame, refused from its header', [clientFrame(2, new Uint8Array(1001))]],
  ['fragments, passing the limit part-way', [clientFrame(2, new Uint8Array(600), { fin: false }), clientFrame(0, new Uint8Array(401))]]
] as const) {
  test(`a message over the streamed maxMessageSize (${name}): the handler's chunks throw 1009, then source ends; the peer gets 1009`, async (t) => {
    t.timeout(20_000)
    const failures: unknown[] = []
    let messages = 0
    let outcome: string | undefined
    const { port, entries } = await serve(t, {
      '': async ({ source }) => {
        try {
          for await (const message of source) {
            messages++
            try {
              for await (const _ of message.chunks) { /* dropped */ }
            } catch (err) {
              failures.push(err)
            }
          }
          outcome = 'ended'
        } catch (err) {
          outcome = `source threw ${String(err)}`
        }
      }
    }, { stream: { maxMessageSize: 1000 } })
    const client = await RawClient.connect(port)
    for (const frame of frames) client.send(frame)
    t.is((await client.nextClose())?.code, 1009)
    await until(() => outcome !== undefined, 5000, 'the handler to finish')
    t.is(outcome, 'ended')
    t.is(messages, 1)
    t.is(failures.length, 1)
    t.is((failures[0] as ProtocolError).closeCode, 1009)
    t.deepEqual(entries.filter((e) => e.level === 'error'), [])
    client.destroy()
  })
}

test('the streamed limit defaults to the server\'s maxMessageSize', async (t) => {
  t.timeout(20_000)
  const received: number[] = []
  const { port } = await serve(t, {
    '': async ({ source }) => {
      for await (const message of source) received.push((await readAll(message.chunks)).length)
    }
  }, { maxMessageSize: 4096 })
  const client = await RawClient.connect(port)
  client.send(clientFrame(2, new Uint8Array(2048), { fin: false }))
  client.send(clientFrame(0, new Uint8Array(2048), { fin: true }))
  client.send(clientFrame(2, new Uint8Array(4097)))
  t.is((await client.nextClose())?.code, 1009)
  t.deepEqual(received, [4096])
  client.destroy()
})

test('with maxMessageSize: Infinity a message far above the server\'s maxMessageSize passes', async (t) => {
  t.timeout(30_000)
  const { url } = await serve(t, {
    '': async ({ source, send }) => {
      for await (const message of source) {
        let n = 0
        for await (const chunk of message.chunks) n += chunk.length
        await send(String(n))
      }
    }
  }, { maxMessageSize: 64 * 1024, stream: { maxMessageSize: Infinity } })
  const client = await connect(url)
  t.teardown(() => client.close())
  await client.send(patterned(8 * MiB))
  const { value } = await within(client.source.next(), 20_000, 'the count')
  t.is(decoder.decode(value), String(8 * MiB))
})

test('the memory budget counts queued chunks: a handler that does not read fails with 1013 past a small budget', async (t) => {
  t.timeout(30_000)
  const { port, server, entries } = await serve(t, {
    '': async ({ source, closed }) => {
      await source.next()
      // Never reads again; stays until the connection is gone.
      await closed
    }
  }, { memoryBudget: 256 * 1024, receiveHighWaterMark: 4 * MiB, stream: { maxMessageSize: Infinity } })
  const client = await RawClient.connect(port)
  client.send(clientFrame(2, patterned(2 * MiB)))
  t.is((await client.nextClose(10_000))?.code, 1013)
  t.true(entries.some((e) => e.level === 'warn' && /memory budget/.test(e.msg ?? '')))
  await client.waitClosed(10_000)
  await until(() => server.stats().heldBytes === 0, 5000, 'the budget is given back')
})

// ---------------------------------------------------------------------------------------------
// 7. Sending streamed messages

test('sink: a chunk larger than maxFrameSize goes out as fragments of at most maxFrameSize', async (t) => {
  t.timeout(20_000)
  const data = patterned(2500)
  const { port } = await serve(t, {}, {
    maxFrameSize: 1000,
    whole: { '': ({ sink }) => sink([{ type: 'binary', chunks: [data] }]) }
  })
  const client = await RawClient.connect(port)
  const { data: frames } = await readMessage(client)
  t.true(frames.every((f) => f.payload.length <= 1000), frames.map((f) => f.payload.length).join(','))
  t.true(frames.length >= 3)
  t.is(frames[0].opcode, 2)
  t.true(frames.slice(1).every((f) => f.opcode === 0))
  t.true(frames.slice(0, -1).every((f) => !f.fin))
  t.true(joined(frames).equals(data))
  client.destroy()
})

test('a text stream of string chunks arrives as text; empty chunk iterables send empty messages of their type', async (t) => {
  t.timeout(20_000)
  const { url } = await serve(t, {}, {
    whole: {
      '': ({ sink }) => sink([
        { type: 'text', chunks: ['héllo ', 'wörld ', '✓'] },
        { type: 'text', chunks: [] },
        { type: 'binary', chunks: (async function * () {})() },
        { type: 'binary', chunks: [new Uint8Array([1, 2]), '3'] }
      ])
    }
  })
  const client = await connect(url)
  const got: Array<[boolean, string]> = []
  for (let i = 0; i < 4; i++) {
    const { value } = await within(client.source.next(), 5000, `message ${i}`)
    got.push([isText(value), i === 3 ? Buffer.from(value).toString('hex') : decoder.decode(value)])
  }
  t.deepEqual(got, [[true, 'héllo wörld ✓'], [true, ''], [false, ''], [false, '010233']])
  t.is((await within(client.closed, 5000, 'close')).code, 1000)
})

test('chunks that throw part-way: the peer gets the fragments sent so far, then close 1011', async (t) => {
  t.timeout(20_000)
  const { port } = await serve(t, {}, {
    whole: {
      '': ({ sink }) => sink([{
        type: 'text',
        chunks: (async function * () {
          yield 'abc'
          yield 'def'
          throw new Error('the source broke')
        })()
      }])
    }
  })
  const client = await RawClient.connect(port)
  const frames: RawFrame[] = []
  for (let i = 0; i < 10; i++) {
    const f = await client.nextFrame()
    if (f === undefined) break
    frames.push(f)
    if (f.opcode === 8) break
  }
  const data = frames.filter((f) => f.opcode < 8)
  t.deepEqual(data.map((f) => [f.opcode, f.fin, f.payload.toString()]), [[1, false, 'abc'], [0, false, 'def']])
  const close = frames[frames.length - 1]
  t.is(close.opcode, 8)
  t.is(close.payload.readUInt16BE(0), 1011)
  client.destroy()
})

for (const via of ['sink', 'send'] as const) {
  test(`${via}: chunks that throw close the connection with 1011 even when the handler catches the error and reads on`, async (t) => {
    t.timeout(20_000)
    const broken = (): AsyncGenerator<string> => (async function * () {
      yield 'abc'
      throw new Error('the source broke')
    })()
    const { port } = await serve(t, {}, {
      whole: {
        '': async ({ source, sink, send }) => {
          const sending = via === 'sink' ? sink([{ type: 'text', chunks: broken() }]) : send({ type: 'text', chunks: broken() })
          sending.catch(() => {})
          for await (const _ of source) {} // eslint-disable-line no-empty
        }
      }
    })
    const client = await RawClient.connect(port)
    const first = await client.nextFrame()
    t.deepEqual([first?.opcode, first?.fin, first?.payload.toString()], [1, false, 'abc'])
    t.is((await client.nextClose())?.code, 1011)
    client.destroy()
  })
}

test('send(): streamed messages keep their order with whole ones, from a whole-mode and a stream-mode handler', async (t) => {
  t.timeout(20_000)
  const script = async (send: Connection['send']): Promise<void> => {
    const slow = async function * (): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 3; i++) {
        await sleep(5)
        yield new Uint8Array([i, i, i])
      }
    }
    await Promise.all([
      send('a'),
      send({ type: 'binary', chunks: slow() }),
      send('c'),
      send({ type: 'text', chunks: ['d', 'e'] }),
      send(new Uint8Array([9]))
    ])
  }
  const { url } = await serve(t, {
    stream: async ({ send, source }) => {
      await script(send)
      await source.next()
    }
  }, { whole: { whole: async ({ send, source }) => { await script(send); await source.next() } } })
  for (const protocol of ['whole', 'stream']) {
    const client = await connect(url, { protocols: [protocol] })
    const got: string[] = []
    for (let i = 0; i < 5; i++) {
      const { value } = await within(client.source.next(), 5000, `${protocol}: message ${i}`)
      got.push(isText(value) ? `t:${decoder.decode(value)}` : `b:${Buffer.from(value).toString('hex')}`)
    }
    t.deepEqual(got, ['t:a', 'b:000000010101020202', 't:c', 't:de', 'b:09'], protocol)
    client.close()
    await within(client.closed, 5000, 'close')
  }
})

test('echo-stream of text that turns invalid late: the valid part is echoed, then 1007', async (t) => {
  t.timeout(20_000)
  const { port } = await serve(t, { '': ({ source, sink }) => sink(source) })
  const client = await RawClient.connect(port)
  client.send(clientFrame(1, 'valid ✓', { fin: false }))
  const echoed = await client.nextFrame()
  t.deepEqual([echoed?.opcode, echoed?.fin, echoed?.payload.toString()], [1, false, 'valid ✓'])
  client.send(clientFrame(0, Buffer.from([0xed, 0xa0, 0x80]), { fin: true })) // a surrogate: not UTF-8
  t.is((await client.nextClose())?.code, 1007)
  client.destroy()
})

// ---------------------------------------------------------------------------------------------
// 8. Real peers through the demo's echo-stream

test('ws: a 20 MiB binary and a 17 MiB text message (over the default maxMessageSize) come back through echo-stream', async (t) => {
  t.timeout(120_000)
  const demo = await startDemo(0, '127.0.0.1', { logger: captureLogger().logger, heartbeat: false })
  t.teardown(() => demo.close())
  const peer = await WsPeer.open(demo.wsUrl, 'echo-stream', { maxPayload: 64 * MiB })
  t.is(peer.ws.protocol, 'echo-stream')
  // ws offers permessage-deflate and the demo takes it, but not for a stream-mode handler.
  t.is(peer.ws.extensions, '')
  const binary = Buffer.from(patterned(20 * MiB, 3))
  const unit = 'ünïcødé ✓ '
  const text = unit.repeat(Math.ceil(17 * MiB / Buffer.byteLength(unit)))
  await peer.send(binary)
  await peer.send(text)
  const a = await peer.next(60_000)
  const b = await peer.next(60_000)
  t.true(a.isBinary)
  t.true(a.data.equals(binary), 'binary byte-equal')
  t.false(b.isBinary)
  t.true(Buffer.byteLength(text) > 16 * MiB)
  t.true(b.data.equals(Buffer.from(text)), 'text byte-equal')
  t.is((await peer.close(1000)).code, 1000)
})

test('undici WebSocket: text and binary come back through echo-stream', async (t) => {
  t.timeout(60_000)
  const demo = await startDemo(0, '127.0.0.1', { logger: captureLogger().logger, heartbeat: false })
  t.teardown(() => demo.close())
  const ws = new UndiciWebSocket(demo.wsUrl, { protocols: ['echo-stream'] } as any)
  ws.binaryType = 'arraybuffer'
  const messages: Array<string | Uint8Array> = []
  ws.addEventListener('message', (e) => { messages.push(typeof e.data === 'string' ? e.data : new Uint8Array(e.data as ArrayBuffer)) })
  const closed = new Promise<number>((resolve) => ws.addEventListener('close', (e) => resolve(e.code)))
  await within(new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve())
    ws.addEventListener('error', () => reject(new Error('undici WebSocket error')))
  }), 5000, 'undici open')
  t.is(ws.protocol, 'echo-stream')
  const big = patterned(3 * MiB, 5)
  ws.send('grüße ✓')
  ws.send(big)
  ws.send('')
  await until(() => messages.length === 3, 30_000, 'three echoes')
  t.is(messages[0], 'grüße ✓')
  t.true(messages[1] instanceof Uint8Array && Buffer.from(messages[1]).equals(big))
  t.is(messages[2], '')
  ws.close(1000)
  t.is(await within(closed, 5000, 'undici close'), 1000)
})

peerTest('python3-websockets')('python websockets: fragmented text and binary messages (iterables in send) come back through echo-stream', async (t) => {
  t.timeout(90_000)
  const demo = await startDemo(0, '127.0.0.1', { logger: captureLogger().logger, heartbeat: false })
  t.teardown(() => demo.close())
  const result = await runPythonClient<{ protocol: string, received: Array<{ type: string, data?: string, hex?: string }>, close_code: number }>({
    url: demo.wsUrl,
    subprotocols: ['echo-stream'],
    messages: [
      { fragments: ['frag', 'mént', 'ed ✓'] },
      { hexfragments: ['00ff', '', '7f80'] },
      { text: 'whole' }
    ],
    close: { code: 1000, reason: 'done' }
  })
  t.is(result.protocol, 'echo-stream')
  t.deepEqual(result.received, [
    { type: 'text', data: 'fragménted ✓' },
    { type: 'binary', hex: '00ff7f80' },
    { type: 'text', data: 'whole' }
  ])
  t.is(result.close_code, 1000)
})

// ---------------------------------------------------------------------------------------------
// 9. Memory through echo-stream

test('256 MiB through echo-stream in bounded memory: the receive queue and the server\'s held bytes stay small, the echo matches', async (t) => {
  t.timeout(300_000)
  const CHUNK = 64 * 1024
  const COUNT = 4096 // 256 MiB
  const demo = await startDemo(0, '127.0.0.1', { logger: captureLogger().logger, heartbeat: false })
  t.teardown(() => demo.close())
  const client = await connect(demo.wsUrl, { protocols: ['echo-stream'], messages: 'stream', maxMessageSize: Infinity })
  t.teardown(() => client.close())
  const buffer = patterned(CHUNK, 11)
  const sentHash = createHash('sha256')
  const sending = client.send({ type: 'binary', chunks: repeated(buffer, COUNT, () => sentHash.update(buffer)) })

  let maxHeld = 0
  let sampling = true
  const sampler = (async () => {
    for (let i = 0; i < 100_000 && sampling; i++) {
      maxHeld = Math.max(maxHeld, demo.server.stats().heldBytes)
      await sleep(20)
    }
  })()

  const { value: message } = await within(client.source.next(), 30_000, 'the echo starts')
  t.is(message!.type, 'binary')
  const gotHash = createHash('sha256')
  let got = 0
  for await (const chunk of message!.chunks) {
    gotHash.update(chunk)
    got += chunk.length
  }
  sampling = false
  await sampler
  await within(sending, 30_000, 'the send to finish')
  t.is(got, CHUNK * COUNT)
  t.is(gotHash.digest('hex'), sentHash.digest('hex'))
  const conn = onlyConnection(demo.server)
  const stats = conn.stats()
  const bound = MiB + 64 * 1024 + 4 * ITEM_OVERHEAD
  t.true(stats.peakQueuedInBytes <= bound, `server's receive queue peaked at ${stats.peakQueuedInBytes}`)
  t.true(maxHeld < 8 * MiB, `server held at most ${maxHeld} B`)
  t.log(`peak receive queue ${stats.peakQueuedInBytes} B, held at most ${maxHeld} B, peak output ${stats.peakQueuedOutBytes} B`)
})

// ---------------------------------------------------------------------------------------------
// The peer's close in the middle of a message

test('a peer that closes in the middle of a streamed message: the handler\'s chunks throw a ConnectionClosedError with its code, and the close is answered', async (t) => {
  t.timeout(20_000)
  let error: unknown
  const { port } = await serve(t, {
    '': async ({ source }) => {
      for await (const message of source) {
        try {
          for await (const _ of message.chunks) {} // eslint-disable-line no-empty
        } catch (err) {
          error = err
        }
      }
    }
  })
  const client = await RawClient.connect(port)
  client.send(clientFrame(2, new Uint8Array(100), { fin: false }))
  client.send(clientFrame(8, closePayload(1000)))
  t.is((await client.nextClose())?.code, 1000)
  await until(() => error !== undefined, 5000, 'the chunks loop throws')
  t.true(error instanceof ConnectionClosedError, String(error))
  t.is((error as ConnectionClosedError).closeCode, 1000)
  client.destroy()
})

test('server.close() in the middle of a streamed message: the peer gets 1001, and the handler\'s chunks throw a ConnectionClosedError once the peer answers', async (t) => {
  t.timeout(20_000)
  const got: string[] = []
  let error: unknown
  const { port, server } = await serve(t, {
    '': async ({ source }) => {
      for await (const message of source) {
        try {
          for await (const chunk of message.chunks) got.push(decoder.decode(chunk))
        } catch (err) {
          error = err
        }
      }
    }
  })
  const client = await RawClient.connect(port)
  client.send(clientFrame(1, 'begun', { fin: false }))
  await until(() => got.length === 1, 5000, 'the first chunk reaches the handler')
  const closing = server.close()
  t.is((await client.nextClose())?.code, 1001)
  client.send(clientFrame(8, closePayload(1001)))
  await within(closing, 10_000, 'server.close')
  await until(() => error !== undefined, 5000, 'the chunks loop throws')
  t.deepEqual(got, ['begun'])
  t.true(error instanceof ConnectionClosedError, String(error))
  t.is((error as ConnectionClosedError).closeCode, 1001)
  client.destroy()
})

// ---------------------------------------------------------------------------------------------
// Review findings: a streamed send() cut off, a returned source with a pending next(), and a
// message being echoed when source is left

test('a streamed send() cut off by the peer\'s protocol error: it and the send() queued behind it reject with ConnectionClosedError (the second threw a §5.4 Error), and the close is 1007', async (t) => {
  t.timeout(20_000)
  const results: unknown[] = []
  let done!: () => void
  const finished = new Promise<void>((resolve) => { done = resolve })
  const { port, entries } = await serve(t, {}, {
    whole: {
      '': async ({ source, send }) => {
        await source.next()
        let release!: () => void
        const stalled = new Promise<void>((resolve) => { release = resolve })
        async function * chunks (): AsyncGenerator<Uint8Array> {
          yield Uint8Array.of(1, 2, 3)
          await stalled
          yield Uint8Array.of(4)
        }
        const streamed = send({ type: 'binary', chunks: chunks() }).then(() => 'sent', (err: unknown) => err)
        const after = send('reply').then(() => 'sent', (err: unknown) => err)
        results.push(...await Promise.all([streamed, after]))
        release()
        done()
      }
    }
  })
  const client = await RawClient.connect(port)
  client.send(clientFrame(1, 'go'))
  // The streamed message has begun (its first chunk is out) before the bad frame comes.
  const first = await client.nextFrame()
  t.deepEqual([first?.opcode, first?.fin, [...first!.payload]], [2, false, [1, 2, 3]])
  client.send(clientFrame(1, Buffer.from([0xff])))
  await within(finished, 10_000, 'both sends settled')
  t.is(results.length, 2)
  for (const r of results) t.true(r instanceof ConnectionClosedError, String(r))
  t.is((await client.nextClose())?.code, 1007)
  t.false(entries.some((e) => e.level === 'error'), JSON.stringify(entries.map((e) => e.msg)))
  client.destroy()
})

for (const mode of ['whole', 'stream'] as const) {
  test(`${mode} mode: source.return() while sink(source) waits on it ends the sink, and the connection closes with 1000`, async (t) => {
    t.timeout(20_000)
    const handler = async ({ source, sink }: { source: AsyncIterator<unknown> & AsyncIterable<unknown>, sink: (s: AsyncIterable<never>) => Promise<void> }): Promise<void> => {
      const sinking = sink(source as AsyncIterable<never>)
      // A later turn: the sink is waiting on the source by then.
      await new Promise(setImmediate)
      void source.return?.()
      await sinking
    }
    const { port } = mode === 'stream'
      ? await serve(t, { '': handler as unknown as StreamHandler })
      : await serve(t, {}, { whole: { '': handler as unknown as Handler } })
    const client = await RawClient.connect(port)
    t.deepEqual(await client.nextClose(5000), { code: 1000, reason: '' })
    client.destroy()
  })
}

test('send(m) of the message being received, then a break out of source: the whole message is echoed, then 1000 (it was abandoned: 1011)', async (t) => {
  t.timeout(20_000)
  let sent: Promise<unknown> | undefined
  const broke = deferred<undefined>()
  const { port } = await serve(t, {
    '': async ({ source, send }) => {
      for await (const message of source) {
        sent = send(message).then(() => 'sent', (err: unknown) => String(err))
        break
      }
      broke.resolve(undefined)
      await sent
    }
  })
  const client = await RawClient.connect(port)
  client.send(clientFrame(2, Buffer.from([1, 2]), { fin: false }))
  // The handler has the message, has sent it on and broken out before the rest of it comes.
  await within(broke.promise, 5000, 'the handler breaks out')
  client.send(clientFrame(0, Buffer.from([3, 4]), { fin: true }))
  const back = await readMessage(client)
  t.deepEqual([...joined(back.data)], [1, 2, 3, 4])
  t.deepEqual(await client.nextClose(), { code: 1000, reason: '' })
  t.is(await sent, 'sent')
  client.destroy()
})

test('peek one chunk, then break out of source: done reading, so 1000 at once (a peeked message kept the connection open for good)', async (t) => {
  t.timeout(20_000)
  const { port, server } = await serve(t, {
    '': async (conn) => {
      for await (const message of conn.source) {
        await message.chunks.next()
        break
      }
      await conn.closed
    }
  })
  const client = await RawClient.connect(port)
  client.send(clientFrame(2, Buffer.alloc(10, 1), { fin: false }))
  // At once: the close comes while the message is still unfinished; the rest follows it.
  t.deepEqual(await client.nextClose(5000), { code: 1000, reason: '' })
  client.send(clientFrame(0, Buffer.alloc(100_000, 2), { fin: true }))
  client.send(clientFrame(2, Buffer.alloc(10, 3)))
  client.send(clientFrame(8, closePayload(1000)))
  await client.waitClosed()
  await until(() => server.stats().heldBytes === 0, 5000, 'nothing held')
  t.is(server.stats().heldBytes, 0)
})
