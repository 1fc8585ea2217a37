/**
 * HTTP edges of the opening handshake, over raw sockets so the test controls every byte: the
 * absolute-form request target (RFC 7230 §5.3.2), a repeated Host (§5.4), malformed and
 * oversized subprotocol offers (RFC 6455 §4.1, §11.3.4), and listening again after close().
 */

import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import test from 'ava'
import { WebSocketServer } from '../../src/index.js'
import { captureLogger, echo, rawRequest, startServer, until, upgradeRequest, within, WsPeer } from './helpers.js'

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
