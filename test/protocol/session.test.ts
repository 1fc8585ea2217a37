/**
 * Session: message rules (§5.4 fragmentation, §8.1 UTF-8), limits at and past the edge, control
 * frames (§5.5.2 ping/pong) and the closing handshake (§5.5.1, §7), for both roles.
 */

import test from 'ava'
import { DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_MESSAGE_SIZE, FrameParser, Opcode, ProtocolError, Session, type ProtocolErrorCode, type Role, type SessionEvent, type SessionOptions } from '../../src/protocol/index.js'
import { assertSessionFailed, closePayload, concat, hex, newSession, oneByteAtATime, output, outputFrames, peerFrame, receiveAll, rfcMask, utf8 } from './helpers.js'

const ROLES: Role[] = ['server', 'client']

const text = (role: Role, s: string | Uint8Array, fin = true): Uint8Array => peerFrame(role, { opcode: Opcode.Text, payload: typeof s === 'string' ? utf8(s) : s, fin })
const binary = (role: Role, payload: Uint8Array, fin = true): Uint8Array => peerFrame(role, { opcode: Opcode.Binary, payload, fin })
const cont = (role: Role, s: string | Uint8Array, fin = true): Uint8Array => peerFrame(role, { opcode: Opcode.Continuation, payload: typeof s === 'string' ? utf8(s) : s, fin })
const ping = (role: Role, payload: Uint8Array = new Uint8Array(0)): Uint8Array => peerFrame(role, { opcode: Opcode.Ping, payload })
const pong = (role: Role, payload: Uint8Array = new Uint8Array(0)): Uint8Array => peerFrame(role, { opcode: Opcode.Pong, payload })
const closeFrame = (role: Role, payload: Uint8Array = new Uint8Array(0)): Uint8Array => peerFrame(role, { opcode: Opcode.Close, payload })
const closeBody = (code: number, reason: Uint8Array | string = ''): Uint8Array => concat([new Uint8Array([code >>> 8, code & 0xff]), typeof reason === 'string' ? utf8(reason) : reason])

/**
 * Feed `chunks` one receive() at a time: every chunk but the last yields no error, the last one
 * ends in `code` / `closeCode` (so the failure is reported as soon as the offending bytes arrive).
 */
function sessionFailure (name: string, chunks: (role: Role) => Uint8Array[], code: ProtocolErrorCode, closeCode: number, options: Partial<SessionOptions> = {}): void {
  for (const role of ROLES) {
    test(`${name} (${role})`, (t) => {
      const session = newSession(role, options)
      const parts = chunks(role)
      const before = receiveAll(session, parts.slice(0, -1))
      t.false(before.some((e) => e.type === 'error'), 'no error before the last chunk')
      t.is(session.state, 'open')
      const events = session.receive(parts[parts.length - 1].slice())
      assertSessionFailed(t, session, events, code, closeCode)
    })
  }
}

function messages (events: readonly SessionEvent[]): Array<{ data: string, binary: boolean }> {
  const out = []
  for (const e of events) if (e.type === 'message') out.push({ data: new TextDecoder().decode(e.data), binary: e.binary })
  return out
}

// ── §5.4 fragmentation ────────────────────────────────────────────────────────────────────────

sessionFailure('§5.4 a continuation with no message open → 1002', (r) => [cont(r, 'x')], 'WS_ERR_UNEXPECTED_CONTINUATION', 1002)
sessionFailure('§5.4 a continuation after a finished message → 1002', (r) => [text(r, 'done'), cont(r, 'x')], 'WS_ERR_UNEXPECTED_CONTINUATION', 1002)
sessionFailure('§5.4 a new text frame while a fragmented message is open → 1002', (r) => [text(r, 'a', false), text(r, 'b')], 'WS_ERR_EXPECTED_CONTINUATION', 1002)
sessionFailure('§5.4 a new binary frame while a fragmented text message is open → 1002', (r) => [text(r, 'a', false), binary(r, new Uint8Array(1), false)], 'WS_ERR_EXPECTED_CONTINUATION', 1002)
// Known from the header: no payload needs to arrive before the sequencing error.
sessionFailure('§5.4 an out-of-sequence continuation fails on its header, before its payload', (r) => [peerFrame(r, { opcode: Opcode.Continuation, payload: new Uint8Array(1000) }).subarray(0, r === 'server' ? 8 : 4)], 'WS_ERR_UNEXPECTED_CONTINUATION', 1002)
sessionFailure('§5.4 an interleaved data frame fails on its header, before its payload', (r) => [binary(r, new Uint8Array(1), false), peerFrame(r, { opcode: Opcode.Binary, payload: new Uint8Array(1000) }).subarray(0, 10)], 'WS_ERR_EXPECTED_CONTINUATION', 1002)

for (const role of ROLES) {
  test(`§5.4 control frames interleaved in a fragmented message are fine; the ping is answered at once (${role})`, (t) => {
    const session = newSession(role)
    const events = receiveAll(session, [
      text(role, 'Hel', false), ping(role, utf8('p1')), cont(role, 'l', false), pong(role, utf8('q')), cont(role, 'o')
    ])
    t.deepEqual(events.map((e) => e.type), ['ping', 'pong', 'message'])
    t.deepEqual(messages(events), [{ data: 'Hello', binary: false }])
    const out = outputFrames(session)
    t.is(out.length, 1)
    t.is(out[0].opcode, Opcode.Pong)
    t.deepEqual(out[0].payload, utf8('p1'))
  })

  test(`§5.4 a fragmented binary message is reassembled; a one-frame message is a view (${role})`, (t) => {
    const session = newSession(role)
    const a = new Uint8Array([1, 2, 3])
    const events = receiveAll(session, [binary(role, a, false), cont(role, new Uint8Array(0), false), cont(role, new Uint8Array([4]))])
    t.deepEqual(events, [{ type: 'message', data: new Uint8Array([1, 2, 3, 4]), binary: true }])
    const chunk = binary(role, a)
    const [one] = session.receive(chunk)
    t.true(one.type === 'message' && one.data.buffer === chunk.buffer)
  })

  test(`§5.6 empty text and binary messages are delivered (${role})`, (t) => {
    const session = newSession(role)
    const events = receiveAll(session, [text(role, ''), binary(role, new Uint8Array(0)), text(role, '', false), cont(role, '')])
    t.deepEqual(events, [
      { type: 'message', data: new Uint8Array(0), binary: false },
      { type: 'message', data: new Uint8Array(0), binary: true },
      { type: 'message', data: new Uint8Array(0), binary: false }
    ])
  })
}

