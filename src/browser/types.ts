/**
 * The browser build's public types: {@link Connection} (the part of the Node connection a
 * browser can offer), and the options of `connect`. The message types are the Node side's own.
 *
 * @packageDocumentation
 */

import type { Duplex, Source } from 'it-stream-types'
import type { CloseInfo, OutgoingMessage, ReceivedStream, StreamedMessage } from '../driver/types.js'

export type { CloseInfo, OutgoingMessage, ReceivedStream, StreamedMessage }

/** Options of `connect` in the browser. */
export interface ConnectOptions {
  /** Subprotocols to offer, by preference. Default: none. */
  protocols?: string | readonly string[]
  /** Aborts the handshake (`connect` rejects with `signal.reason`); after it, closes the connection (1000). */
  signal?: AbortSignal
  /**
   * The most that received messages waiting for `source` may cost, counted as their bytes plus
   * 256 each; at most the mark plus one message is held. With `WebSocketStream`, wspipe reads
   * ahead up to it and then stops reading: the browser's own buffers, then TCP, hold the rest.
   * On plain `WebSocket` the browser cannot stop reading, so a message that arrives while the
   * queue is above this mark closes the connection with 4008 ("receive queue full"); `source`
   * then yields what was queued and throws a `ReceiveQueueFullError`. Default 1 MiB.
   */
  receiveHighWaterMark?: number
  /**
   * What may wait to be sent before `send` and `sink` wait, counted as bytes (a string: its
   * length) plus 256 per message, so that empty messages wait too: with `WebSocketStream` the
   * messages whose writes are still pending; on plain `WebSocket` its `bufferedAmount` plus the
   * messages sent since it was last seen at 0. Default 1 MiB.
   */
  sendHighWaterMark?: number
  /**
   * Largest message `send` and `sink` gather from a {@link StreamedMessage}'s chunks (a browser
   * sends whole messages only). Over it the send fails with a RangeError and nothing is sent.
   * Received messages are not limited: the browser takes them whole before wspipe sees them.
   * Default 16 MiB.
   */
  maxMessageSize?: number
  /**
   * How long, after `close()`, wspipe waits for the server's close frame before `source` ends
   * and `closed` settles, not clean (the browser keeps its socket until its own timeout). With
   * `WebSocketStream` also, first, how long `close()` lets the messages already written finish
   * before it closes anyway, dropping them. `Infinity` waits without end; more than 2^31 − 1 ms
   * counts as that. Default 5,000 ms.
   */
  closeTimeout?: number
  /**
   * Time for the opening handshake, in ms: past it `connect` rejects with an `UpgradeError`
   * (status 0, reason `timeout`), as on Node, and the socket is closed. `Infinity` leaves it to
   * the browser's own limit (240 s in Chromium 156); more than 2^31 − 1 ms counts as 2^31 − 1.
   * Default 10,000 ms.
   */
  handshakeTimeout?: number
  /** `'whole'` (the default): each message is one `Uint8Array`. See {@link StreamConnectOptions}. */
  messages?: 'whole'
}

/**
 * Options of `connect` in stream mode: `source` yields each message as a {@link ReceivedStream},
 * as on Node. Needs `WebSocketStream` (`connect` rejects with a TypeError without it). The
 * browser hands out whole messages, so each one's `chunks` yields it as one chunk.
 */
export interface StreamConnectOptions extends Omit<ConnectOptions, 'messages'> {
  /** `'stream'`. */
  messages: 'stream'
}

/**
 * One WebSocket connection in a page, as an it-stream-types duplex: the members of the Node
 * side's `Connection` that a browser can offer, with the same behaviour (see docs/browser.md for
 * where it differs). Code written against this type runs unchanged on Node, whose connections
 * have all of these members.
 *
 * - `source` yields one whole message per item, a plain `Uint8Array`; `isText(message)` tells
 *   text from binary. It ends when the connection closes cleanly and throws if it fails.
 *   Returning it (a `break`) means "done reading": the connection closes with 1000 once the
 *   sending side is done too.
 * - `sink` sends one message per item: a string as text, bytes as binary unless marked as text
 *   (so `sink(source)` echoes faithfully). It waits below `sendHighWaterMark` before pulling more.
 */
export interface Connection extends Duplex<AsyncIterableIterator<Uint8Array>, Source<OutgoingMessage>, Promise<void>> {
  /** The subprotocol the server chose, `''` for none. */
  readonly protocol: string
  /** Settles when the connection is gone (it never rejects): the code of the side that closed first. */
  readonly closed: Promise<CloseInfo>
  /** Aborts when the connection starts closing, for any reason. */
  readonly signal: AbortSignal
  /**
   * Start the closing handshake. Default code 1000. Does nothing once closing.
   * @throws TypeError if `code` is not an integer or `reason` not a string; RangeError for a
   * code other than 1000 and 3000–4999 (all a page may send: the WHATWG WebSocket standard) or
   * a reason over 123 bytes of UTF-8.
   */
  close: (code?: number, reason?: string) => void
  /**
   * Send one message (a string as text, bytes as binary unless marked with `asText`). Resolves
   * once the message is handed to the browser and what waits to be sent is below
   * `sendHighWaterMark`, so awaiting each `send()` is backpressure. Messages leave in the order
   * of the calls. `send()` and `sink` are exclusive.
   * @throws (rejects) an InvalidStateError if `sink` was called; a ConnectionClosedError once the connection
   * is closing; a TypeError for anything but a string, bytes or a {@link StreamedMessage}.
   */
  send: (message: OutgoingMessage) => Promise<void>
}

/** A connection in stream mode: `source` yields each message as a {@link ReceivedStream}. */
export interface StreamConnection extends Omit<Connection, 'source'> {
  /** One {@link ReceivedStream} per message; asking for the next abandons the rest of the current one. */
  readonly source: AsyncIterableIterator<ReceivedStream>
}
