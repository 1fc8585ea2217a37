/**
 * The closing part of a connection: it carries out what the session decides about closing
 * (src/protocol/closing.ts) and nothing else. It owns the one close timer, the end and the
 * destruction of the transport, the `closed` promise and its {@link CloseInfo} (worked out in
 * one place: the session's outcome), the `signal`, and the close asked for while messages are
 * still being compressed. It reports the transport's end, error and close and the timer's firing
 * back to the session, and tells the rest of the connection (its {@link ClosingOwner}) when to
 * stop sending, end `source` or let go of its buffers.
 *
 * @packageDocumentation
 */

import { CloseCode } from '../protocol/close-codes.js'
import { checkClose, isClosing, OPEN_CLOSE_STATE, type CloseTimer } from '../protocol/closing.js'
import type { ProtocolError } from '../protocol/errors.js'
import type { Session } from '../protocol/session.js'
import { ConnectionClosedError } from '../errors.js'
import type { Clock, ClockTimer } from './clock.js'
import type { Transport } from './transport.js'
import type { CloseInfo } from './types.js'

/** How long the close owed to a peer that broke the protocol waits for the handler to read what came before it (ms). */
export const REPLY_GRACE = 1000

/** {@link Closing}'s flags: we ended our side of the transport. */
const ENDED = 1
/** The transport is gone (its `close` came). */
const GONE = 2
/** The owed close is scheduled to follow the handler's last replies. */
const REPLY_SCHEDULED = 4
/** A look at whether both directions are done is scheduled. */
const DONE_CHECK_SCHEDULED = 8

/** What the closing part asks of the rest of the connection. */
export interface ClosingOwner {
  /** Write everything the session queued. */
  flush: () => void
  /** Our close is out or the transport is gone: the sending engine stops (the sink pulls no more; `send()` calls reject). */
  stopSending: () => void
  /** The peer closed or failed, or the transport is gone: compressions under way are dropped, inflating stops. */
  dropZlibWork: () => void
  /** Read again if reading was paused (the close's answer and TCP's end must be seen). */
  updateReading: () => void
  /** Stop the heartbeat: once closing, one timer bounds the wait. */
  stopHeartbeat: () => void
  /** Messages given to send are still being compressed: our close waits for them (DESIGN "Closing"). */
  readonly isCompressing: boolean
  /** The consumer of `source` is done with it (returned it, or read its end). */
  readonly sourceDetached: boolean
  /** `source` ends (with `error`, it throws it). */
  endSource: (error?: Error) => void
  /** Our close is out: the peer's answer must be read even if the handler reads no more. */
  releaseSource: () => void
  /**
   * Both directions done (`source` returned): the close code to close with now, 1000, or 1011
   * if the sink's iterable threw; undefined while something is still being sent.
   */
  doneSending: () => number | undefined
  /** The transport is gone and `closed` settles with `info`: let go of everything else. */
  onGone: (info: CloseInfo) => void
  /** Where the close timer runs. */
  readonly clock: Clock
  /** How long a close waits for its answer, and TCP's end after it (ms). */
  readonly closeTimeout: number
}

/**
 * What only a closing connection (or one asked for `closed` or `signal`) needs, made then: an
 * open connection holds one field for all of it (8 bytes, not 72).
 */
class ClosingState {
  /** The close timer, and what it waits for (the session's {@link CloseTimer}). */
  timer: ClockTimer | undefined = undefined
  timerKind: CloseTimer | undefined = undefined
  transportError: Error | undefined = undefined
  /** A close of ours asked for while messages are being compressed: sent once they are. */
  requested: { code: number, reason: string } | undefined = undefined
  /** Made on first use of `signal`: most connections never ask. */
  abortController: AbortController | undefined = undefined
  abortReason: ConnectionClosedError | undefined = undefined
  /** `closed` is made on first use; most connections are never asked. */
  closedPromise: Promise<CloseInfo> | undefined = undefined
  resolveClosed: ((info: CloseInfo) => void) | undefined = undefined
  info: CloseInfo | undefined = undefined
}