// ── §8.1 UTF-8 ────────────────────────────────────────────────────────────────────────────────

sessionFailure('§8.1 invalid UTF-8 in a one-frame text message → 1007', (r) => [text(r, hex('48 c0 80'))], 'WS_ERR_INVALID_UTF8', 1007)
sessionFailure('§8.1 a surrogate (ED A0 80) in text → 1007', (r) => [text(r, hex('ed a0 80'))], 'WS_ERR_INVALID_UTF8', 1007)
sessionFailure('§8.1 invalid UTF-8 fails on the fragment that breaks it, not at the end of the message', (r) => [
  text(r, 'ok', false), cont(r, hex('ce'), false), cont(r, hex('ff'), false)
], 'WS_ERR_INVALID_UTF8', 1007)
sessionFailure('§8.1 invalid UTF-8 inside a one-frame message still arriving fails on the chunk that has it', (r) => {
  const frame = text(r, concat([utf8('a'.repeat(50)), hex('f5'), utf8('b'.repeat(50))]))
  const bad = frame.length - 51
  return [frame.subarray(0, 20), frame.subarray(20, bad), frame.subarray(bad, bad + 1)]
}, 'WS_ERR_INVALID_UTF8', 1007)
sessionFailure('§8.1 invalid UTF-8 inside a continuation frame still arriving fails on the chunk that has it', (r) => {
  const frame = cont(r, concat([hex('e2 82'), hex('28'), utf8('x'.repeat(40))]))
  // The bad byte is 0x28 after E2 82, at 41 bytes from the end.
  return [text(r, 'start', false), frame.subarray(0, frame.length - 41), frame.subarray(frame.length - 41, frame.length - 40)]
}, 'WS_ERR_INVALID_UTF8', 1007)
sessionFailure('§8.1 text truncated inside a sequence at the end of a one-frame message → 1007', (r) => [text(r, hex('61 e2 82'))], 'WS_ERR_INVALID_UTF8', 1007)
sessionFailure('§8.1 text truncated inside a sequence at the end of a fragmented message → 1007', (r) => [text(r, hex('61 f0 9f'), false), cont(r, hex('98'), false), cont(r, '')], 'WS_ERR_INVALID_UTF8', 1007)
sessionFailure('§8.1 text truncated at the end of a one-frame message received in pieces → 1007', (r) => {
  const frame = text(r, concat([utf8('x'.repeat(30)), hex('f0 9f 98')]))
  return [frame.subarray(0, 10), frame.subarray(10)]
}, 'WS_ERR_INVALID_UTF8', 1007)

for (const role of ROLES) {
  test(`§8.1 a character split across fragments and across chunks is valid (${role})`, (t) => {
    const smile = hex('f0 9f 98 80') // U+1F600
    const session = newSession(role)
    const events = receiveAll(session, [
      ...oneByteAtATime(text(role, smile.subarray(0, 1), false)),
      ...oneByteAtATime(cont(role, smile.subarray(1, 3), false)),
      ...oneByteAtATime(cont(role, concat([smile.subarray(3), smile])))
    ])
    t.deepEqual(events, [{ type: 'message', data: concat([smile, smile]), binary: false }])
    // And a one-frame message of the same bytes delivered byte by byte.
    const more = receiveAll(session, oneByteAtATime(text(role, concat([smile, utf8('é'), smile]))))
    t.deepEqual(messages(more), [{ data: '😀é😀', binary: false }])
  })

  test(`§8.1 binary messages are never UTF-8 checked (${role})`, (t) => {
    const session = newSession(role)
    const events = receiveAll(session, [binary(role, hex('ff fe c0 80'), false), cont(role, hex('ed a0 80'))])
    t.deepEqual(events, [{ type: 'message', data: hex('ff fe c0 80 ed a0 80'), binary: true }])
  })

  test(`§8.1 the isUtf8 option is used for whole one-frame text messages (${role})`, (t) => {
    const seen: number[] = []
    const session = newSession(role, { isUtf8: (b) => { seen.push(b.length); return true } })
    // The injected check says yes, so even bytes that are not UTF-8 pass: it was the one asked.
    t.deepEqual(messages(session.receive(text(role, hex('61 ff')))).length, 1)
    t.deepEqual(seen, [2])
  })

  test(`an unexpected exception inside the session becomes 1011 with no detail sent (${role})`, (t) => {
    const session = newSession(role, { isUtf8: () => { throw new Error('secret detail') } })
    const events = session.receive(text(role, 'x'))
    assertSessionFailed(t, session, events, 'WS_ERR_INTERNAL', 1011)
    t.false(JSON.stringify(events).includes('secret'))
  })
}

// ── limits: at the limit and one past it ─────────────────────────────────────────────────────

