/**
 * permessage-deflate over real sockets: the `ws` client against our server and our client
 * against the `ws` server for each parameter combination (negotiated header checked, text,
 * binary, empty and fragmented messages echoed, fewer bytes on the wire), our client against our
 * server, undici's WebSocket, the decompression bomb, compressed bytes in the memory budget, and
 * a mass disconnect that leaves no zlib work behind.
 */

import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import { deflateRawSync, constants } from 'node:zlib'
import test, { type ExecutionContext } from 'ava'
import WebSocket, { WebSocketServer as WsServer, type PerMessageDeflateOptions as WsDeflateOptions } from 'ws'
import { WebSocket as UndiciWebSocket } from 'undici'
import { connect, type Connection, type PerMessageDeflateOptions } from '../../src/index.js'
import { deflateCounters } from '../../src/extensions/permessage-deflate.js'
import { offLoopJobs } from '../../src/extensions/zlib-work.js'
import { startDemo } from '../../examples/echo-server.js'
import { clientFrame, echo, rawRequest, RawClient, startServer, until, upgradeRequest, within } from './helpers.js'

/** Compressible JSON text of about `n` bytes. */
function json (n: number, seed = 0): string {
  let s = ''
  for (let i = 0; s.length < n; i++) s += JSON.stringify({ id: i + seed, user: `user${(i * 7) % 13}`, text: 'hello world', ok: i % 3 === 0 }) + '\n'
  return s.slice(0, n)
}

const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i))

/** What every round trip sends: [data, binary]; fragments are sent separately. */
const MESSAGES: Array<[string | Buffer, boolean]> = [
  ['héllo wörld ☃', false],
  [ALL_BYTES, true],
  ['', false],
  [Buffer.alloc(0), true],
  [json(2048, 1), false],
  [json(2048, 1), false],
  [Buffer.from(json(4096, 2)), true],
  [json(100 * 1024, 3), false]
]
const FRAGMENTS = [json(3000, 4), json(3000, 5), '☃']

/** The TCP socket under a `ws` WebSocket (for its byte counters). */
function socketOf (ws: WebSocket): Socket {
  return (ws as unknown as { _socket: Socket })._socket
}

/** A `ws` client: send MESSAGES and a fragmented text and binary message, read the echoes. */
async function wsRoundTrip (t: ExecutionContext, url: string, options: WsDeflateOptions): Promise<{ header: string | undefined, written: number, read: number }> {
  const ws = new WebSocket(url, { perMessageDeflate: { threshold: 0, ...options } })
  let header: string | undefined
  ws.on('upgrade', (res) => { header = res.headers['sec-websocket-extensions'] })
  const got: Array<[Buffer, boolean]> = []
  ws.on('message', (data: Buffer, binary) => got.push([data, binary]))
  await within(once(ws, 'open'), 5000, 'ws open')
  for (const [data, binary] of MESSAGES) ws.send(data, { binary })
  FRAGMENTS.forEach((f, i) => ws.send(f, { binary: false, fin: i === FRAGMENTS.length - 1 }))
  FRAGMENTS.forEach((f, i) => ws.send(Buffer.from(f), { binary: true, fin: i === FRAGMENTS.length - 1 }))
  await until(() => got.length === MESSAGES.length + 2, 10_000, 'all echoes')
  for (let i = 0; i < MESSAGES.length; i++) {
    const [data, binary] = MESSAGES[i]
    t.is(got[i][1], binary, `message ${i} type`)
    t.true(got[i][0].equals(Buffer.from(data)), `message ${i} bytes`)
  }
  const whole = Buffer.from(FRAGMENTS.join(''))
  t.deepEqual([got[MESSAGES.length][1], got[MESSAGES.length][0].equals(whole)], [false, true])
  t.deepEqual([got[MESSAGES.length + 1][1], got[MESSAGES.length + 1][0].equals(whole)], [true, true])
  const written = socketOf(ws).bytesWritten
  const read = socketOf(ws).bytesRead
  ws.close()
  await within(once(ws, 'close'), 5000, 'ws close')
  return { header, written, read }
}

/** Payload bytes of one round trip, each way. */
const PAYLOAD = MESSAGES.reduce((n, [d]) => n + Buffer.byteLength(d), 0) + 2 * Buffer.byteLength(FRAGMENTS.join(''))

