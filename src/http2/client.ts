/**
 * The client's HTTP/2 side (RFC 8441): `connect(url, { http2: true })` opens the WebSocket as
 * an extended CONNECT stream on an HTTP/2 session to the origin, one session per origin shared
 * by every connection to it, closed once none is left on it for a while. A server that does not
 * speak HTTP/2 (ALPN) or does not send SETTINGS_ENABLE_CONNECT_PROTOCOL leaves the choice to
 * HTTP/1.1: the caller falls back.
 *
 * @packageDocumentation
 */

import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders, SecureClientSessionOptions } from 'node:http2'
import type { Socket } from 'node:net'
import type { Duplex as NodeDuplex } from 'node:stream'
import { loadHttp2 } from '../lazy-modules.js'
import { CANCEL, REFUSED_STREAM } from './error-codes.js'
import { attemptHandshake, checkNegotiation, offerHeaders, openClientConnection, RefusalBody, type ClientPlan, type Negotiated } from '../client.js'
import type { Connection, StreamConnection } from '../driver/types.js'
import { UpgradeError } from '../errors.js'
import { systemClock, type Clock, type ClockTimer } from '../driver/clock.js'
import { cancelOnDestroy } from './abort.js'

/** How long a session with no WebSocket left stays open for the next one, in ms. */
export const SESSION_IDLE_TIMEOUT = 2000

/** One pooled session: its WebSocket streams and, when it has none, its idle timer. */
interface PooledSession {
  readonly key: string
  /** Settles once the server's SETTINGS came: true if it allows extended CONNECT. */
  readonly ready: Promise<boolean>
  session: ClientHttp2Session
  open: number
  idle: ClockTimer | undefined
  /** The clock of the `connect()` that opened the session: its idle timer runs there. */
  readonly clock: Clock
}

/** Sessions by origin (and the identity of the TLS options they were opened with). */
const pool = new Map<string, PooledSession>()
const tlsIds = new WeakMap<object, number>()
let nextTlsId = 1

function keyOf (origin: string, tls: object | undefined): string {
  if (tls === undefined) return origin
  let id = tlsIds.get(tls)
  if (id === undefined) {
    id = nextTlsId++
    tlsIds.set(tls, id)
  }
  return `${origin}#${id}`
}

