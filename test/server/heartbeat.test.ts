/**
 * Heartbeats: a peer that stops answering pings is dropped after the pong timeout; a live peer
 * (the `ws` client answers pings by itself) stays open. Real sockets and real peers, the
 * server's timers on a VirtualClock: each rule is checked at its exact time (nothing 1 ms
 * before, done at it). With an interval and a timeout of whole multiples of the sweeper's tick
 * (a quarter of the shorter one), a visit falls exactly on each due time.
 */

import test, { type ExecutionContext } from 'ava'
import type { Connection } from '../../src/index.js'
import { VirtualClock } from '../../src/testing.js'
import { clientFrame, closePayload, deferred, echo, nextRead, RawClient, startServer, timeoutsUntilDropped, watch, within, WsPeer } from './helpers.js'

test('a peer that never answers pings is pinged at the interval and closed at interval + pong timeout (1006, not clean)', async (t) => {
  const clock = new VirtualClock()
  const opened = deferred<Connection>()
  const { port, entries } = await startServer(t, { '': async (c) => { opened.resolve(c); await echo(c) } }, { heartbeat: { interval: 1000, timeout: 1000 }, clock })
  const client = await RawClient.connect(port)
  const conn = await within(opened.promise, 5000, 'handler')
  const closed = watch(conn.closed)
  await clock.advance(999)
  t.is(conn.stats().heartbeatPings, 0, 'no ping before the interval')
  await clock.advance(1)
  t.is(conn.stats().heartbeatPings, 1, 'a ping at the interval')
  // The raw client reads (so it sees the ping) but never answers.
  t.is((await client.nextFrame(5000))?.opcode, 9)
  await clock.advance(999)
  t.false(closed(), 'not closed before the pong timeout')
  t.false(client.ended)
  await clock.advance(1)
  await client.waitClosed(5000)
  t.deepEqual(await within(conn.closed, 5000, 'closed'), { code: 1006, reason: '', wasClean: false })
  t.is(conn.stats().heartbeatPings, 1)
  t.true(entries.some((e) => /pong/.test(e.msg ?? '')), 'the drop is logged')
})

test('a peer that answers pings stays open through many intervals: one ping per interval', async (t) => {
  const clock = new VirtualClock()
  const opened = deferred<Connection>()
  const { url } = await startServer(t, { '': async (c) => { opened.resolve(c); await echo(c) } }, { heartbeat: { interval: 1000, timeout: 2000 }, clock })
  const peer = await WsPeer.open(url)
  const conn = await within(opened.promise, 5000, 'handler')
  let pings = 0
  peer.ws.on('ping', () => { pings++ })
  for (let i = 1; i <= 5; i++) {
    await clock.advance(999)
    t.is(conn.stats().heartbeatPings, i - 1, `no ping ${i} before its interval`)
    // ws answers each ping as it reads it: the pong has reached the server before time moves on.
    const pong = nextRead(conn)
    await clock.advance(1)
    t.is(conn.stats().heartbeatPings, i, `ping ${i} at its interval`)
    await pong
  }
  t.is(pings, 5)
  t.is(peer.ws.readyState, peer.ws.OPEN)
  await peer.send('alive')
  t.is((await peer.next()).data.toString(), 'alive')
  await peer.close(1000)
  t.deepEqual(await within(conn.closed, 5000, 'closed'), { code: 1000, reason: '', wasClean: true })
})

test('a raw client that answers pings by hand stays open; once it stops, it is dropped at the pong timeout', async (t) => {
  const clock = new VirtualClock()
  const opened = deferred<Connection>()
  const { port } = await startServer(t, { '': async (c) => { opened.resolve(c); await echo(c) } }, { heartbeat: { interval: 1000, timeout: 2000 }, clock })
  const client = await RawClient.connect(port)
  const conn = await within(opened.promise, 5000, 'handler')
  const closed = watch(conn.closed)
  for (let i = 0; i < 3; i++) {
    await clock.advance(1000)
    const f = await client.nextFrame(5000)
    t.is(f?.opcode, 9)
    const pong = nextRead(conn)
    client.send(clientFrame(10, f!.payload))
    await pong
  }
  // A fourth ping, left unanswered: the connection lives until the pong timeout, not 1 ms longer.
  await clock.advance(1000)
  t.is((await client.nextFrame(5000))?.opcode, 9)
  t.is(conn.stats().heartbeatPings, 4)
  await clock.advance(1999)
  t.false(closed(), 'open until the pong timeout')
  await clock.advance(1)
  await client.waitClosed(5000)
  t.like(await within(conn.closed, 5000, 'closed'), { code: 1006, wasClean: false })
})

