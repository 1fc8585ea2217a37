/**
 * Inflating stops at the receive mark (issue 19, item 3): many compressed messages in one socket
 * read to a peer that does not read, on the server and on the client. What is held stays within
 * `receiveHighWaterMark` plus one message, and no more is inflated than that; once the reader
 * reads, every message arrives, in order. Waits are bounded polls, not timings.
 */

import test from 'ava'
import { constants, deflateRawSync } from 'node:zlib'
import { connect, type Connection } from '../../src/index.js'
import { deflateCounters } from '../../src/extensions/permessage-deflate.js'
import { startRawServer, switchingProtocols } from '../client/helpers.js'
import { clientFrame, RawClient, startServer, until, within } from './helpers.js'

const MARK = 256 * 1024
const MESSAGE = 1024 * 1024
const COUNT = 30
/** What holding a queued message costs beyond its bytes (the queue counts it so). */
const ITEM = 256
/** Compressed frames held behind the message left for later: a few KiB each at most. */
const HELD_FRAMES = 64 * 1024

/** Message `i`: MESSAGE bytes of one letter, about 1 KiB compressed (a small bomb). */
function message (i: number): Buffer {
  return Buffer.alloc(MESSAGE, 0x61 + (i % 26))
}

/** Raw deflate with the §7.2.1 tail dropped. */
function deflated (data: Uint8Array): Buffer {
  const out = deflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH })
  return out.subarray(0, out.length - 4)
}

/** An unmasked server frame with RSV1 (a compressed binary message). */
function serverFrame (body: Uint8Array): Buffer {
  const n = body.length
  const head = n < 126 ? Buffer.from([0xc2, n]) : Buffer.from([0xc2, 126, n >> 8, n & 0xff])
  return Buffer.concat([head, body])
}

/** Read `COUNT` messages and check each one. */
async function readAll (t: { true: (v: boolean, m?: string) => void }, conn: Connection): Promise<number> {
  let i = 0
  for await (const m of conn.source) {
    t.true(m.length === MESSAGE && m[0] === 0x61 + (i % 26) && m[MESSAGE - 1] === 0x61 + (i % 26), `message ${i}`)
    if (++i === COUNT) break
  }
  return i
}

/** How much the process has inflated so far (bytes where the counter exists, else messages × MESSAGE). */
function inflatedSoFar (): number {
  const c = deflateCounters as { inflatedBytes?: number, inflated: number }
  return c.inflatedBytes ?? c.inflated * MESSAGE
}

// Serial: the inflate counter is the process's.
test.serial(`server: ${COUNT} compressed 1 MiB messages in one write to a handler that does not read: held and inflated within the mark + one message`, async (t) => {
  let conn: Connection | undefined
  let read!: () => void
  const reading = new Promise<void>((resolve) => { read = resolve })
  let finished!: (n: number) => void
  const count = new Promise<number>((resolve) => { finished = resolve })
  const { port, server } = await startServer(t, {
    '': async (c) => {
      conn = c
      await reading
      finished(await readAll(t, c))
    }
  }, { perMessageDeflate: true, receiveHighWaterMark: MARK, heartbeat: false })
  const raw = await RawClient.connect(port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } })
  const frames = Array.from({ length: COUNT }, (_, i) => {
    const f = clientFrame(2, deflated(message(i)))
    f[0] |= 0x40
    return f
  })
  const before = inflatedSoFar()
  raw.send(Buffer.concat(frames))
  await until(() => conn !== undefined && conn.stats().pauses > 0 && conn.stats().queuedInBytes >= MARK, 10_000, 'the server paused reading')
  // Long enough for anything more to have been inflated, were it to be.
  await new Promise((resolve) => setTimeout(resolve, 300))
  const stats = conn!.stats()
  t.true(stats.queuedInBytes <= MARK + MESSAGE + ITEM, `queued ${stats.queuedInBytes}`)
  t.true(server.stats().heldBytes <= MARK + MESSAGE + ITEM + HELD_FRAMES, `held ${server.stats().heldBytes}`)
  // One attempt to inflate the next one at once (at most 128 KiB) may be thrown away.
  const inflated = inflatedSoFar() - before
  t.true(inflated <= MARK + MESSAGE + 128 * 1024, `inflated ${inflated}`)
  read()
  t.is(await within(count, 20_000, 'every message read'), COUNT)
  raw.destroy()
})

test.serial(`client: ${COUNT} compressed 1 MiB messages in one write from the server, the client does not read: held and inflated within the mark + one message`, async (t) => {
  const frames = Buffer.concat(Array.from({ length: COUNT }, (_, i) => serverFrame(deflated(message(i)))))
  const raw = await startRawServer((socket, request) => {
    socket.write(switchingProtocols(request, ['Sec-WebSocket-Extensions: permessage-deflate']))
    socket.write(frames)
  })
  t.teardown(() => raw.close())
  const before = inflatedSoFar()
  const conn = await connect(raw.url, { perMessageDeflate: true, receiveHighWaterMark: MARK, heartbeat: false })
  await until(() => conn.stats().pauses > 0 && conn.stats().queuedInBytes >= MARK, 10_000, 'the client paused reading')
  await new Promise((resolve) => setTimeout(resolve, 300))
  const stats = conn.stats()
  t.true(stats.queuedInBytes <= MARK + MESSAGE + ITEM, `queued ${stats.queuedInBytes}`)
  t.true(stats.heldBytes <= MARK + MESSAGE + ITEM + HELD_FRAMES, `held ${stats.heldBytes}`)
  const inflated = inflatedSoFar() - before
  t.true(inflated <= MARK + MESSAGE + 128 * 1024, `inflated ${inflated}`)
  t.is(await readAll(t, conn), COUNT)
  conn.close()
})
