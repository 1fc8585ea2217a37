// VirtualClock: what advance() promises, and a connection's timers run in virtual time.
import test from 'ava'
import { connectInMemory, VirtualClock } from '../../src/testing.js'

test('advance fires due timers in order of due time, ties in the order set, with now() at each due time', async (t) => {
  const clock = new VirtualClock()
  const fired: Array<[string, number]> = []
  const note = (name: string): void => { fired.push([name, clock.now()]) }
  clock.setTimeout(note, 30, 'c')
  clock.setTimeout(note, 10, 'a')
  clock.setTimeout(note, 10, 'b')
  const late = clock.setTimeout(note, 50, 'late')
  await clock.advance(40)
  t.deepEqual(fired, [['a', 10], ['b', 10], ['c', 30]])
  t.is(clock.now(), 40)
  clock.clearTimeout(late)
  await clock.advance(100)
  t.is(fired.length, 3)
  t.is(clock.pending, 0)
})

test('a timer set by a callback and due within the advance fires in it; promises settle between timers', async (t) => {
  const clock = new VirtualClock()
  const seen: string[] = []
  clock.setTimeout(() => {
    seen.push('first')
    void Promise.resolve().then(() => seen.push('its promise'))
    setImmediate(() => seen.push('its immediate'))
    clock.setTimeout((x: string) => { seen.push(x) }, 5, 'second')
  }, 5, undefined)
  await clock.advance(10)
  t.deepEqual(seen, ['first', 'its promise', 'its immediate', 'second'])
})

test('an interval repeats until cleared', async (t) => {
  const clock = new VirtualClock()
  let n = 0
  const timer = clock.setInterval(() => { n++ }, 10, undefined)
  await clock.advance(35)
  t.is(n, 3)
  clock.clearInterval(timer)
  await clock.advance(100)
  t.is(n, 3)
})

test('in memory, the heartbeat pings in virtual time: one ping per interval while the peer answers', async (t) => {
  const clock = new VirtualClock()
  const client = await connectInMemory(async ({ source }) => {
    for await (const _ of source) { /* drain */ }
  }, { heartbeat: { interval: 1000, timeout: 5000 }, clock })
  await clock.advance(3100)
  t.is(client.server.stats().heartbeatPings, 3)
  client.close()
  await clock.advance(0)
  t.deepEqual(await client.closed, { code: 1000, reason: '', wasClean: true })
})

test('in memory, closeTimeout runs in virtual time: a close the server never reads ends at the timeout, not clean', async (t) => {
  const clock = new VirtualClock()
  const client = await connectInMemory(async ({ closed }) => { await closed }, { closeTimeout: 60_000, clock })
  // The server stops reading: our close frame never reaches its session.
  ;(client.server as unknown as { transport: { pause: () => void } }).transport.pause()
  client.close(4000)
  await clock.advance(59_000)
  let settled = false
  void client.closed.then(() => { settled = true })
  await clock.settle()
  t.false(settled, 'not before closeTimeout')
  await clock.advance(1000)
  t.deepEqual(await client.closed, { code: 4000, reason: '', wasClean: false })
})
