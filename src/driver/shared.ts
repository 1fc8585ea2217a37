/**
 * {@link SharedOutput}: the shared buffers one connection's output refers to (a broadcast frame,
 * a message sent to many connections), in the order they were queued. Each is held in the
 * memory budget from being queued until the socket has written it (its write callback says so),
 * and let go when the connection closes; the connection counts only a slot per buffer, so a
 * buffer in N connections' output costs the budget once.
 *
 * @packageDocumentation
 */

import { SharedBytes, type MemoryBudget } from './budget.js'

/**
 * What one reference costs the connection holding it: its slots in the session's output, in the
 * socket's write queue (an object per write) and in this list.
 */
export const SHARED_REF_COST = 64

/** Shared bytes of plain (not prepared) messages, by message: the same message sent on many connections is one entry. */
const plainShares = new WeakMap<Uint8Array, SharedBytes>()

/** The shared bytes a plain message queued by reference is, the same for every connection it is sent on. */
export function shareOf (message: Uint8Array): SharedBytes {
  let shared = plainShares.get(message)
  if (shared === undefined) {
    shared = new SharedBytes(message)
    plainShares.set(message, shared)
  }
  return shared
}

/**
 * The shared buffers in one connection's output, oldest first. A flush hands those queued since
 * the last one to the socket as a batch, and one write callback (on the flush's last write:
 * callbacks come in order) lets the whole batch go: no callback, and no search, per buffer.
 */
export class SharedOutput {
  private items: SharedBytes[] = []
  /** Items before this one are written and let go. */
  private head = 0
  /** Items from `head` up to this one were handed to the socket; the rest wait in the session's output. */
  private next = 0
  /** How many items each batch handed to the socket and not yet written has, oldest first. */
  private batches: number[] = []
  private batchHead = 0
  /** Bytes of the listed buffers (all in the output: the session's or the socket's). */
  bytes = 0

  /** Buffers listed. */
  get count (): number {
    return this.items.length - this.head
  }

  /** `shared` was queued after everything listed. Returns false when the budget refused it (see {@link MemoryBudget.hold}). */
  add (shared: SharedBytes, budget: MemoryBudget): boolean {
    this.items.push(shared)
    this.bytes += shared.bytes.length
    return budget.hold(shared)
  }

  /**
   * A flush took the whole output and is about to write it: every buffer listed since the last
   * flush is in it (the session queued each by reference). Returns true when there are some: the
   * flush's last write must then carry a callback that calls {@link SharedOutput.written}.
   */
  flushed (): boolean {
    const n = this.items.length - this.next
    if (n === 0) return false
    this.next = this.items.length
    this.batches.push(n)
    return true
  }

  /** The socket has written the oldest batch (or was destroyed with it). */
  written (budget: MemoryBudget): void {
    if (this.batchHead === this.batches.length) return
    let n = this.batches[this.batchHead++]
    if (this.batchHead === this.batches.length) {
      this.batches.length = 0
      this.batchHead = 0
    }
    const items = this.items
    while (n-- > 0) {
      const item = items[this.head]
      items[this.head++] = undefined as unknown as SharedBytes
      this.letGo(item, budget)
    }
    if (this.head === items.length) {
      items.length = 0
      this.head = this.next = 0
    } else if (this.head >= 1024 && this.head * 2 >= items.length) {
      // Most of the array is written: drop its empty front rather than hold it.
      this.items = items.slice(this.head)
      this.next -= this.head
      this.head = 0
    }
  }

  /** The connection is gone: let everything go. Write callbacks that still come find nothing. */
  clear (budget: MemoryBudget): void {
    const items = this.items
    for (let i = this.head; i < items.length; i++) this.letGo(items[i], budget)
    this.items = []
    this.head = this.next = this.batchHead = 0
    this.batches = []
  }

  private letGo (item: SharedBytes, budget: MemoryBudget): void {
    this.bytes -= item.bytes.length
    budget.release(item)
  }
}
