/**
 * `WebSocketServer`: one handler per subprotocol, three ways in (`listen`, `attach`,
 * `handleUpgrade`), limits, authorization, origin checks, heartbeats and shutdown.
 *
 * @example
 * ```ts
 * const server = new WebSocketServer()
 * server.register('echo', ({ source, sink }) => sink(source))
 * await server.listen({ port: 8080 })
 * ```
 *
 * @packageDocumentation
 */

import { createServer as createHttpServer, ServerResponse, type IncomingMessage, type Server as HttpServer } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { Http2SecureServer, IncomingHttpHeaders as Http2Headers, ServerHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'
import type { Duplex as NodeDuplex } from 'node:stream'
import { acceptFor } from './crypto.js'
import { HandshakeError, InvalidStateError } from './errors.js'
import { buildAcceptResponse, buildRejectResponse, noHandlerReason, originForm, rejectBody, selectProtocol, validateUpgradeRequest } from './handshake.js'
import { acceptDeflateOffer, type DeflateParams } from './extensions/deflate-negotiation.js'
import { PerMessageDeflate } from './extensions/permessage-deflate.js'
import { resolveDeflateOptions, type ResolvedDeflateOptions } from './extensions/deflate-options.js'
import { CloseCode } from './protocol/close-codes.js'
import { Topics } from './topics/topics.js'
import { handshakeRefusedChannel, publishRefused } from './diagnostics.js'
import { Http2Streams, type Negotiated, type RequestDetails } from './http2/server.js'
import { isTlsServer, loadHttp2, loadHttps } from './lazy-modules.js'
import { authorizeRefusal } from './authorize.js'
import { checkListenOptions, checkMaxConnections, DEFAULT_SERVER_OPTIONS, stderrLogger, type HostServer, type ListenOptions, type ServerStats, type WebSocketServerOptions, type WholeModeOptions } from './server-options.js'
import type { Transport } from './driver/transport.js'
import type { ValidConnect } from './http2/handshake.js'
import { systemClock, type Clock, type ClockTimer } from './driver/clock.js'
import { runHandler, type Handler, type StreamHandler } from './handler.js'
import { applicationHeaders, forwardedFor, pathOf } from './upgrade-request.js'
import { bytesReadOf, TlsHandshakes } from './tls-handshakes.js'
import { WebSocketConnection } from './driver/connection.js'
import { MemoryBudget } from './driver/budget.js'
import { checkNonNegative, resolveLimits, type Connection, type ResolvedLimits, type Logger, type StreamConnection, type StreamModeOptions } from './driver/types.js'

export type { AuthorizeResult } from './authorize.js'
export { DEFAULT_SERVER_OPTIONS, type HostServer, type ListenOptions, type ListenTlsOptions, type ServerStats, type WebSocketServerOptions, type WholeModeOptions } from './server-options.js'

/** A registered handler and how its messages come. */
interface Registration {
  handler: Handler | StreamHandler
  /** Stream mode, with its own message limit if given (else the server's); undefined for whole messages. */
  stream: { maxMessageSize?: number } | undefined
}

/** A WebSocket server in which every connection is an async-iterable duplex. */
export class WebSocketServer {
  private readonly options: WebSocketServerOptions
  private readonly handlers = new Map<string, Registration>()
  private readonly connections = new Set<WebSocketConnection>()
  /** Sockets that have connected but not finished the handshake, with their timers. */
  private readonly pending = new Map<NodeDuplex, ClockTimer>()
  /** TCP sockets of our own HTTPS server still in the TLS handshake: the handshake timer runs from their accept, and `close()` lets them finish too. */
  private readonly tlsHandshakes: TlsHandshakes
  /** Pending sockets whose request is whole and `authorize` is deciding: past a timer they get 503. */
  private readonly authorizing = new Set<NodeDuplex>()
  /** One 'close' listener shared by every pending socket, removed once its handshake is over. */
  private readonly pendingSocketClosed: (this: NodeDuplex) => void
  /** One handshake-timer callback for every pending socket (given the socket), not a closure per socket. */
  private readonly handshakeExpired: (socket: NodeDuplex) => void
  private readonly logger: Logger
  private readonly attached: Array<{ server: HostServer, listener: (...args: any[]) => void, connectionListener: (socket: NodeDuplex) => void, requestListener: (req: IncomingMessage) => void, streamListener: (stream: ServerHttp2Stream, headers: Http2Headers) => void, connectListener: (req: IncomingMessage, res: ServerResponse) => void }> = []
  private httpServer: HttpServer | HttpsServer | Http2SecureServer | undefined
  /** Extended CONNECT streams and the HTTP/2 sessions they run on. */
  private readonly h2: Http2Streams
  private readonly resolved: ResolvedLimits
  private readonly budget: MemoryBudget
  private readonly deflate: ResolvedDeflateOptions | undefined
  /** Where every timer of the server runs (the `clock` option). */
  private readonly clock: Clock
  private readonly forget = (conn: WebSocketConnection): void => {
    this.connections.delete(conn)
    this.wakeDrain?.()
  }
  private ownTopics: Topics | undefined
  private readonly trustedProxies: number
  /**
   * `open` until `close()`; `draining` while handshakes already under way may still finish;
   * `closing` once what is left is being dropped; `closed` once `close()` resolved, until
   * `listen` or `attach` opens it again.
   */
  private state: 'open' | 'draining' | 'closing' | 'closed' = 'open'
  /** The `close()` under way, which a second call joins. */
  private closeUnderWay: Promise<void> | undefined
  /** Wakes `close()` when a connection or a pending handshake is gone. */
  private wakeDrain: (() => void) | undefined

  /**
   * A server with no handlers yet ({@link WebSocketServer.register} adds them) that listens
   * nowhere until {@link WebSocketServer.listen}, {@link WebSocketServer.attach} or
   * {@link WebSocketServer.handleUpgrade}. Options are checked here.
   * @throws RangeError for a `memoryBudget` that is not a positive number, a `maxMessageSize` or
   * `maxFrameSize` under 1 byte, a `perMessageDeflate` option out of range, or a `trustProxy` or
   * `maxConnections` that is not a count (`trustProxy` may be a boolean, `maxConnections` Infinity),
   * or a `handshakeTimeout` (or a mark or timeout of the connections') under 0 or NaN.
   */
  constructor (options: WebSocketServerOptions = {}) {
    this.options = options
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const server = this
    this.pendingSocketClosed = function (this: NodeDuplex) { server.clearHandshakeTimer(this) }
    this.handshakeExpired = (socket) => { this.onHandshakeExpired(socket) }
    this.logger = options.logger ?? stderrLogger
    const clock = this.clock = options.clock ?? systemClock
    this.tlsHandshakes = new TlsHandshakes(clock, () => this.wakeDrain?.())
    this.resolved = resolveLimits(options)
    this.budget = new MemoryBudget(options.memoryBudget ?? DEFAULT_SERVER_OPTIONS.memoryBudget)
    this.deflate = resolveDeflateOptions(options.perMessageDeflate, 'server', clock)
    const trust = options.trustProxy ?? false
    this.trustedProxies = trust === true ? 1 : trust === false ? 0 : trust
    if (!Number.isInteger(this.trustedProxies) || this.trustedProxies < 0) throw new RangeError('trustProxy must be a boolean or a count of proxies')
    checkMaxConnections(options.maxConnections)
    checkNonNegative('handshakeTimeout', options.handshakeTimeout)
    this.h2 = new Http2Streams({
      accepting: () => this.state === 'open',
      negotiate: (request) => this.negotiate(request),
      authorize: options.authorize,
      logger: this.logger,
      handshakeTimeout: options.handshakeTimeout ?? DEFAULT_SERVER_OPTIONS.handshakeTimeout,
      closeTimeout: this.resolved.closeTimeout,
      clock, budget: this.budget,
      maxStreamsPerSession: options.maxStreamsPerSession ?? DEFAULT_SERVER_OPTIONS.maxStreamsPerSession,
      addressOf: (headers, socketAddress) => this.forwardedOr(headers, socketAddress),
      open: (stream, negotiated, details) => this.start(stream, negotiated, details),
      wake: () => this.wakeDrain?.()
    })
  }

  /**
   * This server's topics (made on first use, with the `topics` options): subscriptions' queues
   * count against the server's `memoryBudget`. See {@link Topics}.
   */
  get topics (): Topics {
    if (this.ownTopics === undefined) {
      this.ownTopics = new Topics(this.options.topics)
      this.ownTopics.budget = this.budget
    }
    return this.ownTopics
  }

  /**
   * Serve `protocol` with `handler`. `''` serves clients that offer no subprotocol.
   *
   * With `{ messages: 'stream' }` the handler's `source` yields each message as a
   * {@link ReceivedStream} (its type, and its bytes as they arrive), so a message far larger than
   * memory passes through: `maxMessageSize` there is the streamed limit (default: the server's).
   * Connections of a stream-mode handler do not negotiate permessage-deflate (it inflates whole
   * messages).
   */
  register (protocol: string, handler: StreamHandler, options: StreamModeOptions): this
  register (protocol: string, handler: Handler, options?: WholeModeOptions): this
  register (protocol: string, handler: Handler | StreamHandler, options: WholeModeOptions | StreamModeOptions = {}): this {
    if (typeof handler !== 'function') throw new TypeError('a handler must be a function')
    const mode = options.messages ?? 'whole'
    if (mode !== 'whole' && mode !== 'stream') throw new TypeError(`messages must be 'whole' or 'stream', not ${String(mode)}`)
    let stream: Registration['stream']
    if (mode === 'stream') {
      const max = (options as StreamModeOptions).maxMessageSize
      if (max !== undefined && !(max > 0)) throw new RangeError('maxMessageSize must be a positive number of bytes (or Infinity)')
      // Without one, the driver falls back to the server's maxMessageSize.
      stream = { maxMessageSize: max }
    }
    this.handlers.set(protocol, { handler, stream })
    return this
  }

  /** Open connections (a stream-mode handler's are {@link StreamConnection}s). */
  get clients (): ReadonlySet<Connection | StreamConnection> {
    return this.connections as ReadonlySet<unknown> as ReadonlySet<Connection | StreamConnection>
  }

  /** Open connections and the memory held for them. */
  stats (): ServerStats {
    return { connections: this.connections.size, heldBytes: this.budget.used, memoryBudget: this.budget.limit }
  }

  /**
   * Start an HTTP (or, with `tls`, HTTPS) server of our own. Resolves once it listens. A closed
   * server may listen again; while `close()` is under way this rejects. Rejects with a TypeError
   * for `listen(8080)` (write `listen({ port: 8080 })`), a RangeError for a port not in 0–65535.
   */
  async listen (options: ListenOptions = {}): Promise<AddressInfo> {
    checkListenOptions(options)
    // TLS and HTTP/2 code is loaded only for a server that uses it (src/lazy-modules.ts).
    const https = options.tls !== undefined && options.http2 === false ? await loadHttps() : undefined
    const http2 = options.tls !== undefined && options.http2 !== false ? await loadHttp2() : undefined
    this.reopen()
    if (this.httpServer !== undefined) throw new InvalidStateError('the server is already listening')
    const maxHeaderSize = this.options.maxHeaderSize ?? DEFAULT_SERVER_OPTIONS.maxHeaderSize
    const serverOptions = { maxHeaderSize }
    // Node's own TLS handshake timeout (120 s by default) follows handshakeTimeout too.
    const handshakeTimeout = this.options.handshakeTimeout ?? DEFAULT_SERVER_OPTIONS.handshakeTimeout
    const server = options.tls === undefined
      ? createHttpServer(serverOptions)
      : https !== undefined
        ? https.createServer({ ...serverOptions, handshakeTimeout, ...options.tls })
        // HTTP/2 and HTTP/1.1 on one port, by ALPN.
        : this.h2.createServer(http2!.createSecureServer, maxHeaderSize, handshakeTimeout, options.tls, (socket) => this.tlsHandshakes.spent(socket))
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.httpVersionMajor === 2) {
        this.h2.refusePlainRequest(res)
        return
      }
      // A WebSocket handshake that Node did not treat as an upgrade (e.g. its Connection header
      // lacks "Upgrade") is malformed: RFC 6455 §4.2.1 asks for 400 (or 426 for the version).
      let refusal: HandshakeError | undefined
      if (req.headers.upgrade !== undefined || req.headers['sec-websocket-key'] !== undefined) {
        try {
          validateUpgradeRequest(req)
        } catch (err) {
          if (err instanceof HandshakeError) refusal = err
        }
      }
      if (refusal !== undefined && handshakeRefusedChannel.hasSubscribers) publishRefused(refusal.status, refusal.message, this.addressOf(req.socket, req))
      // A plain HTTP request is not ours to serve.
      refusal ??= new HandshakeError(426, 'this is a WebSocket endpoint', { Upgrade: 'websocket' })
      const body = rejectBody(refusal.message)
      res.writeHead(refusal.status, { ...refusal.headers, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), Connection: 'close' })
      res.end(body)
    })
    this.httpServer = server as HttpServer | HttpsServer | Http2SecureServer
    // close() before the server listened cancels the listen silently: no 'listening', no 'error'.
    const closedEarly = (): void => { server.emit('error', new Error('the server was closed before it listened')) }
    server.once('close', closedEarly)
    if (options.tls !== undefined) {
      server.on('connection', (raw: NodeDuplex) => { this.tlsHandshakes.add(raw) })
    }
    this.attach(server)
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
          server.off('error', reject)
          server.off('close', closedEarly)
          resolve()
        })
      })
    } catch (err) {
      // E.g. EADDRINUSE: forget that server, so that listen() can be tried again.
      server.off('close', closedEarly)
      this.detach(server)
      if (this.httpServer === server) this.httpServer = undefined
      throw err
    }
    return server.address() as AddressInfo
  }

  /** The address `listen` bound, if listening. */
  address (): AddressInfo | undefined {
    const a = this.httpServer?.address()
    return a !== null && typeof a === 'object' ? a : undefined
  }

  /**
   * Serve upgrades arriving at an existing HTTP or HTTPS server; with `path`, only that path (a
   * target in absolute-form is matched by its path). A closed server may attach again; while
   * `close()` is under way this throws.
   */
  attach (server: HostServer, options: { path?: string } = {}): this {
    this.reopen()
    const listener = (req: IncomingMessage, socket: NodeDuplex, head: Buffer): void => {
      // RFC 7230 §5.3.2: `GET http://host/chat` is a request for /chat.
      const target = originForm(req.url ?? '/')
      const path = target === undefined ? undefined : pathOf(target)
      // (The other path's work is a method: a closure here would cost a context per upgrade.)
      if (options.path !== undefined && path !== options.path) this.otherPath(server, listener, req, socket, path)
      else this.handleUpgrade(req, socket, head)
    }
    // Only our own server's sockets are ours from accept: an attached host's serve pages too,
    // under the host's own timeouts, and become ours at their upgrade request. One accepted
    // before close() (our server stopped listening then) may still finish its handshake.
    const connectionListener = (socket: NodeDuplex): void => {
      if (server !== this.httpServer) return
      // handshakeTimeout runs from TCP accept: what TLS took is spent.
      const spent = this.tlsHandshakes.take(socket)
      // An HTTP/2 connection is a session: its own timer is in `h2.adopt`.
      if ((socket as { alpnProtocol?: string | false }).alpnProtocol === 'h2') return
      if (this.state === 'open' || this.state === 'draining') this.startHandshakeTimer(socket, spent)
    }
    // A plain HTTP request on the connection is the host server's to serve, for as long as it
    // takes: the handshake timer no longer applies to that socket.
    const requestListener = (req: IncomingMessage): void => { this.clearHandshakeTimer(req.socket) }
    attachedPaths.set(listener, options.path)
    server.on('upgrade', listener)
    server.on(isTlsServer(server) ? 'secureConnection' : 'connection', connectionListener)
    server.on('request', requestListener)
    // HTTP/2: extended CONNECT streams for our path; the host serves every other request.
    const { streamListener, connectListener } = this.h2.attach(server, options.path)
    this.attached.push({ server, listener, connectionListener, requestListener, streamListener, connectListener })
    return this
  }

  /**
   * An upgrade for a path `listener` (attached to `server`) does not serve: leave it to another
   * upgrade listener; if none will take it (only wspipe listeners, none for this path), the
   * first of them refuses it: never a silent drop.
   */
  private otherPath (server: HostServer, listener: (...args: any[]) => void, req: IncomingMessage, socket: NodeDuplex, path: string | undefined): void {
    // Another path: our handshake timer is not the one to drop this socket any more.
    this.clearHandshakeTimer(socket)
    const listeners = server.listeners('upgrade') as Array<(...args: any[]) => void>
    const taken = listeners.some((l) => {
      if (!attachedPaths.has(l)) return true
      const p = attachedPaths.get(l)
      return p === undefined || p === path
    })
    if (!taken && listeners.find((l) => attachedPaths.has(l)) === listener) {
      const refuse = (): void => this.reject(socket, new HandshakeError(404, 'no WebSocket endpoint at this path'), req)
      if (!this.afterEarlierResponses(socket, refuse)) refuse()
    }
  }

  /**
   * Take over an upgrade request from any server that exposes Node's `upgrade` event (Express,
   * Fastify, plain `http`): validates it, answers 101 or an HTTP error, and runs the handler.
   */
  handleUpgrade (req: IncomingMessage, socket: NodeDuplex, head: Uint8Array = new Uint8Array(0)): void {
    // Whatever the answer, it waits for the responses to requests pipelined before this one.
    // (The retry is made only then: this function makes no closure, and so no context, per upgrade.)
    if (earlierResponse(socket) !== undefined && this.afterEarlierResponses(socket, retryUpgrade.bind(this, req, socket, head))) return
    // A socket accepted before close() may still finish its handshake: it then gets 1001 like
    // every other connection, not a reset. A new one while closing is refused.
    const underWay = this.pending.has(socket)
    this.clearHandshakeTimer(socket)
    socket.on('error', ignoreError)
    if (this.state !== 'open' && !(this.state === 'draining' && underWay)) {
      this.reject(socket, new HandshakeError(503, 'the server is shutting down'), req)
      return
    }
    let key: string
    let url: string
    let negotiated: Negotiated
    try {
      const upgrade = validateUpgradeRequest(req)
      key = upgrade.key
      url = upgrade.url
      negotiated = this.negotiate(upgrade)
    } catch (err) {
      this.reject(socket, err instanceof HandshakeError ? err : new HandshakeError(400, 'bad upgrade request'), req)
      return
    }
    if (this.options.authorize === undefined) this.accept(req, socket, head, key, negotiated.protocol, url, negotiated.deflate)
    else this.authorizeUpgrade(req, socket, head, key, url, negotiated)
  }

  /** Run `authorize` on a valid upgrade, then answer it. */
  private authorizeUpgrade (req: IncomingMessage, socket: NodeDuplex, head: Uint8Array, key: string, url: string, { protocol: chosen, deflate }: Negotiated): void {
    const authorize = this.options.authorize!
    // The handshake timer runs again while authorization is pending.
    this.startHandshakeTimer(socket)
    this.authorizing.add(socket)
    Promise.resolve().then(() => authorize(req)).then((result) => {
      this.clearHandshakeTimer(socket)
      // Already answered (timed out, or the server closed) or gone.
      if (socket.destroyed || socket.writableEnded) return
      const refusal = authorizeRefusal(result, this.logger, (socket as { remoteAddress?: string }).remoteAddress)
      if (refusal === undefined) this.accept(req, socket, head, key, chosen, url, deflate)
      else this.reject(socket, refusal, req)
    }, (err: unknown) => {
      this.clearHandshakeTimer(socket)
      if (socket.destroyed || socket.writableEnded) return
      this.logger.error({ err, remoteAddress: (socket as { remoteAddress?: string }).remoteAddress }, 'authorize threw')
      this.reject(socket, new HandshakeError(500, 'authorization failed'), req)
    })
  }

  /**
   * What a valid request gets, over either HTTP version: its origin checked, a subprotocol
   * with a handler, and permessage-deflate if offered and on. Throws the refusal.
   */
  private negotiate (upgrade: { protocols: string[], extensions: ValidConnect['extensions'], origin: string | undefined }): Negotiated {
    const origins = this.options.origins
    if (origins !== undefined && upgrade.origin !== undefined && !origins.includes(upgrade.origin)) {
      throw new HandshakeError(403, 'origin not allowed')
    }
    const protocol = selectProtocol(upgrade.protocols, (p) => this.handlers.has(p))
    if (protocol === undefined) {
      throw new HandshakeError(400, noHandlerReason(upgrade.protocols))
    }
    // Upgrades awaiting `authorize` (either HTTP version) count too, so a slow hook lets no burst past.
    if (this.connections.size + this.authorizing.size + this.h2.authorizing.size >= (this.options.maxConnections ?? Infinity)) throw new HandshakeError(503, 'too many connections')
    let deflate: { params: DeflateParams, header: string } | undefined
    // The shared compressor never keeps our context: say so (RFC 7692 §7.1.1.1). A streamed
    // message is never whole, and permessage-deflate inflates whole messages: not offered then.
    if (this.deflate !== undefined && this.handlers.get(protocol)!.stream === undefined) deflate = acceptDeflateOffer(upgrade.extensions, this.deflate.sharedCompressor ? { ...this.deflate.request, serverNoContextTakeover: true } : this.deflate.request)
    return { protocol, deflate }
  }

  /**
   * Serve an HTTP/2 stream from a host's `stream` event if it is an extended CONNECT for a
   * WebSocket (RFC 8441): answers 200 and runs the handler, or refuses on the stream (400, 403,
   * 501, 503, …). Returns false for any other request, which is the host's to answer.
   * `listen({ tls })` and `attach` call it themselves.
   */
  handleStream (stream: ServerHttp2Stream, headers: Http2Headers): boolean {
    return this.h2.handle(stream, headers)
  }

  /** Make the connection on an accepted transport (the 101 or the 200 is sent) and start its handler. */
  private start (transport: Transport, negotiated: Negotiated, details: RequestDetails): WebSocketConnection {
    const { handler, stream } = this.handlers.get(negotiated.protocol)!
    const deflate = negotiated.deflate
    const conn = new WebSocketConnection(transport, {
      role: 'server',
      protocol: negotiated.protocol,
      url: details.url,
      headers: details.headers,
      remoteAddress: details.remoteAddress,
      remotePort: details.remotePort,
      httpVersion: details.httpVersion,
      clock: this.options.clock,
      logger: this.logger,
      limits: this.options,
      resolved: this.resolved,
      budget: this.budget,
      compression: deflate === undefined ? undefined : new PerMessageDeflate('server', deflate.params, this.deflate!),
      stream
    })
    this.connections.add(conn)
    conn.onClosed = this.forget
    runHandler(handler, conn, this.logger)
    // Frames that came with the request are read once the handler is in place, as later ones are.
    conn.start(details.head)
    return conn
  }

  /** The client's address: by `X-Forwarded-For` under `trustProxy`, else `fallback`. */
  private forwardedOr (headers: IncomingMessage['headers'], fallback: string | undefined): string | undefined {
    return (this.trustedProxies > 0 ? forwardedFor(headers['x-forwarded-for'], this.trustedProxies) : undefined) ?? fallback
  }

  /** Answer 101 and start the handler; `url` is the target in origin-form. */
  private accept (req: IncomingMessage, socket: NodeDuplex, head: Uint8Array, key: string, protocol: string, url: string, deflate: { params: DeflateParams, header: string } | undefined): void {
    if (socket.destroyed) return
    if (this.state !== 'open' && this.state !== 'draining') {
      this.reject(socket, new HandshakeError(503, 'the server is shutting down'), req)
      return
    }
    socket.write(buildAcceptResponse(acceptFor(key), protocol, deflate === undefined ? undefined : { 'Sec-WebSocket-Extensions': deflate.header }))
    socket.off('error', ignoreError)
    // TCP only: frames leave at once (no Nagle delay), and the connection's own timers replace Node's idle timeout.
    const tcp = socket as NodeDuplex & { setNoDelay?: (v: boolean) => void, setTimeout?: (ms: number) => void, remotePort?: number }
    tcp.setNoDelay?.(true)
    tcp.setTimeout?.(0)
    const conn = this.start(socket, { protocol, deflate }, { url, headers: applicationHeaders(req.headers), remoteAddress: this.addressOf(socket, req), remotePort: tcp.remotePort, head })
    if (this.state === 'draining') conn.close(CloseCode.GoingAway, 'server shutting down')
  }

  private reject (socket: NodeDuplex, error: HandshakeError, req?: IncomingMessage): void {
    this.clearHandshakeTimer(socket)
    if (socket.destroyed) return
    if (handshakeRefusedChannel.hasSubscribers) publishRefused(error.status, error.message, this.addressOf(socket, req))
    socket.on('error', ignoreError)
    socket.end(buildRejectResponse(error.status, error.message, error.headers))
    // Do not wait forever for the client to read the refusal (nor keep a timer for a socket gone).
    const clock = this.clock
    const timer = clock.setTimeout(destroySocket, REFUSAL_LINGER, socket)
    socket.once('close', () => { clock.clearTimeout(timer) })
  }

  /**
   * RFC 9112 §9.3.2: responses go out in the order of their requests, so nothing may be written
   * for an upgrade while the host still owes a response to a request pipelined before it. If it
   * does, this holds the socket (under the handshake timer), calls `then` once every such
   * response is finished, and returns true. If one of them ends the connection (`Connection:
   * close`), no request after it is answered: `then` is never called and the socket closes.
   */
  private afterEarlierResponses (socket: NodeDuplex, then: () => void): boolean {
    const owed = earlierResponse(socket)
    if (owed === undefined) return false
    // Node's http server let go of the socket at the upgrade, and its error listener with it.
    socket.on('error', ignoreError)
    if (!this.pending.has(socket)) this.startHandshakeTimer(socket)
    const finished = (): void => {
      owed.off('finish', finished)
      owed.off('close', finished)
      socket.off('error', ignoreError)
      // Node's own 'finish' listener, added first, has by now handed the socket to the next
      // response or begun to end it. A socket ending or gone clears its timer as it closes.
      if (socket.destroyed || socket.writableEnded) {
        socket.on('error', ignoreError)
        return
      }
      if (!this.afterEarlierResponses(socket, then)) then()
    }
    owed.on('finish', finished)
    owed.on('close', finished)
    return true
  }

  /** The client's address as its connection would have it: by `X-Forwarded-For` under `trustProxy`, else the socket's. */
  private addressOf (socket: NodeDuplex, req: IncomingMessage | undefined): string | undefined {
    const forwarded = req !== undefined && this.trustedProxies > 0 ? forwardedFor(req.headers['x-forwarded-for'], this.trustedProxies) : undefined
    return forwarded ?? (socket as { remoteAddress?: string }).remoteAddress
  }

  /** Start (or restart) `socket`'s handshake timer, `spent` ms of it already gone. */
  private startHandshakeTimer (socket: NodeDuplex, spent = 0): void {
    const ms = Math.max(0, (this.options.handshakeTimeout ?? DEFAULT_SERVER_OPTIONS.handshakeTimeout) - spent)
    const clock = this.clock
    const timer = clock.setTimeout(this.handshakeExpired, ms, socket)
    const previous = this.pending.get(socket)
    if (previous !== undefined) clock.clearTimeout(previous)
    else socket.on('close', this.pendingSocketClosed)
    this.pending.set(socket, timer)
  }

  /** `socket`'s handshake timer fired. */
  private onHandshakeExpired (socket: NodeDuplex): void {
    if (this.authorizing.has(socket)) {
      // The client's request was whole; it is the server that is late: say so.
      this.logger.warn({ remoteAddress: (socket as { remoteAddress?: string }).remoteAddress }, 'authorize did not settle within handshakeTimeout: answered 503')
      this.reject(socket, new HandshakeError(503, 'authorization timed out'))
      return
    }
    this.pending.delete(socket)
    socket.destroy()
    this.wakeDrain?.()
  }

  private clearHandshakeTimer (socket: NodeDuplex): void {
    const timer = this.pending.get(socket)
    if (timer !== undefined) {
      this.clock.clearTimeout(timer)
      this.pending.delete(socket)
      this.authorizing.delete(socket)
      socket.off('close', this.pendingSocketClosed)
      this.wakeDrain?.()
    }
  }

  /** Remove the listeners `attach` put on `server`. */
  private detach (server: HostServer): void {
    for (let i = this.attached.length - 1; i >= 0; i--) {
      const a = this.attached[i]
      if (a.server !== server) continue
      server.off('request', a.requestListener)
      server.off('upgrade', a.listener)
      server.off('connection', a.connectionListener)
      server.off('secureConnection', a.connectionListener)
      server.off('stream', a.streamListener)
      server.off('connect', a.connectListener)
      this.attached.splice(i, 1)
    }
  }

  /**
   * Stop accepting, close every connection with 1001 (going away), wait up to `closeTimeout`,
   * then drop what is left. Resolves when every connection is gone. A handshake already under
   * way (its TCP connection accepted; TLS, request or `authorize` not yet done) may finish within
   * `closeTimeout`: its connection is then closed with 1001 at once. A new upgrade meanwhile
   * gets 503.
   */
  close (): Promise<void> {
    this.closeUnderWay ??= this.shutdown().finally(() => {
      this.closeUnderWay = undefined
      this.state = 'closed'
    })
    return this.closeUnderWay
  }

  /** `listen` and `attach` open a closed server again, but not one still closing. */
  private reopen (): void {
    if (this.state === 'draining' || this.state === 'closing') throw new InvalidStateError('the server is closing: await close() before listening or attaching again')
    this.state = 'open'
    this.h2.reopen()
  }

  private async shutdown (): Promise<void> {
    this.state = 'draining'
    const own = this.httpServer
    // Stop accepting. The upgrade listeners stay until the end, to answer what is under way.
    const stopped = own === undefined ? Promise.resolve() : new Promise<void>((resolve) => own.close(() => resolve()))
    for (const conn of this.connections) conn.close(CloseCode.GoingAway, 'server shutting down')
    // HTTP/2 sessions get GOAWAY once their WebSockets have had their 1001 (at once without any).
    this.h2.drain()
    let timedOut = false
    const clock = this.clock
    const closeTimeout = this.resolved.closeTimeout
    const timer = clock.setTimeout(() => {
      timedOut = true
      this.wakeDrain?.()
    }, closeTimeout, undefined)
    // A socket that has sent nothing a second into close() is a preconnect, not a client about
    // to send its request: it is not worth the whole closeTimeout.
    const idle = clock.setTimeout(() => {
      for (const socket of [...this.pending.keys()]) {
        if (bytesReadOf(socket) === 0 && !this.authorizing.has(socket)) {
          this.clearHandshakeTimer(socket)
          socket.destroy()
        }
      }
      this.tlsHandshakes.drop(false)
      this.wakeDrain?.()
    }, Math.min(IDLE_GRACE, closeTimeout), undefined)
    // Re-checked after each wake: a handshake that ends its pending state adds its connection
    // in the same turn.
    while (!timedOut && (this.connections.size > 0 || this.pending.size > 0 || this.tlsHandshakes.size > 0 || this.h2.authorizing.size > 0)) {
      await new Promise<void>((resolve) => { this.wakeDrain = resolve })
    }
    this.wakeDrain = undefined
    clock.clearTimeout(timer)
    clock.clearTimeout(idle)
    this.state = 'closing'
    for (const [socket, pendingTimer] of [...this.pending]) {
      // A whole request awaiting authorize gets an answer; a request not yet whole, none.
      if (this.authorizing.has(socket)) {
        this.reject(socket, new HandshakeError(503, 'the server is shutting down'))
        continue
      }
      clock.clearTimeout(pendingTimer)
      socket.destroy()
    }
    this.pending.clear()
    this.tlsHandshakes.drop(true)
    const left = [...this.connections]
    for (const conn of left) conn.terminate()
    await Promise.all(left.map((c) => c.closed))
    // Every HTTP/2 session gets GOAWAY; our own server's are then dropped, as its sockets are.
    await this.h2.finish((session) => own !== undefined && (session as { server?: unknown }).server === own, IDLE_GRACE)
    for (const { server } of [...this.attached]) this.detach(server)
    ;(own as HttpServer | undefined)?.closeAllConnections?.()
    await stopped
    this.httpServer = undefined
  }
}

/** How long `close()` waits for a socket that has sent nothing (capped by `closeTimeout`). */
const IDLE_GRACE = 1000

/** How long a refused handshake's socket may stay for the client to read the refusal. */
const REFUSAL_LINGER = 1000

function destroySocket (socket: NodeDuplex): void { socket.destroy() }

/**
 * The response Node's http server is writing on `socket` for a request before the upgrade, if
 * any. Node hands a keep-alive socket to one response at a time (`socket._httpMessage`; the rest
 * wait their turn) and to the next one when it finishes.
 */
function earlierResponse (socket: NodeDuplex): ServerResponse | undefined {
  const owner = (socket as { _httpMessage?: unknown })._httpMessage
  return owner instanceof ServerResponse ? owner : undefined
}

/** The upgrade listeners `attach` installed, with the path each serves (`undefined`: every path). */
const attachedPaths = new WeakMap<(...args: any[]) => void, string | undefined>()

function ignoreError (): void {}

/** An upgrade that waited for the responses before it, tried again. */
function retryUpgrade (this: WebSocketServer, req: IncomingMessage, socket: NodeDuplex, head: Uint8Array): void {
  this.handleUpgrade(req, socket, head)
}
