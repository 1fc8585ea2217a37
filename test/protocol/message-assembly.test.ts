/**
 * MessageAssembly, the session's inbound side for data frames, on its own: reassembly, §5.4
 * sequencing, the message and fragment limits at the edge and one past it (from the header of
 * a frame still arriving too), §8.1 UTF-8 across fragments and chunks, stream mode, what holding
 * costs, and the frames held behind a message inflated elsewhere.
 */

import test, { type ExecutionContext } from 'ava'
import { FrameParser, isUtf8, Opcode, ProtocolError, type Frame, type MessageCompression, type ProtocolErrorCode, type SessionEvent } from '../../src/protocol/index.js'
import { newBytes } from '../../src/protocol/frame-writer.js'
import { ITEM_OVERHEAD } from '../../src/protocol/gather.js'
import { MessageAssembly, type MessageAssemblyOptions } from '../../src/protocol/message-assembly.js'
import { concat, rawFrame, utf8 } from './helpers.js'

const decode = (b: Uint8Array): string => new TextDecoder().decode(b)

function setup (options: Partial<MessageAssemblyOptions> = {}): { parser: FrameParser, a: MessageAssembly } {
  // A client's parser: the frames it reads are unmasked, so tests write them plainly.
  const parser = new FrameParser({ role: 'client', allowedReservedBits: 0x40 })
  const a = new MessageAssembly(parser, { maxMessageSize: 1 << 20, maxFragments: Infinity, isUtf8, alloc: newBytes, compression: undefined, streamMessages: false, ...options })
  return { parser, a }
}

function frame (opcode: number, payload: Uint8Array | string, fin = true, rsv1 = false): Frame {
  return { opcode, payload: typeof payload === 'string' ? utf8(payload) : payload, fin, rsv1, rsv2: false, rsv3: false }
}

/** Bytes through the parser into the assembly, as the session does it. */
function feed (parser: FrameParser, a: MessageAssembly, bytes: Uint8Array, events: SessionEvent[] = []): SessionEvent[] {
  const frames = parser.push(bytes.slice())
  const skip = a.validatingFrame === undefined ? 0 : a.validatedSkip(parser.pending)
  frames.forEach((f, i) => { a.onFrame(f, i === 0 ? skip : 0, events) })
  if (parser.pending !== undefined) a.checkIncomplete(parser.pending)
  return events
}

function throwsCode (t: ExecutionContext, fn: () => unknown, code: ProtocolErrorCode): void {
  const err = t.throws(fn, { instanceOf: ProtocolError })
  t.is(err?.code, code)
}

function texts (events: readonly SessionEvent[]): string[] {
  return events.map((e) => e.type === 'message' || e.type === 'chunk' ? `${e.type}:${decode(e.data)}` : e.type)
}

test('fragments are joined when the last arrives; the open message is counted in bufferedBytes and heldBytes until then', (t) => {
  const { a } = setup()
  const events: SessionEvent[] = []
  a.onFrame(frame(Opcode.Text, 'Hel', false), 0, events)
  a.onFrame(frame(Opcode.Continuation, 'lo, ', false), 0, events)
  t.deepEqual(events, [])
  t.is(a.bufferedBytes, 7)
  t.true(a.heldBytes >= 7)
  a.onFrame(frame(Opcode.Continuation, 'world'), 0, events)
  t.deepEqual(texts(events), ['message:Hello, world'])
  t.is(a.bufferedBytes, 0)
  t.is(a.heldBytes, 0)
  a.onFrame(frame(Opcode.Binary, new Uint8Array([1, 2])), 0, events)
  t.deepEqual(events[1], { type: 'message', data: new Uint8Array([1, 2]), binary: true })
})

