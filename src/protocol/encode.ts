/**
 * Frame encoding, RFC 6455 §5.2. Server frames go out as a header and the caller's payload,
 * uncopied; client frames are masked (§5.3) into one new buffer with a key from the caller's
 * random source, so this module needs no `node:crypto`.
 *
 * @packageDocumentation
 */

import { applyMask } from './mask.js'
import type { Role } from './frame-parser.js'

/** A frame to encode. */
export interface FrameToEncode {
  /** One of {@link Opcode}. */
  opcode: number
  /** The payload, unmasked; a client frame masks a copy of it. */
  payload: Uint8Array
  /** Default true. */
  fin?: boolean
  /** Default false; only an extension sets it. */
  rsv1?: boolean
}

/** Fills a 4-byte array with random bytes, e.g. `crypto.getRandomValues`. */
export type MaskSource = (key: Uint8Array) => unknown

/** How to encode: a client must pass `mask`. */
export interface EncodeOptions {
  /** `'client'` frames are masked (§5.3), `'server'` frames are not. */
  role: Role
  /** The random source for client masking keys (§5.3 requires them unpredictable). */
  mask?: MaskSource
}

/** Size of the header for a payload of `length` bytes. */
export function frameHeaderSize (length: number, masked: boolean): number {
  return (length < 126 ? 2 : length < 65536 ? 4 : 10) + (masked ? 4 : 0)
}

/** Write the header into `out` at `off`; returns the offset after it (before any mask key). */
export function writeFrameHeader (out: Uint8Array, off: number, opcode: number, length: number, fin: boolean, rsv1: boolean, masked: boolean): number {
  out[off] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode
  const m = masked ? 0x80 : 0
  if (length < 126) {
    out[off + 1] = m | length
    return off + 2
  }
  if (length < 65536) {
    out[off + 1] = m | 126
    out[off + 2] = length >>> 8
    out[off + 3] = length & 0xff
    return off + 4
  }
  out[off + 1] = m | 127
  const hi = Math.floor(length / 0x100000000)
  const lo = length >>> 0
  out[off + 2] = hi >>> 24; out[off + 3] = (hi >>> 16) & 0xff; out[off + 4] = (hi >>> 8) & 0xff; out[off + 5] = hi & 0xff
  out[off + 6] = lo >>> 24; out[off + 7] = (lo >>> 16) & 0xff; out[off + 8] = (lo >>> 8) & 0xff; out[off + 9] = lo & 0xff
  return off + 10
}

/**
 * Encode one frame. Returns the buffers to write in order: for a server, the header and the
 * payload itself (not copied; omitted when empty); for a client, one buffer with the masked frame.
 */
export function encodeFrame (frame: FrameToEncode, options: EncodeOptions): Uint8Array[] {
  const { opcode, payload } = frame
  const fin = frame.fin ?? true
  const rsv1 = frame.rsv1 ?? false
  const length = payload.length
  if (options.role === 'server') {
    const header = new Uint8Array(frameHeaderSize(length, false))
    writeFrameHeader(header, 0, opcode, length, fin, rsv1, false)
    return length === 0 ? [header] : [header, payload]
  }
  if (options.mask === undefined) throw new TypeError('a client must pass a mask source to encodeFrame')
  const out = new Uint8Array(frameHeaderSize(length, true) + length)
  const keyAt = writeFrameHeader(out, 0, opcode, length, fin, rsv1, true)
  const key = out.subarray(keyAt, keyAt + 4)
  options.mask(key)
  const body = out.subarray(keyAt + 4)
  body.set(payload)
  applyMask(body, key[0], key[1], key[2], key[3])
  return [out]
}