/** The closing part (see the module's comment). */
export class Closing {
  /** The peer broke the protocol (or a limit or budget was passed): the error `source` throws. */
  failure: ProtocolError | undefined
  private readonly owner: ClosingOwner
  private readonly session: Session
  private readonly transport: Transport
  /** {@link ENDED}, {@link GONE}, {@link REPLY_SCHEDULED}, {@link DONE_CHECK_SCHEDULED}: one field, not four (bytes per connection). */
  private flags = 0
  /** The rest, once closing starts (or `closed` or `signal` is asked for). */
  private state: ClosingState | undefined = undefined

  constructor (owner: ClosingOwner, session: Session, transport: Transport) {
    this.owner = owner
    this.session = session
    this.transport = transport
  }

  /** {@link Closing.state}, made now if need be. */
  private get more (): ClosingState {
    return (this.state ??= new ClosingState())
  }

  /** The transport is gone. */
  get gone (): boolean {
    return (this.flags & GONE) !== 0
  }

  /** What `closed` settled with, once the transport is gone. */
  get closeInfo (): CloseInfo | undefined {
    return this.state?.info
  }

  /** Settles once the transport is gone, with the session's outcome. */
  get closed (): Promise<CloseInfo> {
    const state = this.more
    if (state.closedPromise === undefined) {
      state.closedPromise = state.info !== undefined
        ? Promise.resolve(state.info)
        : new Promise((resolve) => { state.resolveClosed = resolve })
    }
    return state.closedPromise
  }

  /** Aborts when closing starts, for any reason. */
  get signal (): AbortSignal {
    const state = this.more
    if (state.abortController === undefined) {
      state.abortController = new AbortController()
      if (state.abortReason !== undefined) state.abortController.abort(state.abortReason)
    }
    return state.abortController.signal
  }

  /** Closing has begun (the signal has aborted, or would have). */
  get started (): boolean {
    return this.state?.abortReason !== undefined
  }

  /** Nothing more may be sent: our close is out (or asked for), or the transport is gone. */
  get sendingStopped (): boolean {
    return (this.flags & GONE) !== 0 || this.session.closeSent || this.state?.requested !== undefined
  }

  /** The code `closed` settles with, as things stand: the session's outcome, or the close asked for. */
  private get code (): number {
    const code = this.state?.info?.code ?? this.session.closeOutcome.code
    return code === CloseCode.Abnormal ? this.state?.requested?.code ?? code : code
  }

  /** What `send()` and `ping()` reject with once the connection is closing, or closed once `closed` has settled. */
  closingError (code = this.code): ConnectionClosedError {
    return new ConnectionClosedError(this.state?.info === undefined ? 'the connection is closing' : 'the connection is closed', code)
  }

  /**
   * `conn.close(code, reason)`: start the closing handshake (§7.1.2). A close already owed to
   * the peer goes instead; behind messages still being compressed, ours waits for them.
   * @throws as {@link checkClose}, whatever the state: a programmer's mistake.
   */
  close (code: number = CloseCode.Normal, reason = ''): void {
    checkClose(code, reason)
    if (this.sendingStopped) return
    if (this.sendOwedClose()) return
    if (this.owner.isCompressing) {
      // The messages already given to send go first (DESIGN "Closing"); nothing more is taken.
      this.more.requested = { code, reason }
      this.stopSending()
      return
    }
    this.session.sendClose(code, reason)
    this.stopSending()
    this.flush()
    // The peer's answer must be read even if the handler reads no more (the queue drops instead).
    this.owner.releaseSource()
  }

  /** The messages being compressed are sent: a close asked for meanwhile goes now. Returns true if one did. */
  compressed (): boolean {
    const requested = this.state?.requested
    if (requested === undefined) return false
    this.state!.requested = undefined
    this.close(requested.code, requested.reason)
    return true
  }