// [our server's options, the ws client's offer, the answer expected]
const WS_CLIENT_CASES: Array<[PerMessageDeflateOptions, WsDeflateOptions, string]> = [
  // ws offers client_max_window_bits, so the server's default 12-bit windows apply both ways.
  [{}, {}, 'permessage-deflate; server_max_window_bits=12; client_max_window_bits=12'],
  [{}, { serverNoContextTakeover: true }, 'permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12'],
  [{}, { clientNoContextTakeover: true }, 'permessage-deflate; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12'],
  [{}, { serverMaxWindowBits: 9 }, 'permessage-deflate; server_max_window_bits=9; client_max_window_bits=12'],
  [{}, { clientMaxWindowBits: 10 }, 'permessage-deflate; server_max_window_bits=12; client_max_window_bits=10'],
  [{}, { serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 11, clientMaxWindowBits: 13 },
    'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits=12'],
  [{ serverNoContextTakeover: true, clientNoContextTakeover: true }, {}, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12'],
  [{ serverMaxWindowBits: 10, clientMaxWindowBits: 9 }, {}, 'permessage-deflate; server_max_window_bits=10; client_max_window_bits=9'],
  // 15-bit windows: nothing to say beyond the extension.
  [{ serverMaxWindowBits: 15, clientMaxWindowBits: 15 }, {}, 'permessage-deflate'],
  [{ sharedCompressor: true }, {}, 'permessage-deflate; server_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12']
]

for (const [ours, theirs, expected] of WS_CLIENT_CASES) {
  test(`ws client ${JSON.stringify(theirs)} → our server ${JSON.stringify(ours)}: "${expected}", echoes intact, compressed both ways`, async (t) => {
    const { url } = await startServer(t, { '': echo }, { perMessageDeflate: { threshold: 0, ...ours } })
    const { header, written, read } = await wsRoundTrip(t, url, theirs)
    t.is(header, expected)
    // JSON shrinks several times: both sides compressed what they sent.
    t.true(written < PAYLOAD / 3, `client wrote ${written} for ${PAYLOAD}`)
    t.true(read < PAYLOAD / 3, `client read ${read} for ${PAYLOAD}`)
  })
}

test('ws client → our server with deflate off: no extension, echoes intact', async (t) => {
  const { url } = await startServer(t, { '': echo })
  const { header, read } = await wsRoundTrip(t, url, {})
  t.is(header, undefined)
  t.true(read > PAYLOAD)
})

/** Our client: the same messages (fragments as one message each: the sink sends whole messages). */
async function ourRoundTrip (t: ExecutionContext, conn: Connection): Promise<void> {
  const sent: Array<string | Uint8Array> = MESSAGES.map(([d]) => d)
  await conn.sink(sent)
  let i = 0
  for await (const m of conn.source) {
    t.true(Buffer.from(m).equals(Buffer.from(sent[i])), `message ${i}`)
    if (++i === sent.length) break
  }
  t.is(i, sent.length)
  conn.close()
  t.true((await conn.closed).wasClean)
}

// [the ws server's options, our client's request, the answer expected]
const WS_SERVER_CASES: Array<[WsDeflateOptions, PerMessageDeflateOptions, string]> = [
  [{}, {}, 'permessage-deflate'],
  [{ serverNoContextTakeover: true, clientNoContextTakeover: true }, {}, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover'],
  [{ serverMaxWindowBits: 10 }, {}, 'permessage-deflate; server_max_window_bits=10'],
  [{ clientMaxWindowBits: 9 }, {}, 'permessage-deflate; client_max_window_bits=9'],
  [{}, { serverNoContextTakeover: true }, 'permessage-deflate; server_no_context_takeover'],
  [{}, { serverMaxWindowBits: 9, clientMaxWindowBits: 11 }, 'permessage-deflate; server_max_window_bits=9; client_max_window_bits=11'],
  [{}, { clientNoContextTakeover: true, sharedCompressor: true }, 'permessage-deflate; client_no_context_takeover']
]

for (const [theirs, ours, expected] of WS_SERVER_CASES) {
  test(`our client ${JSON.stringify(ours)} → ws server ${JSON.stringify(theirs)}: "${expected}", echoes intact`, async (t) => {
    const wss = new WsServer({ port: 0, host: '127.0.0.1', perMessageDeflate: { threshold: 0, ...theirs } })
    await once(wss, 'listening')
    t.teardown(() => new Promise((resolve) => wss.close(() => resolve(undefined))))
    let serverRead = 0
    wss.on('connection', (ws) => {
      ws.on('message', (data, binary) => ws.send(data, { binary }))
      ws.on('close', () => { serverRead = socketOf(ws).bytesRead })
    })
    const conn = await connect(`ws://127.0.0.1:${(wss.address() as { port: number }).port}/`, { perMessageDeflate: { threshold: 0, ...ours }, heartbeat: false })
    t.is(conn.headers['sec-websocket-extensions'], expected)
    await ourRoundTrip(t, conn)
    await until(() => serverRead > 0, 5000, 'ws server saw the close')
    t.true(serverRead < (PAYLOAD - 2 * Buffer.byteLength(FRAGMENTS.join(''))) / 3, `ws server read ${serverRead}`)
  })
}

test('our client → our server, each parameter set: header and echoes', async (t) => {
  const sets: Array<[PerMessageDeflateOptions, PerMessageDeflateOptions, string]> = [
    [{}, {}, 'permessage-deflate; server_max_window_bits=12; client_max_window_bits=12'],
    [{ serverMaxWindowBits: 8 }, { clientMaxWindowBits: 8, clientNoContextTakeover: true }, 'permessage-deflate; client_no_context_takeover; server_max_window_bits=8; client_max_window_bits=8'],
    [{ sharedCompressor: true, clientNoContextTakeover: true }, { serverMaxWindowBits: 12 }, 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=12'],
    [{ serverMaxWindowBits: 15, clientMaxWindowBits: 15 }, {}, 'permessage-deflate']
  ]
  for (const [server, client, expected] of sets) {
    const { url } = await startServer(t, { '': echo }, { perMessageDeflate: { threshold: 0, ...server } })
    const conn = await connect(url, { perMessageDeflate: { threshold: 0, ...client }, heartbeat: false })
    t.is(conn.headers['sec-websocket-extensions'], expected)
    await ourRoundTrip(t, conn)
  }
})

test('our client offering deflate to a server that has it off: no extension, plain messages', async (t) => {
  const { url } = await startServer(t, { '': echo })
  const conn = await connect(url, { perMessageDeflate: true, heartbeat: false })
  t.is(conn.headers['sec-websocket-extensions'], undefined)
  await ourRoundTrip(t, conn)
})

test('undici WebSocket negotiates permessage-deflate: extensions attribute, echoes intact', async (t) => {
  const { url } = await startServer(t, { '': echo }, { perMessageDeflate: { threshold: 0 } })
  const ws = new UndiciWebSocket(url)
  ws.binaryType = 'arraybuffer'
  const got: Array<string | ArrayBuffer> = []
  ws.onmessage = (e) => { got.push(e.data as string | ArrayBuffer) }
  await within(new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject }), 5000, 'undici open')
  // undici offers client_max_window_bits (and inflates only: it sends uncompressed).
  t.is(ws.extensions, 'permessage-deflate; server_max_window_bits=12; client_max_window_bits=12')
  const sent: Array<string | Buffer> = MESSAGES.map(([d]) => d)
  for (const m of sent) ws.send(m)
  await until(() => got.length === sent.length, 10_000, 'undici echoes')
  for (let i = 0; i < sent.length; i++) {
    const m = got[i]
    t.true(typeof m === 'string' ? m === sent[i] : Buffer.from(m).equals(sent[i] as Buffer), `message ${i}`)
  }
  ws.close()
  await within(new Promise((resolve) => { ws.onclose = resolve }), 5000, 'undici close')
})

/** A permessage-deflate client frame (RSV1 set on the first frame) carrying `compressedBody`. */
function compressedFrame (opcode: number, body: Uint8Array, fin = true): Buffer {
  const frame = clientFrame(opcode, body, { fin })
  frame[0] |= 0x40
  return frame
}

function deflated (data: Uint8Array): Buffer {
  const out = deflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH })
  return out.subarray(0, out.length - 4)
}

