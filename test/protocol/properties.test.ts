/**
 * Invariants over generated input (fast-check):
 * (a) any split of a valid stream gives the same frames, events and output as the unsplit stream;
 * (b) encode → parse and Session.send → Session.receive round-trip, for both roles;
 * (c) random bytes and mutated valid streams only ever give frames or a ProtocolError, within the
 *     configured buffering limits.
 * Runs are bounded so the file takes a few seconds.
 */

import assert from 'node:assert/strict'
import { isUtf8 as nodeIsUtf8 } from 'node:buffer'
import test from 'ava'
import fc from 'fast-check'
import { FrameParser, Opcode, ProtocolError, Session, encodeFrame, isControlOpcode, isKnownOpcode, type Frame, type Role, type SessionEvent } from '../../src/protocol/index.js'
import { concat, fixedMask, oneByteAtATime, rfcMask, splitAt } from './helpers.js'

const other = (role: Role): Role => role === 'server' ? 'client' : 'server'
const hexOf = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex')

// ── generators ────────────────────────────────────────────────────────────────────────────────

/** Payload bytes: mostly small, sometimes at a length-encoding edge (125/126/127, 65535/65536). */
const payloadArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 10, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom(125, 126, 127, 300, 4095, 4096, 65535, 65536), fc.nat({ max: 255 }))
      .map(([n, seed]) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff))
  }
)
const textArb: fc.Arbitrary<Uint8Array> = fc.string({ unit: 'binary', maxLength: 30 }).map((s) => new TextEncoder().encode(s))
const controlPayloadArb = fc.uint8Array({ maxLength: 125 })

interface Control { opcode: typeof Opcode.Ping | typeof Opcode.Pong, payload: Uint8Array }
interface Message { binary: boolean, data: Uint8Array, cuts: number[], controls: Control[][] }
type Item = { kind: 'control', control: Control } | { kind: 'message', message: Message }

const controlArb: fc.Arbitrary<Control> = fc.record({ opcode: fc.constantFrom(Opcode.Ping, Opcode.Pong), payload: controlPayloadArb })

const messageArb: fc.Arbitrary<Message> = fc.boolean().chain((binary) =>
  (binary ? payloadArb : textArb).chain((data) => fc.record({
    binary: fc.constant(binary),
    data: fc.constant(data),
    // Fragment boundaries may split a UTF-8 character and may make empty fragments (§5.4 allows both).
    cuts: fc.array(fc.nat({ max: data.length }), { maxLength: 4 }),
    controls: fc.array(fc.array(controlArb, { maxLength: 2 }), { maxLength: 5 })
  })))

const itemArb: fc.Arbitrary<Item> = fc.oneof(
  { weight: 3, arbitrary: messageArb.map((message) => ({ kind: 'message' as const, message })) },
  { weight: 1, arbitrary: controlArb.map((control) => ({ kind: 'control' as const, control })) }
)

interface Stream {
  items: Item[]
  /** End with a close frame (code 1000–4999 valid range, short reason). */
  close: { code: number, reason: string } | undefined
}

const streamArb: fc.Arbitrary<Stream> = fc.record({
  items: fc.array(itemArb, { maxLength: 6 }),
  close: fc.option(fc.record({
    code: fc.oneof(fc.constantFrom(1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014), fc.integer({ min: 3000, max: 4999 })),
    reason: fc.string({ maxLength: 20 })
  }), { nil: undefined })
})

interface FrameSpec { opcode: number, fin: boolean, payload: Uint8Array }

