/**
 * Invariants over generated input (fast-check):
 * (a) any split of a valid stream gives the same frames, events and output as the unsplit stream;
 * (b) encode → parse and Session.send → Session.receive round-trip, for both roles.
 * Hostile input (random bytes, mutated streams, hand-built frames) is the fuzz targets' job:
 * test/fuzz/targets.ts, run briefly by test/fuzz/fuzz.test.ts and for minutes by `npm run fuzz`.
 * Runs are bounded so the file takes a few seconds.
 */

import assert from 'node:assert/strict'
import test from 'ava'
import fc from 'fast-check'
import { FrameParser, Opcode, Session, encodeFrame, isControlOpcode, type MessageReceiver, type Role } from '../../src/protocol/index.js'
import { concat, fixedMask, oneByteAtATime, rfcMask, splitAt } from './helpers.js'
import { controlPayloadArb, cutCopy, encodeFor, expand, hexOf, normEvent, normFrame, normSpec, other, payloadArb, streamArb, textArb } from './arbitraries.js'

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

/**
 * A server session that echoes every message as the driver's `sink(source)` does: whole small
 * messages by the session itself on the reads `answers` says yes to (echoesChunk), the others as
 * they are handed over (onMessageAt, onMessage, onMessageParts, then the message events).
 * Returns the frames it wrote, as the client parses them, and how many the session echoed itself.
 */
function echoChunks (chunks: readonly Uint8Array[], answers: readonly boolean[]): { data: string[], controls: string[], echoed: number } {
  const session = new Session({ role: 'server', deferClose: true })
  let asked = 0
  let echoed = 0
  const receiver: MessageReceiver = {
    wantsParts: true,
    onMessage: (data, binary) => { assert.ok(session.send(data, binary)) },
    onMessageAt: (chunk, start, end, binary) => { assert.ok(session.sendAt(chunk, start, end, binary)) },
    onMessageParts: (parts) => session.sendParts(parts),
    echoesChunk: () => answers[asked++ % answers.length],
    onEchoed: (count) => { echoed += count }
  }
  const out: Uint8Array[] = []
  for (const c of chunks) {
    for (const e of session.receive(c, receiver)) if (e.type === 'message') assert.ok(session.send(e.data, e.binary))
    // Taken after each read, as a driver's flush does (the slab is written again behind it).
    const taken = session.takeOutput()
    out.push(concat(taken.map((b) => b.slice())))
    session.outputReleased()
  }
  session.sendPendingClose()
  out.push(concat(session.takeOutput()))
  const data: string[] = []
  const controls: string[] = []
  for (const f of new FrameParser({ role: 'client' }).push(concat(out))) (f.opcode === Opcode.Text || f.opcode === Opcode.Binary || f.opcode === Opcode.Continuation ? data : controls).push(normFrame(f))
  return { data, controls, echoed }
}

test('(a) an echo (messages handed to a receiver as found, reads echoed by the session itself or not, the output slab released after each read): any split gives back every message as one frame and every ping as a pong, in order, byte for byte', (t) => {
  let echoedInAll = 0
  fc.assert(fc.property(streamArb, fc.boolean(), fc.nat(), fc.array(fc.nat({ max: 1 << 18 }), { maxLength: 12 }), fc.array(fc.boolean(), { minLength: 1, maxLength: 5 }), (generated, whole, keySeed, rawCuts, answers) => {
    // Half the streams have every message in one frame: the ones the session may echo itself.
    const stream = whole ? { ...generated, items: generated.items.map((item) => item.kind === 'message' ? { ...item, message: { ...item.message, cuts: [] } } : item) } : generated
    const { frames, events } = expand(stream)
    const bytes = encodeFor('server', frames, keySeed)
    const want = events.flatMap((e) => e.type === 'message' ? [`${e.binary ? Opcode.Binary : Opcode.Text}/1000/${hexOf(e.data)}`] : [])
    const pongs = events.flatMap((e) => e.type === 'ping' ? [`${Opcode.Pong}/1000/${hexOf(e.data)}`] : [])
    const close = events.find((e) => e.type === 'close')
    const wantControls = close === undefined ? pongs : [...pongs, `${Opcode.Close}/1000/${hexOf(new Uint8Array([close.code >>> 8, close.code & 0xff]))}`]
    for (const chunks of [[bytes.slice()], cutCopy(bytes, rawCuts.map((c) => c % (bytes.length + 1)))]) {
      const got = echoChunks(chunks, answers)
      assert.deepEqual(got.data, want)
      assert.deepEqual(got.controls, wantControls)
      echoedInAll += got.echoed
    }
  }), { numRuns: 300 })
  // The session's own echo was taken, not only the hand-overs.
  t.true(echoedInAll > 20, `${echoedInAll} messages echoed by the session itself`)
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