test('a decompression bomb (16 MiB of zeros in 16 KiB) against maxMessageSize 1 MiB: 1009, and the server carries on', async (t) => {
  const { port, server } = await startServer(t, { '': echo }, { perMessageDeflate: true, maxMessageSize: 1024 * 1024 })
  const raw = await RawClient.connect(port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } })
  raw.send(compressedFrame(2, deflated(new Uint8Array(16 * 1024 * 1024))))
  t.deepEqual(await raw.nextClose(), { code: 1009, reason: 'message exceeds maxMessageSize' })
  await until(() => server.stats().connections === 0, 5000, 'connection gone')
  t.is(server.stats().heldBytes, 0)
  const ok = await RawClient.connect(port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } })
  ok.send(compressedFrame(1, deflated(Buffer.from('still here'))))
  const echoed = await ok.nextFrame()
  t.is(echoed?.payload.toString(), 'still here')
})

test('compressed fragments held count toward the memory budget: over it, 1013', async (t) => {
  const { port, server } = await startServer(t, { '': echo }, { perMessageDeflate: true, memoryBudget: 256 * 1024 })
  const raw = await RawClient.connect(port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } })
  // Compressed bytes are not inflated until the message is whole: they are held as they came.
  const body = deflated(randomBytes(1024 * 1024))
  const chunk = 32 * 1024
  raw.send(compressedFrame(1, body.subarray(0, chunk), false))
  await until(() => server.stats().heldBytes >= chunk, 5000, 'the first fragment held')
  for (let at = chunk; at < body.length; at += chunk) raw.send(clientFrame(0, body.subarray(at, at + chunk), { fin: false }))
  t.is((await raw.nextClose())?.code, 1013)
  await until(() => server.stats().connections === 0, 5000, 'connection gone')
  t.is(server.stats().heldBytes, 0)
})

