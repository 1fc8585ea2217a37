/**
 * permessage-deflate in the session (RFC 7692 §6) with the real zlib extension: where RSV1 may
 * appear, round trips for every parameter combination, fragmented compressed messages, context
 * takeover on and off, the decompression bomb, corrupt data, and what the windows cost.
 */

import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { deflateRawSync, constants } from 'node:zlib'
import type { DeflateParams } from '../../src/extensions/deflate-negotiation.js'
import { deflateCounters, PerMessageDeflate, SlidingWindow } from '../../src/extensions/permessage-deflate.js'
import { resolveDeflateOptions, type PerMessageDeflateOptions } from '../../src/extensions/deflate-options.js'
import { FrameParser, Opcode, Session, type Frame, type Role, type SessionEvent } from '../../src/protocol/index.js'
import { assertSessionFailed, concat, peerFrame, rfcMask, utf8 } from '../protocol/helpers.js'

const FULL: DeflateParams = { serverNoContextTakeover: false, clientNoContextTakeover: false, serverMaxWindowBits: 15, clientMaxWindowBits: 15 }

function deflateFor (role: Role, params: Partial<DeflateParams> = {}, options: PerMessageDeflateOptions = { threshold: 0 }): PerMessageDeflate {
  return new PerMessageDeflate(role, { ...FULL, ...params }, resolveDeflateOptions(options)!)
}

function pair (params: Partial<DeflateParams> = {}, options: PerMessageDeflateOptions = { threshold: 0 }, maxMessageSize?: number): { server: Session, client: Session } {
  return {
    server: new Session({ role: 'server', compression: deflateFor('server', params, options), maxMessageSize }),
    client: new Session({ role: 'client', mask: rfcMask, compression: deflateFor('client', params, options), maxMessageSize })
  }
}

/** Move what `from` queued into `to`; returns `to`'s events. */
function deliver (from: Session, to: Session): SessionEvent[] {
  return to.receive(concat(from.takeOutput()))
}

/** The frames in `bytes` (sent by `role`), as its peer parses them (RSV1 allowed); `bytes` is left as it was. */
function parse (role: Role, bytes: Uint8Array): Frame[] {
  return new FrameParser({ role: role === 'server' ? 'client' : 'server', allowedReservedBits: 0x40 }).push(bytes.slice())
}

/** The frames `session` queued. */
function framesOf (session: Session): Frame[] {
  return parse(session.role, concat(session.takeOutput()))
}

/** Compressible JSON-like text of about `n` bytes. */
function json (n: number, seed = 0): string {
  let s = ''
  for (let i = 0; s.length < n; i++) s += JSON.stringify({ id: i + seed, user: `user${(i * 7) % 13}`, text: 'hello world', ok: i % 3 === 0 }) + '\n'
  return s.slice(0, n)
}

/** Raw deflate of `data` with the 4-octet tail dropped, as a peer would send it (§7.2.1). */
function compressed (data: Uint8Array, options: { windowBits?: number, dictionary?: Uint8Array } = {}): Uint8Array {
  const out = deflateRawSync(data, { finishFlush: constants.Z_SYNC_FLUSH, ...options })
  return out.subarray(0, out.length - 4)
}

const COMBINATIONS: Array<Partial<DeflateParams>> = []
for (const serverNoContextTakeover of [false, true]) {
  for (const clientNoContextTakeover of [false, true]) {
    for (const bits of [8, 9, 12, 15]) COMBINATIONS.push({ serverNoContextTakeover, clientNoContextTakeover, serverMaxWindowBits: bits, clientMaxWindowBits: bits === 15 ? 8 : bits + 1 })
  }
}

for (const params of COMBINATIONS) {
  test(`round trip both ways with ${JSON.stringify(params)}: text, binary, empty, 16 B…256 KiB, repeated`, (t) => {
    const { server, client } = pair(params)
    const messages: Array<{ data: Uint8Array, binary: boolean }> = [
      { data: utf8('héllo wörld ☃'), binary: false },
      { data: new Uint8Array(0), binary: false },
      { data: new Uint8Array(0), binary: true },
      { data: Uint8Array.from({ length: 256 }, (_, i) => i), binary: true }
    ]
    for (const size of [16, 64, 256, 1024, 4096, 16384, 65536, 262144]) messages.push({ data: utf8(json(size, size)), binary: size % 2 === 1 })
    // The same message again and again: context takeover (where kept) makes repeats cheap.
    for (let i = 0; i < 5; i++) messages.push({ data: utf8(json(3000, 7)), binary: false })
    for (const [from, to] of [[client, server], [server, client]] as const) {
      for (const m of messages) from.send(m.data, m.binary)
      const bytes = concat(from.takeOutput())
      const frames = parse(from.role, bytes)
      // Threshold 0: what deflate shrinks goes compressed (all JSON of 64 B and more); the
      // 256 byte values and a short text do not shrink, and go as they are.
      t.is(frames.length, messages.length)
      t.deepEqual([frames[0].rsv1, frames[3].rsv1], [false, false])
      t.true(frames.slice(5).every((f) => f.rsv1))
      const events = to.receive(bytes)
      t.is(events.length, messages.length)
      for (let i = 0; i < messages.length; i++) {
        const e = events[i]
        t.is(e.type, 'message')
        if (e.type !== 'message') continue
        t.is(e.binary, messages[i].binary)
        t.deepEqual(new Uint8Array(e.data), messages[i].data)
      }
    }
  })
}

