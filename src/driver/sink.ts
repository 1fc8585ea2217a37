/**
 * The sink pump: pulls messages from the iterable given to `sink` and sends them, waiting for a
 * message, for the socket to drain, or for a foreign iterator's promise. A state machine rather
 * than an async loop: no promise per message on the echo path, and no async frame held per
 * idle connection.
 *
 * @packageDocumentation
 */

import type { Source } from 'it-stream-types'
import { END, WAIT, type MessageSource } from './incoming.js'
import type { OutgoingMessage } from './types.js'

/** What the pump needs from its connection. */
export interface SinkOwner {
  readonly source: MessageSource
  /** Our close is sent or the socket is gone: nothing more may be sent. */
  readonly sendingStopped: boolean
  /** Output is at the send mark even after a flush: wait for {@link SinkPump.onDrain}. */
  outputFull: () => boolean
  /** Queue one message for sending. Throws a TypeError for anything but a string or bytes. */
  queueMessage: (message: OutgoingMessage) => void
  /** Queue a message polled from the connection's own source, as text if it came as text. */
  queueEcho: (message: Uint8Array, text: boolean) => void
  flush: () => void
  /** The handler returned the sink's promise and the sink is done: its end is the handler's. */
  onHandlerSettled: (error: unknown) => void
  /** The sink is done: if `source` was returned too, both directions are. */
  onSinkEnded: () => void
}

// The pump's phases: pulling, waiting for a message, waiting for drain, finished.
const RUNNING = 1
const WAITING = 2
const BLOCKED = 3
const ENDED = 4

function ignore (): void {}

/** One per connection whose `sink` was called. */
export class SinkPump {
  private readonly owner: SinkOwner
  private phase = RUNNING
  private iterator: Iterator<OutgoingMessage> | AsyncIterator<OutgoingMessage> | undefined
  /** Pulling from the connection's own source (an echo): polled without promises. */
  private readonly own: boolean
  private pumping = false
  private resolve!: () => void
  private reject!: (err: unknown) => void
  private onResult: ((result: IteratorResult<OutgoingMessage>) => void) | undefined
  private onError: ((err: unknown) => void) | undefined
  readonly promise: Promise<void>
  private error: unknown
  /** The handler returned {@link SinkPump.promise}: the sink's end settles the handler. */
  private adopted = false

  constructor (owner: SinkOwner, source: Source<OutgoingMessage>) {
    this.owner = owner
    // Throws for a non-iterable: the caller turns that into a rejected promise.
    const iterator = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]()
    this.iterator = iterator
    this.own = iterator === owner.source
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve
      this.reject = reject
    })
  }

  /** The sink has ended (its iterable ended or threw, or it was stopped). */
  get ended (): boolean {
    return this.phase === ENDED
  }

  /** The sink ended because it failed: its iterable threw, or yielded what cannot be sent. */
  get failed (): boolean {
    return this.phase === ENDED && this.error !== undefined
  }

  /** The handler returned this sink's promise: its end is the handler's end, reported without a `.then`. */
  adopt (): void {
    this.adopted = true
    if (this.phase === ENDED) this.settleHandler()
  }

  private settleHandler (): void {
    this.adopted = false
    // Handled here, so no unhandled rejection is reported for the promise nobody else holds.
    if (this.error !== undefined) this.promise.then(undefined, ignore)
    this.owner.onHandlerSettled(this.error)
  }

  /** The connection's close is sent or the socket is gone: stop, whatever the sink waits for. */
  stop (): void {
    if (this.phase === WAITING || this.phase === BLOCKED) this.end(false)
  }

  /** The socket drained: a blocked sink goes on. */
  onDrain (): void {
    if (this.phase === BLOCKED) {
      this.phase = RUNNING
      this.pump()
    }
  }

  /**
   * The connection's own source has a message while this sink waits for one (an echo): send it
   * now, as the loop would, and keep waiting. False when the sink cannot take it at once.
   */
  offer (message: Uint8Array, text: boolean): boolean {
    if (this.phase !== WAITING || !this.own || this.pumping) return false
    const owner = this.owner
    if (owner.sendingStopped || owner.outputFull()) return false
    owner.queueEcho(message, text)
    return true
  }

  /** Pull and send until the sink must wait. */
  pump (): void {
    if (this.pumping || (this.phase !== RUNNING && this.phase !== WAITING)) return
    this.phase = RUNNING
    this.pumping = true
    try {
      this.loop()
    } finally {
      this.pumping = false
    }
  }

  private loop (): void {
    const owner = this.owner
    const iterator = this.iterator!
    for (;;) {
      if (owner.sendingStopped) return this.end(false)
      if (owner.outputFull()) {
        this.phase = BLOCKED
        return
      }
      let value: OutgoingMessage
      if (this.own) {
        let m: Uint8Array | typeof WAIT | typeof END
        try {
          m = owner.source.poll()
        } catch (err) {
          return this.end(true, err)
        }
        if (m === WAIT) {
          this.phase = WAITING
          return
        }
        if (m === END) return this.end(true)
        // Bytes from our own source cannot be a bad message: no try needed.
        owner.queueEcho(m, owner.source.lastText)
        continue
      } else {
        let r: IteratorResult<OutgoingMessage> | PromiseLike<IteratorResult<OutgoingMessage>>
        try {
          r = iterator.next()
        } catch (err) {
          return this.end(true, err)
        }
        if (typeof (r as PromiseLike<unknown>).then === 'function') {
          this.phase = WAITING
          ;(r as PromiseLike<IteratorResult<OutgoingMessage>>).then(
            this.onResult ??= (result) => { this.pulled(result) },
            this.onError ??= (err: unknown) => { if (this.phase === WAITING) this.end(true, err) })
          return
        }
        const result = r as IteratorResult<OutgoingMessage>
        if (result.done === true) return this.end(true)
        value = result.value
      }
      try {
        owner.queueMessage(value)
      } catch (err) {
        return this.end(false, err)
      }
    }
  }

  /** A foreign iterator's promise settled with `result`. */
  private pulled (result: IteratorResult<OutgoingMessage>): void {
    // Stopped meanwhile (the connection closed): that message is not sent.
    if (this.phase !== WAITING) return
    if (this.owner.sendingStopped) return this.end(false)
    if (result.done === true) return this.end(true)
    try {
      this.owner.queueMessage(result.value)
    } catch (err) {
      return this.end(false, err)
    }
    this.pump()
  }

  /** The sink is done: `finished` when its iterable ended (or threw) by itself. */
  private end (finished: boolean, error?: unknown): void {
    if (this.phase === ENDED) return
    this.phase = ENDED
    // Set before return() below: a generator that returns `source` then sees a failed sink.
    this.error = error
    this.owner.flush()
    const iterator = this.iterator
    this.iterator = undefined
    // "Stops": the handler's generators run their finally blocks.
    if (!finished && iterator !== undefined && typeof iterator.return === 'function') {
      try {
        const r = iterator.return()
        if (typeof (r as PromiseLike<unknown>)?.then === 'function') (r as Promise<unknown>).then(undefined, ignore)
      } catch {}
    }
    if (error !== undefined) this.reject(error)
    else this.resolve()
    if (this.adopted) this.settleHandler()
    this.owner.onSinkEnded()
  }
}