  /** The session reported the peer's close: `source` ends; the answer goes when the session says (at once, after what is being written). */
  onPeerClose (): void {
    this.owner.endSource()
    this.abort()
    if (this.session.closeDecision.owed === 'now') this.sendOwedClose()
    else this.updateTimer()
  }

  /**
   * The session reported a failure (the peer's protocol error, a limit, the memory budget):
   * `source` throws it after what came before; the close we owe (1002, 1007, 1009, 1013) goes
   * once the handler has read up to it, or after a short grace, so its replies go first.
   */
  onFailure (error: ProtocolError): void {
    this.failure = error
    this.owner.updateReading()
    this.owner.endSource(error)
    this.abort()
    if (this.session.pendingClose === undefined || this.gone) return
    if (this.session.closeDecision.owed === 'now') this.sendOwedClose()
    else if (this.owner.sourceDetached) this.onSourceDrained()
    else this.updateTimer()
  }

  /** The consumer of `source` has seen its end: the close owed to the peer can follow the replies. */
  onSourceDrained (): void {
    if (this.session.pendingClose === undefined || (this.flags & REPLY_SCHEDULED) !== 0) return
    this.flags |= REPLY_SCHEDULED
    // After the flush the sink scheduled for its last replies (setImmediate runs in order).
    setImmediate(replyLater, this)
  }

  /** Send the close frame owed to the peer, if any. */
  sendOwedClose (): boolean {
    if (this.session.pendingClose === undefined || this.gone) return false
    this.session.sendPendingClose()
    this.owedCloseSent()
    return true
  }

  /** The session sent the close we owed (asked, or on its own at the timer or the peer's end of TCP). */
  private owedCloseSent (): void {
    // The peer closed or failed: what was still being compressed is dropped, as later writes are.
    this.owner.dropZlibWork()
    this.stopSending()
    this.flush()
    this.owner.updateReading()
  }

  /**
   * `source` was returned, or the sink ended with `source` returned: WebSocket has no half-close,
   * so once both directions are done the connection closes. On the next turn, not now: a
   * `throw` out of a `for await` also returns the source, and the error on its way to the
   * handler must decide the close code (1011, or the handler's own `close()`), not this rule.
   */
  scheduleDoneCheck (): void {
    if ((this.flags & DONE_CHECK_SCHEDULED) !== 0 || this.sendingStopped) return
    this.flags |= DONE_CHECK_SCHEDULED
    setImmediate(doneCheck, this)
  }

  /** Both directions done: close with 1000, or 1011 if the sink's iterable threw. */
  closeIfDone (): void {
    this.flags &= ~DONE_CHECK_SCHEDULED
    if (!this.owner.sourceDetached || this.sendingStopped) return
    const code = this.owner.doneSending()
    if (code !== undefined) this.close(code)
  }

  /**
   * The output was just written: carry out the session's orders (§7.1.1) — the close timer it
   * names (a new name, a fresh timer), and ending or destroying the transport. Ending only here,
   * after a flush, so our close frame is never cut off.
   */
  afterFlush (): void {
    // The common case, on every flush: nothing about closing has happened.
    if ((this.flags & GONE) !== 0 || (this.session.closeState === OPEN_CLOSE_STATE && this.state?.timerKind === undefined)) return
    this.updateTimer()
    const transport = this.session.closeDecision.transport
    // Not while a long output still goes a slice at a time (output.ts): our close is behind it.
    if (transport === 'end' && (this.flags & ENDED) === 0 && this.session.pendingOutput === 0) {
      this.flags |= ENDED
      this.transport.end()
    } else if (transport === 'destroy') {
      this.transport.destroy()
    }
  }

  /** Write what the session queued, then carry out its orders. */
  private flush (): void {
    this.owner.flush()
    this.afterFlush()
  }