for (const role of ROLES) {
  test(`maxFrameSize: a frame of exactly maxFrameSize passes; one byte more → 1009 from its header (${role})`, (t) => {
    const ok = newSession(role, { maxFrameSize: 200 })
    t.is(messages(ok.receive(binary(role, new Uint8Array(200)))).length, 1)
    const over = newSession(role, { maxFrameSize: 200 })
    const header = peerFrame(role, { opcode: Opcode.Binary, declaredLength: 201 })
    assertSessionFailed(t, over, over.receive(header), 'WS_ERR_FRAME_TOO_BIG', 1009)
  })

  test(`maxFrameSize defaults to maxMessageSize, and is never above it (${role})`, (t) => {
    const s = newSession(role, { maxMessageSize: 300 })
    t.is(messages(s.receive(binary(role, new Uint8Array(300)))).length, 1)
    assertSessionFailed(t, s, s.receive(peerFrame(role, { opcode: Opcode.Binary, declaredLength: 301 })), 'WS_ERR_FRAME_TOO_BIG', 1009)
    const capped = newSession(role, { maxMessageSize: 300, maxFrameSize: 1000 })
    assertSessionFailed(t, capped, capped.receive(peerFrame(role, { opcode: Opcode.Binary, declaredLength: 301 })), 'WS_ERR_FRAME_TOO_BIG', 1009)
  })

  test(`maxMessageSize across fragments: exactly at the limit passes, one byte over → 1009 (${role})`, (t) => {
    const frags = (last: number): Uint8Array[] => [binary(role, new Uint8Array(100), false), cont(role, new Uint8Array(100), false), cont(role, new Uint8Array(last))]
    const ok = newSession(role, { maxMessageSize: 250 })
    const events = receiveAll(ok, frags(50))
    t.is(events.length, 1)
    t.true(events[0].type === 'message' && events[0].data.length === 250)
    const over = newSession(role, { maxMessageSize: 250 })
    const chunks = frags(51)
    t.deepEqual(receiveAll(over, chunks.slice(0, 2)), [])
    assertSessionFailed(t, over, over.receive(chunks[2]), 'WS_ERR_MESSAGE_TOO_BIG', 1009)
  })

  test(`maxMessageSize: a continuation whose declared length overflows the message fails on its header (${role})`, (t) => {
    const s = newSession(role, { maxMessageSize: 250 })
    t.deepEqual(s.receive(text(role, 'a'.repeat(200), false)), [])
    const header = peerFrame(role, { opcode: Opcode.Continuation, declaredLength: 51 })
    assertSessionFailed(t, s, s.receive(header), 'WS_ERR_MESSAGE_TOO_BIG', 1009)
    t.true(s.bufferedBytes <= 250 + 14)
  })

  test(`maxFragments: exactly maxFragments frames pass, one more → 1009 (${role})`, (t) => {
    const frames = (n: number): Uint8Array[] => Array.from({ length: n }, (_, i) => i === 0 ? text(role, 'a', false) : cont(role, 'a', i === n - 1))
    const ok = newSession(role, { maxFragments: 5 })
    t.deepEqual(messages(receiveAll(ok, frames(5))), [{ data: 'aaaaa', binary: false }])
    const over = newSession(role, { maxFragments: 5 })
    const chunks = frames(6)
    t.deepEqual(receiveAll(over, chunks.slice(0, 5)), [])
    assertSessionFailed(t, over, over.receive(chunks[5]), 'WS_ERR_TOO_MANY_FRAGMENTS', 1009)
    // Also from the header of the fragment one too many.
    const early = newSession(role, { maxFragments: 5 })
    receiveAll(early, chunks.slice(0, 5))
    assertSessionFailed(t, early, early.receive(chunks[5].subarray(0, role === 'server' ? 6 : 2)), 'WS_ERR_TOO_MANY_FRAGMENTS', 1009)
  })

  test(`§5.5 control payload: 125 bytes pass (and are answered), 126 → 1002 (${role})`, (t) => {
    const s = newSession(role)
    const payload = Uint8Array.from({ length: 125 }, (_, i) => i)
    t.deepEqual(s.receive(ping(role, payload)), [{ type: 'ping', data: payload }])
    const [p] = outputFrames(s)
    t.deepEqual(p.payload, payload)
    assertSessionFailed(t, s, s.receive(ping(role, new Uint8Array(126))), 'WS_ERR_CONTROL_TOO_LONG', 1002)
  })
}

test('limit defaults: 16 MiB messages, no limit on fragments', (t) => {
  t.is(DEFAULT_MAX_MESSAGE_SIZE, 16 * 1024 * 1024)
  t.is(DEFAULT_MAX_FRAGMENTS, Infinity)
  const s = newSession('client')
  assertSessionFailed(t, s, s.receive(peerFrame('client', { opcode: Opcode.Binary, declaredLength: DEFAULT_MAX_MESSAGE_SIZE + 1 })), 'WS_ERR_FRAME_TOO_BIG', 1009)
})

/** One message of `count` fragments of `size` bytes and an empty final one, fed in reads of about 64 KiB; returns what was held just before the final fragment. */
function manyFragments (session: Session, role: Role, count: number, size: number): { held: number, events: SessionEvent[] } {
  const first = text(role, 'a'.repeat(size), false)
  const next = cont(role, 'a'.repeat(size), false)
  const perRead = Math.floor(65536 / next.length)
  const events = session.receive(first.slice())
  for (let sent = 1; sent < count; sent += perRead) {
    const n = Math.min(perRead, count - sent)
    const read = new Uint8Array(n * next.length)
    for (let i = 0; i < n; i++) read.set(next, i * next.length)
    events.push(...session.receive(read))
  }
  const held = session.heldBytes
  events.push(...session.receive(cont(role, '', true)))
  return { held, events }
}

for (const role of ROLES) {
  test(`the default takes Autobahn 9.3.1's 65,537 frames: 4 MiB in 64-byte fragments, then the empty final one (${role})`, (t) => {
    const { events } = manyFragments(newSession(role), role, 65_536, 64)
    t.is(events.length, 1)
    const [e] = events
    t.true(e.type === 'message' && !e.binary && e.data.length === 4 * 1024 * 1024 && e.data.every((b) => b === 0x61))
  })
}

// What the fragment count used to guard: each fragment costs its bytes and no more, so the byte
// limits bound it (DESIGN "Limits": count the real cost). Real memory: the reliability scenario
// "million-fragment flood".
test('a million empty fragments hold nothing, a million 1-byte fragments about their bytes; each ends as one message', (t) => {
  const empty = manyFragments(newSession('server'), 'server', 1_000_000, 0)
  t.true(empty.held <= 64, `held ${empty.held}`)
  t.deepEqual(messages(empty.events), [{ data: '', binary: false }])

  const tiny = manyFragments(newSession('server'), 'server', 1_000_000, 1)
  // The bytes, copied into tails of at most 64 KiB (each counted with its unused room and overhead).
  t.true(tiny.held >= 1_000_000 && tiny.held <= 1_000_000 + 128 * 1024, `held ${tiny.held}`)
  t.is(tiny.events.length, 1)
  const [m] = tiny.events
  t.true(m.type === 'message' && m.data.length === 1_000_000)
})

