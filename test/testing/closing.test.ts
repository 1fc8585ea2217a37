// Closing paths seen through the in-memory client: the real framing and closing code, no sockets.
import test from 'ava'
import { connectInMemory, take, text, VirtualClock } from '../../src/testing.js'
import { ITEM_OVERHEAD } from '../../src/protocol/gather.js'
import { within } from '../server/helpers.js'

test('a client that closes without reading still completes a clean closing handshake', async (t) => {
  // The handler floods; the client reads 3 messages, closes, and never reads again. Reading
  // must go on (dropping messages past the high-water mark) until the server's close arrives.
  const client = await connectInMemory(async ({ sink, signal }) => {
    await sink((async function * () {
      for (let i = 0; i < 100_000 && !signal.aborted; i++) yield `message ${i}`
    })())
  }, { receiveHighWaterMark: 4096, closeTimeout: 20_000 })
  t.deepEqual(text(await take(client.source, 3)), ['message 0', 'message 1', 'message 2'])
  client.close(4000, 'enough')
  const closed = await client.closed
  t.deepEqual(closed, { code: 4000, reason: 'enough', wasClean: true })
  // One read (at most 64 KiB) can land after the pause: frames of 2 + 9 bytes at the smallest,
  // each message counted as its bytes plus the per-item overhead.
  t.true(client.stats().peakQueuedInBytes <= 4096 + Math.ceil(64 * 1024 / 11) * (9 + ITEM_OVERHEAD), `peak ${client.stats().peakQueuedInBytes}`)
})

test('the peer\'s close is answered at once, even while the handler is not reading', async (t) => {
  let serverSawClose = false
  const clock = new VirtualClock()
  const client = await connectInMemory(async ({ closed }) => {
    // A handler that never reads its source: the close must not wait for it.
    const info = await closed
    serverSawClose = info.code === 4001
  }, { closeTimeout: 20_000, clock })
  await client.sink(['one', 'two'])
  client.close(4001)
  // Virtual time does not move: were the answer waiting for the handler to read (or for any
  // timer), it would never come. It comes, clean, at time 0.
  const closed = await within(client.closed, 10_000, 'the close is answered')
  t.deepEqual(closed, { code: 4001, reason: '', wasClean: true })
  t.is(clock.now(), 0)
  t.true(serverSawClose)
})

test('heartbeat: after a pong, the next ping follows `interval` later, not `timeout` + `interval`', async (t) => {
  const clock = new VirtualClock()
  const client = await connectInMemory(async ({ source }) => {
    for await (const _ of source) { /* drain */ }
  }, { heartbeat: { interval: 100, timeout: 5000 }, clock })
  // The client end answers each ping at once (in memory, within the advance). With the bug, the
  // second ping would only come after the 5 s pong timeout. In virtual time: exactly at 100,
  // 200 and 300 ms, none 1 ms before.
  for (let i = 1; i <= 3; i++) {
    await clock.advance(99)
    t.is(client.server.stats().heartbeatPings, i - 1, `no ping ${i} before ${i * 100} ms`)
    await clock.advance(1)
    t.is(client.server.stats().heartbeatPings, i, `ping ${i} at ${i * 100} ms`)
  }
  client.close()
  await clock.advance(0)
  t.deepEqual(await within(client.closed, 5000, 'closed'), { code: 1000, reason: '', wasClean: true })
})
