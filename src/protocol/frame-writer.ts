/**
 * The session's outbound side: frames encoded into the output queue. Small frames are copied,
 * header and payload, into a slab, so many of them leave in one write; a large payload is queued
 * by reference behind its header (a client masks a copy). It decides nothing about what may be
 * sent: the {@link Session} does that and calls it per frame.
 *
 * @packageDocumentation
 */

import { frameHeaderSize, writeFrameHeader, type MaskSource } from './encode.js'
import { applyMask } from './mask.js'

/** Frames whose header and payload fit in this many bytes are copied into the output slab. */
export const COPY_LIMIT = 4096
/** Slabs start small, so an idle connection holds none and a quiet one little, and double up to this. */
export const SLAB_MAX = 64 * 1024
/** The first slab's size. */
export const SLAB_MIN = 1024
/** A slab with less room than this left is let go after a flush rather than kept. */
export const SLAB_KEEP = 256
/** Room for the longest header: 2 bytes, 8 of length, 4 of mask key (§5.2). */
const MAX_HEADER = 14
const EMPTY = new Uint8Array(0)

/** The default allocator: zeroed memory (the Node driver passes `Buffer.allocUnsafe`). */
export function newBytes (size: number): Uint8Array {
  return new Uint8Array(size)
}

/** The default maker of views of a slab (the Node driver makes `Buffer`s). */
export function plainView (buffer: ArrayBufferLike, byteOffset: number, length: number): Uint8Array {
  return new Uint8Array(buffer, byteOffset, length)
}

/**
 * The last `length` (< 16) bytes of a payload: `src` at `start` XOR `key` into `out` at `at`,
 * four bytes a step, then single bytes with the key's octets in order (`length` counts from a
 * multiple of 4 into the payload, so its first byte takes the key's first octet).
 */
function copyTail (out: DataView, at: number, src: DataView, start: number, length: number, key: number): void {
  let i = 0
  for (; i + 4 <= length; i += 4) out.setInt32(at + i, src.getInt32(start + i) ^ key)
  for (; i < length; i++) out.setUint8(at + i, src.getUint8(start + i) ^ (key >>> (24 - ((i & 3) << 3))))
}

/** Encodes frames into a queue of byte arrays for the transport, in order. */
export class FrameWriter {
  /** A client's writer: every frame masked with a fresh key (§5.3). */
  readonly masked: boolean
  private readonly mask: MaskSource | undefined
  private readonly alloc: (size: number) => Uint8Array
  private readonly view: (buffer: ArrayBufferLike, byteOffset: number, length: number) => Uint8Array
  /** The current frame's masking key (a server never masks). */
  private readonly maskKey: Uint8Array
  /** Taken slices of slabs and large payloads; made when first needed. */
  private output: Uint8Array[] | undefined
  private outputBytes = 0
  private slab: Uint8Array = EMPTY
  /**
   * The slab's DataView, for {@link FrameWriter.frameFrom}'s copies and for the slab's buffer and
   * offset when a view of it is taken (a typed array's `buffer` is a call into C++, a DataView's
   * is not); made when first needed.
   */
  private slabView: DataView | undefined = undefined
  /** The last `bytes` given to {@link FrameWriter.frameAt} (a read being handled) and its DataView; let go at {@link FrameWriter.take}. */
  private source: Uint8Array | undefined = undefined
  private sourceView: DataView | undefined = undefined
  private nextSlabSize = SLAB_MIN
  /** Where the slab's bytes not yet in `output` start, and where its free room starts. */
  private slabStart = 0
  private slabUsed = 0

  /**
   * A writer for `masked` (client) or unmasked (server) frames.
   * @throws TypeError for a masked writer without a `mask` source.
   */
  constructor (masked: boolean, mask: MaskSource | undefined, alloc: (size: number) => Uint8Array = newBytes, view = plainView) {
    if (masked && mask === undefined) throw new TypeError('a client session needs a mask source')
    this.masked = masked
    this.mask = mask
    this.alloc = alloc
    this.view = view
    this.maskKey = masked ? new Uint8Array(4) : EMPTY
  }

  /** Bytes queued for {@link FrameWriter.take}. */
  get pending (): number {
    return this.outputBytes + (this.slabUsed - this.slabStart)
  }

  /**
   * Is an unmasked frame with a payload of `length` bytes past the copy limit, so that its
   * payload is queued by reference (the very object, among what {@link FrameWriter.take} returns)?
   */
  static byReference (length: number): boolean {
    return frameHeaderSize(length, false) + length > COPY_LIMIT
  }

