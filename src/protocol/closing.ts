/**
 * Closing as one state machine (RFC 6455 §7): one state ({@link CloseState}), one transition
 * function ({@link closeStep}), the outcome derived from it ({@link closeOutcome}) and what the
 * driver is to do about the close timer and the transport ({@link closeDecision}). Everything
 * about closing is decided here; the driver runs the one timer and the I/O it is told to and
 * reports back (the peer's end of TCP, the transport gone, the timer fired). Pure: no timer, no I/O.
 *
 * ```
 *            send                receive / fail
 *   open ─────────────▶ sent ─────────────────────▶ done ──── closed ───▶ closed
 *     │                                              ▲
 *     │ receive / fail        send (the owed close)  │
 *     └─────────────▶ owing ─────────────────────────┘
 *             (the answer at once; after a failure, the replies first or the 'replies' timer)
 * ```
 *
 * The model is the sans-I/O core of python-websockets (`close_expected()`, its EOF rules) and
 * wsproto's local/remote closing states.
 *
 * @packageDocumentation
 */

import { CloseCode, isValidCloseCode } from './close-codes.js'
import type { Role } from './frame-parser.js'

/** A close code with its reason, as received or as `closed` reports it. */
export interface ClosePayload {
  /** The close code (§7.4); 1005 for a close frame without one. */
  readonly code: number
  /** The reason, decoded from UTF-8. */
  readonly reason: string
}

/** A close frame to send (or sent); `code` undefined for an empty close frame. */
export interface PendingClose {
  /** The code to send, or undefined for an empty close frame. */
  readonly code: number | undefined
  /** The reason to send with it. */
  readonly reason: string
}

/**
 * Where the closing handshake stands.
 * - `open`: no close frame either way, no failure.
 * - `owing`: the peer's close frame came, or the connection failed (§7.1.7); our close is owed
 *   and held back (`deferClose`) so replies to what came before can go first.
 * - `sent`: our close frame is sent; the peer's is awaited (its messages still arrive, §7.1.2).
 * - `done`: the closing handshake is over (both close frames crossed, or ours went out after a
 *   failure); what is left is the end of TCP (§7.1.1).
 * - `closed`: the transport is gone; the outcome is final.
 */
export type CloseStage = 'open' | 'owing' | 'sent' | 'done' | 'closed'

/** The one closing state. Immutable: {@link closeStep} returns a new one. */
export interface CloseState {
  /** See {@link CloseStage}. */
  readonly stage: CloseStage
  /** Our close frame, once sent. */
  readonly sent: PendingClose | undefined
  /** The peer's close frame, once received (code 1005 when it carried none). */
  readonly received: ClosePayload | undefined
  /** In `owing`: the close frame we owe (§5.5.1: the peer's code echoed, or the failure's). */
  readonly owed: PendingClose | undefined
  /** The connection failed (§7.1.7): the code and reason `closed` reports (the reason unabridged). */
  readonly failure: ClosePayload | undefined
  /** The peer's close came before ours was sent: `closed` reports the peer's code. */
  readonly peerFirst: boolean
  /** The peer ended its side of the transport (TCP FIN): nothing more will arrive. */
  readonly eof: boolean
  /** The close timer ran out waiting for the peer: the transport is to be destroyed. */
  readonly timedOut: boolean
  /** The transport failed (reset, error) rather than ended. */
  readonly transportError: boolean
}

/**
 * What happens to a connection's closing, one input at a time.
 * - `send`: our close frame goes out (to start the handshake, or to answer; in `owing` the owed
 *   frame goes, whatever was asked: §5.5.1 echoes the peer's code, a failure sends its own).
 * - `receive`: the peer's close frame arrived.
 * - `fail`: the connection fails (§7.1.7) with this code (the peer broke the protocol, a limit or
 *   a budget was passed); `reason` is for `closed` (the frame carries at most 123 characters of it).
 * - `eof`: the peer ended its side of the transport (in `owing`, the owed close goes at once
 *   unless the transport stays `writable`).
 * - `timeout`: the timer {@link closeDecision} asked for fired.
 * - `closed`: the transport is gone (`error`: it failed rather than ended).
 */
export type CloseInput =
  | {
    /** Our close frame goes out. */
    readonly type: 'send'
    /** Its code, or undefined for an empty close frame. */
    readonly code: number | undefined
    /** Its reason. */
    readonly reason: string
  }
  | {
    /** The peer's close frame arrived. */
    readonly type: 'receive'
    /** Its code (1005 when it carried none). */
    readonly code: number
    /** Its reason. */
    readonly reason: string
  }
  | {
    /** The connection fails (§7.1.7). */
    readonly type: 'fail'
    /** The close code the failure calls for (1002, 1007, 1009, 1011, 1013, …). */
    readonly code: number
    /** What went wrong, for `closed` (the frame carries at most 123 characters). */
    readonly reason: string
  }
  | {
    /** The peer ended its side of the transport. */
    readonly type: 'eof'
    /**
     * Ours stays writable after it (a half-open transport): an owed close may still wait for the
     * handler's replies. Otherwise it goes at once, before the transport ends ours.
     */
    readonly writable?: boolean
  }
  | {
    /** The close timer fired. */
    readonly type: 'timeout'
  }
  | {
    /** The transport is gone. */
    readonly type: 'closed'
    /** It failed (reset, error) rather than ended. */
    readonly error: boolean
  }

