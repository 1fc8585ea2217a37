/**
 * The small echo's fast path over a real socket (docs/performance.md, issue 24 item 4): a read's
 * whole small messages echoed by the session as it finds them, and the output slab written over
 * once a plain TCP socket took a batch through to the kernel. Mixed traffic in reads of every
 * size, a client that stops reading at times (so some writes go async) and a server socket
 * corked from outside at times: every byte must come back as it went, in order.
 */

import test, { type ExecutionContext } from 'ava'
import type * as net from 'node:net'
import { Session } from '../../src/protocol/session.js'
import { Output } from '../../src/driver/output.js'
import { WebSocketConnection } from '../../src/driver/connection.js'
import { clientFrame, closePayload, echo, nextAccepted, RawClient, startServer, until, within, type RawFrame } from './helpers.js'

/** A small seeded PRNG (mulberry32): the same traffic on every run. */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** Lengths around the small frame's edges come often: 0, 1, 124, 125 (the last small one), 126 (the first with a 16-bit length). */
const EDGES = [0, 1, 2, 3, 4, 15, 16, 17, 124, 125, 126, 127]

interface Traffic {
  wire: Buffer
  /** Where each frame ends in `wire`. */
  ends: number[]
  /** The data messages the echo must send back, in order. */
  messages: Array<{ text: boolean, payload: Buffer }>
  /** The pongs owed, in order. */
  pongs: Buffer[]
}

/** `count` items of mixed traffic: small binary and text, pings, fragmented messages (a ping between fragments), large messages. */
function traffic (random: () => number, count: number): Traffic {
  const pieces: Buffer[] = []
  const messages: Traffic['messages'] = []
  const pongs: Buffer[] = []
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(random() * 256)))
  const text = (max: number): Buffer => {
    // Characters of 1 to 4 bytes, up to `max` bytes.
    const chars = ['a', 'é', '€', '😀', ' ', 'z']
    let s = ''
    for (;;) {
      const c = chars[Math.floor(random() * chars.length)]
      if (Buffer.byteLength(s + c) > max) break
      s += c
    }
    return Buffer.from(s)
  }
  for (let i = 0; i < count; i++) {
    const r = random()
    if (r < 0.55) {
      const length = random() < 0.4 ? EDGES[Math.floor(random() * EDGES.length)] : Math.floor(random() * 126)
      const payload = bytes(length)
      pieces.push(clientFrame(0x2, payload))
      messages.push({ text: false, payload })
    } else if (r < 0.75) {
      const payload = text(random() < 0.3 ? 125 : Math.floor(random() * 126))
      pieces.push(clientFrame(0x1, payload))
      messages.push({ text: true, payload })
    } else if (r < 0.83) {
      const payload = bytes(Math.floor(random() * 126))
      pieces.push(clientFrame(0x9, payload))
      pongs.push(payload)
    } else if (r < 0.93) {
      const isText = random() < 0.5
      const payload = isText ? text(300) : bytes(Math.floor(random() * 300))
      const cut = Math.floor(random() * (payload.length + 1))
      pieces.push(clientFrame(isText ? 0x1 : 0x2, payload.subarray(0, cut), { fin: false }))
      if (random() < 0.5) {
        const ping = bytes(Math.floor(random() * 10))
        pieces.push(clientFrame(0x9, ping))
        pongs.push(ping)
      }
      pieces.push(clientFrame(0x0, payload.subarray(cut)))
      messages.push({ text: isText, payload })
    } else {
      const payload = bytes(random() < 0.5 ? 126 + Math.floor(random() * 4000) : 10_000 + Math.floor(random() * 200_000))
      pieces.push(clientFrame(0x2, payload))
      messages.push({ text: false, payload })
    }
  }
  const ends: number[] = []
  let end = 0
  for (const p of pieces) ends.push(end += p.length)
  return { wire: Buffer.concat(pieces), ends, messages, pongs }
}

/** Counts calls to `Session.prototype.outputReleased` (the slab written over) while installed. */
function countReleases (): { count: () => number, restore: () => void } {
  const original = Session.prototype.outputReleased
  let n = 0
  Session.prototype.outputReleased = function (this: Session) { n++; original.call(this) }
  return { count: () => n, restore: () => { Session.prototype.outputReleased = original } }
}

/** Counts the messages the session echoed itself (the fast path), while installed. */
function countEchoed (): { count: () => number, restore: () => void } {
  const original = WebSocketConnection.prototype.onEchoed
  let n = 0
  WebSocketConnection.prototype.onEchoed = function (this: WebSocketConnection, count: number) { n += count; original.call(this, count) }
  return { count: () => n, restore: () => { WebSocketConnection.prototype.onEchoed = original } }
}

