/**
 * examples/chat.ts over real sockets: every message reaches every other member; a member that
 * never reads is closed with 1008 once its own outbox is full, while the others keep receiving
 * every message in lock-step (each message is read by a fast member before the next is sent,
 * so a room that waited for the slow member would stall; the loop is bounded in count).
 */

import test from 'ava'
import { connect, isText, type Connection } from '../../src/index.js'
import { collect, take, text } from '../../src/testing.js'
import { ChatRoom, createServer, type Member } from '../../examples/chat.js'
import { listen, runExample } from './helpers.js'

test('each message goes to every other member, not back to its sender; types are kept', async (t) => {
  const room = new ChatRoom()
  const server = createServer(room)
  const url = await listen(server)
  try {
    const [ann, bob, cy] = await Promise.all(['ann', 'bob', 'cy'].map((name) => connect(`${url}?name=${name}`)))
    t.deepEqual([...room.members].map((m) => m.name).sort(), ['ann', 'bob', 'cy'])
    await ann.sink(['hi from ann', new Uint8Array([1])])
    const [toBob, toCy] = await Promise.all([take(bob.source, 2), take(cy.source, 2)])
    for (const received of [toBob, toCy]) {
      t.is(text(received[0]), 'hi from ann')
      t.true(isText(received[0]))
      t.false(isText(received[1]))
      t.deepEqual([...received[1]], [1])
    }
    await bob.sink(['bob here'])
    t.deepEqual(text(await take(ann.source, 1)), ['bob here'])
    t.deepEqual(text(await take(cy.source, 1)), ['bob here'])
    for (const c of [ann, bob, cy]) c.close()
    await Promise.all([ann.closed, bob.closed, cy.closed])
    t.deepEqual(await collect(ann.source), [], 'ann never got her own messages')
  } finally {
    await server.close()
  }
})

test('a member that leaves is removed from the room', async (t) => {
  const room = new ChatRoom()
  const server = createServer(room)
  const url = await listen(server)
  try {
    const ann = await connect(url + '?name=ann')
    const bob = await connect(url + '?name=bob')
    t.is(room.members.size, 2)
    bob.close()
    await bob.closed
    await ann.sink(['anyone?'])
    t.is(room.members.size, 1)
    ann.close()
    await ann.closed
    t.is(room.members.size, 0)
  } finally {
    await server.close()
  }
})

test('a member that never reads is closed with 1008 "too slow"; the others receive every message meanwhile', async (t) => {
  const MAX_MESSAGES = 4000
  const SIZE = 8 * 1024
  const message = (i: number): string => `${i}:`.padEnd(SIZE, '.')
  let kicked: Member | undefined
  let onKicked!: () => void
  const kickedOnce = new Promise<void>((resolve) => { onKicked = resolve })
  const room = new ChatRoom({ maxQueued: 16, onKick: (m) => { kicked = m; onKicked() } })
  // A small send mark, and a long close timeout so the slow member can still read its close.
  const server = createServer(room, { sendHighWaterMark: 64 * 1024, closeTimeout: 60_000, heartbeat: false })
  const url = await listen(server)
  try {
    const ann = await connect(url + '?name=ann', { heartbeat: false })
    const bob = await connect(url + '?name=bob', { heartbeat: false })
    const sid = await connect(url + '?name=sid', { heartbeat: false, receiveHighWaterMark: 16 * 1024 })
    let sent = 0
    let bobReceived = 0
    let afterKick = 0
    // Ann sends one message at a time; Bob reads each before the next goes out.
    await ann.sink((async function * () {
      while (sent < MAX_MESSAGES && afterKick < 20) {
        yield message(sent)
        const [got] = await take(bob.source, 1)
        if (got === undefined || text(got) !== message(sent)) throw new Error(`bob did not get message ${sent}`)
        sent++
        bobReceived++
        if (kicked !== undefined) afterKick++
      }
    })())
    t.not(kicked, undefined, `sid was closed within ${MAX_MESSAGES} messages (sent ${sent})`)
    await kickedOnce
    t.log(`sid was closed after ${sent - afterKick} messages`)
    t.is(kicked?.name, 'sid')
    t.is(bobReceived, sent, 'bob received every message, in order')
    t.is(afterKick, 20, 'the room went on after the kick')
    t.deepEqual([...room.members].map((m) => m.name).sort(), ['ann', 'bob'])

    // Sid finally reads: a prefix of the messages, in order, then the close.
    const sidGot = await collect(sid.source)
    t.true(sidGot.length < sent, `sid got ${sidGot.length} of ${sent}`)
    sidGot.forEach((m, i) => { if (text(m) !== message(i)) t.fail(`sid's message ${i} is wrong`) })
    t.deepEqual(await sid.closed, { code: 1008, reason: 'too slow', wasClean: true })

    ann.close()
    bob.close()
    await Promise.all([ann.closed, bob.closed])
  } finally {
    await server.close()
  }
})

test('the outbox limit counts messages per member: a member that reads keeps up with a burst below the limit', async (t) => {
  const kicks: string[] = []
  const room = new ChatRoom({ maxQueued: 64, onKick: (m) => kicks.push(m.name) })
  const server = createServer(room)
  const url = await listen(server)
  let conns: Connection[] = []
  try {
    conns = await Promise.all(['ann', 'bob'].map((name) => connect(`${url}?name=${name}`)))
    const [ann, bob] = conns
    const burst = Array.from({ length: 64 }, (_, i) => `burst ${i}`)
    await ann.sink(burst)
    t.deepEqual(text(await take(bob.source, burst.length)), burst)
    t.deepEqual(kicks, [])
  } finally {
    for (const c of conns) c.close()
    await server.close()
  }
})

test('runnable: `tsx examples/chat.ts --port 0` prints its URL and relays messages', async (t) => {
  const example = await runExample('chat')
  try {
    const ann = await connect(example.url + '?name=ann')
    const bob = await connect(example.url + '?name=bob')
    await ann.sink(['hello bob'])
    t.deepEqual(text(await take(bob.source, 1)), ['hello bob'])
    ann.close()
    bob.close()
    await Promise.all([ann.closed, bob.closed])
  } finally {
    t.is(await example.stop(), 0)
  }
})
