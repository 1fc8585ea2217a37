/**
 * HTTP edges of the opening handshake, over raw sockets so the test controls every byte: the
 * absolute-form request target (RFC 7230 §5.3.2), a repeated Host (§5.4), malformed and
 * oversized subprotocol offers (RFC 6455 §4.1, §11.3.4), requests pipelined before an upgrade
 * (RFC 9112 §9.3.2), and listening again after close().
 */

import { once } from 'node:events'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import test, { type ExecutionContext } from 'ava'
import { WebSocketServer } from '../../src/index.js'
import { captureLogger, clientFrame, echo, parseResponse, rawRequest, startServer, until, upgradeRequest, WatchedClock, watch, within, WsPeer } from './helpers.js'

/** A handler that records `url` and `path`, then echoes. */
function recorder (): { seen: Array<{ url: string, path: string }>, handler: Parameters<WebSocketServer['register']>[1] } {
  const seen: Array<{ url: string, path: string }> = []
  return { seen, handler: async (c) => { seen.push({ url: c.url, path: c.path }); await echo(c) } }
}

// ---------------------------------------------------------------------------------------------
// The request target

test('absolute-form target: attach({ path }) routes it, and conn.url / conn.path are its origin-form', async (t) => {
  const httpServer = http.createServer((_req, res) => { res.end('plain\n') })
  httpServer.listen(0, '127.0.0.1')
  await once(httpServer, 'listening')
  const port = (httpServer.address() as AddressInfo).port
  const wss = new WebSocketServer({ logger: captureLogger().logger })
  const { seen, handler } = recorder()
  wss.register('', handler)
  wss.attach(httpServer, { path: '/chat' })
  t.teardown(async () => {
    await wss.close()
    httpServer.closeAllConnections()
    await new Promise<void>((resolve) => httpServer.close(() => resolve()))
  })
  const res = await rawRequest(port, upgradeRequest({ path: `http://127.0.0.1:${port}/chat?x=1` }), 2000)
  t.is(res.status, 101, res.raw.toString('latin1'))
  await until(() => seen.length === 1, 2000, 'the handler ran')
  t.deepEqual(seen[0], { url: '/chat?x=1', path: '/chat' })
  // The scheme is case-insensitive (RFC 3986 §3.1); ws:// is a URI with an authority too.
  t.is((await rawRequest(port, upgradeRequest({ path: 'HTTP://example.com/chat' }), 2000)).status, 101)
  t.is((await rawRequest(port, upgradeRequest({ path: 'ws://example.com/chat' }), 2000)).status, 101)
  // Another path in absolute-form is another path.
  t.is((await rawRequest(port, upgradeRequest({ path: 'http://example.com/other' }))).status, 404)
  t.is((await rawRequest(port, upgradeRequest({ path: 'http://example.com/chat/x' }))).status, 404)
})

test('absolute-form target with an empty path: conn.url is "/" plus the query', async (t) => {
  const { seen, handler } = recorder()
  const { port } = await startServer(t, { '': handler })
  t.is((await rawRequest(port, upgradeRequest({ path: 'http://example.com?x=1' }), 2000)).status, 101)
  t.is((await rawRequest(port, upgradeRequest({ path: 'ws://user@example.com:80' }), 2000)).status, 101)
  await until(() => seen.length === 2, 2000, 'both handlers ran')
  t.deepEqual(seen, [{ url: '/?x=1', path: '/' }, { url: '/', path: '/' }])
})

test('a target that is neither origin-form nor absolute-form ("*") → 400', async (t) => {
  let served = 0
  const { port } = await startServer(t, { '': async (c) => { served++; await echo(c) } })
  const res = await rawRequest(port, upgradeRequest({ path: '*' }))
  t.is(res.status, 400)
  t.regex(res.body, /request target/)
  t.true(res.closed)
  t.is(served, 0)
})

// ---------------------------------------------------------------------------------------------
// Host

