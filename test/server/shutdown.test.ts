/**
 * The three ways in (`listen`, `attach`, `handleUpgrade`) and the way out (`server.close()`).
 */

import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import test, { type ExecutionContext } from 'ava'
import { InvalidStateError, WebSocketServer, type Connection } from '../../src/index.js'
import { VirtualClock } from '../../src/testing.js'
import { captureLogger, clientFrame, closePayload, deferred, echo, nextAccepted, RawClient, rawRequest, startServer, until, upgradeRequest, WatchedClock, watch, within, WsPeer } from './helpers.js'

async function plainHttpServer (t: ExecutionContext, onRequest: http.RequestListener = (_req, res) => { res.end('hello from http\n') }): Promise<{ server: http.Server, port: number }> {
  const server = http.createServer(onRequest)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { server, port: (server.address() as AddressInfo).port }
}

function httpGet (port: number, path = '/'): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    }).on('error', reject)
  })
}

test('server.close() with 100 open connections: every client sees 1001, it resolves, and no new connection is accepted', async (t) => {
  t.timeout(60_000)
  const conns: Connection[] = []
  const { server, url, port } = await startServer(t, { '': async (c) => { conns.push(c); await echo(c) } })
  const peers: WsPeer[] = []
  for (let i = 0; i < 100; i++) peers.push(new WsPeer(url))
  await within(Promise.all(peers.map((p) => p.opened)), 20_000, '100 clients open')
  t.is(server.clients.size, 100)
  await within(server.close(), 15_000, 'server.close')
  const closes = await within(Promise.all(peers.map((p) => p.closed)), 10_000, 'all clients closed')
  t.true(closes.every((c) => c.code === 1001), JSON.stringify([...new Set(closes.map((c) => c.code))]))
  const infos = await Promise.all(conns.map((c) => c.closed))
  t.true(infos.every((i) => i.code === 1001))
  t.is(server.clients.size, 0)
  await t.throwsAsync(new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(undefined) })
    s.on('error', reject)
  }), { code: 'ECONNREFUSED' })
})

test('server.close() drops, after closeTimeout (on the server\'s clock), a client that never answers the close: there at 299 ms, gone at 300', async (t) => {
  t.timeout(30_000)
  const clock = new VirtualClock()
  const { server, port } = await startServer(t, { '': echo }, { closeTimeout: 300, clock })
  const accepted = nextAccepted(server)
  const client = await RawClient.connect(port)
  const socket = await accepted
  const closing = server.close()
  const closed = watch(closing)
  t.deepEqual(await client.nextClose(), { code: 1001, reason: 'server shutting down' })
  await clock.advance(299)
  t.false(socket.destroyed, 'not dropped 1 ms before closeTimeout')
  t.false(closed())
  await clock.advance(1)
  t.true(socket.destroyed, 'dropped at closeTimeout')
  await within(closing, 10_000, 'server.close resolves')
  await client.waitClosed()
})

test('server.close() drops, after closeTimeout (on the server\'s clock), a handshake whose request never completes: there at 1,999 ms, gone at 2,000', async (t) => {
  t.timeout(30_000)
  // The handshake timer is a minute: only close()'s closeTimeout can drop the socket. Past a
  // second the idle grace has gone by too: that is for sockets that have sent nothing.
  const clock = new VirtualClock()
  const { server, port } = await startServer(t, { '': echo }, { closeTimeout: 2000, handshakeTimeout: 60_000, clock })
  const accepted = nextAccepted(server)
  const client = net.connect(port, '127.0.0.1')
  client.on('error', () => {})
  client.write('GET / HTTP/1.1\r\n')
  const socket = await accepted
  await until(() => socket.bytesRead > 0, 5000, 'the server to read the start of the request')
  const closing = server.close()
  const closed = watch(closing)
  await clock.advance(1999)
  t.false(socket.destroyed, 'not dropped 1 ms before closeTimeout')
  t.false(closed())
  await clock.advance(1)
  t.true(socket.destroyed, 'dropped at closeTimeout')
  await within(closing, 10_000, 'server.close')
})

// A defect seen in CI: a rolling restart's old worker had accepted a TCP connection just before
// its close(), and close() destroyed it mid-handshake: the client saw ECONNRESET.
test('server.close() lets a handshake under way finish: 101, then close 1001, never a reset', async (t) => {
  t.timeout(30_000)
  let ran = 0
  const clock = new WatchedClock()
  const { server, port } = await startServer(t, { '': async (c) => { ran++; await echo(c) } }, { clock })
  // The socket is accepted now (its handshake timer is set); its request is sent only after close() was called.
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  await clock.timersSet(1)
  const closing = server.close()
  const raw = await RawClient.handshake(socket)
  t.deepEqual(await raw.nextClose(), { code: 1001, reason: 'server shutting down' })
  raw.send(clientFrame(8, closePayload(1001)))
  await within(closing, 10_000, 'server.close resolves')
  await raw.waitClosed()
  t.is(ran, 1, 'the handler ran for it')
})

