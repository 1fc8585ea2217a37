/**
 * `connect(url)`: the client side of wspipe, the same duplex as the server's.
 *
 * @example
 * ```ts
 * const conn = await connect('ws://127.0.0.1:8080/', { protocols: ['echo'] })
 * await conn.sink(['hello'])
 * for await (const message of conn.source) console.log(new TextDecoder().decode(message))
 * ```
 *
 * @packageDocumentation
 */

import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http'
import type { Duplex as NodeDuplex } from 'node:stream'
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls'
import { loadedHttps, loadHttps } from './lazy-modules.js'
import { acceptFor, newKey } from './crypto.js'
import { parseProtocols, validateNegotiation, validateSwitchingProtocols, type HeaderMap } from './handshake.js'
import { checkDeflateAnswer, deflateOffer, PERMESSAGE_DEFLATE, type DeflateParams } from './extensions/deflate-negotiation.js'
import { PerMessageDeflate } from './extensions/permessage-deflate.js'
import { resolveDeflateOptions, type PerMessageDeflateOptions, type ResolvedDeflateOptions } from './extensions/deflate-options.js'
import { CloseCode } from './protocol/close-codes.js'
import { WebSocketConnection } from './driver/connection.js'
import { checkNonNegative, resolveLimits, type Connection, type ConnectionLimits, type Logger, type StreamConnection } from './driver/types.js'
import { HandshakeError, UpgradeError } from './errors.js'
import { systemClock, type Clock } from './driver/clock.js'
import { connectHttp2 } from './http2/client.js'
import { optionsArgumentError } from './connect-options.js'

/** Options of {@link connect}. */
export interface ConnectOptions extends ConnectionLimits {
  /** Subprotocols to offer, by preference. Default: none. */
  protocols?: string | readonly string[]
  /** Extra request headers (e.g. `Authorization`, `Origin`). */
  headers?: Record<string, string>
  /** Aborts the handshake; after it, closes the connection (1000). */
  signal?: AbortSignal
  /** TLS options for wss:// (e.g. `ca`, `rejectUnauthorized`, `servername`). */
  tls?: TlsConnectionOptions
  /** Time for the whole opening handshake, in ms (`Infinity`: no limit); a refusal whose body has not ended by then rejects as that refusal, with what came of its body. Default 10,000. */
  handshakeTimeout?: number
  /** Where the handshake's and the connection's timers run (an idle HTTP/2 session this call opened included), and the zlib budget's time. Default: Node's timers; tests pass a `VirtualClock`. */
  clock?: Clock
  /** Most bytes of a refusal's body kept for {@link UpgradeError.reason}. Default 1,024. */
  maxRefusalBody?: number
  /** pino-shaped logger for the connection's diagnostics. Default: none. */
  logger?: Logger
  /**
   * Offer permessage-deflate (RFC 7692): `true` for the defaults, or options (`serverNoContextTakeover`,
   * `serverMaxWindowBits`, … are requested from the server). An answer that breaks RFC 7692 §7
   * fails the handshake with an {@link UpgradeError}. Default false.
   */
  perMessageDeflate?: boolean | PerMessageDeflateOptions
  /** `'whole'` (the default): each message is one `Uint8Array`. See {@link StreamConnectOptions} for `'stream'`. */
  messages?: 'whole'
  /**
   * For wss://: open the WebSocket over HTTP/2 (RFC 8441) as a stream of a session to the
   * origin that every connection with the same origin and `tls` object shares (closed 2 s after
   * its last WebSocket). A server without HTTP/2, or that does not send
   * SETTINGS_ENABLE_CONNECT_PROTOCOL, gets HTTP/1.1 instead (`conn.httpVersion` tells which).
   * Ignored for ws://. Default false.
   */
  http2?: boolean
}

/**
 * Options of {@link connect} in stream mode: `source` yields each message as a `ReceivedStream`
 * (its type, and its bytes as they arrive), and `maxMessageSize` is the streamed limit.
 * permessage-deflate is not offered (it inflates whole messages).
 */
