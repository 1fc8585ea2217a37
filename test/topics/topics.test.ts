/**
 * Topics in one process, over real sockets: every subscriber gets every publish, text as text;
 * a publish is one encoded frame for all; a slow subscriber is closed with 1008 (or, under
 * 'drop', skipped) while the others keep receiving; closing unsubscribes; queues count against
 * the server's memory budget.
 */

import test from 'ava'
import merge from 'it-merge'
import { connect, isText, SlowSubscriberError, Topics, WebSocketServer, type WebSocketServerOptions } from '../../src/index.js'
import { prepareMessage, preparedFrame } from '../../src/driver/prepared.js'
import { MemoryBudget } from '../../src/driver/budget.js'
import { encodeFrame, Session } from '../../src/protocol/index.js'
import { collect, take, text } from '../../src/testing.js'
import { RawClient } from '../server/helpers.js'

/** A server whose `room` handler subscribes each member to `room` and publishes what it sends. */
async function roomServer (options: WebSocketServerOptions = {}): Promise<{ server: WebSocketServer, url: string }> {
  const server = new WebSocketServer(options)
  server.register('room', async (conn) => {
    const sending = conn.sink(server.topics.subscribe('room', conn))
    await server.topics.publish('room', conn.source)
    await sending
  })
  const { port } = await server.listen({ port: 0 })
  return { server, url: `ws://127.0.0.1:${port}/` }
}

async function until (condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  if (!condition()) throw new Error(`timed out waiting for ${what}`)
}

test('every subscriber, the sender included, gets every publish in order; text stays text, binary stays binary', async (t) => {
  const { server, url } = await roomServer()
  try {
    const members = await Promise.all([0, 1, 2].map(async () => await connect(url, { protocols: ['room'] })))
    await until(() => server.topics.count('room') === 3, 'three subscribers')
    await members[0].sink(['hello', new Uint8Array([1, 2, 3])])
    for (const m of members) {
      const [a, b] = await take(m.source, 2)
      t.is(text(a), 'hello')
      t.true(isText(a))
      t.false(isText(b))
      t.deepEqual([...b], [1, 2, 3])
    }
    // A publish from the server side reaches them too, and says how many took it.
    t.is(server.topics.publish('room', 'from the server'), 3)
    for (const m of members) t.deepEqual(text(await take(m.source, 1)), ['from the server'])
    t.is(server.topics.publish('nobody', 'x'), 0)
    for (const m of members) m.close()
    await Promise.all(members.map((m) => m.closed))
  } finally {
    await server.close()
  }
})

test('a publish is encoded once: every connection queues the very same frame bytes', (t) => {
  const big = new Uint8Array(100_000).fill(7)
  const prepared = prepareMessage(big)
  const frame = preparedFrame(prepared)!
  t.deepEqual(Buffer.concat(encodeFrame({ opcode: 2, payload: big }, { role: 'server' })), Buffer.from(frame))
  const sessions = [new Session({ role: 'server' }), new Session({ role: 'server' })]
  const small = preparedFrame(prepareMessage('hi'))!
  t.deepEqual([...small], [0x81, 2, 0x68, 0x69])
  for (const s of sessions) {
    t.true(s.acceptsEncoded)
    s.sendEncoded(frame)
    s.sendText('own')
    s.sendEncoded(small)
    // Queued by reference, large or small, not copied per connection; order kept around its own frames.
    const out = s.takeOutput()
    t.is(out[0], frame)
    t.deepEqual([...out[1]], [0x81, 3, 0x6f, 0x77, 0x6e])
    t.is(out[2], small)
  }
  // Preparing a prepared message again encodes nothing.
  t.is(prepareMessage(prepared), prepared)
  t.false(new Session({ role: 'client', mask: () => {} }).acceptsEncoded)
})