/** The frames of a stream, in wire order, and the session events they must produce. */
function expand (stream: Stream): { frames: FrameSpec[], events: SessionEvent[] } {
  const frames: FrameSpec[] = []
  const events: SessionEvent[] = []
  const control = (c: Control): void => {
    frames.push({ opcode: c.opcode, fin: true, payload: c.payload })
    events.push({ type: c.opcode === Opcode.Ping ? 'ping' : 'pong', data: c.payload })
  }
  for (const item of stream.items) {
    if (item.kind === 'control') {
      control(item.control)
      continue
    }
    const m = item.message
    const fragments = splitAt(m.data, m.cuts)
    fragments.forEach((payload, i) => {
      if (i > 0) for (const c of m.controls[i - 1] ?? []) control(c)
      frames.push({ opcode: i === 0 ? (m.binary ? Opcode.Binary : Opcode.Text) : Opcode.Continuation, fin: i === fragments.length - 1, payload })
    })
    events.push({ type: 'message', data: m.data, binary: m.binary })
  }
  if (stream.close !== undefined) {
    const reason = new TextEncoder().encode(stream.close.reason).subarray(0, 100)
    const payload = concat([new Uint8Array([stream.close.code >>> 8, stream.close.code & 0xff]), reason])
    frames.push({ opcode: Opcode.Close, fin: true, payload })
    events.push({ type: 'close', code: stream.close.code, reason: new TextDecoder().decode(reason) })
  }
  return { frames, events }
}

/** Encode frames as the peer of `role` sends them (a server's peer masks, with keys that change per frame). */
function encodeFor (role: Role, frames: readonly FrameSpec[], keySeed: number): Uint8Array {
  let k = keySeed
  const mask = (key: Uint8Array): void => { key.set([k & 0xff, (k >> 8) & 0xff, (k * 3) & 0xff, (k * 7 + 1) & 0xff]); k++ }
  return concat(frames.flatMap((f) => encodeFrame({ opcode: f.opcode, payload: f.payload, fin: f.fin }, { role: other(role), mask })))
}

// ── normalising, for comparison ─────────────────────────────────────────────────────────────────

const normFrame = (f: Frame): string => `${f.opcode}/${f.fin ? 1 : 0}${f.rsv1 ? 1 : 0}${f.rsv2 ? 1 : 0}${f.rsv3 ? 1 : 0}/${hexOf(f.payload)}`
const normEvent = (e: SessionEvent): string => {
  switch (e.type) {
    case 'message': return `message/${e.binary ? 'bin' : 'text'}/${hexOf(e.data)}`
    case 'ping': case 'pong': return `${e.type}/${hexOf(e.data)}`
    case 'close': return `close/${e.code}/${e.reason}`
    case 'error': return `error/${e.error.code}`
  }
}
const normSpec = (f: FrameSpec): string => `${f.opcode}/${f.fin ? 1 : 0}000/${hexOf(f.payload)}`

function parseChunks (role: Role, chunks: readonly Uint8Array[]): string[] {
  const parser = new FrameParser({ role })
  const out: string[] = []
  for (const c of chunks) for (const f of parser.push(c)) out.push(normFrame(f))
  assert.equal(parser.bufferedBytes, 0)
  return out
}

function receiveChunks (role: Role, chunks: readonly Uint8Array[]): { events: string[], output: string } {
  const session = new Session({ role, mask: rfcMask })
  const events: string[] = []
  for (const c of chunks) for (const e of session.receive(c)) events.push(normEvent(e))
  return { events, output: hexOf(concat(session.takeOutput())) }
}

/** Cut a copy of `bytes` at `cuts` (parsers unmask in place: every feed needs its own copy). */
const cutCopy = (bytes: Uint8Array, cuts: number[]): Uint8Array[] => splitAt(bytes.slice(), cuts)

// ── (a) split invariance ─────────────────────────────────────────────────────────────────────────

test('(a) any split of a valid stream gives the same frames as the unsplit stream, and the expected ones (both roles)', (t) => {
  fc.assert(fc.property(streamArb, fc.nat(), fc.array(fc.nat({ max: 1 << 18 }), { maxLength: 12 }), fc.constantFrom<Role>('server', 'client'), (stream, keySeed, rawCuts, role) => {
    const { frames } = expand(stream)
    const bytes = encodeFor(role, frames, keySeed)
    const cuts = rawCuts.map((c) => c % (bytes.length + 1))
    const whole = parseChunks(role, [bytes.slice()])
    assert.deepEqual(whole, frames.map(normSpec))
    assert.deepEqual(parseChunks(role, cutCopy(bytes, cuts)), whole)
    if (bytes.length <= 4000) assert.deepEqual(parseChunks(role, oneByteAtATime(bytes.slice())), whole)
  }), { numRuns: 300 })
  t.pass()
})

