/**
 * Limits that HTTP/2 adds: one TCP connection can carry many WebSockets, so their number per
 * session is bounded (`maxStreamsPerSession`), and the HTTP/1.1 side of the TLS port keeps the
 * server's `maxHeaderSize` (Node's http2 server does not read that option itself).
 */

import http2 from 'node:http2'
import { connect as tlsConnect } from 'node:tls'
import { WebSocketServer } from '../../src/index.js'
import { peerTest } from '../peers.js'
import { captureLogger, within } from '../server/helpers.js'
import { makeCertificate, openSession } from './helpers.js'

const test = peerTest('openssl')

let key = ''
let cert = ''

test.before(async () => {
  ({ key, cert } = await makeCertificate())
})

/** Open one extended CONNECT stream; resolves with its status, or 'refused' for a RST_STREAM REFUSED_STREAM. */
function openWebSocketStream (session: http2.ClientHttp2Session, port: number, opened: http2.ClientHttp2Stream[] = []): Promise<number | 'refused' | string> {
  return new Promise((resolve) => {
    const stream = session.request({
      ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https', ':path': '/', ':authority': `127.0.0.1:${port}`,
      'sec-websocket-version': '13'
    }, { endStream: false })
    opened.push(stream)
    stream.on('response', (headers) => resolve(Number(headers[':status'])))
    stream.on('error', () => {})
    stream.on('close', () => resolve(stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM ? 'refused' : `closed ${stream.rstCode ?? ''}`))
  })
}

test('maxStreamsPerSession: listen() advertises it as SETTINGS_MAX_CONCURRENT_STREAMS; a client holds the WebSocket one past it until one ends', async (t) => {
  t.timeout(60_000)
  const limit = 8
  const server = new WebSocketServer({ logger: captureLogger().logger, maxStreamsPerSession: limit })
  let handlers = 0
  server.register('', async ({ source }) => { handlers++; for await (const _ of source); })
  const { port } = await server.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => within(server.close(), 15_000, 'server.close'))
  const session = await openSession(`https://127.0.0.1:${port}`)
  t.teardown(() => { session.destroy() })
  t.is(session.remoteSettings.maxConcurrentStreams, limit)
  const streams: http2.ClientHttp2Stream[] = []
  const statuses = await Promise.all(Array.from({ length: limit }, () => openWebSocketStream(session, port, streams)))
  t.deepEqual(statuses, Array.from({ length: limit }, () => 200))
  let ninth: number | 'refused' | string | undefined
  const opening = openWebSocketStream(session, port, streams).then((s) => { ninth = s })
  // Bounded look that nothing happens while the eight are open: the client holds the ninth back.
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.is(ninth, undefined)
  t.is(handlers, limit)
  streams[0].close(http2.constants.NGHTTP2_CANCEL)
  await within(opening, 10_000, 'the ninth stream')
  t.is(ninth, 200)
  t.is(handlers, limit + 1)
})

test('maxStreamsPerSession on attach(): WebSockets past the limit on one session are refused with REFUSED_STREAM', async (t) => {
  t.timeout(60_000)
  const limit = 4
  const host = http2.createSecureServer({ key, cert, allowHTTP1: true })
  const server = new WebSocketServer({ logger: captureLogger().logger, maxStreamsPerSession: limit })
  let handlers = 0
  server.register('', async ({ source }) => { handlers++; for await (const _ of source); })
  server.attach(host)
  await new Promise<void>((resolve) => host.listen(0, '127.0.0.1', resolve))
  const port = (host.address() as { port: number }).port
  t.teardown(async () => {
    await within(server.close(), 15_000, 'server.close')
    await new Promise<void>((resolve) => host.close(() => resolve()))
  })
  const session = await openSession(`https://127.0.0.1:${port}`)
  t.teardown(() => { session.destroy() })
  const statuses = await Promise.all(Array.from({ length: limit + 2 }, () => openWebSocketStream(session, port)))
  t.is(statuses.filter((s) => s === 200).length, limit)
  t.deepEqual(statuses.filter((s) => s !== 200), ['refused', 'refused'])
  t.is(handlers, limit)
  // Another session has its own count.
  const other = await openSession(`https://127.0.0.1:${port}`)
  t.teardown(() => { other.destroy() })
  t.is(await openWebSocketStream(other, port), 200)
})

/** Send an HTTP/1.1 upgrade over TLS with one header of `size` bytes; resolves with the status line. */
function upgradeWithHeader (port: number, size: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
        `X-Big: ${'a'.repeat(size)}\r\n\r\n`)
    })
    let got = ''
    socket.on('data', (chunk: Buffer) => {
      got += chunk.toString('latin1')
      if (got.includes('\r\n')) {
        resolve(got.slice(0, got.indexOf('\r\n')))
        socket.destroy()
      }
    })
    socket.on('error', reject)
    socket.on('close', () => resolve(got === '' ? 'closed' : got.slice(0, got.indexOf('\r\n'))))
  })
}

test('maxHeaderSize holds for HTTP/1.1 upgrades on the HTTP/2 TLS port: 24 KiB of headers pass a 32 KiB limit, one past a 4 KiB limit gets 431', async (t) => {
  t.timeout(60_000)
  const big = new WebSocketServer({ logger: captureLogger().logger, maxHeaderSize: 32 * 1024 }).register('', async () => {})
  const { port } = await big.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => within(big.close(), 15_000, 'server.close'))
  t.is(await upgradeWithHeader(port, 24 * 1024), 'HTTP/1.1 101 Switching Protocols')
  const small = new WebSocketServer({ logger: captureLogger().logger, maxHeaderSize: 4096 }).register('', async () => {})
  const { port: smallPort } = await small.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => within(small.close(), 15_000, 'server.close'))
  t.regex(await upgradeWithHeader(smallPort, 4096), /^HTTP\/1\.1 431/)
})
