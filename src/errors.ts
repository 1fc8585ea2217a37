/**
 * Every error class of wspipe but one, each with a stable `code` (the it-* convention). Pure,
 * like the protocol layer: no Node imports and no timers, so the handshake and the browser build
 * import it too. The one is `ProtocolError`, which stays in `protocol/errors.ts` with its table:
 * the protocol layer (`wspipe/protocol`) imports nothing from outside `protocol/`.
 *
 * @packageDocumentation
 */

import { CloseCode } from './protocol/close-codes.js'

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

  /** `message` for people; `status` the server's HTTP status (0 when there was none: a timeout, an answer that is not HTTP, or a browser, which does not say); `reason` its one-line reason; `cause`, what led to it. */
  constructor (message: string, status: number, reason: string, options?: { cause?: unknown }) {
    super(message, options)
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

/** A message that is not valid UTF-8 JSON; `cause` is the parser's error. */
export class JsonDecodeError extends Error {
  /** Always `'JsonDecodeError'`. */
  override name = 'JsonDecodeError'
  /** A stable code, as wspipe's other errors have. */
  readonly code = 'WS_ERR_JSON_DECODE'
  /** The close code that fits: 1007, invalid payload data (RFC 6455 §7.4.1). */
  readonly closeCode = CloseCode.InvalidPayload
}

/** Thrown by a subscription without a connection that fell past its bound under the `'close'` policy. */
export class SlowSubscriberError extends Error {
  /** `'SlowSubscriberError'`. */
  override name = 'SlowSubscriberError'
  /** The stable code `WS_ERR_SLOW_SUBSCRIBER`. */
  readonly code = 'WS_ERR_SLOW_SUBSCRIBER'

  /** Made by the subscription when its queue overflows; not meant to be made by users. */
  constructor () {
    super('subscriber too slow: its queue reached maxQueuedBytes')
  }
}

/**
 * The page did not read: on plain `WebSocket` (which cannot stop reading) a message arrived while
 * the receive queue was above `receiveHighWaterMark`, so the connection was closed with 4008.
 * `source` throws it after the messages that were queued.
 */
export class ReceiveQueueFullError extends Error {
  /** `'ReceiveQueueFullError'`. */
  override name = 'ReceiveQueueFullError'
  /** The stable code `WS_ERR_RECEIVE_QUEUE_FULL`. */
  readonly code = 'WS_ERR_RECEIVE_QUEUE_FULL'
  /** The close code sent: 4008 (`PageCloseCode.ReceiveQueueFull`, which the compiler checks is the same). */
  readonly closeCode = 4008

  /** Made by the connection as it closes with 4008; its message says why. */
  constructor () {
    super('the page did not read: the receive queue passed receiveHighWaterMark, so the connection was closed (4008)')
  }
}

/**
 * The request cannot be upgraded: answer with `status`, `headers` and the one-line `reason`.
 * Internal: no user meets it (the server answers with it; the client turns it into an
 * {@link UpgradeError} or a `SyntaxError`), so the package does not export it.
 */
export class HandshakeError extends Error {
  /** `'HandshakeError'`. */
  override name = 'HandshakeError'
  /** The stable code `WS_ERR_HANDSHAKE`. */
  readonly code = 'WS_ERR_HANDSHAKE'
  /** HTTP status to answer with. */
  readonly status: number
  /** Extra response headers, e.g. `Sec-WebSocket-Version: 13` with a 426. */
  readonly headers: Record<string, string>

  /** The answer to send: `status`, the one-line `reason` (its message and the response body) and any extra `headers`. */
  constructor (status: number, reason: string, headers: Record<string, string> = {}) {
    super(reason)
    this.status = status
    this.headers = headers
  }
}
