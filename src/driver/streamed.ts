/**
 * Stream mode's `source`: each item is a message whose bytes are an async iterable of chunks
 * handed out as they arrive, so a message of any size passes through a bounded queue. The
 * chunks of every message wait in one queue, which costs their bytes plus {@link ITEM_OVERHEAD}
 * each and pauses reading past the receive high-water mark, exactly as whole messages do
 * (TCP backpressure reaches the peer while the handler has not read the chunks).
 *
 * Messages come one at a time: asking `source` for the next one abandons the rest of the
 * current one, and so does `return()` on its `chunks` (a `break` out of their loop). The bytes
 * of an abandoned message are dropped as they arrive, without pausing reading.
 *
 * @packageDocumentation
 */

import { ITEM_OVERHEAD } from '../protocol/gather.js'
import { InvalidStateError, MessageAbandonedError, type ConnectionClosedError } from '../errors.js'
import { MarkedQueue, type MarksOwner } from './marks.js'
import type { ReceivedStream } from './types.js'

/** What the stream source needs from its connection, besides what the message queue needs. */
export interface StreamOwner extends MarksOwner {
  /** The error a message cut short by a clean close reports (the connection's close code). */
  closingError: () => ConnectionClosedError
}

interface Chunk {
  data: Uint8Array
  first: boolean
  last: boolean
  text: boolean
}

type Waiter<T> = { resolve: (r: IteratorResult<T>) => void, reject: (e: unknown) => void }

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined }
const DONE_PROMISE = Promise.resolve(DONE)
const NO_CHUNKS: Chunk[] = []

/** One received message in stream mode: its type, and its bytes as they come. */
class StreamedIncoming implements ReceivedStream, AsyncIterableIterator<Uint8Array> {
  readonly type: 'text' | 'binary'
  /** Bytes handed out so far. */
  received = 0
  /** Its last chunk was taken, or it was abandoned: nothing more comes out. */
  finished = false
  /** Abandoned because `source` moved on: reading on is an error, not a quiet end. */
  movedOn = false
  /** Handed to `send()` or a sink: leaving `source` lets it finish. */
  claimed = false
  /** The connection's error, once these chunks have thrown it (they go on throwing it). */
  failure: Error | undefined
  private readonly from: StreamSource

  constructor (from: StreamSource, text: boolean) {
    this.from = from
    this.type = text ? 'text' : 'binary'
  }

  get chunks (): AsyncIterableIterator<Uint8Array> {
    return this
  }

  next (): Promise<IteratorResult<Uint8Array>> {
    return this.from.nextChunk(this)
  }

  /** Done with this message: the rest of its bytes are dropped as they arrive. */
  return (): Promise<IteratorResult<Uint8Array>> {
    this.from.abandon(this, false)
    return DONE_PROMISE
  }

  [Symbol.asyncIterator] (): this {
    return this
  }
}

/**
 * `message` is about to be sent (its chunks will be read on a later turn): if it is a received
 * one, leaving `source` meanwhile lets it finish rather than abandon it.
 */
export function claimForSending (message: object): void {
  if (message instanceof StreamedIncoming) message.claimed = true
}

/** Is `chunks` a received message whose last chunk has just been taken? (An echo can then send that chunk with FIN.) */
export function lastChunkTaken (chunks: object): boolean {
  return chunks instanceof StreamedIncoming && chunks.finished && !chunks.movedOn
}

/** `source` in stream mode. */
export class StreamSource extends MarkedQueue implements AsyncIterableIterator<ReceivedStream> {
  protected declare readonly owner: StreamOwner
  private queue: Chunk[] = NO_CHUNKS
  private head = 0
  /** Queue index from which chunks arrived since the last {@link StreamSource.settle}. */
  private fresh = 0
  /** The message handed out last; its chunks are at the front of the queue until it is finished. */
  private current: StreamedIncoming | undefined
  /** Drop arriving chunks up to the end of an abandoned message. */
  private discarding = false
  /** Settles the pending `source.next()`: only its resolving function is held (an error as a rejected promise), as in incoming.ts. */
  private messageWaiter: ((r: IteratorResult<ReceivedStream> | PromiseLike<never>) => void) | undefined
  private chunkWaiter: Waiter<Uint8Array> | undefined
  /** `return()` came while the current message was being read or sent: it finishes, then the source detaches. */
  private returning = false
  /** While returning: the current message's last chunk is queued, so what follows is dropped. */
  private pastCurrent = false

