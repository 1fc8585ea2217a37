// The heartbeat rule on its own, and the sweeper's bookkeeping.
import test from 'ava'
import { HeartbeatSweeper, judge } from '../../src/driver/heartbeat.js'

const base = { seen: false, paused: false, moved: false, outputMoved: false, awaiting: false, lastLife: 0 }

test('traffic is life', (t) => {
  t.is(judge({ ...base, seen: true, awaiting: true }, 100_000, 30, 10), 'alive')
})

test('idle and not paused: ping; still no pong at the next visit: drop', (t) => {
  t.is(judge(base, 50, 30, 10), 'ping')
  t.is(judge({ ...base, awaiting: true }, 60, 30, 10), 'drop')
})

test('awaiting a pong while our output, which the ping queued behind, moves: pending; nothing moved, or only the handler took a message: drop', (t) => {
  t.is(judge({ ...base, awaiting: true, moved: true, outputMoved: true }, 60, 30, 10), 'pending')
  t.is(judge({ ...base, awaiting: true, moved: false, outputMoved: false }, 70, 30, 10), 'drop')
  t.is(judge({ ...base, awaiting: true, moved: true, outputMoved: false }, 60, 30, 10), 'drop')
})

test('paused: no ping (no pong could arrive); moved is life; nothing for interval + timeout: drop', (t) => {
  t.is(judge({ ...base, paused: true, moved: true }, 1000, 30, 10), 'alive')
  t.is(judge({ ...base, paused: true, lastLife: 0 }, 39, 30, 10), 'wait')
  t.is(judge({ ...base, paused: true, lastLife: 0 }, 40, 30, 10), 'drop')
  t.is(judge({ ...base, paused: true, awaiting: true, lastLife: 0 }, 39, 30, 10), 'wait')
})

test('the sweeper visits only what is due and stops its timer when empty', (t) => {
  const sweeper = new HeartbeatSweeper(1000)
  const visits: string[] = []
  const due = { heartbeatDue: 0, onHeartbeat: () => { visits.push('due') } }
  const later = { heartbeatDue: Infinity, onHeartbeat: () => { visits.push('later') } }
  sweeper.add(due)
  sweeper.add(later)
  sweeper.sweep()
  t.deepEqual(visits, ['due'])
  sweeper.delete(due)
  sweeper.delete(later)
  t.is(sweeper.size, 0)
  t.false(process.getActiveResourcesInfo().includes('Timeout') && sweeper.size > 0)
})

// The Heartbeat part, in virtual time, with a fake connection.
import { Heartbeat, type HeartbeatOwner } from '../../src/driver/heartbeat.js'
import { VirtualClock } from '../../src/virtual-clock.js'

interface FakeOwner extends HeartbeatOwner {
  gone: boolean
  sent: Array<Uint8Array | undefined>
  dropped: boolean[]
  paused: boolean
  outputWritten: number
  outputQueued: number
}

function owner (clock: VirtualClock): FakeOwner {
  const o: FakeOwner = {
    clock,
    sent: [],
    dropped: [],
    paused: false,
    gone: false,
    taken: 0,
    outputWritten: 0,
    outputQueued: 0,
    get readingPaused () { return o.paused },
    sendPing: (payload) => { o.sent.push(payload) },
    // As the connection does: the transport is destroyed, so the connection is gone.
    drop: (stalled) => { o.dropped.push(stalled); o.gone = true }
  }
  return o
}

/** A heartbeat of 1000 ms + 500 ms over a fake connection, in virtual time. */
function started (): { clock: VirtualClock, o: FakeOwner, hb: Heartbeat } {
  const clock = new VirtualClock()
  const o = owner(clock)
  return { clock, o, hb: new Heartbeat(o, { heartbeatInterval: 1000, heartbeatTimeout: 500 }) }
}

test('Heartbeat: an idle peer is pinged after the interval and dropped when no pong comes within the timeout', async (t) => {
  const clock = new VirtualClock()
  const o = owner(clock)
  const hb = new Heartbeat(o, { heartbeatInterval: 1000, heartbeatTimeout: 500 })
  await clock.advance(999)
  t.is(o.sent.length, 0)
  await clock.advance(200)
  t.is(o.sent.length, 1)
  t.is(hb.pings, 1)
  await clock.advance(600)
  t.deepEqual(o.dropped, [false])
  hb.stop()
})

test('Heartbeat: a pong puts the next ping an interval later; traffic counts as life', async (t) => {
  const clock = new VirtualClock()
  const o = owner(clock)
  const hb = new Heartbeat(o, { heartbeatInterval: 1000, heartbeatTimeout: 500 })
  await clock.advance(1100)
  t.is(o.sent.length, 1)
  hb.onPong(new Uint8Array(0))
  hb.seen = true
  await clock.advance(1000)
  t.is(o.sent.length, 1, 'traffic: no ping')
  await clock.advance(1100)
  t.is(o.sent.length, 2)
  t.deepEqual(o.dropped, [])
  hb.stop()
})

