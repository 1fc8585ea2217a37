/**
 * The driver's public types: the {@link Connection} duplex, its limits with their defaults, and
 * how a connection ended. No code beyond {@link resolveLimits}.
 *
 * @packageDocumentation
 */

import type { Duplex, Source } from 'it-stream-types'
import type { Role } from '../protocol/frame-parser.js'
import type { MessageCompression } from '../protocol/extension.js'
import type { MemoryBudget } from './budget.js'
import type { Clock } from './clock.js'
import { DEFAULT_MAX_MESSAGE_SIZE } from '../protocol/session.js'

/**
 * A message sent as a stream: its type, and its bytes as chunks (bytes, or strings sent as
 * UTF-8), sync or async. `sink` and `send` send each chunk as it comes, as fragments of at most
 * `maxFrameSize`, so the message is never held whole. A message received in stream mode is one
 * too, so `sink(source)` echoes a stream. If `chunks` throws, the message cannot be finished and
 * the connection closes with 1011.
 */
export interface StreamedMessage {
  /** Text (opcode 1) or binary (opcode 2). The chunks of a text message must together be UTF-8. */
  readonly type: 'text' | 'binary'
  /** The bytes, in order. A string chunk must not end in half of a surrogate pair. */
  readonly chunks: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>
}

/**
 * A message as stream mode's `source` hands it out (`register(protocol, handler, { messages:
 * 'stream' })`): `chunks` yields its bytes as they arrive, unmasked and, for text, checked as
 * UTF-8 (a character may be split between chunks). Reading the chunks slowly slows the peer:
 * they wait in the receive queue, and past `receiveHighWaterMark` the socket stops being read.
 *
 * One message at a time: asking `source` for the next message abandons the rest of this one
 * (its chunks then throw a `MessageAbandonedError`), and so does leaving the `chunks` loop
 * early; the rest of its bytes are dropped as they arrive. If the connection fails or closes
 * before the message ends, `chunks` throws (the connection's error, e.g. a 1007 for invalid
 * UTF-8 or a 1009 past `maxMessageSize`, or a `ConnectionClosedError`), and `source` then ends
 * rather than throw the same error again.
 */
export interface ReceivedStream extends StreamedMessage {
  /** Text or binary, known from the message's first frame. */
  readonly type: 'text' | 'binary'
  /** The bytes as they arrive: read once. */
  readonly chunks: AsyncIterableIterator<Uint8Array>
  /** Bytes read from `chunks` so far. */
  readonly received: number
}

/** A message as a handler may send it: a string goes as text, bytes as binary (unless received as text), a {@link StreamedMessage} chunk by chunk. */
export type OutgoingMessage = Uint8Array | string | StreamedMessage

/** How a connection ended. */
export interface CloseInfo {
  /** The code of the side that closed first; 1006 when no close frame crossed. */
  code: number
  /** The reason that came with that code (UTF-8, at most 123 bytes); `''` for none. */
  reason: string
  /** Both close frames crossed and TCP closed without error. */
  wasClean: boolean
}

/** Heartbeat settings: a ping after `interval` ms without traffic; no answer within `timeout` ms drops the peer. */
export interface HeartbeatOptions {
  /** Default 30,000 ms. */
  interval?: number
  /** Default 10,000 ms. */
  timeout?: number
}

/** A pino-shaped logger. */
export interface Logger {
  /** Handler errors and what needs an operator. */
  error: (obj: unknown, msg?: string) => void
  /** Connections failed for a limit (e.g. the memory budget). */
  warn: (obj: unknown, msg?: string) => void
  /** Unused by wspipe today; part of the pino shape. */
  info: (obj: unknown, msg?: string) => void
  /** Peers that broke the protocol or were dropped. */
  debug: (obj: unknown, msg?: string) => void
}

