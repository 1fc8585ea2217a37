/**
 * The in-memory link of `wspipe/testing`: two {@link MemoryTransport}s, each the other's peer,
 * that behave toward the driver as the two ends of a TCP connection do, through nothing but the
 * driver's `Transport` interface (no `node:stream`).
 *
 * @packageDocumentation
 */

import { Buffer } from 'node:buffer'
import { EventEmitter } from 'node:events'
import type { Transport } from './driver/transport.js'

/** Bytes a paused end takes in before its peer's writes stay queued there (a socket's receive buffer). */
export const RECEIVE_WINDOW = 64 * 1024

/** Queued bytes from which `write()` returns false, and `drain` is owed once they are all delivered. */
export const WRITE_HIGH_WATER = 64 * 1024

interface PendingWrite {
  readonly bytes: Uint8Array
  readonly callback: ((err?: Error | null) => void) | undefined
}

function codedError (message: string, code: string): Error {
  return Object.assign(new Error(message), { code })
}

/**
 * One end of an in-memory byte link. What the driver sees is what a TCP socket shows it:
 *
 * - Bytes are copied on their way, as a network copies them (the receiver unmasks in place),
 *   and arrive on a later turn of the event loop, so two ends that never wait on I/O do not
 *   starve timers and `setImmediate` work. Writes queued by then arrive as one `data` chunk (a
 *   corked batch always does).
 * - Backpressure: a paused end takes in up to {@link RECEIVE_WINDOW} bytes; past that the
 *   peer's writes stay queued in the peer's `writableLength`, `write()` returns false from
 *   {@link WRITE_HIGH_WATER}, and `drain` comes once the queue is empty again.
 * - `end()`: queued bytes go first, then the peer sees `end` (once it reads: not while paused),
 *   and this end `finish`. An end that sees `end` ends its own side on the next tick
 *   (`allowHalfOpen` is false, as for the driver's sockets). `close` follows once both ways have
 *   ended, on the next tick.
 * - `destroy(error?)`: queued writes are dropped (their callbacks get an error), then `error`
 *   (if one was given) and `close`, on the next tick. The peer, on a later turn, sees a reset
 *   (an `ECONNRESET` error, then `close`) if an error was given or bytes were left unread at
 *   either end, as TCP sends RST then; otherwise the end of the stream, as after `end()`. A write
 *   the peer makes to an end that is gone fails with `EPIPE` and destroys the peer.
 */
export class MemoryTransport extends EventEmitter implements Transport {
  /** Never: an end that sees `end` ends its own side (what the driver's sockets do). */
  readonly allowHalfOpen = false
  /** Set once: destroyed, or both ways ended. */
  destroyed = false
  /** `end()` was called. */
  writableEnded = false
  /** Our end reached the peer (`finish` was emitted). */
  writableFinished = false
  /** `end` was emitted: the peer will send no more. */
  readableEnded = false
  /** The other end. */
  private peer!: MemoryTransport
  private queue: PendingWrite[] = []
  private queued = 0
  private corked = 0
  private needDrain = false
  private pumpScheduled = false
  /** Delivered and not yet emitted (paused, or no `data` listener yet). */
  private inbox: Buffer[] = []
  private inboxBytes = 0
  /** The peer's end arrived (behind what is in the inbox). */
  private eof = false
  /** `end` is due on the next tick. */
  private endScheduled = false
  private paused = false
  private flushScheduled = false

  /** Two ends, each the other's peer. */
  static pair (): [MemoryTransport, MemoryTransport] {
    const a = new MemoryTransport()
    const b = new MemoryTransport()
    a.peer = b
    b.peer = a
    return [a, b]
  }

  private constructor () {
    super()
    // A `data` listener added later gets what arrived before it, as with a stream.
    this.on('newListener', (event: string) => { if (event === 'data') this.scheduleFlush() })
  }

  /** Bytes queued and not yet taken in by the peer. */
  get writableLength (): number {
    return this.queued
  }

  /** Queue `chunk` for the peer; false from {@link WRITE_HIGH_WATER} queued bytes (`drain` follows). */
  write (chunk: Uint8Array, callback?: (err?: Error | null) => void): boolean {
    if (this.destroyed) {
      if (callback !== undefined) process.nextTick(callback, codedError('Cannot call write after a stream was destroyed', 'ERR_STREAM_DESTROYED'))
      return false
    }
    if (this.writableEnded) {
      const err = codedError('write after end', 'ERR_STREAM_WRITE_AFTER_END')
      if (callback !== undefined) process.nextTick(callback, err)
      this.destroy(err)
      return false
    }
    this.queue.push({ bytes: chunk, callback })
    this.queued += chunk.length
    if (this.corked === 0) this.schedulePump()
    if (this.queued < WRITE_HIGH_WATER) return true
    this.needDrain = true
    return false
  }

  /** Hold writes until as many `uncork()`: they then arrive as one chunk. */
  cork (): void {
    this.corked++
  }

  /** See {@link MemoryTransport.cork}. */
  uncork (): void {
    if (this.corked > 0 && --this.corked === 0) this.schedulePump()
  }

  /** End our side once what is queued has gone: the peer sees `end`, we `finish`. */
  end (): this {
    if (this.writableEnded || this.destroyed) return this
    this.writableEnded = true
    this.corked = 0
    this.schedulePump()
    return this
  }

