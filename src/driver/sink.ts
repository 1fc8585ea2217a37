/**
 * The sending engine, one per connection: pulls messages from the iterable given to `sink`, or
 * takes those given to `send()`, and sends them, waiting for a message, for the transport to
 * drain, or for a foreign iterator's promise. Ordering, backpressure, a streamed message's chunks
 * and the stop rules live here once, for both. A state machine rather than an async loop: no
 * promise per message on the echo path (nor per `send()` while there is room), and no async
 * frame held per idle connection.
 *
 * @packageDocumentation
 */

import type { Source } from 'it-stream-types'
import { Fifo } from '../fifo.js'
import { END, WAIT, type MessageSource } from './incoming.js'
import { claimForSending, lastChunkTaken } from './streamed.js'
import type { Logger, OutgoingMessage, StreamedMessage } from './types.js'

/** What the pump needs from its connection. */
export interface SinkOwner {
  /** The connection's own source, which an echo polls: whole messages only. */
  readonly ownMessages: MessageSource | undefined
  /** Our close is sent or the socket is gone: nothing more may be sent. */
  readonly sendingStopped: boolean
  /** Output is at the send mark even after a flush: wait for {@link SinkPump.onDrain}. */
  outputFull: () => boolean
  /** `length` more bytes queued now would leave the output below the send mark, and leave the flush to the end of the read. */
  roomFor: (length: number) => boolean
  /** Queue one message for sending. Throws a TypeError for anything but a string or bytes. */
  queueMessage: (message: OutgoingMessage) => void
  /** Queue a chunk of a streamed message (an empty one only if it is the last). Throws a TypeError for anything but bytes or a string. */
  queueChunk: (chunk: Uint8Array | string, text: boolean, last?: boolean) => void
  /** End a streamed message with an empty final fragment. */
  endStream: (text: boolean) => void
  /** A streamed message failed part-way (its chunks threw, or yielded what cannot be sent): close with 1011. */
  failStream: (err: unknown) => void
  /** Queue a message polled from the connection's own source, as text if it came as text. */
  queueEcho: (message: Uint8Array, text: boolean) => void
  /** The same for a message that lies at `chunk[start, end)` of the read being handled. */
  queueEchoAt: (chunk: Uint8Array, start: number, end: number, text: boolean) => void
  /** The same for a binary message received as `parts` (`length` bytes in all), written as they are. */
  queueEchoParts: (parts: readonly Uint8Array[], length: number) => void
  flush: () => void
  /** The handler returned the sink's promise and the sink is done: its end is the handler's. */
  onHandlerSettled: (error: unknown, logger?: Logger) => void
  /** The sink is done, or `send()` has nothing under way: if `source` was returned too, both directions are. */
  onSinkEnded: () => void
  /** What a `send()` rejects with once the connection is closing. */
  closingError: () => Error
  /** A streamed message was cut off part-way: nothing may follow it on the wire (§5.4). */
  readonly fragmentsUnderWay: boolean
}

// The pump's phases: pulling, waiting for a message (or a chunk), waiting for drain, finished;
// and for `send()`, nothing under way.
const RUNNING = 1
const WAITING = 2
const BLOCKED = 3
const ENDED = 4
const IDLE = 5

function ignore (): void {}

const RESOLVED = Promise.resolve()
/** The promise of a pump fed by `send()`: nobody is given it, so no handler's promise can be it. */
const NO_PROMISE = new Promise<void>(ignore)

/** A message given to `send()` that waits its turn, or for room. */
interface Sent {
  readonly message: OutgoingMessage
  readonly resolve: () => void
  readonly reject: (err: unknown) => void
}

/** Is `value` a {@link StreamedMessage} (an object with `chunks`) rather than bytes or a string? */
export function isStreamedMessage (value: unknown): value is StreamedMessage {
  return typeof value === 'object' && value !== null && !(value instanceof Uint8Array) && 'chunks' in value
}

