/**
 * connect(url, { messages: 'stream' }) against the `ws` server: messages arrive as chunks
 * (a message far above the whole-message limit passes in pieces), the streamed limit fails with
 * 1009, streamed sends go out as one message, and permessage-deflate cannot be combined with it.
 */

import { createHash } from 'node:crypto'
import test from 'ava'
import type { WebSocket as WsSocket } from 'ws'
import { connect, type StreamConnection } from '../../src/index.js'
import { ITEM_OVERHEAD } from '../../src/protocol/gather.js'
import { decoder, sha256, startWsServer, within } from './helpers.js'

const MiB = 1024 * 1024

function patterned (size: number): Uint8Array {
  const out = new Uint8Array(size)
  for (let i = 0; i < size; i++) out[i] = (i * 13 + 1) & 0xff
  return out
}

async function open (url: string, maxMessageSize?: number): Promise<StreamConnection> {
  return await connect(url, { messages: 'stream', heartbeat: false, maxMessageSize })
}

test('messages: \'stream\' with perMessageDeflate, or an unknown mode, rejects with a TypeError', async (t) => {
  await t.throwsAsync(connect('ws://127.0.0.1:1/', { messages: 'stream', perMessageDeflate: true } as any), { instanceOf: TypeError, message: /perMessageDeflate/ })
  await t.throwsAsync(connect('ws://127.0.0.1:1/', { messages: 'stream', perMessageDeflate: {} } as any), { instanceOf: TypeError })
  await t.throwsAsync(connect('ws://127.0.0.1:1/', { messages: 'chunks' } as any), { instanceOf: TypeError, message: /whole' or 'stream/ })
})

test('a 20 MiB message from ws arrives in chunks, byte-equal; text stays text', async (t) => {
  t.timeout(60_000)
  const big = patterned(20 * MiB)
  const peer = await startWsServer((ws: WsSocket) => {
    ws.send(big, { binary: true })
    ws.send('grüße ✓', { binary: false })
  })
  t.teardown(() => peer.close())
  const conn = await open(peer.url, Infinity)
  t.teardown(() => conn.close())
  const { value: a } = await within(conn.source.next(), 30_000, { value: undefined })
  t.is(a?.type, 'binary')
  const hash = createHash('sha256')
  let chunks = 0
  let total = 0
  for await (const chunk of a!.chunks) {
    hash.update(chunk)
    total += chunk.length
    chunks++
  }
  t.is(total, big.length)
  t.is(a!.received, big.length)
  t.true(chunks > 1, `${chunks} chunks`)
  t.is(hash.digest('hex'), sha256(big))
  const { value: b } = await within(conn.source.next(), 10_000, { value: undefined })
  t.is(b?.type, 'text')
  const parts: Uint8Array[] = []
  for await (const chunk of b!.chunks) parts.push(chunk.slice())
  t.is(decoder.decode(Buffer.concat(parts)), 'grüße ✓')
})

test('the client\'s streamed maxMessageSize: exactly it passes; one byte past fails with 1009 after the earlier chunks', async (t) => {
  t.timeout(30_000)
  let sawClose!: (code: number) => void
  const serverClose = new Promise<number>((resolve) => { sawClose = resolve })
  const half = MiB / 2
  const peer = await startWsServer((ws: WsSocket) => {
    ws.on('close', (code) => { sawClose(code) })
    ws.send(new Uint8Array(half), { binary: true, fin: false })
    ws.send(new Uint8Array(half), { binary: true, fin: true })
    ws.send(new Uint8Array(half), { binary: true, fin: false })
    ws.send(new Uint8Array(half + 1), { binary: true, fin: true })
  })
  t.teardown(() => peer.close())
  const conn = await open(peer.url, MiB)
  const { value: a } = await within(conn.source.next(), 10_000, { value: undefined })
  let n = 0
  for await (const chunk of a!.chunks) n += chunk.length
  t.is(n, MiB)
  const { value: b } = await within(conn.source.next(), 10_000, { value: undefined })
  let before = 0
  const err = await t.throwsAsync(async () => { for await (const chunk of b!.chunks) before += chunk.length })
  t.true(before >= half, `${before} bytes came before the failure`)
  t.is((err as { closeCode?: number }).closeCode, 1009)
  const closed = await within(conn.closed, 10_000, undefined)
  t.is(closed?.code, 1009)
  t.is(await within(serverClose, 5000, undefined), 1009, 'the server saw 1009')
})

