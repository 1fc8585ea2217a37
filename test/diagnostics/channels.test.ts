/**
 * The diagnostics channels (docs/diagnostics.md): each test subscribes to what it names and
 * asserts the messages its own connections, handshakes and subscriptions publish. Channels are
 * process-wide, so the tests run one at a time and each unsubscribes in its teardown.
 */

import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { constants, deflateRawSync } from 'node:zlib'
import test, { type ExecutionContext } from 'ava'
import {
  connect, DIAGNOSTICS_CHANNELS, Topics, WebSocketServer, type CloseInfo, type Connection, type ConnectionCloseMessage,
  type ConnectionOpenMessage, type HandshakeRefusedMessage, type HeartbeatDropMessage, type MemoryBudgetExhaustedMessage,
  type SlowSubscriberMessage, type ZlibBudgetWaitMessage
} from '../../src/index.js'
import { VirtualClock } from '../../src/testing.js'
import { advanceUntil, captureLogger, clientFrame, deferred, echo, rawRequest, RawClient, sleep, startServer, until, upgradeRequest, within } from '../server/helpers.js'

/** Every message published on `name` while the test runs. */
function record<T> (t: ExecutionContext, name: string): T[] {
  const got: T[] = []
  const listener = (message: unknown): void => { got.push(message as T) }
  subscribe(name, listener)
  t.teardown(() => { unsubscribe(name, listener) })
  return got
}

/** Let callbacks already queued run (a message published after `closed` settled would show). */
async function settle (): Promise<void> {
  await new Promise(setImmediate)
  await sleep(20)
}

test.serial('the channel names', (t) => {
  t.deepEqual(Object.values(DIAGNOSTICS_CHANNELS).sort(), [
    'wspipe:connection:close',
    'wspipe:connection:open',
    'wspipe:handshake:refused',
    'wspipe:heartbeat:drop',
    'wspipe:memory_budget:exhausted',
    'wspipe:topic:slow_subscriber',
    'wspipe:zlib_budget:wait'
  ])
})

test.serial('connection:open: a server connection before its handler runs, a client one before connect() resolves', async (t) => {
  const opens = record<ConnectionOpenMessage>(t, 'wspipe:connection:open')
  let seenByHandler: ConnectionOpenMessage[] | undefined
  const opened = deferred<Connection>()
  const { url } = await startServer(t, {
    chat: async (conn) => {
      seenByHandler = opens.filter((m) => m.connection === conn)
      opened.resolve(conn)
      await echo(conn)
    }
  })
  const client = await connect(`${url}/room`, { protocols: ['other', 'chat'] })
  const fromClient = opens.filter((m) => m.connection === client)
  t.is(fromClient.length, 1, 'the client published before connect() resolved')
  t.deepEqual(fromClient[0], { connection: client, role: 'client', protocol: 'chat', remoteAddress: '127.0.0.1' })
  const serverConn = await within(opened.promise, 5000, 'the handler runs')
  t.deepEqual(seenByHandler, [{ connection: serverConn, role: 'server', protocol: 'chat', remoteAddress: '127.0.0.1' }])
  client.close()
  await client.closed
})

test.serial('connection:open: the remote address is the one the connection has, X-Forwarded-For under trustProxy', async (t) => {
  const opens = record<ConnectionOpenMessage>(t, 'wspipe:connection:open')
  const { url } = await startServer(t, { '': echo }, { trustProxy: true })
  const client = await connect(url, { headers: { 'X-Forwarded-For': '203.0.113.7' } })
  await until(() => opens.some((m) => m.role === 'server'), 5000, 'the server open')
  const server = opens.find((m) => m.role === 'server')!
  t.is(server.remoteAddress, '203.0.113.7')
  t.is(server.remoteAddress, server.connection.remoteAddress)
  t.is(server.protocol, '')
  client.close()
  await client.closed
})

test.serial('connection:close: once per connection, server and client, with what closed settles with', async (t) => {
  const closes = record<ConnectionCloseMessage>(t, 'wspipe:connection:close')
  const opened = deferred<Connection>()
  const { url } = await startServer(t, { '': async (conn) => { opened.resolve(conn); await echo(conn) } })
  const client = await connect(url)
  const serverConn = await within(opened.promise, 5000, 'the handler runs')
  client.close(4001, 'bye')
  const [clientInfo, serverInfo]: CloseInfo[] = await within(Promise.all([client.closed, serverConn.closed]), 10_000, 'both ends closed')
  await settle()
  t.deepEqual(closes.filter((m) => m.connection === client), [{ connection: client, role: 'client', ...clientInfo }])
  t.deepEqual(closes.filter((m) => m.connection === serverConn), [{ connection: serverConn, role: 'server', ...serverInfo }])
  t.deepEqual(serverInfo, { code: 4001, reason: 'bye', wasClean: true })
})

