/**
 * The output: messages into the session, the session's bytes onto the transport (one corked
 * batch per flush, at the end of the tick), and what this connection holds against the
 * server's memory budget, a buffer shared with other connections' output counted once.
 *
 * @packageDocumentation
 */

import { Buffer } from 'node:buffer'
import { Socket } from 'node:net'
import { Writable } from 'node:stream'
import type { Session } from '../protocol/session.js'
import { SHARED_MIN, type MemoryBudget, type SharedBytes } from './budget.js'
import type { Compression } from './compression.js'
import { preparedShare } from './prepared.js'
import { FOR_WRITE, type Reading } from './reading.js'
import { SHARED_REF_COST, SharedOutput, shareOf } from './shared.js'
import { isText } from '../text-mark.js'
import type { Transport } from './transport.js'
import type { OutgoingMessage } from './types.js'

const EMPTY = new Uint8Array(0)

/** Output queued in the session is written at once from this many bytes, not at the end of the tick or read. */
const FLUSH_AT = 65536

/**
 * Node's own write, which a plain `net.Socket` inherits: a socket whose `write` is another (an
 * instrumentation's wrapper, say) may write later than it says, so its slab is not reused.
 */
const nodeWrite = Writable.prototype.write

/** {@link Output.writtenBytes} counts modulo 2^30. */
const WRAP = 0x3fffffff

/** Reading stops when this many times `sendHighWaterMark` waits to be sent. */
const READ_STOP_FACTOR = 4

/** The limits the output reads (a server shares one object among its connections). */
export interface OutputLimits {
  readonly sendHigh: number
  readonly maxOutFrame: number
}

/** What the output needs from its connection. */
export interface OutputOwner {
  /** The transport is gone: nothing is written or charged any more. */
  readonly gone: boolean
  /** The peer broke the protocol: the connection is failing already, the budget does not fail it again. */
  readonly failed: boolean
  /** Bytes held outside the session and the output: the receive queue, messages waiting for compression. */
  heldBeside: () => number
  /** Output was written: whoever waits for room looks again. */
  onDrain: () => void
  /** Output was written: carry out the session's closing orders (its timer; ending TCP, §7.1.1). */
  afterFlush: () => void
  /** The budget refused what this connection holds: fail it (1013). */
  failForBudget: (held: number) => void
}

/**
 * Queue a chunk of a streamed message as fragments of at most `max` bytes (§5.4); the session
 * picks each one's opcode.
 */
export function sendFragments (session: Session, data: Uint8Array, text: boolean, last: boolean, max: number): void {
  let at = 0
  do {
    const end = Math.min(data.length, at + max)
    session.sendChunk(at === 0 && end === data.length ? data : data.subarray(at, end), !text, last && end === data.length)
    at = end
  } while (at < data.length)
}

/** One per connection. */
export class Output {
  private readonly owner: OutputOwner
  private readonly transport: Transport
  private readonly session: Session
  /** Reading pause and resume, which the output stops for a peer that does not read. */
  readonly reading: Reading
  /** `sendHigh` and `maxOutFrame` (the largest fragment of a streamed message we send). */
  private readonly config: OutputLimits
  private readonly budget: MemoryBudget | undefined
  /** The negotiated permessage-deflate's work, if any: whole messages go through it. */
  compression: Compression | undefined = undefined
  /** Inside the handling of a read, which flushes and charges once at its end. */
  handling = false
  /** Largest `writableLength` seen. */
  peak = 0
  /** Bytes given to the transport, modulo 2^30 (it stays a small integer, stored unboxed). */
  private handed = 0
  /** Payload bytes of the last data message (or chunk) queued: the one that may have crossed sendHigh. */
  private lastData = 0
  private flushScheduled = false
  /** A slice of a long output is being written: the rest waits for it (see {@link Output.flush}). */
  private slicing = false
  /** What this connection has charged to the budget. */
  private charged = 0
  /** Buffers in the output that other connections may hold too: the budget counts each once. */
  private shared: SharedOutput | undefined = undefined
  /** The budget refused a shared buffer this connection queued: the next charge fails it. */
  private sharedRefused = false
  /** Write callback of a flush that left the queue above `sendHigh` (made when first needed). */
  private written: (() => void) | undefined = undefined
  /** Write callbacks of a shared buffer (without, and with, the drain watch); made when first needed. */
  private sharedWritten: (() => void) | undefined = undefined
  private sharedWrittenWatched: (() => void) | undefined = undefined
  /** Write callback of a slice (made when first needed). */
  private sliceWritten: ((err?: Error | null) => void) | undefined = undefined

