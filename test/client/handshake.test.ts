/**
 * connect(): the opening handshake as the client checks it (RFC 6455 §4.1): raw servers that
 * answer a wrong 101 or a refusal, our server refusing with 400/401/403, subprotocol choice,
 * extra headers, the handshake timeout and AbortSignal before and after open.
 */

import test from 'ava'
import { connect, UpgradeError, type Connection } from '../../src/index.js'
import { decoder, echo, eventually, startOurServer, startRawServer, startWsServer, switchingProtocols, type RawRequest } from './helpers.js'
import type { Socket } from 'node:net'
import { VirtualClock } from '../../src/testing.js'
import { deferred, watch, within } from '../server/helpers.js'

/** A raw server answering every request with `answer(request)`, then `connect` to it. */
async function connectToRaw (answer: (request: RawRequest) => string, options: Parameters<typeof connect>[1] = {}): Promise<Connection> {
  const raw = await startRawServer((socket, request) => { socket.write(answer(request)) })
  try {
    return await connect(raw.url, { handshakeTimeout: 10_000, ...options })
  } finally {
    await raw.close()
  }
}

/** Assert that `promise` rejects with an UpgradeError of `status` whose reason matches `reason`. */
async function assertUpgradeError (t: import('ava').ExecutionContext, promise: Promise<unknown>, status: number, reason: RegExp): Promise<void> {
  const err = await t.throwsAsync(promise, { instanceOf: UpgradeError })
  t.is(err?.status, status)
  t.regex(err?.reason ?? '', reason)
  t.is(err?.code, 'WS_ERR_UPGRADE')
}

test('a valid 101 from a raw server opens the connection', async (t) => {
  let request: RawRequest | undefined
  const raw = await startRawServer((socket, req) => {
    request = req
    socket.write(switchingProtocols(req))
  })
  const conn = await connect(raw.url + 'path?q=1', { heartbeat: false })
  t.is(conn.protocol, '')
  t.is(conn.url, '/path?q=1')
  t.is(conn.path, '/path')
  t.regex(request!.requestLine, /^GET \/path\?q=1 HTTP\/1\.1$/)
  t.regex(request!.headers.upgrade, /^websocket$/i)
  t.regex(request!.headers.connection, /upgrade/i)
  t.is(request!.headers['sec-websocket-version'], '13')
  t.is(Buffer.from(request!.headers['sec-websocket-key'], 'base64').length, 16)
  t.false('sec-websocket-protocol' in request!.headers, 'no protocols offered, no header')
  conn.close()
  await raw.close()
  const closed = await conn.closed
  t.is(closed.code, 1000)
})

test('each request has a fresh random key', async (t) => {
  const keys: string[] = []
  const raw = await startRawServer((socket, req) => {
    keys.push(req.headers['sec-websocket-key'])
    socket.write(switchingProtocols(req))
  })
  for (let i = 0; i < 3; i++) {
    const conn = await connect(raw.url, { heartbeat: false })
    conn.close()
  }
  await raw.close()
  t.is(new Set(keys).size, 3)
})

test('a wrong Sec-WebSocket-Accept rejects with UpgradeError 101', async (t) => {
  await assertUpgradeError(t, connectToRaw((req) => switchingProtocols({ ...req, accept: 'dGhlIHNhbXBsZSBub25jZQ==' })), 101, /Sec-WebSocket-Accept/)
})