test('two Host headers → 400 (RFC 7230 §5.4), whatever their case and values', async (t) => {
  let served = 0
  const { port } = await startServer(t, { '': async (c) => { served++; await echo(c) } })
  for (const hosts of [['127.0.0.1', 'evil.example'], ['127.0.0.1', '127.0.0.1']]) {
    const res = await rawRequest(port, upgradeRequest({ headers: { Host: hosts } }))
    t.is(res.status, 400, res.raw.toString('latin1'))
    t.regex(res.body, /Host/)
    t.true(res.closed)
  }
  const mixed = upgradeRequest().replace('\r\n\r\n', '\r\nhOsT: other\r\n\r\n')
  t.is((await rawRequest(port, mixed)).status, 400)
  t.is(served, 0)
})

// ---------------------------------------------------------------------------------------------
// Sec-WebSocket-Protocol

test('no handler for 3,000 offered subprotocols: 400 with a short body that says how many', async (t) => {
  const { port } = await startServer(t, { echo })
  const offered = Array.from({ length: 3000 }, (_, i) => `p${i.toString(36)}`)
  const res = await rawRequest(port, upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': offered.join(',') } }))
  t.is(res.status, 400)
  t.true(res.body.length <= 200, `${res.body.length} bytes: ${res.body}`)
  t.regex(res.body, /3000/)
  t.regex(res.body, /^no handler for .*p0, p1/)
  t.true(res.closed)
})

test('no handler for one very long subprotocol: the body quotes a prefix of it', async (t) => {
  const { port } = await startServer(t, { echo })
  const res = await rawRequest(port, upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': 'x'.repeat(10_000) } }))
  t.is(res.status, 400)
  t.true(res.body.length <= 200, `${res.body.length} bytes`)
  t.regex(res.body, /xxxx…/)
})

test('no handler for two short subprotocols: the body names both', async (t) => {
  const { port } = await startServer(t, { echo })
  const res = await rawRequest(port, upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': 'chat, superchat' } }))
  t.is(res.status, 400)
  t.is(res.body, 'no handler for subprotocol chat, superchat\n')
})

for (const value of [',', ' , ,', '', ' ']) {
  test(`Sec-WebSocket-Protocol: ${JSON.stringify(value)} names no subprotocol → 400, not the '' handler`, async (t) => {
    let served = 0
    const { port } = await startServer(t, { '': async (c) => { served++; await echo(c) }, echo })
    const res = await rawRequest(port, upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': value } }))
    t.is(res.status, 400, res.raw.toString('latin1'))
    t.regex(res.body, /Sec-WebSocket-Protocol/)
    t.is(served, 0)
  })
}

for (const value of ['"echo"', 'echo;q=1', 'a/b', 'echo, é']) {
  test(`Sec-WebSocket-Protocol: ${JSON.stringify(value)} has an element that is not a token → 400`, async (t) => {
    const { port } = await startServer(t, { '': echo, echo })
    const res = await rawRequest(port, upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': value } }))
    t.is(res.status, 400, res.raw.toString('latin1'))
    t.regex(res.body, /invalid subprotocol/)
  })
}

test('empty elements beside tokens are ignored (RFC 7230 §7): "a, , echo" selects echo', async (t) => {
  const { port } = await startServer(t, { echo })
  const res = await rawRequest(port, upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': ', a, , echo,' } }), 2000)
  t.is(res.status, 101, res.raw.toString('latin1'))
  t.is(res.headers['sec-websocket-protocol'], 'echo')
})

// ---------------------------------------------------------------------------------------------
// Pipelined requests before an upgrade (RFC 9112 §9.3.2: responses go in the order of requests)

interface Exchange {
  /** Statuses of the HTTP responses, in the order they came, up to a 101. */
  statuses: number[]
  /** The first WebSocket frame after a 101 (undefined if none came). */
  frame: { opcode: number, payload: string } | undefined
  /** The server closed the connection. */
  closed: boolean
}

/**
 * Write `requests` (then, as the upgrade's first frame, a masked text "hi") in one go on a fresh
 * socket and read what comes back: HTTP responses (bodies by Content-Length) until a 101, then
 * one frame. Ends when that frame has come, when the server closes, or after `ms`.
 */
function pipelined (port: number, requests: string[], ms = 5000): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let got = Buffer.alloc(0)
    let done = false
    const parse = (): { statuses: number[], frame: Exchange['frame'] } => {
      const statuses: number[] = []
      let at = 0
      for (;;) {
        const end = got.indexOf('\r\n\r\n', at)
        if (end < 0) return { statuses, frame: undefined }
        const head = parseResponse(got.subarray(at, end + 4), false)
        statuses.push(head.status)
        at = end + 4
        if (head.status === 101) break
        const length = Number(head.headers['content-length'] ?? 0)
        if (got.length < at + length) return { statuses, frame: undefined }
        at += length
      }
      // A server frame: unmasked, short.
      const rest = got.subarray(at)
      if (rest.length < 2 || rest.length < 2 + (rest[1] & 0x7f)) return { statuses, frame: undefined }
      return { statuses, frame: { opcode: rest[0] & 0x0f, payload: rest.subarray(2, 2 + (rest[1] & 0x7f)).toString('latin1') } }
    }
    const finish = (closed: boolean): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ ...parse(), closed })
    }
    const timer = setTimeout(() => finish(false), ms)
    socket.on('data', (c: Buffer) => {
      got = Buffer.concat([got, c])
      if (parse().frame !== undefined) finish(false)
    })
    socket.on('close', () => finish(true))
    socket.on('error', (err) => { if (got.length > 0) finish(true); else if (!done) { done = true; clearTimeout(timer); reject(err) } })
    socket.write(Buffer.concat([...requests.map((r) => Buffer.from(r, 'latin1')), clientFrame(1, 'hi')]))
  })
}