test.serial('connection:close: a connection lost without a close frame publishes 1006, not clean', async (t) => {
  const closes = record<ConnectionCloseMessage>(t, 'wspipe:connection:close')
  const { port } = await startServer(t, { '': echo })
  const raw = await RawClient.connect(port)
  raw.destroy()
  await until(() => closes.length > 0, 5000, 'the server connection closes')
  await settle()
  t.is(closes.length, 1)
  t.like(closes[0], { role: 'server', code: 1006, reason: '', wasClean: false })
})

test.serial('handshake:refused: each refused upgrade with its status, reason and address; a plain HTTP request is not one', async (t) => {
  const refused = record<HandshakeRefusedMessage>(t, 'wspipe:handshake:refused')
  const { port } = await startServer(t, { chat: echo }, { authorize: (req) => req.url !== '/private' })
  const cases: Array<{ request: string, status: number, reason: string }> = [
    { request: upgradeRequest(), status: 400, reason: 'a subprotocol is required' },
    { request: upgradeRequest({ headers: { 'Sec-WebSocket-Protocol': 'x' } }), status: 400, reason: 'no handler for subprotocol x' },
    { request: upgradeRequest({ path: '/private', headers: { 'Sec-WebSocket-Protocol': 'chat' } }), status: 403, reason: 'forbidden' },
    { request: upgradeRequest({ headers: { 'Sec-WebSocket-Version': '8' } }), status: 426, reason: 'unsupported WebSocket version' },
    // Node does not treat a request whose Connection header lacks "Upgrade" as an upgrade: it
    // reaches the server's request handler, which refuses the handshake all the same.
    { request: upgradeRequest({ headers: { Connection: 'keep-alive' } }), status: 400, reason: '' }
  ]
  for (const c of cases) {
    const before = refused.length
    const res = await rawRequest(port, c.request)
    t.is(res.status, c.status, c.request)
    await until(() => refused.length > before, 5000, `refusal ${c.status} published`)
    t.is(refused.length, before + 1)
    const m = refused[before]
    t.is(m.status, c.status)
    t.is(m.remoteAddress, '127.0.0.1')
    // The reason is the body's one line.
    t.is(m.reason, res.body.trim())
    if (c.reason !== '') t.regex(m.reason, new RegExp(`^${c.reason}`))
  }
  const res = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
  t.is(res.status, 426)
  await settle()
  t.is(refused.length, cases.length, 'a plain GET is no refused upgrade')
})

test.serial('handshake:refused: a path no attached server serves (404), and the address under trustProxy', async (t) => {
  const refused = record<HandshakeRefusedMessage>(t, 'wspipe:handshake:refused')
  const http = createServer((_req, res) => res.end('page'))
  const wss = new WebSocketServer({ trustProxy: true, logger: captureLogger().logger }).register('', echo)
  wss.attach(http, { path: '/ws' })
  http.listen(0, '127.0.0.1')
  await once(http, 'listening')
  t.teardown(async () => {
    await wss.close()
    await new Promise((resolve) => http.close(resolve))
  })
  const { port } = http.address() as AddressInfo
  const res = await rawRequest(port, upgradeRequest({ path: '/elsewhere', headers: { 'X-Forwarded-For': '198.51.100.1, 203.0.113.9' } }))
  t.is(res.status, 404)
  await until(() => refused.length > 0, 5000, 'the refusal')
  t.deepEqual(refused, [{ status: 404, reason: 'no WebSocket endpoint at this path', remoteAddress: '203.0.113.9' }])
})