  /** Run the timer the session names, if it is not running already. */
  private updateTimer (): void {
    const kind = this.session.closeDecision.timer
    if (kind === this.state?.timerKind) return
    const state = this.more
    const { clock, closeTimeout } = this.owner
    if (state.timer !== undefined) clock.clearTimeout(state.timer)
    state.timer = undefined
    state.timerKind = kind
    if (kind === undefined) return
    this.owner.stopHeartbeat()
    state.timer = clock.setTimeout(timerFired, kind === 'replies' ? Math.min(REPLY_GRACE, closeTimeout) : closeTimeout, this)
  }

  /** The close timer fired: the session says what follows (the owed close, or the end of the transport). */
  onTimer (): void {
    const state = this.more
    const kind = state.timerKind
    state.timer = undefined
    state.timerKind = undefined
    if (this.gone || kind === undefined) return
    // 'replies': the handler did not read up to the peer's protocol error in time, the session
    // sends the owed close now; else no close frame, or no end of TCP, within closeTimeout: the
    // session orders a destroy.
    const owing = this.session.pendingClose !== undefined
    this.session.closeTimerFired()
    if (owing && this.session.pendingClose === undefined) this.owedCloseSent()
    else this.flush()
  }

  /**
   * The peer ended its side of the transport: nothing more comes. The session sends a close
   * still owed at once, unless the transport stays writable after the peer's end
   * (`allowHalfOpen`), where the handler may still reply; then it says who ends what.
   */
  onEnd (): void {
    if (this.gone) return
    const owing = this.session.pendingClose !== undefined
    this.session.receiveEof(this.transport.allowHalfOpen === true)
    if (owing && this.session.pendingClose === undefined) this.owedCloseSent()
    else this.flush()
  }

  /**
   * The transport failed; `close` follows, once it is destroyed. A TLS socket whose record does
   * not decrypt after its handshake reports the error but stays open (Node leaves that to its
   * owner), its TLS session dead: it would hold the connection without end.
   */
  onError (err: Error): void {
    this.more.transportError ??= err
    this.transport.destroy()
  }

  /** The transport is gone: the session's outcome is final, and `closed` settles with it. */
  onClose (): void {
    if ((this.flags & GONE) !== 0) return
    this.flags |= GONE
    const state = this.more
    if (state.timer !== undefined) this.owner.clock.clearTimeout(state.timer)
    state.timer = undefined
    this.owner.stopHeartbeat()
    this.owner.dropZlibWork()
    const error = state.transportError
    this.session.transportClosed(error !== undefined)
    const { code, reason, wasClean } = this.session.closeOutcome
    const info: CloseInfo = { code, reason, wasClean }
    // Without any close frame (or failure) the connection was lost, and `source` throws;
    // after a close it ends (the peer's answer, or closeTimeout, ended it).
    if (!isClosing(this.session.closeState)) {
      this.owner.endSource(new ConnectionClosedError(
        error !== undefined ? `connection lost: ${error.message}` : 'connection closed without a close frame',
        CloseCode.Abnormal, { cause: error }))
    } else {
      this.owner.endSource()
    }
    this.stopSending()
    state.info = info
    state.resolveClosed?.(info)
    this.owner.onGone(info)
  }

  /** Our close is sent (or asked for), or the transport is gone: the sink pulls no more; wake whatever waits. */
  private stopSending (): void {
    this.owner.stopSending()
    this.abort()
  }

  /** Closing has begun: the signal aborts with the code `closed` will report, as far as it is known. */
  private abort (): void {
    if (this.state?.abortReason !== undefined) return
    const state = this.more
    state.abortReason = new ConnectionClosedError('the connection is closing', this.code)
    state.abortController?.abort(state.abortReason)
  }
}

function timerFired (closing: Closing): void { closing.onTimer() }
function replyLater (closing: Closing): void { closing.sendOwedClose() }
function doneCheck (closing: Closing): void { closing.closeIfDone() }