test('1-byte fragments are bounded by maxMessageSize: 100,000 of them pass at 100,000 bytes, one more byte → 1009', (t) => {
  const { events } = manyFragments(newSession('server', { maxMessageSize: 100_000 }), 'server', 100_000, 1)
  t.deepEqual(messages(events), [{ data: 'a'.repeat(100_000), binary: false }])
  const over = newSession('server', { maxMessageSize: 100_000 })
  receiveAll(over, [text('server', 'a', false), concat(Array.from({ length: 99_999 }, () => cont('server', 'a', false)))])
  t.is(over.state, 'open')
  assertSessionFailed(t, over, over.receive(cont('server', 'a', false)), 'WS_ERR_MESSAGE_TOO_BIG', 1009)
})

// ── §5.5.2 / §5.5.3 ping and pong ─────────────────────────────────────────────────────────────

test('§5.5.2 a server answers a ping with an unmasked pong carrying the same payload, byte for byte', (t) => {
  const s = newSession('server')
  const events = s.receive(ping('server', utf8('Hello')))
  t.deepEqual(events, [{ type: 'ping', data: utf8('Hello') }])
  t.deepEqual(output(s), hex('8a 05 48 65 6c 6c 6f'))
  t.deepEqual(s.takeOutput(), [])
})

test('§5.5.2 an empty ping is answered with an empty pong; a pong is only reported', (t) => {
  const s = newSession('server')
  s.receive(ping('server'))
  t.deepEqual(output(s), hex('8a 00'))
  t.deepEqual(s.receive(pong('server', utf8('hb'))), [{ type: 'pong', data: utf8('hb') }])
  t.deepEqual(s.takeOutput(), [])
})

test('§5.5.2 a client answers each of several pings with a masked pong, in order', (t) => {
  const s = newSession('client')
  s.receive(concat([ping('client', utf8('1')), ping('client', utf8('22'))]))
  const out = outputFrames(s)
  t.deepEqual(out.map((f) => [f.opcode, new TextDecoder().decode(f.payload)]), [[Opcode.Pong, '1'], [Opcode.Pong, '22']])
})

// ── §5.5.1 / §7 closing handshake ─────────────────────────────────────────────────────────────

sessionFailure('§5.5.1 a close payload of 1 byte → 1002', (r) => [closeFrame(r, hex('03'))], 'WS_ERR_INVALID_CLOSE_PAYLOAD', 1002)
sessionFailure('§5.5.1 a close reason that is not UTF-8 → 1007', (r) => [closeFrame(r, closeBody(1000, hex('ce')))], 'WS_ERR_INVALID_CLOSE_REASON', 1007)
sessionFailure('§7.4 close code 1005 on the wire → 1002', (r) => [closeFrame(r, closeBody(1005))], 'WS_ERR_INVALID_CLOSE_CODE', 1002)