/** Limits and timers shared by the server and the client. */
export interface ConnectionLimits {
  /** Largest message after reassembly, in bytes. Default 16 MiB; over it the peer gets 1009. */
  maxMessageSize?: number
  /**
   * Largest single data frame received (control frames: 125 bytes, §5.5), and the largest
   * fragment a streamed message is sent in. Default: `maxMessageSize`; over it: 1009, refused
   * from the header. Does not apply to frames received in stream mode, which are never held.
   */
  maxFrameSize?: number
  /**
   * Most fragments in one message; over it: 1009. Default: no limit, since a fragment costs only
   * its bytes (bounded by `maxMessageSize` and counted in the memory budget): a million empty
   * fragments hold nothing, a million 1-byte ones about 1 MB.
   */
  maxFragments?: number
  /**
   * Received messages queued for a handler that is not reading, counted as their bytes plus a
   * fixed 256 bytes each (what holding one costs, so empty messages count too); above it the
   * socket is paused (TCP backpressure reaches the peer), below a quarter of it resumed.
   * Default 1 MiB.
   */
  receiveHighWaterMark?: number
  /**
   * Bytes queued for sending above which `sink` (and `send()`) wait for the socket to drain.
   * Above 4 × it plus the last message queued (so only what the sink does not send — pongs, a
   * close — gets there), reading from the peer stops too. Default 1 MiB.
   */
  sendHighWaterMark?: number
  /** How long to wait for the peer's close frame, then for TCP to end. Default 5,000 ms. */
  closeTimeout?: number
  /**
   * Ping idle peers and drop the ones that do not answer (a pong that waits behind our own
   * output is waited for while that output keeps moving). Also ends a connection on which
   * nothing was read and nothing written for `interval + timeout` while reading is paused (a
   * handler that does not read, or a peer that does not read our output): it is dropped without
   * a close frame (1006). Default on, `{ interval: 30000, timeout: 10000 }`; `false` turns both off.
   */
  heartbeat?: HeartbeatOptions | false
}

/** Defaults of {@link ConnectionLimits}. */
export const DEFAULT_LIMITS = {
  /** {@link ConnectionLimits.receiveHighWaterMark}: 1 MiB. */
  receiveHighWaterMark: 1024 * 1024,
  /** {@link ConnectionLimits.sendHighWaterMark}: 1 MiB. */
  sendHighWaterMark: 1024 * 1024,
  /** {@link ConnectionLimits.closeTimeout}: 5 s. */
  closeTimeout: 5000,
  /** {@link HeartbeatOptions.interval}: 30 s. */
  heartbeatInterval: 30_000,
  /** {@link HeartbeatOptions.timeout}: 10 s. */
  heartbeatTimeout: 10_000
} as const

/** The driver's own counters, for tests and monitoring. */
export interface ConnectionStats {
  /** Received messages waiting for `source` to be read: their bytes plus 256 per message (see `receiveHighWaterMark`). */
  queuedInBytes: number
  /** The most `queuedInBytes` has been. */
  peakQueuedInBytes: number
  /** Bytes waiting to be sent: in the session and in the socket. */
  queuedOutBytes: number
  /** The most `queuedOutBytes` has been. */
  peakQueuedOutBytes: number
  /** Times reading was paused for backpressure. */
  pauses: number
  /** Heartbeat pings sent. */
  heartbeatPings: number
  /** Memory held for this connection now, as a server's `memoryBudget` counts it: partial frames and messages, the receive queue, output. */
  heldBytes: number
  /** Times reading paused because a permessage-deflate budget (the connection's or the server's) was spent. */
  compressionWaits: number
}

/**
 * One WebSocket connection as an it-stream-types duplex: `source` yields one whole message
 * per item, `sink` (or `send`) sends one message per item.
 *
 * - `source` is its own iterator: `await conn.source.next()` reads one message and leaves the
 *   rest to read. Each message is a plain `Uint8Array`; `isText(message)` tells text from binary.
 * - Returning `source` (a `break` out of `for await`, `first(conn.source)`) means "done
 *   reading": WebSocket has no half-close, so the connection closes with 1000 once the sending
 *   side is done too — at once when no `sink` is running (whether or not `send` was used),
 *   otherwise when the sink's iterable ends (1011 if it throws). Messages that arrive
 *   meanwhile are dropped.
 */