test('mass disconnect while compressed messages are in flight: no zlib handle, job or held byte left', async (t) => {
  t.timeout(60_000)
  const { url, server } = await startServer(t, { '': echo }, { perMessageDeflate: { threshold: 0 } })
  const conns = await Promise.all(Array.from({ length: 200 }, () => connect(url, { perMessageDeflate: { threshold: 0 }, heartbeat: false })))
  const big = json(256 * 1024)
  // Each sends a stream of compressible messages, and a fragment of one more is left hanging.
  for (const c of conns) void c.sink((function * () { for (let i = 0; i < 50; i++) yield i % 10 === 0 ? big : json(1500, i) })()).catch(() => {})
  await until(() => server.stats().connections === 200 && server.stats().heldBytes > 0, 10_000, 'traffic under way')
  const before = deflateCounters.deflated + deflateCounters.inflated
  t.true(before > 0)
  // Every client socket dropped at once, without a close frame.
  for (const c of conns) (c as unknown as { terminate: () => void }).terminate()
  await until(() => server.stats().connections === 0, 20_000, 'all connections gone')
  await Promise.all(conns.map((c) => c.closed))
  // Large messages are compressed off the event loop, one job at a time: the one under way
  // finishes (its result unheeded), the ones waiting behind it never start.
  await until(() => offLoopJobs() === 0 && deflateCounters.inFlight === 0, 10_000, 'no zlib job left')
  t.is(server.stats().heldBytes, 0)
  const zlib = process.getActiveResourcesInfo().filter((r) => /zlib/i.test(r))
  t.deepEqual(zlib, [], 'no zlib handle is alive')
})

test('the server\'s answer over the wire: first acceptable offer; malformed offers declined (101, no extension); bad syntax 400; off: no answer', async (t) => {
  const { port } = await startServer(t, { '': echo }, { perMessageDeflate: true })
  const ask = async (offer: string): Promise<{ status: number, answer: string | undefined }> => {
    const res = await rawRequest(port, upgradeRequest({ headers: { 'Sec-WebSocket-Extensions': offer } }))
    return { status: res.status, answer: res.headers['sec-websocket-extensions'] }
  }
  t.deepEqual(await ask('permessage-deflate; server_max_window_bits=20, permessage-deflate; server_no_context_takeover'), { status: 101, answer: 'permessage-deflate; server_no_context_takeover; server_max_window_bits=12' })
  t.deepEqual(await ask('permessage-deflate; bogus'), { status: 101, answer: undefined })
  t.deepEqual(await ask('permessage-deflate; client_max_window_bits=99'), { status: 101, answer: undefined })
  t.deepEqual(await ask('foo, permessage-deflate; client_max_window_bits'), { status: 101, answer: 'permessage-deflate; server_max_window_bits=12; client_max_window_bits=12' })
  t.is((await ask('permessage-deflate; client_max_window_bits=')).status, 400)
  const off = await startServer(t, { '': echo })
  const res = await rawRequest(off.port, upgradeRequest({ headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } }))
  t.deepEqual([res.status, res.headers['sec-websocket-extensions']], [101, undefined])
})

test('the demo (npm start) negotiates permessage-deflate with a browser-like offer', async (t) => {
  const demo = await startDemo(0)
  t.teardown(() => demo.close())
  const ws = new WebSocket(demo.wsUrl, { perMessageDeflate: true })
  let header: string | undefined
  ws.on('upgrade', (res) => { header = res.headers['sec-websocket-extensions'] })
  await within(once(ws, 'open'), 5000, 'ws open')
  t.is(header, 'permessage-deflate; server_max_window_bits=12; client_max_window_bits=12')
  ws.close()
  await within(once(ws, 'close'), 5000, 'ws close')
})
