/**
 * wss:// against hostile clients written with node:tls and node:net: TLS records that do not
 * decrypt after the upgrade, upgrade requests that carry a body, a client certificate that
 * `authorize` reads, and the handshake timer of an HTTP/2 connection whose TLS handshake was
 * slow. Each state must have an end.
 */

import crypto from 'node:crypto'
import http2Client from 'node:http2'
import net from 'node:net'
import tls from 'node:tls'
import { WebSocketServer, type Connection } from '../../src/index.js'
import { peerTest } from '../peers.js'
import { makeCertificate } from '../http2/helpers.js'
import { captureLogger, deferred, echo, ownServer, parseResponse, until, upgradeRequest, WatchedClock, within, WsPeer } from './helpers.js'

const test = peerTest('openssl')

let key = ''
let cert = ''
/** A client's certificate the server trusts, and one it does not. */
let client = { key: '', cert: '' }
let stranger = { key: '', cert: '' }

test.before(async () => {
  [{ key, cert }, client, stranger] = await Promise.all([makeCertificate(), makeCertificate(), makeCertificate()])
})

/** A TLS client on a TCP socket of its own, so bytes can be written under TLS. */
async function secureClient (port: number, alpn: string[]): Promise<{ raw: net.Socket, secure: tls.TLSSocket }> {
  const raw = net.connect(port, '127.0.0.1')
  raw.on('error', () => {})
  const secure = tls.connect({ socket: raw, ca: cert, servername: 'localhost', ALPNProtocols: alpn })
  secure.on('error', () => {})
  await within(new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', resolve)
    secure.once('close', () => reject(new Error('closed in the TLS handshake')))
  }), 10_000, 'TLS handshake')
  return { raw, secure }
}

/** Everything the server sends until it closes the connection. */
function readAll (socket: tls.TLSSocket, ms: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  return within(new Promise<Buffer>((resolve) => socket.once('close', () => resolve(Buffer.concat(chunks)))), ms, 'the server to close')
}

for (const http2 of [true, false]) {
  const kind = http2 ? 'HTTP/2 server' : 'https server'

  test(`wss:// (${kind}) a TLS record that does not decrypt after the upgrade ends the connection (1006) at once, even with the heartbeat off`, async (t) => {
    const opened = deferred<Connection>()
    const server = new WebSocketServer({ logger: captureLogger().logger, heartbeat: false })
    server.register('', async (c) => { opened.resolve(c); await c.sink(c.source) })
    const { port } = await server.listen({ port: 0, tls: { key, cert }, http2 })
    t.teardown(() => within(server.close(), 15_000, 'server.close'))
    const { raw, secure } = await secureClient(port, ['http/1.1'])
    t.teardown(() => { raw.destroy() })
    secure.write(upgradeRequest())
    const conn = await within(opened.promise, 5000, 'handler')
    // An application_data record of 5 bytes that no key made: OpenSSL fails it (bad record MAC).
    // Node reports that on the server's TLS socket as an error without destroying it.
    raw.write(Buffer.from([0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5]))
    t.deepEqual(await within(conn.closed, 5000, 'the connection to end'), { code: 1006, reason: '', wasClean: false })
    t.is(server.stats().connections, 0)
  })

  for (const [name, headers, body] of [
    ['Content-Length', { 'Content-Length': '5' }, 'hello'],
    ['Transfer-Encoding', { 'Transfer-Encoding': 'chunked' }, '5\r\nhello\r\n0\r\n\r\n']
  ] as const) {
    test(`wss:// (${kind}) an upgrade request with a body (${name}) gets 400, and its body is never read as frames`, async (t) => {
      let ran = false
      const server = new WebSocketServer({ logger: captureLogger().logger })
      server.register('', async (c) => { ran = true; await c.sink(c.source) })
      const { port } = await server.listen({ port: 0, tls: { key, cert }, http2 })
      t.teardown(() => within(server.close(), 15_000, 'server.close'))
      const { secure } = await secureClient(port, ['http/1.1'])
      const answer = readAll(secure, 5000)
      secure.write(upgradeRequest({ headers }) + body)
      const res = parseResponse(await answer, true)
      t.is(res.status, 400)
      t.regex(res.body, /body/)
      t.false(ran, 'no handler ran')
    })
  }
}

