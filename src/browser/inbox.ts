/**
 * What a browser transport received and `source` has not read yet: the queue, what it costs, the
 * one read waiting for it, and how it ends. Each transport decides when to take more.
 *
 * @packageDocumentation
 */

import { Fifo } from '../fifo.js'
import { ITEM_OVERHEAD } from '../protocol/gather.js'

export class Inbox {
  private readonly queue = new Fifo<Uint8Array>()
  private waiter: { resolve: (m: Uint8Array | undefined) => void, reject: (e: unknown) => void } | undefined
  private ended: true | Error | undefined
  private dropping = false
  /** What the queued messages cost: their bytes plus {@link ITEM_OVERHEAD} each. */
  cost = 0

  /** `source` stopped reading: what is queued is dropped, and so is what still arrives. */
  get discarding (): boolean {
    return this.dropping
  }

  /** Whether a message arriving now is still wanted. */
  get open (): boolean {
    return !this.dropping && this.ended === undefined
  }

  /** Hand `message` to the waiting read, else queue it. */
  deliver (message: Uint8Array): void {
    if (!this.open) return
    const waiter = this.waiter
    if (waiter !== undefined) {
      this.waiter = undefined
      waiter.resolve(message)
      return
    }
    this.queue.push(message)
    this.cost += message.length + ITEM_OVERHEAD
  }

  /**
   * Nothing more arrives: `true` for a clean end, else the error `read` reports once the queue is
   * empty. The first end counts.
   */
  finish (end: true | Error): void {
    this.ended ??= end
    const waiter = this.waiter
    if (waiter === undefined || this.queue.size > 0) return
    this.waiter = undefined
    if (this.ended === true) waiter.resolve(undefined)
    else waiter.reject(this.ended)
  }

  /** The next message; undefined once it has ended cleanly or `source` stopped reading. */
  read (): Promise<Uint8Array | undefined> {
    const message = this.queue.shift()
    if (message !== undefined) {
      this.cost -= message.length + ITEM_OVERHEAD
      return Promise.resolve(message)
    }
    if (this.ended === true || this.dropping) return Promise.resolve(undefined)
    if (this.ended !== undefined) return Promise.reject(this.ended)
    return new Promise((resolve, reject) => { this.waiter = { resolve, reject } })
  }

  /** `source` stopped reading: drop what is queued and end a waiting read. */
  discard (): void {
    this.dropping = true
    this.queue.clear()
    this.cost = 0
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.resolve(undefined)
  }
}
