/**
 * The options and counters of `WebSocketServer`, with the defaults of its server-only options.
 *
 * @packageDocumentation
 */

import type { IncomingMessage, Server as HttpServer } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { Http2SecureServer, Http2Server } from 'node:http2'
import type { SecureContextOptions, TlsOptions } from 'node:tls'
import type { AuthorizeResult } from './authorize.js'
import type { PerMessageDeflateOptions } from './extensions/deflate-options.js'
import type { TopicsOptions } from './topics/topics.js'
import type { Http2UpgradeRequest } from './http2/server.js'
import type { Clock } from './driver/clock.js'
import { DEFAULT_MEMORY_BUDGET } from './driver/budget.js'
import type { ConnectionLimits, Logger } from './driver/types.js'

/** Options of {@link WebSocketServer.register} for whole messages (the default). */
export interface WholeModeOptions {
  /** `'whole'`: each message is one `Uint8Array`, reassembled within `maxMessageSize`. */
  messages?: 'whole'
}

/** Options of {@link WebSocketServer}. Every one has a default. */
export interface WebSocketServerOptions extends ConnectionLimits {
  /**
   * Time from TCP accept to a complete upgrade request, in ms; a client that stalls is dropped.
   * Runs again for `authorize` (then 503) and while the host finishes responses to requests
   * pipelined before the upgrade (then dropped). An HTTP/2 connection to `listen`'s server
   * with no stream open gets this long to open one (then it is dropped, or after its first
   * stream sent GOAWAY). Default 10,000.
   */
  handshakeTimeout?: number
  /** Most bytes of request line and headers (`listen` only; Node answers 431 past it). Default 16 KiB. */
  maxHeaderSize?: number
  /**
   * Most WebSockets one HTTP/2 connection may carry at once (open, or waiting for `authorize`):
   * one TCP connection must not open WebSockets without bound. `listen({ tls })` advertises it as
   * SETTINGS_MAX_CONCURRENT_STREAMS (every stream counts there, page requests too); past it a
   * WebSocket stream is refused with RST_STREAM REFUSED_STREAM (RFC 9113 §8.7). Default 128.
   */
  maxStreamsPerSession?: number
  /**
   * Most WebSockets the server serves at once, over every way in: open connections and upgrades
   * whose `authorize` is still deciding (so a slow hook lets no burst past it). An upgrade past it
   * is answered 503 `too many connections` before `authorize` runs. Default `Infinity`: bounded
   * only by `memoryBudget` and the process's file descriptors.
   */
  maxConnections?: number
  /**
   * Runs before the 101 (or, over HTTP/2, the 200); refuse with false (403) or
   * `{ status: 401 | 403, reason }`. An HTTP/2 request is an {@link Http2UpgradeRequest}
   * (`httpVersion` `'2.0'`). Default: accept all.
   */
  authorize? (request: IncomingMessage | Http2UpgradeRequest): AuthorizeResult | Promise<AuthorizeResult>
  /** Allowed `Origin` values (e.g. `https://example.com`); others get 403. Requests without `Origin` (non-browsers) pass. Default: any. */
  origins?: readonly string[]
  /** pino-shaped logger. Default: errors to stderr, the rest discarded. */
  logger?: Logger
  /**
   * Bytes the server may hold for all its connections together: partial frames, unfinished
   * messages, receive queues and output, each counted with its overhead, and the flow-control
   * window of each HTTP/2 stream whose reading is paused or whose `authorize` is deciding (Node
   * takes that much unread). A connection whose
   * growth finds it spent fails with 1013 (Try Again Later); the others carry on. Default 256 MiB.
   */
  memoryBudget?: number
  /** Options of {@link WebSocketServer.topics}: the per-subscriber bound, its policy, an adapter to span processes. */
  topics?: TopicsOptions
  /**
   * Behind reverse proxies, how many of them to trust: `conn.remoteAddress` is then taken from
   * `X-Forwarded-For`, the entry that many from its end (each proxy appends the address it
   * received from, so with one proxy the last entry is the one the proxy saw connect). `true`
   * is 1. Entries further left were written by the client or by proxies not trusted, and are
   * ignored. A request with fewer entries than trusted proxies gets its leftmost one; a request
   * without the header, or whose entry is not an IP address (`[v6]` counts, with a port it does
   * not), keeps the socket's address. Default `false` (0): the socket's address, and the header
   * is ignored, since any client can send it.
   */
  trustProxy?: boolean | number
  /**
   * permessage-deflate (RFC 7692): `true` for the defaults, or options. The first acceptable
   * offer of the client is accepted. Default false: compression costs CPU on every message
   * (docs/server.md gives the figures); turn it on where bandwidth is dearer.
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions
  /**
   * Where every timer of the server and its connections runs, and the time they read (handshake
   * and `close()` timeouts, a refused socket's linger, HTTP/2 session timers, close timeout,
   * heartbeat, zlib budget waits and refill; docs/server.md lists them). Default: Node's timers;
   * tests pass a `VirtualClock`.
   */
  clock?: Clock
}

