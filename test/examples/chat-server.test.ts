/**
 * examples/chat-server.ts over real sockets: every member of a room, the sender included, gets
 * every message; rooms are apart; a member that never reads is closed with 1008 while the others
 * receive every message in lock-step (a room that waited for it would stall; the loop is bounded
 * in count); run as a program it prints its URL and closes with 1001 on SIGTERM; two such
 * programs sharing a redis-server (Debian package redis-server) form one room.
 */

import test from 'ava'
import { connect, isText, type Connection } from '../../src/index.js'
import { collect, take, text } from '../../src/testing.js'
import { createServer, roomOf } from '../../examples/chat-server.js'
import { peerTest } from '../peers.js'
import { RedisServer } from '../topics/redis-server.js'
import { listen, runExample } from './helpers.js'

async function join (url: string, room: string, options = {}): Promise<Connection> {
  return await connect(`${url}room/${room}`, { protocols: ['chat'], ...options })
}

async function until (condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  if (!condition()) throw new Error(`timed out waiting for ${what}`)
}

test('rooms are named by their path: letters, digits, - and _', (t) => {
  t.is(roomOf('/room/lobby'), 'room/lobby')
  t.is(roomOf('/room/a-B_9'), 'room/a-B_9')
  for (const bad of ['/', '/room/', '/room/a/b', '/room/a b', '/rooms/x', '/room/é']) t.is(roomOf(bad), undefined, bad)
})

test('every member of a room gets every message, the sender included; other rooms hear nothing', async (t) => {
  const server = createServer()
  const url = await listen(server)
  try {
    const [ann, bob, cy] = await Promise.all([join(url, 'lobby'), join(url, 'lobby'), join(url, 'kitchen')])
    await until(() => server.topics.count('room/lobby') === 2 && server.topics.count('room/kitchen') === 1, 'three members')
    await ann.sink(['hi from ann'])
    await bob.sink(['bob here'])
    for (const m of [ann, bob]) {
      const got = await take(m.source, 2)
      t.deepEqual(text(got), ['hi from ann', 'bob here'])
      t.true(got.every(isText))
    }
    await cy.sink(['anyone?'])
    t.deepEqual(text(await take(cy.source, 1)), ['anyone?'])
    for (const c of [ann, bob, cy]) c.close()
    await Promise.all([ann.closed, bob.closed, cy.closed])
    t.deepEqual(await collect(ann.source), [], 'ann never heard the kitchen')
    await until(() => server.topics.topics().length === 0, 'the rooms to empty')
  } finally {
    await server.close()
  }
})

test('a path that names no room is closed with 1008; a binary message with 1003', async (t) => {
  const server = createServer()
  const url = await listen(server)
  try {
    const lost = await connect(`${url}lobby`, { protocols: ['chat'] })
    t.deepEqual(await lost.closed, { code: 1008, reason: 'no such room: connect to /room/NAME', wasClean: true })
    const ann = await join(url, 'lobby')
    await ann.sink([new Uint8Array([1])])
    t.deepEqual(await ann.closed, { code: 1003, reason: 'text messages only', wasClean: true })
  } finally {
    await server.close()
  }
})

test("a member that never reads is closed with 1008 'subscriber too slow'; the others receive every message meanwhile", async (t) => {
  const MAX_MESSAGES = 4000
  const SIZE = 8 * 1024
  const message = (i: number): string => `${i}:`.padEnd(SIZE, '.')
  // A small send mark and queue bound, and a long close timeout so the slow member can still read its close.
  const server = createServer({ sendHighWaterMark: 64 * 1024, closeTimeout: 60_000, heartbeat: false, topics: { maxQueuedBytes: 128 * 1024 } })
  const url = await listen(server)
  try {
    const ann = await join(url, 'lobby', { heartbeat: false })
    const sid = await join(url, 'lobby', { heartbeat: false, receiveHighWaterMark: 16 * 1024 })
    await until(() => server.topics.count('room/lobby') === 2, 'two members')
    let sent = 0
    let afterKick = 0
    // Ann sends one message at a time and reads it back from the room before the next.
    await ann.sink((async function * () {
      while (sent < MAX_MESSAGES && afterKick < 20) {
        yield message(sent)
        const [got] = await take(ann.source, 1)
        if (got === undefined || text(got) !== message(sent)) throw new Error(`ann did not get message ${sent}`)
        sent++
        if (server.topics.count('room/lobby') === 1) afterKick++
      }
    })())
    t.is(afterKick, 20, `sid was closed within ${MAX_MESSAGES} messages and the room went on`)
    t.log(`sid was closed after ${sent - afterKick} messages`)
    // Sid finally reads: a prefix of the messages, in order, then the close.
    const sidGot = await collect(sid.source)
    t.true(sidGot.length < sent, `sid got ${sidGot.length} of ${sent}`)
    sidGot.forEach((m, i) => { if (text(m) !== message(i)) t.fail(`sid's message ${i} is wrong`) })
    t.deepEqual(await sid.closed, { code: 1008, reason: 'subscriber too slow', wasClean: true })
    ann.close()
    await ann.closed
  } finally {
    await server.close()
  }
})

test('runnable: `node --import tsx examples/chat-server.ts --port 0` prints its URL, relays, and closes with 1001 on SIGTERM', async (t) => {
  const example = await runExample('chat-server')
  const ann = await join(example.url, 'lobby')
  const bob = await join(example.url, 'lobby')
  try {
    await ann.sink(['hello bob'])
    t.deepEqual(text(await take(bob.source, 1)), ['hello bob'])
  } finally {
    t.is(await example.stop(), 0)
  }
  t.is((await ann.closed).code, 1001)
  t.is((await bob.closed).code, 1001)
})

/** Read `conn` until a message `wanted` comes, at most `max` messages; returns what came, in order. */
async function readUntil (conn: Connection, wanted: string, max = 500): Promise<string[]> {
  const got: string[] = []
  for await (const m of conn.source) {
    got.push(text(m))
    if (got.at(-1) === wanted || got.length >= max) break
  }
  return got
}

peerTest('redis-server')('two chat-server processes sharing a redis-server (--redis) form one room', async (t) => {
  const redis = await RedisServer.start()
  const one = await runExample('chat-server', ['--redis', redis.url])
  const two = await runExample('chat-server', ['--redis', redis.url])
  try {
    const ann = await join(one.url, 'lobby')
    const bob = await join(two.url, 'lobby')
    // Redis acknowledges each process's SUBSCRIBE in its own time: ann says hello until bob hears one.
    let heard = false
    const sending = ann.sink((async function * () {
      for (let i = 0; i < 200 && !heard; i++) {
        yield `hello ${i}`
        await new Promise((resolve) => setTimeout(resolve, 25))
      }
    })())
    const [first] = await take(bob.source, 1)
    heard = true
    t.regex(text(first), /^hello \d+$/)
    await sending
    // Bob answers from the other process; ann hears it after her own hellos, bob hears it too.
    await bob.sink(['hi ann'])
    t.is((await readUntil(ann, 'hi ann')).at(-1), 'hi ann')
    t.is((await readUntil(bob, 'hi ann')).at(-1), 'hi ann')
  } finally {
    t.is(await one.stop(), 0)
    t.is(await two.stop(), 0)
    await redis.stop()
  }
})