  /** Queue one frame. The payload is copied when small; otherwise queued as it is (a client masks a copy). */
  frame (opcode: number, payload: Uint8Array, fin: boolean, rsv1: boolean): void {
    const length = payload.length
    const masked = this.masked
    const headerLen = frameHeaderSize(length, masked)
    if (headerLen + length <= COPY_LIMIT) {
      // Small frame: header and payload copied into the slab, so many frames leave in one write.
      if (this.slabUsed + headerLen + length > this.slab.length) this.newSlab(headerLen + length)
      const slab = this.slab
      let at = writeFrameHeader(slab, this.slabUsed, opcode, length, fin, rsv1, masked)
      if (masked) at = this.writeMaskKey(slab, at)
      slab.set(payload, at)
      if (masked && length > 0) {
        const key = this.maskKey
        applyMask(slab.subarray(at, at + length), key[0], key[1], key[2], key[3])
      }
      this.slabUsed = at + length
      return
    }
    // Large frame: a header in the slab, then the payload by reference (a masked copy for a client).
    this.header(opcode, length, fin, rsv1)
    let body = payload
    if (masked) {
      body = this.alloc(length)
      body.set(payload)
      const key = this.maskKey
      applyMask(body, key[0], key[1], key[2], key[3])
    }
    ;(this.output ??= []).push(body)
    this.outputBytes += length
  }

  /**
   * Queue one whole frame (FIN, no RSV bit) whose payload is `bytes[start, end)`: a small one
   * from a server is copied into the slab by {@link FrameWriter.frameFrom}, with no view of it made.
   */
  frameAt (opcode: number, bytes: Uint8Array, start: number, end: number): void {
    if (this.masked || end - start > 125) {
      this.frame(opcode, bytes.subarray(start, end), true, false)
      return
    }
    if (bytes !== this.source) {
      this.source = bytes
      this.sourceView = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    }
    this.frameFrom(opcode, this.sourceView!, start, end, 0)
  }

  /**
   * Queue one whole small frame (FIN, no RSV bit, at most 125 bytes) from a server, whose payload
   * is the bytes of `src` in `[start, end)` masked with `key` (as `src.getInt32` reads a masking
   * key; 0 for bytes not masked): copied into the slab and unmasked in the same pass (§5.3), four
   * bytes a step, so a received frame echoed is read and written once.
   */
  frameFrom (opcode: number, src: DataView, start: number, end: number, key: number): void {
    const length = end - start
    // Kept short, so the parser's loop can inline it: anything else goes the long way.
    if (this.masked || length > 125) return this.frameFromCopy(opcode, src, start, length, key)
    if (this.slabUsed + 2 + length > this.slab.length) this.newSlab(2 + length)
    const slab = this.slab
    const head = this.slabUsed
    slab[head] = 0x80 | opcode
    slab[head + 1] = length
    const at = head + 2
    const out = this.slabView ??= new DataView(slab.buffer, slab.byteOffset, slab.byteLength)
    let i = 0
    // Sixteen bytes a round: the views' checks once per round rather than per word.
    for (; i + 16 <= length; i += 16) {
      const s = start + i
      const o = at + i
      out.setInt32(o, src.getInt32(s) ^ key)
      out.setInt32(o + 4, src.getInt32(s + 4) ^ key)
      out.setInt32(o + 8, src.getInt32(s + 8) ^ key)
      out.setInt32(o + 12, src.getInt32(s + 12) ^ key)
    }
    if (i < length) copyTail(out, at + i, src, start + i, length - i, key)
    this.slabUsed = at + length
  }

  /** {@link FrameWriter.frameFrom} for a client (which masks with its own key) or a payload over 125 bytes (a longer header). */
  private frameFromCopy (opcode: number, src: DataView, start: number, length: number, key: number): void {
    const payload = new Uint8Array(length)
    for (let i = 0; i < length; i++) payload[i] = src.getUint8(start + i) ^ (key >>> (24 - ((i & 3) << 3)))
    this.frame(opcode, payload, true, false)
  }