const plainGet = (path: string, headers = ''): string => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}\r\n`

/** An http server answering every request with `200 <path>` after `delay(path)` ms (-1: never); closed in teardown. */
async function host (t: ExecutionContext, delay: (path: string) => number = () => 0, headers: Record<string, string> = {}): Promise<{ server: http.Server, port: number }> {
  const server = http.createServer((req, res) => {
    const body = `${req.url ?? ''}\n`
    const answer = (): void => { res.writeHead(200, { 'Content-Length': Buffer.byteLength(body), ...headers }).end(body) }
    const ms = delay(req.url ?? '')
    if (ms === 0) answer()
    else if (ms > 0) setTimeout(answer, ms)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { server, port: (server.address() as AddressInfo).port }
}

test('attach: GET /a, GET /b and an upgrade in one write: 200, 200, then 101 and the WebSocket', async (t) => {
  const { server, port } = await host(t)
  const wss = new WebSocketServer({ logger: captureLogger().logger }).register('', echo)
  wss.attach(server)
  t.teardown(() => wss.close())
  const out = await pipelined(port, [plainGet('/a'), plainGet('/b'), upgradeRequest()])
  t.deepEqual(out.statuses, [200, 200, 101])
  t.deepEqual(out.frame, { opcode: 1, payload: 'hi' }, 'the first bytes after the 101 are the echo, not an HTTP response')
})

test('attach({ path }): a host that answers the earlier request late: its 200 comes first, then the 101', async (t) => {
  const { server, port } = await host(t, (path) => path === '/a' ? 200 : 0)
  const wss = new WebSocketServer({ logger: captureLogger().logger }).register('', echo)
  wss.attach(server, { path: '/ws' })
  t.teardown(() => wss.close())
  const out = await pipelined(port, [plainGet('/a'), upgradeRequest({ path: '/ws' })])
  t.deepEqual(out.statuses, [200, 101])
  t.deepEqual(out.frame, { opcode: 1, payload: 'hi' })
})

test('attach({ path }): an upgrade to another path after a late response gets its 404 after that response', async (t) => {
  const { server, port } = await host(t, (path) => path === '/a' ? 200 : 0)
  const wss = new WebSocketServer({ logger: captureLogger().logger }).register('', echo)
  wss.attach(server, { path: '/ws' })
  t.teardown(() => wss.close())
  const out = await pipelined(port, [plainGet('/a'), upgradeRequest({ path: '/elsewhere' })])
  t.deepEqual(out.statuses, [200, 404])
  t.true(out.closed)
})

test('attach: an earlier response that closes the connection (Connection: close): the upgrade after it is never answered, its handler never runs', async (t) => {
  const { server, port } = await host(t, () => 0, { Connection: 'close' })
  let served = 0
  const wss = new WebSocketServer({ logger: captureLogger().logger }).register('', async (c) => { served++; await echo(c) })
  wss.attach(server)
  t.teardown(() => wss.close())
  const out = await pipelined(port, [plainGet('/a'), upgradeRequest()])
  t.deepEqual(out.statuses, [200])
  t.true(out.closed)
  t.is(served, 0)
})

test('attach: a host that never answers the earlier request: the upgrade waits handshakeTimeout (on a VirtualClock: open 1 ms before), then the socket is dropped', async (t) => {
  const { server, port } = await host(t, (path) => path === '/a' ? -1 : 0)
  let served = 0
  const clock = new WatchedClock()
  const wss = new WebSocketServer({ logger: captureLogger().logger, handshakeTimeout: 300, clock }).register('', async (c) => { served++; await echo(c) })
  wss.attach(server)
  t.teardown(() => wss.close())
  const pending = pipelined(port, [plainGet('/a'), upgradeRequest()], 10_000)
  const settled = watch(pending)
  // The upgrade request starts the timer.
  await clock.timersSet(1)
  await clock.advance(299)
  t.false(settled(), 'held, not dropped, before handshakeTimeout')
  await clock.advance(1)
  const out = await pending
  t.deepEqual(out.statuses, [])
  t.true(out.closed, 'dropped, not left open')
  t.is(served, 0)
})

test('listen: a plain GET then an upgrade in one write: 426 and the connection closes; no 101, no handler', async (t) => {
  let served = 0
  const { port } = await startServer(t, { '': async (c) => { served++; await echo(c) } })
  const out = await pipelined(port, [plainGet('/'), upgradeRequest()])
  t.deepEqual(out.statuses, [426])
  t.true(out.closed)
  t.is(served, 0)
})

// ---------------------------------------------------------------------------------------------
// listen() and attach() after close()

test('listen() after close() serves again', async (t) => {
  const { server } = await startServer(t, { '': echo })
  await within(server.close(), 10_000, 'close')
  const address = await server.listen({ port: 0, host: '127.0.0.1' })
  t.not(address.port, 0)
  const peer = await WsPeer.open(`ws://127.0.0.1:${address.port}`)
  await peer.send('again')
  t.is((await peer.next()).data.toString(), 'again')
  t.is((await peer.close(1000)).code, 1000)
})

