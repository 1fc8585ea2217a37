/**
 * undici 7's WebSocket over HTTP/2 (`new Agent({ allowH2: true })`) against the server: the echo
 * battery, a message and close the server starts, and a close undici starts. The server counts
 * how many of its connections came over HTTP/2, so a silent fallback to HTTP/1.1 fails the test.
 */

import { Agent, WebSocket as UndiciWebSocket } from 'undici'
import { WebSocketServer, type Connection } from '../../src/index.js'
import { undiciKind } from '../server/clients.js'
import { echoBattery } from '../server/clients.js'
import { peerTest } from '../peers.js'
import { captureLogger, echo, until, within } from '../server/helpers.js'
import { makeCertificate } from './helpers.js'

const test = peerTest('openssl')

let key = ''
let cert = ''

test.before(async () => {
  ({ key, cert } = await makeCertificate())
})

async function start (t: { teardown: (f: () => Promise<void>) => void }, versions: string[], extra?: (server: WebSocketServer) => void): Promise<string> {
  const server = new WebSocketServer({ logger: captureLogger().logger })
  const track = (conn: Connection): void => { versions.push(conn.httpVersion) }
  server.register('echo', (conn) => { track(conn); return echo(conn) })
  extra?.(server)
  const address = await server.listen({ port: 0, tls: { key, cert } })
  t.teardown(() => within(server.close(), 15_000, 'server.close'))
  return `wss://127.0.0.1:${address.port}/`
}

function h2Agent (): Agent {
  // One connection per origin, as a browser keeps: the WebSockets must share it.
  return new Agent({ allowH2: true, connections: 1, connect: { rejectUnauthorized: false } })
}

test('undici over HTTP/2: the echo battery with 1 MiB messages', async (t) => {
  t.timeout(60_000)
  const versions: string[] = []
  const url = await start(t, versions)
  const agent = h2Agent()
  t.teardown(() => agent.close())
  const client = await undiciKind(agent).open(url, ['echo'])
  t.is(client.protocol, 'echo')
  await echoBattery(t, client, { big: false })
  t.is((await client.close(1000)).code, 1000)
  t.deepEqual(versions, ['2'])
})

test('undici over HTTP/2: the server sends first and closes, undici sees its code', async (t) => {
  const versions: string[] = []
  const url = await start(t, versions, (server) => server.register('push', async (conn) => {
    versions.push(conn.httpVersion)
    await conn.send('from the server')
    conn.close(4001, 'done')
  }))
  const agent = h2Agent()
  t.teardown(() => agent.close())
  const ws = new UndiciWebSocket(url, { protocols: ['push'], dispatcher: agent } as any)
  const got: string[] = []
  ws.addEventListener('message', (e) => { got.push(String(e.data)) })
  const closed = await within(new Promise<{ code: number, reason: string }>((resolve) => ws.addEventListener('close', (e) => resolve({ code: e.code, reason: e.reason }))), 5000, 'undici close')
  t.deepEqual(got, ['from the server'])
  t.deepEqual(closed, { code: 4001, reason: 'done' })
  t.deepEqual(versions, ['2'])
})

test('undici over HTTP/2: two WebSockets share one session, and undici\'s close reaches the handler', async (t) => {
  const closes: unknown[] = []
  const versions: string[] = []
  const remotePorts = new Set<number | undefined>()
  const url = await start(t, versions, (server) => server.register('watch', async (conn) => {
    versions.push(conn.httpVersion)
    remotePorts.add(conn.remotePort)
    await conn.sink(conn.source)
    closes.push(await conn.closed)
  }))
  const agent = h2Agent()
  t.teardown(() => agent.close())
  const a = await undiciKind(agent).open(url, ['watch'])
  const b = await undiciKind(agent).open(url, ['watch'])
  a.send('a')
  b.send('b')
  t.is(await a.next(), 'a')
  t.is(await b.next(), 'b')
  t.is(remotePorts.size, 1, 'both on one TCP connection')
  await a.close(4000, 'bye')
  await until(() => closes.length === 1, 5000, 'the handler saw the close')
  t.deepEqual(closes[0], { code: 4000, reason: 'bye', wasClean: true })
  b.send('b again')
  t.is(await b.next(), 'b again')
  await b.close(1000)
  t.deepEqual(versions, ['2', '2'])
})
