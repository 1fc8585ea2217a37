/**
 * zlib work is budgeted (issue 19, item 2): a connection over its own budget, or a server over
 * its budget shared by all connections, is paused (backpressure), not closed, and every message
 * still arrives; a broadcast to deflate subscribers that negotiated alike is compressed once; an
 * honest 16 MiB compressible message goes through the demo's defaults, its zlib work done off
 * the event loop. Bounded polls; nothing asserts on time.
 */

import test from 'ava'
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { constants, deflateRawSync } from 'node:zlib'
import { connect, isText, type Connection, type PerMessageDeflateOptions, type WebSocketServer, type ZlibBudgetWaitMessage } from '../../src/index.js'
import { deflateCounters } from '../../src/extensions/permessage-deflate.js'
import { offLoopJobs } from '../../src/extensions/zlib-work.js'
import { VirtualClock } from '../../src/testing.js'
import { startDemo } from '../../examples/echo-server.js'
import { advanceUntil, clientFrame, deferred, RawClient, startServer, until, watch, within } from './helpers.js'

const MiB = 1024 * 1024
const DEFLATE = { 'Sec-WebSocket-Extensions': 'permessage-deflate' }

/** Raw deflate with the §7.2.1 tail dropped. */
function deflated (data: Uint8Array): Buffer {
  const out = deflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH })
  return out.subarray(0, out.length - 4)
}

/** A client frame carrying `n` bytes of one letter compressed (about n / 1000 bytes on the wire). */
function bomb (n: number, letter = 0x61): Buffer {
  const f = clientFrame(2, deflated(Buffer.alloc(n, letter)))
  f[0] |= 0x40
  return f
}

/** A handler that reads `count` messages, checks each is `size` bytes, and reports them; then waits for the close. */
function counting (count: number, size: number, done: (n: number, conn: Connection) => void): (conn: Connection) => Promise<void> {
  return async (conn) => {
    let n = 0
    for await (const m of conn.source) {
      if (m.length !== size) throw new Error(`message ${n}: ${m.length} bytes`)
      if (++n === count) break
    }
    done(n, conn)
    await conn.closed
  }
}

/** Compressible JSON text of about `n` bytes. */
function json (n: number): string {
  let s = ''
  for (let i = 0; s.length < n; i++) s += JSON.stringify({ id: i, user: `user${(i * 7) % 13}`, text: `message ${(i * 31) % 997} about the release`, ok: i % 3 === 0 }) + '\n'
  return s.slice(0, n)
}

/** Close `server`, moving `clock` past the close timeouts of connections that no longer read. */
async function closeOn (clock: VirtualClock, server: WebSocketServer): Promise<void> {
  const closing = server.close()
  await clock.advance(10_000)
  await within(closing, 10_000, 'server.close')
}

test('a connection over its own zlib budget is paused, not closed: every message arrives (the budget\'s waits in virtual time)', async (t) => {
  const options: PerMessageDeflateOptions = { connectionBudget: 2 * MiB, serverBudget: Infinity }
  const clock = new VirtualClock()
  let result: { n: number, conn: Connection } | undefined
  const { server, port } = await startServer(t, { '': counting(6, MiB, (n, conn) => { result = { n, conn } }) }, { perMessageDeflate: options, heartbeat: false, clock })
  const raw = await RawClient.connect(port, { headers: DEFLATE })
  // 6 MiB of work for ~6 KiB on the wire: three seconds of this connection's budget.
  raw.send(Buffer.concat(Array.from({ length: 6 }, () => bomb(MiB))))
  await advanceUntil(clock, () => result !== undefined, 'all six messages')
  const { n, conn } = result!
  t.is(n, 6)
  t.true(conn.stats().compressionWaits > 0, 'reading waited for the budget')
  t.true(clock.now() >= 1000, `the budget's waits took virtual time (${clock.now()} ms)`)
  t.false(raw.ended, 'the connection is still open')
  raw.destroy()
  await closeOn(clock, server)
})

test('the server\'s zlib budget is shared by its connections: one that spent it makes the next wait, and both carry on', async (t) => {
  const options: PerMessageDeflateOptions = { connectionBudget: Infinity, serverBudget: 2 * MiB }
  const clock = new VirtualClock()
  let resultA: { n: number, conn: Connection } | undefined
  let resultB: { n: number, conn: Connection } | undefined
  const { server, port } = await startServer(t, {
    a: counting(6, MiB, (n, conn) => { resultA = { n, conn } }),
    b: counting(1, MiB, (n, conn) => { resultB = { n, conn } })
  }, { perMessageDeflate: options, heartbeat: false, clock })
  const a = await RawClient.connect(port, { protocol: 'a', headers: DEFLATE })
  const b = await RawClient.connect(port, { protocol: 'b', headers: DEFLATE })
  // Each connection alone has no limit; a's 6 MiB are over the server's 2 MiB a second (and a
  // second's worth at once), so its last messages wait, and so does b's after them.
  a.send(Buffer.concat(Array.from({ length: 6 }, () => bomb(MiB))))
  await advanceUntil(clock, () => resultA !== undefined, 'a\'s messages')
  b.send(bomb(MiB, 0x62))
  await advanceUntil(clock, () => resultB !== undefined, 'b\'s message')
  t.is(resultA!.n, 6)
  t.is(resultB!.n, 1)
  t.true(resultA!.conn.stats().compressionWaits > 0, 'a waited for the server\'s budget it spent')
  t.true(resultB!.conn.stats().compressionWaits > 0, 'b waited for the server\'s budget a spent')
  t.false(a.ended || b.ended, 'neither was closed')
  a.destroy()
  b.destroy()
  await closeOn(clock, server)
})

