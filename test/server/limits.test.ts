/**
 * Each message limit at its value (passes) and one past it (1009), with the `ws` client.
 */

import test, { type ExecutionContext } from 'ava'
import type { Connection, WebSocketServerOptions } from '../../src/index.js'
import { clientFrame, echo, RawClient, startServer, within, WsPeer } from './helpers.js'

async function recordClosed (t: ExecutionContext, options: WebSocketServerOptions): Promise<{ url: string, port: number, conns: Connection[] }> {
  const conns: Connection[] = []
  const { url, port } = await startServer(t, { '': async (c) => { conns.push(c); await echo(c) } }, options)
  return { url, port, conns }
}

test('maxMessageSize: a message at the limit is echoed, one byte past it → 1009', async (t) => {
  const { url, conns } = await recordClosed(t, { maxMessageSize: 1000 })
  const peer = await WsPeer.open(url)
  await peer.send(Buffer.alloc(1000, 1))
  t.is((await peer.next()).data.length, 1000)
  await peer.send(Buffer.alloc(1001, 1))
  t.is((await within(peer.closed, 5000, 'close')).code, 1009)
  t.is((await conns[0].closed).code, 1009)
})

test('maxMessageSize counts the reassembled message: fragments of 600 + 401 → 1009', async (t) => {
  const { url } = await recordClosed(t, { maxMessageSize: 1000 })
  const ok = await WsPeer.open(url)
  await ok.send(Buffer.alloc(600, 1), { fin: false })
  await ok.send(Buffer.alloc(400, 2), { fin: true })
  t.is((await ok.next()).data.length, 1000)
  await ok.close(1000)

  const peer = await WsPeer.open(url)
  await peer.send(Buffer.alloc(600, 1), { fin: false })
  await peer.send(Buffer.alloc(401, 2), { fin: true })
  t.is((await within(peer.closed, 5000, 'close')).code, 1009)
})

test('maxMessageSize on text: one past → 1009 (not 1007)', async (t) => {
  const { url } = await recordClosed(t, { maxMessageSize: 1000 })
  const peer = await WsPeer.open(url)
  await peer.send('é'.repeat(500))
  t.is((await peer.next()).data.toString(), 'é'.repeat(500))
  await peer.send('é'.repeat(500) + 'x')
  t.is((await within(peer.closed, 5000, 'close')).code, 1009)
})

test('maxFrameSize: a frame at the limit passes, one past → 1009; fragments may add up past it', async (t) => {
  const { url, conns } = await recordClosed(t, { maxFrameSize: 1000, maxMessageSize: 10_000 })
  const peer = await WsPeer.open(url)
  await peer.send(Buffer.alloc(1000, 1))
  t.is((await peer.next()).data.length, 1000)
  await peer.send(Buffer.alloc(1000, 1), { fin: false })
  await peer.send(Buffer.alloc(1000, 2), { fin: false })
  await peer.send(Buffer.alloc(1000, 3), { fin: true })
  t.is((await peer.next()).data.length, 3000)
  await peer.send(Buffer.alloc(1001, 1))
  t.is((await within(peer.closed, 5000, 'close')).code, 1009)
  t.is((await conns[0].closed).code, 1009)
})

test('maxFrameSize is enforced from the header: a huge announced frame is refused before its payload', async (t) => {
  const { port } = await recordClosed(t, { maxFrameSize: 1000, maxMessageSize: 10_000 })
  const client = await RawClient.connect(port)
  // Only the header of a 1 MiB frame (and its mask key) is sent.
  const header = clientFrame(2, Buffer.alloc(1024 * 1024)).subarray(0, 14)
  client.send(header)
  t.is((await client.nextClose())?.code, 1009)
})

test('maxFragments: a message of exactly maxFragments frames passes, one more → 1009', async (t) => {
  const { url, conns } = await recordClosed(t, { maxFragments: 4 })
  const peer = await WsPeer.open(url)
  for (let i = 0; i < 3; i++) await peer.send(Buffer.from([i]), { fin: false })
  await peer.send(Buffer.from([3]), { fin: true })
  t.deepEqual([...(await peer.next()).data], [0, 1, 2, 3])
  for (let i = 0; i < 4; i++) await peer.send(Buffer.from([i]), { fin: false })
  await peer.send(Buffer.from([4]), { fin: true })
  t.is((await within(peer.closed, 5000, 'close')).code, 1009)
  t.is((await conns[0].closed).code, 1009)
})

test('maxFragments counts empty fragments too', async (t) => {
  const { url } = await recordClosed(t, { maxFragments: 3 })
  const peer = await WsPeer.open(url)
  for (let i = 0; i < 3; i++) await peer.send(Buffer.alloc(0), { fin: false })
  await peer.send(Buffer.alloc(0), { fin: true })
  t.is((await within(peer.closed, 5000, 'close')).code, 1009)
})

test('a limit or timeout that is not a number in range is a RangeError when the server or client is made, not a mark that never pauses or a timer that fires at once', async (t) => {
  const { WebSocketServer, connect } = await import('../../src/index.js')
  // Number(process.env.UNSET) is NaN: `queued > NaN` is never true, so reading would never pause.
  const bad: Array<[string, WebSocketServerOptions]> = [
    ['receiveHighWaterMark NaN', { receiveHighWaterMark: NaN }],
    ['receiveHighWaterMark -1', { receiveHighWaterMark: -1 }],
    ['sendHighWaterMark NaN', { sendHighWaterMark: NaN }],
    ['closeTimeout NaN', { closeTimeout: NaN }],
    ['closeTimeout -5', { closeTimeout: -5 }],
    ['heartbeat interval NaN', { heartbeat: { interval: NaN, timeout: 1000 } }],
    ['heartbeat timeout -1', { heartbeat: { interval: 1000, timeout: -1 } }]
  ]
  for (const [name, options] of bad) {
    t.throws(() => new WebSocketServer(options), { instanceOf: RangeError }, `server, ${name}`)
    await t.throwsAsync(connect('ws://127.0.0.1:1/', options), { instanceOf: RangeError }, `client, ${name}`)
  }
  // The server's own timeout too (a NaN one dropped every handshake at once).
  t.throws(() => new WebSocketServer({ handshakeTimeout: NaN }), { instanceOf: RangeError }, 'server, handshakeTimeout NaN')
  // `heartbeat: 30000` from JavaScript was ignored without a word (the defaults applied).
  for (const heartbeat of [30000, 'on', true, null]) {
    const options = { heartbeat } as unknown as WebSocketServerOptions
    t.throws(() => new WebSocketServer(options), { instanceOf: TypeError, message: /heartbeat must be/ }, `server, heartbeat ${String(heartbeat)}`)
    await t.throwsAsync(connect('ws://127.0.0.1:1/', options), { instanceOf: TypeError }, `client, heartbeat ${String(heartbeat)}`)
  }
  // In range: Infinity where a limit may be unlimited, 0 for a mark.
  t.notThrows(() => new WebSocketServer({ receiveHighWaterMark: 0, closeTimeout: Infinity, heartbeat: { interval: 1000, timeout: 1000 } }))
})
