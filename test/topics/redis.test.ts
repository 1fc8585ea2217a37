/**
 * Topics across processes through a real redis-server (Debian package redis-server): members of
 * one room on two servers, each with its own RedisAdapter, see each other's messages, each
 * exactly once; while Redis is down publishes reach their own process only (at most once,
 * counted as dropped) and nothing piles up; once Redis is back the adapters reconnect and
 * resubscribe by themselves. Connecting can be bounded, and a subscription says when it is live.
 */

import { createClient } from 'redis'
import { peerTest } from '../peers.js'
import { connect, WebSocketServer, type Connection } from '../../src/index.js'
import { RedisAdapter } from '../../src/topics/redis.js'
import { take, text } from '../../src/testing.js'
import { DelayProxy, RedisServer, SilentPort } from './redis-server.js'

const test = peerTest('redis-server')

async function until (condition: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!await condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
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

/** How `promise` settles within `ms`: 'resolved', 'rejected' (with the error), or 'pending'. */
async function settledWithin (promise: Promise<unknown>, ms: number): Promise<{ state: 'resolved' | 'rejected' | 'pending', error?: unknown }> {
  let timer: NodeJS.Timeout | undefined
  const pending = new Promise<{ state: 'pending' }>((resolve) => { timer = setTimeout(resolve, ms, { state: 'pending' }) })
  try {
    return await Promise.race([promise.then(() => ({ state: 'resolved' as const }), (error: unknown) => ({ state: 'rejected' as const, error })), pending])
  } finally {
    clearTimeout(timer)
  }
}

test('RedisAdapter.connect with connectTimeout rejects when nothing answers, and lets go of its connections', async (t) => {
  // Bounded by t.timeout, not by a wall-clock race: connect() first loads `redis` (through the
  // test's TypeScript loader), which took seconds on a busy machine, and connectTimeout counts
  // only the connecting after it (its exact time is redis-clock.test.ts's, in virtual time).
  t.timeout(30_000)
  const silent = await SilentPort.start()
  try {
    const error = await t.throwsAsync(RedisAdapter.connect({ url: silent.url, connectTimeout: 300 }))
    t.regex(String(error?.message), /did not answer within 300 ms/)
    // it did try: its connection reached the port (the accept may be seen after the rejection)
    await until(() => silent.accepted > 0, 'the adapter\'s connection to reach the port')
    t.true(silent.accepted > 0, 'it did try')
    // Both connections closed, and no new attempt is made.
    await until(() => silent.open === 0, 'the adapter to close its connections')
    const accepted = silent.accepted
    await new Promise((resolve) => setTimeout(resolve, 300))
    t.is(silent.accepted, accepted)
  } finally {
    await silent.stop()
  }
})

test('RedisAdapter.connect with a signal rejects with its reason when aborted while Redis is stopped', async (t) => {
  // Bounded by t.timeout, not by a wall-clock race that would count loading `redis` too.
  t.timeout(30_000)
  const redis = await RedisServer.start()
  await redis.stop()
  const controller = new AbortController()
  const reason = new Error('shutting down')
  const attempt = RedisAdapter.connect({ url: redis.url, maxReconnectDelay: 50, signal: controller.signal })
  setTimeout(() => { controller.abort(reason) }, 200)
  await t.throwsAsync(attempt, { is: reason })
  // An already-aborted signal rejects at once.
  const early = await settledWithin(RedisAdapter.connect({ url: redis.url, signal: AbortSignal.abort(reason) }), 1000)
  t.is(early.error, reason)
  // Nothing keeps retrying in the background: once Redis is back, nobody connects to it.
  await redis.start()
  try {
    const probe = createClient({ url: redis.url })
    probe.on('error', () => {})
    await probe.connect()
    await new Promise((resolve) => setTimeout(resolve, 300))
    const clients = String(await probe.sendCommand(['CLIENT', 'LIST'])).trim().split('\n')
    t.is(clients.length, 1, 'only the probe is connected')
    await probe.close()
  } finally {
    await redis.stop()
  }
})

test('a subscription\'s ready resolves once Redis confirmed it: a message published right after by another process arrives', async (t) => {
  const redis = await RedisServer.start()
  // b's commands reach Redis 300 ms late: its SUBSCRIBE is still on the way when a publishes.
  const proxy = await DelayProxy.start(redis.port, 300)
  const a = await RedisAdapter.connect({ url: redis.url })
  const b = await RedisAdapter.connect({ url: proxy.url })
  const servers = [new WebSocketServer({ topics: { adapter: a } }), new WebSocketServer({ topics: { adapter: b } })]
  try {
    for (const topic of ['first', 'second']) {
      const sub = servers[1].topics.subscribe(topic)
      const live = await sub.ready
      servers[0].topics.publish(topic, 'right after')
      const outcome = await settledWithin(take(sub, 1), 5000)
      t.is(outcome.state, 'resolved', `${topic}: the message published after ready arrived`)
      t.true(live)
      // A second subscriber of a live topic is live at once.
      const again = servers[1].topics.subscribe(topic)
      t.is(await settledWithin(again.ready, 50).then((o) => o.state), 'resolved')
      sub.unsubscribe()
      again.unsubscribe()
    }
    // A subscription that ends before Redis confirmed it: ready resolves false.
    const early = servers[1].topics.subscribe('third')
    early.unsubscribe()
    t.false(await early.ready)
  } finally {
    await Promise.all(servers.map(async (s) => { await s.close() }))
    await a.close()
    await b.close()
    await proxy.stop()
    await redis.stop()
  }
})

test('while Redis is down, subscribing and unsubscribing queue nothing: after the restart Redis gets one SUBSCRIBE for what is still wanted', async (t) => {
  const redis = await RedisServer.start()
  const adapter = await RedisAdapter.connect({ url: redis.url, maxReconnectDelay: 50 })
  const server = new WebSocketServer({ topics: { adapter } })
  const channels = async (): Promise<string[]> => {
    const probe = createClient({ url: redis.url })
    probe.on('error', () => {})
    await probe.connect()
    try {
      return (await probe.pubSubChannels()).sort()
    } finally {
      await probe.close()
    }
  }
  try {
    server.topics.subscribe('kept')
    await until(async () => (await channels()).length === 1, 'Redis to have the kept topic')
    await redis.stop()
    await until(() => !adapter.connected, 'the adapter to see Redis gone')
    // A room per visitor, each left at once (bounded: 5,000 topics).
    for (let i = 0; i < 5000; i++) server.topics.subscribe(`visitor-${i}`).unsubscribe()
    server.topics.subscribe('later')
    await redis.start()
    await until(() => adapter.connected, 'the adapter to reconnect')
    await until(async () => (await channels()).includes('wspipe:later'), 'Redis to have the later topic')
    const probe = createClient({ url: redis.url })
    probe.on('error', () => {})
    await probe.connect()
    try {
      t.deepEqual(await channels(), ['wspipe:kept', 'wspipe:later'])
      const stats = String(await probe.sendCommand(['INFO', 'commandstats']))
      const calls = (command: string): number => Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0)
      t.true(calls('subscribe') <= 2, `SUBSCRIBE calls after the restart: ${calls('subscribe')}`)
      t.true(calls('unsubscribe') <= 1, `UNSUBSCRIBE calls after the restart: ${calls('unsubscribe')}`)
    } finally {
      await probe.close()
    }
  } finally {
    await server.close()
    await adapter.close()
    await redis.stop()
  }
})

test('publishes Redis has not answered are bounded: past maxPendingBytes they are dropped and counted, and the count goes back to 0', async (t) => {
  const redis = await RedisServer.start()
  const adapter = await RedisAdapter.connect({ url: redis.url, maxPendingBytes: 1024 * 1024 })
  const server = new WebSocketServer({ topics: { adapter } })
  try {
    redis.pause()
    const dropped = adapter.dropped
    const payload = new Uint8Array(64 * 1024)
    for (let i = 0; i < 100; i++) server.topics.publish('room', payload)
    t.true(adapter.pendingBytes <= 1024 * 1024, `pending ${adapter.pendingBytes}`)
    t.true(adapter.dropped - dropped >= 100 - 16, `dropped ${adapter.dropped - dropped} of 100`)
    t.is(adapter.published + adapter.dropped - dropped, 100)
    redis.resume()
    await until(() => adapter.pendingBytes === 0, 'Redis to answer what was sent')
    t.true(adapter.published > 0)
  } finally {
    redis.resume()
    await server.close()
    await adapter.close()
    await redis.stop()
  }
})