for (const http2 of [true, false]) {
  test(`wss:// (${http2 ? 'HTTP/2 server' : 'https server'}) listen({ tls }) asks for client certificates (requestCert) and authorize reads the peer's from request.socket`, async (t) => {
    const seen: Array<{ authorized: boolean, fingerprint: string | undefined }> = []
    const server = new WebSocketServer({
      logger: captureLogger().logger,
      authorize: (request) => {
        const socket = request.socket as tls.TLSSocket
        const peer = socket.getPeerCertificate()
        seen.push({ authorized: socket.authorized, fingerprint: peer.fingerprint256 })
        return socket.authorized
      }
    })
    server.register('', echo)
    // Typed as ListenOptions['tls']: requestCert and rejectUnauthorized are TLS options of the server.
    const { port } = await server.listen({ port: 0, tls: { key, cert, requestCert: true, rejectUnauthorized: false, ca: client.cert }, http2 })
    t.teardown(() => within(server.close(), 15_000, 'server.close'))
    const url = `wss://127.0.0.1:${port}`
    const trusted = await WsPeer.open(url, undefined, { ca: cert, key: client.key, cert: client.cert })
    await trusted.send('with a certificate')
    t.is((await trusted.next()).data.toString(), 'with a certificate')
    t.is((await trusted.close(1000)).code, 1000)
    await t.throwsAsync(within(new WsPeer(url, undefined, { ca: cert, key: stranger.key, cert: stranger.cert }).opened, 5000, 'refused'), { message: /403/ })
    await t.throwsAsync(within(new WsPeer(url, undefined, { ca: cert }).opened, 5000, 'refused'), { message: /403/ })
    const fingerprint = new crypto.X509Certificate(client.cert).fingerprint256
    t.deepEqual(seen, [{ authorized: true, fingerprint }, { authorized: false, fingerprint: new crypto.X509Certificate(stranger.cert).fingerprint256 }, { authorized: false, fingerprint: undefined }])
    if (!http2) return
    // An extended CONNECT (RFC 8441) on an HTTP/2 connection made with the certificate, and one without.
    for (const [certificate, status] of [[client, 200], [undefined, 403]] as const) {
      const session = http2Client.connect(url.replace('wss:', 'https:'), { ca: cert, servername: 'localhost', ...certificate })
      session.on('error', () => {})
      t.teardown(() => { session.destroy() })
      const stream = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'https', ':path': '/', ':authority': 'localhost', 'sec-websocket-version': '13' })
      stream.on('error', () => {})
      const headers = await within(new Promise<http2Client.IncomingHttpHeaders>((resolve) => { stream.once('response', resolve) }), 5000, 'the CONNECT answer')
      t.is(Number(headers[':status']), status)
      session.destroy()
    }
    t.deepEqual(seen.slice(3), [{ authorized: true, fingerprint }, { authorized: false, fingerprint: undefined }])
  })
}

test('an upgrade request with Content-Length: 0 has no body and is served (plain TCP)', async (t) => {
  const server = new WebSocketServer({ logger: captureLogger().logger })
  server.register('', echo)
  const { port } = await server.listen({ port: 0 })
  t.teardown(() => within(server.close(), 15_000, 'server.close'))
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  t.teardown(() => { socket.destroy() })
  const first = within(new Promise<Buffer>((resolve) => { socket.once('data', resolve) }), 5000, 'the answer')
  socket.write(upgradeRequest({ headers: { 'Content-Length': '0' } }))
  t.regex((await first).toString('latin1'), /^HTTP\/1\.1 101 /)
})

test.serial('wss:// server.close() with 20 sockets stuck in the TLS handshake: the 10 silent ones go after a second, the 10 with half a ClientHello at closeTimeout, and close() resolves then', async (t) => {
  t.timeout(30_000)
  const clock = new WatchedClock()
  // Node's own TLS handshake timer (real time) is handshakeTimeout too: a minute, out of the way.
  const server = new WebSocketServer({ logger: captureLogger().logger, handshakeTimeout: 60_000, closeTimeout: 5000, clock })
  server.register('', echo)
  const { port } = await server.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => within(server.close(), 15_000, 'server.close'))
  const accepted: net.Socket[] = []
  ownServer(server).on('connection', (s: net.Socket) => accepted.push(s))
  const clients: net.Socket[] = []
  t.teardown(() => { for (const c of clients) c.destroy() })
  // The first 40 bytes of a TLS record carrying a ClientHello (RFC 8446 §5.1): never finished.
  const halfHello = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00, 0xfc, 0x03, 0x03]), Buffer.alloc(29, 7)])
  for (let i = 0; i < 20; i++) {
    const c = net.connect(port, '127.0.0.1')
    c.on('error', () => {})
    if (i % 2 === 1) c.write(halfHello)
    clients.push(c)
  }
  await until(() => accepted.length === 20 && accepted.filter((s) => s.bytesRead > 0).length === 10, 10_000, 'the server to accept 20 sockets and read 10 half hellos')
  const closing = server.close()
  const silent = accepted.filter((s) => s.bytesRead === 0)
  const talking = accepted.filter((s) => s.bytesRead > 0)
  await clock.advance(999)
  t.is(accepted.filter((s) => s.destroyed).length, 0, 'all there 1 ms before the second')
  await clock.advance(1)
  t.true(silent.every((s) => s.destroyed), 'the silent ones gone at the second')
  t.true(talking.every((s) => !s.destroyed), 'the others still there')
  await clock.advance(3999)
  t.true(talking.every((s) => !s.destroyed), 'still there 1 ms before closeTimeout')
  await clock.advance(1)
  await within(closing, 10_000, 'close() at closeTimeout')
  t.true(talking.every((s) => s.destroyed), 'gone at closeTimeout')
})
