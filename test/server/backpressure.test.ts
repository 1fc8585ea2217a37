/**
 * Backpressure end to end, measured with conn.stats(): a client that does not read holds the
 * handler's sink; a handler that does not read pauses the socket; a peer that pings without
 * reading our pongs is not read from either. Counts only, never timings.
 */

import test from 'ava'
import { connect, type Connection } from '../../src/index.js'
import { ITEM_OVERHEAD } from '../../src/protocol/gather.js'
import { clientFrame, echo, RawClient, sleep, startServer, until, within, WsPeer } from './helpers.js'

/** Wait until `value()` has not changed for `quietMs` (bounded by `ms`). */
async function settled (value: () => number, quietMs: number, ms: number, what: string): Promise<number> {
  const deadline = Date.now() + ms
  let last = value()
  let since = Date.now()
  for (;;) {
    await sleep(25)
    const v = value()
    if (v !== last) {
      last = v
      since = Date.now()
    } else if (Date.now() - since >= quietMs) {
      return v
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} to settle (at ${v})`)
  }
}

const floods = [
  { sendHighWaterMark: 256 * 1024, size: 16 * 1024, count: 4096 },
  // Below the socket's own 16 KiB high-water mark: 'drain' is not emitted for such small queues.
  { sendHighWaterMark: 1024, size: 512, count: 40_000 },
  { sendHighWaterMark: 100_000, size: 200_000, count: 200 }
]

for (const { sendHighWaterMark, size, count } of floods) {
  test(`a client that does not read: the handler's queue stays under sendHighWaterMark ${sendHighWaterMark} (+ one ${size} B message), then all ${count} arrive in order`, async (t) => {
    t.timeout(60_000)
    let produced = 0
    let conn: Connection | undefined
    const { port } = await startServer(t, {
      '': async (c) => {
        conn = c
        async function * flood (): AsyncGenerator<Uint8Array> {
          for (let i = 0; i < count; i++) {
            const m = new Uint8Array(size)
            new DataView(m.buffer).setUint32(0, i)
            produced++
            yield m
          }
        }
        await c.sink(flood())
        for await (const _ of c.source) {} // eslint-disable-line no-empty
      }
    }, { sendHighWaterMark, heartbeat: false })
    const client = await RawClient.connect(port)
    client.socket.pause()
    await until(() => produced > 0, 5000, 'the handler starts')
    const stalled = await settled(() => produced, 300, 20_000, 'production')
    t.true(stalled < count, `backpressure holds the sink (${stalled} of ${count} produced)`)
    const stats = conn!.stats()
    t.true(stats.peakQueuedOutBytes <= sendHighWaterMark + size + 64 * 1024, `peak ${stats.peakQueuedOutBytes}`)
    t.true(stats.queuedOutBytes <= sendHighWaterMark + size + 64 * 1024, `now ${stats.queuedOutBytes}`)

    client.socket.resume()
    let inOrder = true
    for (let i = 0; i < count; i++) {
      const f = await client.nextFrame(20_000)
      if (f === undefined || f.opcode !== 2 || f.payload.length !== size || f.payload.readUInt32BE(0) !== i) {
        inOrder = false
        break
      }
    }
    t.true(inOrder, 'every message arrives, in order')
    t.is(produced, count)
    client.send(clientFrame(8, Buffer.from([0x03, 0xe8])))
    t.is((await client.nextClose())?.code, 1000)
    t.true(conn!.stats().peakQueuedOutBytes <= sendHighWaterMark + size + 64 * 1024)
  })
}

test('a handler that does not read: the socket pauses and queued input stays under receiveHighWaterMark + one message', async (t) => {
  t.timeout(60_000)
  const receiveHighWaterMark = 256 * 1024
  const size = 64 * 1024
  const count = 200
  let release!: () => void
  const released = new Promise<void>((resolve) => { release = resolve })
  let conn: Connection | undefined
  const got: number[] = []
  const { url } = await startServer(t, {
    '': async (c) => {
      conn = c
      await released
      for await (const m of c.source) {
        got.push(Buffer.from(m).readUInt32BE(0))
        if (got.length === count) break
      }
    }
  }, { receiveHighWaterMark, heartbeat: false })
  const peer = await WsPeer.open(url)
  for (let i = 0; i < count; i++) {
    const m = Buffer.alloc(size)
    m.writeUInt32BE(i, 0)
    peer.ws.send(m)
  }
  await until(() => conn !== undefined && conn.stats().pauses > 0, 10_000, 'the socket pauses')
  await settled(() => conn!.stats().queuedInBytes, 300, 20_000, 'queued input')
  const stats = conn!.stats()
  t.true(stats.pauses > 0)
  t.true(stats.peakQueuedInBytes <= receiveHighWaterMark + size + 64 * 1024, `peak ${stats.peakQueuedInBytes}`)
  t.true(peer.ws.bufferedAmount > 0, 'TCP backpressure reached the client')
  release()
  t.deepEqual((await within(peer.closed, 30_000, 'close')).code, 1000)
  t.deepEqual(got, Array.from({ length: count }, (_, i) => i))
  t.true(conn!.stats().peakQueuedInBytes <= receiveHighWaterMark + size + 64 * 1024)
})

