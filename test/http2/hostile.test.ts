/**
 * WebSocket over HTTP/2 against hostile or broken peers, written with `node:http2`: streams reset
 * and sessions gone while `authorize` decides, sessions kept open with no stream, refusals whose
 * body the peer never lets through, a request that ends its stream at once, a header list past
 * the limit, a window never opened, data after the close, stalled streams and streams awaiting `authorize` against `memoryBudget`,
 * and, for the client, a refusal whose body never ends, a server that pushes streams, and a
 * session that goes away as a WebSocket is opened on it.
 */

import http2, { type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { connect, UpgradeError, WebSocketServer, type Connection, type WebSocketServerOptions } from '../../src/index.js'
import { SESSION_IDLE_TIMEOUT } from '../../src/http2/client.js'
import { VirtualClock } from '../../src/testing.js'
import { peerTest } from '../peers.js'
import { captureLogger, clientFrame, deferred, echo, until, watch, within } from '../server/helpers.js'
import { H2Socket, makeCertificate, openSession } from './helpers.js'

const test = peerTest('openssl')

let key = ''
let cert = ''

test.before(async () => {
  ({ key, cert } = await makeCertificate())
})

async function start (t: { teardown: (f: () => Promise<void>) => void }, options: WebSocketServerOptions = {}): Promise<{ server: WebSocketServer, origin: string }> {
  const server = new WebSocketServer({ logger: captureLogger().logger, ...options })
  server.register('', echo)
  const address = await server.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => within(server.close(), 15_000, 'server.close'))
  return { server, origin: `https://127.0.0.1:${address.port}` }
}

/** Send an extended CONNECT and resolve with the client stream as soon as it is sent. */
function sendConnect (session: http2.ClientHttp2Session, origin: string, options: http2.ClientSessionRequestOptions = {}): http2.ClientHttp2Stream {
  const stream = session.request({
    ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https', ':path': '/', ':authority': new URL(origin).host, 'sec-websocket-version': '13'
  }, options)
  stream.on('error', () => {})
  return stream
}

test('a stream the peer resets while authorize decides gives its place back: maxStreamsPerSession such resets leave the session open to WebSockets', async (t) => {
  const limit = 2
  const asked: Array<{ stream: ServerHttp2Stream, answer: (ok: boolean) => void }> = []
  const { origin } = await start(t, {
    maxStreamsPerSession: limit,
    authorize: (req) => new Promise<boolean>((resolve) => { asked.push({ stream: (req as { stream: ServerHttp2Stream }).stream, answer: resolve }) })
  })
  const session = await openSession(origin)
  t.teardown(() => { session.destroy() })
  for (let i = 0; i < limit; i++) {
    const stream = sendConnect(session, origin)
    await until(() => asked.length === 1, 5000, 'authorize is asked')
    stream.close(http2.constants.NGHTTP2_CANCEL)
    const { stream: seen, answer } = asked[0]
    await until(() => seen.closed, 5000, 'the server saw the reset')
    // authorize settles after the reset: nothing is answered on the stream gone.
    answer(true)
    asked.length = 0
    await new Promise((resolve) => setImmediate(resolve))
  }
  const opening = H2Socket.open(session)
  await until(() => asked.length === 1, 5000, 'authorize is asked for the next WebSocket (not refused with REFUSED_STREAM)')
  asked[0].answer(true)
  t.is((await within(opening, 5000, 'the answer')).status, 200)
})

