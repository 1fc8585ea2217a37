// Wire-level helpers for the conformance client: frame encoding (including
// deliberately invalid frames), client masking, and an incremental UTF-8
// validator. Independent of src/ on purpose: the judge must not share code
// with the implementation it judges.

import { randomFillSync } from 'node:crypto'

export const OP = {
  CONT: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
} as const

/** Bytes from a "binary string" (each char code 0..255 is one octet), like Python 2 str literals. */
export function bin(s: string): Uint8Array {
  const out = new Uint8Array(s.length)
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c > 0xff) throw new Error(`bin(): char ${c} is not an octet`)
    out[i] = c
  }
  return out
}

export const utf8 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'))

export function hex(h: string): Uint8Array {
  return new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'))
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0
  for (const p of parts) n += p.length
  const out = new Uint8Array(n)
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length))
}

/** `payload` repeated/truncated to exactly `len` octets (Autobahn's payload_len). */
export function repeatTo(payload: Uint8Array, len: number): Uint8Array {
  if (payload.length < 1) throw new Error('repeatTo: empty payload')
  const out = new Uint8Array(len)
  for (let o = 0; o < len; o += payload.length) {
    out.set(o + payload.length <= len ? payload : payload.subarray(0, len - o), o)
  }
  return out
}

// Masks come from a pool filled by the CSPRNG (RFC 6455 §5.3 asks for
// unpredictable masks); one crypto call per 16 KiB masks instead of per frame.
const maskPool = new Uint8Array(16 * 1024)
let maskPos = maskPool.length
export function randomMask(): Uint8Array {
  if (maskPos + 4 > maskPool.length) {
    randomFillSync(maskPool)
    maskPos = 0
  }
  const m = maskPool.slice(maskPos, maskPos + 4)
  maskPos += 4
  return m
}

/** XOR `data` with `mask`, starting at mask phase `offset`; returns a new array. */
export function applyMask(data: Uint8Array, mask: Uint8Array, offset = 0): Uint8Array {
  const out = new Uint8Array(data.length)
  for (let i = 0; i < data.length; i++) out[i] = data[i] ^ mask[(i + offset) & 3]
  return out
}

export interface FrameSpec {
  opcode: number
  payload?: Uint8Array
  fin?: boolean
  /** 3-bit RSV value (RFC 6455 §5.2); non-zero is a protocol error without extensions. */
  rsv?: number
  /** false sends an unmasked client frame (a protocol error, RFC 6455 §5.1). */
  masked?: boolean
  mask?: Uint8Array
}

/** Header octets (incl. mask key) for a frame of `length` payload octets. Minimal length encoding. */
export function frameHeader(opcode: number, length: number, fin: boolean, rsv: number, mask: Uint8Array | null): Uint8Array {
  const ext = length <= 125 ? 0 : length <= 0xffff ? 2 : 8
  const h = new Uint8Array(2 + ext + (mask ? 4 : 0))
  h[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f)
  h[1] = (mask ? 0x80 : 0) | (ext === 0 ? length : ext === 2 ? 126 : 127)
  if (ext === 2) {
    h[2] = length >>> 8
    h[3] = length & 0xff
  } else if (ext === 8) {
    const dv = new DataView(h.buffer)
    dv.setUint32(2, Math.floor(length / 2 ** 32))
    dv.setUint32(6, length >>> 0)
  }
  if (mask) h.set(mask, 2 + ext)
  return h
}

/** One complete frame on the wire (header + masked payload). */
export function encodeFrame(f: FrameSpec): Uint8Array {
  const payload = f.payload ?? new Uint8Array(0)
  const mask = f.masked === false ? null : (f.mask ?? randomMask())
  const header = frameHeader(f.opcode, payload.length, f.fin ?? true, f.rsv ?? 0, mask)
  return concat([header, mask ? applyMask(payload, mask) : payload])
}

/** Close frame payload: optional 2-octet code (any 16-bit value, valid or not) + raw reason octets. */
export function closePayload(code?: number, reason?: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = []
  if (code !== undefined) parts.push(new Uint8Array([(code >>> 8) & 0xff, code & 0xff]))
  if (reason !== undefined) parts.push(reason)
  return concat(parts)
}

/**
 * Incremental UTF-8 validator (RFC 3629: no overlongs, no surrogates, max U+10FFFF).
 * feed() returns false at the first octet that can never be part of valid UTF-8,
 * so the caller can fail fast; complete() says whether input ended on a code point boundary.
 */
export class Utf8Validator {
  private need = 0
  private lo = 0x80
  private hi = 0xbf
  private bad = false

  reset(): void {
    this.need = 0
    this.lo = 0x80
    this.hi = 0xbf
    this.bad = false
  }

  feed(data: Uint8Array): boolean {
    if (this.bad) return false
    for (let i = 0; i < data.length; i++) {
      const b = data[i]
      if (this.need === 0) {
        if (b < 0x80) continue
        if (b >= 0xc2 && b <= 0xdf) this.start(1, 0x80, 0xbf)
        else if (b === 0xe0) this.start(2, 0xa0, 0xbf) // no overlong 3-octet forms
        else if (b === 0xed) this.start(2, 0x80, 0x9f) // no UTF-16 surrogates
        else if (b >= 0xe1 && b <= 0xef) this.start(2, 0x80, 0xbf)
        else if (b === 0xf0) this.start(3, 0x90, 0xbf) // no overlong 4-octet forms
        else if (b >= 0xf1 && b <= 0xf3) this.start(3, 0x80, 0xbf)
        else if (b === 0xf4) this.start(3, 0x80, 0x8f) // nothing above U+10FFFF
        else {
          this.bad = true
          return false
        }
      } else {
        if (b < this.lo || b > this.hi) {
          this.bad = true
          return false
        }
        this.lo = 0x80
        this.hi = 0xbf
        this.need--
      }
    }
    return true
  }

  complete(): boolean {
    return !this.bad && this.need === 0
  }

  private start(need: number, lo: number, hi: number): void {
    this.need = need
    this.lo = lo
    this.hi = hi
  }
}

export function isValidUtf8(data: Uint8Array): boolean {
  const v = new Utf8Validator()
  return v.feed(data) && v.complete()
}