/** What `closed` settles with, derived from the state ({@link closeOutcome}). */
export interface CloseOutcome extends ClosePayload {
  /** The closing handshake completed: both close frames crossed, no failure, no transport error. */
  readonly wasClean: boolean
}

/**
 * Which timer the driver should run, named by what it waits for (each stage its own, so a
 * change of name means a fresh timer):
 * - `replies`: our owed close waits for the handler to read what came before it (a short grace);
 *   when it fires, the owed close goes out.
 * - `peer-close`: our close waits for the peer's (`closeTimeout`); when it fires, the transport is destroyed.
 * - `tcp-end`: the handshake is over (or the peer ended TCP) and the transport's end is awaited
 *   (`closeTimeout`); when it fires, the transport is destroyed.
 */
export type CloseTimer = 'replies' | 'peer-close' | 'tcp-end'

/**
 * What the transport needs: `keep` it, `end` our side once what is queued is written (a TCP
 * FIN; §7.1.1: the server ends TCP first, a client waits for the server's end), or `destroy`
 * it now (a timeout: the peer did not do its part).
 */
export type TransportAction = 'keep' | 'end' | 'destroy'

/**
 * When the close we owe goes (stage `owing` only): `now`, after what is already being written
 * (the answer to the peer's close, §5.5.1: "as soon as practical"), or `after-replies`, once the
 * handler has read up to the failure or the `replies` timer fires, so its replies to what came
 * before go first (§7.1.7 does not forbid them).
 */
export type OwedClose = 'now' | 'after-replies'

/** The driver's orders, derived from the state ({@link closeDecision}). */
export interface CloseDecision {
  /** The timer that should run, or undefined for none. */
  readonly timer: CloseTimer | undefined
  /** What to do with the transport. */
  readonly transport: TransportAction
  /** In `owing`: when the owed close goes; undefined in every other stage. */
  readonly owed: OwedClose | undefined
}

/** The state every connection starts in (shared: a connection that never closes costs nothing). */
export const OPEN_CLOSE_STATE: CloseState = Object.freeze({
  stage: 'open',
  sent: undefined,
  received: undefined,
  owed: undefined,
  failure: undefined,
  peerFirst: false,
  eof: false,
  timedOut: false,
  transportError: false
})

/** The one transition function: the state after `input`. Inputs that mean nothing in a stage leave it as it is. */
export function closeStep (state: CloseState, input: CloseInput): CloseState {
  const stage = state.stage
  if (stage === 'closed') return state
  switch (input.type) {
    case 'send':
      if (stage === 'open') return { ...state, stage: 'sent', sent: { code: input.code, reason: input.reason } }
      // §5.5.1: the answer to the peer's close echoes its code; after a failure, the failure's.
      if (stage === 'owing') return { ...state, stage: 'done', sent: state.owed, owed: undefined }
      return state
    case 'receive': {
      const received: ClosePayload = { code: input.code, reason: input.reason }
      // §5.5.1: "If an endpoint receives a Close frame and did not previously send a Close frame,
      // the endpoint MUST send a Close frame in response", echoing the code (an empty close, empty).
      if (stage === 'open') return { ...state, stage: 'owing', received, peerFirst: true, owed: { code: input.code === CloseCode.NoStatusReceived ? undefined : input.code, reason: '' } }
      if (stage === 'sent') return { ...state, stage: 'done', received }
      // Owing or done: nothing after a close or a failure is read (§5.5.1, §7.1.7).
      return state
    }
    case 'fail': {
      const failure: ClosePayload = { code: input.code, reason: input.reason }
      // §5.2: a control frame's payload is at most 125 bytes, 2 of them the code.
      if (stage === 'open') return { ...state, stage: 'owing', failure, owed: { code: input.code, reason: input.reason.slice(0, 123) } }
      // Our close is out: no second one (§5.5.1), but `closed` reports the failure.
      if (stage === 'sent') return { ...state, stage: 'done', failure }
      return state
    }
    case 'eof': {
      const ended = state.eof ? state : { ...state, eof: true }
      // Nothing more can be read, and unless ours stays writable the transport ends it too: the
      // owed close goes now, so the peer still gets it (§5.5.1).
      if (stage === 'owing' && input.writable !== true) return closeStep(ended, { type: 'send', code: undefined, reason: '' })
      return ended
    }
    case 'timeout':
      // The grace for replies is over: the owed close goes now.
      if (stage === 'owing') return closeStep(state, { type: 'send', code: undefined, reason: '' })
      // Only `open` without the peer's end of TCP runs no timer (see closeDecision).
      if ((stage === 'open' && !state.eof) || state.timedOut) return state
      return { ...state, timedOut: true }
    case 'closed':
      return { ...state, stage: 'closed', owed: undefined, transportError: input.error }
  }
}