for (const outcome of ['accepts', 'refuses', 'throws'] as const) {
  test(`a peer that leaves while authorize decides: authorize then ${outcome}, and nothing crashes (its session's socket is no longer readable)`, async (t) => {
    const asked: Array<{ stream: ServerHttp2Stream, settle: () => void }> = []
    const { origin, server } = await start(t, {
      authorize: (req) => new Promise((resolve, reject) => {
        const settle = (): void => { if (outcome === 'throws') reject(new Error('late')); else resolve(outcome === 'accepts') }
        asked.push({ stream: (req as { stream: ServerHttp2Stream }).stream, settle })
      })
    })
    const session = await openSession(origin)
    sendConnect(session, origin)
    await until(() => asked.length === 1, 5000, 'authorize is asked')
    session.destroy()
    await until(() => asked[0].stream.closed, 5000, 'the server saw the session go')
    asked[0].settle()
    await new Promise((resolve) => setTimeout(resolve, 50))
    // The server carries on: a new session's WebSocket is served.
    const next = await openSession(origin)
    t.teardown(() => { next.destroy() })
    const opening = H2Socket.open(next)
    await until(() => asked.length === 2, 5000, 'authorize is asked again')
    asked[1].settle()
    t.is((await within(opening, 5000, 'the answer')).status, outcome === 'accepts' ? 200 : outcome === 'refuses' ? 403 : 500)
    t.is(server.clients.size, outcome === 'accepts' ? 1 : 0)
  })
}

test('a session of listen()\'s server with no stream open gets GOAWAY at handshakeTimeout (on the server\'s clock; not 1 ms before), after its WebSockets as before its first', async (t) => {
  const clock = new VirtualClock()
  const { origin } = await start(t, { clock, handshakeTimeout: 30_000 })
  const session = await openSession(origin)
  t.teardown(() => { session.destroy() })
  const goaway = deferred<undefined>()
  session.once('goaway', () => goaway.resolve(undefined))
  const gone = watch(goaway.promise)
  // A WebSocket, then a refusal: the session stays while a stream is open ...
  const ws = await H2Socket.open(session)
  t.is(ws.status, 200)
  await clock.advance(30_000)
  t.false(gone(), 'a session with a WebSocket open stays')
  const refused = await H2Socket.open(session, '/', { 'sec-websocket-version': '8' })
  t.is(refused.status, 400)
  await refused.whenClosed()
  ws.stream.close(http2.constants.NGHTTP2_CANCEL)
  await ws.whenClosed()
  // ... and with none open it has handshakeTimeout to open another.
  await clock.advance(29_999)
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.false(gone(), 'not 1 ms before handshakeTimeout')
  await clock.advance(1)
  await within(goaway.promise, 5000, 'GOAWAY')
  await until(() => session.closed || session.destroyed, 5000, 'the session ends')
})

test('a refusal (or a plain request\'s 405) whose body the peer never lets through (SETTINGS_INITIAL_WINDOW_SIZE 0) is reset a second later, as an HTTP/1.1 refusal\'s socket is dropped', async (t) => {
  const clock = new VirtualClock()
  const { origin } = await start(t, { clock })
  const session = http2.connect(origin, { rejectUnauthorized: false, settings: { initialWindowSize: 0 } })
  session.on('error', () => {})
  t.teardown(() => { session.destroy() })
  await new Promise((resolve) => session.once('remoteSettings', resolve))
  const refused = await H2Socket.open(session, '/', { 'sec-websocket-version': '8' })
  t.is(refused.status, 400)
  // A plain GET's 405 likewise.
  const get = session.request({ ':path': '/' })
  get.on('error', () => {})
  const [getHeaders] = await new Promise<[http2.IncomingHttpHeaders]>((resolve) => get.once('response', (h) => resolve([h])))
  t.is(Number(getHeaders[':status']), 405)
  const closed = watch(refused.whenClosed(10_000))
  const getClosed = watch(new Promise((resolve) => get.once('close', resolve)))
  await clock.advance(999)
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.false(closed() || getClosed(), 'not 1 ms before the second')
  await clock.advance(1)
  await until(() => closed() && getClosed(), 5000, 'the refused streams are reset')
  // The answers were never all sent: CANCEL, not the NO_ERROR of RFC 9113 §8.1.
  t.is(refused.stream.rstCode, http2.constants.NGHTTP2_CANCEL)
  t.is(get.rstCode, http2.constants.NGHTTP2_CANCEL)
})