  /** Stop `data` (and `end`): the peer's bytes wait here, up to {@link RECEIVE_WINDOW}, then in its queue. */
  pause (): this {
    this.paused = true
    return this
  }

  /** Emit what waits, on the next tick (as a stream's `resume()`). */
  resume (): this {
    this.paused = false
    this.scheduleFlush()
    return this
  }

  /** Drop this end at once (see the class for what each side then sees). */
  destroy (error?: Error): this {
    if (this.destroyed) return this
    this.destroyed = true
    const peer = this.peer
    const unread = this.inboxBytes > 0 || peer.queued > 0
    const dropped = this.queue
    this.queue = []
    this.queued = 0
    this.inbox = []
    this.inboxBytes = 0
    process.nextTick(() => {
      const err = codedError('Cannot call write after a stream was destroyed', 'ERR_STREAM_DESTROYED')
      for (const w of dropped) w.callback?.(err)
      if (error !== undefined) this.emit('error', error)
      this.emit('close')
    })
    if (!peer.destroyed) {
      const reset = error !== undefined || unread
      if (reset || !this.writableFinished) setImmediate(() => { if (reset) peer.reset(); else peer.receiveEof() })
    }
    return this
  }

  /** The peer went with bytes unread (or failed): TCP's RST. */
  private reset (): void {
    if (this.destroyed) return
    // Our own unread bytes do not make the peer (already gone) reset again.
    this.inbox = []
    this.inboxBytes = 0
    this.destroy(codedError('read ECONNRESET', 'ECONNRESET'))
  }

  private schedulePump (): void {
    if (this.pumpScheduled || this.destroyed) return
    this.pumpScheduled = true
    setImmediate(pump, this)
  }

  /** @internal Hand the peer what is queued, as far as its window allows; then `drain`, and our end. */
  pumpNow (): void {
    this.pumpScheduled = false
    if (this.destroyed || this.corked > 0) return
    const peer = this.peer
    if (this.queue.length > 0) {
      if (peer.destroyed) {
        this.destroy(codedError('write EPIPE', 'EPIPE'))
        return
      }
      // Whole writes, at least one, up to the peer's window; the peer asks for more when it reads.
      if (peer.inboxBytes >= RECEIVE_WINDOW) return
      let n = 0
      let size = 0
      while (n < this.queue.length && (n === 0 || peer.inboxBytes + size < RECEIVE_WINDOW)) size += this.queue[n++].bytes.length
      const taken = this.queue.splice(0, n)
      const segment = Buffer.allocUnsafeSlow(size)
      let at = 0
      for (const w of taken) {
        segment.set(w.bytes, at)
        at += w.bytes.length
      }
      // What was taken leaves the length before the callbacks run, as with Node's streams.
      this.queued -= size
      for (const w of taken) w.callback?.()
      if (size > 0) peer.receive(segment)
      if (this.destroyed) return
      if (this.queue.length > 0) {
        if (peer.inboxBytes < RECEIVE_WINDOW) this.schedulePump()
        return
      }
    }
    if (this.needDrain) {
      this.needDrain = false
      this.emit('drain')
    }
    if (this.writableEnded && !this.writableFinished && this.queue.length === 0 && !this.destroyed) {
      this.writableFinished = true
      if (!peer.destroyed) peer.receiveEof()
      this.emit('finish')
      this.closeIfDone()
    }
  }

  private receive (bytes: Buffer): void {
    if (this.destroyed) return
    this.inbox.push(bytes)
    this.inboxBytes += bytes.length
    this.flush()
  }

  private receiveEof (): void {
    if (this.destroyed || this.eof) return
    this.eof = true
    this.flush()
  }

  private scheduleFlush (): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    process.nextTick(flushLater, this)
  }

  /** @internal Emit what waits while flowing; then `end` once the peer's end is reached. */
  flush (): void {
    this.flushScheduled = false
    while (!this.destroyed && !this.paused && this.inbox.length > 0 && this.listenerCount('data') > 0) {
      const chunk = this.inbox.shift()!
      this.inboxBytes -= chunk.length
      this.emit('data', chunk)
    }
    if (this.destroyed) return
    if (this.inbox.length === 0 && this.eof && !this.paused && !this.endScheduled) {
      this.endScheduled = true
      process.nextTick(emitEnd, this)
    }
    // Room again: the peer sends what it holds back.
    if (this.inboxBytes < RECEIVE_WINDOW && this.peer.queue.length > 0) this.peer.schedulePump()
  }

  /** @internal `end`, then our own end (no half-open), and `close` once both ways are done. */
  endRead (): void {
    if (this.destroyed) return
    this.readableEnded = true
    this.emit('end')
    if (!this.allowHalfOpen) process.nextTick(endLater, this)
    this.closeIfDone()
  }

  private closeIfDone (): void {
    if (this.destroyed || !this.readableEnded || !this.writableFinished) return
    this.destroyed = true
    process.nextTick(emitClose, this)
  }
}

function pump (t: MemoryTransport): void { t.pumpNow() }
function flushLater (t: MemoryTransport): void { t.flush() }
function emitEnd (t: MemoryTransport): void { t.endRead() }
function endLater (t: MemoryTransport): void { t.end() }
function emitClose (t: MemoryTransport): void { t.emit('close') }