  constructor (owner: StreamOwner, high: number, low: number) {
    super(owner, high, low)
  }

  /** A chunk of the message arriving (see {@link SessionChunkEvent}). */
  push (data: Uint8Array, text: boolean, first: boolean, last: boolean): void {
    if (this.detached || this.ended) return
    if (this.discarding) {
      if (last) this.discarding = false
      return
    }
    if (this.returning) {
      if (this.pastCurrent) return
      if (last) this.passCurrent()
    }
    const cost = data.length + ITEM_OVERHEAD
    // After our close, reading goes on until the peer's close. Past the mark nothing more is
    // queued; a dropped chunk would silently cut a message, so the source ends here instead
    // (the message being read then throws, as one cut short by the close does).
    if (this.refuses(cost)) {
      this.end()
      return
    }
    if (this.queue === NO_CHUNKS) this.queue = []
    this.queue.push({ data, first, last, text })
    this.added(cost)
    this.wake()
  }

  /** Serve whoever waits: the current message's reader, or the reader of `source`. */
  private wake (): void {
    const cw = this.chunkWaiter
    if (cw !== undefined) {
      const cur = this.current!
      const value = this.take(cur)
      if (value !== undefined) {
        this.chunkWaiter = undefined
        cw.resolve(value === null ? DONE : { done: false, value })
      }
      return
    }
    const mw = this.messageWaiter
    if (mw !== undefined && this.head < this.queue.length) {
      this.messageWaiter = undefined
      mw({ done: false, value: this.open() })
    }
  }

  /** The queued chunks that are small views of a larger read are copied out, so they do not pin it. */
  settle (): void {
    const queue = this.queue
    for (let i = Math.max(this.fresh, this.head); i < queue.length; i++) {
      const c = queue[i]
      // a copy (a Buffer's slice() would be another view of what it pins)
      if (c.data.length * 2 < c.data.buffer.byteLength) c.data = new Uint8Array(c.data)
    }
    this.fresh = queue.length
  }

  /** No more chunks: the queue drains, then `source` ends (or throws `error`). */
  end (error?: Error): void {
    if (this.ended) return
    this.ended = true
    this.error = error
    const cw = this.chunkWaiter
    if (cw !== undefined && this.head === this.queue.length) {
      this.chunkWaiter = undefined
      // The reader has seen the end: the close owed to the peer may go now.
      this.owner.onSourceDrained()
      cw.reject(this.cutShort(this.current!))
    }
    const mw = this.messageWaiter
    if (mw !== undefined && this.head === this.queue.length) {
      this.messageWaiter = undefined
      this.owner.onSourceDrained()
      // Thrown once: a later next() sees the end.
      this.error = undefined
      mw(error !== undefined ? Promise.reject(error) : DONE)
    }
  }

  /**
   * What reading `msg`, cut short by the end of the connection, throws. The connection's error
   * (a ProtocolError, a reset) is thrown once: by the chunks of the message it cut short when
   * they are read, and then `source` just ends (`closed` tells how); by `source` otherwise. A
   * consumer that handles a message's failure in its chunks loop is not thrown it again.
   */
  private cutShort (msg: StreamedIncoming): Error {
    if (msg.failure !== undefined) return msg.failure
    const error = this.error
    if (error === undefined) return this.owner.closingError()
    this.error = undefined
    msg.failure = error
    return error
  }

  next (): Promise<IteratorResult<ReceivedStream>> {
    if (this.returning) return DONE_PROMISE
    const cur = this.current
    if (cur !== undefined && !cur.finished) this.abandon(cur, true)
    this.current = undefined
    if (this.head < this.queue.length) return Promise.resolve({ done: false, value: this.open() })
    if (this.ended) {
      this.owner.onSourceDrained()
      if (this.error !== undefined) {
        const error = this.error
        this.error = undefined
        return Promise.reject(error)
      }
      return DONE_PROMISE
    }
    if (this.messageWaiter !== undefined) return Promise.reject(new InvalidStateError('source.next() called while a previous call is pending'))
    return new Promise((resolve) => { this.messageWaiter = resolve })
  }