test('a fragmented compressed message: RSV1 on the first frame only, inflated once whole (§6.1), text checked after', (t) => {
  const text = utf8(json(10_000) + ' ☃')
  const body = compressed(text)
  for (const role of ['server', 'client'] as const) {
    const session = new Session({ role, mask: rfcMask, compression: deflateFor(role) })
    const cuts = [0, 1, 7, Math.floor(body.length / 2), body.length]
    const frames: Uint8Array[] = []
    for (let i = 0; i < cuts.length - 1; i++) {
      frames.push(peerFrame(role, { opcode: i === 0 ? Opcode.Text : Opcode.Continuation, rsv: i === 0 ? 0x40 : 0, fin: i === cuts.length - 2, payload: body.subarray(cuts[i], cuts[i + 1]) }))
    }
    // A ping between fragments is fine; byte at a time, to cross every boundary.
    frames.splice(2, 0, peerFrame(role, { opcode: Opcode.Ping, payload: utf8('p') }))
    const all = concat(frames)
    const events: SessionEvent[] = []
    for (let i = 0; i < all.length; i++) events.push(...session.receive(all.slice(i, i + 1)))
    t.deepEqual(events.map((e) => e.type), ['ping', 'message'])
    const m = events[1]
    if (m.type === 'message') {
      t.false(m.binary)
      t.deepEqual(new Uint8Array(m.data), text)
    }
  }
})

test('§6: RSV1 on a control frame or a continuation is 1002; without the extension RSV1 is 1002 too', (t) => {
  for (const role of ['server', 'client'] as const) {
    const withDeflate = (): Session => new Session({ role, mask: rfcMask, compression: deflateFor(role) })
    for (const opcode of [Opcode.Ping, Opcode.Pong, Opcode.Close]) {
      const s = withDeflate()
      assertSessionFailed(t, s, s.receive(peerFrame(role, { opcode, rsv: 0x40 })), 'WS_ERR_UNEXPECTED_RSV', 1002)
    }
    const s = withDeflate()
    const first = peerFrame(role, { opcode: Opcode.Text, rsv: 0x40, fin: false, payload: compressed(utf8('abc')) })
    const cont = peerFrame(role, { opcode: Opcode.Continuation, rsv: 0x40, payload: new Uint8Array(3) })
    assertSessionFailed(t, s, s.receive(concat([first, cont])), 'WS_ERR_UNEXPECTED_RSV', 1002)
    // Known from the header: a continuation with RSV1 fails before its payload arrives.
    const early = withDeflate()
    early.receive(first)
    assertSessionFailed(t, early, early.receive(cont.subarray(0, role === 'server' ? 7 : 3)), 'WS_ERR_UNEXPECTED_RSV', 1002)
    // RSV2 and RSV3 stay reserved.
    const rsv2 = withDeflate()
    assertSessionFailed(t, rsv2, rsv2.receive(peerFrame(role, { opcode: Opcode.Text, rsv: 0x20, payload: utf8('a') })), 'WS_ERR_UNEXPECTED_RSV', 1002)
    const plain = new Session({ role, mask: rfcMask })
    assertSessionFailed(t, plain, plain.receive(peerFrame(role, { opcode: Opcode.Text, rsv: 0x40, payload: compressed(utf8('abc')) })), 'WS_ERR_UNEXPECTED_RSV', 1002)
  }
})

test('uncompressed messages (RSV1 clear) still pass with the extension, and are not in the window', (t) => {
  const s = new Session({ role: 'server', compression: deflateFor('server') })
  const events = s.receive(concat([peerFrame('server', { opcode: Opcode.Text, payload: utf8('plain') }), peerFrame('server', { opcode: Opcode.Binary, rsv: 0x40, payload: compressed(utf8('packed')) })]))
  t.deepEqual(events.map((e) => e.type === 'message' ? new TextDecoder().decode(e.data) : e.type), ['plain', 'packed'])
})