test('(a) any split of a valid stream gives the same session events and output as the unsplit stream (both roles)', (t) => {
  fc.assert(fc.property(streamArb, fc.nat(), fc.array(fc.nat({ max: 1 << 18 }), { maxLength: 12 }), fc.constantFrom<Role>('server', 'client'), (stream, keySeed, rawCuts, role) => {
    const { frames, events } = expand(stream)
    const bytes = encodeFor(role, frames, keySeed)
    const cuts = rawCuts.map((c) => c % (bytes.length + 1))
    const whole = receiveChunks(role, [bytes.slice()])
    assert.deepEqual(whole.events, events.map(normEvent))
    assert.deepEqual(receiveChunks(role, cutCopy(bytes, cuts)), whole)
    if (bytes.length <= 4000) assert.deepEqual(receiveChunks(role, oneByteAtATime(bytes.slice())), whole)
  }), { numRuns: 300 })
  t.pass()
})

// ── (b) round trips ────────────────────────────────────────────────────────────────────────────

const EDGE_LENGTHS = [0, 1, 125, 126, 127, 65535, 65536]

test('(b) encodeFrame → FrameParser round-trips at the length edges 0, 1, 125, 126, 127, 65535, 65536, both roles, every opcode', (t) => {
  for (const sender of ['server', 'client'] as Role[]) {
    for (const length of EDGE_LENGTHS) {
      for (const opcode of [Opcode.Continuation, Opcode.Text, Opcode.Binary, Opcode.Close, Opcode.Ping, Opcode.Pong]) {
        if (isControlOpcode(opcode) && length > 125) continue
        const payload = Uint8Array.from({ length }, (_, i) => (i * 5 + length) & 0xff)
        for (const fin of isControlOpcode(opcode) ? [true] : [true, false]) {
          const bytes = concat(encodeFrame({ opcode, payload, fin, rsv1: !fin }, { role: sender, mask: fixedMask([length & 0xff, 0xaa, 0x55, opcode]) }))
          const frames = new FrameParser({ role: other(sender), allowedReservedBits: 0x40 }).push(bytes)
          t.is(frames.length, 1)
          t.is(normFrame(frames[0]), `${opcode}/${fin ? 1 : 0}${fin ? 0 : 1}00/${hexOf(payload)}`)
        }
      }
    }
  }
})

test('(b) property: encodeFrame → FrameParser round-trips random frames, both roles, any split', (t) => {
  const frameArb = fc.record({
    opcode: fc.constantFrom(Opcode.Continuation, Opcode.Text, Opcode.Binary, Opcode.Close, Opcode.Ping, Opcode.Pong),
    fin: fc.boolean(),
    rsv1: fc.boolean(),
    payload: payloadArb
  }).map((f) => isControlOpcode(f.opcode) ? { ...f, fin: true, payload: f.payload.subarray(0, 125) } : f)
  fc.assert(fc.property(fc.array(frameArb, { minLength: 1, maxLength: 5 }), fc.constantFrom<Role>('server', 'client'), fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.array(fc.nat({ max: 1 << 18 }), { maxLength: 6 }), (frames, sender, key, rawCuts) => {
    const bytes = concat(frames.flatMap((f) => encodeFrame(f, { role: sender, mask: (k) => { k.set(key) } })))
    const cuts = rawCuts.map((c) => c % (bytes.length + 1))
    const parser = new FrameParser({ role: other(sender), allowedReservedBits: 0x40 })
    const got: string[] = []
    for (const c of cutCopy(bytes, cuts)) for (const f of parser.push(c)) got.push(normFrame(f))
    assert.deepEqual(got, frames.map((f) => `${f.opcode}/${f.fin ? 1 : 0}${f.rsv1 ? 1 : 0}00/${hexOf(f.payload)}`))
  }), { numRuns: 300 })
  t.pass()
})