  constructor (owner: OutputOwner, transport: Transport, session: Session, reading: Reading, config: OutputLimits, budget: MemoryBudget | undefined) {
    this.owner = owner
    this.transport = transport
    this.session = session
    this.reading = reading
    this.config = config
    this.budget = budget
  }

  /** Queue one message; flush at the end of the tick so a burst leaves in one write. */
  message (message: OutgoingMessage): void {
    if (typeof message === 'string') {
      const data = Buffer.from(message)
      this.lastData = data.length
      this.data(data, false, false)
    } else if (message instanceof Uint8Array) {
      this.lastData = message.length
      const session = this.session
      // A prepared message (a broadcast) carries its frame, encoded once for every connection.
      // A session that must transform each payload (an extension) compresses it instead, once for
      // all connections that negotiated alike.
      const prepared = preparedShare(message)
      if (prepared !== undefined && session.acceptsEncoded) {
        if (session.sendEncoded(prepared.bytes)) this.holdShared(prepared)
      } else if (this.compression !== undefined) {
        this.compression.send(message, !isText(message), prepared !== undefined)
      } else if (this.budget !== undefined && session.queuesByReference(message.length)) {
        // Queued by reference: the same message sent on many connections is held once.
        if (session.send(message, !isText(message))) this.holdShared(shareOf(message))
      } else {
        session.send(message, !isText(message))
      }
    } else {
      throw new TypeError('a message must be a string or a Uint8Array')
    }
    this.queued()
  }

  /** Queue a message polled from this connection's own source (an echo), text if it came as text. */
  echo (message: Uint8Array, text: boolean): void {
    this.lastData = message.length
    // Inside a read's handling (where an echo's messages come from) queued() leaves the flush to its end.
    this.data(message, !text, false)
    this.queued()
  }

  /** {@link Output.echo} for a message that lies at `chunk[start, end)` of the read being handled: no view of it is made. */
  echoAt (chunk: Uint8Array, start: number, end: number, text: boolean): void {
    this.lastData = end - start
    if (this.compression === undefined) this.session.sendAt(chunk, start, end, !text)
    else this.compression.send(chunk.subarray(start, end), !text, false)
    this.queued()
  }

  /** The session echoed messages of the read being handled into its output, each of at most 125 bytes. */
  echoed (): void {
    // The one that may have crossed sendHigh: at most this long (the session echoes only small frames).
    this.lastData = 125
    this.queued()
  }

  /**
   * `length` more bytes queued now leave the output below `sendHighWaterMark` (so a sink would
   * take each message) and below the size at which {@link Output.queued} flushes at once.
   */
  roomFor (length: number): boolean {
    return this.session.pendingOutput + length < FLUSH_AT && this.queuedOut() + length < this.config.sendHigh
  }

  /** Queue a binary message polled from this connection's own source as the `parts` it arrived in (`length` bytes): written by reference, never joined. */
  echoParts (parts: readonly Uint8Array[], length: number): void {
    this.lastData = length
    this.session.sendParts(parts)
    this.queued()
  }

  /**
   * Queue one chunk of a streamed message as fragments of at most `maxFrameSize` (§5.4). An
   * empty chunk sends nothing unless it is the `last`.
   * @throws TypeError for anything but bytes or a string.
   */
  chunk (chunk: Uint8Array | string, text: boolean, last = false): void {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    if (!(data instanceof Uint8Array)) throw new TypeError('a chunk of a streamed message must be a Uint8Array or a string')
    if (data.length === 0 && !last) return
    this.lastData = data.length
    const z = this.compression
    if (z !== undefined && z.busy) z.pushChunk(data, text, last)
    else sendFragments(this.session, data, text, last, this.config.maxOutFrame)
    this.queued()
  }

