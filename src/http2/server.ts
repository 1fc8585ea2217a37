/**
 * The server's HTTP/2 side (RFC 8441): takes extended CONNECT streams, answers them (200 or a
 * refusal on the stream), and keeps the HTTP/2 sessions it serves, so that `close()` can send
 * GOAWAY once each session's WebSockets have been closed with 1001. The negotiation itself
 * (origins, subprotocol, permessage-deflate, authorize) is the server's, shared with HTTP/1.1.
 *
 * @packageDocumentation
 */

import type { createSecureServer, Http2SecureServer, Http2Server, Http2ServerResponse, IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from 'node:http2'
import type { Socket } from 'node:net'
import type { ListenTlsOptions } from '../server-options.js'
import { acceptFor } from '../crypto.js'
import { CANCEL, NO_ERROR, REFUSED_STREAM } from './error-codes.js'
import { HandshakeError } from '../errors.js'
import { originForm, rejectBody } from '../handshake.js'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { buildConnectResponse, buildRefusalHeaders, isExtendedConnect, validateConnectRequest, type ValidConnect } from './handshake.js'
import type { Clock, ClockTimer } from '../driver/clock.js'
import type { WebSocketConnection } from '../driver/connection.js'
import type { DriverOptions, Logger } from '../driver/types.js'
import { authorizeRefusal, type AuthorizeResult } from '../authorize.js'
import { handshakeRefusedChannel, publishRefused } from '../diagnostics.js'
import type { DeflateParams } from '../extensions/deflate-negotiation.js'
import type { MemoryBudget } from '../driver/budget.js'
import { streamHeaders } from '../upgrade-request.js'
import { cancelOnDestroy } from './abort.js'

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
  /**
   * The HTTP/2 session's socket (for `remoteAddress`, `getPeerCertificate()`, …). Read it before
   * an `await`: once the session is gone (the peer left), Node throws ERR_HTTP2_SOCKET_UNBOUND
   * on every property read.
   */
  readonly socket: Socket
  /** The HTTP/2 stream the WebSocket would run on. */
  readonly stream: ServerHttp2Stream
}

/** What the server's negotiation settled: the subprotocol, and permessage-deflate if accepted. */
export interface Negotiated {
  /** The subprotocol, which has a handler. */
  protocol: string
  /** The accepted permessage-deflate offer and the response header for it. */
  deflate: { params: DeflateParams, header: string } | undefined
}

/** What a new connection is told of its request, over either HTTP version (the rest is the server's). */
export type RequestDetails = Pick<DriverOptions, 'url' | 'headers' | 'remoteAddress' | 'remotePort' | 'httpVersion'> & {
  /** Bytes that arrived with the handshake, after its end: given to the connection's `start()`, once a handler is in place. */
  head?: Uint8Array
}

/** What the server lends its HTTP/2 side. */
export interface Http2Host {
  /** New WebSockets are accepted (not draining or closed). */
  accepting: () => boolean
  /** Origins, subprotocol and permessage-deflate; throws a {@link HandshakeError} to refuse. */
  negotiate: (request: ValidConnect) => Negotiated
  /** The server's `authorize` hook, if it has one. */
  authorize: ((request: Http2UpgradeRequest) => AuthorizeResult | Promise<AuthorizeResult>) | undefined
  /** Where a failing `authorize` is logged. */
  logger: Logger
  /** Time `authorize` gets before a 503, in ms. */
  handshakeTimeout: number
  /** The server's `closeTimeout`, in ms: it caps the time a peer gets to end its side of a stream. */
  closeTimeout: number
  /** The server's clock, for every timer here. */
  clock: Clock
  /** Most WebSockets open or being authorized on one HTTP/2 session. */
  maxStreamsPerSession: number
  /** The client's address as its connection would have it (`trustProxy` applied to `headers`). */
  addressOf: (headers: IncomingHttpHeaders, socketAddress: string | undefined) => string | undefined
  /** The server's memory budget: the window of a stream paused or awaiting `authorize` counts there (see {@link Http2Streams.countWindowWhilePaused}). */
  budget: MemoryBudget
  /** Make the connection on an accepted stream and start its handler. */
  open: (stream: ServerHttp2Stream, negotiated: Negotiated, details: RequestDetails) => WebSocketConnection
  /** Something `close()` waits for is gone. */
  wake: () => void
}

