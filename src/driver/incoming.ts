/**
 * The incoming queue behind `source`: whole messages waiting for the handler, pull-based, with
 * water marks that pause and resume reading. Each message costs its bytes plus
 * {@link ITEM_OVERHEAD}, so empty messages cannot slip past the mark; a queued message that is a
 * small view of a larger socket read is copied out, so it does not pin that read.
 *
 * @packageDocumentation
 */

import { ITEM_OVERHEAD } from '../protocol/gather.js'
import { InvalidStateError } from '../errors.js'
import { MarkedQueue, type MarksOwner } from './marks.js'
import { markNew } from '../text-mark.js'

/** What the queue needs from its connection. */
export interface IncomingOwner extends MarksOwner {
  /** The connection's own sink waits for a message or the end: wake it. */
  wakeSink: () => void
  /** The connection's own sink waits for a message: may it take this one at once (an echo)? False: queue it. */
  offerToSink: (message: Uint8Array, text: boolean) => boolean
}

const NO_MESSAGES: Uint8Array[] = []
const NO_FLAGS: boolean[] = []
const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined }
const DONE_PROMISE = Promise.resolve(DONE)
/** What {@link MessageSource.poll} returns when no message is queued yet, and at the end. */
export const WAIT = Symbol('wait')
export const END = Symbol('end')

/** `source`: a pull-based queue of whole messages, with a fast path when one is already queued. */
export class MessageSource extends MarkedQueue implements AsyncIterableIterator<Uint8Array> {
  protected declare readonly owner: IncomingOwner
  /** A shared empty queue until the first message has to wait (most are taken at once). */
  private queue: Uint8Array[] = NO_MESSAGES
  /**
   * Which queued messages are text, beside them: the mark is stamped on a message only when it
   * is handed to the consumer, so an echo (`sink(source)`, polled) never pays for it.
   */
  private texts: boolean[] = NO_FLAGS
  /** Whether the message {@link MessageSource.poll} returned last is text. */
  lastText = false
  private head = 0
  /** Queue index from which messages arrived since the last {@link MessageSource.settle}. */
  private fresh = 0
  /**
   * Settles the pending `next()`: only its resolving function is held (an error is given as a
   * rejected promise), not a `{ resolve, reject }` pair, so a handler waiting in `for await`
   * costs a closure and an object fewer.
   */
  private waiter: ((r: IteratorResult<Uint8Array> | PromiseLike<never>) => void) | undefined
  /** The connection's own sink polled and found nothing: wake it on the next message or the end. */
  private sinkWaiting = false

  constructor (owner: IncomingOwner, high: number, low: number) {
    super(owner, high, low)
  }

  /** Messages queued. */
  get length (): number {
    return this.queue.length - this.head
  }

  /** The connection's own sink waits for the next message, and nothing is queued or read before it: {@link MessageSource.push} would offer it there. */
  get sinkTakesNext (): boolean {
    return this.sinkWaiting && this.waiter === undefined && !this.detached && this.head === this.queue.length
  }

  /** Hand a message (`text` if it came as text) to a waiting reader, or queue it. */
  push (message: Uint8Array, text: boolean): void {
    if (this.detached) return
    const waiter = this.waiter
    if (waiter !== undefined) {
      this.waiter = undefined
      if (text) markNew(message)
      waiter({ done: false, value: message })
      return
    }
    // An echo's sink waits for exactly this: hand the message over without queueing it.
    if (this.sinkWaiting && this.head === this.queue.length && this.owner.offerToSink(message, text)) {
      this.taken++
      return
    }
    const cost = message.length + ITEM_OVERHEAD
    // After our close, reading must go on until the peer's close arrives: past the high-water
    // mark, messages are dropped rather than reading paused.
    if (this.refuses(cost)) return
    if (this.queue === NO_MESSAGES) {
      this.queue = []
      this.texts = []
    }
    this.queue.push(message)
    this.texts.push(text)
    this.added(cost)
    if (this.sinkWaiting) {
      this.sinkWaiting = false
      this.owner.wakeSink()
    }
  }

  /**
   * The read that brought the latest messages is done with: those still queued that are small
   * views of a larger buffer are copied out, so a byte counted pins no more than about two.
   */
  settle (): void {
    const queue = this.queue
    if (this.fresh >= queue.length) return
    for (let i = Math.max(this.fresh, this.head); i < queue.length; i++) {
      const m = queue[i]
      if (m.length * 2 < m.buffer.byteLength) {
        // A plain Uint8Array with its own buffer (a Buffer's slice() would be another view).
        queue[i] = new Uint8Array(m)
      }
    }
    this.fresh = queue.length
  }

  /** No more messages: the queue drains, then the iterator ends (or throws `error`). */
  end (error?: Error): void {
    if (this.ended) return
    this.ended = true
    this.error = error
    const waiter = this.waiter
    if (waiter !== undefined && this.length === 0) {
      this.waiter = undefined
      this.owner.onSourceDrained()
      waiter(error !== undefined ? Promise.reject(error) : DONE)
    }
    if (this.sinkWaiting) {
      this.sinkWaiting = false
      this.owner.wakeSink()
    }
  }

  /**
   * The synchronous pull of `sink(source)` on the connection's own source (an echo): the next
   * message, {@link WAIT} (the sink is woken when one arrives) or {@link END}; throws the
   * connection's error. No promise per message, and no text mark: {@link MessageSource.lastText}
   * tells the sink.
   */
  poll (): Uint8Array | typeof WAIT | typeof END {
    if (this.head < this.queue.length) return this.dequeue()
    if (this.ended) return this.finish()
    this.sinkWaiting = true
    return WAIT
  }

  private finish (): typeof END {
    this.owner.onSourceDrained()
    if (this.error !== undefined) {
      const error = this.error
      this.error = undefined
      throw error
    }
    return END
  }

  private dequeue (): Uint8Array {
    const value = this.queue[this.head]
    this.lastText = this.texts[this.head]
    this.queue[this.head++] = undefined as unknown as Uint8Array
    if (this.head === this.queue.length) {
      this.queue = NO_MESSAGES
      this.texts = NO_FLAGS
      this.head = 0
      this.fresh = 0
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.texts = this.texts.slice(this.head)
      this.fresh = Math.max(0, this.fresh - this.head)
      this.head = 0
    }
    this.taken++
    this.removed(value.length + ITEM_OVERHEAD)
    if (this.queue === NO_MESSAGES) this.owner.onQueueEmptied()
    return value
  }

  next (): Promise<IteratorResult<Uint8Array>> {
    if (this.head < this.queue.length) {
      const value = this.dequeue()
      if (this.lastText) markNew(value)
      return Promise.resolve({ done: false, value })
    }
    if (this.ended) {
      try {
        this.finish()
      } catch (err) {
        return Promise.reject(err)
      }
      return DONE_PROMISE
    }
    if (this.waiter !== undefined) return Promise.reject(new InvalidStateError('source.next() called while a previous call is pending'))
    return new Promise((resolve) => { this.waiter = resolve })
  }

  /** Done reading: the connection closes once its sink is done too (see the owner). */
  return (): Promise<IteratorResult<Uint8Array>> {
    if (this.detached) return DONE_PROMISE
    this.queue = NO_MESSAGES
    this.texts = NO_FLAGS
    this.head = 0
    this.fresh = 0
    this.detachQueue()
    // A next() or a sink waiting on this source sees its end (either would wait forever).
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.(DONE)
    if (this.sinkWaiting) {
      this.sinkWaiting = false
      this.owner.wakeSink()
    }
    return DONE_PROMISE
  }

  [Symbol.asyncIterator] (): this {
    return this
  }
}