  /**
   * Done reading: the connection closes once its sink is done too (see the owner). A current
   * message with a chunk read pending, or handed to `send()` or a sink, finishes first; the
   * messages after it are dropped. One merely peeked at is abandoned.
   */
  return (): Promise<IteratorResult<ReceivedStream>> {
    if (this.detached || this.returning) return DONE_PROMISE
    // A next() waiting on this source sees its end (it would wait forever).
    const mw = this.messageWaiter
    this.messageWaiter = undefined
    mw?.(DONE)
    const cur = this.current
    if (cur !== undefined && !cur.finished) {
      if (cur.claimed || this.chunkWaiter !== undefined) {
        this.returning = true
        this.dropPastCurrent()
        return DONE_PROMISE
      }
      this.abandon(cur, true)
    }
    this.detach()
    return DONE_PROMISE
  }

  /** While returning: drop the queued chunks after the current message's last. */
  private dropPastCurrent (): void {
    const queue = this.queue
    for (let i = this.head; i < queue.length; i++) {
      if (!queue[i].last) continue
      for (let j = i + 1; j < queue.length; j++) this.removed(queue[j].data.length + ITEM_OVERHEAD)
      queue.length = i + 1
      this.passCurrent()
      return
    }
  }

  /**
   * While returning, the current message has all arrived: reading pauses until it is taken, so a
   * reader that stops here leaves the connection in the paused state, which has an end (the
   * heartbeat), rather than reading and dropping forever.
   */
  private passCurrent (): void {
    this.pastCurrent = true
    this.hold()
  }

  /** Stop taking anything: what is queued is dropped, reading goes on unpaused. */
  private detach (): void {
    this.returning = false
    this.discarding = false
    this.clear()
    this.detachQueue()
  }

  [Symbol.asyncIterator] (): this {
    return this
  }

  /** The message whose first chunk is at the front of the queue. */
  private open (): StreamedIncoming {
    const msg = new StreamedIncoming(this, this.queue[this.head].text)
    this.current = msg
    this.taken++
    return msg
  }

  /** The next chunk of `msg`. */
  nextChunk (msg: StreamedIncoming): Promise<IteratorResult<Uint8Array>> {
    if (msg.finished) return msg.movedOn ? Promise.reject(new MessageAbandonedError()) : DONE_PROMISE
    const value = this.take(msg)
    if (value === null) return DONE_PROMISE
    if (value !== undefined) return Promise.resolve({ done: false, value })
    if (this.ended) {
      this.owner.onSourceDrained()
      return Promise.reject(this.cutShort(msg))
    }
    if (this.chunkWaiter !== undefined) return Promise.reject(new InvalidStateError('chunks.next() called while a previous call is pending'))
    return new Promise((resolve, reject) => { this.chunkWaiter = { resolve, reject } })
  }

  /** Take the next non-empty chunk of `msg`: `null` once its last is taken, `undefined` when none is queued yet. */
  private take (msg: StreamedIncoming): Uint8Array | null | undefined {
    while (this.head < this.queue.length) {
      const c = this.dequeue()
      msg.received += c.data.length
      this.taken++
      if (c.last) {
        msg.finished = true
        // Returned meanwhile: this was the message to finish.
        if (this.returning) this.detach()
      }
      if (c.data.length > 0) return c.data
      if (c.last) return null
    }
    return undefined
  }

  private dequeue (): Chunk {
    const c = this.queue[this.head]
    this.queue[this.head++] = undefined as unknown as Chunk
    if (this.head === this.queue.length) {
      this.queue = NO_CHUNKS
      this.head = 0
      this.fresh = 0
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.fresh = Math.max(0, this.fresh - this.head)
      this.head = 0
    }
    this.removed(c.data.length + ITEM_OVERHEAD)
    if (this.queue === NO_CHUNKS) this.owner.onQueueEmptied()
    return c
  }

  /**
   * Drop the rest of `msg`: its queued chunks now, the ones still to come as they arrive.
   * `movedOn`: `source` asked for the next message, so a reader of these chunks gets an error.
   */
  abandon (msg: StreamedIncoming, movedOn: boolean): void {
    if (msg.finished || msg !== this.current) return
    msg.finished = true
    msg.movedOn = movedOn
    let sawLast = false
    while (this.head < this.queue.length && !sawLast) sawLast = this.dequeue().last
    if (!sawLast) this.discarding = true
    const cw = this.chunkWaiter
    if (cw !== undefined) {
      this.chunkWaiter = undefined
      if (movedOn) cw.reject(new MessageAbandonedError())
      else cw.resolve(DONE)
    }
    if (this.returning) this.detach()
  }

  private clear (): void {
    this.queue = NO_CHUNKS
    this.head = 0
    this.fresh = 0
    this.cost = 0
  }
}
