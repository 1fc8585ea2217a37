/**
 * Backpressure through the client, both ways, over real sockets:
 * - a server floods while the client does not read: the client's queue of received messages
 *   stays bounded (it pauses the socket, so TCP pushes back on the server), and every message
 *   still arrives once it reads;
 * - the client floods while the server does not read: the client's send queue stays bounded and
 *   its sink stops pulling from the iterable.
 * Waits are bounded polls on the connections' counters; nothing asserts on time.
 */

import test from 'ava'
import { connect, type Connection } from '../../src/index.js'
import { eventually, startOurServer, startRawServer, startWsServer, switchingProtocols } from './helpers.js'

const MESSAGE = 64 * 1024
const HIGH_WATER = 256 * 1024
/** What a paused reader may hold at most: the mark, the rest of one socket read, and a message that completes in it (in bytes, for these large messages; a read of empty ones counts 256 B each, see the empty flood below). */
const IN_BOUND = HIGH_WATER + 64 * 1024 + 2 * MESSAGE
/** What a blocked sender may hold at most: the mark plus one message and its header. */
const OUT_BOUND = HIGH_WATER + MESSAGE + 64

/** Read every message, checking that message i is filled with byte i & 0xff; returns the count. */
async function readAll (conn: Connection): Promise<number> {
  let count = 0
  for await (const m of conn.source) {
    if (m.length !== MESSAGE || m[0] !== (count & 0xff) || m[MESSAGE - 1] !== (count & 0xff)) throw new Error(`message ${count} is wrong`)
    count++
  }
  return count
}

function filled (i: number): Uint8Array {
  return new Uint8Array(MESSAGE).fill(i & 0xff)
}

test('our server floods, the client does not read: the client queues a bounded amount and pauses', async (t) => {
  const COUNT = 512 // 32 MiB
  let pulled = 0
  let serverConn: Connection | undefined
  const peer = await startOurServer({
    '': async (conn) => {
      serverConn = conn
      await conn.sink((function * () {
        for (let i = 0; i < COUNT; i++) {
          pulled++
          yield filled(i)
        }
      })())
    }
  }, { sendHighWaterMark: HIGH_WATER, heartbeat: false })
  try {
    const conn = await connect(peer.url, { receiveHighWaterMark: HIGH_WATER, heartbeat: false })
    // The client pauses its socket; then the kernel buffers fill and the server's sink blocks.
    t.true(await eventually(() => conn.stats().pauses > 0), 'the client paused reading')
    t.true(await eventually(() => serverConn !== undefined && serverConn.stats().queuedOutBytes >= HIGH_WATER), 'the server is blocked on the client')
    t.true(pulled < COUNT, `the server's generator was not drained while the client did not read (pulled ${pulled})`)
    t.true(conn.stats().queuedInBytes <= IN_BOUND, `queued ${conn.stats().queuedInBytes}`)

    t.is(await readAll(conn), COUNT, 'every message arrives once the client reads')
    const stats = conn.stats()
    t.true(stats.peakQueuedInBytes <= IN_BOUND, `peak ${stats.peakQueuedInBytes} <= ${IN_BOUND}`)
    t.true(stats.pauses > 0)
    t.is(stats.queuedInBytes, 0)
    t.is((await conn.closed).code, 1000)
  } finally {
    await peer.close()
  }
})

test('a ws server floods, the client does not read: the client queues a bounded amount and pauses', async (t) => {
  const COUNT = 512
  const peer = await startWsServer((ws) => {
    // ws buffers whatever we send in memory; the bound under test is the client's.
    for (let i = 0; i < COUNT; i++) ws.send(filled(i))
    ws.close(1000)
  })
  try {
    const conn = await connect(peer.url, { receiveHighWaterMark: HIGH_WATER, heartbeat: false })
    t.true(await eventually(() => conn.stats().pauses > 0), 'the client paused reading')
    t.true(conn.stats().queuedInBytes <= IN_BOUND)
    t.is(await readAll(conn), COUNT)
    const stats = conn.stats()
    t.true(stats.peakQueuedInBytes <= IN_BOUND, `peak ${stats.peakQueuedInBytes} <= ${IN_BOUND}`)
    t.true(stats.pauses > 0)
    t.is((await conn.closed).code, 1000)
  } finally {
    await peer.close()
  }
})

