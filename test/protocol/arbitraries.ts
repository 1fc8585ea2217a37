/**
 * fast-check generators for the protocol layer, shared by the properties in
 * test/protocol/properties.test.ts and the fuzz targets in test/fuzz/targets.ts: valid frame
 * streams (with the frames and events they must give), their encodings for either role, byte
 * mutations of them, hand-built frames with any header (legal or not), and small limits.
 */

import fc from 'fast-check'
import { Opcode, encodeFrame, type Frame, type Role, type SessionEvent } from '../../src/protocol/index.js'
import { concat, rawFrame, splitAt, type RawFrame } from './helpers.js'

/** The peer's role: a server's peer is a client and vice versa. */
export const other = (role: Role): Role => role === 'server' ? 'client' : 'server'
export const hexOf = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex')

export const roleArb: fc.Arbitrary<Role> = fc.constantFrom<Role>('server', 'client')

/** Payload bytes: mostly small, sometimes at a length-encoding edge (125/126/127, 65535/65536). */
export const payloadArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 10, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom(125, 126, 127, 300, 4095, 4096, 65535, 65536), fc.nat({ max: 255 }))
      .map(([n, seed]) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff))
  }
)
/** Valid UTF-8 of any code point, including 4-byte ones. */
export const textArb: fc.Arbitrary<Uint8Array> = fc.string({ unit: 'binary', maxLength: 30 }).map((s) => new TextEncoder().encode(s))
export const controlPayloadArb = fc.uint8Array({ maxLength: 125 })

export interface Control { opcode: typeof Opcode.Ping | typeof Opcode.Pong, payload: Uint8Array }
export interface Message { binary: boolean, data: Uint8Array, cuts: number[], controls: Control[][] }
export type Item = { kind: 'control', control: Control } | { kind: 'message', message: Message }

export const controlArb: fc.Arbitrary<Control> = fc.record({ opcode: fc.constantFrom(Opcode.Ping, Opcode.Pong), payload: controlPayloadArb })

export const messageArb: fc.Arbitrary<Message> = fc.boolean().chain((binary) =>
  (binary ? payloadArb : textArb).chain((data) => fc.record({
    binary: fc.constant(binary),
    data: fc.constant(data),
    // Fragment boundaries may split a UTF-8 character and may make empty fragments (§5.4 allows both).
    cuts: fc.array(fc.nat({ max: data.length }), { maxLength: 4 }),
    controls: fc.array(fc.array(controlArb, { maxLength: 2 }), { maxLength: 5 })
  })))

export const itemArb: fc.Arbitrary<Item> = fc.oneof(
  { weight: 3, arbitrary: messageArb.map((message) => ({ kind: 'message' as const, message })) },
  { weight: 1, arbitrary: controlArb.map((control) => ({ kind: 'control' as const, control })) }
)

/** A valid stream of messages and control frames. */
export interface Stream {
  items: Item[]
  /** End with a close frame (code 1000–4999 valid range, short reason). */
  close: { code: number, reason: string } | undefined
}

export const streamArb: fc.Arbitrary<Stream> = fc.record({
  items: fc.array(itemArb, { maxLength: 6 }),
  close: fc.option(fc.record({
    code: fc.oneof(fc.constantFrom(1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014), fc.integer({ min: 3000, max: 4999 })),
    reason: fc.string({ maxLength: 20 })
  }), { nil: undefined })
})

export interface FrameSpec { opcode: number, fin: boolean, payload: Uint8Array }