test('an extended CONNECT that ends its stream (END_STREAM on the HEADERS) gets 400: the client could never send a frame on it', async (t) => {
  let handlers = 0
  const { origin, server } = await start(t)
  server.register('', () => { handlers++ })
  const session = await openSession(origin)
  t.teardown(() => { session.destroy() })
  const stream = sendConnect(session, origin, { endStream: true })
  const [headers] = await within(new Promise<[http2.IncomingHttpHeaders]>((resolve) => stream.once('response', (h) => resolve([h]))), 5000, 'the response')
  t.is(Number(headers[':status']), 400)
  t.is(handlers, 0)
  t.is(server.clients.size, 0)
})

test('a header list past maxHeaderSize (SETTINGS_MAX_HEADER_LIST_SIZE) resets that stream alone (ENHANCE_YOUR_CALM); the session carries on', async (t) => {
  const { origin } = await start(t, { maxHeaderSize: 4096 })
  const session = await openSession(origin)
  t.teardown(() => { session.destroy() })
  t.is(session.remoteSettings.maxHeaderListSize, 4096)
  const huge = session.request({
    ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https', ':path': '/', ':authority': new URL(origin).host, 'sec-websocket-version': '13', 'x-big': 'a'.repeat(8192)
  })
  huge.on('error', () => {})
  await within(new Promise((resolve) => huge.once('close', resolve)), 5000, 'the oversized request is reset')
  t.is(huge.rstCode, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM)
  t.is((await H2Socket.open(session)).status, 200)
})

test('a peer that never opens its window (SETTINGS_INITIAL_WINDOW_SIZE 0): conn.close() ends the WebSocket at closeTimeout (on the server\'s clock; not 1 ms before) with RST_STREAM CANCEL (RFC 8441 §5), and the close frame it could not send counts in heldBytes until then', async (t) => {
  const clock = new VirtualClock()
  const opened = deferred<Connection>()
  const server = new WebSocketServer({ logger: captureLogger().logger, clock, closeTimeout: 5000, heartbeat: false })
  server.register('', async (conn) => { opened.resolve(conn); for await (const m of conn.source) void m })
  const { port } = await server.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => within(server.close(), 15_000, 'server.close'))
  const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, settings: { initialWindowSize: 0 } })
  session.on('error', () => {})
  t.teardown(() => { session.destroy() })
  await new Promise((resolve) => session.once('remoteSettings', resolve))
  const ws = await H2Socket.open(session)
  t.is(ws.status, 200)
  const conn = await within(opened.promise, 5000, 'the handler')
  conn.close(1000, 'bye')
  await until(() => server.stats().heldBytes > 0, 5000, 'the close frame is queued')
  const closed = watch(conn.closed)
  await clock.advance(4999)
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.false(closed(), 'not 1 ms before closeTimeout')
  await clock.advance(1)
  t.deepEqual(await within(conn.closed, 5000, 'closed'), { code: 1000, reason: 'bye', wasClean: false })
  await ws.whenClosed()
  // The close frame never got through the window.
  await t.throwsAsync(ws.next(100), { message: 'the stream ended before a frame came' })
  // RFC 8441 §5: an abort (TCP's RST) is RST_STREAM CANCEL.
  t.is(ws.stream.rstCode, http2.constants.NGHTTP2_CANCEL)
  await until(() => server.stats().heldBytes === 0, 5000, 'what was queued goes back to the budget')
})

