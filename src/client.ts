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

import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Duplex as NodeDuplex } from 'node:stream'
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls'
import { acceptFor, newKey } from './crypto.js'
import { checkDeflateAnswer, deflateOffer, HandshakeError, parseProtocols, PERMESSAGE_DEFLATE, validateUpgradeResponse, type DeflateParams } from './handshake.js'
import { PerMessageDeflate, resolveDeflateOptions, type PerMessageDeflateOptions } from './extensions/permessage-deflate.js'
import { CloseCode } from './protocol/close-codes.js'
import { resolveLimits, WebSocketConnection, type Connection, type ConnectionLimits, type Logger, type StreamConnection } from './driver.js'
import { UpgradeError } from './errors.js'
import { systemClock, type Clock } from './driver/clock.js'

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
  /** Time for the whole opening handshake, in ms. Default 10,000. */
  handshakeTimeout?: number
  /** Where the handshake's and the connection's timers run. Default: Node's timers; tests pass a `VirtualClock`. */
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
 * duplicate subprotocol; `RangeError` for a `maxMessageSize` or `maxFrameSize` under 1 byte;
 * {@link UpgradeError} for a refusal, an invalid 101 (status 101) or a
 * handshake timeout (status 0); `signal.reason` when `signal` aborts first; and, unwrapped,
 * Node's own error when the TCP or TLS connection fails (e.g. `code` `ECONNREFUSED`).
 */
