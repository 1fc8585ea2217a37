/**
 * {@link MemoryBudget}: one bound on the memory a server holds for all its connections together
 * (partial frames, unfinished messages, receive queues, output). Per-connection limits times
 * many connections is no bound; this is. A connection whose growth finds the budget spent fails
 * with 1013 (Try Again Later) and lets its memory go; the others carry on.
 *
 * @packageDocumentation
 */

/** Default of `memoryBudget`: 256 MiB, sized for a small machine. */
export const DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024

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
}
