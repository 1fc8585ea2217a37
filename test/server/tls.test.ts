/**
 * wss://: the same echo battery over TLS, with a self-signed certificate made by openssl for
 * this run (CN=localhost, SAN 127.0.0.1), against `ws` (verifying with the cert as CA) and undici
 * (not verifying).
 */

import { once } from 'node:events'
import https from 'node:https'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import tls from 'node:tls'
import { Agent } from 'undici'
import { WebSocketServer, type Connection } from '../../src/index.js'
import { VirtualClock } from '../../src/testing.js'
import { echoBattery, undiciKind, wsKind } from './clients.js'
import { peerTest } from '../peers.js'
import { makeCertificate } from '../http2/helpers.js'
import { captureLogger, clientFrame, closePayload, deferred, echo, nextAccepted, parseResponse, RawClient, startServer, timeoutsUntilDropped, upgradeRequest, WatchedClock, within, WsPeer } from './helpers.js'

const test = peerTest('openssl')

let key = ''
let cert = ''

test.before(async () => {
  // the demo's own self-signed certificate (127.0.0.1 and localhost)
  ({ key, cert } = await makeCertificate())
})

async function startTls (t: Parameters<typeof startServer>[0], options: ConstructorParameters<typeof WebSocketServer>[0] = {}): Promise<{ url: string, port: number }> {
  const server = new WebSocketServer({ logger: captureLogger().logger, ...options })
  server.register('echo', echo)
  server.register('', echo)
  const address = await server.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => within(server.close(), 15_000, 'server.close'))
  return { url: `wss://127.0.0.1:${address.port}`, port: address.port }
}

const kinds = [
  () => wsKind({ ca: cert }),
  () => undiciKind(new Agent({ connect: { rejectUnauthorized: false } }))
]

for (const make of kinds) {
  test(`wss:// ${make().name}: echo battery with 16 MiB`, async (t) => {
    t.timeout(90_000)
    const { url } = await startTls(t)
    const client = await make().open(url, ['echo'])
    t.is(client.protocol, 'echo')
    await echoBattery(t, client, { big: true })
    t.is((await client.close(1000)).code, 1000)
  })
}

test('wss:// a client that does not trust the certificate cannot connect', async (t) => {
  const { url } = await startTls(t)
  const peer = new WsPeer(url)
  await t.throwsAsync(within(peer.opened, 5000, 'refused'))
})

test('wss:// the client\'s close code comes back', async (t) => {
  const { url } = await startTls(t)
  const peer = await WsPeer.open(url, undefined, { ca: cert })
  await peer.send('x')
  await peer.next()
  t.deepEqual(await peer.close(4000, 'bye'), { code: 4000, reason: '' })
})

test('wss:// a malformed handshake gets its HTTP status over TLS', async (t) => {
  const { port } = await startTls(t)
  const raw = await within(new Promise<Buffer>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: cert, servername: 'localhost' }, () => {
      socket.write(upgradeRequest({ headers: { 'Sec-WebSocket-Version': '12' } }))
    })
    const chunks: Buffer[] = []
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('close', () => resolve(Buffer.concat(chunks)))
    socket.on('error', reject)
  }), 10_000, 'refusal over TLS')
  const res = parseResponse(raw, true)
  t.is(res.status, 426)
  t.is(res.headers['sec-websocket-version'], '13')
})

test('wss:// attach to an https server with a path', async (t) => {
  const httpsServer = https.createServer({ key, cert }, (_req, res) => { res.end('https ok\n') })
  httpsServer.listen(0, '127.0.0.1')
  await once(httpsServer, 'listening')
  const port = (httpsServer.address() as AddressInfo).port
  const wss = new WebSocketServer({ logger: captureLogger().logger, handshakeTimeout: 2000 })
  wss.register('', echo)
  wss.attach(httpsServer, { path: '/ws' })
  t.teardown(async () => {
    await wss.close()
    httpsServer.closeAllConnections()
    await new Promise<void>((resolve) => httpsServer.close(() => resolve()))
  })
  const peer = await WsPeer.open(`wss://127.0.0.1:${port}/ws`, undefined, { ca: cert })
  await peer.send('over https')
  t.is((await peer.next()).data.toString(), 'over https')
  t.is((await peer.close(1000)).code, 1000)
})

test('wss:// a handler that throws → 1011 over TLS too', async (t) => {
  const server = new WebSocketServer({ logger: captureLogger().logger })
  server.register('', () => { throw new Error('nope') })
  const address = await server.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => server.close())
  const peer = new WsPeer(`wss://127.0.0.1:${address.port}`, undefined, { ca: cert })
  t.is((await within(peer.closed, 5000, 'closed')).code, 1011)
})