test('traffic counts as life: a chatty peer is never pinged, and not dropped, though it never pongs', async (t) => {
  const clock = new VirtualClock()
  const opened = deferred<Connection>()
  const { port } = await startServer(t, { '': async (c) => { opened.resolve(c); await echo(c) } }, { heartbeat: { interval: 1000, timeout: 1000 }, clock })
  const client = await RawClient.connect(port)
  const conn = await within(opened.promise, 5000, 'handler')
  const closed = watch(conn.closed)
  // A message every 250 ms for 6 s (six times interval + timeout), never answering pings; the
  // echo shows the server has read it before time moves on.
  for (let i = 0; i < 24; i++) {
    client.send(clientFrame(1, `m${i}`))
    const echoed = await client.nextFrame(5000)
    t.is(echoed?.payload.toString(), `m${i}`)
    await clock.advance(250)
  }
  t.is(conn.stats().heartbeatPings, 0, 'traffic in every interval: no ping')
  t.false(closed())
  client.send(clientFrame(8, closePayload(1000)))
  t.is((await client.nextClose())?.code, 1000)
})

/**
 * A slow link: the server's `feed` fills its output while the raw client reads nothing; the
 * server pings (behind at least 1 MiB of it); then, each heartbeat timeout, the client reads
 * `step` bytes and answers the ping once it has read that far. Ends with a clean close.
 */
