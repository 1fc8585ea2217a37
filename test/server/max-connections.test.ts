/**
 * `maxConnections`: how many WebSockets the server serves at once. An upgrade past it gets 503
 * `too many connections` before `authorize` runs, over HTTP/1.1 and HTTP/2 alike; upgrades
 * whose `authorize` is still deciding count, so a slow hook cannot let a burst past it. A
 * connection that ends makes room for the next.
 */

import test from 'ava'
import { connect, UpgradeError, WebSocketServer, type Connection } from '../../src/index.js'
import { makeCertificate } from '../http2/helpers.js'
import { peerTest } from '../peers.js'
import { captureLogger, deferred, until } from './helpers.js'

/** The status `connect` was refused with, or 101 if it connected (the connection is returned for closing). */
async function tryConnect (url: string, options: Parameters<typeof connect>[1] = {}): Promise<{ status: number, reason: string, conn?: Connection }> {
  try {
    const conn = await connect(url, options)
    return { status: 101, reason: '', conn }
  } catch (err) {
    if (!(err instanceof UpgradeError)) throw err
    return { status: err.status, reason: err.reason }
  }
}

test('one past maxConnections gets 503 "too many connections"; a connection that ends makes room', async (t) => {
  const server = new WebSocketServer({ maxConnections: 2, logger: captureLogger().logger })
  const handled = deferred<void>()
  server.register('', async ({ source }) => { for await (const _ of source); handled.resolve() })
  const { port } = await server.listen({ port: 0 })
  t.teardown(() => server.close())
  const url = `ws://127.0.0.1:${port}/`

  const first = await tryConnect(url)
  const second = await tryConnect(url)
  t.is(first.status, 101)
  t.is(second.status, 101)
  const third = await tryConnect(url)
  t.deepEqual({ status: third.status, reason: third.reason }, { status: 503, reason: 'too many connections' })
  t.is(server.clients.size, 2)

  first.conn!.close()
  await first.conn!.closed
  await handled.promise
  await until(() => server.clients.size === 1, 5000, 'the closed connection to leave server.clients')
  const fourth = await tryConnect(url)
  t.is(fourth.status, 101, 'room again once one ended')
  second.conn!.close()
  fourth.conn!.close()
  await Promise.all([second.conn!.closed, fourth.conn!.closed])
})

test('upgrades waiting for authorize count: a burst past maxConnections is refused before authorize runs', async (t) => {
  const gate = deferred<void>()
  let asked = 0
  const server = new WebSocketServer({
    maxConnections: 3,
    logger: captureLogger().logger,
    authorize: async () => { asked++; await gate.promise; return true }
  })
  server.register('', async ({ source }) => { for await (const _ of source); })
  const { port } = await server.listen({ port: 0 })
  t.teardown(() => server.close())
  const url = `ws://127.0.0.1:${port}/`

  // Ten at once, while authorize holds every one it was asked about.
  const attempts = Array.from({ length: 10 }, () => tryConnect(url))
  await until(() => asked === 3, 5000, 'authorize to be asked about three upgrades')
  gate.resolve()
  const results = await Promise.all(attempts)
  t.is(results.filter((r) => r.status === 101).length, 3)
  t.deepEqual(results.filter((r) => r.status !== 101).map((r) => `${r.status} ${r.reason}`), Array(7).fill('503 too many connections'))
  t.is(asked, 3, 'authorize never ran for a refused upgrade')
  for (const r of results) r.conn?.close()
  await Promise.all(results.map((r) => r.conn?.closed))
})

test('maxConnections must be a count (or Infinity)', (t) => {
  for (const bad of [-1, 1.5, Number.NaN, '10']) {
    t.throws(() => new WebSocketServer({ maxConnections: bad as number }), { instanceOf: RangeError, message: 'maxConnections must be a whole number of connections (or Infinity)' })
  }
  t.notThrows(() => new WebSocketServer({ maxConnections: Infinity }))
  t.notThrows(() => new WebSocketServer({ maxConnections: 0 }))
})

peerTest('openssl')('over HTTP/2 the same count applies: a WebSocket stream past it is answered 503', async (t) => {
  const { key, cert } = await makeCertificate()
  const server = new WebSocketServer({ maxConnections: 1, logger: captureLogger().logger })
  server.register('', async ({ source }) => { for await (const _ of source); })
  const { port } = await server.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => server.close())
  const url = `wss://127.0.0.1:${port}/`
  const options = { http2: true, tls: { ca: cert } }

  const first = await tryConnect(url, options)
  t.is(first.status, 101)
  t.is(first.conn!.httpVersion, '2')
  const second = await tryConnect(url, options)
  t.deepEqual({ status: second.status, reason: second.reason }, { status: 503, reason: 'too many connections' })
  // An HTTP/1.1 upgrade on the same port is counted with them.
  const third = await tryConnect(url, { tls: { ca: cert } })
  t.deepEqual({ status: third.status, reason: third.reason }, { status: 503, reason: 'too many connections' })
  first.conn!.close()
  await first.conn!.closed
})