test('wss:// a peer that sends its close and then ends TCP still gets the close answered', async (t) => {
  const { port } = await startTls(t)
  const client = await RawClient.connect(port, { tls: { ca: cert, servername: 'localhost' } })
  client.send(clientFrame(1, 'x'))
  t.is((await client.nextFrame())?.payload.toString(), 'x')
  client.send(clientFrame(8, closePayload(4006, 'tls half')))
  client.socket.end()
  t.deepEqual(await client.nextClose(), { code: 4006, reason: '' })
})

test('wss:// server.close() while a client is still in the TLS handshake: it finishes, gets 101, then 1001', async (t) => {
  t.timeout(30_000)
  const server = new WebSocketServer({ logger: captureLogger().logger })
  server.register('', echo)
  const { port } = await server.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => within(server.close(), 15_000, 'server.close'))
  // TCP is accepted before close(); TLS and the upgrade request come after it.
  const accepted = nextAccepted(server)
  const tcp = net.connect(port, '127.0.0.1')
  tcp.on('error', () => {})
  await once(tcp, 'connect')
  await accepted
  const closing = server.close()
  const secure = tls.connect({ socket: tcp, ca: cert, servername: 'localhost' })
  const client = await RawClient.handshake(secure)
  t.deepEqual(await client.nextClose(), { code: 1001, reason: 'server shutting down' })
  client.send(clientFrame(8, closePayload(1001)))
  await within(closing, 10_000, 'server.close resolves')
})

// Serial: the 16 MiB batteries running beside it slow its TLS handshake by seconds.
const LATE_TLS = [
  // HTTP/1.1: the request comes, never whole.
  { alpn: undefined, waits: 'the request', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n') },
  // HTTP/2: the connection preface and an empty SETTINGS (RFC 9113 §3.4), then no stream.
  { alpn: ['h2'], waits: 'its first stream', bytes: Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]) }
]
for (const { alpn, waits, bytes } of LATE_TLS) {
  test.serial(`wss:// ${alpn === undefined ? 'HTTP/1.1' : 'HTTP/2'}: handshakeTimeout counts from TCP accept, on the server's clock: TLS done 400 ms after accept leaves ${waits} 600 ms of 1,000, and the socket goes then, not 1 ms before`, async (t) => {
    t.timeout(30_000)
    const clock = new WatchedClock()
    const server = new WebSocketServer({ logger: captureLogger().logger, handshakeTimeout: 1000, clock })
    server.register('', echo)
    const { port } = await server.listen({ port: 0, tls: { key, cert } })
    t.teardown(() => within(server.close(), 15_000, 'server.close'))
    const accepted = nextAccepted(server)
    const tcp = net.connect(port, '127.0.0.1')
    tcp.on('error', () => {})
    t.teardown(() => { tcp.destroy() })
    await accepted
    // TLS begins 400 ms after accept.
    await clock.advance(400)
    const secured = nextAccepted(server, true, 15_000)
    const secure = tls.connect({ socket: tcp, ca: cert, servername: 'localhost', ALPNProtocols: alpn })
    secure.on('error', () => {})
    secure.resume()
    const socket = await secured
    // The handshake's (or the session's) timer, set once TLS is done.
    await clock.timersSet(1)
    secure.write(bytes)
    await clock.advance(599)
    t.false(socket.destroyed, 'there 999 ms after accept')
    await clock.advance(1)
    // Counted from TLS done instead, it would be there until 1,400 ms.
    t.true(socket.destroyed, 'gone 1,000 ms after accept')
  })
}

test('wss://: the heartbeat ping of a TLS socket (which finishes writes a tick later) is no life: a peer that stops reading, fed a trickle, is dropped at the pong timeout', async (t) => {
  const clock = new VirtualClock()
  const opened = deferred<Connection>()
  const server = new WebSocketServer({ logger: captureLogger().logger, heartbeat: { interval: 1000, timeout: 1000 }, clock })
  server.register('', async (c) => { opened.resolve(c); for await (const m of c.source) void m })
  const { port } = await server.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => within(server.close(), 15_000, 'server.close'))
  const client = await RawClient.connect(port, { tls: { ca: cert, servername: 'localhost' } })
  t.teardown(() => { client.socket.destroy() })
  client.socket.pause()
  const conn = await within(opened.promise, 5000, 'handler')
  // 100 bytes per timeout: the kernel takes each at once, read or not.
  t.is(await timeoutsUntilDropped(t, clock, conn), 1, 'dropped at the first visit after the ping, the pong timeout')
  t.deepEqual(await within(conn.closed, 5000, 'closed'), { code: 1006, reason: '', wasClean: false })
})
