/**
 * {@link Fifo}: a first-in, first-out list that takes from the front in O(1) without
 * `Array#shift` (which moves every element): a head index, with the array let go when it
 * empties and compacted once most of it is taken. The queues behind `Outbox` and topic
 * subscriptions.
 *
 * @packageDocumentation
 */

/** First in, first out. */
export class Fifo<T> {
  private items: T[] = []
  private head = 0

  /** Items waiting. */
  get size (): number {
    return this.items.length - this.head
  }

  /** Add at the back. */
  push (item: T): void {
    this.items.push(item)
  }

  /** Take from the front; undefined when empty. */
  shift (): T | undefined {
    if (this.head === this.items.length) return undefined
    const item = this.items[this.head]
    this.items[this.head++] = undefined as T
    if (this.head === this.items.length) {
      this.items = []
      this.head = 0
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      // Most of the array is taken: drop the empty front rather than hold it.
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }

  /** Drop everything. */
  clear (): void {
    this.items = []
    this.head = 0
  }
}
