/**
 * The server over HTTP/2 (RFC 8441) with a `node:http2` client writing frames by hand: the
 * extended CONNECT handshake and its refusals, echo, closing with END_STREAM, a reset stream,
 * HTTP/1.1 beside it on the same port, and `attach` to an `http2.createSecureServer`.
 */

import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import WebSocket from 'ws'
import { WebSocketServer, type Connection, type WebSocketServerOptions } from '../../src/index.js'
import { peerTest } from '../peers.js'
import { captureLogger, closePayload, deferred, echo, timeoutsUntilDropped, until, watch, within } from '../server/helpers.js'
import { VirtualClock } from '../../src/testing.js'
import { closeCodeOf, H2Socket, makeCertificate, openSession } from './helpers.js'

const test = peerTest('openssl')

let key = ''
let cert = ''

test.before(async () => {
  ({ key, cert } = await makeCertificate())
})

async function start (t: { teardown: (f: () => Promise<void>) => void }, options: WebSocketServerOptions = {}, setup?: (server: WebSocketServer) => void): Promise<{ server: WebSocketServer, origin: string }> {
  const server = new WebSocketServer({ logger: captureLogger().logger, ...options })
  server.register('echo', echo)
  server.register('', echo)
  setup?.(server)
  const address = await server.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => within(server.close(), 15_000, 'server.close'))
  return { server, origin: `https://127.0.0.1:${address.port}` }
}

test('the server advertises SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3)', async (t) => {
  const { origin } = await start(t)
  const session = await openSession(origin)
  t.teardown(() => { session.destroy() })
  t.true(session.remoteSettings.enableConnectProtocol)
})

test('extended CONNECT: 200 with the subprotocol, then echo; conn.httpVersion is 2', async (t) => {
  let seen: Connection | undefined
  const { origin } = await start(t, {}, (server) => server.register('chat', (conn) => { seen = conn; return conn.sink(conn.source) }))
  const session = await openSession(origin)
  t.teardown(() => { session.destroy() })
  const ws = await H2Socket.open(session, '/room?x=1', { 'sec-websocket-protocol': 'nope, chat', origin: 'https://example.com' })
  t.is(ws.status, 200)
  t.is(ws.response['sec-websocket-protocol'], 'chat')
  // RFC 8441 §5: no key was sent, so no accept comes back.
  t.is(ws.response['sec-websocket-accept'], undefined)
  ws.sendText('hello')
  const frame = await ws.next()
  t.is(frame.opcode, 1)
  t.is(frame.payload.toString(), 'hello')
  t.is(seen?.httpVersion, '2')
  t.is(seen?.url, '/room?x=1')
  t.is(seen?.headers.origin, 'https://example.com')
  t.is(seen?.headers.host, new URL(origin).host)
  t.is(seen?.remoteAddress, '127.0.0.1')
})