test('(b) Session.send → Session.receive round-trips, client → server and server → client, pings answered back', (t) => {
  const sendArb = fc.oneof(
    fc.record({ kind: fc.constant('text' as const), data: fc.string({ unit: 'binary', maxLength: 40 }) }),
    fc.record({ kind: fc.constant('binary' as const), data: payloadArb }),
    fc.record({ kind: fc.constant('fragments' as const), binary: fc.boolean(), parts: fc.array(textArb, { minLength: 1, maxLength: 4 }) }),
    fc.record({ kind: fc.constant('ping' as const), data: controlPayloadArb })
  )
  fc.assert(fc.property(fc.array(sendArb, { maxLength: 8 }), fc.constantFrom<Role>('server', 'client'), fc.nat(), fc.array(fc.nat({ max: 1 << 18 }), { maxLength: 6 }), (sends, senderRole, seed, rawCuts) => {
    let k = seed
    const mask = (key: Uint8Array): void => { key.set([k & 0xff, 0x11, (k >> 8) & 0xff, 0x80]); k++ }
    const sender = new Session({ role: senderRole, mask })
    const receiver = new Session({ role: other(senderRole), mask })
    const want: string[] = []
    const pongs: string[] = []
    for (const s of sends) {
      if (s.kind === 'text') {
        assert.ok(sender.sendText(s.data))
        want.push(`message/text/${hexOf(new TextEncoder().encode(s.data))}`)
      } else if (s.kind === 'binary') {
        assert.ok(sender.sendBinary(s.data))
        want.push(`message/bin/${hexOf(s.data)}`)
      } else if (s.kind === 'fragments') {
        s.parts.forEach((p, i) => assert.ok(sender.sendFragment(i === 0 ? (s.binary ? Opcode.Binary : Opcode.Text) : Opcode.Continuation, p, i === s.parts.length - 1)))
        want.push(`message/${s.binary ? 'bin' : 'text'}/${hexOf(concat(s.parts))}`)
      } else {
        assert.ok(sender.sendPing(s.data))
        want.push(`ping/${hexOf(s.data)}`)
        pongs.push(`pong/${hexOf(s.data)}`)
      }
    }
    assert.ok(sender.sendClose(1000, 'bye'))
    want.push('close/1000/bye')
    const wire = concat(sender.takeOutput())
    const cuts = rawCuts.map((c) => c % (wire.length + 1))
    const got: string[] = []
    for (const c of splitAt(wire, cuts)) for (const e of receiver.receive(c)) got.push(normEvent(e))
    assert.deepEqual(got, want)
    // The receiver's pongs and its close reply go back to the sender.
    const back: string[] = []
    for (const e of sender.receive(concat(receiver.takeOutput()))) back.push(normEvent(e))
    assert.deepEqual(back, [...pongs, 'close/1000/'])
    assert.equal(sender.state, 'closed')
    assert.equal(receiver.state, 'closed')
  }), { numRuns: 300 })
  t.pass()
})

// ── (c) hostile input ──────────────────────────────────────────────────────────────────────────

interface Limits { maxFrameSize: number, maxMessageSize: number, maxFragments: number }

const limitsArb: fc.Arbitrary<Limits> = fc.record({
  maxFrameSize: fc.integer({ min: 0, max: 300 }),
  maxMessageSize: fc.integer({ min: 0, max: 600 }),
  maxFragments: fc.integer({ min: 1, max: 6 })
})

/** Feed a parser; it must yield legal frames within the limit or throw a ProtocolError, and never buffer past the limit. */
function checkParser (role: Role, chunks: readonly Uint8Array[], maxFrameSize: number): void {
  const parser = new FrameParser({ role, maxFrameSize })
  for (const c of chunks) {
    let frames: Frame[]
    try {
      frames = parser.push(c)
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err
      assert.ok([1002, 1007, 1009].includes(err.closeCode))
      return
    }
    for (const f of frames) {
      assert.ok(isKnownOpcode(f.opcode))
      assert.ok(!f.rsv1 && !f.rsv2 && !f.rsv3)
      assert.ok(f.payload.length <= maxFrameSize)
      if (isControlOpcode(f.opcode)) assert.ok(f.fin && f.payload.length <= 125)
    }
    assert.ok(parser.bufferedBytes <= maxFrameSize + 14, `parser buffers ${parser.bufferedBytes}`)
  }
}

