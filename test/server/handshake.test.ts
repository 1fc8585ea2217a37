/**
 * The opening handshake over raw sockets: every refusal with its status (RFC 6455 §4.2.1–§4.2.2),
 * subprotocol selection, authorization, origins, header size and the handshake timeout.
 */

import net from 'node:net'
import test from 'ava'
import { deferred, echo, nextAccepted, rawRequest, startServer, until, upgradeRequest, WatchedClock, watch, within, WsPeer } from './helpers.js'
import type { Connection } from '../../src/index.js'
import { VirtualClock } from '../../src/testing.js'

const ok = (): void => {}

test('a valid request gets 101 with the right Sec-WebSocket-Accept', async (t) => {
  const { port } = await startServer(t, { '': echo })
  // The example of RFC 6455 §1.3.
  const res = await rawRequest(port, upgradeRequest({ headers: { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' } }), 1000)
  t.is(res.status, 101)
  t.is(res.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=')
  t.is(res.headers.upgrade?.toLowerCase(), 'websocket')
  t.is(res.headers.connection?.toLowerCase(), 'upgrade')
  t.is(res.headers['sec-websocket-protocol'], undefined)
})

const refusals: Array<{ title: string, request: () => string, status: number, check?: (headers: Record<string, string | undefined>) => boolean }> = [
  { title: 'wrong method (POST) → 405', request: () => upgradeRequest({ method: 'POST', headers: { 'Content-Length': '0' } }), status: 405 },
  { title: 'wrong method (PUT) → 405', request: () => upgradeRequest({ method: 'PUT', headers: { 'Content-Length': '0' } }), status: 405 },
  { title: 'HTTP/1.0 → 400', request: () => upgradeRequest({ version: '1.0' }), status: 400 },
  { title: 'missing Host → 400', request: () => upgradeRequest({ headers: { Host: undefined } }), status: 400 },
  { title: 'Upgrade without "websocket" → 400', request: () => upgradeRequest({ headers: { Upgrade: 'h2c' } }), status: 400 },
  { title: 'Connection without "Upgrade" → 400', request: () => upgradeRequest({ headers: { Connection: 'keep-alive' } }), status: 400 },
  { title: 'no Connection header → 400', request: () => upgradeRequest({ headers: { Connection: undefined } }), status: 400 },
  { title: 'key not base64 → 400', request: () => upgradeRequest({ headers: { 'Sec-WebSocket-Key': '!!!!!!!!!!!!!!!!!!!!!!==' } }), status: 400 },
  { title: 'key of 15 bytes → 400', request: () => upgradeRequest({ headers: { 'Sec-WebSocket-Key': Buffer.alloc(15, 7).toString('base64') } }), status: 400 },
  { title: 'key of 17 bytes → 400', request: () => upgradeRequest({ headers: { 'Sec-WebSocket-Key': Buffer.alloc(17, 7).toString('base64') } }), status: 400 },
  { title: 'key with non-zero padding bits → 400', request: () => upgradeRequest({ headers: { 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZR==' } }), status: 400 },
  { title: 'missing key → 400', request: () => upgradeRequest({ headers: { 'Sec-WebSocket-Key': undefined } }), status: 400 },
  { title: 'two keys → 400', request: () => upgradeRequest({ headers: { 'Sec-WebSocket-Key': ['dGhlIHNhbXBsZSBub25jZQ==', 'AAAAAAAAAAAAAAAAAAAAAA=='] } }), status: 400 },
  {
    title: 'missing version → 426 with Sec-WebSocket-Version: 13',
    request: () => upgradeRequest({ headers: { 'Sec-WebSocket-Version': undefined } }),
    status: 426,
    check: (h) => h['sec-websocket-version'] === '13'
  },
  {
    title: 'version 8 → 426 with Sec-WebSocket-Version: 13',
    request: () => upgradeRequest({ headers: { 'Sec-WebSocket-Version': '8' } }),
    status: 426,
    check: (h) => h['sec-websocket-version'] === '13'
  },
  { title: 'a subprotocol that is not a token → 400', request: () => upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': 'a b' } }), status: 400 },
  { title: 'a malformed extension offer → 400', request: () => upgradeRequest({ headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; a=b c' } }), status: 400 }
]

for (const { title, request, status, check } of refusals) {
  test(`handshake refused: ${title}`, async (t) => {
    let served = 0
    const { port } = await startServer(t, { '': async (c) => { served++; await echo(c) } })
    const res = await rawRequest(port, request())
    t.is(res.status, status, res.raw.toString('latin1'))
    t.true(res.closed, 'the server closes the connection after a refusal')
    if (check !== undefined) t.true(check(res.headers), JSON.stringify(res.headers))
    if (status !== 101) {
      t.is(served, 0)
      // A real HTTP response: a short body whose length matches Content-Length.
      if (res.headers['content-length'] !== undefined) t.is(Buffer.byteLength(res.body), Number(res.headers['content-length']))
    }
  })
}

test('"Connection: keep-alive, Upgrade" and a mixed-case Upgrade are accepted', async (t) => {
  const { port } = await startServer(t, { '': echo })
  const res = await rawRequest(port, upgradeRequest({ headers: { Connection: 'keep-alive, Upgrade', Upgrade: 'WebSocket' } }), 1000)
  t.is(res.status, 101)
})

test('a plain GET gets 426 with Upgrade: websocket', async (t) => {
  const { port } = await startServer(t, { '': echo })
  const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  t.is(res.status, 426)
  t.is(res.headers.upgrade, 'websocket')
  t.true(res.closed)
})

// ---------------------------------------------------------------------------------------------
// Subprotocols

test('subprotocol: "a, echo, b" selects echo', async (t) => {
  const seen: string[] = []
  const { port, url } = await startServer(t, { echo: async (c) => { seen.push(c.protocol); await echo(c) } })
  const res = await rawRequest(port, upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': 'a, echo, b' } }), 1000)
  t.is(res.status, 101)
  t.is(res.headers['sec-websocket-protocol'], 'echo')
  const peer = await WsPeer.open(url, ['a', 'echo', 'b'])
  t.is(peer.ws.protocol, 'echo')
  await peer.send('hi')
  t.is((await peer.next()).data.toString(), 'hi')
  await peer.close()
  t.deepEqual(seen, ['echo', 'echo'])
})

test('subprotocol: the client\'s order of preference wins', async (t) => {
  const { port } = await startServer(t, { a: echo, b: echo })
  const res = await rawRequest(port, upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': 'b, a' } }), 1000)
  t.is(res.headers['sec-websocket-protocol'], 'b')
})

test('subprotocol: offered over several header lines', async (t) => {
  const { port } = await startServer(t, { echo })
  const res = await rawRequest(port, upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': ['x', 'y, echo'] } }), 1000)
  t.is(res.status, 101, res.raw.toString('latin1'))
  t.is(res.headers['sec-websocket-protocol'], 'echo')
})

test('subprotocol: only unknown ones → 400 with a body', async (t) => {
  const { port } = await startServer(t, { echo, '': echo })
  const res = await rawRequest(port, upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': 'chat, superchat' } }))
  t.is(res.status, 400)
  t.regex(res.body, /subprotocol/)
  t.true(res.closed)
})

test('subprotocol: none offered → the \'\' handler, and no protocol header in the 101', async (t) => {
  let protocol: string | undefined
  const { port, url } = await startServer(t, { echo, '': async (c) => { protocol = c.protocol; await echo(c) } })
  const res = await rawRequest(port, upgradeRequest(), 1000)
  t.is(res.status, 101)
  t.is(res.headers['sec-websocket-protocol'], undefined)
  const peer = await WsPeer.open(url)
  t.is(peer.ws.protocol, '')
  await peer.close()
  t.is(protocol, '')
})

test('subprotocol: none offered and no \'\' handler → 400', async (t) => {
  const { port } = await startServer(t, { echo })
  const res = await rawRequest(port, upgradeRequest())
  t.is(res.status, 400)
  t.regex(res.body, /subprotocol/)
})

// ---------------------------------------------------------------------------------------------
// Authorization and origins

test('authorize refusing with 401 and with false (403)', async (t) => {
  const { port } = await startServer(t, { '': echo }, {
    authorize: (req) => req.headers.authorization === 'Bearer good'
      ? true
      : req.headers.authorization === undefined ? { status: 401, reason: 'who are you', headers: { 'WWW-Authenticate': 'Bearer' } } : false
  })
  const anon = await rawRequest(port, upgradeRequest())
  t.is(anon.status, 401)
  t.is(anon.headers['www-authenticate'], 'Bearer')
  t.regex(anon.body, /who are you/)
  const bad = await rawRequest(port, upgradeRequest({ headers: { Authorization: 'Bearer bad' } }))
  t.is(bad.status, 403)
  const good = await rawRequest(port, upgradeRequest({ headers: { Authorization: 'Bearer good' } }), 1000)
  t.is(good.status, 101)
})

test('async authorize: the 101 waits for it', async (t) => {
  let calls = 0
  const { url } = await startServer(t, { '': echo }, {
    authorize: async (req) => {
      calls++
      await new Promise(setImmediate)
      return req.url === '/ok' ? true : { status: 403, reason: 'nope' }
    }
  })
  const peer = await WsPeer.open(`${url}/ok`)
  await peer.send('x')
  t.is((await peer.next()).data.toString(), 'x')
  await peer.close()
  const refused = new WsPeer(`${url}/no`)
  const err = await t.throwsAsync(within(refused.opened, 5000, 'refusal'))
  t.regex(err.message, /403/)
  t.is(calls, 2)
})

test('authorize throwing → 500, logged, and the server keeps serving', async (t) => {
  let first = true
  const { port, entries } = await startServer(t, { '': echo }, {
    authorize: async () => {
      if (first) {
        first = false
        throw new Error('database down: secret-dsn')
      }
      return true
    }
  })
  const res = await rawRequest(port, upgradeRequest())
  t.is(res.status, 500)
  t.notRegex(res.body, /secret-dsn/)
  t.true(entries.some((e) => e.level === 'error' && (e.obj as { err?: Error }).err?.message === 'database down: secret-dsn'))
  const next = await rawRequest(port, upgradeRequest(), 1000)
  t.is(next.status, 101)
})

test('origins allow-list: listed passes, unlisted → 403, none (non-browser) passes', async (t) => {
  const { port } = await startServer(t, { '': echo }, { origins: ['https://good.example'] })
  t.is((await rawRequest(port, upgradeRequest({ headers: { Origin: 'https://good.example' } }), 1000)).status, 101)
  const evil = await rawRequest(port, upgradeRequest({ headers: { Origin: 'https://evil.example' } }))
  t.is(evil.status, 403)
  t.true(evil.closed)
  t.is((await rawRequest(port, upgradeRequest(), 1000)).status, 101)
})

// ---------------------------------------------------------------------------------------------
// Size and time limits

test('maxHeaderSize: one header past the limit → 431', async (t) => {
  const { port } = await startServer(t, { '': echo }, { maxHeaderSize: 4096 })
  const small = await rawRequest(port, upgradeRequest({ headers: { 'X-Pad': 'a'.repeat(1000) } }), 1000)
  t.is(small.status, 101)
  const big = await rawRequest(port, upgradeRequest({ headers: { 'X-Pad': 'a'.repeat(5000) } }))
  t.is(big.status, 431)
})

/** A raw TCP connection to the server, and whether it has closed. */
function tcp (port: number): { socket: net.Socket, closed: Promise<void>, isClosed: () => boolean } {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', ok)
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return { socket, closed, isClosed: watch(closed) }
}

/** What `socket` receives up to the end of the response head (bounded by `ms`). */
function responseHead (socket: net.Socket, ms = 5000): Promise<string> {
  let got = ''
  return within(new Promise<string>((resolve, reject) => {
    socket.on('data', (c: Buffer) => { got += c.toString('latin1'); if (got.includes('\r\n\r\n')) resolve(got) })
    socket.once('close', () => reject(new Error(`closed after: ${JSON.stringify(got)}`)))
  }), ms, 'a response')
}

// The handshake timer runs on a VirtualClock; each test opens a second socket at the same time
// as the one that stalls, to show at handshakeTimeout − 1 ms that the timer has not yet fired.

test('handshakeTimeout: a client that sends half a request and stalls is dropped at the timeout, not before', async (t) => {
  const clock = new WatchedClock()
  const { port } = await startServer(t, { '': echo }, { handshakeTimeout: 300, clock })
  const stalled = tcp(port)
  const finishes = tcp(port)
  const half = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n'
  stalled.socket.write(half)
  finishes.socket.write(half)
  await clock.timersSet(2)
  await clock.advance(299)
  const answer = responseHead(finishes.socket)
  finishes.socket.write(upgradeRequest().slice(half.length))
  t.regex(await answer, /^HTTP\/1\.1 101 /, 'at 299 ms the other half of a request still gets its 101')
  t.false(stalled.isClosed())
  await clock.advance(1)
  await within(stalled.closed, 5000, 'the stalled socket is dropped at 300 ms')
  finishes.socket.destroy()
  t.pass()
})

test('handshakeTimeout: an idle TCP connection that sends nothing is dropped at the timeout, not before', async (t) => {
  const clock = new WatchedClock()
  const { port } = await startServer(t, { '': echo }, { handshakeTimeout: 300, clock })
  const idle = tcp(port)
  const late = tcp(port)
  await clock.timersSet(2)
  await clock.advance(299)
  const answer = responseHead(late.socket)
  late.socket.write(upgradeRequest())
  t.regex(await answer, /^HTTP\/1\.1 101 /, 'a request at 299 ms still gets its 101')
  t.false(idle.isClosed())
  await clock.advance(1)
  await within(idle.closed, 5000, 'the idle socket is dropped at 300 ms')
  late.socket.destroy()
  t.pass()
})

test('handshakeTimeout does not apply once the connection is open', async (t) => {
  const clock = new WatchedClock()
  const opened = deferred<Connection>()
  const { url } = await startServer(t, { '': async (c) => { opened.resolve(c); await echo(c) } }, { handshakeTimeout: 200, clock })
  const peer = await WsPeer.open(url)
  const conn = await within(opened.promise, 5000, 'handler')
  // Ten times the timeout (the heartbeat, at its default, is not due yet).
  await clock.advance(2000)
  await peer.send('still here')
  t.is((await peer.next()).data.toString(), 'still here')
  await peer.close(1000)
  t.is((await conn.closed).code, 1000)
})

test('handshakeTimeout also bounds a pending authorize: at the timeout the client, whose request was whole, gets 503 (not a silent drop), and the log says why', async (t) => {
  const clock = new WatchedClock()
  const asked = deferred<undefined>()
  const { port, entries } = await startServer(t, { '': echo }, {
    handshakeTimeout: 300,
    clock,
    authorize: () => { asked.resolve(undefined); return new Promise<boolean>(() => {}) }
  })
  const response = rawRequest(port, upgradeRequest(), 10_000)
  await within(asked.promise, 5000, 'authorize is called')
  await clock.advance(299)
  t.false(entries.some((e) => e.level === 'warn'), 'no answer before handshakeTimeout')
  await clock.advance(1)
  const res = await response
  t.true(res.closed)
  t.is(res.status, 503)
  t.is(res.body.trim(), 'authorization timed out')
  t.true(entries.some((e) => e.level === 'warn' && /authorize/.test(e.msg ?? '')))
})

test('a refused handshake\'s socket, which the client keeps open, is dropped a second after the refusal on the server\'s clock, not 1 ms before', async (t) => {
  const clock = new VirtualClock()
  const { server, port } = await startServer(t, { '': echo }, { clock })
  const accepted = nextAccepted(server)
  // Half-open allowed: the client does not answer the server's end with its own.
  const client = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  client.on('error', ok)
  t.teardown(() => { client.destroy() })
  const head = responseHead(client)
  client.write(upgradeRequest({ headers: { 'Sec-WebSocket-Version': '12' } }))
  const socket = await accepted
  t.regex(await head, /^HTTP\/1\.1 426 /)
  t.true(socket.writableEnded, 'the refusal was sent and our side ended')
  await clock.advance(999)
  t.false(socket.destroyed, 'still there 1 ms before the second')
  await clock.advance(1)
  t.true(socket.destroyed, 'dropped at the second')
})

test('bytes sent right after the request (head) reach the handler', async (t) => {
  const { port } = await startServer(t, { '': echo })
  const { RawClient, clientFrame } = await import('./helpers.js')
  const client = await RawClient.connect(port, { head: clientFrame(1, 'early') })
  const f = await client.nextFrame()
  t.is(f?.opcode, 1)
  t.is(f?.payload.toString(), 'early')
  client.destroy()
  await until(() => client.ended, 2000, 'socket closed')
})