  /** One frame whose payload is `parts`, in order: the parts are queued as they are (a client masks a copy), never joined. */
  parts (opcode: number, parts: readonly Uint8Array[], rsv1: boolean): void {
    let length = 0
    for (const p of parts) length += p.length
    this.header(opcode, length, true, rsv1)
    const key = this.maskKey
    let offset = 0
    for (const p of parts) {
      let body = p
      if (this.masked) {
        body = this.alloc(p.length)
        body.set(p)
        // The key's cycle goes on across the parts (§5.3: octet i is XORed with key octet i mod 4).
        applyMask(body, key[0], key[1], key[2], key[3], offset)
      }
      offset += p.length
      ;(this.output ??= []).push(body)
      this.outputBytes += body.length
    }
  }

  /** Queue a whole frame encoded elsewhere, by reference: it must not change. */
  encoded (frame: Uint8Array): void {
    if (this.slabUsed > this.slabStart) this.flushSlab()
    ;(this.output ??= []).push(frame)
    this.outputBytes += frame.length
  }

  /**
   * Take what is queued, in order; the caller writes it. With `max`, at most `max` bytes: a
   * long chunk is cut, and the rest stays queued for the next take.
   */
  take (max = Infinity): Uint8Array[] {
    // The read that frameAt copied from must not stay pinned.
    this.source = undefined
    this.sourceView = undefined
    if (this.slabUsed > this.slabStart) this.flushSlab()
    // Let a nearly full slab go now rather than hold it while the connection idles.
    if (this.slab.length - this.slabUsed < SLAB_KEEP) {
      this.slab = EMPTY
      this.slabView = undefined
      this.slabStart = 0
      this.slabUsed = 0
    }
    const out = this.output
    // Never the internal array, so a caller's array never grows behind its back.
    if (out === undefined) return []
    if (this.outputBytes <= max) {
      this.output = undefined
      this.outputBytes = 0
      return out
    }
    // The first `max` bytes; the chunk that crosses it is cut, its rest first in what stays.
    const taken: Uint8Array[] = []
    let bytes = 0
    let i = 0
    while (bytes < max) {
      const chunk = out[i]
      if (bytes + chunk.length <= max) {
        taken.push(chunk)
        bytes += chunk.length
        i++
      } else {
        const cut = max - bytes
        taken.push(chunk.subarray(0, cut))
        out[i] = chunk.subarray(cut)
        bytes = max
      }
    }
    this.output = out.slice(i)
    this.outputBytes -= bytes
    return taken
  }

  /**
   * Nothing holds what {@link FrameWriter.take} returned any more (the caller's transport copied
   * it, into the kernel say): the slab room it took is written again from its start, so a
   * connection whose every batch is written at once keeps reusing the same few bytes, warm in
   * cache, rather than walking through fresh slabs. Does nothing once more is queued.
   */
  takenReleased (): void {
    if (this.output === undefined && this.slabStart === this.slabUsed) {
      this.slabStart = 0
      this.slabUsed = 0
    }
  }

  /** A header (and mask key) alone in the slab, flushed so the payload can follow by reference. */
  private header (opcode: number, length: number, fin: boolean, rsv1: boolean): void {
    if (this.slabUsed + MAX_HEADER > this.slab.length) this.newSlab(MAX_HEADER)
    let at = writeFrameHeader(this.slab, this.slabUsed, opcode, length, fin, rsv1, this.masked)
    if (this.masked) at = this.writeMaskKey(this.slab, at)
    this.slabUsed = at
    this.flushSlab()
  }

  private writeMaskKey (slab: Uint8Array, at: number): number {
    const key = this.maskKey
    this.mask!(key)
    slab[at] = key[0]; slab[at + 1] = key[1]; slab[at + 2] = key[2]; slab[at + 3] = key[3]
    return at + 4
  }

  private flushSlab (): void {
    const slab = this.slab
    const v = this.slabView ??= new DataView(slab.buffer, slab.byteOffset, slab.byteLength)
    ;(this.output ??= []).push(this.view(v.buffer, v.byteOffset + this.slabStart, this.slabUsed - this.slabStart))
    this.outputBytes += this.slabUsed - this.slabStart
    this.slabStart = this.slabUsed
  }

  /** Queued slices of the old slab stay valid: a fresh slab is taken rather than reused. */
  private newSlab (atLeast: number): void {
    if (this.slabUsed > this.slabStart) this.flushSlab()
    // A connection that keeps filling slabs gets bigger ones: fewer allocations, larger writes.
    const size = Math.max(atLeast, this.nextSlabSize)
    if (this.slab !== EMPTY && this.nextSlabSize < SLAB_MAX) this.nextSlabSize *= 2
    this.slab = this.alloc(size)
    this.slabView = undefined
    this.slabStart = 0
    this.slabUsed = 0
  }
}