/**
 * What `closed` reports: a failure's code and reason; else the code of the close frame that
 * crossed first (ours if we closed first, the peer's if it did); else 1006, not clean. Clean
 * when both close frames crossed without a failure or a transport error (§7.1.4: "the WebSocket
 * closing handshake was completed").
 */
export function closeOutcome (state: CloseState): CloseOutcome {
  const { sent, received, failure } = state
  const wasClean = sent !== undefined && received !== undefined && failure === undefined && !state.transportError
  if (failure !== undefined) return { code: failure.code, reason: failure.reason, wasClean: false }
  if (received !== undefined && (state.peerFirst || sent === undefined)) return { code: received.code, reason: received.reason, wasClean }
  if (sent !== undefined) return { code: sent.code ?? CloseCode.NoStatusReceived, reason: sent.reason, wasClean }
  return { code: CloseCode.Abnormal, reason: '', wasClean: false }
}

const KEEP: CloseDecision = Object.freeze({ timer: undefined, transport: 'keep', owed: undefined })
// The owed close is bounded by the grace either way: a driver that cannot write at once still sends it then.
const ANSWER_NOW: CloseDecision = Object.freeze({ timer: 'replies', transport: 'keep', owed: 'now' })
const REPLIES: CloseDecision = Object.freeze({ timer: 'replies', transport: 'keep', owed: 'after-replies' })
const AWAIT_CLOSE: CloseDecision = Object.freeze({ timer: 'peer-close', transport: 'keep', owed: undefined })
const AWAIT_END: CloseDecision = Object.freeze({ timer: 'tcp-end', transport: 'keep', owed: undefined })
const END: CloseDecision = Object.freeze({ timer: 'tcp-end', transport: 'end', owed: undefined })
const DESTROY: CloseDecision = Object.freeze({ timer: undefined, transport: 'destroy', owed: undefined })

/**
 * Who ends TCP and when, and which timer bounds the wait (every stage but `open` and `closed`
 * has one: no state without an end). RFC 6455 §7.1.1: "the underlying TCP connection, in most
 * normal cases, SHOULD be closed first by the server"; a client waits for the server's end,
 * within the timeout. After a failure (§7.1.7) or the peer's own end of TCP, nothing more is
 * awaited from the peer: either side ends its own at once.
 */
export function closeDecision (state: CloseState, role: Role): CloseDecision {
  switch (state.stage) {
    case 'closed':
      return KEEP
    case 'open':
      if (state.timedOut) return DESTROY
      // The peer ended TCP without a close frame: end ours too (the outcome is 1006).
      return state.eof ? END : KEEP
    case 'owing':
      // The owed close goes first: the answer to the peer's close at once; after a failure, once
      // the handler has read up to it or the grace runs out (a half-open transport's end too).
      return state.failure === undefined ? ANSWER_NOW : REPLIES
    case 'sent':
      if (state.timedOut) return DESTROY
      return state.eof ? END : AWAIT_CLOSE
    case 'done':
      if (state.timedOut) return DESTROY
      return role === 'server' || state.failure !== undefined || state.eof ? END : AWAIT_END
  }
}

/** A close frame has crossed (either way) or the connection failed: the connection is past `open`. */
export function isClosing (state: CloseState): boolean {
  return state.sent !== undefined || state.received !== undefined || state.failure !== undefined
}

/** Nothing more is read: the peer's close came (§5.5.1) or the connection failed (§7.1.7). */
export function inputStopped (state: CloseState): boolean {
  return state.received !== undefined || state.failure !== undefined
}

const encoder = new TextEncoder()

/**
 * Check a close code and reason that we are to send, and return the reason's UTF-8 bytes. The
 * one place they are checked (the session's close frame and the connection's `close()`).
 * @throws TypeError for a code that is not an integer, a reason that is not a string, or a
 * reason without a code; RangeError for a code that may not be sent (§7.4) or a reason over
 * 123 bytes of UTF-8 (§5.5).
 */
export function checkClose (code: number | undefined, reason: string): Uint8Array {
  if (code === undefined) {
    if (reason !== '') throw new TypeError('a close reason needs a close code')
    return new Uint8Array(0)
  }
  if (!Number.isInteger(code)) throw new TypeError(`a close code must be an integer, not ${typeof code === 'string' ? `the string '${code as string}'` : String(code)}`)
  if (!isValidCloseCode(code)) throw new RangeError(`close code ${code} may not be sent: use 1000, 1001-1003, 1007-1014 or 3000-4999 (RFC 6455 §7.4)`)
  if (typeof reason !== 'string') throw new TypeError('a close reason must be a string')
  const text = encoder.encode(reason)
  // §5.5: the whole control payload, 2 code bytes included, is at most 125 bytes.
  if (text.length > 123) throw new RangeError('a close reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5)')
  return text
}