for (const role of ROLES) {
  test(`§5.5.1 a close is answered with a close echoing the code; the reason is reported (${role})`, (t) => {
    const s = newSession(role)
    t.is(s.state, 'open')
    const events = s.receive(closeFrame(role, closeBody(4321, 'bye ✓')))
    t.deepEqual(events, [{ type: 'close', code: 4321, reason: 'bye ✓' }])
    const out = outputFrames(s)
    t.is(out.length, 1)
    t.is(out[0].opcode, Opcode.Close)
    t.is(closePayload(out[0]).code, 4321)
    t.is(s.sentCloseCode, 4321)
    t.true(s.peerClosed)
    t.true(s.closeSent)
    t.is(s.state, 'closed')
    t.true(s.shouldCloseTransport)
  })

  test(`§5.5.1 an empty close is reported as 1005 and answered with an empty close (${role})`, (t) => {
    const s = newSession(role)
    t.deepEqual(s.receive(closeFrame(role)), [{ type: 'close', code: 1005, reason: '' }])
    const out = outputFrames(s)
    t.is(out.length, 1)
    t.is(out[0].opcode, Opcode.Close)
    t.is(out[0].payload.length, 0)
    t.is(s.state, 'closed')
  })

  test(`§7 we close first: open → closing → closed when the peer's close arrives (${role})`, (t) => {
    const s = newSession(role)
    t.is(s.state, 'open')
    t.false(s.shouldCloseTransport)
    t.true(s.sendClose(1000, 'done'))
    t.is(s.state, 'closing')
    t.is(s.sentCloseCode, 1000)
    t.false(s.shouldCloseTransport)
    const [close] = outputFrames(s)
    t.deepEqual(closePayload(close), { code: 1000, reason: 'done' })
    t.deepEqual(s.receive(closeFrame(role, closeBody(1000))), [{ type: 'close', code: 1000, reason: '' }])
    t.is(s.state, 'closed')
    t.true(s.shouldCloseTransport)
    // Our close was already sent: the peer's close is not answered again.
    t.deepEqual(s.takeOutput(), [])
  })

  test(`§7 the peer closes first: open → closed in one step, since the answer is queued at once (${role})`, (t) => {
    const s = newSession(role)
    t.is(s.state, 'open')
    s.receive(closeFrame(role, closeBody(1001)))
    t.is(s.state, 'closed')
    t.true(s.shouldCloseTransport)
    t.is(closePayload(outputFrames(s)[0]).code, 1001)
  })

  test(`§7.1.7 failure: open → closed, the close carries the error's code, later input is ignored (${role})`, (t) => {
    const s = newSession(role)
    const events = s.receive(peerFrame(role, { opcode: 3 }))
    assertSessionFailed(t, s, events, 'WS_ERR_INVALID_OPCODE', 1002)
    t.deepEqual(s.receive(text(role, 'ignored')), [])
    t.deepEqual(s.receive(ping(role)), [])
    t.deepEqual(s.receive(closeFrame(role)), [])
    t.deepEqual(s.takeOutput(), [])
    t.is(s.state, 'closed')
  })

  test(`§5.5.1 after our close nothing more is sent: send* return false, no pong, no second close (${role})`, (t) => {
    const s = newSession(role)
    s.sendClose(1000)
    output(s)
    t.false(s.sendText('x'))
    t.false(s.sendBinary(new Uint8Array(1)))
    t.false(s.send(new Uint8Array(1), true))
    t.false(s.sendFragment(Opcode.Text, utf8('x'), false))
    t.false(s.sendPing())
    t.false(s.sendPong())
    t.false(s.sendClose(1001))
    // A ping from the peer is still reported but not answered.
    t.deepEqual(s.receive(ping(role, utf8('?'))), [{ type: 'ping', data: utf8('?') }])
    t.deepEqual(s.takeOutput(), [])
    t.is(s.pendingOutput, 0)
    t.is(s.sentCloseCode, 1000)
  })

  test(`§7.1.2 after our close, the peer's messages still arrive until its close, even one it had begun (${role})`, (t) => {
    const s = newSession(role)
    t.deepEqual(s.receive(text(role, 'Hel', false)), [])
    s.sendClose(1000)
    const events = receiveAll(s, [cont(role, 'lo'), binary(role, new Uint8Array([9])), closeFrame(role, closeBody(1000))])
    t.deepEqual(events.map((e) => e.type), ['message', 'message', 'close'])
    t.deepEqual(messages(events)[0], { data: 'Hello', binary: false })
    t.is(s.state, 'closed')
  })

  test(`§5.5.1 after the peer's close, further frames (same chunk or later) are ignored (${role})`, (t) => {
    const s = newSession(role)
    const events = s.receive(concat([text(role, 'before'), closeFrame(role, closeBody(1000)), text(role, 'after'), peerFrame(role, { opcode: 3 })]))
    t.deepEqual(events.map((e) => e.type), ['message', 'close'])
    t.deepEqual(s.receive(text(role, 'later')), [])
    t.is(outputFrames(s).length, 1)
  })

  test(`a peer's close drops a fragmented message it left open (${role})`, (t) => {
    const s = newSession(role)
    s.receive(text(role, 'partial', false))
    t.is(s.bufferedBytes, 7)
    t.deepEqual(s.receive(closeFrame(role)), [{ type: 'close', code: 1005, reason: '' }])
    t.is(s.bufferedBytes, 0)
  })

  test(`messages before a bad frame in the same chunk are delivered before the error (${role})`, (t) => {
    const s = newSession(role)
    const events = s.receive(concat([text(role, 'one'), ping(role, utf8('p')), binary(role, new Uint8Array([2])), peerFrame(role, { opcode: 0xb })]))
    t.deepEqual(events.map((e) => e.type), ['message', 'ping', 'message', 'error'])
    const out = outputFrames(s)
    t.deepEqual(out.map((f) => f.opcode), [Opcode.Pong, Opcode.Close])
    t.is(closePayload(out[1]).code, 1002)
  })

  test(`a close before a bad frame in the same chunk wins: the rest is ignored (${role})`, (t) => {
    const s = newSession(role)
    const events = s.receive(concat([closeFrame(role, closeBody(3000)), peerFrame(role, { opcode: 0x3 })]))
    t.deepEqual(events, [{ type: 'close', code: 3000, reason: '' }])
  })

  test(`a failure after our close sends no second close (${role})`, (t) => {
    const s = newSession(role)
    s.sendClose(1000)
    output(s)
    const events = s.receive(text(role, hex('ff')))
    t.is(events[0]?.type, 'error')
    t.deepEqual(s.takeOutput(), [])
    t.is(s.sentCloseCode, 1000)
    t.is(s.state, 'closed')
    t.true(s.shouldCloseTransport)
  })

  test(`abort(code) sends that close, fails the session and ignores later input (${role})`, (t) => {
    const s = newSession(role)
    s.receive(text(role, 'open', false))
    s.abort(1011)
    t.is(s.state, 'closed')
    t.true(s.shouldCloseTransport)
    t.is(s.sentCloseCode, 1011)
    t.is(s.bufferedBytes, 0)
    t.is(closePayload(outputFrames(s)[0]).code, 1011)
    t.deepEqual(s.receive(cont(role, 'x')), [])
  })

  test(`sendClose refuses what may not be sent (${role})`, (t) => {
    const s = newSession(role)
    for (const code of [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535]) {
      t.throws(() => s.sendClose(code), { instanceOf: RangeError }, String(code))
    }
    t.throws(() => s.sendClose(undefined, 'reason without a code'), { instanceOf: TypeError })
    t.throws(() => s.sendClose(1000, 'x'.repeat(124)), { instanceOf: RangeError })
    t.throws(() => s.sendPing(new Uint8Array(126)), { instanceOf: RangeError })
    t.throws(() => s.sendPong(new Uint8Array(126)), { instanceOf: RangeError })
    t.is(s.state, 'open')
    t.deepEqual(s.takeOutput(), [])
    t.true(s.sendClose(1000, 'x'.repeat(123)))
    t.is(outputFrames(s)[0].payload.length, 125)
  })
}

test('§5.5.1 / §7.4 every close code 0..65535: valid codes are echoed, invalid ones fail with 1002', (t) => {
  const valid = (c: number): boolean => (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999)
  const shared = new Uint8Array(65536)
  let validCount = 0
  for (let code = 0; code <= 0xffff; code++) {
    // The slab allocator reuses one buffer: each session's output is read before the next starts.
    const s = new Session({ role: 'client', mask: rfcMask, alloc: (n) => shared.subarray(0, n) })
    const events = s.receive(closeFrame('client', closeBody(code)))
    const frames = outputFrames(s)
    const sent = frames.length === 1 ? closePayload(frames[0]).code : undefined
    if (valid(code)) {
      validCount++
      if (events.length !== 1 || events[0].type !== 'close' || events[0].code !== code || sent !== code) {
        t.fail(`code ${code} should be accepted and echoed`)
        return
      }
    } else if (events.length !== 1 || events[0].type !== 'error' || events[0].error.code !== 'WS_ERR_INVALID_CLOSE_CODE' || sent !== 1002) {
      t.fail(`code ${code} should fail with 1002`)
      return
    }
  }
  t.is(validCount, 4 + 8 + 2000)
})

// ── buffering ──────────────────────────────────────────────────────────────────────────────────

