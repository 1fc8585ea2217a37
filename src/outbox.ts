/**
 * {@link Outbox}: a bounded queue of messages whose async iterator is what a connection's
 * `sink` reads, so code that produces messages at its own pace (a chat room broadcasting, a
 * client sending as the user types) can hand them to a connection without waiting for it —
 * and learn, from `push()` returning false, that its reader is too slow.
 *
 * @example
 * ```ts
 * import { Outbox } from 'wspipe'
 *
 * const outbox = new Outbox(256)
 * const sending = conn.sink(outbox)    // drains the outbox at the pace the peer reads
 * if (!outbox.push('hello')) conn.close(1008, 'too slow')
 * outbox.end()                         // the sink ends once the outbox is empty
 * await sending
 * ```
 *
 * @packageDocumentation
 */

import type { OutgoingMessage } from './driver/types.js'
import { InvalidStateError } from './errors.js'
import { Fifo } from './fifo.js'

/** Default of the {@link Outbox} constructor's `limit`. */
export const DEFAULT_OUTBOX_LIMIT = 256

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined }

/**
 * A bounded queue of messages for one connection's `sink`. {@link Outbox.push} never waits: it
 * queues, or returns false when `limit` messages are already waiting, so one slow reader
 * cannot stall the code that feeds it, nor make it queue without bound. Its iterator may be
 * taken once (one sink); when that sink stops (the connection closed), the outbox ends and
 * what was queued is dropped.
 */
export class Outbox<T = OutgoingMessage> implements AsyncIterable<T> {
  /** The most messages that may wait. */
  readonly limit: number
  private readonly queue = new Fifo<T>()
  private done = false
  private waiter: ((result: IteratorResult<T>) => void) | undefined
  private taken = false

  /** @throws RangeError unless `limit` is a positive integer. */
  constructor (limit: number = DEFAULT_OUTBOX_LIMIT) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`an Outbox limit must be a positive integer, not ${String(limit)}`)
    this.limit = limit
  }

  /** Messages waiting to be read. */
  get size (): number {
    return this.queue.size
  }

  /** {@link Outbox.end} was called, or the reader stopped: pushes are dropped. */
  get ended (): boolean {
    return this.done
  }

  /**
   * Queue `message` for the reader. Returns false, queueing nothing, when `limit` messages are
   * already waiting: the reader is too slow (close its connection, or drop the message). Once
   * the outbox has ended, messages are dropped and `push` returns true: there is no reader left
   * to be slow ({@link Outbox.ended} tells).
   */
  push (message: T): boolean {
    if (this.done) return true
    const waiter = this.waiter
    if (waiter !== undefined) {
      this.waiter = undefined
      waiter({ done: false, value: message })
      return true
    }
    if (this.size >= this.limit) return false
    this.queue.push(message)
    return true
  }

  /** No more messages: the iterator ends once the queued ones are read. */
  end (): void {
    if (this.done) return
    this.done = true
    const waiter = this.waiter
    if (waiter !== undefined && this.size === 0) {
      this.waiter = undefined
      waiter(DONE)
    }
  }

  /** @throws InvalidStateError if the iterator was already taken: one outbox feeds one sink. */
  [Symbol.asyncIterator] (): AsyncIterator<T> {
    if (this.taken) throw new InvalidStateError('an Outbox can be read by one sink only')
    this.taken = true
    return {
      next: () => this.next(),
      return: () => {
        // The reader stopped (its connection is closing): nothing will read the rest, and a
        // pending next() ends now rather than hold the reader until the next push.
        this.done = true
        this.queue.clear()
        const waiter = this.waiter
        this.waiter = undefined
        waiter?.(DONE)
        return Promise.resolve(DONE)
      }
    }
  }

  private next (): Promise<IteratorResult<T>> {
    if (this.queue.size > 0) return Promise.resolve({ done: false, value: this.queue.shift()! })
    if (this.done) return Promise.resolve(DONE)
    if (this.waiter !== undefined) return Promise.reject(new InvalidStateError('Outbox: next() called while a previous call is pending'))
    return new Promise((resolve) => { this.waiter = resolve })
  }
}
