/**
 * `connect(url)` in the page: the same duplex as on Node, over `WebSocketStream` where the
 * browser has it (reading and sending with backpressure) and plain `WebSocket` elsewhere.
 *
 * @packageDocumentation
 */

import { UpgradeError } from '../errors.js'
import { PageConnection } from './connection.js'
import { timeoutTimer, type Transport, type TransportLimits } from './transport.js'
import type { Connection, ConnectOptions, StreamConnection, StreamConnectOptions } from './types.js'
import { openWebSocket } from './websocket.js'
import { hasWebSocketStream, openWebSocketStream } from './websocketstream.js'
import { optionsArgumentError } from '../connect-options.js'

/** Defaults of the browser's {@link ConnectOptions}. */
export const DEFAULT_BROWSER_OPTIONS = {
  /** {@link ConnectOptions.receiveHighWaterMark}: 1 MiB. */
  receiveHighWaterMark: 1024 * 1024,
  /** {@link ConnectOptions.sendHighWaterMark}: 1 MiB. */
  sendHighWaterMark: 1024 * 1024,
  /** {@link ConnectOptions.maxMessageSize}: 16 MiB. */
  maxMessageSize: 16 * 1024 * 1024,
  /** {@link ConnectOptions.closeTimeout}: 5 s. */
  closeTimeout: 5000,
  /** {@link ConnectOptions.handshakeTimeout}: 10 s, as on Node. */
  handshakeTimeout: 10_000
} as const

/** RFC 6455 §4.1: a subprotocol is a token (RFC 2616 §2.2). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** A non-negative number (or Infinity) option, or its default. @throws RangeError */
function limit (options: ConnectOptions | StreamConnectOptions, name: keyof typeof DEFAULT_BROWSER_OPTIONS): number {
  const value: unknown = options[name]
  if (value === undefined) return DEFAULT_BROWSER_OPTIONS[name]
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new RangeError(`${name} must be a number of 0 or more, not ${String(value)}`)
  return value
}

/**
 * What ends the opening handshake: `signal` (with its reason) or, after `ms`, the timeout (an
 * {@link UpgradeError} with status 0, as on Node, rather than the browser's own, far longer, wait).
 * `done` stops both once the handshake is over.
 */
function handshakeSignal (signal: AbortSignal | undefined, ms: number): { signal: AbortSignal, done: () => void } {
  const controller = new AbortController()
  const onAbort = (): void => { controller.abort(signal!.reason) }
  signal?.addEventListener('abort', onAbort, { once: true })
  const timer = timeoutTimer(ms, () => { controller.abort(new UpgradeError('the opening handshake timed out', 0, 'timeout')) })
  return {
    signal: controller.signal,
    done: () => {
      if (timer !== undefined) clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }
  }
}

/**
 * Open a WebSocket connection to `url` from a page: `ws://` or `wss://`, or `http(s)://` and
 * URLs relative to the page, which map to them. Resolves once the connection is open. Uses
 * `WebSocketStream` when the browser has it, plain `WebSocket` otherwise (see docs/browser.md for
 * what differs).
 *
 * @throws (as a rejection) `SyntaxError` for a URL that is not a WebSocket URL or an empty,
 * invalid or duplicate subprotocol; `TypeError` for a second argument that is not an options
 * object (`connect(url, ['chat'])`, as `new WebSocket(url, protocols)` takes it: write
 * `connect(url, { protocols: ['chat'] })`), for `messages: 'stream'` in a browser without
 * `WebSocketStream`, or a `messages` other than `'whole'` and `'stream'`; `RangeError` for a
 * negative limit; `UpgradeError` with status 0 when the handshake fails — refused, unreachable or
 * answered wrongly: browsers do not tell a page which; `UpgradeError` with status 0 and reason
 * `timeout` past `handshakeTimeout`; `signal.reason` when `signal` aborts first.
 */
export function connect (url: string | URL, options: StreamConnectOptions): Promise<StreamConnection>
export function connect (url: string | URL, options?: ConnectOptions): Promise<Connection>
export function connect (url: string | URL, options: ConnectOptions | StreamConnectOptions = {}): Promise<Connection | StreamConnection> {
  const misused = optionsArgumentError(options)
  if (misused !== undefined) return Promise.reject(misused)
  let target: URL
  try {
    target = new URL(url, (globalThis as { location?: { href: string } }).location?.href)
  } catch {
    return Promise.reject(new SyntaxError(`invalid WebSocket URL: ${String(url)}`))
  }
  if (target.protocol === 'http:') target.protocol = 'ws:'
  else if (target.protocol === 'https:') target.protocol = 'wss:'
  if (target.protocol !== 'ws:' && target.protocol !== 'wss:') return Promise.reject(new SyntaxError(`not a WebSocket URL: ${target.href}`))
  // RFC 6455 §3: "Fragment identifiers are meaningless in the context of WebSocket URIs".
  if (target.hash !== '') return Promise.reject(new SyntaxError('a WebSocket URL must not have a fragment'))
  const offered = typeof options.protocols === 'string' ? [options.protocols] : [...(options.protocols ?? [])]
  for (const p of offered) {
    if (typeof p !== 'string' || !TOKEN.test(p)) return Promise.reject(new SyntaxError(`invalid subprotocol: ${JSON.stringify(p)}`))
  }
  if (new Set(offered).size !== offered.length) return Promise.reject(new SyntaxError('duplicate subprotocol'))
  const mode: unknown = options.messages
  const stream = mode === 'stream'
  if (!stream && mode !== undefined && mode !== 'whole') return Promise.reject(new TypeError(`messages must be 'whole' or 'stream', not ${String(mode)}`))
  let limits: TransportLimits
  let maxMessageSize: number
  let handshakeTimeout: number
  try {
    limits = { receiveHigh: limit(options, 'receiveHighWaterMark'), sendHigh: limit(options, 'sendHighWaterMark'), closeTimeout: limit(options, 'closeTimeout') }
    maxMessageSize = limit(options, 'maxMessageSize')
    handshakeTimeout = limit(options, 'handshakeTimeout')
  } catch (err) {
    return Promise.reject(err)
  }
  const withStreams = hasWebSocketStream()
  if (stream && !withStreams) return Promise.reject(new TypeError("messages: 'stream' needs WebSocketStream, which this browser does not have"))
  const signal = options.signal
  if (signal?.aborted === true) return Promise.reject(signal.reason)

  const handshake = handshakeSignal(signal, handshakeTimeout)
  const opening: Promise<Transport> = withStreams
    ? openWebSocketStream(target.href, offered, limits, handshake.signal)
    : openWebSocket(target.href, offered, limits, handshake.signal)
  return opening.finally(handshake.done).then((transport) => {
    const conn = new PageConnection(transport, { stream, maxMessageSize })
    transport.owner = conn
    if (signal !== undefined) {
      const close = (): void => { conn.close() }
      if (signal.aborted) close()
      else {
        signal.addEventListener('abort', close, { once: true })
        void conn.closed.then(() => { signal.removeEventListener('abort', close) })
      }
    }
    // Whichever duplex the options asked for.
    return conn as unknown as Connection | StreamConnection
  })
}
