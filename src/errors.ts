/**
 * Errors the Node layers raise, each with a stable `code` (the it-* convention).
 *
 * @packageDocumentation
 */

/** The connection ended without a clean closing handshake: reset, timeout, or lost. `source` throws it. */
export class ConnectionClosedError extends Error {
  /** `'ConnectionClosedError'`. */
  override name = 'ConnectionClosedError'
  /** The stable code `WS_ERR_CONNECTION_CLOSED`. */
  readonly code = 'WS_ERR_CONNECTION_CLOSED'
  /** The close code the connection settled with (1006 for a reset). */
  readonly closeCode: number

  /** `message` says what happened; `closeCode` is what `closed` settled with, or will; `cause`, what led to it. */
  constructor (message: string, closeCode: number, options?: { cause?: unknown }) {
    super(message, options)
    this.closeCode = closeCode
  }
}

/** The client's handshake was refused or the server's answer was invalid. */
export class UpgradeError extends Error {
  /** `'UpgradeError'`. */
  override name = 'UpgradeError'
  /** The stable code `WS_ERR_UPGRADE`. */
  readonly code = 'WS_ERR_UPGRADE'
  /** The HTTP status the server answered with (101 when the 101 itself was invalid). */
  readonly status: number
  /** The server's one-line reason: its status text or response body. */
  readonly reason: string

  /** `message` for people; `status` the server's HTTP status (0 when there was none: a timeout, or a browser, which does not say); `reason` its one-line reason. */
  constructor (message: string, status: number, reason: string) {
    super(message)
    this.status = status
    this.reason = reason
  }
}

/**
 * A streamed message's `chunks` were read after `source` moved on to the next message, which
 * abandoned the rest of this one (stream mode: one message at a time).
 */
export class MessageAbandonedError extends Error {
  /** `'MessageAbandonedError'`. */
  override name = 'MessageAbandonedError'
  /** The stable code `WS_ERR_MESSAGE_ABANDONED`. */
  readonly code = 'WS_ERR_MESSAGE_ABANDONED'

  /** Made by the connection; its message says what happened. */
  constructor () {
    super('the message was abandoned: source moved on to the next message before its chunks were read')
  }
}

/**
 * A call the object's state does not allow: the API was misused, not the peer. `sink` called
 * twice or after `send()`, `send()` after `sink`, a second `next()` while one is pending, an
 * `Outbox` read by a second sink, `listen()` on a server that listens or is closing. Named as
 * the WHATWG `InvalidStateError` a browser's `WebSocket.send()` throws while connecting.
 */
export class InvalidStateError extends Error {
  /** `'InvalidStateError'`. */
  override name = 'InvalidStateError'
  /** The stable code `WS_ERR_INVALID_STATE`. */
  readonly code = 'WS_ERR_INVALID_STATE'
}
