/**
 * {@link MarkedQueue}: what both incoming queues (whole messages, and stream mode's chunks) share:
 * the cost of what is queued, and the water marks that pause reading above the high one and
 * resume it at the low one.
 *
 * @packageDocumentation
 */

/** What a queue's marks need from its connection. */
export interface MarksOwner {
  /** The queue's cost crossed the high-water mark (true) or fell to the low one (false). */
  queueFull: (full: boolean) => void
  /** Our close is sent: past the high-water mark items are dropped, since reading must go on until the peer's close. */
  readonly dropWhenFull: boolean
  /** The consumer has seen the end of `source`. */
  onSourceDrained: () => void
  /** The consumer called `return()` on `source` (a `break`, `first()`): it is done reading. */
  onSourceReturned: () => void
  /** The queue shrank to nothing: a moment to report freed memory. */
  onQueueEmptied: () => void
}

/** A queue's cost and water marks; the queues extend it. */
export abstract class MarkedQueue {
  protected readonly owner: MarksOwner
  private readonly high: number
  private readonly low: number
  private full = false
  /** Reading is paused whatever the cost, until {@link MarkedQueue.release}. */
  private held = false
  /** The consumer called `return()`: done reading; later items are dropped until the close. */
  detached = false
  /** What the queued items cost: bytes plus {@link ITEM_OVERHEAD} each. */
  cost = 0
  /** The most {@link MarkedQueue.cost} has been. */
  peak = 0
  /** Items the consumer has taken: the heartbeat's sign that a paused connection still moves. */
  taken = 0
  /** No more items will come: once the queue drains, `source` ends (or throws {@link MarkedQueue.error}). */
  protected ended = false
  protected error: Error | undefined

  constructor (owner: MarksOwner, high: number, low: number) {
    this.owner = owner
    this.high = high
    this.low = low
  }

  /** After our close, an item costing `cost` would pass the mark: it is not queued (reading goes on). */
  protected refuses (cost: number): boolean {
    return this.owner.dropWhenFull && this.cost + cost > this.high
  }

  /** An item costing `cost` was queued: past the high mark, reading pauses. */
  protected added (cost: number): void {
    this.cost += cost
    if (this.cost > this.peak) this.peak = this.cost
    if (this.cost > this.high && !this.full && !this.owner.dropWhenFull) {
      this.full = true
      this.owner.queueFull(true)
    }
  }

  /** An item costing `cost` left the queue: at the low mark, reading resumes. */
  protected removed (cost: number): void {
    this.cost -= cost
    if (this.full && !this.held && this.cost <= this.low) {
      this.full = false
      this.owner.queueFull(false)
    }
  }

  /** Pause reading until {@link MarkedQueue.release}, whatever the cost (not after our close). */
  protected hold (): void {
    if (this.owner.dropWhenFull) return
    this.held = true
    if (!this.full) {
      this.full = true
      this.owner.queueFull(true)
    }
  }

  /**
   * The consumer is done reading (`return()`): the subclass has dropped its items; reading goes
   * on unpaused, and the owner is told.
   */
  protected detachQueue (): void {
    this.detached = true
    this.cost = 0
    this.release()
    this.owner.onQueueEmptied()
    this.ended = true
    this.error = undefined
    this.owner.onSourceDrained()
    this.owner.onSourceReturned()
  }

  /** Reading may go on past the mark: our close is sent and the peer's answer must be read. */
  release (): void {
    this.held = false
    if (this.full) {
      this.full = false
      this.owner.queueFull(false)
    }
  }
}
