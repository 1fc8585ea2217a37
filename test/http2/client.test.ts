/**
 * `connect(url, { http2: true })`: over HTTP/2 against the server, one session per origin shared
 * by its connections and closed once idle, refusals as UpgradeErrors, and the fall back to
 * HTTP/1.1 where the server has no HTTP/2 or does not send SETTINGS_ENABLE_CONNECT_PROTOCOL.
 */

import http2, { type ClientHttp2Session, type ServerHttp2Session } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { connect, UpgradeError, WebSocketServer, type Connection } from '../../src/index.js'
import { SESSION_IDLE_TIMEOUT } from '../../src/http2/client.js'
import { VirtualClock } from '../../src/testing.js'
import { peerTest } from '../peers.js'
import { captureLogger, echo, within } from '../server/helpers.js'
import { makeCertificate } from './helpers.js'

const test = peerTest('openssl')

let key = ''
let cert = ''

test.before(async () => {
  ({ key, cert } = await makeCertificate())
})

const decode = (m: Uint8Array): string => new TextDecoder().decode(m)
const tls = { rejectUnauthorized: false }

/** A wspipe server attached to an HTTP/2 host whose sessions the test can count. */
async function start (t: { teardown: (f: () => Promise<void>) => void }, hostSettings: http2.Settings = {}): Promise<{ url: string, server: WebSocketServer, sessions: ServerHttp2Session[], seen: Connection[] }> {
  const host = http2.createSecureServer({ key, cert, allowHTTP1: true, settings: hostSettings })
  const sessions: ServerHttp2Session[] = []
  host.on('session', (s) => sessions.push(s))
  const server = new WebSocketServer({ logger: captureLogger().logger })
  const seen: Connection[] = []
  server.register('echo', (conn) => { seen.push(conn); return echo(conn) })
  if (hostSettings.enableConnectProtocol === false) {
    // Not attached (attach would turn the setting on): HTTP/1.1 upgrades only.
    host.on('upgrade', (req, socket, head) => { server.handleUpgrade(req, socket, head) })
  } else {
    server.attach(host)
  }
  await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    await within(server.close(), 15_000, 'server.close')
    for (const s of sessions) s.destroy()
    await new Promise<void>((resolve) => host.close(() => resolve()))
  })
  return { url: `wss://127.0.0.1:${(host.address() as AddressInfo).port}/chat?x=1`, server, sessions, seen }
}

test('connect({ http2: true }): the WebSocket on an HTTP/2 stream, echo, a clean close both sides', async (t) => {
  const { url, seen } = await start(t)
  const conn = await connect(url, { http2: true, tls, protocols: ['echo'] })
  t.is(conn.httpVersion, '2')
  t.is(conn.protocol, 'echo')
  t.is(conn.url, '/chat?x=1')
  await conn.send('hello over h2')
  const { value } = await conn.source.next()
  t.is(decode(value as Uint8Array), 'hello over h2')
  t.is(seen[0].httpVersion, '2')
  t.is(seen[0].url, '/chat?x=1')
  conn.close(1000, 'bye')
  t.deepEqual(await within(conn.closed, 5000, 'client closed'), { code: 1000, reason: 'bye', wasClean: true })
  t.deepEqual(await within(seen[0].closed, 5000, 'server closed'), { code: 1000, reason: 'bye', wasClean: true })
})

test('connections to one origin share one session, which closes once none is left on it for SESSION_IDLE_TIMEOUT on connect()\'s clock, not 1 ms before', async (t) => {
  const { url, sessions, seen } = await start(t)
  const clock = new VirtualClock()
  const options = { http2: true, tls, protocols: ['echo'], clock }
  const conns = await Promise.all([1, 2, 3].map(() => connect(url, options)))
  t.is(sessions.length, 1)
  t.is(new Set(seen.map((c) => c.remotePort)).size, 1)
  await Promise.all(conns.map(async (c, i) => {
    await c.send(`m${i}`)
    t.is(decode((await c.source.next()).value as Uint8Array), `m${i}`)
  }))
  // Closing two leaves the session for the third; a new connection joins it.
  conns[0].close()
  conns[1].close()
  await Promise.all([conns[0].closed, conns[1].closed])
  const late = await connect(url, options)
  t.is(sessions.length, 1)
  // The client's session, under the connection's stream.
  const session = (late as unknown as { transport: { session: ClientHttp2Session } }).transport.session
  late.close()
  conns[2].close()
  // The session is let go as each stream closes, before `closed` settles.
  await Promise.all([late.closed, conns[2].closed])
  await clock.advance(SESSION_IDLE_TIMEOUT - 1)
  t.false(session.closed, 'kept 1 ms before its idle time is up')
  await clock.advance(1)
  t.true(session.closed, 'closed when its idle time is up')
  // The server sees it go.
  await within(new Promise((resolve) => { if (sessions[0].closed || sessions[0].destroyed) resolve(undefined); else sessions[0].once('close', resolve) }), 10_000, 'the idle session closed')
})