/** The server's counters ({@link WebSocketServer.stats}). */
export interface ServerStats {
  /** Open connections. */
  connections: number
  /** Bytes held for all connections now, as the memory budget counts them. */
  heldBytes: number
  /** The memory budget, in bytes. */
  memoryBudget: number
}

/**
 * The TLS options `listen({ tls })` takes: a secure context, client certificates, SNI, sessions
 * and PSK. ALPN is the server's own (h2 and http/1.1), and so is the handshake's time limit
 * (`handshakeTimeout`).
 */
export type ListenTlsOptions = SecureContextOptions & Pick<TlsOptions, 'requestCert' | 'rejectUnauthorized' | 'SNICallback' | 'sessionTimeout' | 'ticketKeys' | 'pskCallback' | 'pskIdentityHint' | 'enableTrace'>

/** Options of {@link WebSocketServer.listen}. */
export interface ListenOptions {
  /** Default 0: any free port. */
  port?: number
  /** Default `127.0.0.1`. */
  host?: string
  /**
   * Serve wss://: a key and certificate (and any other TLS context option), and to ask clients
   * for certificates, `requestCert` (with `ca`, and `rejectUnauthorized`, which defaults to true
   * with it): `authorize` reads the peer's certificate from `request.socket`.
   */
  tls?: ListenTlsOptions
  /**
   * With `tls`: serve WebSockets over HTTP/2 too (RFC 8441 extended CONNECT, chosen by ALPN),
   * beside HTTP/1.1 upgrades on the same port. Default true; false serves HTTP/1.1 only.
   */
  http2?: boolean
}

/** A host server `attach` takes: HTTP, HTTPS, or HTTP/2 (`http2.createSecureServer({ allowHTTP1: true })`). */
export type HostServer = HttpServer | HttpsServer | Http2SecureServer | Http2Server

/** Defaults of the server-only options. */
export const DEFAULT_SERVER_OPTIONS = {
  /** {@link WebSocketServerOptions.handshakeTimeout}: 10 s. */
  handshakeTimeout: 10_000,
  /** {@link WebSocketServerOptions.maxHeaderSize}: 16 KiB. */
  maxHeaderSize: 16 * 1024,
  /** {@link WebSocketServerOptions.maxStreamsPerSession}: 128. */
  maxStreamsPerSession: 128,
  /** {@link WebSocketServerOptions.maxConnections}: no limit. */
  maxConnections: Infinity,
  /** {@link WebSocketServerOptions.memoryBudget}: 256 MiB. */
  memoryBudget: DEFAULT_MEMORY_BUDGET
} as const

/** The default `logger`: errors to stderr, the rest discarded. */
export const stderrLogger: Logger = {
  error: (obj, msg) => { console.error(msg ?? '', obj) },
  warn: () => {},
  info: () => {},
  debug: () => {}
}

/** @throws RangeError for a `maxConnections` that is neither a whole number ≥ 0 nor `Infinity`. */
export function checkMaxConnections (max: number | undefined): void {
  if (max === undefined || max === Infinity || (Number.isInteger(max) && max >= 0)) return
  throw new RangeError('maxConnections must be a whole number of connections (or Infinity)')
}

/**
 * `listen`'s argument as JavaScript may pass it: `listen(8080)`, as Node's servers take it, would
 * listen on a random port, and a `port` that is not a number on a pipe of that name.
 * @throws TypeError for anything but an options object; RangeError for a port that is not a
 * whole number from 0 to 65535 (a numeric string, as `process.env.PORT` is, counts).
 */
export function checkListenOptions (options: ListenOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError(`listen takes options: listen({ port: ${String(options)} })`)
  const port: unknown = options.port
  if (port === undefined) return
  const n = typeof port === 'string' && port.trim() !== '' ? Number(port) : port
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) {
    throw new RangeError(`port must be a whole number from 0 to 65535, not ${typeof port === 'string' ? JSON.stringify(port) : String(port)}`)
  }
}
