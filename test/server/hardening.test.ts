/**
 * Issue "Hardening": each defect measured at 742c2cf, as a test that failed there. Memory is
 * checked by counts and, where it matters, by what the process really holds (array buffers).
 */

import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import test from 'ava'
import type { CloseInfo, Connection } from '../../src/index.js'
import { ITEM_OVERHEAD } from '../../src/protocol/gather.js'
import { VirtualClock } from '../../src/testing.js'
import { clientFrame, closePayload, deferred, RawClient, sleep, startServer, echo, until, upgradeRequest, watch, within } from './helpers.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** Array-buffer memory after garbage collection (backing stores are freed a moment after the GC that finds them dead). */
async function arrayBuffers (): Promise<number> {
  let least = Infinity
  for (let i = 0; i < 10; i++) {
    gc()
    await sleep(100)
    least = Math.min(least, process.memoryUsage().arrayBuffers)
  }
  return least
}

test.serial('defect 1: empty messages count toward receiveHighWaterMark: the socket pauses and the queue stays bounded', async (t) => {
  const receiveHighWaterMark = 64 * 1024
  let conn: Connection | undefined
  const { port } = await startServer(t, { '': async (c) => { conn = c; await c.closed } }, { receiveHighWaterMark, heartbeat: false })
  const client = await RawClient.connect(port)
  const empty = clientFrame(0x2, new Uint8Array(0))
  // 100,000 empty messages (600 KB on the wire), written in batches: far more than fit.
  const batch = Buffer.concat(Array.from({ length: 1000 }, () => empty))
  for (let i = 0; i < 100; i++) client.send(batch)
  await until(() => conn !== undefined && conn.stats().pauses > 0, 10_000, 'reading pauses')
  await sleep(200)
  const stats = conn!.stats()
  t.true(stats.queuedInBytes > 0, 'empty messages cost something')
  // At most the mark plus one 64 KiB read of 6-byte frames.
  t.true(stats.peakQueuedInBytes <= receiveHighWaterMark + Math.ceil(65536 / 6) * ITEM_OVERHEAD, `peak ${stats.peakQueuedInBytes}`)
  client.destroy()
})

test.serial('defect 2: queued 1-byte messages, each in its own 64 KiB read, do not pin those reads', async (t) => {
  const opened = deferred<Connection>()
  const { port } = await startServer(t, { '': async (c) => { opened.resolve(c); await c.closed } }, { heartbeat: false })
  const client = await RawClient.connect(port)
  const conn = await within(opened.promise, 5000, 'handler')
  const before = await arrayBuffers()
  // Each write: one 1-byte message, then unsolicited pongs up to 64 KiB, so the message lies in a large read.
  const message = clientFrame(0x2, new Uint8Array([7]))
  const pong = clientFrame(0xa, new Uint8Array(125))
  const pad = Buffer.concat(Array.from({ length: Math.floor((65536 - message.length) / pong.length) }, () => pong))
  const count = 1000
  for (let i = 0; i < count; i++) {
    client.send(Buffer.concat([message, pad]))
    if (i % 50 === 49) await sleep(5)
  }
  await until(() => conn.stats().queuedInBytes >= count * (1 + ITEM_OVERHEAD), 20_000, 'all messages queued')
  const grown = await arrayBuffers() - before
  // Pinned, they held count x 64 KiB = 62.5 MiB; copied out, about a byte each.
  t.true(grown < 8 * 1024 * 1024, `array buffers grew ${grown}`)
  client.destroy()
})

test.serial('defect 2: 1-byte fragments, each in its own 64 KiB read, do not pin those reads', async (t) => {
  const opened = deferred<Connection>()
  const { port } = await startServer(t, { '': async (c) => { opened.resolve(c); await c.closed } }, { heartbeat: false })
  const client = await RawClient.connect(port)
  const conn = await within(opened.promise, 5000, 'handler')
  const before = await arrayBuffers()
  const pong = clientFrame(0xa, new Uint8Array(125))
  const count = 1000
  for (let i = 0; i < count; i++) {
    const fragment = clientFrame(i === 0 ? 0x2 : 0x0, new Uint8Array([i & 0xff]), { fin: false })
    const pad = Buffer.concat(Array.from({ length: Math.floor((65536 - fragment.length) / pong.length) }, () => pong))
    client.send(Buffer.concat([fragment, pad]))
    if (i % 50 === 49) await sleep(5)
  }
  await until(() => conn.stats().heldBytes >= count, 20_000, 'all fragments read')
  const grown = await arrayBuffers() - before
  t.true(grown < 8 * 1024 * 1024, `array buffers grew ${grown}`)
  // The message still completes, every byte in order.
  const done = conn.source[Symbol.asyncIterator]().next()
  client.send(clientFrame(0x0, new Uint8Array(0), { fin: true }))
  const { value } = await within(done, 5000, 'message')
  t.is(value!.length, count)
  t.is(value![999], 999 & 0xff)
  client.destroy()
})

