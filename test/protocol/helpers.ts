/**
 * Shared helpers for the protocol tests: hex in and out, the RFC 6455 §5.7 mask key, frame
 * builders that write any header (legal or not), and wrappers that feed a parser or a session.
 */

import { FrameParser, ProtocolError, Session, encodeFrame, type Frame, type ProtocolErrorCode, type Role, type SessionEvent, type SessionOptions } from '../../src/protocol/index.js'
import type { ExecutionContext } from 'ava'

/** `'81 05 48'` → bytes. Whitespace is ignored. */
export function hex (text: string): Uint8Array {
  const clean = text.replace(/\s+/g, '')
  if (clean.length % 2 !== 0) throw new Error(`odd hex: ${text}`)
  const out = new Uint8Array(clean.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16)
  return out
}

/** Bytes → `'81 05 48'`, for readable assertion failures. */
export function toHex (bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ')
}

export function concat (parts: readonly Uint8Array[]): Uint8Array {
  let total = 0
  for (const p of parts) total += p.length
  const out = new Uint8Array(total)
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

/** The masking key of every RFC 6455 §5.7 example. */
export const RFC_KEY = [0x37, 0xfa, 0x21, 0x3d] as const

/** A mask source that always writes the RFC's key, so client output is byte-exact. */
export function rfcMask (key: Uint8Array): void {
  key.set(RFC_KEY)
}

/** A mask source that writes a fixed key. */
export function fixedMask (k: readonly number[]): (key: Uint8Array) => void {
  return (key) => { key.set(k) }
}

/** The reference §5.3 masking: byte i XOR key[i mod 4], into a new array. */
export function naiveMask (data: Uint8Array, key: readonly number[], offset = 0): Uint8Array {
  const out = new Uint8Array(data.length)
  for (let i = 0; i < data.length; i++) out[i] = data[i] ^ key[(i + offset) & 3]
  return out
}

export interface RawFrame {
  fin?: boolean
  /** The whole first-byte RSV field, e.g. 0x40 for RSV1. */
  rsv?: number
  opcode: number
  payload?: Uint8Array
  /** Mask with this key (the frame then has the mask bit set). */
  key?: readonly number[]
  /** Force the length field: 'minimal' (default), or 16 / 64 to use a longer form than needed. */
  lengthForm?: 'minimal' | 16 | 64
  /** Write this declared length instead of the payload's (the payload bytes are still appended). */
  declaredLength?: number
  /** Set the mask bit without appending a key (for headers that must fail before the key). */
  maskBitOnly?: boolean
}

/** Build a frame's bytes by hand, including illegal ones the encoder would never produce. */
export function rawFrame (f: RawFrame): Uint8Array {
  const payload = f.payload ?? new Uint8Array(0)
  const length = f.declaredLength ?? payload.length
  const masked = f.key !== undefined || f.maskBitOnly === true
  const form = f.lengthForm ?? 'minimal'
  const head: number[] = [((f.fin ?? true) ? 0x80 : 0) | (f.rsv ?? 0) | f.opcode]
  const m = masked ? 0x80 : 0
  if (form === 64 || (form === 'minimal' && length > 0xffff)) {
    head.push(m | 127)
    const hi = Math.floor(length / 0x100000000)
    const lo = length >>> 0
    head.push(hi >>> 24, (hi >>> 16) & 0xff, (hi >>> 8) & 0xff, hi & 0xff, lo >>> 24, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff)
  } else if (form === 16 || (form === 'minimal' && length > 125)) {
    head.push(m | 126, length >>> 8, length & 0xff)
  } else {
    head.push(m | length)
  }
  if (f.key !== undefined) head.push(...f.key)
  const body = f.key !== undefined ? naiveMask(payload, f.key) : payload
  return concat([new Uint8Array(head), body])
}

/** A key to mask with when the frame goes to a server (any key does; this one is not the RFC's). */
export const TEST_KEY = [0x12, 0x34, 0x56, 0x78] as const

/** Build a legal frame as the peer of `role` would send it: masked towards a server. */
export function peerFrame (role: Role, f: Omit<RawFrame, 'key'>): Uint8Array {
  return rawFrame({ ...f, key: role === 'server' ? TEST_KEY : undefined })
}

/** Session options with the RFC mask for a client, so client output is deterministic. */
export function sessionOptions (role: Role, extra: Partial<SessionOptions> = {}): SessionOptions {
  return { role, mask: rfcMask, ...extra }
}

export function newSession (role: Role, extra: Partial<SessionOptions> = {}): Session {
  return new Session(sessionOptions(role, extra))
}

/** Everything a session queued, as one buffer. */
export function output (session: Session): Uint8Array {
  return concat(session.takeOutput())
}

/** Parse what a session sent, as its peer would (the peer of a server is a client and vice versa). */
export function outputFrames (session: Session): Frame[] {
  const parser = new FrameParser({ role: session.role === 'server' ? 'client' : 'server' })
  return parser.push(output(session))
}

/** Decode a close frame's payload into code and reason (code undefined when empty). */
export function closePayload (frame: Frame): { code: number | undefined, reason: string } {
  if (frame.payload.length === 0) return { code: undefined, reason: '' }
  return { code: (frame.payload[0] << 8) | frame.payload[1], reason: new TextDecoder().decode(frame.payload.subarray(2)) }
}

/** Feed a parser chunk by chunk (copying, since parsers unmask in place); returns all frames. */
export function parseAll (parser: FrameParser, chunks: readonly Uint8Array[]): Frame[] {
  const frames: Frame[] = []
  for (const c of chunks) frames.push(...parser.push(c.slice()))
  return frames
}

/** Feed a session chunk by chunk (copying); returns all events. */
export function receiveAll (session: Session, chunks: readonly Uint8Array[]): SessionEvent[] {
  const events: SessionEvent[] = []
  for (const c of chunks) events.push(...session.receive(c.slice()))
  return events
}

/** Split `bytes` at the given cut points (sorted, deduplicated, within range). */
export function splitAt (bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => Math.max(0, Math.min(bytes.length, c))))].sort((a, b) => a - b)
  const out: Uint8Array[] = []
  let prev = 0
  for (const p of points) {
    out.push(bytes.subarray(prev, p))
    prev = p
  }
  out.push(bytes.subarray(prev))
  return out
}