test('a peer that sends data after its close frame: nothing more reaches the handler, and the stream is reset (NO_ERROR) a second after our END_STREAM (on the server\'s clock)', async (t) => {
  const clock = new VirtualClock()
  const received: string[] = []
  const server = new WebSocketServer({ logger: captureLogger().logger, clock })
  server.register('', async (conn) => { for await (const m of conn.source) received.push(new TextDecoder().decode(m)) })
  const { port } = await server.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => within(server.close(), 15_000, 'server.close'))
  const session = await openSession(`https://127.0.0.1:${port}`)
  t.teardown(() => { session.destroy() })
  const ws = await H2Socket.open(session)
  ws.sendText('before')
  ws.send(0x8, new Uint8Array([0x03, 0xe8]))
  const answer = await ws.next()
  t.is(answer.opcode, 8)
  await until(() => ws.ended, 5000, 'our END_STREAM')
  // The peer goes on: frames after its close, bounded in count.
  for (let i = 0; i < 20; i++) ws.sendText(`after ${i}`)
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.false(ws.closed)
  await clock.advance(1000)
  await ws.whenClosed()
  t.is(ws.stream.rstCode, http2.constants.NGHTTP2_NO_ERROR)
  t.deepEqual(received, ['before'])
  t.is(server.stats().heldBytes, 0)
})

test('what Node holds for stalled streams (their flow-control window) counts against memoryBudget: the streams past it fail with 1013', async (t) => {
  t.timeout(60_000)
  const memoryBudget = 2 * 1024 * 1024
  const held: ServerHttp2Stream[] = []
  const closes: Array<Promise<{ code: number }>> = []
  const server = new WebSocketServer({
    logger: captureLogger().logger,
    memoryBudget,
    receiveHighWaterMark: 16 * 1024,
    authorize: (req) => { held.push((req as { stream: ServerHttp2Stream }).stream); return true }
  })
  // Never reads: each stream pauses once its receive queue is past the mark.
  server.register('', async (conn: Connection) => { closes.push(conn.closed); await new Promise<void>((resolve) => conn.signal.addEventListener('abort', () => resolve())) })
  const { port } = await server.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => within(server.close(), 15_000, 'server.close'))
  const origin = `https://127.0.0.1:${port}`
  const sessions = await Promise.all([openSession(origin), openSession(origin)])
  t.teardown(() => { for (const s of sessions) s.destroy() })
  const streams = 16
  const sockets: H2Socket[] = []
  for (let i = 0; i < streams; i++) sockets.push(await H2Socket.open(sessions[i % 2]))
  t.true(sockets.every((s) => s.status === 200))
  // 512 KiB at each, more than the 256 KiB stream window: the rest waits at the client.
  for (const s of sockets) for (let j = 0; j < 16; j++) s.stream.write(clientFrame(0x2, new Uint8Array(32 * 1024)))
  // Let it arrive: until nothing more moves for a while (bounded).
  let last = -1
  for (let i = 0; i < 100; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    const now = held.reduce((n, s) => n + s.readableLength, 0) + server.stats().heldBytes
    if (now === last && i > 10) break
    last = now
  }
  const inNode = held.reduce((n, s) => n + (s.destroyed ? 0 : s.readableLength), 0)
  const counted = server.stats().heldBytes
  t.true(inNode <= counted, `Node holds ${inNode} bytes in the streams, the budget counts ${counted} in all`)
  t.true(counted <= memoryBudget, `the budget counts ${counted}, over its ${memoryBudget}`)
  const codes = await Promise.all(closes.filter((_, i) => held[i].destroyed).map(async (c) => (await c).code))
  t.true(codes.length > 0 && codes.every((c) => c === 1013), `closed: ${codes.join(',')}`)
})