async function slowReader (t: ExecutionContext, step: number, feed: (c: Connection) => Promise<void>): Promise<void> {
  const clock = new VirtualClock()
  const opened = deferred<Connection>()
  const { port } = await startServer(t, {
    '': async (c) => {
      opened.resolve(c)
      await feed(c)
      for await (const m of c.source) void m
    }
  }, { heartbeat: { interval: 1000, timeout: 1000 }, clock })
  const client = await RawClient.connect(port)
  // Should an assertion fail midway, the connection still ends (the server's close would wait on the virtual clock).
  t.teardown(() => { client.socket.destroy() })
  client.socket.pause()
  const conn = await within(opened.promise, 5000, 'handler')
  const closed = watch(conn.closed)
  // The kernel's buffers take a few MiB first; on a loaded machine that can take seconds.
  for (let i = 0; i < 1000 && conn.stats().queuedOutBytes < 1024 * 1024; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.true(conn.stats().queuedOutBytes >= 1024 * 1024, 'the output is full')
  await clock.advance(1000)
  t.is(conn.stats().heartbeatPings, 1, 'pinged: the ping waits behind at least 1 MiB')
  let visitsBeforePong = -1
  for (let visit = 0; visit < 30 && visitsBeforePong < 0 && !closed(); visit++) {
    const goal = client.received + step
    client.socket.resume()
    for (let i = 0; i < 500 && client.received < goal && !client.ended; i++) await new Promise((resolve) => setTimeout(resolve, 2))
    client.socket.pause()
    for (const f of client.takeFrames()) {
      if (f.opcode === 9 && visitsBeforePong < 0) {
        client.send(clientFrame(10, f.payload))
        visitsBeforePong = visit
      }
    }
    // The server has seen its writes complete before time moves on (once answered, it stays put:
    // an interval later comes the next ping).
    await new Promise((resolve) => setTimeout(resolve, 30))
    if (visitsBeforePong < 0) await clock.advance(1000)
  }
  t.false(closed(), 'not dropped')
  t.true(visitsBeforePong >= 1, `the pong came ${visitsBeforePong} timeouts after the ping: the server looked while it was still on its way`)
  t.is(conn.stats().heartbeatPings, 1, 'one ping, waited for')
  // The rest at full speed, then a clean close.
  client.socket.resume()
  client.send(clientFrame(8, closePayload(1000)))
  t.is((await client.nextClose(20_000))?.code, 1000)
  t.deepEqual(await within(conn.closed, 5000, 'closed'), { code: 1000, reason: '', wasClean: true })
}

test('a slow reader of a long feed is not dropped while its ping waits behind our output: our bytes moving are life', async (t) => {
  t.timeout(60_000)
  // 64 messages of 256 KiB: far more than the kernel's buffers and our 1 MiB queue hold. Node
  // writes what queued while a write was under way as one, so the output is seen to move about
  // once per 1 MiB: 1 MiB a timeout.
  await slowReader(t, 1024 * 1024, async (c) => { for (let i = 0; i < 64; i++) await c.send(new Uint8Array(256 * 1024).fill(i)) })
})

test('a slow reader of one 16 MiB message is not dropped while its ping waits behind it: the message goes to the socket a slice at a time, so its progress shows', async (t) => {
  t.timeout(60_000)
  // 3 MiB a timeout: once the last slice is written, what the kernel's buffers hold ahead of the
  // ping (a few MiB over loopback) must reach the peer within one timeout.
  await slowReader(t, 3 * 1024 * 1024, async (c) => { await c.send(new Uint8Array(16 * 1024 * 1024).fill(7)) })
})

for (const peer of ['stops reading', 'reads but never answers pings'] as const) {
  test(`a peer that ${peer}, fed a trickle the kernel's buffers still take, is dropped at the pong timeout: bytes the kernel takes are no sign of the peer`, async (t) => {
    const clock = new VirtualClock()
    const opened = deferred<Connection>()
    const { port } = await startServer(t, { '': async (c) => { opened.resolve(c); for await (const m of c.source) void m } }, { heartbeat: { interval: 1000, timeout: 1000 }, clock })
    const client = await RawClient.connect(port)
    t.teardown(() => { client.socket.destroy() })
    // A hung peer: its kernel still acknowledges what we send, until its buffers fill.
    if (peer === 'stops reading') client.socket.pause()
    const conn = await within(opened.promise, 5000, 'handler')
    // A ticker: 100 bytes per timeout, far less than the kernel's buffers hold.
    t.is(await timeoutsUntilDropped(t, clock, conn), 1, 'dropped at the first visit after the ping, the pong timeout')
    t.deepEqual(await within(conn.closed, 5000, 'closed'), { code: 1006, reason: '', wasClean: false })
    t.is(conn.stats().heartbeatPings, 1)
  })
}

test('a handler that does not read and a peer that stopped reading, while the handler sends a trickle the kernel takes: dropped as stalled at interval + timeout', async (t) => {
  const clock = new VirtualClock()
  const opened = deferred<Connection>()
  // The handler never reads: reading pauses once the peer's messages pass the receive mark.
  const { port } = await startServer(t, { '': async (c) => { opened.resolve(c); await c.closed } }, { heartbeat: { interval: 1000, timeout: 1000 }, receiveHighWaterMark: 32 * 1024, clock })
  const client = await RawClient.connect(port)
  t.teardown(() => { client.socket.destroy() })
  client.socket.pause()
  const conn = await within(opened.promise, 5000, 'handler')
  const closed = watch(conn.closed)
  for (let i = 0; i < 8; i++) client.send(clientFrame(2, new Uint8Array(16 * 1024)))
  for (let i = 0; i < 200 && conn.stats().queuedInBytes < 32 * 1024; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  // Bytes arrived before the first visit (life at 1000); from there nothing is read, and nothing taken.
  let at = 0
  for (let step = 0; step < 20 && !closed(); step++) {
    await conn.send(new Uint8Array(100)).catch(() => {})
    for (let i = 0; i < 50 && conn.stats().queuedOutBytes > 0; i++) await new Promise((resolve) => setTimeout(resolve, 2))
    await clock.advance(500)
    await new Promise((resolve) => setTimeout(resolve, 10))
    at = clock.now()
  }
  t.true(closed(), 'dropped')
  t.is(at, 3000, 'at the last life (the visit at 1000) + interval + timeout')
  t.is(conn.stats().heartbeatPings, 0, 'no ping while reading is paused')
  t.is((await within(conn.closed, 5000, 'closed')).code, 1006)
})

test('heartbeat: false never pings, and sets no timer at all', async (t) => {
  const clock = new VirtualClock()
  const opened = deferred<Connection>()
  const { url } = await startServer(t, { '': async (c) => { opened.resolve(c); await echo(c) } }, { heartbeat: false, clock })
  const peer = await WsPeer.open(url)
  const conn = await within(opened.promise, 5000, 'handler')
  let pings = 0
  peer.ws.on('ping', () => { pings++ })
  t.is(clock.pending, 0, 'no timer once the connection is open')
  // An hour of virtual time.
  await clock.advance(3_600_000)
  t.is(conn.stats().heartbeatPings, 0)
  await peer.send('still here')
  t.is((await peer.next()).data.toString(), 'still here')
  t.is(pings, 0)
  await peer.close(1000)
})