test("a subscriber that never reads is closed with 1008 'subscriber too slow'; the others get every message meanwhile", async (t) => {
  const MAX = 4000
  const SIZE = 8 * 1024
  const { server, url } = await roomServer({ sendHighWaterMark: 64 * 1024, closeTimeout: 60_000, heartbeat: false, topics: { maxQueuedBytes: 128 * 1024 } })
  try {
    const fast = await connect(url, { protocols: ['room'], heartbeat: false })
    const slow = await connect(url, { protocols: ['room'], heartbeat: false, receiveHighWaterMark: 16 * 1024 })
    await until(() => server.topics.count('room') === 2, 'two subscribers')
    let sent = 0
    let afterClose = 0
    const message = (i: number): string => `${i}:`.padEnd(SIZE, '.')
    while (sent < MAX && afterClose < 20) {
      server.topics.publish('room', message(sent))
      const [got] = await take(fast.source, 1)
      t.is(text(got), message(sent))
      sent++
      if (server.topics.count('room') === 1) afterClose++
    }
    t.is(afterClose, 20, `the slow subscriber was closed within ${MAX} messages, and the room went on`)
    t.log(`closed after ${sent - afterClose} messages of ${SIZE} B`)
    const got = await collect(slow.source)
    t.true(got.length < sent)
    got.forEach((m, i) => { if (text(m) !== message(i)) t.fail(`slow's message ${i} is wrong`) })
    t.deepEqual(await slow.closed, { code: 1008, reason: 'subscriber too slow', wasClean: true })
    fast.close()
    await fast.closed
  } finally {
    await server.close()
  }
})

test("under 'drop' a slow subscriber misses messages and stays; the others get all of them", async (t) => {
  const SIZE = 8 * 1024
  const server = new WebSocketServer({ sendHighWaterMark: 64 * 1024, heartbeat: false, topics: { maxQueuedBytes: 64 * 1024, slowSubscriber: 'drop' } })
  const subs: Array<ReturnType<Topics['subscribe']>> = []
  server.register('room', async (conn) => {
    const sub = server.topics.subscribe('room', conn)
    subs.push(sub)
    await conn.sink(sub)
  })
  const { port } = await server.listen({ port: 0 })
  const url = `ws://127.0.0.1:${port}/`
  try {
    const fast = await connect(url, { protocols: ['room'], heartbeat: false })
    const slow = await connect(url, { protocols: ['room'], heartbeat: false, receiveHighWaterMark: 16 * 1024 })
    await until(() => server.topics.count('room') === 2, 'two subscribers')
    const N = 1500
    for (let i = 0; i < N; i++) {
      server.topics.publish('room', `${i}:`.padEnd(SIZE, '.'))
      t.is(text((await take(fast.source, 1))[0]), `${i}:`.padEnd(SIZE, '.'))
    }
    const dropped = subs.reduce((n, s) => n + s.dropped, 0)
    t.true(dropped > 0, 'the slow one missed some')
    t.is(server.topics.count('room'), 2, 'nobody was closed')
    // What the slow one got is in order, with gaps.
    server.topics.publish('room', 'last')
    const got = text(await collect(async function * () {
      for await (const m of slow.source) {
        yield m
        if (text(m) === 'last') return
      }
    }()))
    t.is(got.at(-1), 'last')
    t.true(got.length < N + 1)
    const numbers = got.slice(0, -1).map((m) => Number(m.split(':')[0]))
    t.deepEqual(numbers, [...numbers].sort((a, b) => a - b))
    fast.close()
    slow.close()
    await Promise.all([fast.closed, slow.closed])
  } finally {
    await server.close()
  }
})

test('closing unsubscribes: the topic forgets a member once its connection closes, from either side', async (t) => {
  const { server, url } = await roomServer()
  try {
    const a = await connect(url, { protocols: ['room'] })
    const b = await connect(url, { protocols: ['room'] })
    await until(() => server.topics.count('room') === 2, 'two subscribers')
    a.close()
    await a.closed
    await until(() => server.topics.count('room') === 1, 'one subscriber')
    b.close()
    await b.closed
    await until(() => server.topics.count('room') === 0, 'none')
    t.deepEqual(server.topics.topics(), [])
    t.is(server.stats().heldBytes, 0)
  } finally {
    await server.close()
  }
})