export interface Connection extends Duplex<AsyncIterableIterator<Uint8Array>, Source<OutgoingMessage>, Promise<void>> {
  /** The subprotocol in use, `''` for none. */
  readonly protocol: string
  /** The request target in origin-form, e.g. `/chat?room=1` (also when the request line had `http://host/chat?room=1`). */
  readonly url: string
  /** The path part of {@link Connection.url}. */
  readonly path: string
  /** The handshake request's headers less those the handshake consumed (server side), or the 101 response's (client side). */
  readonly headers: Record<string, string | string[] | undefined>
  /** The peer's IP address, as the socket reports it (or, with a server's `trustProxy`, as `X-Forwarded-For` does). */
  readonly remoteAddress: string | undefined
  /** The peer's TCP port. */
  readonly remotePort: number | undefined
  /**
   * The HTTP version the WebSocket was opened over: `'2'` for an HTTP/2 stream (RFC 8441),
   * `'1.1'` for an HTTP/1.1 upgrade, and for `connectInMemory` (which stands for one).
   */
  readonly httpVersion: '1.1' | '2'
  /** Settles when the connection is gone (it never rejects). */
  readonly closed: Promise<CloseInfo>
  /** Aborts when the connection starts closing, for any reason. */
  readonly signal: AbortSignal
  /**
   * Start the closing handshake (§7.1.2). Default code 1000. Does nothing once closing.
   * @throws TypeError if `code` is not an integer or `reason` not a string; RangeError if `code`
   * may not be sent (§7.4: 1000, 1001-1003, 1007-1014, 3000-4999) or `reason` is over 123 bytes of UTF-8.
   */
  close: (code?: number, reason?: string) => void
  /**
   * Send a ping with `data` (bytes, or a string sent as UTF-8; at most 125 bytes). Resolves with
   * the round-trip time in ms when a pong answers it or a later ping (§5.5.3 lets a peer answer
   * only the latest); rejects with a ConnectionClosedError if the connection closes first, a
   * TypeError or RangeError for bad `data`.
   */
  ping: (data?: Uint8Array | string) => Promise<number>
  /**
   * Send one message (a `string` as text, bytes as binary unless marked with `asText`), for code
   * that sends as it goes, such as an interactive client:
   * `await conn.send('hi'); const { value: reply } = await conn.source.next()`.
   * Resolves once the message is queued for the socket and the output is below
   * `sendHighWaterMark` (at once, usually; otherwise when the socket drains), so awaiting each
   * `send()` is backpressure. Messages leave in the order of the calls.
   *
   * `send()` and `sink` are exclusive: whichever is used first sends for the whole connection.
   * @throws (rejects) an InvalidStateError if `sink` was called on this connection; a ConnectionClosedError
   * once the connection is closing (also for a call still waiting for room when it starts
   * closing); a TypeError for anything but a string or a Uint8Array.
   */
  send: (message: OutgoingMessage) => Promise<void>
  /** The driver's counters. */
  stats: () => ConnectionStats
}

/**
 * A connection in stream mode: the same duplex as {@link Connection}, but `source` yields each
 * message as a {@link ReceivedStream} whose bytes come as they arrive, so a message of any size
 * passes in bounded memory. See `register(protocol, handler, { messages: 'stream' })` and
 * `connect(url, { messages: 'stream' })`.
 */
export interface StreamConnection extends Omit<Connection, 'source'> {
  /** One {@link ReceivedStream} per message; asking for the next abandons the rest of the current one. */
  readonly source: AsyncIterableIterator<ReceivedStream>
}

/** Options of stream mode, for a handler (`register`) or a client (`connect`). */
export interface StreamModeOptions {
  /** `'stream'`: messages come as {@link ReceivedStream}s. `'whole'` (the default): as whole `Uint8Array`s. */
  messages: 'stream'
  /**
   * Largest message received in stream mode, in bytes: since a streamed message is never held,
   * it may be far above the whole-message limit. Default: the connection's `maxMessageSize`.
   * `Infinity` for no limit. Over it: 1009, once the bytes pass it.
   */
  maxMessageSize?: number
}

/** {@link ConnectionLimits} with every default filled in: resolved once, shared by connections. */
export interface ResolvedLimits {
  readonly receiveHigh: number
  readonly receiveLow: number
  readonly sendHigh: number
  readonly closeTimeout: number
  /** 0 when the heartbeat is off. */
  readonly heartbeatInterval: number
  readonly heartbeatTimeout: number
  /** Largest fragment of a streamed message we send: `maxFrameSize`, else `maxMessageSize`. */
  readonly maxOutFrame: number
  /** Largest message inflated (permessage-deflate): `maxMessageSize`. */
  readonly maxInflated: number
}

