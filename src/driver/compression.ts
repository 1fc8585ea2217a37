/**
 * The zlib work of a connection that negotiated permessage-deflate (RFC 7692): large messages
 * are compressed and inflated off the event loop, in order and within the zlib budgets. What is
 * sent while a message is being compressed waits behind it; a received message left for later
 * pauses reading until it is inflated; a spent budget pauses reading until it recovers.
 *
 * @packageDocumentation
 */

import { PENDING, type CompressedPayload, type PerMessageDeflate } from '../extensions/permessage-deflate.js'
import { Fifo } from '../fifo.js'
import { ITEM_OVERHEAD } from '../protocol/gather.js'
import { ProtocolError } from '../protocol/errors.js'
import type { Role } from '../protocol/frame-parser.js'
import type { Session, SessionEvent } from '../protocol/session.js'
import { publishZlibBudgetWait, zlibBudgetWaitChannel } from '../diagnostics.js'
import type { Clock, ClockTimer } from './clock.js'
import { sendFragments } from './output.js'
import { FOR_INFLATE, FOR_QUEUE, FOR_ZLIB, type Reading } from './reading.js'

/** A connection waiting for a zlib budget looks again at least this often (ms). */
const BUDGET_RECHECK = 100

/** What waits to be sent behind a message being compressed off the event loop: a message, or a streamed message's chunk. */
type Outgoing =
  | { readonly kind: 'message', readonly data: Uint8Array, readonly binary: boolean, readonly broadcast: boolean }
  | { readonly kind: 'chunk', readonly data: Uint8Array, readonly text: boolean, readonly last: boolean }

/** What the zlib work needs from its connection. */
export interface CompressionOwner {
  /** The transport is gone. */
  readonly gone: boolean
  /** Bytes in the receive queue now. */
  readonly queuedIn: number
  /** Hand out what the session made of an inflated message. */
  handleEvents: (events: SessionEvent[]) => void
  flush: () => void
  /** What waited behind compression is all in the session now: a close asked for meanwhile goes, or the senders go on. */
  onOutgoingSent: () => void
}

/** Tunings of {@link Compression}: the connection's limits. */
export interface CompressionLimits {
  readonly receiveHigh: number
  /** Largest message inflated (the session's limit, enforced off the loop by the extension). */
  readonly maxInflated: number
  /** Largest fragment of a streamed message we send. */
  readonly maxOutFrame: number
}

/** One per connection that negotiated permessage-deflate. */
export class Compression {
  private readonly owner: CompressionOwner
  private readonly session: Session
  private readonly deflate: PerMessageDeflate
  private readonly clock: Clock
  private readonly reading: Reading
  private readonly role: Role
  private readonly limits: CompressionLimits
  /**
   * A compressed message was left for later (the session holds what came after it): reading is
   * paused until it is inflated. What it waits for: room in the receive queue, the zlib budget
   * (a timer), or its job off the loop; undefined: nothing yet.
   */
  inflating = false
  private inflateWait: 'room' | 'timer' | 'job' | undefined = undefined
  private inflateTimer: ClockTimer | undefined = undefined
  private readonly onInflated: (error: ProtocolError | undefined, data: Uint8Array | undefined) => void
  private zlibTimer: ClockTimer | undefined = undefined
  /** The message being compressed off the loop, and what waits behind it in order; undefined when none is. */
  private compressing: Outgoing | undefined = undefined
  private outgoing: Fifo<Outgoing> | undefined = undefined
  /** What those hold: their bytes plus an item's overhead each. */
  outgoingBytes = 0
  private readonly onDeflated: (payload: CompressedPayload | undefined) => void
  /** Times reading paused for a zlib budget. */
  waits = 0

  constructor (owner: CompressionOwner, session: Session, deflate: PerMessageDeflate, clock: Clock, reading: Reading, role: Role, limits: CompressionLimits) {
    this.owner = owner
    this.session = session
    this.deflate = deflate
    this.clock = clock
    this.reading = reading
    this.role = role
    this.limits = limits
    // Large messages are ours to compress and inflate, off the event loop and within the budgets.
    deflate.offLoop = true
    this.onInflated = (error, data) => { this.inflated(error, data) }
    this.onDeflated = (payload) => { this.deflated(payload) }
  }