test('subscription queues count against the server memory budget: past it the subscriber fails with 1013 and the budget gets it all back', async (t) => {
  const { server, url } = await roomServer({ memoryBudget: 256 * 1024, sendHighWaterMark: 32 * 1024, heartbeat: false, closeTimeout: 60_000, topics: { maxQueuedBytes: 16 * 1024 * 1024 } })
  try {
    const slow = await connect(url, { protocols: ['room'], heartbeat: false, receiveHighWaterMark: 16 * 1024 })
    await until(() => server.topics.count('room') === 1, 'a subscriber')
    for (let i = 0; i < 1000 && server.topics.count('room') === 1; i++) {
      server.topics.publish('room', new Uint8Array(8 * 1024))
      await new Promise((resolve) => setImmediate(resolve))
    }
    t.is(server.topics.count('room'), 0)
    await collect(slow.source).catch(() => [])
    t.is((await slow.closed).code, 1013)
    await until(() => server.stats().heldBytes === 0, 'the budget back at 0')
    t.pass()
  } finally {
    await server.close()
  }
})

test('a subscription is a plain async iterable: it-merge takes it, and without a connection it throws past its bound', async (t) => {
  const topics = new Topics({ maxQueuedBytes: 1024 })
  const a = topics.subscribe('a')
  const b = topics.subscribe('b')
  topics.publish('a', 'one')
  topics.publish('b', new Uint8Array([2]))
  const got = await take(merge(a, b), 2)
  t.deepEqual(got.map((m) => isText(m) ? text(m) : [...m]).sort(), [[2], 'one'].sort())
  a.unsubscribe()
  b.unsubscribe()
  t.deepEqual(topics.topics(), [])
  // A burst past 1 KiB on a consumer that does not read: what fit, then SlowSubscriberError.
  const c = topics.subscribe('c')
  let n = 0
  while (topics.publish('c', 'x'.repeat(100)) === 1 && n < 100) n++
  const seen: string[] = []
  await t.throwsAsync(async () => { for await (const m of c) seen.push(text(m)) }, { instanceOf: SlowSubscriberError })
  t.is(seen.length, n)
  // publish takes an iterable too, and says how many it published.
  const d = topics.subscribe('d')
  t.is(await topics.publish('d', ['x', 'y']), 2)
  t.deepEqual(text(await take(d, 2)), ['x', 'y'])
})

test('a subscriber that negotiated permessage-deflate gets publishes compressed per connection, beside one that did not', async (t) => {
  const { server, url } = await roomServer({ perMessageDeflate: { threshold: 0 } })
  try {
    const plain = await connect(url, { protocols: ['room'] })
    const deflated = await connect(url, { protocols: ['room'], perMessageDeflate: true })
    t.regex(String(deflated.headers['sec-websocket-extensions']), /permessage-deflate/)
    await until(() => server.topics.count('room') === 2, 'two subscribers')
    // A raw peer sees the bytes on the wire: its copy is compressed (smaller), not the shared frame.
    const raw = await RawClient.connect(Number(new URL(url).port), { protocol: 'room', headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } })
    await until(() => server.topics.count('room') === 3, 'three subscribers')
    const long = 'compress me '.repeat(200)
    t.is(server.topics.publish('room', long), 3)
    for (const m of [plain, deflated]) t.deepEqual(text(await take(m.source, 1)), [long])
    const frame = await raw.nextFrame()
    t.true(frame!.payload.length < long.length / 4, `${frame!.payload.length} bytes on the wire`)
    raw.destroy()
    plain.close()
    deflated.close()
    await Promise.all([plain.closed, deflated.closed])
  } finally {
    await server.close()
  }
})