export interface StreamConnectOptions extends Omit<ConnectOptions, 'messages' | 'perMessageDeflate'> {
  /** `'stream'`. */
  messages: 'stream'
}

const DEFAULT_HANDSHAKE_TIMEOUT = 10_000

/**
 * Open a WebSocket connection to `url` (ws://, wss://, or http(s):// which map to them).
 * Resolves once the server's 101 has been checked (RFC 6455 §4.1); rejects with an
 * {@link UpgradeError} carrying the status and reason if the server refuses.
 *
 * @throws (as a rejection) `SyntaxError` for a URL that is not a WebSocket URL or an empty or
 * duplicate subprotocol; `TypeError` for a second argument that is not an options object
 * (`connect(url, ['echo'])`: write `connect(url, { protocols: ['echo'] })`); `RangeError` for a
 * `maxMessageSize` or `maxFrameSize` under 1 byte, or a `handshakeTimeout` or `closeTimeout`
 * under 0 ms, or a mark or `heartbeat` out of range (docs/server.md, "Errors");
 * {@link UpgradeError} for a refusal, an invalid 101 (status 101), an answer that is not HTTP
 * (status 0, reason `malformed response`) or a handshake timeout (status 0, reason `timeout`);
 * `signal.reason` when `signal` aborts first; Node's `TypeError` for an invalid header name or value
 * in `headers` (`code` `ERR_INVALID_HTTP_TOKEN`, `ERR_INVALID_CHAR`); and, unwrapped,
 * Node's own error when the TCP or TLS connection fails (e.g. `code` `ECONNREFUSED`).
 */
export function connect (url: string | URL, options: StreamConnectOptions): Promise<StreamConnection>
export function connect (url: string | URL, options?: ConnectOptions): Promise<Connection>
export function connect (url: string | URL, options: ConnectOptions | StreamConnectOptions = {}): Promise<Connection | StreamConnection> {
  let plan: ClientPlan
  try {
    plan = planConnection(url, options)
  } catch (err) {
    return Promise.reject(err)
  }
  if (options.http2 === true && plan.secure) {
    const clock = options.clock ?? systemClock
    const started = clock.now()
    return connectHttp2(plan).then((conn) => {
      if (conn !== undefined) return conn
      // No RFC 8441 there: HTTP/1.1, within what is left of the handshake timeout.
      const left = Math.max(1, (options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT) - (clock.now() - started))
      return connect(url, { ...options, http2: false, handshakeTimeout: left } as ConnectOptions)
    })
  }
  // wss:// over HTTP/1.1: node:https is loaded the first time it is needed (src/lazy-modules.ts).
  const https = plan.secure ? loadedHttps() : undefined
  if (plan.secure && https === undefined) return loadHttps().then(() => connect(url, options as ConnectOptions))
  const key = newKey()
  let req: ClientRequest
  try {
    req = sendUpgradeRequest(plan, key, https?.request ?? httpRequest)
  } catch (err) {
    // Node checks the headers as it builds the request (a CR LF in a value, a name that is not a token): nothing was sent.
    return Promise.reject(err)
  }
  return attemptHandshake<Connection | StreamConnection>(options, () => req.destroy(), (attempt) => {
    req.on('error', (err: NodeJS.ErrnoException) => { attempt.fail(malformedResponse(err) ?? err) })
    req.on('response', (res: IncomingMessage) => readRefusal(res, plan, key, attempt))
    req.on('upgrade', (res: IncomingMessage, socket: NodeDuplex, head: Buffer) => {
      if (attempt.settled) {
        socket.destroy()
        return
      }
      let negotiated: Negotiated
      try {
        negotiated = checkUpgradeResponse(res, plan, key)
      } catch (err) {
        socket.destroy()
        attempt.fail(err)
        return
      }
      // Built in this listener, before any more of the socket's bytes can arrive.
      attempt.succeed(() => openClientConnection(socket, head, res.headers, plan, negotiated))
    })
  })
}