/** The frames of a stream, in wire order, and the session events they must produce. */
export function expand (stream: Stream): { frames: FrameSpec[], events: SessionEvent[] } {
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
export function encodeFor (role: Role, frames: readonly FrameSpec[], keySeed: number): Uint8Array {
  let k = keySeed
  const mask = (key: Uint8Array): void => { key.set([k & 0xff, (k >> 8) & 0xff, (k * 3) & 0xff, (k * 7 + 1) & 0xff]); k++ }
  return concat(frames.flatMap((f) => encodeFrame({ opcode: f.opcode, payload: f.payload, fin: f.fin }, { role: other(role), mask })))
}

// ── normalising, for comparison ─────────────────────────────────────────────────────────────────

export const normFrame = (f: Frame): string => `${f.opcode}/${f.fin ? 1 : 0}${f.rsv1 ? 1 : 0}${f.rsv2 ? 1 : 0}${f.rsv3 ? 1 : 0}/${hexOf(f.payload)}`
export const normEvent = (e: SessionEvent): string => {
  switch (e.type) {
    case 'message': return `message/${e.binary ? 'bin' : 'text'}/${hexOf(e.data)}`
    case 'chunk': return `chunk/${e.binary ? 'bin' : 'text'}/${e.first ? 'first' : ''}${e.last ? 'last' : ''}/${hexOf(e.data)}`
    case 'compressed': return `compressed/${e.binary ? 'bin' : 'text'}/${e.parts.map(hexOf).join('+')}`
    case 'ping': case 'pong': return `${e.type}/${hexOf(e.data)}`
    case 'close': return `close/${e.code}/${e.reason}`
    case 'error': return `error/${e.error.code}`
  }
}
export const normSpec = (f: FrameSpec): string => `${f.opcode}/${f.fin ? 1 : 0}000/${hexOf(f.payload)}`

/** Cut a copy of `bytes` at `cuts` (parsers unmask in place: every feed needs its own copy). */
export const cutCopy = (bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] => splitAt(bytes.slice(), cuts)

/** Cut points anywhere in a buffer: reduce each modulo the buffer's length + 1. */
export const rawCutsArb = fc.array(fc.nat({ max: 1 << 18 }), { maxLength: 12 })
export const fitCuts = (rawCuts: readonly number[], length: number): number[] => rawCuts.map((c) => c % (length + 1))

/**
 * Chunk sizes repeated in turn, e.g. [1, 4095]: a large frame dribbled in pieces of a few
 * sizes, some below and some above the size at which a parser stops copying parts.
 */
export const dribbleArb = fc.array(fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 4000, max: 4200 }), fc.integer({ min: 1, max: 70000 })), { minLength: 1, maxLength: 4 })

/** Copies of `bytes` in chunks of `sizes[0]`, `sizes[1]`, …, starting over at the end of `sizes`. */
export function chunkBySizes (bytes: Uint8Array, sizes: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = sizes[i % sizes.length]
    out.push(bytes.slice(at, at + n))
    at += n
  }
  return out
}

// ── limits ───────────────────────────────────────────────────────────────────────────────────────

export interface Limits { maxFrameSize: number, maxMessageSize: number, maxFragments: number }

/** Limits small enough that generated streams hit them. */
export const limitsArb: fc.Arbitrary<Limits> = fc.record({
  maxFrameSize: fc.integer({ min: 0, max: 300 }),
  maxMessageSize: fc.integer({ min: 0, max: 600 }),
  maxFragments: fc.integer({ min: 1, max: 6 })
})

// ── hostile bytes ────────────────────────────────────────────────────────────────────────────────

/** One edit of a byte string: overwrite, insert, delete or cut short at a position (taken modulo the length). */
export type Mutation = readonly ['set' | 'insert' | 'delete' | 'truncate', number, number]

export const mutationsArb: fc.Arbitrary<Mutation[]> = fc.array(fc.tuple(fc.constantFrom('set' as const, 'insert' as const, 'delete' as const, 'truncate' as const), fc.nat(), fc.nat({ max: 255 })), { minLength: 1, maxLength: 4 })

/** Apply the mutations in order to a copy of `input`. */
export function mutate (input: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let bytes = Array.from(input)
  for (const [kind, at, value] of mutations) {
    const i = bytes.length === 0 ? 0 : at % bytes.length
    if (kind === 'set') bytes[i] = value
    else if (kind === 'insert') bytes.splice(i, 0, value)
    else if (kind === 'delete') bytes.splice(i, 1)
    else bytes = bytes.slice(0, i)
  }
  return Uint8Array.from(bytes)
}

/** A valid stream's bytes with some bytes overwritten, inserted or removed, or cut short. */
export const mutatedArb: fc.Arbitrary<{ role: Role, bytes: Uint8Array }> = fc.tuple(streamArb, fc.nat(), roleArb, mutationsArb)
  .map(([stream, seed, role, mutations]) => ({ role, bytes: mutate(encodeFor(role, expand(stream).frames, seed), mutations) }))