test('many small messages to a handler that does not read: the bound holds too', async (t) => {
  t.timeout(60_000)
  const receiveHighWaterMark = 64 * 1024
  const count = 20_000
  let release!: () => void
  const released = new Promise<void>((resolve) => { release = resolve })
  let conn: Connection | undefined
  let n = 0
  const { url } = await startServer(t, {
    '': async (c) => {
      conn = c
      await released
      for await (const _ of c.source) if (++n === count) break
    }
  }, { receiveHighWaterMark, heartbeat: false })
  const peer = await WsPeer.open(url)
  const m = Buffer.alloc(100, 7)
  for (let i = 0; i < count; i++) peer.ws.send(m)
  await until(() => conn !== undefined && conn.stats().pauses > 0, 10_000, 'the socket pauses')
  await settled(() => conn!.stats().queuedInBytes, 300, 20_000, 'queued input')
  // One socket chunk (at most 64 KiB) can land at once after the pause: frames of 6 + 100
  // bytes, each message counted as its bytes plus the per-item overhead.
  t.true(conn!.stats().peakQueuedInBytes <= receiveHighWaterMark + Math.ceil(64 * 1024 / 106) * (100 + ITEM_OVERHEAD), `peak ${conn!.stats().peakQueuedInBytes}`)
  release()
  t.is((await within(peer.closed, 30_000, 'close')).code, 1000)
  t.is(n, count)
})

test('a peer that pings but never reads the pongs is not read from: the pongs owed stay bounded', async (t) => {
  t.timeout(60_000)
  const sendHighWaterMark = 64 * 1024
  let conn: Connection | undefined
  const { port } = await startServer(t, {
    '': async (c) => {
      conn = c
      for await (const _ of c.source) {} // eslint-disable-line no-empty
    }
  }, { sendHighWaterMark, heartbeat: false })
  const client = await RawClient.connect(port)
  client.socket.pause()
  const ping = clientFrame(9, Buffer.alloc(125, 1))
  // 64 MiB of pings, written in batches so the client's own buffer stays modest.
  const batch = Buffer.concat(Array.from({ length: 512 }, () => ping))
  let batches = 0
  for (; batches < 1024; batches++) {
    if (!client.socket.write(batch)) {
      const drained = await Promise.race([
        new Promise<boolean>((resolve) => client.socket.once('drain', () => resolve(true))),
        sleep(1000).then(() => false)
      ])
      // The server stopped reading (a slow machine can also just be slow to drain: look).
      if (!drained && conn !== undefined && conn.stats().pauses > 0) break
    }
  }
  t.true(batches < 1024, 'the server stopped reading from the peer')
  await until(() => conn !== undefined, 5000, 'handler')
  const stats = conn!.stats()
  t.true(stats.pauses > 0)
  // Reading stops once 4 × sendHighWaterMark waits to be sent (docs/server.md).
  t.true(stats.peakQueuedOutBytes <= 4 * sendHighWaterMark + 2 * 64 * 1024, `peak ${stats.peakQueuedOutBytes}`)
  client.destroy()
  t.is((await within(conn!.closed, 5000, 'closed')).code, 1006)
})

test('two wspipe peers sending 16 MiB messages both ways at once both keep reading: a message the sink sends does not stop reading', async (t) => {
  t.timeout(60_000)
  // A message bigger than 4 × sendHighWaterMark (plus what the kernel buffers) sits in each side's
  // output at once. Were that to stop reading, as pongs owed to a non-reader do, neither side would
  // read the other's message and neither output would drain: an echo never comes, `within` ends
  // the wait, and close() (its closeTimeout) ends the connection, so the test does not hang.
  // No heartbeat: a ping waits behind the 16 MiB frame being written ahead of it, and on a busy
  // machine writing that frame can outlast a short heartbeat's timeout while the peer reads it.
  const size = 16 * 1024 * 1024
  const count = 6
  const { url } = await startServer(t, { '': echo }, { heartbeat: false })
  const conn = await connect(url, { heartbeat: false })
  const message = new Uint8Array(size)
  const sending = (async () => {
    for (let i = 0; i < count; i++) await conn.send(message.fill(i + 1, 0, 4))
  })()
  let echoed = 0
  try {
    for (; echoed < count; echoed++) {
      const { value, done } = await within(conn.source.next(), 30_000, `echo ${echoed}`)
      if (done === true) break
      t.is(value.length, size)
      t.is(value[0], echoed + 1)
    }
  } catch (err) {
    t.log(`after ${echoed} echoes: ${(err as Error).message}`)
  }
  t.is(echoed, count, 'every message echoed')
  await sending.catch(() => {})
  conn.close()
  t.is((await within(conn.closed, 10_000, 'closed')).code, 1000)
})