test('§5.4 sequencing: a continuation with no message, a new message inside one, RSV1 on a continuation', (t) => {
  const { a } = setup()
  throwsCode(t, () => { a.onFrame(frame(Opcode.Continuation, 'x'), 0, []) }, 'WS_ERR_UNEXPECTED_CONTINUATION')
  a.onFrame(frame(Opcode.Text, 'a', false), 0, [])
  throwsCode(t, () => { a.onFrame(frame(Opcode.Binary, 'b'), 0, []) }, 'WS_ERR_EXPECTED_CONTINUATION')
  throwsCode(t, () => { a.onFrame(frame(Opcode.Continuation, 'c', true, true), 0, []) }, 'WS_ERR_UNEXPECTED_RSV')
  // Dropped, the message is gone: a continuation is unexpected again.
  a.drop()
  t.is(a.bufferedBytes, 0)
  throwsCode(t, () => { a.onFrame(frame(Opcode.Continuation, 'x'), 0, []) }, 'WS_ERR_UNEXPECTED_CONTINUATION')
})

test('maxFragments: the limit-th fragment is taken; one past fails with 1009, already from its header', (t) => {
  const { parser, a } = setup({ maxFragments: 3 })
  const events = feed(parser, a, concat([rawFrame({ opcode: Opcode.Text, payload: utf8('a'), fin: false }), rawFrame({ opcode: Opcode.Continuation, payload: utf8('b'), fin: false }), rawFrame({ opcode: Opcode.Continuation, payload: utf8('c') })]))
  t.deepEqual(texts(events), ['message:abc'])
  feed(parser, a, concat([rawFrame({ opcode: Opcode.Binary, payload: utf8('a'), fin: false }), rawFrame({ opcode: Opcode.Continuation, payload: utf8('b'), fin: false }), rawFrame({ opcode: Opcode.Continuation, payload: utf8('c'), fin: false })]))
  const fourth = rawFrame({ opcode: Opcode.Continuation, payload: utf8('d') })
  const err = t.throws(() => feed(parser, a, fourth.subarray(0, 2)), { instanceOf: ProtocolError })
  t.is(err?.code, 'WS_ERR_TOO_MANY_FRAGMENTS')
  t.is(err?.closeCode, 1009)
  // The same fragment whole: refused as well.
  const { a: b } = setup({ maxFragments: 1 })
  b.onFrame(frame(Opcode.Binary, 'a', false), 0, [])
  throwsCode(t, () => { b.onFrame(frame(Opcode.Continuation, 'b'), 0, []) }, 'WS_ERR_TOO_MANY_FRAGMENTS')
})

test('maxMessageSize: a message of exactly the limit is delivered; one byte past fails with 1009, from the header of the frame that passes it', (t) => {
  const { parser, a } = setup({ maxMessageSize: 10 })
  t.deepEqual(texts(feed(parser, a, concat([rawFrame({ opcode: Opcode.Text, payload: utf8('abcde'), fin: false }), rawFrame({ opcode: Opcode.Continuation, payload: utf8('fghij') })]))), ['message:abcdefghij'])
  feed(parser, a, rawFrame({ opcode: Opcode.Text, payload: utf8('abcde'), fin: false }))
  // Only the header of a 6-byte continuation: 11 bytes in all, refused before any payload.
  const err = t.throws(() => feed(parser, a, rawFrame({ opcode: Opcode.Continuation, payload: utf8('fghijk') }).subarray(0, 2)), { instanceOf: ProtocolError })
  t.is(err?.code, 'WS_ERR_MESSAGE_TOO_BIG')
  t.is(err?.closeCode, 1009)
  const { a: whole } = setup({ maxMessageSize: 10 })
  whole.onFrame(frame(Opcode.Binary, 'abcde', false), 0, [])
  throwsCode(t, () => { whole.onFrame(frame(Opcode.Continuation, 'fghijk'), 0, []) }, 'WS_ERR_MESSAGE_TOO_BIG')
})

test('a message dribbled in 1-byte fragments up to maxMessageSize holds a small multiple of its bytes and does not pin the reads it came in', (t) => {
  const limit = 4096
  const { a } = setup({ maxMessageSize: limit })
  const events: SessionEvent[] = []
  // Each fragment is a 1-byte view of a 64 KiB read.
  const read = new Uint8Array(64 * 1024).fill(0x61)
  for (let i = 0; i < limit; i++) a.onFrame(frame(i === 0 ? Opcode.Binary : Opcode.Continuation, read.subarray(i, i + 1), false), 0, events)
  t.is(a.bufferedBytes, limit)
  t.true(a.heldBytes <= 2 * limit + 4 * ITEM_OVERHEAD, `held ${a.heldBytes}`)
  throwsCode(t, () => { a.onFrame(frame(Opcode.Continuation, 'x', false), 0, events) }, 'WS_ERR_MESSAGE_TOO_BIG')
})

