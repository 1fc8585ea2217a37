// Client-side frame construction shared by the parse benchmark and the load generator.
// Deterministic (seeded) so every process builds byte-identical streams.

export const OP_TEXT = 0x1
export const OP_BINARY = 0x2
export const OP_CLOSE = 0x8

/** xorshift32: tiny, deterministic, good enough for payload and mask bytes. */
export function prng (seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9
  return () => {
    s ^= s << 13; s >>>= 0
    s ^= s >>> 17
    s ^= s << 5; s >>>= 0
    return s
  }
}

export function fillRandom (buf: Uint8Array, next: () => number): void {
  for (let i = 0; i < buf.length; i++) buf[i] = next() & 0xff
}

export function headerLength (payloadLength: number, masked: boolean): number {
  const base = payloadLength < 126 ? 2 : payloadLength < 65536 ? 4 : 10
  return base + (masked ? 4 : 0)
}

/** Writes one masked, final frame into `out` at `offset`; returns the new offset. */
export function writeMaskedFrame (out: Uint8Array, offset: number, opcode: number, payload: Uint8Array, mask: number): number {
  const n = payload.length
  out[offset++] = 0x80 | opcode
  if (n < 126) {
    out[offset++] = 0x80 | n
  } else if (n < 65536) {
    out[offset++] = 0x80 | 126
    out[offset++] = n >>> 8
    out[offset++] = n & 0xff
  } else {
    out[offset++] = 0x80 | 127
    // payloads here stay far below 2^32
    out[offset++] = 0; out[offset++] = 0; out[offset++] = 0; out[offset++] = 0
    out[offset++] = (n >>> 24) & 0xff
    out[offset++] = (n >>> 16) & 0xff
    out[offset++] = (n >>> 8) & 0xff
    out[offset++] = n & 0xff
  }
  const m0 = (mask >>> 24) & 0xff
  const m1 = (mask >>> 16) & 0xff
  const m2 = (mask >>> 8) & 0xff
  const m3 = mask & 0xff
  out[offset++] = m0; out[offset++] = m1; out[offset++] = m2; out[offset++] = m3
  const key = [m0, m1, m2, m3]
  for (let i = 0; i < n; i++) out[offset + i] = payload[i] ^ key[i & 3]
  return offset + n
}

export function encodeMaskedFrame (opcode: number, payload: Uint8Array, mask: number): Buffer {
  const out = Buffer.allocUnsafe(headerLength(payload.length, true) + payload.length)
  writeMaskedFrame(out, 0, opcode, payload, mask)
  return out
}

/** `count` copies of one masked frame back to back (the load generator's send batch). */
export function repeatFrame (frame: Uint8Array, count: number): Buffer {
  const out = Buffer.allocUnsafe(frame.length * count)
  for (let i = 0; i < count; i++) out.set(frame, i * frame.length)
  return out
}

/** A valid UTF-8 string of exactly `bytes` bytes, mixing 1-, 2-, 3- and 4-byte sequences. */
export function utf8Text (bytes: number): string {
  const pieces = ['a', 'é', '€', '😀', 'websocket ', 'ü']
  let s = ''
  let len = 0
  let i = 0
  while (true) {
    const p = pieces[i++ % pieces.length]
    const l = Buffer.byteLength(p)
    if (len + l > bytes) break
    s += p
    len += l
  }
  return s + 'x'.repeat(bytes - len)
}

export interface FrameStream {
  /** masked frames back to back */
  bytes: Buffer
  frames: number
  payloadBytes: number
  /** sum of all unmasked payload bytes, mod 2^32, to check that decoders really unmasked */
  checksum: number
}

/**
 * Masked binary frames of `payloadSize` bytes each, at least `minBytes` of wire bytes in total.
 * Payloads differ per frame and each frame gets its own mask key, as a real client would send.
 */
export function buildStream (payloadSize: number, minBytes: number, seed = 1): FrameStream {
  const frameLen = headerLength(payloadSize, true) + payloadSize
  const frames = Math.ceil(minBytes / frameLen)
  const bytes = Buffer.alloc(frames * frameLen)
  const next = prng(seed)
  // a pool of distinct payloads keeps generation quick for small frames
  const poolSize = Math.max(1, Math.min(64, Math.floor((4 << 20) / payloadSize)))
  const pool: Uint8Array[] = []
  for (let i = 0; i < poolSize; i++) {
    const p = new Uint8Array(payloadSize)
    fillRandom(p, next)
    pool.push(p)
  }
  const poolSums = pool.map(p => sumBytes(p, 0))
  let off = 0
  let checksum = 0
  for (let f = 0; f < frames; f++) {
    const k = f % poolSize
    off = writeMaskedFrame(bytes, off, OP_BINARY, pool[k], next())
    checksum = (checksum + poolSums[k]) >>> 0
  }
  return { bytes, frames, payloadBytes: frames * payloadSize, checksum }
}

export function sumBytes (buf: Uint8Array, acc: number): number {
  let s = acc
  for (let i = 0; i < buf.length; i++) s = (s + buf[i]) >>> 0
  return s
}