/** A declared payload length: mostly small, sometimes at an encoding edge, huge, or with the 64-bit top bit set. */
const declaredLengthArb = fc.oneof(
  { weight: 2, arbitrary: fc.nat({ max: 130 }) },
  { weight: 1, arbitrary: fc.constantFrom(125, 126, 127, 300, 65535, 65536, 2 ** 31, 2 ** 32 + 1, 2 ** 53, 2 ** 63) }
)

/**
 * One frame header built field by field, mostly legal for a peer of `role` and sometimes not:
 * reserved bits, unknown opcodes, fragmented or long control frames, the wrong mask bit,
 * non-minimal or lying lengths, each rare enough that a sequence of frames usually gets past
 * the parser and reaches the session's rules. Payloads are short and often UTF-8 (or close payloads), so the
 * session's message and close rules are reached as well as the parser's.
 */
export function rawFrameArb (role: Role): fc.Arbitrary<RawFrame> {
  const legalMask = role === 'server'
  const closePayload = fc.tuple(fc.oneof(fc.constantFrom(1000, 1001, 1005, 1006, 1015, 1016, 2999, 3000, 4999, 5000), fc.nat({ max: 65535 })), fc.oneof(textArb, fc.uint8Array({ maxLength: 8 })))
    .map(([code, reason]) => concat([new Uint8Array([code >>> 8, code & 0xff]), reason]).subarray(0, 125))
  return fc.record({
    fin: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    /** Keep fin = false on a control frame (§5.5 forbids it); otherwise a data frame's only. */
    unfinishedControl: fc.oneof({ weight: 40, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    rsv: fc.oneof({ weight: 40, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(0x10, 0x20, 0x40, 0x70) }),
    opcode: fc.oneof({ weight: 40, arbitrary: fc.constantFrom(0x0, 0x1, 0x2, 0x8, 0x9, 0xa) }, { weight: 1, arbitrary: fc.nat({ max: 15 }) }),
    payload: fc.oneof({ weight: 6, arbitrary: textArb }, { weight: 4, arbitrary: fc.uint8Array({ maxLength: 40 }) }, { weight: 2, arbitrary: closePayload }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 120, maxLength: 140 }) }),
    masked: fc.oneof({ weight: 40, arbitrary: fc.constant(legalMask) }, { weight: 1, arbitrary: fc.constant(!legalMask) }),
    key: fc.tuple(fc.nat({ max: 255 }), fc.nat({ max: 255 }), fc.nat({ max: 255 }), fc.nat({ max: 255 })),
    lengthForm: fc.oneof({ weight: 20, arbitrary: fc.constant('minimal' as const) }, { weight: 1, arbitrary: fc.constantFrom(16 as const, 64 as const) }),
    declaredLength: fc.oneof({ weight: 15, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: declaredLengthArb })
  }).map(({ masked, key, declaredLength, unfinishedControl, ...f }) => ({
    ...f,
    fin: f.fin || (f.opcode >= 0x8 && !unfinishedControl),
    ...(masked ? { key } : {}),
    // A declared length that lies is used as it is; a 16-bit form cannot hold a larger one.
    ...(declaredLength !== undefined && !(f.lengthForm === 16 && declaredLength > 0xffff) ? { declaredLength } : {})
  }))
}

/** A sequence of hand-built frames for a peer of a random role, sometimes mutated afterwards. */
export const rawFramesArb: fc.Arbitrary<{ role: Role, bytes: Uint8Array }> = roleArb.chain((role) =>
  fc.tuple(fc.array(rawFrameArb(role), { minLength: 1, maxLength: 8 }), fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: mutationsArb }))
    .map(([frames, mutations]) => {
      const bytes = concat(frames.map(rawFrame))
      return { role, bytes: mutations === undefined ? bytes : mutate(bytes, mutations) }
    }))

/** Uniformly random bytes for a random role. */
export const randomBytesArb: fc.Arbitrary<{ role: Role, bytes: Uint8Array }> = fc.record({ role: roleArb, bytes: fc.uint8Array({ maxLength: 300 }) })

/** Hostile input for a parser or a session: uniform random bytes, mutated valid streams, or hand-built frames. */
export const hostileBytesArb: fc.Arbitrary<{ role: Role, bytes: Uint8Array }> = fc.oneof(
  { weight: 1, arbitrary: randomBytesArb },
  { weight: 2, arbitrary: mutatedArb },
  { weight: 3, arbitrary: rawFramesArb }
)