test('§8.1 across fragments: a character split between fragments is taken; a bad byte fails on its own fragment; a message ending mid-character fails', (t) => {
  const { a } = setup()
  const events: SessionEvent[] = []
  a.onFrame(frame(Opcode.Text, new Uint8Array([0x63, 0x61, 0x66, 0xc3]), false), 0, events)
  a.onFrame(frame(Opcode.Continuation, new Uint8Array([0xa9])), 0, events)
  t.deepEqual(texts(events), ['message:café'])

  const { a: bad } = setup()
  throwsCode(t, () => { bad.onFrame(frame(Opcode.Text, new Uint8Array([0x61, 0xff]), false), 0, []) }, 'WS_ERR_INVALID_UTF8')

  const { a: cut } = setup()
  cut.onFrame(frame(Opcode.Text, 'a', false), 0, [])
  throwsCode(t, () => { cut.onFrame(frame(Opcode.Continuation, new Uint8Array([0xc3])), 0, []) }, 'WS_ERR_INVALID_UTF8')
})

test('§8.1 while a frame arrives: its text is checked as the bytes come (a bad byte fails before the frame ends), and what was checked is skipped when it completes', (t) => {
  const whole = rawFrame({ opcode: Opcode.Text, payload: utf8('héllo wörld') })
  const { parser, a } = setup()
  feed(parser, a, whole.subarray(0, 5))
  t.not(a.validatingFrame, undefined)
  const frames = parser.push(whole.slice(5))
  t.is(a.validatedSkip(parser.pending), 3, 'the three payload bytes of the first read were checked')
  t.is(a.validatingFrame, undefined)
  const events: SessionEvent[] = []
  a.onFrame(frames[0], 3, events)
  t.deepEqual(texts(events), ['message:héllo wörld'])

  const bad = rawFrame({ opcode: Opcode.Text, payload: concat([utf8('ok'), new Uint8Array([0xc0, 0x80]), utf8('more to come')]) })
  const { parser: p2, a: b } = setup()
  throwsCode(t, () => feed(p2, b, bad.subarray(0, 6)), 'WS_ERR_INVALID_UTF8')
})

test('stream mode: each fragment is handed out as a chunk, a character split across chunks carried over, one byte past maxMessageSize fails', (t) => {
  const { a } = setup({ streamMessages: true, maxMessageSize: 5 })
  const events: SessionEvent[] = []
  a.onFrame(frame(Opcode.Text, new Uint8Array([0x61, 0xc3]), false), 0, events)
  a.onFrame(frame(Opcode.Continuation, new Uint8Array(0), false), 0, events)
  a.onFrame(frame(Opcode.Continuation, new Uint8Array([0xa9, 0x62, 0x63])), 0, events)
  t.deepEqual(events.map((e) => e.type === 'chunk' ? [e.data.length, e.first, e.last, e.binary] : e.type), [[2, true, false, false], [3, false, true, false]], 'the empty middle fragment says nothing')
  t.is(a.bufferedBytes, 0, 'nothing held')

  a.onFrame(frame(Opcode.Binary, 'abcde', false), 0, [])
  throwsCode(t, () => { a.onFrame(frame(Opcode.Continuation, 'f'), 0, []) }, 'WS_ERR_MESSAGE_TOO_BIG')

  // A first piece whose frame cannot fit opens its message, empty, before the error.
  const { a: b } = setup({ streamMessages: true, maxMessageSize: 5 })
  b.pieceRest = 5
  const opened: SessionEvent[] = []
  throwsCode(t, () => { b.onFrame(frame(Opcode.Binary, 'a', false), 0, opened) }, 'WS_ERR_MESSAGE_TOO_BIG')
  t.deepEqual(opened.map((e) => e.type === 'chunk' ? [e.data.length, e.first, e.last] : e.type), [[0, true, false]])

  const { a: c } = setup({ streamMessages: true })
  throwsCode(t, () => { c.onFrame(frame(Opcode.Text, new Uint8Array([0x61, 0xc3])), 0, []) }, 'WS_ERR_INVALID_UTF8')
})