  /** A message is being compressed off the loop: what is sent now waits behind it. */
  get busy (): boolean {
    return this.compressing !== undefined
  }

  /** Queue one whole message, compressed: at once when it is small, else off the event loop. */
  send (data: Uint8Array, binary: boolean, broadcast: boolean): void {
    if (this.compressing !== undefined) {
      this.push({ kind: 'message', data, binary, broadcast })
      return
    }
    const payload = this.deflate.deflate(data, broadcast, this.onDeflated)
    if (payload === PENDING) {
      this.compressing = { kind: 'message', data, binary, broadcast }
      this.outgoingBytes += data.length + ITEM_OVERHEAD
      return
    }
    this.session.sendCompressed(data, binary, payload)
  }

  /** A chunk of a streamed message, sent while a message is being compressed: it waits its turn. */
  pushChunk (data: Uint8Array, text: boolean, last: boolean): void {
    this.push({ kind: 'chunk', data, text, last })
  }

  private push (item: Outgoing): void {
    ;(this.outgoing ??= new Fifo()).push(item)
    this.outgoingBytes += item.data.length + ITEM_OVERHEAD
  }

  /** The message being compressed off the loop is: send it, then what waited behind it, up to the next that must wait. */
  private deflated (payload: CompressedPayload | undefined): void {
    const done = this.compressing
    if (done === undefined || done.kind !== 'message' || this.owner.gone) return
    this.compressing = undefined
    this.outgoingBytes -= done.data.length + ITEM_OVERHEAD
    this.session.sendCompressed(done.data, done.binary, payload)
    const outgoing = this.outgoing
    let item: Outgoing | undefined
    while (outgoing !== undefined && (item = outgoing.shift()) !== undefined) {
      this.outgoingBytes -= item.data.length + ITEM_OVERHEAD
      if (item.kind === 'chunk') {
        sendFragments(this.session, item.data, item.text, item.last, this.limits.maxOutFrame)
        continue
      }
      const next = this.deflate.deflate(item.data, item.broadcast, this.onDeflated)
      if (next === PENDING) {
        this.compressing = item
        this.outgoingBytes += item.data.length + ITEM_OVERHEAD
        break
      }
      this.session.sendCompressed(item.data, item.binary, next)
    }
    if (this.compressing === undefined) this.outgoing = undefined
    this.owner.flush()
    this.checkBudget()
    if (this.compressing === undefined) this.owner.onOutgoingSent()
  }

  /** The peer's close or the transport's end: compressions under way and messages behind them are dropped, and inflating stops. */
  drop (): void {
    this.stopInflating()
    this.deflate.cancel()
    this.compressing = undefined
    this.outgoing = undefined
    this.outgoingBytes = 0
    if (this.zlibTimer !== undefined) this.clock.clearTimeout(this.zlibTimer)
    this.zlibTimer = undefined
    this.reading.set(FOR_ZLIB, false)
  }

  /** Before a read is handed to the session: what it may inflate at once, up to the receive queue's mark (then the rest waits). */
  beforeRead (): void {
    this.deflate.room = this.limits.receiveHigh - this.owner.queuedIn
  }

  /** After a read: a message it left for later is inflated now if nothing holds it. */
  afterRead (): void {
    if (this.inflating && this.inflateWait === undefined) this.inflateLater()
  }

  /** The session left a compressed message for later: nothing more is read until it is inflated. */
  leftForLater (): void {
    this.inflating = true
    this.reading.set(FOR_INFLATE, true)
  }

  /** The receive queue fell to its low mark: a message waiting for room goes on, on the next turn (not inside the consumer's next()). */
  roomAgain (): void {
    if (this.inflateWait !== 'room') return
    this.inflateWait = undefined
    setImmediate(inflateWhenRoom, this)
  }