/** Feed a session; it must never throw, report at most one error (last), stay within its limits. */
function checkSession (role: Role, chunks: readonly Uint8Array[], limits: Limits): void {
  const session = new Session({ role, mask: rfcMask, ...limits })
  const frameLimit = Math.min(limits.maxFrameSize, limits.maxMessageSize)
  let ended = false
  for (const c of chunks) {
    const events = session.receive(c)
    if (ended) assert.deepEqual(events, [], 'nothing after an error or a close')
    for (const [i, e] of events.entries()) {
      if (e.type === 'error' || e.type === 'close') {
        assert.equal(i, events.length - 1, 'error and close are the last event')
        ended = true
      }
      if (e.type === 'error') {
        assert.ok(e.error instanceof ProtocolError)
        assert.notEqual(e.error.code, 'WS_ERR_INTERNAL', 'no internal error on any input')
        assert.equal(session.state, 'closed')
      }
      if (e.type === 'message') {
        assert.ok(e.data.length <= limits.maxMessageSize)
        if (!e.binary) assert.ok(nodeIsUtf8(e.data))
      }
    }
    assert.ok(session.bufferedBytes <= frameLimit + 14 + limits.maxMessageSize, `session buffers ${session.bufferedBytes}`)
  }
}

test('(c) random bytes in random chunks give frames or a ProtocolError, never more buffered than maxFrameSize + 14', (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat({ max: 300 }), { maxLength: 8 }), fc.constantFrom<Role>('server', 'client'), fc.option(fc.integer({ min: 0, max: 200 }), { nil: undefined }), (bytes, cuts, role, max) => {
    checkParser(role, cutCopy(bytes, cuts), max ?? 16 * 1024 * 1024)
  }), { numRuns: 1500 })
  t.pass()
})

test('(c) random bytes never make Session.receive throw, and its buffering stays bounded', (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), fc.array(fc.nat({ max: 300 }), { maxLength: 8 }), fc.constantFrom<Role>('server', 'client'), limitsArb, (bytes, cuts, role, limits) => {
    checkSession(role, cutCopy(bytes, cuts), limits)
  }), { numRuns: 1500 })
  t.pass()
})

/** A valid stream's bytes with some bytes overwritten, inserted or removed, or cut short. */
const mutatedArb = fc.tuple(streamArb, fc.nat(), fc.constantFrom<Role>('server', 'client'), fc.array(fc.tuple(fc.constantFrom('set', 'insert', 'delete', 'truncate'), fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 4 }))
  .map(([stream, seed, role, mutations]) => {
    let bytes = Array.from(encodeFor(role, expand(stream).frames, seed))
    for (const [kind, at, value] of mutations) {
      const i = bytes.length === 0 ? 0 : at % bytes.length
      if (kind === 'set') bytes[i] = value
      else if (kind === 'insert') bytes.splice(i, 0, value)
      else if (kind === 'delete') bytes.splice(i, 1)
      else bytes = bytes.slice(0, i)
    }
    return { role, bytes: Uint8Array.from(bytes) }
  })

test('(c) mutated valid streams give frames or a ProtocolError; parser and session stay within their limits', (t) => {
  fc.assert(fc.property(mutatedArb, fc.array(fc.nat({ max: 1 << 18 }), { maxLength: 8 }), limitsArb, ({ role, bytes }, rawCuts, limits) => {
    const cuts = rawCuts.map((c) => c % (bytes.length + 1))
    checkParser(role, cutCopy(bytes, cuts), limits.maxFrameSize)
    checkParser(role, cutCopy(bytes, cuts), 16 * 1024 * 1024)
    checkSession(role, cutCopy(bytes, cuts), limits)
    checkSession(role, cutCopy(bytes, cuts), { maxFrameSize: 1 << 24, maxMessageSize: 1 << 24, maxFragments: 65536 })
  }), { numRuns: 600 })
  t.pass()
})