// Serial: the off-loop job count is the process's.
test.serial('on the server\'s clock, a message over the connection\'s zlib budget is inflated when the wait the budget gave ends, not 1 ms before', async (t) => {
  const clock = new VirtualClock()
  const conn = deferred<Connection>()
  const first = deferred<Uint8Array>()
  const { server, port } = await startServer(t, {
    '': async (c) => {
      conn.resolve(c)
      const { value } = await c.source.next()
      first.resolve(value as Uint8Array)
      await c.closed
    }
  }, { clock, heartbeat: false, closeTimeout: 1000, perMessageDeflate: { connectionBudget: 256 * 1024, serverBudget: Infinity } })
  const waits: Array<{ wait: number, at: number }> = []
  const gotWait = deferred<undefined>()
  const delivered = watch(first.promise)
  const record = (m: unknown): void => {
    waits.push({ wait: (m as ZlibBudgetWaitMessage).wait, at: clock.now() })
    gotWait.resolve(undefined)
  }
  subscribe('wspipe:zlib_budget:wait', record)
  t.teardown(() => { unsubscribe('wspipe:zlib_budget:wait', record) })
  const raw = await RawClient.connect(port, { headers: DEFLATE })
  await within(conn.promise, 5000, 'the handler')
  // 1 MiB of work for ~1 KiB, against 256 KiB a second: let in on what the budget holds, it
  // stops there and waits, in virtual time, for the budget to be out of debt.
  raw.send(bomb(MiB))
  await within(gotWait.promise, 10_000, 'a budget wait')
  await until(() => offLoopJobs() === 0, 10_000, 'the first, stopped inflate to end')
  t.is(waits.length, 1)
  const { wait, at } = waits[0]
  t.true(wait > 1, `a wait of ${wait} ms`)
  await clock.advance(at + wait - 1 - clock.now())
  t.is(offLoopJobs(), 0, 'not let in 1 ms before the wait ends')
  t.is(waits.length, 1)
  t.false(delivered(), 'nor delivered')
  await clock.advance(1)
  const message = await within(first.promise, 10_000, 'the message, let in at the end of the wait')
  t.is(message.length, MiB)
  // The connection's zlib budget is in debt now (the message's whole cost): reading waits again.
  raw.destroy()
  const closing = server.close()
  await clock.advance(10_000)
  await within(closing, 10_000, 'server.close')
})

// Serial: the zlib counters are the process's.
test.serial('a broadcast to deflate subscribers that negotiated alike is compressed once (at once when small, off the loop when large)', async (t) => {
  const { url, server } = await startServer(t, {
    room: async (conn) => {
      await conn.sink(server.topics.subscribe('room', conn))
    }
  }, { perMessageDeflate: true, heartbeat: false })
  const members = await Promise.all(Array.from({ length: 5 }, () => connect(url, { protocols: ['room'], perMessageDeflate: true, heartbeat: false })))
  // A member whose window is smaller negotiated otherwise: it gets its own compression.
  const small = await connect(url, { protocols: ['room'], perMessageDeflate: { serverMaxWindowBits: 9 }, heartbeat: false })
  t.teardown(() => { for (const m of [...members, small]) m.close() })
  // No event for a subscription: a bounded poll (it was unbounded).
  await until(() => server.topics.count('room') === 6, 10_000, 'six subscribers')
  for (const size of [8 * 1024, 512 * 1024]) {
    const message = json(size)
    const deflatedBefore = deflateCounters.deflated
    const hitsBefore = deflateCounters.sharedHits
    server.topics.publish('room', message)
    for (const m of [...members, small]) {
      const { value } = await within(m.source.next(), 10_000, 'the broadcast')
      t.true(isText(value!) && Buffer.from(value!).toString() === message, `${size} B intact`)
    }
    // One for the five alike, one for the member with the smaller window.
    t.is(deflateCounters.deflated - deflatedBefore, 2, `${size} B: compressions`)
    t.is(deflateCounters.sharedHits - hitsBefore, 4, `${size} B: shared`)
  }
})

test.serial('an honest 16 MiB compressible message goes through the demo\'s defaults both ways, its zlib work off the event loop', async (t) => {
  t.timeout(120_000)
  const demo = await startDemo(0)
  t.teardown(() => demo.close())
  const conn = await connect(demo.wsUrl, { perMessageDeflate: true, heartbeat: false })
  let offLoop = 0
  const watch = setInterval(() => { offLoop = Math.max(offLoop, deflateCounters.inFlight) }, 1)
  t.teardown(() => clearInterval(watch))
  // Just under the default maxMessageSize (16 MiB): JSON, and a run of one letter (charged in full).
  const text = json(16 * MiB - 64)
  const letters = Buffer.alloc(16 * MiB - 64, 0x61)
  for (const message of [text, letters]) {
    await conn.send(message)
    const { value } = await within(conn.source.next(), 60_000, 'the echo')
    t.true(Buffer.from(value!).equals(Buffer.from(message)), `${typeof message === 'string' ? 'JSON' : 'one letter'} echoed intact`)
  }
  t.true(offLoop > 0, 'zlib ran on the thread pool while JavaScript ran')
  conn.close()
  t.is((await conn.closed).code, 1000)
})