/** Call `return()` on an iterator we stop pulling, ignoring what it says. */
export function stopIterator (iterator: Iterator<unknown> | AsyncIterator<unknown>): void {
  if (typeof iterator.return !== 'function') return
  try {
    const r = iterator.return()
    if (typeof (r as PromiseLike<unknown>)?.then === 'function') (r as Promise<unknown>).then(undefined, ignore)
  } catch {}
}

/** A streamed message's chunks, opened. */
export type ChunkIterator = Iterator<Uint8Array | string> | AsyncIterator<Uint8Array | string>

/**
 * Check a streamed message to send and open its chunks: whether it is text, and the iterator.
 * @throws TypeError for a type other than 'text' or 'binary', or chunks that are not iterable.
 */
export function openStream (message: StreamedMessage): { text: boolean, chunks: ChunkIterator } {
  const type = message.type
  if (type !== 'text' && type !== 'binary') throw new TypeError(`a streamed message's type must be 'text' or 'binary', not ${String(type)}`)
  const chunks = message.chunks as unknown as Record<symbol, unknown> | null
  if (chunks === null || typeof chunks !== 'object') throw new TypeError('a streamed message\'s chunks must be an iterable or an async iterable')
  if (typeof chunks[Symbol.asyncIterator] === 'function') return { text: type === 'text', chunks: (message.chunks as AsyncIterable<Uint8Array | string>)[Symbol.asyncIterator]() }
  if (typeof chunks[Symbol.iterator] === 'function') return { text: type === 'text', chunks: (message.chunks as Iterable<Uint8Array | string>)[Symbol.iterator]() }
  throw new TypeError('a streamed message\'s chunks must be an iterable or an async iterable')
}

/** One per connection whose `sink` was called, or `send()` used. */
export class SinkPump {
  private readonly owner: SinkOwner
  private phase = RUNNING
  /** Fed by `send()` rather than pulling from an iterable. */
  readonly sends: boolean
  private iterator: Iterator<OutgoingMessage> | AsyncIterator<OutgoingMessage> | undefined
  /** Pulling from the connection's own source (an echo): polled without promises. */
  private readonly own: boolean
  private pumping = false
  /**
   * Settles {@link SinkPump.promise}: a failure resolves it with a rejected promise, so only one
   * of the two resolving functions is held per idle connection (a closure fewer).
   */
  private settle!: (value?: PromiseLike<void>) => void
  private onResult: ((result: IteratorResult<OutgoingMessage>) => void) | undefined
  private onError: ((err: unknown) => void) | undefined
  readonly promise: Promise<void>
  private error: unknown
  /** The handler returned {@link SinkPump.promise}: the sink's end settles the handler (its errors logged to `logger`). */
  private adopted = false
  private logger: Logger | undefined
  /** The chunks of the streamed message being sent, if one is. */
  private chunks: ChunkIterator | undefined
  private chunksText = false
  private onChunk: ((result: IteratorResult<Uint8Array | string>) => void) | undefined
  private onChunkError: ((err: unknown) => void) | undefined
  /** `send()`: messages waiting their turn behind a streamed one. */
  private queue: Fifo<Sent> | undefined
  /** `send()`: the streamed message being sent. */
  private current: Sent | undefined
  /** `send()`: the message last taken from the queue is queued; its call resolves, and the next is taken, once there is room. */
  private owed: Sent | undefined
  /** `send()`: calls queued at once (nothing ahead of them) that wait for the output to fall below the mark. */
  private roomWaiters: Sent[] | undefined

