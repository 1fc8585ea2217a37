/**
 * The server's HTTP/2 side (RFC 8441): takes extended CONNECT streams, answers them (200 or a
 * refusal on the stream), and keeps the HTTP/2 sessions it serves, so that `close()` can send
 * GOAWAY once each session's WebSockets have been closed with 1001. The negotiation itself
 * (origins, subprotocol, permessage-deflate, authorize) is the server's, shared with HTTP/1.1.
 *
 * @packageDocumentation
 */

import { constants, type Http2SecureServer, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import type { Socket } from 'node:net'
import { acceptFor } from '../crypto.js'
import { HandshakeError } from '../errors.js'
import { originForm, rejectBody } from '../handshake.js'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { buildConnectResponse, buildRefusalHeaders, isExtendedConnect, validateConnectRequest, type ValidConnect } from './handshake.js'
import type { Clock, ClockTimer } from '../driver/clock.js'
import type { WebSocketConnection } from '../driver/connection.js'

/**
 * An extended CONNECT request as `authorize` sees it (the HTTP/2 counterpart of an
 * `IncomingMessage`): its headers include the pseudo-headers (`:path`, `:authority`, …).
 */
export interface Http2UpgradeRequest {
  /** `'2.0'`. */
  readonly httpVersion: '2.0'
  /** `'CONNECT'`. */
  readonly method: 'CONNECT'
  /** The `:path`: the request target in origin-form. */
  readonly url: string
  /** The request's headers, pseudo-headers included. */
  readonly headers: IncomingHttpHeaders
  /** The HTTP/2 session's socket (for `remoteAddress`, `getPeerCertificate()`, …). */
  readonly socket: Socket
  /** The HTTP/2 stream the WebSocket would run on. */
  readonly stream: ServerHttp2Stream
}

/** What the server lends its HTTP/2 side. */
export interface Http2Host {
  /** New WebSockets are accepted (not draining or closed). */
  accepting: () => boolean
  /** Origins, subprotocol and permessage-deflate; throws a {@link HandshakeError} to refuse. */
  negotiate: (request: ValidConnect) => { protocol: string, deflate: { header: string } | undefined }
  /** Run `authorize` if the server has one: resolves undefined to accept, or the refusal. Undefined without a hook. */
  authorize: ((request: Http2UpgradeRequest) => Promise<HandshakeError | undefined>) | undefined
  /** Time `authorize` gets before a 503, in ms. */
  handshakeTimeout: number
  /** Time the peer gets to end its side of a stream we ended, in ms; then RST_STREAM NO_ERROR. */
  endStreamGrace: number
  /** The server's clock, for every timer here. */
  clock: Clock
  /** Make the connection on an accepted stream and start its handler. */
  open: (stream: ServerHttp2Stream, request: Http2UpgradeRequest, valid: ValidConnect, negotiated: ReturnType<Http2Host['negotiate']>) => WebSocketConnection
  /** A refusal was sent (for diagnostics). */
  refused: (error: HandshakeError, request: Http2UpgradeRequest | undefined) => void
  /** Something `close()` waits for is gone. */
  wake: () => void
}

/** The connection-level receive window of our own sessions. */
const SESSION_WINDOW = 16 * 1024 * 1024

/** A session we serve WebSockets on: how many are open, and whether it is to get GOAWAY once none is. */
interface SessionState {
  open: number
  goAway: boolean
  /** Our own server's session that has not yet opened a stream: dropped past `handshakeTimeout`. */
  idleTimer: ClockTimer | undefined
}

/** The HTTP/2 side of one `WebSocketServer`. */
export class Http2Streams {
  private readonly host: Http2Host
  private readonly sessions = new Map<ServerHttp2Session, SessionState>()
  /** Streams whose `authorize` is deciding, with their timers. */
  readonly authorizing = new Map<ServerHttp2Stream, ClockTimer>()
  private draining = false

  constructor (host: Http2Host) {
    this.host = host
  }

  /** WebSocket streams open, over all sessions. */
  get size (): number {
    let n = 0
    for (const s of this.sessions.values()) n += s.open
    return n
  }

  /**
   * A session of our own server: it must open a stream within `timeout` ms (as an HTTP/1.1
   * client must send its request within `handshakeTimeout`), or it is dropped.
   */
  adopt (session: ServerHttp2Session, timeout: number): void {
    // The connection-level window (RFC 9113 §6.9.2) is consumed as data arrives, so it bounds no
    // memory here (each stream's own window does): 65,535 bytes would only make large messages
    // wait a round trip per 64 KiB across all streams.
    session.once('localSettings', () => { if (!session.destroyed) session.setLocalWindowSize(SESSION_WINDOW) })
    const state = this.track(session)
    const clock = this.host.clock
    state.idleTimer = clock.setTimeout(destroySession, timeout, session)
    session.once('stream', () => {
      clock.clearTimeout(state.idleTimer)
      state.idleTimer = undefined
    })
    if (this.draining) this.maybeGoAway(session, state)
  }

  /**
   * Take a stream if it is an extended CONNECT (RFC 8441 §4): answer it, and on a 200 run the
   * WebSocket on it. Returns false for any other request, which is the host's to serve.
   */
  handle (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): boolean {
    if (!isExtendedConnect(headers)) return false
    // A reset or a broken session must not crash the process before a connection listens.
    stream.on('error', ignoreError)
    const session = stream.session
    const socket = session?.socket as Socket | undefined
    const request: Http2UpgradeRequest = { httpVersion: '2.0', method: 'CONNECT', url: String(headers[':path'] ?? '/'), headers, socket: socket!, stream }
    if (session === undefined || socket === undefined || stream.destroyed) return true
    if (!this.host.accepting()) {
      this.refuse(stream, new HandshakeError(503, 'the server is shutting down'), request)
      return true
    }
    let valid: ValidConnect
    let negotiated: ReturnType<Http2Host['negotiate']>
    try {
      valid = validateConnectRequest(headers)
      negotiated = this.host.negotiate(valid)
    } catch (err) {
      this.refuse(stream, err instanceof HandshakeError ? err : new HandshakeError(400, 'bad extended CONNECT request'), request)
      return true
    }
    const authorize = this.host.authorize
    if (authorize === undefined) {
      this.accept(stream, request, valid, negotiated)
      return true
    }
    // RFC 8441 streams arrive whole; the handshake timer bounds `authorize` alone (then 503).
    const timer = this.host.clock.setTimeout(() => {
      this.authorizing.delete(stream)
      this.refuse(stream, new HandshakeError(503, 'authorization timed out'), request)
      this.host.wake()
    }, this.host.handshakeTimeout, undefined)
    this.authorizing.set(stream, timer)
    void authorize(request).then((refusal) => {
      if (!this.settleAuthorizing(stream)) return
      if (refusal !== undefined) this.refuse(stream, refusal, request)
      else this.accept(stream, request, valid, negotiated)
    })
    return true
  }

  /** Stop waiting for `stream`'s `authorize`; false if it was answered meanwhile (timed out, refused by `close()`) or is gone. */
  private settleAuthorizing (stream: ServerHttp2Stream): boolean {
    const timer = this.authorizing.get(stream)
    if (timer === undefined) return false
    this.host.clock.clearTimeout(timer)
    this.authorizing.delete(stream)
    this.host.wake()
    return !stream.destroyed && !stream.headersSent
  }

  private accept (stream: ServerHttp2Stream, request: Http2UpgradeRequest, valid: ValidConnect, negotiated: ReturnType<Http2Host['negotiate']>): void {
    if (stream.destroyed || stream.headersSent) return
    if (!this.host.accepting() && !this.draining) {
      this.refuse(stream, new HandshakeError(503, 'the server is shutting down'), request)
      return
    }
    const session = stream.session as ServerHttp2Session
    // RFC 8441 §5: "it MUST respond with a 200 (OK) status code"; the stream stays open.
    stream.respond(buildConnectResponse(negotiated.protocol, negotiated.deflate?.header, valid.key === undefined ? undefined : acceptFor(valid.key)))
    const conn = this.host.open(stream, request, valid, negotiated)
    stream.off('error', ignoreError)
    const state = this.track(session)
    state.open++
    // After our END_STREAM (the closing handshake done) the peer should end its side too; a
    // peer that does not (undici) would hold the stream to closeTimeout. RFC 9113 §8.1 lets a
    // server that has sent a complete response ask the client to stop with RST_STREAM NO_ERROR.
    const clock = this.host.clock
    let linger: ClockTimer | undefined
    stream.once('finish', () => {
      if (!stream.readableEnded && !stream.closed) linger = clock.setTimeout(stopStream, this.host.endStreamGrace, stream)
    })
    stream.once('close', () => {
      if (linger !== undefined) clock.clearTimeout(linger)
      state.open--
      this.maybeGoAway(session, state)
    })
    if (this.draining) {
      conn.close(1001, 'server shutting down')
      this.maybeGoAway(session, state)
    }
  }

  /** Answer `error` on the stream: its status, a one-line body, END_STREAM. */
  refuse (stream: ServerHttp2Stream, error: HandshakeError, request: Http2UpgradeRequest | undefined): void {
    if (stream.destroyed || stream.headersSent) return
    this.host.refused(error, request)
    const body = rejectBody(error.message)
    stream.respond(buildRefusalHeaders(error, Buffer.byteLength(body)))
    stream.end(body)
  }

  private track (session: ServerHttp2Session): SessionState {
    let state = this.sessions.get(session)
    if (state === undefined) {
      state = { open: 0, goAway: false, idleTimer: undefined }
      this.sessions.set(session, state)
      const s = state
      session.once('close', () => {
        if (s.idleTimer !== undefined) this.host.clock.clearTimeout(s.idleTimer)
        this.sessions.delete(session)
        this.host.wake()
      })
    }
    return state
  }

  /** GOAWAY once a draining session's WebSockets are gone (their 1001s went first). */
  private maybeGoAway (session: ServerHttp2Session, state: SessionState): void {
    if (!this.draining || state.goAway || state.open > 0 || session.closed || session.destroyed) return
    state.goAway = true
    // Node sends GOAWAY (NO_ERROR) and ends the session once its other streams are done.
    session.close()
  }

  /**
   * `close()` began: sessions without WebSockets get GOAWAY now, the others once the 1001 sent
   * on each of their WebSockets has been answered (or the connection dropped).
   */
  drain (): void {
    this.draining = true
    for (const [session, state] of this.sessions) this.maybeGoAway(session, state)
  }

  /**
   * `close()` is finishing: streams still awaiting `authorize` get 503, every session GOAWAY.
   * Those of our own server (`own`) may finish what they are sending within `grace` ms and are
   * then dropped; resolves once they are gone.
   */
  async finish (own: (session: ServerHttp2Session) => boolean, grace: number): Promise<void> {
    const clock = this.host.clock
    for (const [stream, timer] of [...this.authorizing]) {
      clock.clearTimeout(timer)
      this.authorizing.delete(stream)
      this.refuse(stream, new HandshakeError(503, 'the server is shutting down'), undefined)
    }
    const ours: Array<Promise<void>> = []
    for (const [session, state] of [...this.sessions]) {
      state.goAway = true
      if (!session.closed) session.close()
      if (!own(session) || session.destroyed) continue
      ours.push(new Promise<void>((resolve) => {
        const timer = clock.setTimeout(destroySession, grace, session)
        session.once('close', () => {
          clock.clearTimeout(timer)
          resolve()
        })
      }))
    }
    await Promise.all(ours)
  }

  /** `listen` or `attach` after a `close()`. */
  reopen (): void {
    this.draining = false
  }
}

function ignoreError (): void {}

function destroySession (session: ServerHttp2Session): void { session.destroy() }

/** RFC 9113 §8.1: after a complete response, RST_STREAM NO_ERROR asks the client to stop sending. */
function stopStream (stream: ServerHttp2Stream): void { stream.close(constants.NGHTTP2_NO_ERROR) }

/** A host `attach` can take HTTP/2 streams from: an `http2` server (it has `updateSettings`, which HTTP/1 servers lack). */
export function isHttp2Host (server: object): server is Http2SecureServer | Http2Server {
  return typeof (server as { updateSettings?: unknown }).updateSettings === 'function'
}

/** The `stream` listeners `attach` installed, with the path each serves (`undefined`: every path). */
const streamPaths = new WeakMap<(...args: any[]) => void, string | undefined>()

/**
 * The listeners `attach` puts on an HTTP/2 host: `stream` hands extended CONNECTs for `path` to
 * `take` (another path: a 404 by `refuse`, unless another wspipe server attached for it takes
 * it); `connect` keeps Node's compatibility layer (a host with a `request` listener) from
 * answering them 405, while a plain CONNECT still gets 405 if the host has no listener of its own.
 */
export function http2Listeners (server: Http2SecureServer | Http2Server | object, path: string | undefined, take: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void, refuse: (stream: ServerHttp2Stream) => void): { streamListener: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void, connectListener: (req: IncomingMessage, res: ServerResponse) => void } {
  const host = server as Http2SecureServer
  const streamListener = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    if (headers[':method'] !== 'CONNECT' || headers[':protocol'] === undefined) return
    const target = originForm(String(headers[':path'] ?? '/'))
    const targetPath = target === undefined ? undefined : target.split('?')[0]
    if (path !== undefined && targetPath !== path) {
      const listeners = host.listeners('stream') as Array<(...args: any[]) => void>
      const taken = listeners.some((l) => streamPaths.has(l) && (streamPaths.get(l) === undefined || streamPaths.get(l) === targetPath))
      if (!taken && listeners.find((l) => streamPaths.has(l)) === streamListener) refuse(stream)
      return
    }
    take(stream, headers)
  }
  streamPaths.set(streamListener, path)
  const connectListener = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.headers[':protocol'] !== undefined || host.listenerCount('connect') > 1) return
    res.statusCode = 405
    res.end()
  }
  return { streamListener, connectListener }
}