// Defect 3 in virtual time: reading pauses at virtual time 0 (the poll for the pause is real,
// there is no event for it); nothing is read or written after. The heartbeat's first visit, at
// the interval (1000), sees the bytes read since: that is the last sign of life. Stalled (paused,
// nothing taken, nothing written) for interval + timeout after it, the connection is dropped:
// open at 2999, gone at 3000.

test.serial('defect 3: a peer that floods a handler that does not read, then goes silent, is dropped after interval + timeout', async (t) => {
  const clock = new VirtualClock()
  const opened = deferred<Connection>()
  const { port } = await startServer(t, { '': async (c) => { opened.resolve(c); await c.closed } }, { receiveHighWaterMark: 16 * 1024, heartbeat: { interval: 1000, timeout: 1000 }, clock })
  const client = await RawClient.connect(port)
  const conn = await within(opened.promise, 5000, 'handler')
  const closed = watch(conn.closed)
  const frame = clientFrame(0x2, new Uint8Array(4096))
  for (let i = 0; i < 200; i++) client.send(frame)
  await until(() => conn.stats().pauses > 0, 10_000, 'reading pauses')
  await clock.advance(2999)
  t.false(closed(), 'not before interval + timeout after the last sign of life')
  await clock.advance(1)
  await within(client.waitClosed(5000), 6000, 'the server drops the stalled connection')
  const info: CloseInfo = await within(conn.closed, 5000, 'closed settles')
  t.is(info.code, 1006)
  t.false(info.wasClean)
})

test.serial('defect 3: a close frame behind a paused socket does not keep the connection forever', async (t) => {
  const clock = new VirtualClock()
  const opened = deferred<Connection>()
  const { port } = await startServer(t, { '': async (c) => { opened.resolve(c); await c.closed } }, { heartbeat: { interval: 1000, timeout: 1000 }, clock })
  const client = await RawClient.connect(port)
  const conn = await within(opened.promise, 5000, 'handler')
  const closed = watch(conn.closed)
  // 1.1 MiB the handler never reads, then the close.
  const frame = clientFrame(0x2, new Uint8Array(64 * 1024))
  for (let i = 0; i < 18; i++) client.send(frame)
  client.send(clientFrame(0x8, closePayload(1000)))
  await until(() => conn.stats().pauses > 0, 10_000, 'reading pauses')
  await clock.advance(2999)
  t.false(closed(), 'not before interval + timeout after the last sign of life')
  await clock.advance(1)
  const info: CloseInfo = await within(conn.closed, 5000, 'the connection ends')
  t.is(info.code, 1006)
  client.destroy()
})

test.serial('defect 4: a pong answering only the latest ping settles the earlier pings too', async (t) => {
  const opened = deferred<Connection>()
  const { port } = await startServer(t, { '': async (c) => { opened.resolve(c); await c.closed } }, { heartbeat: false })
  const client = await RawClient.connect(port)
  const conn = await within(opened.promise, 5000, 'handler')
  const first = conn.ping(new Uint8Array([1]))
  const second = conn.ping(new Uint8Array([2]))
  const third = conn.ping('three')
  for (let i = 0; i < 3; i++) t.is((await client.nextFrame())!.opcode, 0x9)
  client.send(clientFrame(0xa, new TextEncoder().encode('three')))
  const rtts = await within(Promise.all([first, second, third]), 2000, 'all pings settle')
  t.true(rtts.every((r) => r >= 0))
  // One left unanswered is rejected at close.
  const fourth = conn.ping(new Uint8Array([4]))
  client.destroy()
  await t.throwsAsync(within(fourth, 2000, 'rejected'), { name: 'ConnectionClosedError' })
})