/** What {@link connect} was asked for, checked: what every way of opening needs. */
export interface ClientPlan {
  /** The URL, parsed. */
  target: URL
  /** wss:// or https://. */
  secure: boolean
  /** Subprotocols offered, by preference. */
  offered: string[]
  /** permessage-deflate as offered, or undefined when not. */
  deflate: ResolvedDeflateOptions | undefined
  /** `messages: 'stream'`. */
  streaming: boolean
  /** The options as given. */
  options: ConnectOptions | StreamConnectOptions
}

/**
 * Check the URL and options before anything is sent. Throws `SyntaxError`, `TypeError` or
 * `RangeError` for bad ones, and `signal.reason` when the signal has aborted already.
 */
export function planConnection (url: string | URL, options: ConnectOptions | StreamConnectOptions): ClientPlan {
  const misused = optionsArgumentError(options)
  if (misused !== undefined) throw misused
  let target: URL
  try {
    target = new URL(url)
  } catch {
    throw new SyntaxError(`invalid WebSocket URL: ${String(url)}`)
  }
  const scheme = target.protocol
  if (!['ws:', 'wss:', 'http:', 'https:'].includes(scheme)) throw new SyntaxError(`not a WebSocket URL: ${target.href}`)
  // §3: "Fragment identifiers are meaningless in the context of WebSocket URIs".
  if (target.hash !== '') throw new SyntaxError('a WebSocket URL must not have a fragment')
  const offered = typeof options.protocols === 'string' ? [options.protocols] : [...(options.protocols ?? [])]
  try {
    if (offered.length > 0 && parseProtocols(offered.join(',')).length !== offered.length) throw new SyntaxError('empty subprotocol')
  } catch (err) {
    throw err instanceof HandshakeError ? new SyntaxError(err.message) : err
  }
  if (new Set(offered).size !== offered.length) throw new SyntaxError('duplicate subprotocol')
  if (options.signal?.aborted === true) throw options.signal.reason
  const mode: unknown = options.messages
  const streaming = mode === 'stream'
  if (!streaming && mode !== undefined && mode !== 'whole') throw new TypeError(`messages must be 'whole' or 'stream', not ${String(mode)}`)
  const deflateOption = (options as ConnectOptions).perMessageDeflate
  // permessage-deflate inflates whole messages; a streamed one never is.
  if (streaming && deflateOption !== undefined && deflateOption !== false) throw new TypeError("perMessageDeflate cannot be used with messages: 'stream'")
  const deflate = resolveDeflateOptions(deflateOption, 'client', options.clock)
  // Checked now: the connection that takes them is made in an event listener, where a throw is uncaught.
  resolveLimits(options)
  checkNonNegative('handshakeTimeout', options.handshakeTimeout)
  return { target, secure: scheme === 'wss:' || scheme === 'https:', offered, deflate, streaming, options }
}

/** The headers that offer the subprotocols and extensions of `plan`, for any way of opening. */
export function offerHeaders (plan: ClientPlan): Record<string, string> {
  const headers: Record<string, string> = {}
  if (plan.offered.length > 0) headers['Sec-WebSocket-Protocol'] = plan.offered.join(', ')
  if (plan.deflate !== undefined) headers['Sec-WebSocket-Extensions'] = deflateOffer(plan.deflate.request)
  return headers
}

/** Open the TCP (or TLS) connection and send the HTTP/1.1 upgrade request of §4.1 with `key`. */
function sendUpgradeRequest (plan: ClientPlan, key: string, request: typeof httpRequest): ClientRequest {
  const { target, secure, options } = plan
  const req = request({
    ...(secure ? options.tls : {}),
    protocol: secure ? 'https:' : 'http:',
    hostname: target.hostname.startsWith('[') ? target.hostname.slice(1, -1) : target.hostname,
    port: target.port !== '' ? Number(target.port) : secure ? 443 : 80,
    path: target.pathname + target.search,
    method: 'GET',
    headers: {
      ...options.headers,
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Key': key,
      'Sec-WebSocket-Version': '13',
      ...offerHeaders(plan)
    },
    agent: false
  })
  // Its events come later (Node emits them asynchronously): the caller listens before any arrives.
  req.end()
  return req
}