test('compressed text that is not UTF-8 once inflated → 1007; data that does not inflate → 1007', (t) => {
  const s = new Session({ role: 'server', compression: deflateFor('server') })
  assertSessionFailed(t, s, s.receive(peerFrame('server', { opcode: Opcode.Text, rsv: 0x40, payload: compressed(new Uint8Array([0x68, 0xc3, 0x28])) })), 'WS_ERR_INVALID_UTF8', 1007)
  const c = new Session({ role: 'server', compression: deflateFor('server') })
  assertSessionFailed(t, c, c.receive(peerFrame('server', { opcode: Opcode.Binary, rsv: 0x40, payload: new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x00]) })), 'WS_ERR_INVALID_COMPRESSED', 1007)
})

test('decompression bomb: 64 MiB of zeros in ~64 KiB → 1009, inflating no further than the 1 MiB limit', (t) => {
  const bomb = compressed(new Uint8Array(64 * 1024 * 1024))
  t.true(bomb.length < 128 * 1024)
  const s = new Session({ role: 'server', compression: deflateFor('server'), maxMessageSize: 1024 * 1024 })
  const frame = peerFrame('server', { opcode: Opcode.Binary, rsv: 0x40, payload: bomb })
  const before = process.memoryUsage().arrayBuffers
  const inflatedBefore = deflateCounters.inflated
  const events = s.receive(frame)
  const grown = process.memoryUsage().arrayBuffers - before
  assertSessionFailed(t, s, events, 'WS_ERR_MESSAGE_TOO_BIG', 1009)
  t.is(deflateCounters.inflated, inflatedBefore, 'no message came out')
  // Inflating it all would have held 64 MiB of output until the end of the call.
  t.true(grown < 8 * 1024 * 1024, `grew ${grown} bytes`)
  // Exactly at the limit is fine.
  const at = new Session({ role: 'server', compression: deflateFor('server'), maxMessageSize: 4096 })
  const ok = at.receive(peerFrame('server', { opcode: Opcode.Binary, rsv: 0x40, payload: compressed(new Uint8Array(4096)) }))
  t.is(ok[0]?.type, 'message')
  const over = new Session({ role: 'server', compression: deflateFor('server'), maxMessageSize: 4096 })
  assertSessionFailed(t, over, over.receive(peerFrame('server', { opcode: Opcode.Binary, rsv: 0x40, payload: compressed(new Uint8Array(4097)) })), 'WS_ERR_MESSAGE_TOO_BIG', 1009)
})

test('context takeover on: a repeated message refers back to the last one and shrinks; off: each stands alone', (t) => {
  const message = utf8(json(4000))
  for (const [noContext, shrinks] of [[false, true], [true, false]] as const) {
    const { server, client } = pair({ serverNoContextTakeover: noContext, clientNoContextTakeover: noContext })
    const sizes: number[] = []
    for (let i = 0; i < 3; i++) {
      server.send(message, false)
      const frames = framesOf(server)
      sizes.push(frames[0].payload.length)
      // The client decodes each one with its own copy of the server's window.
      const s2 = new Session({ role: 'server' })
      s2.sendFragment(Opcode.Text, frames[0].payload, true)
      const bytes = concat(s2.takeOutput())
      bytes[0] |= 0x40
      const events = client.receive(bytes)
      t.deepEqual(events[0]?.type === 'message' ? new Uint8Array(events[0].data) : undefined, message)
    }
    if (shrinks) {
      t.true(sizes[1] < sizes[0] / 4 && sizes[2] < sizes[0] / 4, `sizes ${sizes.join(', ')}`)
    } else {
      t.deepEqual([sizes[1], sizes[2]], [sizes[0], sizes[0]])
    }
  }
  // A receiver that resets its context cannot read a message that refers back: 1007.
  const sender = pair().client
  sender.send(message, false)
  sender.takeOutput()
  sender.send(message, false)
  const second = concat(sender.takeOutput())
  const forgetful = new Session({ role: 'server', compression: deflateFor('server', { clientNoContextTakeover: true }) })
  assertSessionFailed(t, forgetful, forgetful.receive(second), 'WS_ERR_INVALID_COMPRESSED', 1007)
})