test('a refusal over HTTP/2 is an UpgradeError with the status and the body\'s reason', async (t) => {
  const { url } = await start(t)
  const err = await t.throwsAsync(connect(url, { http2: true, tls, protocols: ['nothing-here'] }), { instanceOf: UpgradeError })
  t.is(err?.status, 400)
  t.regex(err?.reason ?? '', /no handler for subprotocol nothing-here/)
})

test('falls back to HTTP/1.1 when the server does not send SETTINGS_ENABLE_CONNECT_PROTOCOL', async (t) => {
  const { url, seen } = await start(t, { enableConnectProtocol: false })
  const conn = await connect(url, { http2: true, tls, protocols: ['echo'] })
  t.is(conn.httpVersion, '1.1')
  await conn.send('fallback')
  t.is(decode((await conn.source.next()).value as Uint8Array), 'fallback')
  t.is(seen[0].httpVersion, '1.1')
  conn.close()
  await conn.closed
})

test('falls back to HTTP/1.1 when the server has no HTTP/2 at all (ALPN)', async (t) => {
  const server = new WebSocketServer({ logger: captureLogger().logger })
  server.register('echo', echo)
  const address = await server.listen({ port: 0, tls: { key, cert }, http2: false })
  t.teardown(() => within(server.close(), 15_000, 'server.close'))
  const conn = await connect(`wss://127.0.0.1:${address.port}/`, { http2: true, tls, protocols: ['echo'] })
  t.is(conn.httpVersion, '1.1')
  await conn.send('alpn')
  t.is(decode((await conn.source.next()).value as Uint8Array), 'alpn')
  conn.close()
  await conn.closed
})

test('without http2 (and for ws://) the client stays on HTTP/1.1', async (t) => {
  const { url } = await start(t)
  const conn = await connect(url, { tls, protocols: ['echo'] })
  t.is(conn.httpVersion, '1.1')
  conn.close()
  await conn.closed
  const plain = new WebSocketServer({ logger: captureLogger().logger })
  plain.register('', echo)
  const address = await plain.listen({ port: 0 })
  t.teardown(() => within(plain.close(), 15_000, 'plain close'))
  const overWs = await connect(`ws://127.0.0.1:${address.port}/`, { http2: true })
  t.is(overWs.httpVersion, '1.1')
  overWs.close()
  await overWs.closed
})

test('a refusal whose body never ends: at handshakeTimeout connect() rejects with the refusal (403, the first line that came), at an abort with its reason; either way the stream is closed, so the session goes idle', async (t) => {
  const host = http2.createSecureServer({ key, cert, settings: { enableConnectProtocol: true } })
  const streams: http2.ServerHttp2Stream[] = []
  host.on('stream', (stream) => {
    streams.push(stream)
    stream.on('error', () => {})
    // A 403 whose body starts and never ends.
    stream.respond({ ':status': 403 })
    stream.write('forbidden, and the rest never comes')
  })
  const sessions: ServerHttp2Session[] = []
  host.on('session', (s) => sessions.push(s))
  await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const s of sessions) s.destroy()
    await new Promise<void>((resolve) => host.close(() => resolve()))
  })
  const url = `wss://127.0.0.1:${(host.address() as AddressInfo).port}/`
  const streamClosed = (i: number, what: string): Promise<boolean> => within(new Promise<boolean>((resolve) => { if (streams[i].closed) resolve(true); else streams[i].once('close', () => resolve(true)) }), 5000, what)
  // Real time: the 403 and its first bytes (over loopback) are in long before the timeout.
  const refusal = await connect(url, { http2: true, tls, handshakeTimeout: 1000 }).then(() => 'open', (err: unknown) => err)
  t.true(refusal instanceof UpgradeError, 'connect() rejected at handshakeTimeout')
  t.is((refusal as UpgradeError).status, 403)
  t.is((refusal as UpgradeError).reason, 'forbidden, and the rest never comes')
  t.true(await streamClosed(0, 'the client lets go of the stream at the timeout'))
  const controller = new AbortController()
  const aborted = connect(url, { http2: true, tls, signal: controller.signal }).then(() => 'open', (err: unknown) => err)
  for (let i = 0; i < 200 && streams.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  controller.abort(new Error('enough'))
  t.is(((await aborted) as Error).message, 'enough')
  t.true(await streamClosed(1, 'the client lets go of the stream at the abort'))
  t.is(sessions.length, 1, 'both on one session')
  // No WebSocket left on the session: it closes at its idle time.
  t.true(await within(new Promise<boolean>((resolve) => { if (sessions[0].closed || sessions[0].destroyed) resolve(true); else sessions[0].once('close', () => resolve(true)) }), SESSION_IDLE_TIMEOUT + 5000, 'the idle session closes'))
})