/** Counts flushes that left bytes in the socket (the write went async, or the socket was corked). */
function countHeldFlushes (): { count: () => number, restore: () => void } {
  const original = Output.prototype.flush
  let n = 0
  Output.prototype.flush = function (this: Output) {
    original.call(this)
    if ((this as unknown as { transport: net.Socket }).transport.writableLength > 0) n++
  }
  return { count: () => n, restore: () => { Output.prototype.flush = original } }
}

interface Echoed {
  messages: Traffic['messages']
  pongs: Buffer[]
  close?: RawFrame
  /** Frames after the close (§5.5.1: none). */
  after: RawFrame[]
  done: Promise<void>
}

/** Collect data frames (continuations joined) and pongs until the close, then what follows it until the socket ends (within `ms`). */
function collectEcho (client: RawClient, ms: number): Echoed {
  const deadline = Date.now() + ms
  const left = (): number => Math.max(1, deadline - Date.now())
  const echoed: Echoed = { messages: [], pongs: [], after: [], done: Promise.resolve() }
  echoed.done = (async () => {
    let open: { text: boolean, parts: Buffer[] } | undefined
    for (let f = await client.nextFrame(left()); f !== undefined; f = await client.nextFrame(left())) {
      if (echoed.close !== undefined) echoed.after.push(f)
      else if (f.opcode === 0x8) echoed.close = f
      else if (f.opcode === 0xa) echoed.pongs.push(Buffer.from(f.payload))
      else {
        if (f.opcode !== 0x0) open = { text: f.opcode === 0x1, parts: [] }
        open!.parts.push(Buffer.from(f.payload))
        if (f.fin) {
          echoed.messages.push({ text: open!.text, payload: Buffer.concat(open!.parts) })
          open = undefined
        }
      }
    }
  })()
  return echoed
}