test('Heartbeat: a ping behind our moving output is waited for as long as the output moves, with no second ping; once it stops, dropped a timeout later (pong timeout)', async (t) => {
  const { clock, o, hb } = started()
  // A long feed is queued when the ping goes: the ping waits behind it.
  o.outputQueued = 4 << 20
  await clock.advance(1000)
  t.is(o.sent.length, 1)
  for (let i = 0; i < 6; i++) {
    o.outputWritten += 65536
    await clock.advance(500)
    t.deepEqual(o.dropped, [], `visit ${i}: the output moved`)
  }
  t.is(o.sent.length, 1, 'one ping, still awaited')
  await clock.advance(499)
  t.deepEqual(o.dropped, [])
  await clock.advance(1)
  t.deepEqual(o.dropped, [false])
  hb.stop()
})

test('Heartbeat: output that moves after a ping queued behind nothing is no excuse: dropped at the timeout', async (t) => {
  const { clock, o, hb } = started()
  await clock.advance(1000)
  t.is(o.sent.length, 1)
  // Written after the ping (a reply, a message the handler sent): into the kernel's buffers, whatever the peer does.
  o.outputWritten += 300
  await clock.advance(500)
  t.deepEqual(o.dropped, [false])
  hb.stop()
})

test('Heartbeat: a ping behind output that then drained: once a visit finds nothing of ours queued, writes the kernel takes are no excuse: a peer that stopped reading, fed a trickle, is dropped a timeout later', async (t) => {
  const { clock, o, hb } = started()
  o.outputQueued = 65536
  await clock.advance(1000)
  t.is(o.sent.length, 1)
  // What was ahead of the ping left, the ping with it.
  o.outputQueued = 0
  o.outputWritten += 65536
  await clock.advance(500)
  t.deepEqual(o.dropped, [], 'the output it waited behind moved')
  // Then the peer stops reading; a ticker's small messages still go into the kernel's buffers.
  for (let i = 0; i < 12 && o.dropped.length === 0; i++) {
    o.outputWritten += 100
    await clock.advance(125)
  }
  t.deepEqual(o.dropped, [false])
  t.is(clock.now(), 2000)
  hb.stop()
})

test('Heartbeat: the ping\'s own bytes going out are not life: an idle peer that does not answer is dropped at the timeout', async (t) => {
  const { clock, o, hb } = started()
  // As a socket with nothing queued: the ping is written at once.
  o.sendPing = (payload) => { o.sent.push(payload); o.outputWritten += 2 }
  await clock.advance(1000)
  t.is(o.sent.length, 1)
  await clock.advance(500)
  t.deepEqual(o.dropped, [false])
  hb.stop()
})

test('Heartbeat: a pong that comes after pending visits puts the next ping an interval later', async (t) => {
  const { clock, o, hb } = started()
  o.outputQueued = 1 << 20
  await clock.advance(1000)
  o.outputWritten += 1000
  await clock.advance(500)
  hb.onPong(new Uint8Array(0))
  await clock.advance(999)
  t.is(o.sent.length, 1)
  await clock.advance(1)
  t.is(o.sent.length, 2)
  t.deepEqual(o.dropped, [])
  hb.stop()
})

test('Heartbeat: paused with nothing moving, no ping is sent and the peer is dropped after interval + timeout (stalled)', async (t) => {
  const clock = new VirtualClock()
  const o = owner(clock)
  o.paused = true
  const hb = new Heartbeat(o, { heartbeatInterval: 1000, heartbeatTimeout: 500 })
  await clock.advance(1400)
  t.deepEqual(o.dropped, [])
  await clock.advance(200)
  t.deepEqual(o.dropped, [true])
  t.is(o.sent.length, 0)
  hb.stop()
})

test('Heartbeat: paused, writes that find nothing of ours queued (the kernel takes them, read or not) are no life: a hung peer fed a trickle is dropped after interval + timeout (stalled)', async (t) => {
  const clock = new VirtualClock()
  const o = owner(clock)
  o.paused = true
  const hb = new Heartbeat(o, { heartbeatInterval: 1000, heartbeatTimeout: 500 })
  for (let i = 0; i < 24 && o.dropped.length === 0; i++) {
    o.outputWritten += 100
    await clock.advance(125)
  }
  t.deepEqual(o.dropped, [true])
  t.is(clock.now(), 1500)
  t.is(o.sent.length, 0)
  hb.stop()
})

test('Heartbeat: a user ping resolves with its round-trip time in clock time; a later pong settles earlier pings; the rest reject at close', async (t) => {
  const clock = new VirtualClock()
  const o = owner(clock)
  const hb = new Heartbeat(o, { heartbeatInterval: 0, heartbeatTimeout: 0 })
  const first = hb.ping(new Uint8Array([1]))
  await clock.advance(10)
  const second = hb.ping(new Uint8Array([2]))
  await clock.advance(15)
  hb.onPong(new Uint8Array([2]))
  t.deepEqual(await Promise.all([first, second]), [25, 15])
  const third = hb.ping(new Uint8Array([3]))
  hb.rejectPings(() => new Error('closed'))
  await t.throwsAsync(third, { message: 'closed' })
  t.is(clock.pending, 0, 'no heartbeat timer when the interval is 0')
})
