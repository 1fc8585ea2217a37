/**
 * Many WebSockets on one HTTP/2 session: 20 × 100 messages multiplexed, and HTTP/2 flow control
 * as the backpressure of each stream alone — a handler that stops reading holds its own stream
 * (the server keeps a bounded amount of it, the rest waits at the client), while another
 * WebSocket on the same session goes on echoing.
 */

import { connect, WebSocketServer, type Connection } from '../../src/index.js'
import { peerTest } from '../peers.js'
import { captureLogger, echo, until, within } from '../server/helpers.js'
import { makeCertificate } from './helpers.js'

const test = peerTest('openssl')

let key = ''
let cert = ''

test.before(async () => {
  ({ key, cert } = await makeCertificate())
})

const decode = (m: Uint8Array): string => new TextDecoder().decode(m)
const tls = { rejectUnauthorized: false }

test('20 WebSockets × 100 messages on one HTTP/2 session, each in order', async (t) => {
  t.timeout(60_000)
  const server = new WebSocketServer({ logger: captureLogger().logger })
  const seen: Connection[] = []
  server.register('echo', (conn) => { seen.push(conn); return echo(conn) })
  const address = await server.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => within(server.close(), 15_000, 'server.close'))
  const url = `wss://127.0.0.1:${address.port}/`
  const conns = await Promise.all(Array.from({ length: 20 }, () => connect(url, { http2: true, tls, protocols: ['echo'] })))
  t.true(conns.every((c) => c.httpVersion === '2'))
  t.is(seen.length, 20)
  t.is(new Set(seen.map((c) => c.remotePort)).size, 1, 'one TCP connection')
  await Promise.all(conns.map(async (conn, i) => {
    const sending = conn.sink((function * () {
      for (let n = 0; n < 100; n++) yield `${i}:${n}`
    })())
    const got: string[] = []
    for await (const m of conn.source) {
      got.push(decode(m))
      if (got.length === 100) break
    }
    await sending
    t.deepEqual(got, Array.from({ length: 100 }, (_, n) => `${i}:${n}`))
  }))
  await Promise.all(conns.map((c) => c.closed))
  t.true(conns.every((c) => c.httpVersion === '2'))
})

test('a handler that stops reading holds only its stream: another WebSocket on the session echoes on, and the server keeps a bounded amount', async (t) => {
  t.timeout(60_000)
  const receiveHighWaterMark = 256 * 1024
  const server = new WebSocketServer({ logger: captureLogger().logger, receiveHighWaterMark })
  let stalled: Connection | undefined
  let release: (() => void) | undefined
  server.register('stall', async (conn) => {
    stalled = conn
    // Reads nothing until released, then everything.
    await new Promise<void>((resolve) => { release = resolve })
    let n = 0
    for await (const m of conn.source) {
      n += m.length
      if (n >= 8 * 1024 * 1024) break
    }
    await conn.send(String(n))
  })
  server.register('echo', echo)
  const address = await server.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => within(server.close(), 15_000, 'server.close'))
  const url = `wss://127.0.0.1:${address.port}/`
  const slow = await connect(url, { http2: true, tls, protocols: ['stall'] })
  const fast = await connect(url, { http2: true, tls, protocols: ['echo'] })
  t.is(slow.httpVersion, '2')
  t.is(fast.httpVersion, '2')
  // 8 MiB at the stalled handler, all queued at once on the client.
  const chunk = new Uint8Array(128 * 1024)
  const sends: Array<Promise<void>> = []
  for (let i = 0; i < 64; i++) sends.push(slow.send(chunk))
  // The server stops taking it once its queue is full: the rest waits at the client.
  await until(() => stalled !== undefined && stalled.stats().queuedInBytes >= receiveHighWaterMark, 10_000, 'the stalled queue filled')
  // Meanwhile the other WebSocket on the same session goes on: 100 round trips.
  for (let n = 0; n < 100; n++) {
    await fast.send(`ping ${n}`)
    t.is(decode((await within(fast.source.next(), 5000, `echo ${n}`)).value as Uint8Array), `ping ${n}`)
  }
  // Bounded: the stalled connection's queue stays near its mark (one 128 KiB message past it at
  // most), and what the server holds for all connections stays well under the 8 MiB sent.
  const held = stalled!.stats().queuedInBytes
  t.true(held <= receiveHighWaterMark + chunk.length + 1024, `queued ${held}`)
  t.true(server.stats().heldBytes < 2 * 1024 * 1024, `held ${server.stats().heldBytes}`)
  t.true(slow.stats().queuedOutBytes > 4 * 1024 * 1024, `client still holds ${slow.stats().queuedOutBytes}`)
  // Released, the handler reads it all: flow control reopens the stream.
  release!()
  await Promise.all(sends)
  t.is(decode((await within(slow.source.next(), 20_000, 'the count')).value as Uint8Array), String(8 * 1024 * 1024))
  fast.close()
  await Promise.all([slow.closed, fast.closed])
})