test('bufferedBytes counts a partial frame and an open fragmented message, and drops to 0 when delivered', (t) => {
  const s = newSession('server')
  const frame = text('server', 'abcdef')
  s.receive(frame.subarray(0, 3))
  t.is(s.bufferedBytes, 3)
  s.receive(frame.subarray(3, 10))
  t.is(s.bufferedBytes, 4) // the header is consumed; 4 payload bytes are held
  s.receive(frame.subarray(10))
  t.is(s.bufferedBytes, 0)
  s.receive(text('server', 'xyz', false))
  t.is(s.bufferedBytes, 3)
  s.receive(cont('server', 'w'))
  t.is(s.bufferedBytes, 0)
})

test('a client session needs a mask source', (t) => {
  t.throws(() => new Session({ role: 'client' }), { instanceOf: TypeError })
})

test('takeOutput with nothing queued returns a fresh array, never the internal queue', (t) => {
  const s = newSession('server')
  const first = s.takeOutput()
  s.sendText('x')
  const second = s.takeOutput()
  t.is(first.length, 0)
  t.not(first, second)
  t.is(second.length, 1)
})

test('output order is preserved across small (slab) and large (by reference) frames, for both roles', (t) => {
  for (const role of ROLES) {
    const s = newSession(role)
    const big = Uint8Array.from({ length: 70000 }, (_, i) => i & 0xff)
    s.sendText('a')
    s.sendBinary(big)
    s.sendText('b')
    const part = output(s)
    s.sendPing(utf8('p'))
    for (let i = 0; i < 200; i++) s.sendBinary(new Uint8Array(1000).fill(i)) // crosses 64 KiB slabs
    const rest = output(s)
    const peer = newSession(role === 'server' ? 'client' : 'server')
    const events = receiveAll(peer, [part, rest])
    t.is(events.length, 204)
    t.deepEqual(events[1], { type: 'message', data: big, binary: true })
    t.is(events[3].type, 'ping')
    t.deepEqual(events[203], { type: 'message', data: new Uint8Array(1000).fill(199), binary: true })
  }
})

test('ProtocolError carries code, closeCode and a message from the table', (t) => {
  const err = new ProtocolError('WS_ERR_INVALID_OPCODE', '3')
  t.is(err.name, 'ProtocolError')
  t.is(err.code, 'WS_ERR_INVALID_OPCODE')
  t.is(err.closeCode, 1002)
  t.is(err.message, 'unknown opcode: 3')
  t.true(err instanceof Error)
})

// ── deferClose: the close we owe is held until sendPendingClose() ───────────────────────────────

for (const role of ROLES) {
  test(`deferClose: the answer to the peer's close waits for sendPendingClose(); closing until then (${role})`, (t) => {
    const s = newSession(role, { deferClose: true })
    t.deepEqual(s.receive(closeFrame(role, closeBody(1001))), [{ type: 'close', code: 1001, reason: '' }])
    t.deepEqual(s.pendingClose, { code: 1001, reason: '' })
    t.is(s.state, 'closing')
    t.false(s.shouldCloseTransport)
    t.deepEqual(s.takeOutput(), [])
    // Replies to earlier messages may still go out first (§5.5.1).
    t.true(s.sendText('last reply'))
    t.true(s.sendPendingClose())
    t.is(s.pendingClose, undefined)
    t.false(s.sendPendingClose())
    const out = outputFrames(s)
    t.deepEqual(out.map((f) => f.opcode), [Opcode.Text, Opcode.Close])
    t.is(closePayload(out[1]).code, 1001)
    t.is(s.state, 'closed')
    t.true(s.shouldCloseTransport)
  })

  test(`deferClose: a protocol error is not 'open' while its close is held; closed once it is sent (${role})`, (t) => {
    const s = newSession(role, { deferClose: true })
    const events = s.receive(peerFrame(role, { opcode: 3 }))
    t.is(events[0]?.type, 'error')
    t.is(s.state, 'closing')
    t.false(s.shouldCloseTransport)
    t.is(s.pendingClose?.code, 1002)
    t.deepEqual(s.receive(text(role, 'ignored')), [])
    t.true(s.sendPendingClose())
    t.is(s.state, 'closed')
    t.true(s.shouldCloseTransport)
    t.is(closePayload(outputFrames(s)[0]).code, 1002)
  })

  test(`deferClose: an empty close from the peer is owed as an empty close (${role})`, (t) => {
    const s = newSession(role, { deferClose: true })
    s.receive(closeFrame(role))
    t.deepEqual(s.pendingClose, { code: undefined, reason: '' })
    s.sendPendingClose()
    t.is(outputFrames(s)[0].payload.length, 0)
  })
}