  /** End a streamed message: an empty final fragment (the chunks' end is known only after the last). */
  endStream (text: boolean): void {
    const z = this.compression
    if (z !== undefined && z.busy) z.pushChunk(EMPTY, text, true)
    else this.session.sendChunk(EMPTY, !text, true)
    this.queued()
  }

  /** One whole message, through the compression when one was negotiated. */
  private data (data: Uint8Array, binary: boolean, broadcast: boolean): void {
    if (this.compression === undefined) this.session.send(data, binary)
    else this.compression.send(data, binary, broadcast)
  }

  /** `shared` is now in the output: the budget counts it once, whoever else holds it. */
  private holdShared (shared: SharedBytes): void {
    if (this.budget === undefined || this.owner.gone || shared.size < SHARED_MIN) return
    if (!(this.shared ??= new SharedOutput()).add(shared, this.budget)) this.sharedRefused = true
  }

  /** Something was queued: flush now if much is, else at the end of the tick (or of the read being handled). */
  queued (): void {
    if (this.compression !== undefined && !this.handling) this.compression.checkBudget()
    if (this.session.pendingOutput >= FLUSH_AT) this.flush()
    else if (!this.handling) this.scheduleFlush()
  }

  private scheduleFlush (): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    setImmediate(flushLater, this)
  }

  /**
   * Write everything the session queued, as one corked batch; more than a slice (`sendHigh`, at
   * least 64 KiB) goes a slice at a time, each when the one before it has been written. Node
   * reports a write done only when all of it is, and joins whatever queued behind it into one
   * write: a long message handed over whole would show no progress until its end, and a
   * heartbeat's pong, queued behind it, would look lost while the peer reads it slowly.
   */
  flush (): void {
    this.flushScheduled = false
    if (this.owner.gone) return
    if (this.slicing) return this.afterWrite(this.transport.writableLength)
    const transport = this.transport
    // 'drain' comes only once the transport's own high-water mark (16 KiB) was passed. When ours
    // is lower, or to be sure, the last write above it carries a callback: when it has been
    // written, so has everything before it, and whoever waits for room looks again.
    const sendHigh = this.config.sendHigh
    const watch = transport.writableLength + this.session.pendingOutput >= sendHigh ? (this.written ??= () => { this.owner.onDrain() }) : undefined
    const out = this.session.takeOutput(sendHigh > FLUSH_AT ? sendHigh : FLUSH_AT)
    const n = out.length
    if (n === 0) {
      // The peer's answer to our close leaves nothing to write, but TCP must still end (§7.1.1).
      this.owner.afterFlush()
      return
    }
    let done: (() => void) | undefined
    if (this.session.pendingOutput > 0) {
      // A slice: the next is written from its callback, and whoever waits for room looks again.
      // (Shared buffers are marked written only with the last slice.)
      this.slicing = true
      done = this.sliceWritten ??= (err?: Error | null) => {
        this.slicing = false
        // A failed write: the transport is going, and the rest with it.
        if (err != null) return
        this.owner.onDrain()
        this.flush()
      }
    } else {
      // Shared buffers in this output go back to the budget once the transport has written it.
      done = this.shared?.flushed() === true
        ? watch !== undefined
          ? (this.sharedWrittenWatched ??= () => { this.onSharedWritten(); this.owner.onDrain() })
          : (this.sharedWritten ??= () => { this.onSharedWritten() })
        : watch
    }
    // Counted before the last write: its callback (a transport may call it at once) may flush again.
    let handed = this.handed
    if (n === 1) {
      this.handed = (handed + out[0].length) & WRAP
      transport.write(out[0], done)
    } else {
      transport.cork()
      for (let i = 0; i < n - 1; i++) {
        handed += out[i].length
        transport.write(out[i])
      }
      this.handed = (handed + out[n - 1].length) & WRAP
      transport.write(out[n - 1], done)
      transport.uncork()
    }
    const queued = transport.writableLength
    // Written through to the kernel: the session writes the next batch over the same bytes. Only
    // a plain TCP socket says so by a `writableLength` of 0 (a TLS socket, an HTTP/2 stream, the
    // in-memory pair or a user's Duplex may keep what they were given), and only through Node's
    // own `write`. Asked here, not kept in a field: every idle connection would hold it.
    if (queued === 0 && transport.write === nodeWrite && transport.constructor === Socket) this.session.outputReleased()
    this.afterWrite(queued)
  }

  /** After a flush (`queued`: the transport's `writableLength`): the read stop, the budget, the closing part. */
  private afterWrite (queued: number): void {
    if (queued > this.peak) this.peak = queued
    // A peer that does not read our output (pongs included) is not read from either. The sink
    // already waits at sendHigh, so data passes it by at most the message that crossed it; this
    // stop sits above both, so only replies the sink does not make (pongs, close) reach it. Were
    // a big message to count, two peers each sending one would stop reading each other: deadlock.
    // What waits in the session behind a slice counts too.
    if (queued + this.session.pendingOutput >= this.config.sendHigh * READ_STOP_FACTOR + this.lastData && !this.reading.has(FOR_WRITE)) this.reading.set(FOR_WRITE, true)
    if (this.budget !== undefined && !this.handling) this.charge()
    this.owner.afterFlush()
  }

  /** Output is at the send mark even after a flush. */
  full (): boolean {
    const sendHigh = this.config.sendHigh
    if (this.queuedOut() < sendHigh) return false
    this.flush()
    return this.queuedOut() >= sendHigh
  }

  /** The transport wrote some output: read again if we stopped for it, and give the budget back what went. */
  drained (): void {
    if (this.reading.has(FOR_WRITE) && this.queuedOut() < this.config.sendHigh) this.reading.set(FOR_WRITE, false)
  }

  /** The transport wrote the oldest batch of shared buffers given to it (or was destroyed with it). */
  private onSharedWritten (): void {
    const shared = this.shared!
    shared.written(this.budget!)
    // Their bytes went back to the budget above; this connection's slots for them go once all are written.
    if (shared.count === 0 && !this.owner.gone) this.charge()
  }

  /**
   * Bytes the transport has finished writing, modulo 2^30: it moves when the peer reads what we
   * send (once the kernel's buffers are full, only then). A write counts once it completes whole.
   */
  get writtenBytes (): number {
    return (this.handed - this.transport.writableLength) & WRAP
  }

  /** Bytes queued in the session and the transport. */
  queuedOut (): number {
    return this.session.pendingOutput + this.transport.writableLength
  }

  /**
   * Memory held for this connection: undelivered input, the receive queue, output. A shared
   * buffer in the output counts as its slot here; the budget counts its bytes once for everyone.
   */
  held (): number {
    let out = this.queuedOut()
    const shared = this.shared
    // At least 0: the transport drops what it wrote from its length just before the write callbacks run.
    if (shared !== undefined && shared.count > 0) out = Math.max(0, out - shared.bytes) + shared.count * SHARED_REF_COST
    return this.session.heldBytes + out + this.owner.heldBeside()
  }

  /**
   * Report what this connection holds to the server's budget. Growth that finds the budget spent
   * fails the connection with 1013 (IANA: Try Again Later), which lets its buffers go.
   */
  charge (): void {
    const budget = this.budget
    if (budget === undefined) return
    const gone = this.owner.gone
    const held = gone ? 0 : this.held()
    const delta = held - this.charged
    this.charged = held
    const refused = this.sharedRefused
    this.sharedRefused = false
    if ((budget.charge(delta) && !refused) || gone || this.owner.failed) return
    this.owner.failForBudget(held)
    const after = this.held()
    budget.charge(after - this.charged)
    this.charged = after
  }

  /** The budget's figures, for the log line of a connection it refused. */
  budgetInfo (): { used: number, limit: number } {
    return { used: this.budget?.used ?? 0, limit: this.budget?.limit ?? 0 }
  }

  /** The transport is gone: the budget gets back all this connection charged, and its holds on shared buffers. */
  release (): void {
    const budget = this.budget
    if (budget === undefined) return
    this.shared?.clear(budget)
    budget.charge(-this.charged)
    this.charged = 0
  }
}

function flushLater (output: Output): void { output.flush() }