test('server.close() while authorize is pending: a yes still gets 101 then 1001, a no still gets 403', async (t) => {
  t.timeout(30_000)
  const decisions: Array<(ok: boolean) => void> = []
  const { server, port } = await startServer(t, { '': echo }, {
    authorize: async () => await new Promise<boolean>((resolve) => decisions.push(resolve))
  })
  const yes = RawClient.connect(port)
  const no = rawRequest(port, upgradeRequest())
  await until(() => decisions.length === 2, 5000, 'both authorize calls')
  const closing = server.close()
  decisions[1](false)
  decisions[0](true)
  const raw = await yes
  t.deepEqual(await raw.nextClose(), { code: 1001, reason: 'server shutting down' })
  raw.send(clientFrame(8, closePayload(1001)))
  t.is((await no).status, 403)
  await within(closing, 10_000, 'server.close resolves')
})

test('attach: an upgrade on a new connection while close() is under way gets 503', async (t) => {
  t.timeout(30_000)
  const { server: httpServer, port } = await plainHttpServer(t)
  const wss = new WebSocketServer({ logger: captureLogger().logger, closeTimeout: 2000 })
  wss.register('', echo)
  wss.attach(httpServer)
  // An open client that does not answer the close keeps close() under way.
  const held = await RawClient.connect(port)
  const closing = wss.close()
  t.deepEqual(await held.nextClose(), { code: 1001, reason: 'server shutting down' })
  const res = await rawRequest(port, upgradeRequest())
  t.is(res.status, 503)
  held.send(clientFrame(8, closePayload(1001)))
  await within(closing, 10_000, 'server.close resolves')
  await held.waitClosed()
})

test('server.close() while authorize is still pending at closeTimeout: the client gets 503, not a silent drop (at closeTimeout on the server\'s clock, not 1 ms before)', async (t) => {
  t.timeout(30_000)
  const asked = deferred<undefined>()
  const clock = new VirtualClock()
  const { server, port } = await startServer(t, { '': echo }, {
    closeTimeout: 3000,
    clock,
    authorize: async () => { asked.resolve(undefined); return await new Promise<boolean>(() => {}) }
  })
  const accepted = nextAccepted(server)
  const answer = rawRequest(port, upgradeRequest(), 10_000)
  const socket = await accepted
  await within(asked.promise, 5000, 'authorize is called')
  const closing = server.close()
  await clock.advance(2999)
  t.false(socket.writableEnded, 'no answer 1 ms before closeTimeout')
  await clock.advance(1)
  t.true(socket.writableEnded, 'answered at closeTimeout')
  await within(closing, 10_000, 'server.close')
  const res = await answer
  t.is(res.status, 503)
  t.is(res.body.trim(), 'the server is shutting down')
})

test('listen() then close() at once: listen() rejects with a clear error (it never settled), and the server listens again afterwards', async (t) => {
  const server = new WebSocketServer({ logger: captureLogger().logger }).register('', ({ sink }) => sink(['again']))
  const listening = server.listen({ port: 0 })
  const closing = server.close()
  await t.throwsAsync(within(listening, 5000, 'listen settles'), { message: /closed before it listened/ })
  await within(closing, 5000, 'close')
  const { port } = await server.listen({ port: 0 })
  t.teardown(() => server.close())
  const peer = new WsPeer(`ws://127.0.0.1:${port}/`)
  t.is((await peer.next()).data.toString(), 'again')
})

/** Send a plain GET on `socket` and read the whole response (the request asks the server to close). */
async function getOn (socket: net.Socket, path: string): Promise<{ status: number, body: string }> {
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  const ended = once(socket, 'close')
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
  await within(ended, 5000, 'the response')
  const text = Buffer.concat(chunks).toString()
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]), body: text.slice(text.indexOf('\r\n\r\n') + 4) }
}

