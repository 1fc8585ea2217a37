/**
 * `sink` in the page: pulls one message at a time from the iterable it is given and sends it,
 * waiting for room before pulling the next. When the connection closes first it stops pulling
 * and calls `return()` on the iterator, as on Node.
 *
 * @packageDocumentation
 */

import type { Source } from 'it-stream-types'
import type { OutgoingMessage } from '../driver/types.js'

/** What the sink needs from its connection. */
export interface SinkOwner {
  /** Nothing more may be sent. */
  readonly closing: boolean
  /** Send one message; resolves when there is room for the next, rejects once closing (or for a bad message). */
  deliver: (message: OutgoingMessage) => Promise<void>
  /** The sink is done. */
  onSinkEnded: () => void
}

function ignore (): void {}

/**
 * Messages sent between two yields to the event loop: a sink whose sends never wait (room to
 * spare, a synchronous iterable) would otherwise run on microtasks alone, and the page's timers
 * and events would not run until it ends.
 */
export const SINK_YIELD_EVERY = 1024

/** A macrotask later: the event loop has run. */
function nextTask (): Promise<void> {
  return new Promise((resolve) => { setTimeout(resolve, 0) })
}

/** Call `return()` on an iterator we stop pulling, ignoring what it says. */
function stopIterator (iterator: Iterator<unknown> | AsyncIterator<unknown>): void {
  try {
    const r = iterator.return?.()
    if (r instanceof Promise) r.then(undefined, ignore)
  } catch {}
}

/** One per connection whose `sink` was called. */
export class PageSink {
  readonly promise: Promise<void>
  /** The sink is done: its iterable ended or threw, or it was stopped. */
  ended = false
  /** It ended because its iterable threw, or gave what cannot be sent. */
  failed = false
  private readonly owner: SinkOwner
  private readonly iterator: Iterator<OutgoingMessage> | AsyncIterator<OutgoingMessage>
  private resolve!: () => void
  private reject!: (err: unknown) => void

  /** @throws TypeError if `source` is not iterable. */
  constructor (owner: SinkOwner, source: Source<OutgoingMessage>) {
    this.owner = owner
    this.iterator = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]()
    this.promise = new Promise((resolve, reject) => {
      this.resolve = resolve
      this.reject = reject
    })
    void this.run()
  }

  /** The connection is closing: stop now, whatever the sink waits for. */
  stop (): void {
    this.end(false)
  }

  private async run (): Promise<void> {
    const owner = this.owner
    for (let n = 1; ; n++) {
      if (n % SINK_YIELD_EVERY === 0) {
        await nextTask()
        if (this.ended) return
      }
      if (owner.closing) return this.end(false)
      let r: IteratorResult<OutgoingMessage>
      try {
        r = await this.iterator.next()
      } catch (err) {
        return this.end(true, err)
      }
      // Stopped meanwhile: that message is not sent.
      if (this.ended) return
      if (r.done === true) return this.end(true)
      try {
        await owner.deliver(r.value)
      } catch (err) {
        // Closing is a stop, not a failure: the sink resolves.
        return owner.closing ? this.end(false) : this.end(false, err)
      }
    }
  }

  /** Done: `finished` when the iterable ended (or threw) by itself, so it needs no `return()`. */
  private end (finished: boolean, error?: unknown): void {
    if (this.ended) return
    this.ended = true
    this.failed = error !== undefined
    // "Stops": the caller's generators run their finally blocks.
    if (!finished) stopIterator(this.iterator)
    if (error !== undefined) this.reject(error)
    else this.resolve()
    this.owner.onSinkEnded()
  }
}