test('a sec-websocket-key (as undici sends) gets its sec-websocket-accept', async (t) => {
  const { origin } = await start(t)
  const session = await openSession(origin)
  t.teardown(() => { session.destroy() })
  const ws = await H2Socket.open(session, '/', { 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' })
  t.is(ws.status, 200)
  // RFC 6455 §1.3's example key and accept.
  t.is(ws.response['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=')
})

test('permessage-deflate is negotiated in the HEADERS', async (t) => {
  const { origin } = await start(t, { perMessageDeflate: true })
  const session = await openSession(origin)
  t.teardown(() => { session.destroy() })
  const ws = await H2Socket.open(session, '/', { 'sec-websocket-extensions': 'permessage-deflate; client_max_window_bits' })
  t.is(ws.status, 200)
  t.regex(String(ws.response['sec-websocket-extensions']), /^permessage-deflate/)
})

const refusals: Array<{ title: string, headers: Record<string, string>, status: number, options?: WebSocketServerOptions, check?: (ws: H2Socket) => void }> = [
  { title: 'a :protocol other than websocket gets 501 (RFC 9220 §3 by analogy)', headers: { ':protocol': 'webtransport' }, status: 501 },
  { title: 'a sec-websocket-version other than 13 gets 400 with sec-websocket-version: 13', headers: { 'sec-websocket-version': '8' }, status: 400, check: (ws) => { if (ws.response['sec-websocket-version'] !== '13') throw new Error('no sec-websocket-version: 13') } },
  { title: 'a subprotocol without a handler gets 400', headers: { 'sec-websocket-protocol': 'nothing-here' }, status: 400 },
  { title: 'a malformed subprotocol list gets 400', headers: { 'sec-websocket-protocol': 'a b' }, status: 400 },
  { title: 'an origin not allowed gets 403', headers: { origin: 'https://evil.example' }, status: 403, options: { origins: ['https://good.example'] } },
  { title: 'authorize refusing gets 401 with its header', headers: {}, status: 401, options: { authorize: () => ({ status: 401, headers: { 'WWW-Authenticate': 'Bearer' } }) }, check: (ws) => { if (ws.response['www-authenticate'] !== 'Bearer') throw new Error('no www-authenticate') } },
  { title: 'authorize throwing gets 500', headers: {}, status: 500, options: { authorize: () => { throw new Error('boom') } } }
]

for (const r of refusals) {
  test(`refusal: ${r.title}`, async (t) => {
    const { origin, server } = await start(t, r.options)
    const session = await openSession(origin)
    t.teardown(() => { session.destroy() })
    const ws = await H2Socket.open(session, '/', r.headers)
    t.is(ws.status, r.status)
    t.notThrows(() => r.check?.(ws))
    t.true((await ws.body()).length > 0)
    // The session carries on: another stream on it still opens.
    const ok = await H2Socket.open(session, '/')
    t.is(ok.status, r.status === 401 || r.status === 500 ? r.status : 200)
    t.is(server.clients.size, r.status === 401 || r.status === 500 ? 0 : 1)
  })
}

test('authorize sees the HTTP/2 request and at handshakeTimeout (on the server\'s clock; not 1 ms before) the stream gets 503', async (t) => {
  let seen: { httpVersion?: string, url?: string } = {}
  const clock = new VirtualClock()
  const asked = deferred<undefined>()
  const { origin } = await start(t, {
    // Longer than the test could take: only the virtual clock can bring it.
    handshakeTimeout: 30_000,
    clock,
    authorize: (req) => {
      seen = { httpVersion: req.httpVersion, url: req.url }
      asked.resolve(undefined)
      return new Promise(() => {})
    }
  })
  const session = await openSession(origin)
  t.teardown(() => { session.destroy() })
  const opening = H2Socket.open(session, '/late')
  const answered = watch(opening)
  await within(asked.promise, 5000, 'authorize is called')
  await clock.advance(29_999)
  t.false(answered(), 'no answer 1 ms before handshakeTimeout')
  await clock.advance(1)
  const ws = await within(opening, 5000, 'the answer')
  t.is(ws.status, 503)
  t.deepEqual(seen, { httpVersion: '2.0', url: '/late' })
})

test('a plain HTTP/2 GET gets 405 (WebSockets here are opened with extended CONNECT)', async (t) => {
  const { origin } = await start(t)
  const session = await openSession(origin)
  t.teardown(() => { session.destroy() })
  const req = session.request({ ':path': '/' })
  const [headers] = await Promise.all([new Promise<http2.IncomingHttpHeaders>((resolve) => req.once('response', resolve)), req.end()])
  t.is(Number(headers[':status']), 405)
  req.destroy()
})

test('a clean close ends the stream with END_STREAM after the close frame, never RST_STREAM', async (t) => {
  let closed: Promise<unknown> | undefined
  const { origin } = await start(t, {}, (server) => server.register('once', async (conn) => {
    closed = conn.closed
    for await (const m of conn.source) {
      await conn.sink([m])
      return
    }
  }))
  const session = await openSession(origin)
  t.teardown(() => { session.destroy() })
  const ws = await H2Socket.open(session, '/', { 'sec-websocket-protocol': 'once' })
  ws.sendText('x')
  t.is((await ws.next()).payload.toString(), 'x')
  const close = await ws.next()
  t.is(close.opcode, 8)
  t.is(closeCodeOf(close), 1000)
  // Answer the close and end our side, as a browser does.
  ws.send(0x8, closePayload(1000))
  ws.stream.end()
  await ws.whenClosed()
  t.true(ws.ended, 'the server sent END_STREAM')
  t.is(ws.stream.rstCode, http2.constants.NGHTTP2_NO_ERROR)
  t.deepEqual(await within(closed!, 5000, 'closed'), { code: 1000, reason: '', wasClean: true })
})

test('a reset stream ends only its WebSocket: 1006 to its handler, the other stream carries on', async (t) => {
  const closes: unknown[] = []
  const { origin } = await start(t, {}, (server) => server.register('watch', async (conn) => {
    try {
      await conn.sink(conn.source)
    } catch {}
    closes.push(await conn.closed)
  }))
  const session = await openSession(origin)
  t.teardown(() => { session.destroy() })
  const a = await H2Socket.open(session, '/', { 'sec-websocket-protocol': 'watch' })
  const b = await H2Socket.open(session, '/', { 'sec-websocket-protocol': 'watch' })
  a.sendText('a')
  await a.next()
  a.stream.close(http2.constants.NGHTTP2_CANCEL)
  await until(() => closes.length === 1, 5000, 'the reset WebSocket closed')
  t.deepEqual(closes[0], { code: 1006, reason: '', wasClean: false })
  b.sendText('still here')
  t.is((await b.next()).payload.toString(), 'still here')
  t.false(session.closed)
})

test('server.close(): 1001 on every stream, then GOAWAY', async (t) => {
  const server = new WebSocketServer({ logger: captureLogger().logger })
  server.register('', echo)
  const address = await server.listen({ port: 0, tls: { key, cert } })
  const session = await openSession(`https://127.0.0.1:${address.port}`)
  t.teardown(() => { session.destroy() })
  const events: string[] = []
  session.on('goaway', () => events.push('goaway'))
  const sockets = await Promise.all([H2Socket.open(session), H2Socket.open(session)])
  const closing = server.close()
  for (const ws of sockets) {
    const frame = await ws.next()
    events.push(`close ${closeCodeOf(frame)}`)
    ws.send(0x8, closePayload(1001))
    ws.stream.end()
  }
  await within(closing, 10_000, 'server.close')
  await until(() => events.includes('goaway'), 5000, 'GOAWAY')
  t.deepEqual(events, ['close 1001', 'close 1001', 'goaway'])
  for (const ws of sockets) t.is(ws.stream.rstCode, http2.constants.NGHTTP2_NO_ERROR)
})

test('the ws client over HTTP/1.1 on the same port', async (t) => {
  let version: string | undefined
  const { origin } = await start(t, {}, (server) => server.register('v', (conn) => { version = conn.httpVersion; return conn.sink(conn.source) }))
  const ws = new WebSocket(origin.replace('https:', 'wss:') + '/', ['v'], { rejectUnauthorized: false })
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  ws.send('over 1.1')
  const [data] = await new Promise<[Buffer]>((resolve) => ws.once('message', (d: Buffer) => resolve([d])))
  t.is(data.toString(), 'over 1.1')
  t.is(version, '1.1')
  ws.close()
  await new Promise((resolve) => ws.once('close', resolve))
})

test('attach() to http2.createSecureServer({ allowHTTP1: true }): pages and WebSockets on one port', async (t) => {
  const host = http2.createSecureServer({ key, cert, allowHTTP1: true }, (req, res) => { res.end('page') })
  const server = new WebSocketServer({ logger: captureLogger().logger })
  server.register('', echo)
  server.attach(host, { path: '/ws' })
  await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    await server.close()
    await new Promise<void>((resolve) => host.close(() => resolve()))
  })
  const origin = `https://127.0.0.1:${(host.address() as AddressInfo).port}`
  const session = await openSession(origin)
  t.teardown(() => { session.destroy() })
  t.true(session.remoteSettings.enableConnectProtocol)
  const page = session.request({ ':path': '/' })
  page.end()
  let body = ''
  page.on('data', (d: Buffer) => { body += d.toString() })
  await new Promise((resolve) => page.once('end', resolve))
  t.is(body, 'page')
  const ws = await H2Socket.open(session, '/ws')
  t.is(ws.status, 200)
  ws.sendText('hi')
  t.is((await ws.next()).payload.toString(), 'hi')
  const elsewhere = await H2Socket.open(session, '/other')
  t.is(elsewhere.status, 404)
})

test('the heartbeat over an HTTP/2 stream: a peer whose stream stops reading, fed a trickle the session still takes, is dropped at the pong timeout', async (t) => {
  const clock = new VirtualClock()
  const opened = deferred<Connection>()
  const { origin } = await start(t, { heartbeat: { interval: 1000, timeout: 1000 }, clock }, (server) => server.register('', async (c) => {
    opened.resolve(c)
    for await (const m of c.source) void m
  }))
  const session = await openSession(origin)
  t.teardown(() => { session.destroy() })
  const ws = await H2Socket.open(session)
  ws.stream.pause()
  const conn = await within(opened.promise, 5000, 'handler')
  // 100 bytes per timeout, well inside the stream's flow-control window: each write finishes at once.
  t.is(await timeoutsUntilDropped(t, clock, conn), 1, 'dropped at the first visit after the ping, the pong timeout')
  t.is((await within(conn.closed, 5000, 'closed')).code, 1006)
})