test('attach: the host\'s sockets are not wspipe\'s: handshakeTimeout does not cut a preconnected plain-HTTP client, and close() neither waits for nor drops one', async (t) => {
  t.timeout(30_000)
  const { server: httpServer, port } = await plainHttpServer(t)
  const clock = new VirtualClock()
  const wss = new WebSocketServer({ logger: captureLogger().logger, handshakeTimeout: 200, closeTimeout: 60_000, clock })
  wss.register('', echo)
  wss.attach(httpServer, { path: '/ws' })
  // A browser's preconnect: TCP now, the request later. wspipe's listeners on the host were
  // added first, so they have seen the connection when the host's 'connection' event reaches us.
  let accepted = once(httpServer, 'connection')
  const early = net.connect(port, '127.0.0.1')
  early.on('error', () => {})
  await once(early, 'connect')
  await within(accepted, 5000, 'the host accepts')
  // Well past handshakeTimeout, in virtual time.
  await clock.advance(500)
  t.deepEqual(await getOn(early, '/page'), { status: 200, body: 'hello from http\n' })
  accepted = once(httpServer, 'connection')
  const idle = net.connect(port, '127.0.0.1')
  idle.on('error', () => {})
  await once(idle, 'connect')
  await within(accepted, 5000, 'the host accepts')
  // closeTimeout is a minute: close() must not be waiting on the host's idle socket.
  await within(wss.close(), 10_000, 'close() without waiting for the host\'s socket')
  t.deepEqual(await getOn(idle, '/after'), { status: 200, body: 'hello from http\n' })
})

test('attach(httpServer, { path }): upgrades on the path, plain HTTP still served, other paths 404', async (t) => {
  const { server: httpServer, port } = await plainHttpServer(t)
  const wss = new WebSocketServer({ logger: captureLogger().logger })
  wss.register('echo', echo)
  wss.attach(httpServer, { path: '/ws' })
  t.teardown(() => wss.close())
  const peer = await WsPeer.open(`ws://127.0.0.1:${port}/ws?x=1`, 'echo')
  await peer.send('via attach')
  t.is((await peer.next()).data.toString(), 'via attach')
  t.deepEqual(await httpGet(port), { status: 200, body: 'hello from http\n' })
  const other = await rawRequest(port, upgradeRequest({ path: '/elsewhere', headers: { 'Sec-WebSocket-Protocol': 'echo' } }))
  t.is(other.status, 404)
  await peer.close(1000)
})

test('attach: two servers on two paths of one HTTP server; a third path gets 404', async (t) => {
  const { server: httpServer, port } = await plainHttpServer(t)
  const a = new WebSocketServer({ logger: captureLogger().logger }).register('', ({ sink }) => sink(['from a']))
  const b = new WebSocketServer({ logger: captureLogger().logger }).register('', ({ sink }) => sink(['from b']))
  a.attach(httpServer, { path: '/a' })
  b.attach(httpServer, { path: '/b' })
  t.teardown(async () => { await Promise.all([a.close(), b.close()]) })
  for (const name of ['a', 'b']) {
    const peer = new WsPeer(`ws://127.0.0.1:${port}/${name}`)
    t.is((await peer.next()).data.toString(), `from ${name}`)
    await within(peer.closed, 5000, 'closed')
  }
  const res = await rawRequest(port, upgradeRequest({ path: '/c' }))
  t.is(res.status, 404)
  t.true(res.closed)
})

test('attach: two servers on one HTTP server: the other server\'s handshake timer does not drop an open connection', async (t) => {
  t.timeout(30_000)
  const { server: httpServer, port } = await plainHttpServer(t)
  // One VirtualClock for both: whatever timer either set for the upgrade has been set by the 101.
  const clock = new VirtualClock()
  const opts = { logger: captureLogger().logger, handshakeTimeout: 200, clock }
  const a = new WebSocketServer(opts).register('', echo)
  const b = new WebSocketServer(opts).register('', echo)
  a.attach(httpServer, { path: '/a' })
  b.attach(httpServer, { path: '/b' })
  t.teardown(async () => { await Promise.all([a.close(), b.close()]) })
  for (const name of ['a', 'b']) {
    const peer = await WsPeer.open(`ws://127.0.0.1:${port}/${name}`)
    await clock.advance(500)
    await peer.send(`still ${name}`)
    t.is((await peer.next()).data.toString(), `still ${name}`)
    t.is((await peer.close(1000)).code, 1000)
  }
})

test('attach: the handshake timeout never cuts a plain HTTP request the host server is serving', async (t) => {
  t.timeout(30_000)
  const serving = deferred<http.ServerResponse>()
  const { server: httpServer, port } = await plainHttpServer(t, (_req, res) => { serving.resolve(res) })
  const clock = new VirtualClock()
  const wss = new WebSocketServer({ logger: captureLogger().logger, handshakeTimeout: 200, clock })
  wss.register('', echo)
  wss.attach(httpServer, { path: '/ws' })
  t.teardown(() => wss.close())
  const response = httpGet(port, '/slow')
  const res = await within(serving.promise, 5000, 'the request reaches the host')
  // The host takes four times handshakeTimeout (virtual) to answer.
  await clock.advance(800)
  res.end('slow but complete\n')
  t.deepEqual(await within(response, 10_000, 'slow response'), { status: 200, body: 'slow but complete\n' })
})