  /** `source` undefined: fed by {@link SinkPump.send}. */
  constructor (owner: SinkOwner, source: Source<OutgoingMessage> | undefined) {
    this.owner = owner
    if (source === undefined) {
      this.sends = true
      this.phase = IDLE
      this.own = false
      this.promise = NO_PROMISE
      return
    }
    this.sends = false
    // Throws for a non-iterable: the caller turns that into a rejected promise.
    const iterator = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]()
    this.iterator = iterator
    this.own = iterator === owner.ownMessages
    this.promise = new Promise<void>((resolve) => { this.settle = resolve })
  }

  /** The sink has ended (its iterable ended or threw, or it was stopped). */
  get ended (): boolean {
    return this.phase === ENDED
  }

  /** The sink ended because it failed: its iterable threw, or yielded what cannot be sent. */
  get failed (): boolean {
    return this.phase === ENDED && this.error !== undefined
  }

  /** `send()` has nothing under way (a streamed message, or messages behind one). */
  get idle (): boolean {
    return this.phase === IDLE
  }

  /**
   * `send()`: queue `message` at once when nothing is under way (resolving when the output is
   * below the mark), else behind what is, in order. A streamed message is sent chunk by chunk,
   * waiting for room in between; its call resolves once its last chunk is queued and there is room.
   */
  send (message: OutgoingMessage): Promise<void> {
    const streamed = isStreamedMessage(message)
    // Its chunks are read on a later turn: leaving `source` meanwhile must not abandon it.
    if (streamed) claimForSending(message)
    else if (this.phase === IDLE) return this.sendNow(message)
    return new Promise((resolve, reject) => {
      ;(this.queue ??= new Fifo()).push({ message, resolve, reject })
      if (this.phase === IDLE) this.pump()
    })
  }

  /** A whole message given to `send()` with nothing ahead of it: no promise unless it must wait for room. */
  private sendNow (message: Uint8Array | string): Promise<void> {
    const owner = this.owner
    // A streamed message cut off part-way (the connection is closing) cannot be followed (§5.4).
    if (owner.fragmentsUnderWay) return Promise.reject(owner.closingError())
    try {
      owner.queueMessage(message)
    } catch (err) {
      return Promise.reject(err)
    }
    if (!owner.outputFull()) return RESOLVED
    return new Promise((resolve, reject) => { (this.roomWaiters ??= []).push({ message, resolve, reject }) })
  }

  /** A `send()` whose turn came: a whole message is queued, a streamed one opened. */
  private take (item: Sent): void {
    const owner = this.owner
    if (owner.fragmentsUnderWay) return item.reject(owner.closingError())
    const message = item.message
    if (isStreamedMessage(message)) {
      let opened: { text: boolean, chunks: ChunkIterator }
      try {
        opened = openStream(message)
      } catch (err) {
        return item.reject(err)
      }
      this.chunksText = opened.text
      this.chunks = opened.chunks
      this.current = item
      return
    }
    try {
      owner.queueMessage(message)
    } catch (err) {
      return item.reject(err)
    }
    this.owed = item
  }

  /** The handler returned this sink's promise: its end is the handler's end, reported (to `logger`) without a `.then`. */
  adopt (logger?: Logger): void {
    this.adopted = true
    this.logger = logger
    if (this.phase === ENDED) this.settleHandler()
  }

  private settleHandler (): void {
    this.adopted = false
    // Handled here, so no unhandled rejection is reported for the promise nobody else holds.
    if (this.error !== undefined) this.promise.then(undefined, ignore)
    this.owner.onHandlerSettled(this.error, this.logger)
  }

  /** The connection's close is sent or the transport is gone: stop, whatever the sink waits for. */
  stop (): void {
    if (this.phase === WAITING || this.phase === BLOCKED || this.phase === IDLE) this.end(false)
  }

  /** The transport drained: `send()` calls waiting for room resolve; a blocked pump goes on. */
  onDrain (): void {
    const waiters = this.roomWaiters
    if (waiters !== undefined && !this.owner.outputFull()) {
      this.roomWaiters = undefined
      for (const w of waiters) w.resolve()
    }
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
    if (!this.takesOffer()) return false
    this.owner.queueEcho(message, text)
    return true
  }

  /** {@link SinkPump.offer} for a message that lies at `chunk[start, end)` of the read being handled. */
  offerAt (chunk: Uint8Array, start: number, end: number, text: boolean): boolean {
    if (!this.takesOffer()) return false
    this.owner.queueEchoAt(chunk, start, end, text)
    return true
  }

  /** {@link SinkPump.offer} for a binary message received as `parts` (never joined: written as they are). */
  offerParts (parts: readonly Uint8Array[], length: number): boolean {
    if (!this.takesOffer()) return false
    this.owner.queueEchoParts(parts, length)
    return true
  }

  /**
   * {@link SinkPump.offer} for every message of a read of `length` bytes at once: this sink waits
   * for its own source's next message, and the output has room for all the read's replies (each
   * no longer than its frame came), so each would be taken as it came.
   */
  takesChunk (length: number): boolean {
    if (this.phase !== WAITING || !this.own || this.pumping) return false
    const owner = this.owner
    return !owner.sendingStopped && owner.roomFor(length)
  }

  /** Whether this sink polls the connection's own source (an echo). */
  get echoes (): boolean {
    return this.own
  }

  /** This sink waits for its own source's next message and has room to send it at once. */
  private takesOffer (): boolean {
    if (this.phase !== WAITING || !this.own || this.pumping) return false
    const owner = this.owner
    return !owner.sendingStopped && !owner.outputFull()
  }

  /** Pull and send until the sink must wait. */
  pump (): void {
    if (this.pumping || (this.phase !== RUNNING && this.phase !== WAITING && this.phase !== IDLE)) return
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
      if (this.sends && this.chunks === undefined) {
        // One `send()` at a time: the last one resolves once there is room, then the next is taken.
        const owed = this.owed
        if (owed !== undefined) {
          if (owner.outputFull()) {
            this.phase = BLOCKED
            return
          }
          this.owed = undefined
          owed.resolve()
        }
        const item = this.queue?.shift()
        if (item === undefined) {
          this.phase = IDLE
          this.queue = undefined
          return owner.onSinkEnded()
        }
        this.take(item)
        continue
      }
      if (owner.outputFull()) {
        this.phase = BLOCKED
        return
      }
      if (this.chunks !== undefined) {
        if (!this.pullChunk()) return
        continue
      }
      let value: OutgoingMessage
      if (this.own) {
        let m: Uint8Array | typeof WAIT | typeof END
        try {
          m = owner.ownMessages!.poll()
        } catch (err) {
          return this.end(true, err)
        }
        if (m === WAIT) {
          this.phase = WAITING
          return
        }
        if (m === END) return this.end(true)
        // Bytes from our own source cannot be a bad message: no try needed.
        owner.queueEcho(m, owner.ownMessages!.lastText)
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
      if (!this.startItem(value)) return
    }
  }

  /** Queue a message, or start streaming one out. False when that failed and the sink ended. */
  private startItem (value: OutgoingMessage): boolean {
    try {
      if (isStreamedMessage(value)) {
        claimForSending(value)
        const { text, chunks } = openStream(value)
        this.chunksText = text
        this.chunks = chunks
      } else {
        this.owner.queueMessage(value)
      }
      return true
    } catch (err) {
      this.end(false, err)
      return false
    }
  }

  /** Pull the next chunk of the streamed message. False when the pump must wait or ended. */
  private pullChunk (): boolean {
    let r: IteratorResult<Uint8Array | string> | PromiseLike<IteratorResult<Uint8Array | string>>
    try {
      r = this.chunks!.next()
    } catch (err) {
      this.chunkFailed(err, false)
      return !this.sends ? false : !this.owner.sendingStopped
    }
    if (typeof (r as PromiseLike<unknown>).then === 'function') {
      this.phase = WAITING
      ;(r as PromiseLike<IteratorResult<Uint8Array | string>>).then(
        this.onChunk ??= (result) => { this.chunkPulled(result) },
        this.onChunkError ??= (err: unknown) => { if (this.phase === WAITING) this.chunkFailed(err, false) })
      return false
    }
    return this.sendChunk(r as IteratorResult<Uint8Array | string>)
  }

  /** Send one chunk, or end the streamed message. False when the sink ended. */
  private sendChunk (result: IteratorResult<Uint8Array | string>): boolean {
    const owner = this.owner
    try {
      if (result.done === true) {
        this.chunks = undefined
        owner.endStream(this.chunksText)
        this.streamSent()
        return true
      }
      // A received message tells when its last chunk is out: that chunk then carries FIN.
      const last = lastChunkTaken(this.chunks!)
      owner.queueChunk(result.value, this.chunksText, last)
      if (last) {
        this.chunks = undefined
        this.streamSent()
      }
      return true
    } catch (err) {
      this.chunkFailed(err, true)
      return this.sends && !owner.sendingStopped
    }
  }

  /** A streamed message is all queued: its `send()` resolves once there is room. */
  private streamSent (): void {
    if (this.current === undefined) return
    this.owed = this.current
    this.current = undefined
  }

  /**
   * A streamed message's chunks threw, or yielded what cannot be sent (`stop`: its iterator is
   * stopped). Half a message cannot be taken back: the connection closes (§7.4.1 1011). The sink
   * ends with the error; a `send()` rejects with it.
   */
  private chunkFailed (err: unknown, stop: boolean): void {
    if (!this.sends) return this.end(false, err)
    const chunks = this.chunks
    const item = this.current
    this.chunks = undefined
    this.current = undefined
    if (stop && chunks !== undefined) stopIterator(chunks)
    this.owner.failStream(err)
    item?.reject(err)
    if (this.phase === WAITING) this.phase = RUNNING
    this.pump()
  }

  /** A chunk iterator's promise settled with `result`. */
  private chunkPulled (result: IteratorResult<Uint8Array | string>): void {
    if (this.phase !== WAITING) return
    if (this.owner.sendingStopped) return this.end(false)
    this.phase = RUNNING
    if (this.sendChunk(result) && this.phase === RUNNING) this.pump()
  }

  /** A foreign iterator's promise settled with `result`. */
  private pulled (result: IteratorResult<OutgoingMessage>): void {
    // Stopped meanwhile (the connection closed): that message is not sent.
    if (this.phase !== WAITING) return
    if (this.owner.sendingStopped) return this.end(false)
    if (result.done === true) return this.end(true)
    this.phase = RUNNING
    if (this.startItem(result.value)) this.pump()
  }

  /** The sink is done: `finished` when its iterable ended (or threw) by itself. */
  private end (finished: boolean, error?: unknown): void {
    if (this.phase === ENDED) return
    if (this.sends) return this.endSends()
    this.phase = ENDED
    // Set before return() below: a generator that returns `source` then sees a failed sink.
    this.error = error
    this.owner.flush()
    const iterator = this.iterator
    this.iterator = undefined
    const chunks = this.chunks
    this.chunks = undefined
    // "Stops": the handler's generators (and a streamed message's chunks) run their finally blocks.
    if (chunks !== undefined) stopIterator(chunks)
    // Half a message cannot be taken back: whether or not the handler heeds the sink's
    // rejection, the connection closes (§7.4.1 1011).
    if (chunks !== undefined && error !== undefined) this.owner.failStream(error)
    if (!finished && iterator !== undefined) stopIterator(iterator)
    this.settle(error !== undefined ? Promise.reject(error) : undefined)
    if (this.adopted) this.settleHandler()
    this.owner.onSinkEnded()
  }

  /** `send()`: the connection is closing. What waits rejects, and a streamed message's chunks are stopped. */
  private endSends (): void {
    this.phase = ENDED
    const chunks = this.chunks
    this.chunks = undefined
    if (chunks !== undefined) stopIterator(chunks)
    const waiting: Sent[] = []
    if (this.current !== undefined) waiting.push(this.current)
    if (this.owed !== undefined) waiting.push(this.owed)
    this.current = undefined
    this.owed = undefined
    for (let item = this.queue?.shift(); item !== undefined; item = this.queue?.shift()) waiting.push(item)
    this.queue = undefined
    if (this.roomWaiters !== undefined) waiting.push(...this.roomWaiters)
    this.roomWaiters = undefined
    for (const w of waiting) w.reject(this.owner.closingError())
  }
}
