/**
 * {@link Gatherer}: collects the parts of something that arrives in pieces (a frame split across
 * reads, the fragments of a message) so that the memory it holds stays a small multiple of the
 * bytes it counts. A part that is large and most of its own buffer is kept by reference
 * (zero-copy); any other part is copied into an owned tail, so a 1-byte part never pins the
 * 64 KiB socket read it arrived in.
 *
 * @example
 * ```ts
 * const g = new Gatherer()
 * g.append(new Uint8Array([1, 2]))
 * g.append(new Uint8Array([3]))
 * g.join((n) => new Uint8Array(n)) // Uint8Array [1, 2, 3]
 * ```
 *
 * @packageDocumentation
 */

/** Parts at least this large, and at least half of their buffer, are kept by reference. */
export const KEEP_BY_REFERENCE = 4096
/** Bytes an item held in a list costs besides its payload: a typed-array view and its slot (measured ~110-250 B on V8). */
export const ITEM_OVERHEAD = 256
/** The first tail's size; later tails grow with what was copied, up to {@link TAIL_MAX}. */
const TAIL_MIN = 1024
const TAIL_MAX = 64 * 1024

/** Collects byte parts in order; see the module comment for what is copied. */
export class Gatherer {
  /** The parts so far, in order: by-reference parts and slices of owned tails. */
  readonly parts: Uint8Array[] = []
  /** Bytes appended. */
  bytes = 0
  /** Memory held beyond the bytes: tail room and pinned buffer space, plus a per-part overhead. */
  private slack = 0
  private tail: Uint8Array | undefined
  /** How much of the tail is used; its slice is the last of `parts`. */
  private tailUsed = 0
  private copied = 0

  /**
   * Append `part`. `expected` is how many more bytes are known to follow at most (a frame's
   * declared length), so a tail is never made larger than what can still arrive.
   */
  append (part: Uint8Array, expected = Infinity): void {
    const n = part.length
    if (n === 0) return
    this.bytes += n
    const backing = part.buffer.byteLength
    if (n >= KEEP_BY_REFERENCE && n * 2 >= backing) {
      this.parts.push(part)
      this.slack += backing - n + ITEM_OVERHEAD
      // The next small part starts a new tail after this one: order must be kept.
      this.tail = undefined
      return
    }
    let tail = this.tail
    if (tail === undefined || this.tailUsed + n > tail.length) {
      // Unused room in the old tail stays counted until the gatherer is dropped.
      // Grow with what was copied so far: a part dribbled byte by byte fills few tails, and a
      // lone small part between large ones costs at most TAIL_MIN of room.
      const size = Math.max(n, Math.min(expected, Math.min(TAIL_MAX, Math.max(TAIL_MIN, this.copied))))
      tail = this.tail = new Uint8Array(size)
      this.tailUsed = 0
      this.parts.push(tail)
      this.slack += size + ITEM_OVERHEAD
    }
    tail.set(part, this.tailUsed)
    this.tailUsed += n
    this.slack -= n
    this.copied += n
    this.parts[this.parts.length - 1] = tail.subarray(0, this.tailUsed)
  }

  /** Memory this gatherer holds, in bytes: payload, unused tail room, pinned buffers, per-part overhead. */
  get held (): number {
    return this.bytes + this.slack
  }

  /**
   * All bytes in one buffer, followed by `last` if given (a final part used at once need not be
   * copied in first). A single part is returned as it is.
   */
  join (alloc: (size: number) => Uint8Array, last?: Uint8Array): Uint8Array {
    const parts = this.parts
    const extra = last === undefined ? 0 : last.length
    if (extra === 0 && parts.length === 1) return parts[0]
    if (parts.length === 0 && last !== undefined) return last
    const out = alloc(this.bytes + extra)
    let at = 0
    for (const part of parts) {
      out.set(part, at)
      at += part.length
    }
    if (extra > 0) out.set(last!, at)
    return out
  }
}