test('attach: close() detaches, the HTTP server keeps serving and later upgrades are not taken', async (t) => {
  const { server: httpServer, port } = await plainHttpServer(t)
  const wss = new WebSocketServer({ logger: captureLogger().logger })
  wss.register('', echo)
  wss.attach(httpServer)
  const peer = await WsPeer.open(`ws://127.0.0.1:${port}/`)
  await wss.close()
  t.is((await within(peer.closed, 5000, 'closed')).code, 1001)
  t.is(httpServer.listenerCount('upgrade'), 0)
  t.deepEqual(await httpGet(port), { status: 200, body: 'hello from http\n' })
})

test('handleUpgrade(req, socket, head) from a plain http server\'s upgrade event', async (t) => {
  const { server: httpServer, port } = await plainHttpServer(t)
  const wss = new WebSocketServer({ logger: captureLogger().logger })
  let seen: string | undefined
  wss.register('echo', async (c) => { seen = c.path; await echo(c) })
  httpServer.on('upgrade', (req, socket, head) => {
    if (req.url?.startsWith('/live') === true) wss.handleUpgrade(req, socket, head)
    else socket.destroy()
  })
  const peer = await WsPeer.open(`ws://127.0.0.1:${port}/live`, ['x', 'echo'])
  t.is(peer.ws.protocol, 'echo')
  await peer.send(Buffer.from([1, 2, 3]))
  const m = await peer.next()
  t.true(m.isBinary)
  t.deepEqual([...m.data], [1, 2, 3])
  t.is(seen, '/live')
  // close() ends connections that came in through handleUpgrade too.
  await within(wss.close(), 10_000, 'close')
  t.is((await within(peer.closed, 5000, 'closed')).code, 1001)
  // After close(), handleUpgrade refuses with 503.
  const res = await rawRequest(port, upgradeRequest({ path: '/live', headers: { 'Sec-WebSocket-Protocol': 'echo' } }))
  t.is(res.status, 503)
})

test('handleUpgrade refusals are HTTP responses too (bad version → 426)', async (t) => {
  const { server: httpServer, port } = await plainHttpServer(t)
  const wss = new WebSocketServer({ logger: captureLogger().logger })
  wss.register('', echo)
  httpServer.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head))
  t.teardown(() => wss.close())
  const res = await rawRequest(port, upgradeRequest({ headers: { 'Sec-WebSocket-Version': '7' } }))
  t.is(res.status, 426)
  t.is(res.headers['sec-websocket-version'], '13')
})

test('listen() twice throws; address() reports the bound port', async (t) => {
  const { server, port } = await startServer(t, { '': echo })
  t.is(server.address()?.port, port)
  await t.throwsAsync(server.listen({ port: 0 }), { instanceOf: InvalidStateError, code: 'WS_ERR_INVALID_STATE', message: /already listening/ })
})

test('listen() on a port in use rejects, and listen() can then be tried again', async (t) => {
  const { port } = await startServer(t, { '': echo })
  const second = new WebSocketServer({ logger: captureLogger().logger })
  second.register('', echo)
  t.teardown(() => second.close())
  await t.throwsAsync(second.listen({ port }), { code: 'EADDRINUSE' })
  const address = await second.listen({ port: 0 })
  t.not(address.port, port)
  const peer = await WsPeer.open(`ws://127.0.0.1:${address.port}`)
  await peer.send('second')
  t.is((await peer.next()).data.toString(), 'second')
  await peer.close(1000)
})

test('server.close() does not wait closeTimeout for a socket that has sent nothing (a browser\'s preconnect): it goes after a second', async (t) => {
  t.timeout(30_000)
  const clock = new WatchedClock()
  const { server, port } = await startServer(t, { '': echo }, { closeTimeout: 60_000, handshakeTimeout: 60_000, clock })
  const accepted = nextAccepted(server)
  const idle = net.connect(port, '127.0.0.1')
  idle.on('error', () => {})
  await once(idle, 'connect')
  const socket = await accepted
  // Accepted: its handshake timer is set (on a clock that does not move).
  await clock.timersSet(1)
  const closed = once(idle, 'close')
  const closing = server.close()
  await clock.advance(999)
  t.false(socket.destroyed, 'there 1 ms before the second')
  await clock.advance(1)
  t.true(socket.destroyed, 'gone at the second')
  await within(closing, 10_000, 'close() without waiting a minute for the idle socket')
  await within(closed, 5000, 'the idle socket is closed')
})