test('listen() while close() is under way rejects; once it resolves, listen() works', async (t) => {
  const { server } = await startServer(t, { '': echo })
  const peer = await WsPeer.open(`ws://127.0.0.1:${server.address()!.port}`)
  const closing = server.close()
  await t.throwsAsync(server.listen({ port: 0 }), { message: /closing/ })
  t.throws(() => server.attach(http.createServer()), { message: /closing/ })
  await within(closing, 10_000, 'close')
  t.is((await within(peer.closed, 5000, 'peer closed')).code, 1001)
  const { port } = await server.listen({ port: 0 })
  t.is((await rawRequest(port, upgradeRequest(), 2000)).status, 101)
})

test('attach() after close() serves again; handleUpgrade alone on a closed server still answers 503', async (t) => {
  const httpServer = http.createServer()
  httpServer.listen(0, '127.0.0.1')
  await once(httpServer, 'listening')
  const port = (httpServer.address() as AddressInfo).port
  const wss = new WebSocketServer({ logger: captureLogger().logger }).register('', echo)
  t.teardown(async () => {
    await wss.close()
    httpServer.closeAllConnections()
    await new Promise<void>((resolve) => httpServer.close(() => resolve()))
  })
  wss.attach(httpServer)
  t.is((await rawRequest(port, upgradeRequest(), 2000)).status, 101)
  await wss.close()
  // Closed: a direct handleUpgrade is refused.
  const direct = (req: http.IncomingMessage, socket: import('node:stream').Duplex, head: Buffer): void => wss.handleUpgrade(req, socket, head)
  httpServer.on('upgrade', direct)
  t.is((await rawRequest(port, upgradeRequest())).status, 503)
  httpServer.off('upgrade', direct)
  wss.attach(httpServer)
  t.is((await rawRequest(port, upgradeRequest(), 2000)).status, 101)
})