/** The pooled session for `origin`, opened if there is none (or the one there is going away). */
function sessionFor (origin: string, tls: SecureClientSessionOptions | undefined, clock: Clock, connectSession: typeof import('node:http2').connect): PooledSession {
  const key = keyOf(origin, tls)
  const found = pool.get(key)
  if (found !== undefined && !found.session.closed && !found.session.destroyed) return found
  // A WebSocket client has no use for server push (RFC 9113 §6.5.2, SETTINGS_ENABLE_PUSH 0):
  // pushed streams nobody reads would each hold their window here for good.
  const session = connectSession(origin, { ...tls, settings: { ...tls?.settings, enablePush: false } })
  const entry: PooledSession = {
    key,
    session,
    open: 0,
    idle: undefined,
    clock,
    ready: new Promise<boolean>((resolve, reject) => {
      const onSettings = (): void => {
        session.off('error', onError)
        // RFC 8441 §3: extended CONNECT only where the server said SETTINGS_ENABLE_CONNECT_PROTOCOL = 1.
        resolve(session.remoteSettings.enableConnectProtocol === true)
      }
      const onError = (err: NodeJS.ErrnoException): void => {
        session.off('remoteSettings', onSettings)
        // A server without HTTP/2 refuses it in ALPN: not an error, HTTP/1.1 it is.
        if (err.code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL') resolve(false)
        else reject(err)
      }
      session.once('remoteSettings', onSettings)
      session.once('error', onError)
      // Closed before its SETTINGS (an idle timer after a handshake timeout): no answer will come.
      session.once('close', () => { reject(new Error('the HTTP/2 session closed before the server\'s SETTINGS')) })
    })
  }
  // Later errors end the session; its streams see them as resets.
  session.on('error', ignoreError)
  const forget = (): void => {
    if (pool.get(key) === entry) pool.delete(key)
  }
  session.once('close', forget)
  // A session going away takes no new streams: the next connect() opens another.
  session.once('goaway', forget)
  pool.set(key, entry)
  return entry
}

function release (entry: PooledSession): void {
  entry.open--
  if (entry.open > 0) return
  // Idle: let the process exit, and close the session if no WebSocket comes for a while.
  entry.session.unref()
  entry.idle = entry.clock.setTimeout(closeIdle, SESSION_IDLE_TIMEOUT, entry)
  // A Node timer (the system clock's) must not keep the process alive either.
  ;(entry.idle as { unref?: () => void }).unref?.()
}

function closeIdle (entry: PooledSession): void {
  entry.idle = undefined
  if (entry.open > 0) return
  if (pool.get(entry.key) === entry) pool.delete(entry.key)
  entry.session.close()
}

/** What an HTTP/2 attempt needs of `connect()`'s request. */
export interface Http2Attempt {
  /** `https://host:port`. */
  origin: string
  /** Path and query. */
  path: string
  /** Request headers (lower-case names), the handshake's own included. */
  headers: Record<string, string>
  tls: SecureClientSessionOptions | undefined
  /** Most bytes of a refusal's body kept as its reason. */
  maxRefusalBody: number
  /** `connect()`'s clock: a session opened here closes when idle by it. */
  clock: Clock
  /** Told, once a refusal's body is being read, what a timeout should fail with instead. */
  failOnTimeoutWith?: (error: () => unknown) => void
}

/** An accepted stream: the socket to run the WebSocket on, and what the server chose. */
export interface Http2Opened {
  stream: ClientHttp2Stream
  response: IncomingHttpHeaders
  remoteAddress: string | undefined
  remotePort: number | undefined
  /** Call once the stream is closed: the session may then go idle. */
  done: () => void
}

/**
 * Send the extended CONNECT on the origin's session. Resolves with the opened stream, or
 * `undefined` when the server does not offer WebSockets over HTTP/2 (the caller falls back to
 * HTTP/1.1); rejects with an {@link UpgradeError} for a refusal or an invalid 200, or with the
 * session's error. `signal` abandons the attempt. A CONNECT the server did not process because
 * its session was going away (GOAWAY) is sent once more, on a new session.
 */
export async function openHttp2 (attempt: Http2Attempt, signal: AbortSignal, retried = false): Promise<Http2Opened | undefined> {
  // node:http2 is loaded only once HTTP/2 is used (src/lazy-modules.ts).
  const entry = sessionFor(attempt.origin, attempt.tls, attempt.clock, (await loadHttp2()).connect)
  if (entry.idle !== undefined) {
    entry.clock.clearTimeout(entry.idle)
    entry.idle = undefined
  }
  entry.open++
  entry.session.ref()
  let released = false
  const done = (): void => {
    if (released) return
    released = true
    release(entry)
  }
  // The request was refused before any processing, so it can be sent again (RFC 9113 §8.7).
  let unprocessed = false
  try {
    const ok = await abortable(entry.ready, signal)
    if (!ok) {
      done()
      return undefined
    }
    const authority = new URL(attempt.origin).host
    let stream: ClientHttp2Stream
    try {
      stream = entry.session.request({
        ':method': 'CONNECT',
        ':protocol': 'websocket',
        ':scheme': 'https',
        ':path': attempt.path,
        ':authority': authority,
        ...attempt.headers
      })
    } catch (err) {
      // The server's GOAWAY came before this request left.
      unprocessed = (err as NodeJS.ErrnoException).code === 'ERR_HTTP2_GOAWAY_SESSION'
      throw err
    }
    stream.on('error', ignoreError)
    const onAbort = (): void => { stream.close() }
    signal.addEventListener('abort', onAbort, { once: true })
    let response: IncomingHttpHeaders
    try {
      response = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
        stream.once('response', resolve)
        stream.once('close', () => {
          unprocessed = stream.rstCode === REFUSED_STREAM
          reject(signal.aborted ? signal.reason : new UpgradeError(`the server reset the stream (HTTP/2 error code ${stream.rstCode ?? 0})`, 0, 'stream reset'))
        })
      })
    } finally {
      signal.removeEventListener('abort', onAbort)
    }
    const status = Number(response[':status'])
    if (status !== 200) {
      // A refusal: its status, and the first line of a bounded piece of its body as the reason
      // (of what came of it, should the handshake time out first).
      const body = new RefusalBody(attempt.maxRefusalBody)
      attempt.failOnTimeoutWith?.(() => body.error(status))
      await readRefusalBody(stream, body, signal)
      throw body.error(status)
    }
    stream.off('error', ignoreError)
    cancelOnDestroy(stream)
    stream.once('close', done)
    const socket = entry.session.socket as Socket | undefined
    return { stream, response, remoteAddress: socket?.remoteAddress, remotePort: socket?.remotePort, done }
  } catch (err) {
    done()
    // Refused unprocessed on a session going away (no longer pooled): the next one is new.
    if (unprocessed && !retried && !signal.aborted && pool.get(entry.key) !== entry) return await openHttp2(attempt, signal, true)
    throw err
  }
}