test.serial('defect 5: frames in the same write as the upgrade request are echoed before the close', async (t) => {
  const { port } = await startServer(t, { '': echo }, { heartbeat: false })
  const request = Buffer.from(upgradeRequest())
  const frames = Buffer.concat([clientFrame(0x1, 'hello'), clientFrame(0x8, closePayload(1000))])
  // One write of everything, and the request split at several points with the frames in the second write.
  for (const split of [request.length, 10, 40, request.length - 2]) {
    const net = await import('node:net')
    const socket = net.connect(port, '127.0.0.1')
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
    const whole = Buffer.concat([request, frames])
    socket.write(whole.subarray(0, split))
    socket.write(whole.subarray(split))
    const got = await within(new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = []
      socket.on('data', (c: Buffer) => chunks.push(c))
      socket.on('close', () => resolve(Buffer.concat(chunks)))
    }), 5000, 'the server ends the connection')
    const body = got.subarray(got.indexOf('\r\n\r\n') + 4)
    // A text frame "hello" (0x81 0x05 ...), then the close echoing 1000.
    t.is(body[0], 0x81, `split ${split}`)
    t.is(body.subarray(2, 7).toString(), 'hello')
    t.is(body[7], 0x88)
    t.is(body.readUInt16BE(9), 1000)
  }
})

test.serial('ping() sends a string as UTF-8; bad payloads reject; close() checks its arguments', async (t) => {
  const opened = deferred<Connection>()
  const { port } = await startServer(t, { '': async (c) => { opened.resolve(c); await c.closed } }, { heartbeat: false })
  const client = await RawClient.connect(port)
  const conn = await within(opened.promise, 5000, 'handler')
  void conn.ping('abc').catch(() => {})
  const frame = await client.nextFrame()
  t.is(frame!.opcode, 0x9)
  t.is(frame!.payload.toString(), 'abc')
  await t.throwsAsync(conn.ping(42 as unknown as Uint8Array), { instanceOf: TypeError })
  await t.throwsAsync(conn.ping(new Uint8Array(126)), { instanceOf: RangeError })
  t.throws(() => conn.close('1000' as unknown as number), { instanceOf: TypeError, message: /integer.*'1000'/ })
  t.throws(() => conn.close(1005), { instanceOf: RangeError })
  t.throws(() => conn.close(1000, 'x'.repeat(124)), { instanceOf: RangeError })
  client.destroy()
})

test.serial('memory budget: peers holding partial frames past the budget get 1013; the server holds at most the budget; others carry on', async (t) => {
  const memoryBudget = 8 * 1024 * 1024
  const { port, server } = await startServer(t, { '': echo }, { memoryBudget, heartbeat: false })
  const peers = await Promise.all(Array.from({ length: 6 }, () => RawClient.connect(port)))
  // Each declares a 4 MiB frame and sends 3 MiB of it: 18 MiB wanted, 8 MiB allowed.
  const declared = 4 * 1024 * 1024
  const header = clientFrame(0x2, new Uint8Array(declared)).subarray(0, 14)
  const part = Buffer.alloc(64 * 1024, 1)
  let peak = 0
  for (const peer of peers) {
    peer.send(header)
    for (let i = 0; i < 48; i++) peer.send(part)
  }
  const codes: Array<number | undefined> = []
  for (const peer of peers) void peer.nextClose(15_000).then((c) => codes.push(c?.code), () => {})
  // Those left hold their 3 MiB; the rest were refused.
  await until(() => {
    peak = Math.max(peak, server.stats().heldBytes)
    return codes.filter((c) => c === 1013).length >= 4
  }, 15_000, 'four peers refused with 1013')
  await sleep(300)
  peak = Math.max(peak, server.stats().heldBytes)
  t.true(server.stats().heldBytes <= memoryBudget, `held ${server.stats().heldBytes}`)
  t.true(peak <= memoryBudget + 256 * 1024, `peak ${peak}`)
  // A fresh client still gets its echo.
  const fresh = await RawClient.connect(port)
  fresh.send(clientFrame(0x1, 'still here'))
  const echoed = await fresh.nextFrame()
  t.is(echoed!.payload.toString(), 'still here')
  for (const peer of [...peers, fresh]) peer.destroy()
  await until(() => server.stats().heldBytes === 0, 5000, 'the budget is given back')
  t.pass()
})