export function oneByteAtATime (bytes: Uint8Array): Uint8Array[] {
  return Array.from(bytes, (_, i) => bytes.subarray(i, i + 1))
}

/** A server's unmasked encoding of a frame as one buffer. */
export function serverFrame (opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  return concat(encodeFrame({ opcode, payload, fin }, { role: 'server' }))
}

/** The parser throws a ProtocolError with this code and close code. */
export function assertParseError (t: ExecutionContext, fn: () => unknown, code: ProtocolErrorCode, closeCode: number): void {
  const err = t.throws(fn, { instanceOf: ProtocolError })
  t.is(err?.code, code)
  t.is(err?.closeCode, closeCode)
}

/**
 * The session fails with `code`: the last event is the error, a close frame carrying the close
 * code is queued (when none was sent before), the state is closed and the transport may close.
 */
export function assertSessionFailed (t: ExecutionContext, session: Session, events: readonly SessionEvent[], code: ProtocolErrorCode, closeCode: number): void {
  const last = events[events.length - 1]
  t.is(last?.type, 'error', `events: ${events.map((e) => e.type).join(',')}`)
  if (last?.type !== 'error') return
  t.is(last.error.code, code)
  t.is(last.error.closeCode, closeCode)
  t.is(session.state, 'closed')
  t.true(session.shouldCloseTransport)
  t.is(session.sentCloseCode, closeCode)
  const frames = outputFrames(session)
  const close = frames[frames.length - 1]
  t.is(close?.opcode, 0x8)
  if (close !== undefined) t.is(closePayload(close).code, closeCode)
}