/**
 * @throws RangeError for an option `name` (a mark, or a timeout in ms) under 0 or not a number
 * (`Infinity` passes): a NaN mark would never pause reading, a NaN timer fires at once.
 */
export function checkNonNegative (name: string, value: number | undefined): void {
  if (value !== undefined && !(value >= 0)) throw new RangeError(`${name} must be a number, 0 or more (or Infinity), not ${String(value)}`)
}

/**
 * Fill in the defaults of `limits`.
 * @throws RangeError for a `maxMessageSize` or `maxFrameSize` under 1 byte (or not a number):
 * besides bounding what is received, one of them sizes the fragments of a streamed send, which
 * could not advance; for a mark or `closeTimeout` under 0 or NaN (a NaN mark would never pause
 * reading, a NaN timer fires at once), and a `heartbeat` interval or timeout that is not a
 * positive, finite number of ms; TypeError for a `heartbeat` that is neither an object nor false.
 */
export function resolveLimits (limits: ConnectionLimits): ResolvedLimits {
  for (const name of ['maxMessageSize', 'maxFrameSize'] as const) {
    const value = limits[name]
    if (value !== undefined && !(value >= 1)) throw new RangeError(`${name} must be a number of bytes, at least 1 (or Infinity), not ${String(value)}`)
  }
  for (const name of ['receiveHighWaterMark', 'sendHighWaterMark', 'closeTimeout'] as const) checkNonNegative(name, limits[name])
  const beat = limits.heartbeat
  // `heartbeat: 30000` from JavaScript would otherwise be read as the defaults, without a word.
  if (beat !== undefined && beat !== false && (typeof beat !== 'object' || beat === null)) throw new TypeError(`heartbeat must be { interval, timeout } (ms) or false, not ${String(beat)}`)
  if (beat !== undefined && beat !== false) {
    for (const name of ['interval', 'timeout'] as const) {
      const value = beat[name]
      if (value !== undefined && !(value > 0 && value < Infinity)) throw new RangeError(`heartbeat.${name} must be a positive number of ms (or heartbeat: false), not ${String(value)}`)
    }
  }
  const receiveHigh = limits.receiveHighWaterMark ?? DEFAULT_LIMITS.receiveHighWaterMark
  const hb = limits.heartbeat
  return {
    receiveHigh,
    receiveLow: receiveHigh >>> 2,
    sendHigh: limits.sendHighWaterMark ?? DEFAULT_LIMITS.sendHighWaterMark,
    closeTimeout: limits.closeTimeout ?? DEFAULT_LIMITS.closeTimeout,
    heartbeatInterval: hb === false ? 0 : hb?.interval ?? DEFAULT_LIMITS.heartbeatInterval,
    heartbeatTimeout: hb === false ? 0 : hb?.timeout ?? DEFAULT_LIMITS.heartbeatTimeout,
    maxOutFrame: limits.maxFrameSize ?? limits.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE,
    maxInflated: limits.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
  }
}

/** What the driver needs to know to run a connection. */
export interface DriverOptions {
  /** The caller's limits, as given (defaults fill the gaps). */
  limits: ConnectionLimits
  /** The same limits resolved once (a server shares one object among its connections); default: from `limits`. */
  resolved?: ResolvedLimits
  role: Role
  protocol: string
  url: string
  headers: Record<string, string | string[] | undefined>
  logger?: Logger
  /** The peer's address (the socket's, or by `X-Forwarded-For` under `trustProxy`); the transport is not asked. */
  remoteAddress?: string
  /** The peer's port, when the transport has one. */
  remotePort?: number
  /** Where every timer of the connection runs; default {@link systemClock}. */
  clock?: Clock
  /** `'2'` when the byte stream is an HTTP/2 stream (RFC 8441). Default `'1.1'`. */
  httpVersion?: '1.1' | '2'
  /** The server-wide budget this connection's memory counts against (none for a client). */
  budget?: MemoryBudget
  /** The negotiated per-message compression (permessage-deflate), if any. */
  compression?: MessageCompression
  /** Stream mode: `source` yields {@link ReceivedStream}s; its message limit defaults to `limits.maxMessageSize` (then 16 MiB). */
  stream?: { maxMessageSize?: number }
}