/**
 * What an HTTP/2 peer may send ahead on each stream (SETTINGS_INITIAL_WINDOW_SIZE, RFC 9113
 * §6.9.2): held by Node for a stream whose reading is paused, and counted in `memoryBudget`
 * then; the default 65,535 makes large messages wait a round trip per 64 KiB.
 */
const STREAM_WINDOW = 256 * 1024

/** How long an HTTP/2 peer has to end its side of a WebSocket stream after ours (capped by `closeTimeout`). */
const END_STREAM_GRACE = 1000

/**
 * How long a refused stream (its answer ended) is kept for the peer to read the answer and end
 * its side, as an HTTP/1.1 refusal's socket is (server.ts REFUSAL_LINGER): a peer that does
 * neither (a window it never opens, a side it never ends) would hold the stream for good.
 */
const REFUSAL_LINGER = 1000

/** The connection-level receive window of our own sessions. */
const SESSION_WINDOW = 16 * 1024 * 1024

/** Who sent an extended CONNECT: its headers and its session's socket's address, read when it came. */
interface Peer {
  readonly headers: IncomingHttpHeaders
  readonly address: string | undefined
  readonly port: number | undefined
}

/** A session we serve WebSockets on: how many are open, and whether it is to get GOAWAY once none is. */
interface SessionState {
  open: number
  /** Streams whose `authorize` is deciding: they count against `maxStreamsPerSession` too. */
  pending: number
  goAway: boolean
  /** Our own server's session with no stream open: dropped (before its first) or sent GOAWAY (after) past `handshakeTimeout`. */
  idleTimer: ClockTimer | undefined
}