  /**
   * Inflate the compressed message the session left for later, once the receive queue has room
   * and the budgets allow: at once if it turns out small, else off the loop. Each one's bytes
   * go back to the session, which hands out what came after it (and maybe leaves the next one).
   */
  inflateLater (): void {
    const z = this.deflate
    while (this.inflating && this.inflateWait === undefined && !this.owner.gone) {
      // RFC 7692 leaves the pace to us: the queue is past its mark, so this waits for its low mark.
      if (this.reading.has(FOR_QUEUE)) {
        this.inflateWait = 'room'
        return
      }
      let result: Uint8Array | number | undefined
      try {
        result = z.inflateLater(this.limits.maxInflated, this.onInflated)
      } catch (err) {
        this.inflated(err as ProtocolError, undefined)
        continue
      }
      if (result === undefined) {
        this.inflateWait = 'job'
        return
      }
      if (typeof result === 'number') {
        // Counted once per wait, not per look.
        if (this.inflateTimer === undefined) {
          this.waits++
          if (zlibBudgetWaitChannel.hasSubscribers) publishZlibBudgetWait(this.owner, this.role, z.waitingOn, result)
        }
        this.inflateWait = 'timer'
        // Looked at again within BUDGET_RECHECK: what an inflate was charged ahead is given back when it ends.
        this.inflateTimer = this.clock.setTimeout(inflateTimerFired, Math.min(result, BUDGET_RECHECK), this)
        return
      }
      this.inflateTimer = undefined
      this.inflated(undefined, result)
    }
  }

  /** The budget wait is over: try again. */
  onInflateTimer (): void {
    if (this.inflateWait !== 'timer') return
    this.inflateWait = undefined
    this.inflateLater()
    // Still waiting (a new timer was set), or done waiting.
    if (this.inflateWait !== 'timer') this.inflateTimer = undefined
  }

  /** The message left for later is inflated (or failed): the session gets its bytes and goes on with what came after. */
  private inflated (error: ProtocolError | undefined, data: Uint8Array | undefined): void {
    if (this.owner.gone || !this.inflating) return
    if (!this.session.awaitingDecompressed) {
      // The session failed meanwhile (the memory budget): nothing more is handled.
      this.stopInflating()
      return
    }
    if (error === undefined && data === undefined) {
      // It cost more than the budgets had left: let in again, in full, once they allow.
      this.inflateWait = undefined
      this.inflateLater()
      return
    }
    this.inflating = false
    const wasJob = this.inflateWait === 'job'
    this.inflateWait = undefined
    let events: SessionEvent[]
    if (error !== undefined) {
      events = this.session.failWith(error instanceof ProtocolError ? error : new ProtocolError('WS_ERR_INTERNAL'))
    } else {
      // What follows may be inflated at once up to the mark, this message counted.
      this.deflate.room = this.limits.receiveHigh - this.owner.queuedIn - data!.length - ITEM_OVERHEAD
      events = this.session.decompressed(data!)
    }
    this.owner.handleEvents(events)
    if (!this.inflating) this.reading.set(FOR_INFLATE, false)
    // Off the loop, the next one (if the session left one) is started here; at once, by the caller's loop.
    if (wasJob && this.inflating) this.inflateLater()
  }

  /** The session handles nothing more: the message left for later is not inflated. */
  stopInflating (): void {
    this.inflating = false
    this.inflateWait = undefined
    if (this.inflateTimer !== undefined) this.clock.clearTimeout(this.inflateTimer)
    this.inflateTimer = undefined
    this.deflate.cancelInflate()
  }

  /** This connection's zlib budget is spent: stop reading from it until it has recovered. */
  checkBudget (): void {
    if (this.reading.has(FOR_ZLIB) || this.owner.gone) return
    const wait = this.deflate.budget.wait()
    if (wait === 0) return
    this.waits++
    if (zlibBudgetWaitChannel.hasSubscribers) publishZlibBudgetWait(this.owner, this.role, 'connection', wait)
    this.reading.set(FOR_ZLIB, true)
    this.zlibTimer = this.clock.setTimeout(zlibTimerFired, Math.min(wait, BUDGET_RECHECK), this)
  }

  /** The budget's wait is over: read again, unless it is still spent (then look again later). */
  onZlibTimer (): void {
    this.zlibTimer = undefined
    const wait = this.deflate.budget.wait()
    if (wait > 0 && !this.owner.gone) {
      this.zlibTimer = this.clock.setTimeout(zlibTimerFired, Math.min(wait, BUDGET_RECHECK), this)
      return
    }
    this.reading.set(FOR_ZLIB, false)
  }
}

function inflateWhenRoom (z: Compression): void { z.inflateLater() }
function inflateTimerFired (z: Compression): void { z.onInflateTimer() }
function zlibTimerFired (z: Compression): void { z.onZlibTimer() }