test.serial('memory_budget:exhausted: the connection that needed more, then its close with 1013', async (t) => {
  const exhausted = record<MemoryBudgetExhaustedMessage>(t, 'wspipe:memory_budget:exhausted')
  const closes = record<ConnectionCloseMessage>(t, 'wspipe:connection:close')
  let serverConn: Connection | undefined
  const budget = 64 * 1024
  const { port } = await startServer(t, { '': async (conn) => { serverConn = conn; await echo(conn) } }, { memoryBudget: budget, heartbeat: false })
  const raw = await RawClient.connect(port)
  // A frame declared 256 KiB long, of which 128 KiB arrive: held as a partial frame.
  raw.send(clientFrame(0x2, new Uint8Array(256 * 1024)).subarray(0, 14 + 128 * 1024))
  t.is((await raw.nextClose(10_000))?.code, 1013)
  await until(() => closes.some((m) => m.connection === serverConn), 5000, 'the close')
  t.is(exhausted.length, 1)
  const m = exhausted[0]
  t.is(m.connection, serverConn)
  t.is(m.holder, 'connection')
  t.is(m.topic, undefined)
  t.is(m.limitBytes, budget)
  t.true(m.usedBytes > budget, `used ${m.usedBytes}`)
  t.true(m.heldBytes > 0 && m.heldBytes <= m.usedBytes, `held ${m.heldBytes}`)
  t.like(closes.find((c) => c.connection === serverConn), { code: 1013, wasClean: false })
  raw.destroy()
})

test.serial('memory_budget:exhausted: a topic subscription whose queue does not fit the server budget', async (t) => {
  const exhausted = record<MemoryBudgetExhaustedMessage>(t, 'wspipe:memory_budget:exhausted')
  const server = new WebSocketServer({ memoryBudget: 4096 })
  const sub = server.topics.subscribe('news')
  server.topics.publish('news', new Uint8Array(8192))
  // The budget counts the encoded frame once (2 + 2 header bytes, RFC 6455 §5.2) and the queue's slot.
  t.deepEqual(exhausted, [{ connection: undefined, holder: 'subscription', topic: 'news', heldBytes: 8192 + 64, usedBytes: 8192 + 4 + 64, limitBytes: 4096 }])
  t.true(sub.ended)
})

test.serial('topic:slow_subscriber: once when the close policy ends a subscriber, for every message the drop policy skips', async (t) => {
  const slow = record<SlowSubscriberMessage>(t, 'wspipe:topic:slow_subscriber')
  const closing = new Topics({ maxQueuedBytes: 1000 })
  const a = closing.subscribe('t')
  for (let i = 0; i < 3; i++) closing.publish('t', new Uint8Array(600))
  t.true(a.ended)
  t.deepEqual(slow, [{ topic: 't', connection: undefined, policy: 'close', queuedBytes: 664, dropped: 0 }])

  slow.length = 0
  const dropping = new Topics({ maxQueuedBytes: 1000, slowSubscriber: 'drop' })
  const b = dropping.subscribe('u')
  for (let i = 0; i < 3; i++) dropping.publish('u', new Uint8Array(600))
  t.false(b.ended)
  t.deepEqual(slow, [
    { topic: 'u', connection: undefined, policy: 'drop', queuedBytes: 664, dropped: 1 },
    { topic: 'u', connection: undefined, policy: 'drop', queuedBytes: 664, dropped: 2 }
  ])
  b.unsubscribe()
})

test.serial('topic:slow_subscriber: a connection closed with 1008 is named', async (t) => {
  const slow = record<SlowSubscriberMessage>(t, 'wspipe:topic:slow_subscriber')
  let serverConn: Connection | undefined
  const { url, server } = await startServer(t, {
    '': async (conn) => {
      serverConn = conn
      // The subscription is never read: its queue fills.
      server.topics.subscribe('feed', conn)
      await conn.closed
    }
  }, { topics: { maxQueuedBytes: 1024 } })
  const client = await connect(url)
  await until(() => server.topics.count('feed') === 1, 5000, 'subscribed')
  for (let i = 0; i < 3; i++) server.topics.publish('feed', new Uint8Array(600))
  t.like(await within(client.closed, 5000, 'closed'), { code: 1008, reason: 'subscriber too slow' })
  t.is(slow.length, 1)
  t.like(slow[0], { topic: 'feed', policy: 'close', queuedBytes: 664 })
  t.is(slow[0].connection, serverConn)
})

// The heartbeat on a VirtualClock: the drop is published at the moment of the drop, not before.