for (const role of ROLES) {
  test(`a receiver given to receive() gets whole messages as they complete, and keeps the wire's order once another event came first (${role})`, (t) => {
    const session = newSession(role)
    const got: string[] = []
    const onMessage = (data: Uint8Array, binary: boolean): void => { got.push(`${binary ? 'b' : 't'}:${new TextDecoder().decode(data)}`) }
    const receiver = { onMessage, onMessageAt: (chunk: Uint8Array, start: number, end: number, binary: boolean) => { onMessage(chunk.subarray(start, end), binary) } }
    // Only whole messages in the read: all go to the receiver, none comes back as an event.
    const first = session.receive(concat([text(role, 'one'), binary(role, utf8('two'))]), receiver)
    t.deepEqual(got, ['t:one', 'b:two'])
    t.deepEqual(first, [])
    // A pong before a message: the message follows it in the array, not ahead of it through the receiver.
    got.length = 0
    const second = session.receive(concat([text(role, 'three'), pong(role), text(role, 'four'), text(role, 'fi', false), cont(role, 've')]), receiver)
    t.deepEqual(got, ['t:three'])
    t.deepEqual(second.map((e) => e.type), ['pong', 'message', 'message'])
    t.deepEqual(messages(second), [{ data: 'four', binary: false }, { data: 'five', binary: false }])
    // A message split across reads, and one joined from fragments, come as events as before.
    got.length = 0
    const frame = text(role, 'split')
    const third = [...session.receive(frame.slice(0, 4), receiver), ...session.receive(frame.slice(4), receiver)]
    t.deepEqual(got, ['t:split'])
    t.deepEqual(third, [])
    // Without a receiver, nothing changes.
    t.deepEqual(messages(session.receive(text(role, 'six'))), [{ data: 'six', binary: false }])
    // Invalid UTF-8 is refused before any receiver sees it (§8.1).
    got.length = 0
    const bad = session.receive(text(role, new Uint8Array([0xc3, 0x28])), receiver)
    t.deepEqual(got, [])
    t.is(bad[bad.length - 1].type, 'error')
  })

  test(`a receiver gets a binary message that lies whole in the read by its place in the chunk (onMessageAt), text as a view (onMessage) (${role})`, (t) => {
    const session = newSession(role)
    const got: string[] = []
    const receiver = {
      onMessage: (data: Uint8Array, binary: boolean) => { got.push(`onMessage ${binary ? 'b' : 't'}:${new TextDecoder().decode(data)}`) },
      onMessageAt: (chunk: Uint8Array, start: number, end: number, binary: boolean) => { got.push(`onMessageAt ${binary ? 'b' : 't'}:${new TextDecoder().decode(chunk.subarray(start, end))}`) }
    }
    t.deepEqual(session.receive(concat([binary(role, utf8('bin')), text(role, 'txt'), binary(role, new Uint8Array(0))]), receiver), [])
    t.deepEqual(got, ['onMessageAt b:bin', 'onMessage t:txt', 'onMessageAt b:'])
  })

  test(`receive() called again from inside a receiver throws (the parser is mid-chunk), and the session goes on afterwards (${role})`, (t) => {
    const session = newSession(role)
    const got: string[] = []
    let nested: unknown
    const receiver = {
      onMessage: (data: Uint8Array) => { got.push(new TextDecoder().decode(data)) },
      onMessageAt: (chunk: Uint8Array, start: number, end: number) => {
        got.push(new TextDecoder().decode(chunk.subarray(start, end)))
        if (nested === undefined) {
          try { session.receive(binary(role, utf8('inner')), receiver) } catch (err) { nested = err }
        }
      }
    }
    t.deepEqual(session.receive(concat([binary(role, utf8('a')), binary(role, utf8('b'))]), receiver), [])
    t.true(nested instanceof Error)
    t.regex((nested as Error).message, /re-entered/)
    t.deepEqual(got, ['a', 'b'])
    t.deepEqual(session.receive(binary(role, utf8('c')), receiver), [])
    t.deepEqual(got, ['a', 'b', 'c'])
  })

  test(`§5.4 a whole binary frame while a fragmented message is open is not given to the receiver: 1002 (${role})`, (t) => {
    const session = newSession(role)
    const got: string[] = []
    const receiver = { onMessage: () => { got.push('onMessage') }, onMessageAt: () => { got.push('onMessageAt') } }
    t.deepEqual(session.receive(text(role, 'a', false), receiver), [])
    const events = session.receive(binary(role, utf8('b')), receiver)
    t.deepEqual(got, [])
    assertSessionFailed(t, session, events, 'WS_ERR_EXPECTED_CONTINUATION', 1002)
  })
}

/** A receiver that echoes whole chunks when `room` says so, and logs what it is asked and given. */
function echoingReceiver (room: (length: number) => boolean): { log: string[], receiver: Required<Pick<import('../../src/protocol/index.js').MessageReceiver, 'onMessage' | 'onMessageAt' | 'echoesChunk' | 'onEchoed'>> } {
  const log: string[] = []
  const receiver = {
    onMessage: (data: Uint8Array, binary: boolean) => { log.push(`onMessage ${binary ? 'b' : 't'}:${new TextDecoder().decode(data)}`) },
    onMessageAt: (chunk: Uint8Array, start: number, end: number, binary: boolean) => { log.push(`onMessageAt ${binary ? 'b' : 't'}:${new TextDecoder().decode(chunk.subarray(start, end))}`) },
    echoesChunk: (length: number) => { log.push(`echoesChunk ${length}`); return room(length) },
    onEchoed: (count: number) => { log.push(`onEchoed ${count}`) }
  }
  return { log, receiver }
}

const frameText = (f: { opcode: number, payload: Uint8Array }): string => `${f.opcode}:${new TextDecoder().decode(f.payload)}`

test('a server echoing a chunk copies its whole small messages into the output as it finds them, unmasked, text as text, in the wire\'s order; what follows a control frame goes the usual way, after it', (t) => {
  const session = newSession('server')
  const { log, receiver } = echoingReceiver(() => true)
  const chunk = concat([binary('server', utf8('one')), text('server', 'twó'), binary('server', new Uint8Array(0)), binary('server', utf8('x'.repeat(125))), ping('server', utf8('p')), binary('server', utf8('after'))])
  const events = session.receive(chunk, receiver)
  t.deepEqual(log, [`echoesChunk ${chunk.length}`, 'onEchoed 4'])
  // The message after the ping comes as an event, behind it; the pong follows the echoes.
  t.deepEqual(events.map((e) => e.type), ['ping', 'message'])
  t.deepEqual(outputFrames(session).map(frameText), [`${Opcode.Binary}:one`, `${Opcode.Text}:twó`, `${Opcode.Binary}:`, `${Opcode.Binary}:${'x'.repeat(125)}`, `${Opcode.Pong}:p`])
  // Refused (no room): handed over one by one, as before.
  const refusing = echoingReceiver(() => false)
  const second = concat([binary('server', utf8('a')), text('server', 'b')])
  t.deepEqual(session.receive(second, refusing.receiver), [])
  t.deepEqual(refusing.log, [`echoesChunk ${second.length}`, 'onMessageAt b:a', 'onMessage t:b'])
  t.deepEqual(outputFrames(session), [])
})

test('§8.1 text that is not UTF-8 is not echoed: the messages before it are, then the session fails with 1007 and nothing after it is read', (t) => {
  const session = newSession('server')
  const { log, receiver } = echoingReceiver(() => true)
  const events = session.receive(concat([binary('server', utf8('ok')), text('server', new Uint8Array([0x61, 0xc3, 0x28, 0x62, 0x63])), binary('server', utf8('never'))]), receiver)
  t.deepEqual(log.slice(1), ['onEchoed 1'])
  const frames = new FrameParser({ role: 'client' }).push(concat(session.takeOutput()))
  t.deepEqual(frames.map((f) => f.opcode), [Opcode.Binary, Opcode.Close])
  t.deepEqual(frames[0].payload, utf8('ok'))
  t.is(closePayload(frames[1]).code, 1007)
  t.is(events[events.length - 1].type, 'error')
  t.is(session.state, 'closed')
})