/** One opening handshake's outcome, settled once. */
export interface HandshakeAttempt<T> {
  /** Whether it has succeeded, failed, timed out or been aborted. */
  readonly settled: boolean
  /** Settle with what `open` returns, unless settled already (then `open` is not called). */
  succeed: (open: () => T) => void
  /** Fail with `err` and cancel the handshake, unless settled already. */
  fail: (err: unknown) => void
  /** From now on, fail at the timeout with `error()` rather than a timeout: a refusal whose body is still coming reports itself. */
  failOnTimeoutWith: (error: () => unknown) => void
}

/**
 * Run an opening handshake under `handshakeTimeout` (an {@link UpgradeError} with status 0) and
 * `signal` (its reason); `cancel` stops it (e.g. destroys the request) when it fails. `run`
 * starts it and settles the attempt from its events.
 */
export function attemptHandshake<T> (options: Pick<ConnectOptions, 'signal' | 'handshakeTimeout' | 'clock'>, cancel: () => void, run: (attempt: HandshakeAttempt<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const { signal } = options
    let settled = false
    let timeoutError = (): unknown => new UpgradeError('the opening handshake timed out', 0, 'timeout')
    /** Marks the attempt settled; false if it was already. */
    const end = (): boolean => {
      if (settled) return false
      settled = true
      clock.clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      return true
    }
    const attempt: HandshakeAttempt<T> = {
      get settled () { return settled },
      succeed: (open) => { if (end()) resolve(open()) },
      fail: (err) => {
        if (!end()) return
        cancel()
        reject(err)
      },
      failOnTimeoutWith: (error) => { timeoutError = error }
    }
    const onAbort = (): void => attempt.fail(signal!.reason)
    signal?.addEventListener('abort', onAbort, { once: true })
    const clock = options.clock ?? systemClock
    const timer = clock.setTimeout(() => attempt.fail(timeoutError()), options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT, undefined)
    run(attempt)
  })
}

/** What the server's answer settled: the subprotocol (`''` for none) and permessage-deflate's parameters, if any. */
export interface Negotiated {
  protocol: string
  deflate: DeflateParams | undefined
}

/**
 * The 101's checks (§4.1), then {@link checkNegotiation}'s; throws an {@link UpgradeError}
 * saying what is wrong.
 */
function checkUpgradeResponse (res: IncomingMessage, plan: ClientPlan, key: string): Negotiated {
  try {
    validateSwitchingProtocols({ statusCode: res.statusCode ?? 0, headers: res.headers }, acceptFor(key))
  } catch (err) {
    throw asUpgradeError(err)
  }
  return checkNegotiation(res.headers, plan)
}

/**
 * The checks of the server's answer that every way of opening shares: the subprotocol and
 * extensions are ones offered, and permessage-deflate's answer keeps RFC 7692 §7. Throws an
 * {@link UpgradeError} (status 101) saying what is wrong.
 */
export function checkNegotiation (headers: HeaderMap, plan: ClientPlan): Negotiated {
  const { offered, deflate } = plan
  try {
    const { protocol, extensions } = validateNegotiation(headers, offered, deflate === undefined ? [] : [PERMESSAGE_DEFLATE])
    return { protocol, deflate: deflate === undefined ? undefined : checkDeflateAnswer(extensions, deflate.request) }
  } catch (err) {
    throw asUpgradeError(err)
  }
}

/**
 * Node's HTTP parser refusing the server's answer (`HPE_*`: not HTTP, or a head past
 * `--max-http-header-size`) as an {@link UpgradeError} (status 0): the server answered, wrongly;
 * the connection itself did not fail. `undefined` for any other error.
 */
function malformedResponse (err: NodeJS.ErrnoException): UpgradeError | undefined {
  if (typeof err.code !== 'string' || !err.code.startsWith('HPE_')) return undefined
  return new UpgradeError(`invalid handshake response: ${err.message}`, 0, 'malformed response', { cause: err })
}

function asUpgradeError (err: unknown): UpgradeError {
  const e = err as HandshakeError
  return new UpgradeError(`invalid handshake response: ${e.message}`, e.status ?? 101, e.message)
}

/**
 * A refusal's body as it comes: at most `limit` bytes of it kept (a view of a chunk pins at most
 * that chunk, one of them), for the {@link UpgradeError} it makes, at its end or before.
 */
