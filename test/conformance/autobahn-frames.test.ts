/**
 * The conformance client puts Autobahn's exact frames on the wire: its fragment loop (autobahn
 * 0.10.9 `sendMessageHybi`) ends a message whose length is a multiple of the fragment size with an
 * empty FIN continuation, for plain and for compressed messages. Checked against a server on
 * 127.0.0.1 that only completes the handshake and records frame headers.
 */

import { createHash } from 'node:crypto'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import test from 'ava'
import { cases } from './cases/s9-limits.js'
import { autobahnFragments, FuzzClient } from './client.js'
import { ClientDeflate } from './deflate.js'
import type { CaseCtx } from './engine.js'

interface Header { opcode: number, fin: boolean, rsv: number, length: number }

/**
 * Accept one WebSocket connection (answering `extension` if given) and resolve with the headers of
 * the frames of its first data message, once its FIN frame has arrived.
 */
async function recordFirstMessage (extension?: string): Promise<{ port: number, headers: Promise<Header[]>, close: () => void }> {
  const sockets = new Set<net.Socket>()
  let done!: (h: Header[]) => void
  let failed!: (e: Error) => void
  const headers = new Promise<Header[]>((resolve, reject) => { done = resolve; failed = reject })
  const server = net.createServer((socket) => {
    sockets.add(socket)
    let buf = Buffer.alloc(0)
    let open = false
    const got: Header[] = []
    socket.on('error', () => {})
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      if (!open) {
        const end = buf.indexOf('\r\n\r\n')
        if (end < 0) return
        const key = /sec-websocket-key: *(\S+)/i.exec(buf.subarray(0, end).toString())?.[1] ?? ''
        const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n` +
          (extension !== undefined ? `Sec-WebSocket-Extensions: ${extension}\r\n` : '') + '\r\n')
        open = true
        buf = buf.subarray(end + 4)
      }
      // Client frames are masked (4-byte key after the length).
      for (;;) {
        if (buf.length < 2) return
        let length = buf[1] & 0x7f
        let at = 2
        if (length === 126) {
          if (buf.length < 4) return
          length = buf.readUInt16BE(2)
          at = 4
        } else if (length === 127) {
          if (buf.length < 10) return
          length = Number(buf.readBigUInt64BE(2))
          at = 10
        }
        if (buf.length < at + 4 + length) return
        const h = { opcode: buf[0] & 0x0f, fin: (buf[0] & 0x80) !== 0, rsv: (buf[0] >> 4) & 0x07, length }
        buf = buf.subarray(at + 4 + length)
        if (h.opcode >= 8) continue
        got.push(h)
        if (h.fin) { done(got); return }
        if (got.length > 100_000) { failed(new Error('more than 100,000 frames')); return }
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    headers,
    close: () => { for (const s of sockets) s.destroy(); server.close() }
  }
}

/** A FuzzClient set up by `setup`, connected to `port`, whose open runs `onOpen`. */
function client (port: number, onOpen: (c: FuzzClient) => void, setup?: (c: FuzzClient) => void): FuzzClient {
  const c: FuzzClient = new FuzzClient({ onOpen: () => onOpen(c), onMessage: () => {}, onPong: () => {}, onLost: () => {} })
  setup?.(c)
  c.connect(port, '/')
  return c
}

test('the fragment loop is Autobahn\'s: a length that is a multiple of the fragment size gets an empty FIN fragment more', (t) => {
  const MiB = 1024 * 1024
  const count = (n: number, pfs?: number): number => autobahnFragments(n, pfs).length
  t.deepEqual(autobahnFragments(10, undefined), [[0, 10, true]])
  t.deepEqual(autobahnFragments(10, 10), [[0, 10, true]]) // fits in one: unfragmented
  t.deepEqual(autobahnFragments(10, 4), [[0, 4, false], [4, 8, false], [8, 10, true]])
  t.deepEqual(autobahnFragments(8, 4), [[0, 4, false], [4, 8, false], [8, 8, true]])
  t.is(count(4 * MiB, 64), 65_537) // 9.3.1 / 9.4.1
  t.is(count(4 * MiB, 1 * MiB), 5) // 9.3.8
  t.is(count(4 * MiB, 4 * MiB), 1) // 9.3.9
  t.is(count(65_536, 1300), 51) // 10.1.1: 50 full frames and the rest
})

test('case 9.3.1 as the runner sends it: 4 MiB of text in 65,536 frames of 64 octets, then an empty FIN continuation', async (t) => {
  t.timeout(30_000)
  const rec = await recordFirstMessage()
  t.teardown(rec.close)
  const def = cases.find((c) => c.id === '9.3.1')!
  const c = client(rec.port, (conn) => def.onOpen!({ def, conn, received: [], behavior: 'FAILED', result: '', behaviorClose: 'OK', resultClose: '', data: {} } satisfies CaseCtx))
  t.teardown(() => c.abort())
  const frames = await rec.headers
  t.is(frames.length, 65_537)
  t.deepEqual(frames[0], { opcode: 1, fin: false, rsv: 0, length: 64 })
  t.true(frames.slice(1, -1).every((f) => f.opcode === 0 && !f.fin && f.length === 64))
  t.deepEqual(frames.at(-1), { opcode: 0, fin: true, rsv: 0, length: 0 })
})

test('a compressed message is framed by the same loop: compressed octets a multiple of autoFragmentSize end with an empty FIN continuation', async (t) => {
  t.timeout(30_000)
  // Incompressible bytes of the length whose compressed form (a fresh stream, as the first
  // message of a connection) is a multiple of 256 octets.
  const agreement = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 }
  let seed = 1
  const noise = Uint8Array.from({ length: 4096 }, () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24)
  let payload: Uint8Array | undefined
  let compressed = 0
  for (let n = 600; n < 4096 && payload === undefined; n++) {
    const codec = new ClientDeflate(agreement)
    const out = await codec.compress(noise.subarray(0, n))
    codec.close()
    if (out.length % 256 === 0) {
      payload = noise.slice(0, n)
      compressed = out.length
    }
  }
  if (payload === undefined) return t.fail('no length under 4096 compresses to a multiple of 256')
  const rec = await recordFirstMessage('permessage-deflate')
  t.teardown(rec.close)
  const c = client(rec.port, (conn) => conn.sendMessage(payload, true), (conn) => {
    conn.autoFragmentSize = 256
    conn.deflateOffers = [{ requestNoContextTakeover: false, requestMaxWindowBits: 0 }]
  })
  t.teardown(() => c.abort())
  const frames = await rec.headers
  t.is(frames.length, compressed / 256 + 1)
  t.deepEqual(frames[0], { opcode: 2, fin: false, rsv: 4, length: 256 })
  t.deepEqual(frames.at(-1), { opcode: 0, fin: true, rsv: 0, length: 0 })
})