export function connect (url: string | URL, options: StreamConnectOptions): Promise<StreamConnection>
export function connect (url: string | URL, options?: ConnectOptions): Promise<Connection>
export function connect (url: string | URL, options: ConnectOptions | StreamConnectOptions = {}): Promise<Connection | StreamConnection> {
  let target: URL
  try {
    target = new URL(url)
  } catch {
    return Promise.reject(new SyntaxError(`invalid WebSocket URL: ${String(url)}`))
  }
  const scheme = target.protocol
  if (!['ws:', 'wss:', 'http:', 'https:'].includes(scheme)) return Promise.reject(new SyntaxError(`not a WebSocket URL: ${target.href}`))
  // §3: "Fragment identifiers are meaningless in the context of WebSocket URIs".
  if (target.hash !== '') return Promise.reject(new SyntaxError('a WebSocket URL must not have a fragment'))
  const secure = scheme === 'wss:' || scheme === 'https:'
  const offered = typeof options.protocols === 'string' ? [options.protocols] : [...(options.protocols ?? [])]
  try {
    if (offered.length > 0 && parseProtocols(offered.join(',')).length !== offered.length) throw new SyntaxError('empty subprotocol')
    if (new Set(offered).size !== offered.length) throw new SyntaxError('duplicate subprotocol')
  } catch (err) {
    return Promise.reject(err instanceof HandshakeError ? new SyntaxError(err.message) : err)
  }
  const signal = options.signal
  if (signal?.aborted === true) return Promise.reject(signal.reason)
  let deflate: ReturnType<typeof resolveDeflateOptions>
  const mode: unknown = options.messages
  const streaming = mode === 'stream'
  if (!streaming && mode !== undefined && mode !== 'whole') return Promise.reject(new TypeError(`messages must be 'whole' or 'stream', not ${String(mode)}`))
  const deflateOption = (options as ConnectOptions).perMessageDeflate
  // permessage-deflate inflates whole messages; a streamed one never is.
  if (streaming && deflateOption !== undefined && deflateOption !== false) return Promise.reject(new TypeError("perMessageDeflate cannot be used with messages: 'stream'"))
  try {
    deflate = resolveDeflateOptions(deflateOption)
    // Checked now: the connection that takes them is made in an event listener, where a throw is uncaught.
    resolveLimits(options)
  } catch (err) {
    return Promise.reject(err)
  }

  const key = newKey()
  const headers: Record<string, string> = {
    ...options.headers,
    Connection: 'Upgrade',
    Upgrade: 'websocket',
    'Sec-WebSocket-Key': key,
    'Sec-WebSocket-Version': '13'
  }
  if (offered.length > 0) headers['Sec-WebSocket-Protocol'] = offered.join(', ')
  if (deflate !== undefined) headers['Sec-WebSocket-Extensions'] = deflateOffer(deflate.request)
  const request = secure ? httpsRequest : httpRequest
  const req = request({
    ...(secure ? options.tls : {}),
    protocol: secure ? 'https:' : 'http:',
    hostname: target.hostname.startsWith('[') ? target.hostname.slice(1, -1) : target.hostname,
    port: target.port !== '' ? Number(target.port) : secure ? 443 : 80,
    path: target.pathname + target.search,
    method: 'GET',
    headers,
    agent: false
  })

  /** The 101's checks (§4.1); throws an {@link UpgradeError} saying what is wrong. */
  const checkResponse = (res: IncomingMessage): { protocol: string, deflate: DeflateParams | undefined } => {
    try {
      const { protocol, extensions } = validateUpgradeResponse({ statusCode: res.statusCode ?? 0, headers: res.headers }, acceptFor(key), offered, deflate === undefined ? [] : [PERMESSAGE_DEFLATE])
      return { protocol, deflate: deflate === undefined ? undefined : checkDeflateAnswer(extensions, deflate.request) }
    } catch (err) {
      const e = err as HandshakeError
      throw new UpgradeError(`invalid handshake response: ${e.message}`, e.status ?? 101, e.message)
    }
  }

  return new Promise<Connection | StreamConnection>((resolve, reject) => {
    let settled = false
    const fail = (err: unknown): void => {
      if (settled) return
      settled = true
      cleanup()
      req.destroy()
      reject(err)
    }
    const onAbort = (): void => fail(signal!.reason)
    signal?.addEventListener('abort', onAbort, { once: true })
    const clock = options.clock ?? systemClock
    const timer = clock.setTimeout(() => fail(new UpgradeError('the opening handshake timed out', 0, 'timeout')), options.handshakeTimeout ?? DEFAULT_HANDSHAKE_TIMEOUT, undefined)
    const cleanup = (): void => {
      clock.clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    }

    req.on('error', fail)
    req.on('response', (res: IncomingMessage) => {
      if (res.statusCode === 101) {
        // A 101 without `Upgrade` or `Connection: Upgrade` is no upgrade to Node: say what is missing.
        res.destroy()
        try {
          checkResponse(res)
          fail(new UpgradeError('invalid handshake response: the server did not switch protocols', 101, 'the server did not switch protocols'))
        } catch (err) {
          fail(err)
        }
        return
      }
      // Not a 101: a refusal. Keep a bounded piece of the body as the reason.
      const limit = options.maxRefusalBody ?? 1024
      const chunks: Buffer[] = []
      let size = 0
      const done = (): void => {
        const body = Buffer.concat(chunks).toString('utf8').trim()
        const reason = body !== '' ? body.split('\n')[0] : res.statusMessage ?? ''
        fail(new UpgradeError(`server refused the upgrade: ${res.statusCode ?? 0} ${reason}`, res.statusCode ?? 0, reason))
      }
      res.on('data', (chunk: Buffer) => {
        if (size < limit) chunks.push(chunk.subarray(0, limit - size))
        size += chunk.length
        if (size >= limit) done()
      })
      res.on('end', done)
      res.on('error', done)
    })
    req.on('upgrade', (res: IncomingMessage, socket: NodeDuplex, head: Buffer) => {
      if (settled) {
        socket.destroy()
        return
      }
      let checked: { protocol: string, deflate: DeflateParams | undefined }
      try {
        checked = checkResponse(res)
      } catch (err) {
        socket.destroy()
        fail(err)
        return
      }
      settled = true
      cleanup()
      // TCP only: frames leave at once (no Nagle delay), and the connection's own timers replace Node's idle timeout.
      const tcp = socket as NodeDuplex & { setNoDelay?: (v: boolean) => void, setTimeout?: (ms: number) => void, remoteAddress?: string, remotePort?: number }
      tcp.setNoDelay?.(true)
      tcp.setTimeout?.(0)
      const conn = new WebSocketConnection(socket, {
        role: 'client',
        remoteAddress: tcp.remoteAddress,
        remotePort: tcp.remotePort,
        clock,
        protocol: checked.protocol,
        url: target.pathname + target.search,
        headers: res.headers,
        logger: options.logger,
        head,
        limits: options,
        compression: checked.deflate === undefined ? undefined : new PerMessageDeflate('client', checked.deflate, deflate!),
        // In stream mode `maxMessageSize` is the streamed limit, which the driver reads from `limits`.
        stream: streaming ? {} : undefined
      })
      conn.start()
      if (signal !== undefined) {
        const close = (): void => conn.close(CloseCode.Normal)
        signal.addEventListener('abort', close, { once: true })
        void conn.closed.then(() => signal.removeEventListener('abort', close))
      }
      // Whichever duplex the options asked for.
      resolve(conn as unknown as Connection | StreamConnection)
    })
    req.end()
  })
}