/** A compression stand-in: inflating is "join the parts", or leaves every message for later. */
function fakeCompression (later: boolean): MessageCompression & { calls: Uint8Array[][] } {
  const calls: Uint8Array[][] = []
  return {
    calls,
    heldBytes: 0,
    compress: () => undefined,
    decompress: (parts) => {
      calls.push(parts.map((p) => p.slice()))
      return later ? undefined : concat(parts)
    }
  }
}

test('compressed messages: fragments go to the extension together, in order; the inflated text is checked as UTF-8', (t) => {
  const compression = fakeCompression(false)
  const { a } = setup({ compression })
  const events: SessionEvent[] = []
  a.onFrame(frame(Opcode.Text, 'ab', false, true), 0, events)
  a.onFrame(frame(Opcode.Continuation, '', false), 0, events)
  a.onFrame(frame(Opcode.Continuation, 'cd'), 0, events)
  t.deepEqual(compression.calls.map((c) => c.map(decode)), [['ab', 'cd']])
  t.deepEqual(texts(events), ['message:abcd'])
  throwsCode(t, () => { a.onFrame(frame(Opcode.Text, new Uint8Array([0xff]), true, true), 0, []) }, 'WS_ERR_INVALID_UTF8')
})

test('held frames: behind a message left for later, frames are kept in order at their cost (a small view copied), given back once; endAwaiting says binary, then throws', (t) => {
  const { a } = setup({ compression: fakeCompression(true) })
  const events: SessionEvent[] = []
  a.onFrame(frame(Opcode.Binary, 'zz', true, true), 0, events)
  t.deepEqual(events.map((e) => e.type), ['compressed'])
  t.deepEqual(a.awaiting, { binary: true })

  const read = new Uint8Array(64 * 1024)
  const small = frame(Opcode.Text, read.subarray(0, 3))
  const own = frame(Opcode.Binary, new Uint8Array(8))
  a.hold(small)
  a.hold(own)
  t.is(a.heldBytes, 11 + 2 * ITEM_OVERHEAD)
  a.heldError = new ProtocolError('WS_ERR_INVALID_OPCODE')
  t.true(a.endAwaiting())
  t.is(a.awaiting, undefined)
  t.is((a.heldError as ProtocolError).code, 'WS_ERR_INVALID_OPCODE')
  const held = a.takeHeld()
  t.is(held.length, 2)
  t.is(held[0].payload.buffer.byteLength, 3, 'copied out of its 64 KiB read')
  t.is(held[1], own, 'a frame that is most of its buffer is kept as it is')
  t.is(a.heldError, undefined)
  t.is(a.heldBytes, 0)
  t.deepEqual(a.takeHeld(), [])
  t.throws(() => a.endAwaiting(), { message: /no compressed message/ })

  a.onFrame(frame(Opcode.Text, 'zz', true, true), 0, [])
  a.hold(own)
  a.dropHeld()
  t.is(a.awaiting, undefined)
  t.is(a.bufferedBytes, 0)
})

test('held frames: a small payload that is a Node Buffer (the driver allocates split frames from Node\'s shared pool) is copied too, not kept as a view of the pool', (t) => {
  const { a } = setup({ compression: fakeCompression(true) })
  a.onFrame(frame(Opcode.Binary, 'zz', true, true), 0, [])
  // Buffer#slice is a view, not a copy: the held frame would pin the whole pool slab
  const pooled = Buffer.from('abc')
  t.true(pooled.buffer.byteLength > 3 * 2, 'Buffer.from of a few bytes comes from the shared pool')
  a.hold(frame(Opcode.Text, pooled))
  a.endAwaiting()
  const [held] = a.takeHeld()
  t.is(held.payload.buffer.byteLength, 3, 'copied out of the pool')
  t.deepEqual([...held.payload], [...pooled])
})
