// Closing paths seen through the in-memory client: the real framing and closing code, no sockets.
import test from 'ava'
import { connectInMemory, take, text } from '../../src/testing.js'
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
  const client = await connectInMemory(async ({ closed }) => {
    // A handler that never reads its source: the close must not wait for it.
    const info = await closed
    serverSawClose = info.code === 4001
  }, { closeTimeout: 20_000 })
  await client.sink(['one', 'two'])
  client.close(4001)
  // Were the answer waiting for the handler to read, it would come only at closeTimeout (20 s),
  // not clean: a clean close well within that bound shows it came at once.
  const closed = await within(client.closed, 10_000, 'the close is answered')
  t.deepEqual(closed, { code: 4001, reason: '', wasClean: true })
  t.true(serverSawClose)
})

test('heartbeat: after a pong, the next ping follows `interval` later, not `timeout` + `interval`', async (t) => {
  const client = await connectInMemory(async ({ source }) => {
    for await (const _ of source) { /* drain */ }
  }, { heartbeat: { interval: 100, timeout: 5000 } })
  // The client end answers each ping at once. With the bug, the second ping would only come
  // after the 5 s pong timeout; bounded polling, no timing precision asserted.
  for (let i = 0; i < 60 && client.server.stats().heartbeatPings < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const pings = client.server.stats().heartbeatPings
  client.close()
  await client.closed
  t.true(pings >= 3, `heartbeat pings sent within 3 s: ${pings}`)
})