test('a missing Sec-WebSocket-Accept rejects with UpgradeError 101', async (t) => {
  await assertUpgradeError(t, connectToRaw(() => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'), 101, /Sec-WebSocket-Accept/)
})

test('a 101 without Upgrade rejects with UpgradeError 101 (and does not wait for the timeout)', async (t) => {
  await assertUpgradeError(t,
    connectToRaw((req) => `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${req.accept}\r\n\r\n`, { handshakeTimeout: 30_000 }),
    101, /Upgrade/)
})

test('a 101 whose Upgrade is not websocket rejects with UpgradeError 101', async (t) => {
  await assertUpgradeError(t,
    connectToRaw((req) => `HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${req.accept}\r\n\r\n`, { handshakeTimeout: 30_000 }),
    101, /Upgrade/)
})

test('a 101 without Connection: Upgrade rejects with UpgradeError 101', async (t) => {
  await assertUpgradeError(t,
    connectToRaw((req) => `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: ${req.accept}\r\n\r\n`, { handshakeTimeout: 30_000 }),
    101, /Connection/)
})

test('a subprotocol that was not offered rejects with UpgradeError 101', async (t) => {
  await assertUpgradeError(t, connectToRaw((req) => switchingProtocols(req, ['Sec-WebSocket-Protocol: chat']), { protocols: ['echo'] }), 101, /subprotocol.*not offered: chat/)
})

test('a subprotocol when none was offered rejects with UpgradeError 101', async (t) => {
  await assertUpgradeError(t, connectToRaw((req) => switchingProtocols(req, ['Sec-WebSocket-Protocol: chat'])), 101, /not offered: chat/)
})

test('offering subprotocols, a 101 that selects none rejects with UpgradeError 101 (as browsers and ws do)', async (t) => {
  await assertUpgradeError(t, connectToRaw((req) => switchingProtocols(req), { protocols: ['echo', 'chat'] }), 101, /selected no subprotocol/)
})

test('offering subprotocols, a 101 with an empty Sec-WebSocket-Protocol rejects with UpgradeError 101', async (t) => {
  await assertUpgradeError(t, connectToRaw((req) => switchingProtocols(req, ['Sec-WebSocket-Protocol: ']), { protocols: ['echo'] }), 101, /empty Sec-WebSocket-Protocol/)
  await assertUpgradeError(t, connectToRaw((req) => switchingProtocols(req, ['Sec-WebSocket-Protocol: ,']), { protocols: ['echo'] }), 101, /empty Sec-WebSocket-Protocol/)
})

test('offering none, a 101 with an empty Sec-WebSocket-Protocol rejects with UpgradeError 101', async (t) => {
  await assertUpgradeError(t, connectToRaw((req) => switchingProtocols(req, ['Sec-WebSocket-Protocol: '])), 101, /empty Sec-WebSocket-Protocol/)
})

test('a ws server that selects no subprotocol of those offered: UpgradeError 101, and the socket is dropped', async (t) => {
  let opened = 0
  const peer = await startWsServer(() => { opened++ }, { handleProtocols: () => false })
  try {
    await assertUpgradeError(t, connect(peer.url, { protocols: ['echo'] }), 101, /selected no subprotocol/)
    // ws accepted on its side: it sees the connection end without a closing handshake.
    t.true(await eventually(() => peer.wss.clients.size === 0, 200, 10), 'the server side is gone')
    t.is(opened, 1)
  } finally {
    await peer.close()
  }
})

test('more than one subprotocol in the 101 rejects with UpgradeError 101', async (t) => {
  await assertUpgradeError(t, connectToRaw((req) => switchingProtocols(req, ['Sec-WebSocket-Protocol: a, b']), { protocols: ['a', 'b'] }), 101, /more than one/)
})

test('an extension that was not offered rejects with UpgradeError 101', async (t) => {
  await assertUpgradeError(t, connectToRaw((req) => switchingProtocols(req, ['Sec-WebSocket-Extensions: permessage-deflate'])), 101, /extension.*not offered: permessage-deflate/)
})

test('a 200 rejects with UpgradeError 200 and the first line of the body as reason', async (t) => {
  await assertUpgradeError(t,
    connectToRaw(() => 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nConnection: close\r\n\r\nnot a websocket here\nx'),
    200, /^not a websocket here$/)
})

test('a refusal without a body gives the status text as reason', async (t) => {
  await assertUpgradeError(t, connectToRaw(() => 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'), 404, /^Not Found$/)
})

test('a huge refusal body is cut to maxRefusalBody', async (t) => {
  const body = 'x'.repeat(100_000)
  const err = await t.throwsAsync(connectToRaw(() => `HTTP/1.1 503 Service Unavailable\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`, { maxRefusalBody: 100 }), { instanceOf: UpgradeError })
  t.is(err?.status, 503)
  t.is(err?.reason.length, 100)
})

test('the first offered subprotocol the server has wins, and conn.protocol says which', async (t) => {
  const peer = await startOurServer({ echo, chat: echo })
  try {
    const a = await connect(peer.url, { protocols: ['v2.other', 'chat', 'echo'] })
    t.is(a.protocol, 'chat')
    t.is(a.headers['sec-websocket-protocol'], 'chat')
    a.close()
    const b = await connect(peer.url, { protocols: 'echo' })
    t.is(b.protocol, 'echo')
    b.close()
    await Promise.all([a.closed, b.closed])
  } finally {
    await peer.close()
  }
})

test('invalid protocols are refused before any I/O', async (t) => {
  await t.throwsAsync(connect('ws://127.0.0.1:1/', { protocols: ['a b'] }), { instanceOf: SyntaxError })
  await t.throwsAsync(connect('ws://127.0.0.1:1/', { protocols: ['a', 'a'] }), { instanceOf: SyntaxError, message: /duplicate/ })
  await t.throwsAsync(connect('ws://127.0.0.1:1/', { protocols: [''] }), { instanceOf: SyntaxError })
})

test('an invalid header name or value (a CR LF in it) rejects with Node\'s TypeError, not a throw from connect() itself, and nothing is sent', async (t) => {
  let requests = 0
  const raw = await startRawServer(() => { requests++ })
  try {
    for (const [headers, code] of [[{ 'X-Note': 'a\r\nInjected: yes' }, 'ERR_INVALID_CHAR'], [{ 'Not A Token': 'x' }, 'ERR_INVALID_HTTP_TOKEN']] as const) {
      let pending: Promise<unknown> | undefined
      t.notThrows(() => { pending = connect(raw.url, { headers }) }, 'connect() returns a promise')
      const err = await t.throwsAsync(pending ?? Promise.resolve(), { instanceOf: TypeError })
      t.is((err as NodeJS.ErrnoException | undefined)?.code, code)
    }
    // A valid request sent after them arrives, and is the only one that does.
    const ok = connect(raw.url, { handshakeTimeout: 100 }).catch(() => undefined)
    t.true(await eventually(() => requests === 1), 'the valid request arrived')
    await ok
    t.is(requests, 1, 'only the valid request reached the server')
  } finally {
    await raw.close()
  }
})

test('invalid URLs are refused before any I/O', async (t) => {
  await t.throwsAsync(connect('not a url'), { instanceOf: SyntaxError })
  await t.throwsAsync(connect('ftp://127.0.0.1/'), { instanceOf: SyntaxError })
  await t.throwsAsync(connect('ws://127.0.0.1:1/#frag'), { instanceOf: SyntaxError, message: /fragment/ })
})

test('http:// and https:// URLs map to ws:// and wss://', async (t) => {
  const peer = await startOurServer({ '': echo })
  try {
    const conn = await connect(peer.url.replace('ws://', 'http://'))
    await conn.sink(['over http:'])
    // The sink's end does not close; read the echo, then close.
    for await (const m of conn.source) {
      t.is(decoder.decode(m), 'over http:')
      break
    }
    conn.close()
    t.is((await conn.closed).code, 1000)
  } finally {
    await peer.close()
  }
})

test('our server refusing with 400 (no handler for the subprotocol): UpgradeError 400 with its reason', async (t) => {
  const peer = await startOurServer({ echo })
  try {
    await assertUpgradeError(t, connect(peer.url, { protocols: ['chat'] }), 400, /no handler for subprotocol chat/)
    await assertUpgradeError(t, connect(peer.url), 400, /a subprotocol is required/)
  } finally {
    await peer.close()
  }
})

test('our server refusing with 401 and 403 from authorize: UpgradeError status and reason; headers reach authorize', async (t) => {
  const seen: Array<string | undefined> = []
  const peer = await startOurServer({ '': echo }, {
    authorize: (req) => {
      const auth = req.headers.authorization
      seen.push(auth)
      if (auth === undefined) return { status: 401, reason: 'a bearer token is required', headers: { 'WWW-Authenticate': 'Bearer' } }
      if (auth !== 'Bearer good') return false
      return true
    }
  })
  try {
    await assertUpgradeError(t, connect(peer.url), 401, /^a bearer token is required$/)
    await assertUpgradeError(t, connect(peer.url, { headers: { Authorization: 'Bearer bad' } }), 403, /^forbidden$/)
    const conn = await connect(peer.url, { headers: { Authorization: 'Bearer good' } })
    conn.close()
    t.is((await conn.closed).code, 1000)
    t.deepEqual(seen, [undefined, 'Bearer bad', 'Bearer good'])
  } finally {
    await peer.close()
  }
})

test('our server refusing a disallowed Origin: UpgradeError 403', async (t) => {
  const peer = await startOurServer({ '': echo }, { origins: ['https://good.example'] })
  try {
    await assertUpgradeError(t, connect(peer.url, { headers: { Origin: 'https://evil.example' } }), 403, /origin/)
    const conn = await connect(peer.url, { headers: { Origin: 'https://good.example' } })
    conn.close()
    await conn.closed
    t.pass()
  } finally {
    await peer.close()
  }
})

test('a server that never answers: the handshake times out at handshakeTimeout with UpgradeError (status 0, reason "timeout")', async (t) => {
  const requested = deferred<undefined>()
  const raw = await startRawServer(() => { requested.resolve(undefined) })
  try {
    const clock = new VirtualClock()
    const pending = connect(raw.url, { handshakeTimeout: 200, clock })
    const settled = watch(pending)
    await within(requested.promise, 5000, 'the request arrives')
    await clock.advance(199)
    t.false(settled(), 'still waiting at handshakeTimeout − 1 ms')
    await clock.advance(1)
    await assertUpgradeError(t, pending, 0, /^timeout$/)
    // The client gave up on the socket.
    t.true(await eventually(() => raw.sockets.size === 0), 'the client closed its socket')
  } finally {
    await raw.close()
  }
})

test('a refusal whose body never ends: at handshakeTimeout connect() rejects with the refusal (its status, the first line that came), not a timeout', async (t) => {
  const bodies = ['moved elsewhere\nand then some', '']
  const raw = await startRawServer((socket) => {
    // A 302 promising 100 bytes of body, and sending fewer.
    socket.write(`HTTP/1.1 302 Found\r\nLocation: ws://127.0.0.1:9/\r\nContent-Length: 100\r\n\r\n${bodies.shift() ?? ''}`)
  })
  try {
    for (const reason of [/^moved elsewhere$/, /^Found$/]) {
      // Real time: the response (a few bytes over loopback) is in long before the timeout.
      await assertUpgradeError(t, connect(raw.url, { handshakeTimeout: 1000 }), 302, reason)
      t.true(await eventually(() => raw.sockets.size === 0), 'the client closed its socket')
    }
  } finally {
    await raw.close()
  }
})

test('an answer that is not HTTP, or a 101 whose head is past Node\'s 16 KiB of headers, rejects with UpgradeError (status 0, Node\'s parse error as cause), not a bare parse error', async (t) => {
  const answers = [
    'SSH-2.0-OpenSSH_9.2\r\n\r\n',
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' + 'X-Pad: ' + 'a'.repeat(17 * 1024) + '\r\n\r\n'
  ]
  for (const answer of answers) {
    const raw = await startRawServer((socket) => { socket.write(answer) })
    try {
      const err = await t.throwsAsync(connect(raw.url), { instanceOf: UpgradeError })
      t.is(err?.status, 0)
      t.is(err?.reason, 'malformed response')
      t.regex(err?.message ?? '', /^invalid handshake response: Parse Error/)
      t.regex(String((err?.cause as NodeJS.ErrnoException | undefined)?.code), /^HPE_/)
      t.true(await eventually(() => raw.sockets.size === 0), 'the client closed its socket')
    } finally {
      await raw.close()
    }
  }
})

test('handshakeTimeout Infinity, or past 2^31 − 1 ms, waits for the answer (Node\'s timers fire such a delay after 1 ms); a negative or NaN one is refused with a RangeError', async (t) => {
  // The 101 comes 100 ms after the request: far past the 1 ms Node gives an overflowing delay.
  const raw = await startRawServer((socket, req) => { setTimeout(() => { if (!socket.destroyed) socket.write(switchingProtocols(req)) }, 100) })
  try {
    for (const handshakeTimeout of [Infinity, 2 ** 31]) {
      const conn = await connect(raw.url, { handshakeTimeout, heartbeat: false })
      t.is(conn.protocol, '', `opened with handshakeTimeout ${handshakeTimeout}`)
      conn.close()
    }
    for (const handshakeTimeout of [-1, NaN]) {
      await t.throwsAsync(connect(raw.url, { handshakeTimeout }), { instanceOf: RangeError, message: /handshakeTimeout/ })
    }
    await t.throwsAsync(connect(raw.url, { closeTimeout: -1 }), { instanceOf: RangeError, message: /closeTimeout/ })
  } finally {
    await raw.close()
  }
})

test('a signal aborted before connect rejects at once with its reason', async (t) => {
  const reason = new Error('not today')
  const controller = new AbortController()
  controller.abort(reason)
  const err = await t.throwsAsync(connect('ws://127.0.0.1:1/', { signal: controller.signal }))
  t.is(err, reason)
})

test('a signal aborted during the handshake rejects with its reason and drops the socket', async (t) => {
  const accepted: Socket[] = []
  const raw = await startRawServer((socket) => { accepted.push(socket) })
  try {
    const controller = new AbortController()
    const pending = connect(raw.url, { signal: controller.signal })
    t.true(await eventually(() => accepted.length === 1), 'the request arrived')
    controller.abort(new Error('changed my mind'))
    await t.throwsAsync(pending, { message: 'changed my mind' })
    t.true(await eventually(() => raw.sockets.size === 0), 'the socket is gone')
  } finally {
    await raw.close()
  }
})

test('a signal aborted after open closes the connection with 1000', async (t) => {
  const serverSide: Array<Promise<{ code: number }>> = []
  const peer = await startOurServer({ '': (conn) => { serverSide.push(conn.closed); return conn.sink(conn.source) } })
  try {
    const controller = new AbortController()
    const conn = await connect(peer.url, { signal: controller.signal })
    controller.abort()
    const closed = await conn.closed
    t.is(closed.code, 1000)
    t.true(closed.wasClean)
    t.is((await serverSide[0]).code, 1000)
    t.true(conn.signal.aborted)
  } finally {
    await peer.close()
  }
})

test('connection refused rejects with the socket error', async (t) => {
  const raw = await startRawServer(() => {})
  const port = raw.port
  await raw.close()
  const err = await t.throwsAsync(connect(`ws://127.0.0.1:${port}/`))
  t.is((err as NodeJS.ErrnoException).code, 'ECONNREFUSED')
})

test('a server that hangs up during the handshake rejects', async (t) => {
  const raw = await startRawServer((socket) => { socket.destroy() })
  try {
    await t.throwsAsync(connect(raw.url))
  } finally {
    await raw.close()
  }
})

test('bytes the server sends right after its 101 are the first message', async (t) => {
  // A text frame "early" (unmasked, server to client) in the same write as the 101.
  const frame = Buffer.from([0x81, 5, ...Buffer.from('early')])
  const raw = await startRawServer((socket, req) => { socket.write(Buffer.concat([Buffer.from(switchingProtocols(req)), frame])) })
  try {
    const conn = await connect(raw.url, { heartbeat: false })
    for await (const m of conn.source) {
      t.is(decoder.decode(m), 'early')
      break
    }
    conn.close()
  } finally {
    await raw.close()
  }
})
