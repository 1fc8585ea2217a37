/**
 * What comes from Redis is input (issue 19, item 4): anyone who can publish on a topic's Redis
 * channel can send any bytes. Members of the room, connected with wspipe's own client (which
 * closes with 1007 on invalid UTF-8 and 1009 past its limits), get only well-formed messages;
 * the rest are dropped and counted in `adapter.rejected`, and no member is closed.
 */

import { Buffer, isUtf8 } from 'node:buffer'
import { createClient } from 'redis'
import { peerTest } from '../peers.js'
import { connect, isText, WebSocketServer, type Connection } from '../../src/index.js'
import { RedisAdapter, type RedisAdapterOptions } from '../../src/topics/redis.js'
import { take } from '../../src/testing.js'
import { DEFAULT_MAX_MESSAGE_SIZE } from '../../src/protocol/index.js'
import { RedisServer } from './redis-server.js'
import { rng } from '../conformance/cases/s12-s13-deflate.js'

const test = peerTest('redis-server')

/** The adapter's wire format: a flags byte (1: text), the publishing process's 16-byte id, the payload. */
const HEADER = 17
const CHANNEL = 'wspipe:room'

async function until (condition: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms
  while (!await condition()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** A message as another process would publish it (or as anyone could forge it). */
function wire (flags: number, payload: Uint8Array): Buffer {
  const message = Buffer.alloc(HEADER + payload.length)
  message[0] = flags
  message.fill(7, 1, HEADER)
  message.set(payload, HEADER)
  return message
}


function rawClient (url: string) {
  const client = createClient({ url })
  client.on('error', () => {})
  return client
}

interface Room {
  redis: RedisServer
  adapter: RedisAdapter
  server: WebSocketServer
  members: Connection[]
  /** The close code each member got, once it closes. */
  closes: Array<number | undefined>
  /** A plain Redis client, to publish raw bytes on the room's channel. */
  raw: ReturnType<typeof rawClient>
  stop: () => Promise<void>
}

/** A server with a RedisAdapter, two members of 'room' (wspipe clients, default limits), and a raw Redis client. */
async function room (options: RedisAdapterOptions = {}): Promise<Room> {
  const redis = await RedisServer.start()
  const adapter = await RedisAdapter.connect({ url: redis.url, ...options })
  const server = new WebSocketServer({ topics: { adapter } })
  server.register('room', async (conn) => { await conn.sink(server.topics.subscribe('room', conn)) })
  const { port } = await server.listen({ port: 0 })
  const members = await Promise.all([0, 1].map(async () => await connect(`ws://127.0.0.1:${port}/`, { protocols: ['room'] })))
  const closes: Array<number | undefined> = members.map(() => undefined)
  members.forEach((m, i) => { void m.closed.then((info) => { closes[i] = info.code }) })
  const raw = rawClient(redis.url)
  await raw.connect()
  await until(() => server.topics.count('room') === 2, 'both members subscribed')
  // Redis has the channel once NUMSUB says so (the adapter's SUBSCRIBE was processed).
  await until(async () => (await raw.pubSubNumSub(CHANNEL))[CHANNEL] === 1, 'the adapter to subscribe at Redis')
  return {
    redis,
    adapter,
    server,
    members,
    closes,
    raw,
    async stop () {
      for (const m of members) m.close()
      await server.close()
      await adapter.close()
      await raw.close()
      await redis.stop()
    }
  }
}

const SENTINEL = Buffer.from('end of the run')

/** Read what each member got, up to the sentinel (published last; Redis keeps one publisher's order). */
async function received (r: Room, count: number): Promise<Uint8Array[][]> {
  return await Promise.all(r.members.map(async (m) => await within(take(m.source, count), 30_000, 'the members to get every message')))
}

test('random payloads published raw on a room\'s channel: members get the well-formed ones, none is closed, the rest are counted as rejected', async (t) => {
  const seed = Date.now() % 0x7fffffff
  t.log(`seed ${seed}`)
  // Seeded, so that a failing run can be repeated (the seed is logged).
  const random = rng(seed)
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => random() & 0xff))
  const chars = ['a', 'Z', ' ', 'é', 'ß', '€', '中', '😀', '\u0000', '\uffff']
  const payloads: Buffer[] = []
  for (let i = 0; i < 1000; i++) {
    const kind = random() % 3
    if (kind === 0) payloads.push(bytes(random() % 65)) // anything, 0–64 bytes
    else if (kind === 1) payloads.push(wire(random() & 1, bytes(random() % 48))) // a header, random payload
    else payloads.push(wire(1, Buffer.from(Array.from({ length: random() % 16 }, () => chars[random() % chars.length]).join('')))) // valid text
  }
  // Crafted: invalid UTF-8 (a lone continuation, an overlong '/', a surrogate, a truncated
  // sequence), flags no publisher sets, and a header cut short.
  for (const bad of [[0xc3, 0x28], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) payloads.push(wire(1, Uint8Array.from(bad)))
  payloads.push(wire(2, Buffer.from('x')), wire(0x81, Buffer.from('x')), wire(0xff, Buffer.alloc(0)), Buffer.alloc(HEADER - 1, 1))

  const wellFormed = (p: Buffer): boolean => p.length >= HEADER && (p[0] === 0 || (p[0] === 1 && isUtf8(p.subarray(HEADER))))
  const expected = payloads.filter(wellFormed)
  const rejected = payloads.length - expected.length
  t.true(expected.length > 300 && rejected > 300, `a mix of both (${expected.length} well-formed, ${rejected} not)`)

  const r = await room()
  try {
    for (const p of payloads) await r.raw.publish(CHANNEL, p)
    await r.raw.publish(CHANNEL, wire(1, SENTINEL))
    const got = await received(r, expected.length + 1)
    for (const [i, messages] of got.entries()) {
      t.is(messages.length, expected.length + 1, `member ${i} got every well-formed message`)
      const wrong = expected.findIndex((p, k) => messages[k] === undefined || !Buffer.from(messages[k]).equals(p.subarray(HEADER)) || isText(messages[k]) !== (p[0] === 1))
      t.is(wrong, -1, `member ${i}: message ${wrong} is not the one published, as published (text or binary)`)
    }
    t.deepEqual(r.closes, [undefined, undefined], 'no member was closed')
    t.is(r.adapter.rejected, rejected)
    t.is(r.adapter.received, expected.length + 1)
  } finally {
    await r.stop()
  }
})

test('a payload from Redis over maxMessageSize (16 MiB by default) is rejected, not sent to members whose frames it would exceed', async (t) => {
  const r = await room()
  try {
    await r.raw.publish(CHANNEL, wire(0, Buffer.alloc(DEFAULT_MAX_MESSAGE_SIZE + 1)))
    await r.raw.publish(CHANNEL, wire(1, SENTINEL))
    const got = await received(r, 1)
    for (const messages of got) t.deepEqual(messages.map((m) => Buffer.from(m).toString()), [SENTINEL.toString()])
    t.deepEqual(r.closes, [undefined, undefined], 'no member was closed (their maxFrameSize is 16 MiB)')
    t.is(r.adapter.rejected, 1)
  } finally {
    await r.stop()
  }
})

test('maxMessageSize bounds both ways: from Redis, one byte past it is rejected and at it delivered; a local publish past it is not sent to Redis (dropped)', async (t) => {
  const r = await room({ maxMessageSize: 1000 })
  const listener = r.raw.duplicate()
  listener.on('error', () => {})
  const heard: number[] = []
  try {
    await listener.connect()
    await listener.subscribe(CHANNEL, (message) => { heard.push(message.length - HEADER) }, true)
    await r.raw.publish(CHANNEL, wire(0, Buffer.alloc(1001, 1)))
    await r.raw.publish(CHANNEL, wire(0, Buffer.alloc(1000, 2)))
    await r.raw.publish(CHANNEL, wire(1, SENTINEL))
    const got = await received(r, 2)
    for (const messages of got) t.deepEqual(messages.map((m) => m.length), [1000, SENTINEL.length])
    t.is(r.adapter.rejected, 1)

    // This process's members get a local publish of any size; Redis only one within the bound.
    const dropped = r.adapter.dropped
    t.is(r.server.topics.publish('room', new Uint8Array(1001)), 2)
    t.is(r.server.topics.publish('room', new Uint8Array(1000)), 2)
    await until(() => heard.length === 4, 'the listener to hear the local publish within the bound')
    t.deepEqual(heard, [1001, 1000, SENTINEL.length, 1000], 'Redis carried the one within the bound only')
    t.is(r.adapter.dropped, dropped + 1)
    t.deepEqual(r.closes, [undefined, undefined])
  } finally {
    await listener.close()
    await r.stop()
  }
})