test('a session does not echo a chunk after its close was sent, while its own fragmented message is under way, or with compression; a client never asks', (t) => {
  const closing = newSession('server')
  closing.sendClose(1000)
  const a = echoingReceiver(() => true)
  closing.receive(binary('server', utf8('late')), a.receiver)
  t.deepEqual(a.log, ['onMessageAt b:late'])
  const fragmenting = newSession('server')
  fragmenting.sendChunk(utf8('half'), true, false)
  const b = echoingReceiver(() => true)
  fragmenting.receive(binary('server', utf8('m')), b.receiver)
  t.deepEqual(b.log, ['onMessageAt b:m'])
  const compressing = newSession('server', { compression: { decompress: (parts) => concat([...parts]), compress: () => undefined, heldBytes: 0 } })
  const d = echoingReceiver(() => true)
  compressing.receive(binary('server', utf8('m')), d.receiver)
  t.deepEqual(d.log, ['onMessageAt b:m'])
  const client = newSession('client')
  const c = echoingReceiver(() => true)
  client.receive(binary('client', utf8('m')), c.receiver)
  t.deepEqual(c.log, ['onMessageAt b:m'])
})

for (const role of ROLES) {
  /** A long binary message (masked when the peer is a client) cut into reads of `read` bytes, each its own buffer as a socket's are. */
  const longReads = (payload: Uint8Array, read: number): Uint8Array[] => {
    const wire = binary(role, payload)
    const reads: Uint8Array[] = []
    for (let at = 0; at < wire.length; at += read) reads.push(wire.slice(at, at + read))
    return reads
  }
  const pattern = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff)

  test(`a receiver that wants parts gets a long binary message split across reads as the reads themselves, unmasked, never joined (${role})`, (t) => {
    const session = newSession(role)
    const payload = pattern(300_000)
    const reads = longReads(payload, 65536)
    const got: Array<{ parts: readonly Uint8Array[], length: number }> = []
    const receiver = {
      wantsParts: true,
      onMessage: () => { t.fail('joined') },
      onMessageAt: () => { t.fail('not whole in a read') },
      onMessageParts: (parts: readonly Uint8Array[], length: number) => { got.push({ parts, length }); return true }
    }
    for (const r of reads) t.deepEqual(session.receive(r, receiver), [])
    t.is(got.length, 1)
    t.is(got[0].length, payload.length)
    t.deepEqual(concat([...got[0].parts]), payload)
    // Every full read is held by reference (the frame's parts lie in the reads' own memory).
    const readBuffers = new Set(reads.map((r) => r.buffer))
    const byReference = got[0].parts.filter((p) => readBuffers.has(p.buffer as ArrayBuffer))
    t.true(byReference.length >= reads.length - 2, `${byReference.length} of ${got[0].parts.length} parts are views of the reads`)
    // The session goes on: the next message, whole in one read, comes as before.
    const after: string[] = []
    session.receive(binary(role, utf8('next')), { onMessage: () => {}, onMessageAt: (c: Uint8Array, s: number, e: number) => { after.push(new TextDecoder().decode(c.subarray(s, e))) } })
    t.deepEqual(after, ['next'])
  })

  test(`a long message's few last bytes, at the start of a read that holds the next frame, are copied out rather than pin that read (${role})`, (t) => {
    const session = newSession(role)
    const payload = pattern(200_000)
    const wire = concat([binary(role, payload), binary(role, pattern(60_000))])
    // The first frame ends 10 bytes into the last read, which holds all of the second frame.
    const cut = binary(role, payload).length - 10
    const reads = [wire.slice(0, 65536), wire.slice(65536, 131072), wire.slice(131072, cut), wire.slice(cut)]
    let parts: readonly Uint8Array[] = []
    const receiver = { wantsParts: true, onMessage: () => {}, onMessageAt: () => {}, onMessageParts: (p: readonly Uint8Array[]) => { parts = p; return true } }
    for (const r of reads) session.receive(r, receiver)
    t.deepEqual(concat([...parts]), payload)
    t.false(parts.some((p) => p.buffer === reads[3].buffer), 'no part is a view of the last read')
  })

  test(`long messages a receiver does not take as parts come joined, as before: refused parts, text, a fragmented message, no wantsParts (${role})`, (t) => {
    const payload = pattern(200_000)
    const joined = (receiver: object, wire: Uint8Array[]): Uint8Array[] => {
      const session = newSession(role)
      const out: Uint8Array[] = []
      const r = { onMessage: (d: Uint8Array) => { out.push(d.slice()) }, onMessageAt: () => { t.fail('not whole in a read') }, ...receiver }
      for (const chunk of wire) {
        for (const e of session.receive(chunk, r)) if (e.type === 'message') out.push(e.data.slice())
      }
      return out
    }
    let offered = 0
    const refusing = { wantsParts: true, onMessageParts: () => { offered++; return false } }
    t.deepEqual(joined(refusing, longReads(payload, 65536)), [payload], 'refused: joined and delivered')
    t.is(offered, 1)
    offered = 0
    const textPayload = utf8('é'.repeat(100_000))
    const textWire = text(role, textPayload)
    const textReads = [textWire.slice(0, 65536), textWire.slice(65536, 131072), textWire.slice(131072)]
    t.deepEqual(joined(refusing, textReads), [textPayload], 'text')
    const fragWire = concat([binary(role, payload.subarray(0, 100_000), false), cont(role, payload.subarray(100_000))])
    t.deepEqual(joined(refusing, [fragWire.slice(0, 65536), fragWire.slice(65536, 150_000), fragWire.slice(150_000)]), [payload], 'fragments')
    t.is(offered, 0, 'neither text nor a fragment is offered as parts')
    t.deepEqual(joined({}, longReads(payload, 65536)), [payload], 'a receiver without onMessageParts')
  })
}