// Issue 19 (7e): a stream-mode client with maxMessageSize got the 1009 from `source` (after the
// chunks had thrown it, or instead of them when the first frame was refused from its header), so
// a reader handling the message's failure in its chunks loop had it thrown again, uncaught.
for (const [name, send] of [
  ['one frame, refused from its header', (ws: WsSocket) => { ws.send(new Uint8Array(MiB + 1)) }],
  ['fragments, passing the limit part-way', (ws: WsSocket) => {
    ws.send(new Uint8Array(MiB / 2), { fin: false })
    ws.send(new Uint8Array(MiB / 2 + 1), { fin: true })
  }]
] as const) {
  test(`a message over the client's streamed maxMessageSize (${name}): its chunks throw 1009, source then ends, closed is 1009`, async (t) => {
    t.timeout(30_000)
    const peer = await startWsServer((ws: WsSocket) => { send(ws) })
    t.teardown(() => peer.close())
    const conn = await open(peer.url, MiB)
    const failures: unknown[] = []
    let messages = 0
    const reading = (async () => {
      for await (const message of conn.source) {
        messages++
        t.is(message.type, 'binary')
        try {
          for await (const _ of message.chunks) { /* counted by the peer */ }
        } catch (err) {
          failures.push(err)
        }
      }
    })()
    await t.notThrowsAsync(within(reading, 10_000, undefined), 'source ends: the error was thrown by the chunks')
    t.is(messages, 1)
    t.is(failures.length, 1)
    t.is((failures[0] as { closeCode?: number }).closeCode, 1009)
    t.is((await within(conn.closed, 10_000, undefined))?.code, 1009)
  })
}

test('a streamed send from a stream-mode client reaches ws as one message and comes back in chunks', async (t) => {
  t.timeout(30_000)
  const peer = await startWsServer()
  t.teardown(() => peer.close())
  const conn = await open(peer.url, Infinity)
  t.teardown(() => conn.close())
  const part = patterned(256 * 1024)
  await conn.send({ type: 'binary', chunks: [part, part, part, part] })
  await conn.send({ type: 'text', chunks: ['a', 'ü', '✓'] })
  const { value: a } = await within(conn.source.next(), 10_000, { value: undefined })
  const h = createHash('sha256')
  let n = 0
  for await (const chunk of a!.chunks) {
    h.update(chunk)
    n += chunk.length
  }
  t.is(n, 4 * part.length)
  t.is(h.digest('hex'), sha256(part, part, part, part))
  const { value: b } = await within(conn.source.next(), 10_000, { value: undefined })
  const parts: Uint8Array[] = []
  for await (const chunk of b!.chunks) parts.push(chunk.slice())
  t.is(b!.type, 'text')
  t.is(decoder.decode(Buffer.concat(parts)), 'aü✓')
})

test('a stream-mode client that reads slowly pauses its socket: the queue stays near receiveHighWaterMark, then all arrives', async (t) => {
  t.timeout(60_000)
  const big = patterned(16 * MiB)
  const peer = await startWsServer((ws: WsSocket) => { ws.send(big) })
  t.teardown(() => peer.close())
  const conn = await connect(peer.url, { messages: 'stream', heartbeat: false, maxMessageSize: Infinity, receiveHighWaterMark: MiB })
  t.teardown(() => conn.close())
  const { value: message } = await within(conn.source.next(), 10_000, { value: undefined })
  const it = message!.chunks
  const first = await it.next()
  // Not reading: wait (bounded) until reading has paused.
  for (let i = 0; i < 500 && conn.stats().pauses === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  const stats = conn.stats()
  t.true(stats.pauses > 0, `pauses ${stats.pauses}`)
  // One socket read (64 KiB) may land past the mark, with a few chunks' overhead.
  t.true(stats.peakQueuedInBytes <= MiB + 64 * 1024 + 4 * ITEM_OVERHEAD, `peak ${stats.peakQueuedInBytes}`)
  const h = createHash('sha256').update(first.value!)
  let n = first.value!.length
  for (let r = await it.next(); r.done !== true; r = await it.next()) {
    h.update(r.value)
    n += r.value.length
  }
  t.is(n, big.length)
  t.is(h.digest('hex'), sha256(big))
})