test.serial('sink(source) over TCP: mixed reads of every size (small frames, pings, fragments, large frames, frames split across reads), a client that stops reading at times and a socket corked at times: every message and pong comes back byte for byte, in order, the close last', async (t) => {
  t.timeout(60_000)
  const releases = countReleases()
  const held = countHeldFlushes()
  const echoed = countEchoed()
  t.teardown(() => { releases.restore(); held.restore(); echoed.restore() })
  const { server, port } = await startServer(t, { '': echo }, { heartbeat: false })
  const accepted = nextAccepted(server)
  const client = await RawClient.connect(port)
  const serverSocket = await accepted
  t.teardown(() => { client.destroy() })
  const random = prng(24)
  const { wire, ends, messages, pongs } = traffic(random, 1500)
  const got = collectEcho(client, 50_000)
  // Written in pieces of every size, turns apart (so most are reads of their own); now and then
  // the client stops reading (the server's writes back up and go async) or the server's socket
  // is corked for a moment (its writes wait in the socket).
  let at = 0
  let steps = 0
  const started = Date.now()
  while (at < wire.length) {
    if (++steps > 20_000 || Date.now() - started > 40_000) throw new Error('the traffic took too long to write')
    // Half the pieces end where a frame does (reads of whole frames, which the session echoes itself).
    const r = random()
    let size = r < 0.2 ? 1 + Math.floor(random() * 64) : r < 0.4 ? 1 + Math.floor(random() * 2000) : r < 0.5 ? 1 + Math.floor(random() * 70_000) : 0
    if (size === 0) {
      const next = ends.findIndex((e) => e > at)
      size = ends[Math.min(ends.length - 1, next + Math.floor(random() * 20))] - at
    }
    const piece = wire.subarray(at, at + size)
    at += piece.length
    if (!client.socket.write(piece)) await within(new Promise((resolve) => client.socket.once('drain', resolve)), 10_000, 'the client to drain')
    const pause = random()
    if (pause < 0.01 && !client.socket.isPaused()) {
      // The writes go on meanwhile: what the server sends back piles up in the kernel.
      client.socket.pause()
      setTimeout(() => client.socket.resume(), 200).unref()
      await new Promise((resolve) => setImmediate(resolve))
    } else if (pause < 0.02) {
      // Corked while the writes go on: the server's flushes wait in its socket for a moment.
      serverSocket.cork()
      setTimeout(() => serverSocket.uncork(), 20).unref()
      await new Promise((resolve) => setImmediate(resolve))
    } else {
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  // Every reply is in before the close goes (messages still queued at the peer's close may be dropped).
  await until(() => got.messages.length >= messages.length || got.close !== undefined, 20_000, `all ${messages.length} messages back (${got.messages.length} so far)`)
  client.send(clientFrame(0x8, closePayload(1000)))
  await got.done
  t.is(got.messages.length, messages.length)
  for (let i = 0; i < messages.length; i++) {
    const g = got.messages[i]
    if (g === undefined || g.text !== messages[i].text || !g.payload.equals(messages[i].payload)) {
      t.fail(`message ${i} of ${messages.length} (${messages[i].text ? 'text' : 'binary'}, ${messages[i].payload.length} B) came back as ${g === undefined ? 'nothing' : `${g.text ? 'text' : 'binary'} ${g.payload.length} B ${g.payload.subarray(0, 16).toString('hex')}, not ${messages[i].payload.subarray(0, 16).toString('hex')}`}`)
      break
    }
  }
  t.deepEqual(got.pongs.map((p) => p.toString('hex')), pongs.map((p) => p.toString('hex')))
  t.is(got.close?.payload.readUInt16BE(0), 1000)
  t.deepEqual(got.after, [], '§5.5.1: nothing after the close')
  t.log(`fast-path echoes ${echoed.count()}, releases ${releases.count()}, held flushes ${held.count()}`)
  // The paths under test were taken: slab room written over, and writes the socket held.
  // (How many varies with how the reads fall, and a loaded machine merges more of them.)
  t.true(echoed.count() > 0, `${echoed.count()} messages echoed by the session itself`)
  t.true(releases.count() > 0, `${releases.count()} batches released their slab room`)
  t.true(held.count() > 0, `${held.count()} flushes left bytes in the socket`)
})

/** A masked client frame with the first header byte's RSV bits set as given. */
function withRsv (frame: Buffer, rsv: number): Buffer {
  const f = Buffer.from(frame)
  f[0] |= rsv
  return f
}

const BAD: Array<{ name: string, frame: Buffer, code: number }> = [
  { name: '§8.1 text that is not UTF-8', frame: clientFrame(0x1, Buffer.from([0x61, 0xc3, 0x28])), code: 1007 },
  { name: '§5.2 a reserved data opcode (3)', frame: clientFrame(0x3, 'x'), code: 1002 },
  { name: '§5.2 a reserved control opcode (0xb)', frame: clientFrame(0xb, 'x'), code: 1002 },
  { name: '§5.2 RSV1 with no extension', frame: withRsv(clientFrame(0x2, 'x'), 0x40), code: 1002 },
  { name: '§5.2 RSV3 with no extension', frame: withRsv(clientFrame(0x1, 'x'), 0x10), code: 1002 },
  { name: '§5.1 an unmasked frame', frame: clientFrame(0x2, 'x', { mask: false }), code: 1002 },
  { name: '§5.4 a continuation with no message under way', frame: clientFrame(0x0, 'x'), code: 1002 },
  { name: '§5.5 a ping of 126 bytes', frame: clientFrame(0x9, Buffer.alloc(126, 1)), code: 1002 },
  { name: '§5.5 a fragmented ping', frame: clientFrame(0x9, 'p', { fin: false }), code: 1002 }
]

for (const bad of BAD) {
  test.serial(`sink(source) over TCP, one read of whole small messages then ${bad.name}: the messages before it come back byte for byte, then a close ${bad.code}, nothing after it (§7.1.7), and the socket ends`, async (t) => {
    const echoed = countEchoed()
    t.teardown(() => { echoed.restore() })
    const { port } = await startServer(t, { '': echo }, { heartbeat: false })
    const client = await RawClient.connect(port)
    t.teardown(() => { client.destroy() })
    // The echo's sink is waiting before the read arrives (a message through first).
    client.send(clientFrame(0x2, 'first'))
    t.deepEqual((await client.nextFrame())?.payload, Buffer.from('first'))
    const before = [
      { text: false, payload: Buffer.alloc(0) },
      { text: true, payload: Buffer.from('é'.repeat(62) + 'a') },
      { text: false, payload: Buffer.alloc(125, 0xfe) },
      { text: false, payload: Buffer.from([0, 1, 2]) }
    ]
    const echoedBefore = echoed.count()
    const got = collectEcho(client, 10_000)
    client.send(Buffer.concat([
      ...before.map((m) => clientFrame(m.text ? 0x1 : 0x2, m.payload)),
      bad.frame,
      clientFrame(0x2, 'after'),
      clientFrame(0x9, 'ping after')
    ]))
    await got.done
    t.deepEqual(got.messages.map((m) => ({ text: m.text, hex: m.payload.toString('hex') })), before.map((m) => ({ text: m.text, hex: m.payload.toString('hex') })))
    t.deepEqual(got.pongs, [])
    t.is(got.close?.payload.readUInt16BE(0), bad.code)
    t.deepEqual(got.after, [])
    await client.waitClosed()
    // One small write arrives as one read on a quiet local socket: the session echoed its messages itself.
    t.is(echoed.count() - echoedBefore, before.length)
  })
}

test.serial('sink(source) over TCP, conn.close() from a timer while the client keeps sending reads of small messages: the echoes stop at the close, nothing follows it (§5.5.1), and every message echoed before it is one the client sent, in order', async (t) => {
  const echoed = countEchoed()
  t.teardown(() => { echoed.restore() })
  const { port } = await startServer(t, {
    '': async (conn) => {
      setTimeout(() => { conn.close(4000, 'enough') }, 100).unref()
      await conn.sink(conn.source)
    }
  }, { heartbeat: false })
  const client = await RawClient.connect(port)
  t.teardown(() => { client.destroy() })
  const got = collectEcho(client, 10_000)
  const sent: Buffer[] = []
  // Reads of ten small messages, a turn apart, until the server's close arrives (at most 2 s).
  for (let i = 0; got.close === undefined && i < 2000; i++) {
    const batch = Array.from({ length: 10 }, (_, j) => Buffer.from(`${i}:${j}`))
    sent.push(...batch)
    client.send(Buffer.concat(batch.map((m) => clientFrame(0x2, m))))
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  t.is(got.close?.payload.readUInt16BE(0), 4000)
  client.send(clientFrame(0x8, closePayload(4000)))
  await got.done
  t.deepEqual(got.after, [])
  t.true(got.messages.length > 0 && got.messages.length <= sent.length)
  t.deepEqual(got.messages.map((m) => m.payload.toString()), sent.slice(0, got.messages.length).map((m) => m.toString()))
  t.true(echoed.count() > 0, 'the session echoed reads itself before the close')
})

/**
 * Send `reads` reads of 16 small binary messages, every payload its own (its number), and check
 * every echo byte for byte, in order; false (the test failed) at the first that is not.
 */
async function numberedEchoes (t: ExecutionContext, client: RawClient, reads: number): Promise<boolean> {
  const expected: Buffer[] = []
  for (let r = 0; r < reads; r++) {
    const frames: Buffer[] = []
    for (let k = 0; k < 16; k++) {
      const n = r * 16 + k
      const payload = Buffer.alloc(32, n & 0xff)
      payload.writeUInt32BE(n, 0)
      expected.push(payload)
      frames.push(clientFrame(2, payload))
    }
    client.send(Buffer.concat(frames))
    await new Promise((resolve) => setImmediate(resolve))
  }
  for (let i = 0; i < expected.length; i++) {
    const f = await client.nextFrame(10_000)
    if (f === undefined || f.opcode !== 2 || !f.payload.equals(expected[i])) {
      t.fail(`echo ${i} of ${expected.length}: ${f === undefined ? 'nothing' : `opcode ${f.opcode}, ${f.payload.subarray(0, 8).toString('hex')}`}, not ${expected[i].subarray(0, 8).toString('hex')}`)
      return false
    }
  }
  return true
}

test('a socket whose write is wrapped to write later (as an instrumentation library might) never has its bytes written over: every echo intact, no slab reuse', async (t) => {
  t.timeout(60_000)
  const { server, port } = await startServer(t, { '': echo })
  const accepted = nextAccepted(server)
  const client = await RawClient.connect(port)
  const serverSocket = await accepted
  // The real write happens 2 ms later: `writableLength` is 0 when wspipe asks, yet the bytes
  // are not in the kernel.
  const write = serverSocket.write
  serverSocket.write = function (this: net.Socket, ...args: unknown[]) {
    setTimeout(() => { (write as (...a: unknown[]) => boolean).apply(this, args) }, 2)
    return true
  } as typeof serverSocket.write
  const releases = countReleases()
  t.teardown(releases.restore)
  if (!await numberedEchoes(t, client, 200)) return
  t.is(releases.count(), 0, 'no slab room reused under a write that is not Node\'s own')
  // (The close reply is not asked for: this wrapper writes it after the socket's end, which Node refuses.)
  client.send(clientFrame(0x8, closePayload(1000)))
  await client.waitClosed(5000)
})

test('a socket whose _write and _writev are wrapped to write later keeps its bytes counted in writableLength until written: every echo intact', async (t) => {
  t.timeout(60_000)
  const { server, port } = await startServer(t, { '': echo })
  const accepted = nextAccepted(server)
  const client = await RawClient.connect(port)
  const serverSocket = await accepted
  // Below `write`, Node's own accounting holds: a chunk counts in writableLength until its
  // callback, so a deferred _write or _writev is never mistaken for bytes in the kernel.
  const socket = serverSocket as unknown as Record<'_write' | '_writev', (...a: unknown[]) => void>
  for (const name of ['_write', '_writev'] as const) {
    const inner = socket[name]
    socket[name] = function (this: unknown, ...args: unknown[]) { setTimeout(() => { inner.apply(this, args) }, 2) }
  }
  if (!await numberedEchoes(t, client, 100)) return
  t.pass()
  client.send(clientFrame(0x8, closePayload(1000)))
  t.is((await client.nextClose(5000))?.code, 1000)
})