test('what Node holds for streams awaiting authorize (their flow-control window) counts against memoryBudget: those past it get 503', async (t) => {
  t.timeout(60_000)
  const memoryBudget = 1024 * 1024
  const waiting: ServerHttp2Stream[] = []
  const decisions: Array<(ok: boolean) => void> = []
  const server = new WebSocketServer({
    logger: captureLogger().logger,
    memoryBudget,
    // Decides at the end of the test: refuses.
    authorize: (req) => { waiting.push((req as { stream: ServerHttp2Stream }).stream); return new Promise<boolean>((resolve) => decisions.push(resolve)) }
  })
  server.register('', echo)
  const { port } = await server.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => within(server.close(), 15_000, 'server.close'))
  const origin = `https://127.0.0.1:${port}`
  const sessions = await Promise.all([openSession(origin), openSession(origin)])
  t.teardown(() => { for (const s of sessions) s.destroy() })
  const statuses: Array<number | string> = []
  for (let i = 0; i < 16; i++) {
    const stream = sendConnect(sessions[i % 2], origin)
    stream.once('response', (h) => statuses.push(Number(h[':status'])))
    stream.once('close', () => { if (stream.sentHeaders !== undefined && statuses.length < 16) statuses.push(`closed ${stream.rstCode ?? ''}`) })
    // 512 KiB sent before any answer, more than the 256 KiB stream window.
    for (let j = 0; j < 16; j++) stream.write(clientFrame(0x2, new Uint8Array(32 * 1024)))
  }
  await until(() => waiting.length > 0, 5000, 'authorize is asked')
  // Let it arrive: until nothing more moves for a while (bounded).
  let last = -1
  for (let i = 0; i < 100; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    const now = waiting.reduce((n, s) => n + s.readableLength, 0)
    if (now === last && i > 10) break
    last = now
  }
  const inNode = waiting.reduce((n, s) => n + s.readableLength, 0)
  const counted = server.stats().heldBytes
  t.true(inNode <= counted, `Node holds ${inNode} bytes in the streams awaiting authorize, the budget counts ${counted}`)
  t.true(counted <= memoryBudget, `the budget counts ${counted}, over its ${memoryBudget}`)
  t.true(waiting.length < 16, 'some streams were not let in')
  await until(() => statuses.length >= 16 - waiting.length, 5000, 'the others are answered')
  t.true(statuses.every((s) => s === 503), `answered: ${statuses.join(',')}`)
  for (const decide of decisions) decide(false)
  await until(() => statuses.length === 16, 5000, 'every stream answered')
  t.is(server.stats().heldBytes, 0, 'the windows went back to the budget')
})

test('client: a refusal whose body never ends rejects at handshakeTimeout, resets its stream, and lets the session close when idle', async (t) => {
  const host = http2.createSecureServer({ key, cert, settings: { enableConnectProtocol: true } })
  const serverStreams: ServerHttp2Stream[] = []
  const serverSessions: ServerHttp2Session[] = []
  host.on('session', (s) => serverSessions.push(s))
  host.on('stream', (stream) => {
    stream.on('error', () => {})
    serverStreams.push(stream)
    stream.respond({ ':status': 403 })
    // A body begun and never ended.
    stream.write('forbid')
  })
  await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const s of serverSessions) s.destroy()
    await new Promise<void>((resolve) => host.close(() => resolve()))
  })
  const clock = new VirtualClock()
  const url = `wss://127.0.0.1:${(host.address() as AddressInfo).port}/`
  const connecting = connect(url, { http2: true, tls: { rejectUnauthorized: false }, handshakeTimeout: 5000, clock })
  const failed = watch(connecting)
  await until(() => serverStreams.length === 1, 5000, 'the CONNECT arrives')
  await new Promise((resolve) => setTimeout(resolve, 50))
  await clock.advance(5000)
  await until(failed, 5000, 'connect() settles at handshakeTimeout')
  const err = await t.throwsAsync(connecting)
  t.false(err instanceof UpgradeError && err.status === 200)
  await until(() => serverStreams[0].closed, 5000, 'the refused stream is reset by the client')
  await clock.advance(SESSION_IDLE_TIMEOUT)
  await until(() => serverSessions[0].closed || serverSessions[0].destroyed, 5000, 'the idle session closes')
})