test('issue 19 item 1: a message shared by a room counts once against the memory budget, not once per member', async (t) => {
  // 6 members reading at full speed; one sends 6 MiB − 64 B of text (more than a socket takes
  // at once: the kernel's send buffer is at most 4 MiB here). Every member's output refers to
  // the same frame: 6 MiB held once fits a 16 MiB budget; 6 × 6 MiB would not.
  const MEMBERS = 6
  const SIZE = 6 * 1024 * 1024 - 64
  const { server, url } = await roomServer({ memoryBudget: 16 * 1024 * 1024, heartbeat: false })
  try {
    const members = await Promise.all(Array.from({ length: MEMBERS }, async () => await connect(url, { protocols: ['room'], heartbeat: false })))
    await until(() => server.topics.count('room') === MEMBERS, 'every member subscribed')
    await members[0].send('x'.repeat(SIZE))
    const sizes = await Promise.all(members.map(async (m) => (await take(m.source, 1))[0].length))
    t.deepEqual(sizes, members.map(() => SIZE))
    // Nobody was failed for it (a 1013 would follow the message): a later publish reaches all.
    const reached = server.topics.publish('room', 'after')
    const codes = await Promise.all(members.map(async (m) => {
      const got = await take(m.source, 1).catch(() => [])
      return got.length === 1 ? text(got[0]) : (await m.closed).code
    }))
    t.deepEqual(codes, members.map(() => 'after'), 'a number is the close code a member got instead')
    t.is(reached, MEMBERS)
    await until(() => server.stats().heldBytes === 0, 'the budget back at 0 once every member has been sent the message')
    for (const m of members) m.close()
    await Promise.all(members.map(async (m) => await m.closed))
  } finally {
    await server.close()
  }
})

test('subscription queues count a shared message once against the budget, and a slot per queue; the slow one still meets maxQueuedBytes', async (t) => {
  const budget = new MemoryBudget(1024 * 1024)
  const topics = new Topics({ maxQueuedBytes: 10 * 1024 })
  topics.budget = budget
  const fast = topics.subscribe('t')
  const slow = topics.subscribe('t')
  const frame = preparedFrame(prepareMessage(new Uint8Array(1000)))!.length
  for (let i = 0; i < 5; i++) t.is(topics.publish('t', new Uint8Array(1000)), 2)
  t.is(budget.used, 5 * frame + 2 * 5 * 64, 'five frames once, ten queue slots')
  // The fast one takes its five: the slow one's queue still holds the frames.
  for (let i = 0; i < 5; i++) void fast.next()
  t.is(budget.used, 5 * frame + 5 * 64)
  // maxQueuedBytes is per subscriber and counts each message whole: 1000 + 64 bytes each, so
  // the slow one is past its 10 KiB at the tenth message while the fast one keeps up.
  let n = 5
  while (n < 20 && topics.publish('t', new Uint8Array(1000)) === 2) {
    void fast.next()
    n++
  }
  t.is(n, 9, 'the slow subscriber took 9 messages (9 × 1,064 B), not the tenth')
  t.is(slow.queuedBytes, 9 * 1064)
  void fast.next()
  t.is(budget.used, 9 * frame + 9 * 64, 'what the slow one holds')
  // It gets what it holds, then learns it was too slow ('close' policy, no connection).
  for (let i = 0; i < 9; i++) void slow.next()
  t.is(budget.used, 0)
  await t.throwsAsync(slow.next(), { instanceOf: SlowSubscriberError })
  fast.unsubscribe()
  t.is(budget.used, 0)
})

test('a bare subscription ended as too slow gives its queue back to the budget when the consumer stops (return() or unsubscribe()) instead of draining it', async (t) => {
  for (const stop of ['return', 'unsubscribe'] as const) {
    const budget = new MemoryBudget(1024 * 1024)
    const topics = new Topics({ maxQueuedBytes: 10 * 1024 })
    topics.budget = budget
    const slow = topics.subscribe('t')
    for (let i = 0; i < 12; i++) topics.publish('t', new Uint8Array(1000))
    t.true(slow.ended, `${stop}: the 'close' policy ended it`)
    t.true(budget.used > 0, `${stop}: what it holds is still counted`)
    if (stop === 'return') await slow.return()
    else slow.unsubscribe()
    t.is(budget.used, 0, `${stop}: the budget got it all back`)
    t.is(slow.queuedBytes, 0)
    t.deepEqual(await slow.next(), { done: true, value: undefined }, `${stop}: the iteration is over, the error dropped with the queue`)
  }
})
