/**
 * {@link MemoryBudget}: one bound on the memory a server holds for all its connections together
 * (partial frames, unfinished messages, receive queues, output). Per-connection limits times
 * many connections is no bound; this is. A connection whose growth finds the budget spent fails
 * with 1013 (Try Again Later) and lets its memory go; the others carry on.
 *
 * Memory is counted where it is held: bytes that many queues refer to at once (a broadcast
 * frame, one message sent to many connections) are {@link SharedBytes}, counted once while any
 * queue holds them, whatever the number of queues.
 *
 * @packageDocumentation
 */

/** Default of `memoryBudget`: 256 MiB, sized for a small machine. */
export const DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024

/**
 * Shared bytes shorter than this are counted by each holder, as its own: a reference costs each
 * holder a few queue slots of about this size anyway, so counting the bytes once would hardly
 * change the total, and following each small broadcast frame through every socket's write
 * callback would slow the small-message fan-out that topics are for.
 */
export const SHARED_MIN = 256

/**
 * Bytes that many queues may hold at once. A budget counts their {@link SharedBytes.size} once
 * from the first {@link MemoryBudget.hold} to the last {@link MemoryBudget.release}; each holder
 * counts only what holding them costs it (a queue slot).
 */
export class SharedBytes {
  /** The bytes as each queue holds them (the frame written to each socket). */
  readonly bytes: Uint8Array
  /** What they cost while held: the memory they keep alive, counted once. */
  readonly size: number
  /** @internal Holds taken in {@link SharedBytes.heldBy}. */
  holds = 0
  /** @internal The budget counting them now, if any. */
  heldBy: MemoryBudget | undefined = undefined

  constructor (bytes: Uint8Array, size: number = bytes.length) {
    this.bytes = bytes
    this.size = size
  }
}

/** The shared counter. Each connection reports what it holds; the budget only adds. */
export class MemoryBudget {
  /** The bound, in bytes. */
  readonly limit: number
  /** Bytes charged by all connections now. */
  used = 0

  constructor (limit: number = DEFAULT_MEMORY_BUDGET) {
    if (!(limit > 0)) throw new RangeError('memoryBudget must be a positive number of bytes')
    this.limit = limit
  }

  /**
   * A connection's holding changed by `delta` bytes. Returns false when it grew and the total
   * is now over the limit: the caller must fail that connection (and then report its release).
   */
  charge (delta: number): boolean {
    this.used += delta
    return delta <= 0 || this.used <= this.limit
  }

  /**
   * One more queue holds `shared`. The first hold charges its size; later ones charge nothing
   * and always pass. Returns false, as {@link MemoryBudget.charge} does, when the first hold
   * finds the budget spent. Each hold is ended by one {@link MemoryBudget.release}.
   */
  hold (shared: SharedBytes): boolean {
    if (shared.heldBy === this) {
      shared.holds++
      return true
    }
    if (shared.heldBy === undefined) {
      shared.heldBy = this
      shared.holds = 1
    }
    // Counted by another budget (another server): this one counts them for itself too.
    return this.charge(shared.size)
  }

  /** A queue no longer holds `shared` (written, or dropped): the last release gives back its size. */
  release (shared: SharedBytes): void {
    if (shared.heldBy === this) {
      if (--shared.holds > 0) return
      shared.heldBy = undefined
    }
    this.charge(-shared.size)
  }
}