test('client: the session refuses server push (SETTINGS_ENABLE_PUSH 0), so a server cannot make it hold pushed streams', async (t) => {
  const host = http2.createSecureServer({ key, cert, settings: { enableConnectProtocol: true } })
  const serverSessions: ServerHttp2Session[] = []
  host.on('session', (s) => serverSessions.push(s))
  const pushes: Array<Error | null> = []
  host.on('stream', (stream) => {
    stream.on('error', () => {})
    stream.respond({ ':status': 200 })
    for (let i = 0; i < 10; i++) {
      try {
        stream.pushStream({ ':path': `/pushed/${i}` }, (err, pushed) => {
          pushes.push(err)
          if (err !== null) return
          pushed.on('error', () => {})
          pushed.respond({ ':status': 200 })
          pushed.end(new Uint8Array(60_000))
        })
      } catch (err) {
        pushes.push(err as Error)
      }
    }
  })
  await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const s of serverSessions) s.destroy()
    await new Promise<void>((resolve) => host.close(() => resolve()))
  })
  const conn = await connect(`wss://127.0.0.1:${(host.address() as AddressInfo).port}/`, { http2: true, tls: { rejectUnauthorized: false } })
  t.teardown(() => { conn.close() })
  t.is(conn.httpVersion, '2')
  t.false(serverSessions[0].remoteSettings.enablePush)
  t.is(pushes.length, 10)
  t.true(pushes.every((e) => e !== null), 'every push refused')
})

test('client: a session that goes away (GOAWAY) as the CONNECT is sent does not fail connect(): the request, refused unprocessed, is sent again on a new session', async (t) => {
  const host = http2.createSecureServer({ key, cert, settings: { enableConnectProtocol: true } })
  const serverSessions: ServerHttp2Session[] = []
  host.on('session', (s) => {
    serverSessions.push(s)
    // The first session goes away before any stream: the client's CONNECT on it is not processed.
    if (serverSessions.length === 1) setImmediate(() => { s.goaway(http2.constants.NGHTTP2_NO_ERROR, 0) })
  })
  host.on('stream', (stream) => {
    stream.on('error', () => {})
    stream.respond({ ':status': 200 })
    stream.pipe(stream)
  })
  await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const s of serverSessions) s.destroy()
    await new Promise<void>((resolve) => host.close(() => resolve()))
  })
  const conn = await connect(`wss://127.0.0.1:${(host.address() as AddressInfo).port}/`, { http2: true, tls: { rejectUnauthorized: false }, handshakeTimeout: 5000 })
  t.teardown(() => { conn.close() })
  t.is(conn.httpVersion, '2')
  t.is(serverSessions.length, 2)
})

test('client: a WebSocket the client drops (closeTimeout, the server never answering its close) is reset with RST_STREAM CANCEL (RFC 8441 §5), not NO_ERROR', async (t) => {
  const host = http2.createSecureServer({ key, cert, settings: { enableConnectProtocol: true } })
  const serverSessions: ServerHttp2Session[] = []
  host.on('session', (s) => serverSessions.push(s))
  const streams: ServerHttp2Stream[] = []
  host.on('stream', (stream) => {
    stream.on('error', () => {})
    streams.push(stream)
    stream.respond({ ':status': 200 })
    // Reads what the client sends and never answers.
    stream.resume()
  })
  await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const s of serverSessions) s.destroy()
    await new Promise<void>((resolve) => host.close(() => resolve()))
  })
  const clock = new VirtualClock()
  const conn = await connect(`wss://127.0.0.1:${(host.address() as AddressInfo).port}/`, { http2: true, tls: { rejectUnauthorized: false }, clock, closeTimeout: 1000, heartbeat: false })
  conn.close(1000)
  await new Promise((resolve) => setTimeout(resolve, 20))
  await clock.advance(1000)
  t.like(await within(conn.closed, 5000, 'closed'), { code: 1000, wasClean: false })
  await until(() => streams[0].closed, 5000, 'the server sees the stream close')
  t.is(streams[0].rstCode, http2.constants.NGHTTP2_CANCEL)
})