test.serial('heartbeat:drop: a peer that never answers pings (pong-timeout), then its close with 1006', async (t) => {
  const drops = record<HeartbeatDropMessage>(t, 'wspipe:heartbeat:drop')
  const closes = record<ConnectionCloseMessage>(t, 'wspipe:connection:close')
  const clock = new VirtualClock()
  const opened = deferred<Connection>()
  const { port } = await startServer(t, { '': async (conn) => { opened.resolve(conn); await echo(conn) } }, { heartbeat: { interval: 1000, timeout: 1000 }, clock })
  const raw = await RawClient.connect(port)
  const serverConn = await within(opened.promise, 5000, 'handler')
  await clock.advance(1000)
  t.is((await raw.nextFrame(5000))?.opcode, 9)
  await clock.advance(999)
  t.deepEqual(drops, [], 'nothing before the pong timeout')
  await clock.advance(1)
  t.deepEqual(drops, [{ connection: serverConn, role: 'server', reason: 'pong-timeout' }])
  await raw.waitClosed(5000)
  await within(serverConn.closed, 5000, 'the close')
  t.like(closes.find((m) => m.connection === serverConn), { code: 1006, wasClean: false })
})

test.serial('heartbeat:drop: a connection stalled while reading is paused (stalled)', async (t) => {
  const drops = record<HeartbeatDropMessage>(t, 'wspipe:heartbeat:drop')
  const clock = new VirtualClock()
  const opened = deferred<Connection>()
  const { port } = await startServer(t, { '': async (conn) => { opened.resolve(conn); await conn.closed } }, { receiveHighWaterMark: 16 * 1024, heartbeat: { interval: 1000, timeout: 1000 }, clock })
  const raw = await RawClient.connect(port)
  const serverConn = await within(opened.promise, 5000, 'handler')
  const frame = clientFrame(0x2, new Uint8Array(4096))
  for (let i = 0; i < 200; i++) raw.send(frame)
  // No event says reading has paused: a bounded poll.
  await until(() => serverConn.stats().pauses > 0, 10_000, 'reading pauses')
  // The visit at 1000 sees the flood (life); stalled from then on, dropped interval + timeout later.
  await clock.advance(2999)
  t.deepEqual(drops, [], 'nothing before interval + timeout after the last sign of life')
  await clock.advance(1)
  t.deepEqual(drops, [{ connection: serverConn, role: 'server', reason: 'stalled' }])
  await raw.waitClosed(5000)
})

/** A compressed client frame (RSV1) of `n` bytes of one letter: about n / 1000 bytes on the wire, charged nearly n. */
function bomb (n: number): Buffer {
  const out = deflateRawSync(Buffer.alloc(n, 0x61), { finishFlush: constants.Z_SYNC_FLUSH })
  const frame = clientFrame(0x2, out.subarray(0, out.length - 4))
  frame[0] |= 0x40
  return frame
}

for (const budget of ['connection', 'server'] as const) {
  test.serial(`zlib_budget:wait: a connection paused for the ${budget}'s zlib budget, once per wait, and every message still arrives (the waits in virtual time)`, async (t) => {
    const waits = record<ZlibBudgetWaitMessage>(t, 'wspipe:zlib_budget:wait')
    const MiB = 1024 * 1024
    const clock = new VirtualClock()
    let serverConn: Connection | undefined
    let received = 0
    const { server, port } = await startServer(t, {
      '': async (conn) => {
        serverConn = conn
        for await (const _ of conn.source) if (++received === 6) break
        await conn.closed
      }
    }, {
      heartbeat: false,
      clock,
      perMessageDeflate: budget === 'connection' ? { connectionBudget: 2 * MiB, serverBudget: Infinity } : { connectionBudget: Infinity, serverBudget: 2 * MiB }
    })
    const raw = await RawClient.connect(port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } })
    t.teardown(() => { raw.destroy() })
    // 6 MiB of zlib work for ~6 KiB on the wire: three seconds of a 2 MiB-a-second budget.
    raw.send(Buffer.concat(Array.from({ length: 6 }, () => bomb(MiB))))
    await advanceUntil(clock, () => received === 6, 'all six messages')
    t.true(waits.length > 0, 'a wait was published')
    for (const m of waits) {
      t.is(m.connection, serverConn!)
      t.is(m.role, 'server')
      t.is(m.budget, budget)
      t.true(m.wait > 0, `a wait of ${m.wait} ms`)
    }
    t.is(waits.length, serverConn!.stats().compressionWaits, 'one message per wait stats() counts')
    t.false(raw.ended, 'paused, not closed')
    // Closed here, with time moved past the close timeout of a connection no longer read.
    raw.destroy()
    const closing = server.close()
    await clock.advance(10_000)
    await within(closing, 10_000, 'server.close')
  })
}