export class RefusalBody {
  private readonly chunks: Buffer[] = []
  private size = 0
  private readonly limit: number

  constructor (limit: number) {
    this.limit = limit
  }

  /** Keep what fits of `chunk`; true once `limit` bytes have come. */
  add (chunk: Buffer): boolean {
    if (this.size < this.limit) this.chunks.push(chunk.subarray(0, this.limit - this.size))
    this.size += chunk.length
    return this.size >= this.limit
  }

  /** The refusal: `status`, and as its reason the first line of the body so far, or `statusText` when there is none. */
  error (status: number, statusText = ''): UpgradeError {
    const body = Buffer.concat(this.chunks).toString('utf8').trim()
    const reason = body !== '' ? body.split('\n')[0] : statusText
    return new UpgradeError(`server refused the upgrade: ${status} ${reason}`, status, reason)
  }
}

/**
 * A response that is not an upgrade: a refusal, failed with a bounded piece of its body as the
 * reason (what came of it, should the handshake time out first), or a 101 Node did not take for
 * an upgrade (no `Upgrade` or `Connection: Upgrade`), failed saying what is missing.
 */
function readRefusal (res: IncomingMessage, plan: ClientPlan, key: string, attempt: Pick<HandshakeAttempt<unknown>, 'fail' | 'failOnTimeoutWith'>): void {
  if (res.statusCode === 101) {
    res.destroy()
    try {
      checkUpgradeResponse(res, plan, key)
      attempt.fail(new UpgradeError('invalid handshake response: the server did not switch protocols', 101, 'the server did not switch protocols'))
    } catch (err) {
      attempt.fail(err)
    }
    return
  }
  const body = new RefusalBody(plan.options.maxRefusalBody ?? 1024)
  const refusal = (): UpgradeError => body.error(res.statusCode ?? 0, res.statusMessage ?? '')
  const done = (): void => attempt.fail(refusal())
  attempt.failOnTimeoutWith(refusal)
  res.on('data', (chunk: Buffer) => { if (body.add(chunk)) done() })
  res.on('end', done)
  res.on('error', done)
}

/**
 * Build and start the connection over `socket` once the answer is checked, `head` being the
 * bytes that came with it; `signal`, if given, closes it (1000) from then on.
 */
export function openClientConnection (socket: NodeDuplex, head: Buffer, headers: HeaderMap, plan: ClientPlan, negotiated: Negotiated, over: { httpVersion: '1.1' | '2', remoteAddress?: string, remotePort?: number } = { httpVersion: '1.1' }): Connection | StreamConnection {
  const { target, options } = plan
  // TCP only: frames leave at once (no Nagle delay), and the connection's own timers replace Node's idle timeout.
  const tcp = socket as NodeDuplex & { setNoDelay?: (v: boolean) => void, setTimeout?: (ms: number) => void, remoteAddress?: string, remotePort?: number }
  tcp.setNoDelay?.(true)
  tcp.setTimeout?.(0)
  const conn = new WebSocketConnection(socket, {
    role: 'client',
    remoteAddress: over.remoteAddress ?? tcp.remoteAddress,
    remotePort: over.remotePort ?? tcp.remotePort,
    httpVersion: over.httpVersion,
    clock: options.clock,
    protocol: negotiated.protocol,
    url: target.pathname + target.search,
    headers,
    logger: options.logger,
    limits: options,
    compression: negotiated.deflate === undefined ? undefined : new PerMessageDeflate('client', negotiated.deflate, plan.deflate!),
    // In stream mode `maxMessageSize` is the streamed limit, which the driver reads from `limits`.
    stream: plan.streaming ? {} : undefined
  })
  conn.start(head)
  const signal = options.signal
  if (signal !== undefined) {
    const close = (): void => conn.close(CloseCode.Normal)
    signal.addEventListener('abort', close, { once: true })
    void conn.closed.then(() => signal.removeEventListener('abort', close))
  }
  // Whichever duplex the options asked for.
  return conn as unknown as Connection | StreamConnection
}