/** The HTTP/2 side of one `WebSocketServer`. */
export class Http2Streams {
  private readonly host: Http2Host
  private readonly sessions = new Map<ServerHttp2Session, SessionState>()
  /** Streams whose `authorize` is deciding, with their timers and the window each counts in the budget. */
  readonly authorizing = new Map<ServerHttp2Stream, { timer: ClockTimer, window: number }>()
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
   * client must send its request within `handshakeTimeout`), or it is dropped; and whenever its
   * streams are all closed, open another within `timeout` ms, or it gets GOAWAY. `spent` ms of
   * the first wait are already gone (the TLS handshake's, counted from TCP accept).
   */
  adopt (session: ServerHttp2Session, timeout: number, spent = 0): void {
    // The connection-level window (RFC 9113 §6.9.2) is consumed as data arrives, so it bounds no
    // memory here (each stream's own window does): 65,535 bytes would only make large messages
    // wait a round trip per 64 KiB across all streams.
    session.once('localSettings', () => { if (!session.destroyed) session.setLocalWindowSize(SESSION_WINDOW) })
    const state = this.track(session)
    const clock = this.host.clock
    state.idleTimer = clock.setTimeout(destroySession, Math.max(0, timeout - spent), session)
    // Every stream counts (WebSockets, refusals, plain requests): a session with none open serves
    // nothing, and a peer must not keep it (a TLS socket, an HTTP/2 session) without end.
    // RFC 9113 §9.1 lets a server close an idle connection, GOAWAY first.
    let streams = 0
    session.on('stream', (stream: ServerHttp2Stream) => {
      streams++
      if (state.idleTimer !== undefined) {
        clock.clearTimeout(state.idleTimer)
        state.idleTimer = undefined
      }
      stream.once('close', () => {
        if (--streams === 0 && !session.closed && !session.destroyed) state.idleTimer = clock.setTimeout(closeSession, timeout, session)
      })
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
    if (session === undefined || socket === undefined || stream.destroyed) return true
    const request: Http2UpgradeRequest = { httpVersion: '2.0', method: 'CONNECT', url: String(headers[':path'] ?? '/'), headers, socket, stream }
    // Read now: once the session is gone (the peer left while `authorize` decided), its socket
    // throws on every property read (ERR_HTTP2_SOCKET_UNBOUND).
    const peer: Peer = { headers, address: socket.remoteAddress, port: socket.remotePort }
    const state = this.track(session as ServerHttp2Session)
    // One TCP connection must not carry WebSockets without bound: past the limit the stream is
    // refused with REFUSED_STREAM, which tells the client nothing was processed (RFC 9113 §8.7).
    if (state.open + state.pending >= this.host.maxStreamsPerSession) {
      stream.close(REFUSED_STREAM)
      return true
    }
    if (!this.host.accepting()) {
      this.refuse(stream, new HandshakeError(503, 'the server is shutting down'), peer)
      return true
    }
    let valid: ValidConnect
    let negotiated: Negotiated
    try {
      valid = validateConnectRequest(headers)
      // The stream is the WebSocket both ways (RFC 8441 §5): one whose request ended it
      // (END_STREAM on the HEADERS) could never carry a frame of the client's, its close included.
      if (stream.endAfterHeaders) throw new HandshakeError(400, 'an extended CONNECT must leave its stream open')
      negotiated = this.host.negotiate(valid)
    } catch (err) {
      this.refuse(stream, err instanceof HandshakeError ? err : new HandshakeError(400, 'bad extended CONNECT request'), peer)
      return true
    }
    const hook = this.host.authorize
    if (hook === undefined) {
      this.accept(stream, peer, valid, negotiated)
      return true
    }
    // Nothing reads the stream while `authorize` decides, yet Node takes what the peer sends on
    // it, up to its window: that much counts in the budget meanwhile (503 if it cannot).
    const window = windowOf(session as ServerHttp2Session)
    if (!this.host.budget.charge(window)) {
      this.host.budget.charge(-window)
      this.refuse(stream, new HandshakeError(503, 'the server is out of memory'), peer)
      return true
    }
    // RFC 8441 streams arrive whole; the handshake timer bounds `authorize` alone (then 503).
    state.pending++
    const timer = this.host.clock.setTimeout(() => {
      state.pending--
      this.endAuthorizing(stream)
      this.refuse(stream, new HandshakeError(503, 'authorization timed out'), peer)
    }, this.host.handshakeTimeout, undefined)
    this.authorizing.set(stream, { timer, window })
    void this.authorize(hook, request, peer.address).then((refusal) => {
      if (!this.endAuthorizing(stream)) return
      // The place is given back whether or not the stream is still there to answer: a stream
      // the peer reset meanwhile must not hold it for good.
      state.pending--
      if (stream.destroyed || stream.headersSent) return
      if (refusal !== undefined) this.refuse(stream, refusal, peer)
      else this.accept(stream, peer, valid, negotiated)
    })
    return true
  }

  /** Run `authorize`: resolves undefined to accept, or the refusal (500 for a hook that throws, logged). */
  private authorize (hook: NonNullable<Http2Host['authorize']>, request: Http2UpgradeRequest, remoteAddress: string | undefined): Promise<HandshakeError | undefined> {
    const logger = this.host.logger
    return Promise.resolve().then(() => hook(request)).then(
      (result) => authorizeRefusal(result, logger, remoteAddress),
      (err: unknown) => {
        logger.error({ err, remoteAddress }, 'authorize threw')
        return new HandshakeError(500, 'authorization failed')
      })
  }

  /** Stop waiting for `stream`'s `authorize` (its window leaves the budget); false if that wait was already over (timed out, or refused by `close()`). */
  private endAuthorizing (stream: ServerHttp2Stream): boolean {
    const waiting = this.authorizing.get(stream)
    if (waiting === undefined) return false
    this.host.clock.clearTimeout(waiting.timer)
    this.authorizing.delete(stream)
    this.host.budget.charge(-waiting.window)
    this.host.wake()
    return true
  }

  private accept (stream: ServerHttp2Stream, peer: Peer, valid: ValidConnect, negotiated: Negotiated): void {
    if (stream.destroyed || stream.headersSent) return
    if (!this.host.accepting() && !this.draining) {
      this.refuse(stream, new HandshakeError(503, 'the server is shutting down'), peer)
      return
    }
    const session = stream.session as ServerHttp2Session
    // RFC 8441 §5: "it MUST respond with a 200 (OK) status code"; the stream stays open.
    stream.respond(buildConnectResponse(negotiated.protocol, negotiated.deflate?.header, valid.key === undefined ? undefined : acceptFor(valid.key)))
    cancelOnDestroy(stream)
    const conn = this.host.open(stream, negotiated, {
      url: valid.url,
      headers: streamHeaders(peer.headers),
      remoteAddress: this.host.addressOf(peer.headers, peer.address),
      remotePort: peer.port,
      httpVersion: '2'
    })
    stream.off('error', ignoreError)
    this.countWindowWhilePaused(stream, session, conn)
    const state = this.track(session)
    state.open++
    // After our END_STREAM (the closing handshake done) the peer should end its side too; a
    // peer that does not (undici) would hold the stream to closeTimeout. RFC 9113 §8.1 lets a
    // server that has sent a complete response ask the client to stop with RST_STREAM NO_ERROR.
    const clock = this.host.clock
    let linger: ClockTimer | undefined
    stream.once('finish', () => {
      if (!stream.readableEnded && !stream.closed) linger = clock.setTimeout(stopStream, Math.min(END_STREAM_GRACE, this.host.closeTimeout), stream)
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

  /**
   * While the connection holds `stream`'s reading paused, Node still takes what the peer sends on
   * it, up to the stream's window, into the stream's own buffer: one TCP connection could make
   * the server hold `maxStreamsPerSession` windows beyond every queue the budget counts. So a
   * paused stream counts its whole window (the most Node may hold for it; its real use cannot
   * be seen until it is read) in `memoryBudget`, and gives it back on resuming or closing. A
   * pause the budget cannot cover fails that connection with 1013, as any other growth does.
   */
  private countWindowWhilePaused (stream: ServerHttp2Stream, session: ServerHttp2Session, conn: WebSocketConnection): void {
    const window = windowOf(session)
    const budget = this.host.budget
    let charged = false
    // 'pause' and 'resume' can come unpaired (Node emits 'resume' a tick after resume(), whatever
    // came between): each one re-reads the state.
    const onFlow = (): void => {
      const paused = stream.readableFlowing === false && !stream.destroyed
      if (paused === charged) return
      charged = paused
      if (!paused) {
        budget.charge(-window)
        return
      }
      // Failed from a microtask: the pause came from inside the driver's own bookkeeping.
      if (!budget.charge(window)) queueMicrotask(() => { if (!conn.gone) { conn.failForBudget(window); stream.close(CANCEL) } })
    }
    stream.on('pause', onFlow)
    stream.on('resume', onFlow)
    stream.once('close', () => {
      if (charged) budget.charge(-window)
      charged = false
    })
  }

  /** Answer `error` on the stream: its status, a one-line body, END_STREAM. */
  refuse (stream: ServerHttp2Stream, error: HandshakeError, peer: Peer | undefined): void {
    if (stream.destroyed || stream.headersSent) return
    if (handshakeRefusedChannel.hasSubscribers) publishRefused(error.status, error.message, peer === undefined ? undefined : this.host.addressOf(peer.headers, peer.address))
    const body = rejectBody(error.message)
    stream.respond(buildRefusalHeaders(error, Buffer.byteLength(body)))
    stream.end(body)
    this.linger(stream)
  }

  /**
   * A refused stream's answer is ended: past {@link REFUSAL_LINGER} a stream still open is reset,
   * with NO_ERROR if the answer was all sent (RFC 9113 §8.1: the client may stop sending its
   * request), else CANCEL.
   */
  linger (stream: ServerHttp2Stream): void {
    if (stream.closed) return
    const clock = this.host.clock
    const timer = clock.setTimeout(resetRefused, REFUSAL_LINGER, stream)
    stream.once('close', () => { clock.clearTimeout(timer) })
  }

  /** A plain HTTP/2 request to our own server: WebSockets here are opened with an extended CONNECT (RFC 8441), so 405. */
  refusePlainRequest (res: ServerResponse): void {
    const body = rejectBody('this is a WebSocket endpoint: open it with an extended CONNECT (RFC 8441)')
    res.writeHead(405, { Allow: 'CONNECT', 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) })
    res.end(body)
    // An HTTP/2 request's response, from Node's compatibility layer.
    this.linger((res as unknown as Http2ServerResponse).stream)
  }

  private track (session: ServerHttp2Session): SessionState {
    let state = this.sessions.get(session)
    if (state === undefined) {
      state = { open: 0, pending: 0, goAway: false, idleTimer: undefined }
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
    for (const stream of [...this.authorizing.keys()]) {
      this.endAuthorizing(stream)
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

  /**
   * The server `listen({ tls })` makes: HTTP/2 and HTTP/1.1 on one port, by ALPN. Its sessions
   * are adopted: each must open a stream within `handshakeTimeout` of its TCP accept (`spent`
   * says how long ago that was for a session's TLS socket).
   */
  createServer (create: typeof createSecureServer, maxHeaderSize: number, handshakeTimeout: number, tls: ListenTlsOptions, spent: (socket: Socket) => number): Http2SecureServer {
    // SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3) lets clients open WebSockets on their HTTP/2
    // connection; SETTINGS_MAX_CONCURRENT_STREAMS tells them how many (they queue the rest).
    const settings = { enableConnectProtocol: true, maxHeaderListSize: maxHeaderSize, initialWindowSize: STREAM_WINDOW, maxConcurrentStreams: this.host.maxStreamsPerSession }
    const server = create({ allowHTTP1: true, handshakeTimeout, settings, ...tls })
    // The HTTP/1.1 side of the port is Node's HTTP server code run on this server, which reads
    // `maxHeaderSize` from it (http2.createSecureServer does not take the option).
    ;(server as unknown as { maxHeaderSize: number }).maxHeaderSize = maxHeaderSize
    // As an HTTP/1.1 client must send its request within handshakeTimeout.
    server.on('session', (session: ServerHttp2Session) => { this.adopt(session, handshakeTimeout, spent(session.socket)) })
    return server
  }

  /**
   * Serve extended CONNECTs for `path` (every path if undefined) arriving at `server` if it is
   * an `http2` host; returns the listeners, which `detach` removes.
   */
  attach (server: object, path: string | undefined): ReturnType<typeof http2Listeners> {
    const refuse = (stream: ServerHttp2Stream): void => this.refuse(stream, new HandshakeError(404, 'no WebSocket endpoint at this path'), undefined)
    const listeners = http2Listeners(server, path, (stream, headers) => this.handle(stream, headers), refuse, (stream) => { this.linger(stream) })
    if (isHttp2Host(server)) {
      // RFC 8441 §3: clients open WebSockets on an HTTP/2 connection only where the server said so.
      server.updateSettings({ enableConnectProtocol: true })
      server.on('stream', listeners.streamListener)
      server.on('connect', listeners.connectListener)
    }
    return listeners
  }

  /** `listen` or `attach` after a `close()`. */
  reopen (): void {
    this.draining = false
  }
}

function ignoreError (): void {}

/** What a peer may send ahead on each stream of `session` (its SETTINGS_INITIAL_WINDOW_SIZE as we sent it). */
function windowOf (session: ServerHttp2Session): number {
  return session.localSettings?.initialWindowSize ?? 65_535
}

function destroySession (session: ServerHttp2Session): void { session.destroy() }

/** GOAWAY (NO_ERROR); Node ends the session once it is sent, no stream being open. */
function closeSession (session: ServerHttp2Session): void { session.close() }

function resetRefused (stream: ServerHttp2Stream): void {
  if (!stream.closed) stream.close(stream.writableFinished ? NO_ERROR : CANCEL)
}

/** RFC 9113 §8.1: after a complete response, RST_STREAM NO_ERROR asks the client to stop sending. */
function stopStream (stream: ServerHttp2Stream): void { stream.close(NO_ERROR) }

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
 * answering them 405, while a plain CONNECT still gets 405 if the host has no listener of its own
 * (its stream then given to `answered`).
 */
export function http2Listeners (server: Http2SecureServer | Http2Server | object, path: string | undefined, take: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void, refuse: (stream: ServerHttp2Stream) => void, answered: (stream: ServerHttp2Stream) => void): { streamListener: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void, connectListener: (req: IncomingMessage, res: ServerResponse) => void } {
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
    answered((res as unknown as Http2ServerResponse).stream)
  }
  return { streamListener, connectListener }
}