test('the client floods, our server does not read: the client\'s send queue is bounded and its sink stops pulling', async (t) => {
  const COUNT = 1024 // 64 MiB: more than loopback's socket buffers can hide
  let pulled = 0
  let release!: () => void
  const released = new Promise<void>((resolve) => { release = resolve })
  let serverConn: Connection | undefined
  let received = 0
  let receivedBytes = 0
  const peer = await startOurServer({
    '': async (conn) => {
      serverConn = conn
      await released
      for await (const m of conn.source) {
        received++
        receivedBytes += m.length
        if (received === COUNT) break
      }
    }
  }, { receiveHighWaterMark: HIGH_WATER, heartbeat: false })
  try {
    const conn = await connect(peer.url, { sendHighWaterMark: HIGH_WATER, heartbeat: false })
    const chunk = new Uint8Array(MESSAGE)
    const sending = conn.sink((function * () {
      for (let i = 0; i < COUNT; i++) {
        pulled++
        yield chunk
      }
    })())
    t.true(await eventually(() => serverConn !== undefined && serverConn.stats().pauses > 0), 'the server paused reading')
    t.true(await eventually(() => conn.stats().queuedOutBytes >= HIGH_WATER), 'the client is blocked on the server')
    const atBlock = pulled
    t.true(atBlock < COUNT, `the client's sink stopped pulling (pulled ${atBlock} of ${COUNT})`)
    t.true(conn.stats().peakQueuedOutBytes <= OUT_BOUND, `peak ${conn.stats().peakQueuedOutBytes} <= ${OUT_BOUND}`)

    release()
    await sending
    t.is(pulled, COUNT)
    t.is((await conn.closed).code, 1000, 'the server handler returned after the last message: 1000')
    t.is(received, COUNT)
    t.is(receivedBytes, COUNT * MESSAGE)
    t.true(conn.stats().peakQueuedOutBytes <= OUT_BOUND, `peak ${conn.stats().peakQueuedOutBytes} <= ${OUT_BOUND}`)
  } finally {
    await peer.close()
  }
})

test('the client floods, a ws server does not read: the client\'s send queue is bounded', async (t) => {
  const COUNT = 1024
  let pulled = 0
  let received = 0
  let wsResume: (() => void) | undefined
  let gotAll!: () => void
  const receivedAll = new Promise<void>((resolve) => { gotAll = resolve })
  const peer = await startWsServer((ws) => {
    ws.pause()
    wsResume = () => ws.resume()
    ws.on('message', () => {
      received++
      if (received === COUNT) gotAll()
    })
  })
  try {
    const conn = await connect(peer.url, { sendHighWaterMark: HIGH_WATER, heartbeat: false })
    const chunk = new Uint8Array(MESSAGE)
    const sending = conn.sink((function * () {
      for (let i = 0; i < COUNT; i++) {
        pulled++
        yield chunk
      }
    })())
    t.true(await eventually(() => conn.stats().queuedOutBytes >= HIGH_WATER), 'the client is blocked on the server')
    t.true(pulled < COUNT, `the client's sink stopped pulling (pulled ${pulled} of ${COUNT})`)
    t.is(received, 0)
    wsResume!()
    await sending
    await receivedAll
    t.is(received, COUNT)
    t.true(conn.stats().peakQueuedOutBytes <= OUT_BOUND, `peak ${conn.stats().peakQueuedOutBytes} <= ${OUT_BOUND}`)
    conn.close()
    t.is((await conn.closed).code, 1000)
  } finally {
    await peer.close()
  }
})

test('a flood of empty messages the client does not read: the queue passes the mark by at most one socket read\'s messages (each counted as 256 B), then reading pauses', async (t) => {
  // Found by an adversarial try: a read is parsed whole before reading pauses, so 64 KiB of
  // 2-byte frames (32,768 messages) can land past the mark at once. This pins that bound.
  const READ = 64 * 1024
  const MARK = 64 * 1024
  const FRAMES = 1 << 20 // 2 MiB of `82 00`
  const block = Buffer.alloc(READ)
  for (let i = 0; i < READ; i += 2) block[i] = 0x82
  let written = 0
  const raw = await startRawServer((socket, request) => {
    socket.write(switchingProtocols(request))
    const pump = (): void => {
      while (!socket.destroyed && written < FRAMES * 2) {
        written += READ
        if (!socket.write(block)) return void socket.once('drain', pump)
      }
    }
    pump()
  })
  try {
    const conn = await connect(raw.url, { receiveHighWaterMark: MARK, heartbeat: false })
    t.true(await eventually(() => conn.stats().queuedInBytes > MARK), 'the queue reached the mark')
    // Paused: what is queued stops growing while nobody reads.
    let last = -1
    t.true(await eventually(() => { const q = conn.stats().queuedInBytes; const same = q === last; last = q; return same }, 200, 50), 'the queue stopped growing')
    const bound = MARK + (READ / 2) * 256 + 256
    t.true(conn.stats().peakQueuedInBytes <= bound, `peak ${conn.stats().peakQueuedInBytes} <= ${bound}`)
    // Nothing is lost: read them all (bounded by the count sent).
    let count = 0
    let nonEmpty = 0
    for await (const m of conn.source) {
      if (m.length !== 0) nonEmpty++
      if (++count === FRAMES) break
    }
    t.is(count, FRAMES)
    t.is(nonEmpty, 0)
    t.log(`peak ${conn.stats().peakQueuedInBytes} B for a mark of ${MARK}`)
    t.true(conn.stats().peakQueuedInBytes <= bound, `peak ${conn.stats().peakQueuedInBytes} <= ${bound}`)
    conn.close()
  } finally {
    await raw.close()
  }
})