/**
 * `connect(url, { http2: true })` for wss://: the WebSocket on a stream of the origin's pooled
 * session, or `undefined` if the server does not offer RFC 8441 (the caller then uses HTTP/1.1).
 * The handshake runs under `connect()`'s own timeout and signal, and its answer goes through
 * the same checks as a 101's (subprotocol, extensions, permessage-deflate).
 */
export function connectHttp2 (plan: ClientPlan): Promise<Connection | StreamConnection | undefined> {
  const { target, options } = plan
  const controller = new AbortController()
  return attemptHandshake<Connection | StreamConnection | undefined>(options, () => { controller.abort() }, (attempt) => {
    const headers: Record<string, string> = { ...http2Headers(options.headers), 'sec-websocket-version': '13' }
    for (const [name, value] of Object.entries(offerHeaders(plan))) headers[name.toLowerCase()] = value
    openHttp2({
      origin: `https://${target.host}`,
      path: target.pathname + target.search,
      headers,
      tls: options.tls as SecureClientSessionOptions | undefined,
      maxRefusalBody: options.maxRefusalBody ?? 1024,
      clock: options.clock ?? systemClock,
      failOnTimeoutWith: attempt.failOnTimeoutWith
    }, controller.signal).then((opened) => {
      if (opened === undefined) {
        attempt.succeed(() => undefined)
        return
      }
      if (attempt.settled) {
        opened.stream.close()
        return
      }
      let negotiated: Negotiated
      try {
        negotiated = checkNegotiation(opened.response, plan)
      } catch (err) {
        opened.stream.close()
        // The answer was a 200 (RFC 8441 §5), not a 101.
        const e = err as UpgradeError
        attempt.fail(new UpgradeError(e.message, 200, e.reason))
        return
      }
      attempt.succeed(() => openClientConnection(opened.stream as unknown as NodeDuplex, Buffer.alloc(0), responseHeaders(opened.response), plan, negotiated, { httpVersion: '2', remoteAddress: opened.remoteAddress, remotePort: opened.remotePort }))
    }, attempt.fail)
  })
}

/** The 200's headers less its pseudo-headers. */
function responseHeaders (headers: IncomingHttpHeaders): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {}
  for (const name in headers) if (!name.startsWith(':')) out[name] = headers[name]
  return out
}

/**
 * Read a refusal's body into `body` until it ends or is long enough; the stream is closed then,
 * or as soon as `signal` aborts (a body that never ends must not hold the stream, and with it the
 * session, after the handshake gave up).
 */
async function readRefusalBody (stream: ClientHttp2Stream, body: RefusalBody, signal: AbortSignal): Promise<void> {
  let onAbort: (() => void) | undefined
  await new Promise<void>((resolve) => {
    stream.on('data', (chunk: Buffer) => { if (body.add(chunk)) resolve() })
    stream.once('end', resolve)
    stream.once('close', resolve)
    onAbort = resolve
    if (signal.aborted) resolve()
    else signal.addEventListener('abort', onAbort, { once: true })
  })
  signal.removeEventListener('abort', onAbort!)
  // Whatever ended the read (the body's end, the limit, the abort), the stream is done: closed, it
  // no longer keeps the session busy; cut short, it is reset with CANCEL (no longer needed).
  stream.close(stream.readableEnded ? undefined : CANCEL)
}

/** `promise`, or `signal.reason` if it aborts first (the promise's value is then dropped). */
function abortable<T> (promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then((v) => {
      signal.removeEventListener('abort', onAbort)
      resolve(v)
    }, (err: unknown) => {
      signal.removeEventListener('abort', onAbort)
      reject(err)
    })
  })
}

/** Connection-specific request headers, which HTTP/2 forbids (RFC 9113 §8.2.2), and Host (`:authority` says it). */
const NOT_OVER_HTTP2 = new Set(['connection', 'upgrade', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'host', 'te'])

/** A user's request headers for an HTTP/2 request: names lower-cased, the forbidden ones left out. */
export function http2Headers (headers: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers ?? {})) {
    const lower = name.toLowerCase()
    if (!NOT_OVER_HTTP2.has(lower) && !lower.startsWith(':')) out[lower] = value
  }
  return out
}

function ignoreError (): void {}