test('a peer that keeps its context across messages is followed (the window is 2^bits of plain bytes)', (t) => {
  const s = new Session({ role: 'server', compression: deflateFor('server', { clientMaxWindowBits: 9 }) })
  // The peer's compressor: one zlib stream with a 512-byte window, flushed per message.
  const a = utf8(json(2000, 1))
  const b = utf8(json(2000, 1))
  const first = compressed(a, { windowBits: 9 })
  const second = compressed(b, { windowBits: 9, dictionary: a.subarray(a.length - 512) })
  const events = s.receive(concat([peerFrame('server', { opcode: Opcode.Text, rsv: 0x40, payload: first }), peerFrame('server', { opcode: Opcode.Text, rsv: 0x40, payload: second })]))
  t.deepEqual(events.map((e) => e.type === 'message' ? e.data.length : -1), [2000, 2000])
})

test('threshold: shorter messages go uncompressed (RSV1 clear); incompressible ones too', (t) => {
  const s = new Session({ role: 'server', compression: deflateFor('server', {}, { threshold: 100 }) })
  s.send(utf8(json(99)), false)
  s.send(utf8(json(100)), false)
  s.send(randomBytes(2000), true)
  t.deepEqual(framesOf(s).map((f) => f.rsv1), [false, true, false])
})

test('shared compressor: no context kept, and the same bytes are compressed once for every connection', (t) => {
  const sessions = Array.from({ length: 50 }, () => new Session({ role: 'server', compression: deflateFor('server', {}, { threshold: 0, sharedCompressor: true }) }))
  const message = utf8(json(5000))
  const deflated = deflateCounters.deflated
  const hits = deflateCounters.sharedHits
  for (const s of sessions) s.send(message, false)
  t.is(deflateCounters.deflated - deflated, 1)
  t.is(deflateCounters.sharedHits - hits, 49)
  const payloads = sessions.map((s) => framesOf(s)[0].payload)
  t.true(payloads.every((p) => p.length === payloads[0].length && p.length < message.length / 4))
  // No context: a plain receiver with no window decodes each.
  const r = new Session({ role: 'client', mask: rfcMask, compression: deflateFor('client', { serverNoContextTakeover: true }) })
  sessions[0].send(message, false)
  sessions[0].send(message, false)
  t.is(deliver(sessions[0], r).length, 2)
  t.is(sessions[0].heldBytes, 0, 'nothing kept between messages')
})

test('heldBytes counts the kept windows: 0 before traffic and without context takeover, at most 2^bits each', (t) => {
  const { server, client } = pair({ serverMaxWindowBits: 10, clientMaxWindowBits: 11 })
  t.is(server.heldBytes, 0)
  for (let i = 0; i < 20; i++) client.send(utf8(json(3000, i)), false)
  deliver(client, server)
  for (let i = 0; i < 20; i++) server.send(utf8(json(3000, i)), false)
  server.takeOutput()
  t.is(server.heldBytes, 2048 + 1024)
  const none = pair({ serverNoContextTakeover: true, clientNoContextTakeover: true })
  none.client.send(utf8(json(3000)), false)
  deliver(none.client, none.server)
  t.is(none.server.heldBytes, 0)
})

test('SlidingWindow keeps the last 2^bits bytes in order, growing by doubling', (t) => {
  const w = new SlidingWindow(11)
  const all: number[] = []
  for (let i = 0; i < 300; i++) {
    const n = (i * 37) % 700
    const part = Uint8Array.from({ length: n }, (_, j) => (i + j) & 0xff)
    w.append(part)
    all.push(...part)
    t.deepEqual(Array.from(w.bytes ?? []), all.slice(-2048))
    if (i === 0) t.is(w.held, 0)
  }
  t.is(w.held, 2048)
  w.append(new Uint8Array(5000).fill(9))
  t.deepEqual(Array.from(w.bytes ?? []), Array.from(new Uint8Array(2048).fill(9)))
})

test('options are checked', (t: ExecutionContext) => {
  t.is(resolveDeflateOptions(false), undefined)
  t.is(resolveDeflateOptions(undefined), undefined)
  t.like(resolveDeflateOptions(true), { threshold: 1024, level: 6, memLevel: 8, sharedCompressor: false, request: {} })
  // A server asks for 12-bit windows unless told otherwise; a client asks for nothing by default.
  t.deepEqual(resolveDeflateOptions(true, 'server')?.request, { serverMaxWindowBits: 12, clientMaxWindowBits: 12 })
  t.deepEqual(resolveDeflateOptions({ serverMaxWindowBits: 15, clientNoContextTakeover: true }, 'server')?.request, { serverMaxWindowBits: 15, clientMaxWindowBits: 12, clientNoContextTakeover: true })
  for (const bad of [{ level: 10 }, { memLevel: 0 }, { serverMaxWindowBits: 7 }, { clientMaxWindowBits: 16 }, { threshold: -1 }, { level: 1.5 }]) {
    t.throws(() => resolveDeflateOptions(bad), { instanceOf: RangeError }, JSON.stringify(bad))
  }
})
