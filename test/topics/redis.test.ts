/**
 * Topics across processes through a real redis-server (Debian package redis-server): members of
 * one room on two servers, each with its own RedisAdapter, see each other's messages, each
 * exactly once; while Redis is down publishes reach their own process only (at most once,
 * counted as dropped); once Redis is back the adapters reconnect and resubscribe by themselves.
 */

import { peerTest } from '../peers.js'
import { connect, RedisAdapter, WebSocketServer, type Connection } from '../../src/index.js'
import { take, text } from '../../src/testing.js'
import { RedisServer } from './redis-server.js'

const test = peerTest('redis-server')

async function until (condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!condition() && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 20))
  if (!condition()) throw new Error(`timed out waiting for ${what}`)
}

interface Node { server: WebSocketServer, adapter: RedisAdapter, url: string }

async function node (redisUrl: string): Promise<Node> {
  const adapter = await RedisAdapter.connect({ url: redisUrl, maxReconnectDelay: 100 })
  const server = new WebSocketServer({ topics: { adapter } })
  server.register('room', async (conn) => {
    const sending = conn.sink(server.topics.subscribe('room', conn))
    await server.topics.publish('room', conn.source)
    await sending
  })
  const { port } = await server.listen({ port: 0 })
  return { server, adapter, url: `ws://127.0.0.1:${port}/` }
}

/**
 * Wait until each node hears the other through Redis (SUBSCRIBE is acknowledged asynchronously):
 * a bare subscription per node holds the Redis subscription, and probes go until each hears one.
 */
async function linked (nodes: Node[], topic = 'room'): Promise<void> {
  const bare = nodes.map((n) => n.server.topics.subscribe(topic))
  for (const [from, to] of [[0, 1], [1, 0]]) {
    for (let i = 0; i < 200 && bare[to].queuedBytes === 0; i++) {
      nodes[from].server.topics.publish(topic, 'probe')
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
    if (bare[to].queuedBytes === 0) throw new Error('the nodes do not hear each other through Redis')
  }
  for (const b of bare) b.unsubscribe()
}

async function stopAll (nodes: Node[], members: Connection[]): Promise<void> {
  for (const m of members) m.close()
  await Promise.all(nodes.map(async (n) => { await n.server.close(); await n.adapter.close() }))
}

test('members of one room on two servers see each other, each message exactly once', async (t) => {
  const redis = await RedisServer.start()
  const nodes = await Promise.all([node(redis.url), node(redis.url)])
  const [a, b] = await Promise.all(nodes.map(async (n) => await connect(n.url, { protocols: ['room'] })))
  try {
    await until(() => nodes.every((n) => n.server.topics.count('room') === 1), 'both subscribed')
    // Each node's SUBSCRIBE for 'room' went out on the connection before the one for 'other':
    // once 'other' flows both ways, Redis has processed both.
    await linked(nodes, 'other')
    await a.sink(['from a', new Uint8Array([1, 2])])
    await b.sink(['from b'])
    for (const m of [a, b]) {
      const got = await take(m.source, 3)
      const texts = got.filter((x) => text(x) !== '\u0001\u0002').map((x) => text(x)).sort()
      t.deepEqual(texts, ['from a', 'from b'])
      t.deepEqual([...got.find((x) => x.length === 2)!], [1, 2])
    }
    // Nothing more: no message came twice (own echoes from Redis are ignored).
    t.is(nodes[0].server.topics.publish('room', 'end'), 1)
    t.deepEqual(text(await take(a.source, 1)), ['end'])
    t.deepEqual(text(await take(b.source, 1)), ['end'])
  } finally {
    await stopAll(nodes, [a, b])
    await redis.stop()
  }
})

test('while Redis is down publishes reach their own process only (dropped, not queued); after a restart the adapters resubscribe and messages flow again', async (t) => {
  const redis = await RedisServer.start()
  const nodes = await Promise.all([node(redis.url), node(redis.url)])
  const [a, b] = await Promise.all(nodes.map(async (n) => await connect(n.url, { protocols: ['room'] })))
  try {
    await until(() => nodes.every((n) => n.server.topics.count('room') === 1), 'both subscribed')
    await linked(nodes, 'other')
    nodes[0].server.topics.publish('room', 'up')
    t.deepEqual(text(await take(b.source, 1)), ['up'])
    t.deepEqual(text(await take(a.source, 1)), ['up'])

    await redis.stop()
    await until(() => !nodes[0].adapter.connected && !nodes[1].adapter.connected, 'both adapters to see Redis gone')
    const dropped = nodes[0].adapter.dropped
    t.is(nodes[0].server.topics.publish('room', 'while down'), 1, 'local subscribers still get it')
    t.deepEqual(text(await take(a.source, 1)), ['while down'])
    t.is(nodes[0].adapter.dropped, dropped + 1, 'counted as dropped')

    await redis.start()
    await until(() => nodes.every((n) => n.adapter.connected), 'both adapters to reconnect')
    t.true(nodes[0].adapter.errors > 0)
    // Resubscribing follows the reconnect: publish until b hears, within a bound.
    let heard: string | undefined
    const listening = take(b.source, 1).then((m) => { heard = text(m[0]) })
    for (let i = 0; i < 200 && heard === undefined; i++) {
      nodes[0].server.topics.publish('room', 'back')
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    await listening
    t.is(heard, 'back', "'while down' was lost for b (at most once), later messages arrive")
  } finally {
    await stopAll(nodes, [a, b])
    await redis.stop()
  }
})

test('RedisAdapter.connect waits while Redis is unreachable and resolves once it is up', async (t) => {
  // Connecting is the caller's to bound: a down Redis keeps the promise pending while it retries.
  const redis = await RedisServer.start()
  const port = redis.port
  await redis.stop()
  const attempt = RedisAdapter.connect({ url: `redis://127.0.0.1:${port}`, maxReconnectDelay: 50 })
  const outcome = await Promise.race([attempt.then(() => 'connected', () => 'rejected'), new Promise((resolve) => setTimeout(resolve, 500, 'pending'))])
  t.not(outcome, 'connected')
  await redis.start()
  const adapter = await attempt.catch(() => undefined)
  if (adapter !== undefined) {
    t.true(adapter.connected)
    await adapter.close()
  }
  await redis.stop()
})
