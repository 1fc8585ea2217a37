/**
 * The socket driver: moves bytes between a socket and a {@link Session}, turns session events
 * into the connection duplex, applies backpressure both ways and owns the timers (heartbeat,
 * close timeout). The server and the client share it; they differ only in how the socket was
 * opened. No protocol rule lives here: the session decides, the driver carries out.
 *
 * @packageDocumentation
 */

import { Buffer, isUtf8 } from 'node:buffer'
import type { Duplex as NodeDuplex } from 'node:stream'
import type { Duplex, Source } from 'it-stream-types'
import { CloseCode } from './protocol/close-codes.js'
import type { ProtocolError } from './protocol/errors.js'
import type { Role } from './protocol/frame-parser.js'
import { Session, type SessionEvent } from './protocol/session.js'
import { fillMask } from './crypto.js'
import { ConnectionClosedError } from './errors.js'

/** A message as a handler may send it: a string goes as text, bytes as binary (unless received as text). */
export type OutgoingMessage = Uint8Array | string

/** How a connection ended. */
export interface CloseInfo {
  /** The code of the side that closed first; 1006 when no close frame crossed. */
  code: number
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
  error: (obj: unknown, msg?: string) => void
  warn: (obj: unknown, msg?: string) => void
  info: (obj: unknown, msg?: string) => void
  debug: (obj: unknown, msg?: string) => void
}

/** Limits and timers shared by the server and the client. */
export interface ConnectionLimits {
  /** Largest message after reassembly, in bytes. Default 16 MiB; over it the peer gets 1009. */
  maxMessageSize?: number
  /** Largest single frame. Default: `maxMessageSize`; over it: 1009, refused from the header. */
  maxFrameSize?: number
  /** Most fragments in one message. Default 65,536; over it: 1009. */
  maxFragments?: number
  /**
   * Received bytes queued for a handler that is not reading; above it the socket is paused
   * (TCP backpressure reaches the peer), below a quarter of it resumed. Default 1 MiB.
   */
  receiveHighWaterMark?: number
  /** Bytes queued for sending above which `sink` waits for the socket to drain, and reading stops. Default 1 MiB. */
  sendHighWaterMark?: number
  /** How long to wait for the peer's close frame, then for TCP to end. Default 5,000 ms. */
  closeTimeout?: number
  /** Ping idle peers and drop the ones that do not answer. Default on, `{ interval: 30000, timeout: 10000 }`; `false` turns it off. */
  heartbeat?: HeartbeatOptions | false
}

/** Defaults of {@link ConnectionLimits}. */
export const DEFAULT_LIMITS = {
  receiveHighWaterMark: 1024 * 1024,
  sendHighWaterMark: 1024 * 1024,
  closeTimeout: 5000,
  heartbeatInterval: 30_000,
  heartbeatTimeout: 10_000
} as const

/** The driver's own counters, for tests and monitoring. */
export interface ConnectionStats {
  /** Received messages waiting for `source` to be read. */
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
}

/**
 * One WebSocket connection as an it-stream-types duplex: `source` yields one whole message
 * per item, `sink` sends one message per item.
 */
export interface Connection extends Duplex<AsyncIterable<Uint8Array>, Source<OutgoingMessage>, Promise<void>> {
  /** The subprotocol in use, `''` for none. */
  readonly protocol: string
  /** The request target, e.g. `/chat?room=1`. */
  readonly url: string
  /** The path part of {@link Connection.url}. */
  readonly path: string
  /** The handshake request's headers less those the handshake consumed (server side), or the 101 response's (client side). */
  readonly headers: Record<string, string | string[] | undefined>
  readonly remoteAddress: string | undefined
  readonly remotePort: number | undefined
  /** Settles when the connection is gone (it never rejects). */
  readonly closed: Promise<CloseInfo>
  /** Aborts when the connection starts closing, for any reason. */
  readonly signal: AbortSignal
  /** Start the closing handshake (§7.1.2). Default code 1000. */
  close: (code?: number, reason?: string) => void
  /** Send a ping; resolves with the round-trip time in ms when its pong arrives, rejects if the connection closes first. */
  ping: (data?: Uint8Array) => Promise<number>
  /** The driver's counters. */
  stats: () => ConnectionStats
}

/**
 * Marks a received text message, so that `sink(source)` echoes text as text. A property on the
 * message itself: a WeakSet entry per message cost far more (a fifth of a text echo's time).
 */
const kText = Symbol.for('wspipe.text')

type Marked = Uint8Array & { [kText]?: true }

/** Was this message received as text (or marked with {@link asText})? */
export function isText (message: Uint8Array): boolean {
  return (message as Marked)[kText] === true
}

/** Mark bytes (valid UTF-8) to be sent as a text message by `sink`. Returns them. */
export function asText<T extends Uint8Array> (bytes: T): T {
  (bytes as Marked)[kText] = true
  return bytes
}

function allocUnsafe (size: number): Uint8Array {
  return Buffer.allocUnsafe(size)
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
}

/** Fill in the defaults of `limits`. */
export function resolveLimits (limits: ConnectionLimits): ResolvedLimits {
  const receiveHigh = limits.receiveHighWaterMark ?? DEFAULT_LIMITS.receiveHighWaterMark
  const hb = limits.heartbeat
  return {
    receiveHigh,
    receiveLow: receiveHigh >>> 2,
    sendHigh: limits.sendHighWaterMark ?? DEFAULT_LIMITS.sendHighWaterMark,
    closeTimeout: limits.closeTimeout ?? DEFAULT_LIMITS.closeTimeout,
    heartbeatInterval: hb === false ? 0 : hb?.interval ?? DEFAULT_LIMITS.heartbeatInterval,
    heartbeatTimeout: hb === false ? 0 : hb?.timeout ?? DEFAULT_LIMITS.heartbeatTimeout
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
  /** Bytes that arrived with the handshake, after its end. */
  head?: Uint8Array
}

const NO_MESSAGES: Uint8Array[] = []
const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined }
const DONE_PROMISE = Promise.resolve(DONE)
/** What {@link MessageSource.poll} returns when no message is queued yet, and at the end. */
const WAIT = Symbol('wait')
const END = Symbol('end')

// The sink's phases: not started, pulling, waiting for a message, waiting for drain, finished.
const SINK_IDLE = 0
const SINK_RUNNING = 1
const SINK_WAITING = 2
const SINK_BLOCKED = 3
const SINK_ENDED = 4

/** `source`: a pull-based queue of whole messages, with a fast path when one is already queued. */
class MessageSource implements AsyncIterableIterator<Uint8Array> {
  private readonly conn: WebSocketConnection
  /** A shared empty queue until the first message has to wait (most are taken at once). */
  private queue: Uint8Array[] = NO_MESSAGES
  private head = 0
  private waiter: { resolve: (r: IteratorResult<Uint8Array>) => void, reject: (e: unknown) => void } | undefined
  private ended = false
  private error: Error | undefined
  /** The consumer called `return()`: later messages are dropped. */
  detached = false
  /** The connection's own sink polled and found nothing: wake it on the next message or the end. */
  private sinkWaiting = false

  constructor (conn: WebSocketConnection) {
    this.conn = conn
  }

  get length (): number {
    return this.queue.length - this.head
  }

  push (message: Uint8Array): void {
    if (this.detached) return
    const waiter = this.waiter
    if (waiter !== undefined) {
      this.waiter = undefined
      waiter.resolve({ done: false, value: message })
      return
    }
    // After our close, reading must go on until the peer's close arrives: past the high-water
    // mark, messages are dropped rather than reading paused.
    if (!this.conn.acceptQueued(message.length)) return
    if (this.queue === NO_MESSAGES) this.queue = []
    this.queue.push(message)
    this.conn.onQueued(message.length)
    if (this.sinkWaiting) {
      this.sinkWaiting = false
      this.conn.pumpSink()
    }
  }

  /** No more messages: the queue drains, then the iterator ends (or throws `error`). */
  end (error?: Error): void {
    if (this.ended) return
    this.ended = true
    this.error = error
    const waiter = this.waiter
    if (waiter !== undefined && this.length === 0) {
      this.waiter = undefined
      this.conn.onSourceDrained()
      if (error !== undefined) waiter.reject(error)
      else waiter.resolve(DONE)
    }
    if (this.sinkWaiting) {
      this.sinkWaiting = false
      this.conn.pumpSink()
    }
  }

  /**
   * The synchronous pull of `sink(source)` on the connection's own source (an echo): the next
   * message, {@link WAIT} (the sink is called back when one arrives) or {@link END}; throws
   * the connection's error. No promise per message.
   */
  poll (): Uint8Array | typeof WAIT | typeof END {
    if (this.head < this.queue.length) return this.dequeue()
    if (this.ended) {
      this.conn.onSourceDrained()
      if (this.error !== undefined) {
        const error = this.error
        this.error = undefined
        throw error
      }
      return END
    }
    this.sinkWaiting = true
    return WAIT
  }

  private dequeue (): Uint8Array {
    const value = this.queue[this.head]
    this.queue[this.head++] = undefined as unknown as Uint8Array
    if (this.head === this.queue.length) {
      this.queue = NO_MESSAGES
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
    this.conn.onDequeued(value.length)
    return value
  }

  next (): Promise<IteratorResult<Uint8Array>> {
    if (this.head < this.queue.length) return Promise.resolve({ done: false, value: this.dequeue() })
    if (this.ended) {
      this.conn.onSourceDrained()
      if (this.error !== undefined) {
        const error = this.error
        this.error = undefined
        return Promise.reject(error)
      }
      return DONE_PROMISE
    }
    if (this.waiter !== undefined) return Promise.reject(new Error('source.next() called while a previous call is pending'))
    return new Promise((resolve, reject) => { this.waiter = { resolve, reject } })
  }

  return (): Promise<IteratorResult<Uint8Array>> {
    this.detached = true
    let bytes = 0
    for (let i = this.head; i < this.queue.length; i++) bytes += this.queue[i].length
    this.queue = NO_MESSAGES
    this.head = 0
    this.conn.onDequeued(bytes)
    this.ended = true
    this.error = undefined
    this.conn.onSourceDrained()
    return DONE_PROMISE
  }

  [Symbol.asyncIterator] (): this {
    return this
  }
}

/** The driver: one per socket. Implements {@link Connection}. */
export class WebSocketConnection implements Connection {
  readonly protocol: string
  readonly url: string
  readonly headers: Record<string, string | string[] | undefined>
  readonly remoteAddress: string | undefined
  readonly remotePort: number | undefined
  readonly source: MessageSource
  /** Called once the connection is gone (the server's bookkeeping; no promise needed). */
  onClosed: ((conn: WebSocketConnection) => void) | undefined

  private readonly socket: NodeDuplex
  private readonly session: Session
  private readonly role: Role
  private readonly logger: Logger | undefined
  /** Made on first use of `signal`: most connections never ask, and it is not free. */
  private abortController: AbortController | undefined
  private abortReason: ConnectionClosedError | undefined
  /** `closed` is made on first use; most connections are never asked. */
  private closedPromise: Promise<CloseInfo> | undefined
  private resolveClosed: ((info: CloseInfo) => void) | undefined
  private closeInfo: CloseInfo | undefined

  private readonly config: ResolvedLimits

  private queuedIn = 0
  private peakIn = 0
  private peakOut = 0
  private pauseCount = 0
  private heartbeatPings = 0
  private pausedForQueue = false
  private pausedForWrite = false
  private readingPaused = false

  private flushScheduled = false
  /** Inside onData, which flushes when it is done: no need to schedule a flush. */
  private handling = false
  private sinkPhase = SINK_IDLE
  private sinkIterator: Iterator<OutgoingMessage> | AsyncIterator<OutgoingMessage> | undefined
  private sinkOwn = false
  private pumping = false
  private sinkResolve: (() => void) | undefined
  private sinkReject: ((err: unknown) => void) | undefined
  private onSinkResult: ((result: IteratorResult<OutgoingMessage>) => void) | undefined
  private onSinkError: ((err: unknown) => void) | undefined
  private sinkPromise: Promise<void> | undefined
  private sinkError: unknown
  /** Set when the handler returned the sink's promise: the sink's end settles the handler. */
  private handlerLogger: Logger | undefined
  private pings: Array<{ data: Uint8Array, sentAt: number, resolve: (rtt: number) => void, reject: (e: unknown) => void }> | undefined
  /** Write callback of a flush that left the queue above `sendHigh` (made when first needed). */
  private written: (() => void) | undefined

  /** The close timer (owing an answer, or waiting for the peer's); heartbeats use a shared sweeper. */
  private timer: NodeJS.Timeout | undefined
  private closeStage: 'owing' | 'closing' | undefined
  private heartbeatAwaiting = false
  /** When the heartbeat next looks at this connection (ms, performance.now clock). */
  heartbeatDue = 0
  private replyScheduled = false
  private seen = false
  private socketClosed = false
  private socketError: Error | undefined
  private peerClose: { code: number, reason: string } | undefined
  private ourClose: { code: number, reason: string } | undefined
  private closedFirstByUs = false
  private protocolError: ProtocolError | undefined
  private transportEnding = false

  constructor (socket: NodeDuplex, options: DriverOptions) {
    this.socket = socket
    this.role = options.role
    this.protocol = options.protocol
    this.url = options.url
    this.headers = options.headers
    const s = socket as NodeDuplex & { remoteAddress?: string, remotePort?: number }
    this.remoteAddress = s.remoteAddress
    this.remotePort = s.remotePort
    this.logger = options.logger
    const limits = options.limits
    this.config = options.resolved ?? resolveLimits(limits)
    this.session = new Session({
      role: options.role,
      maxMessageSize: limits.maxMessageSize,
      maxFrameSize: limits.maxFrameSize,
      maxFragments: limits.maxFragments,
      isUtf8,
      mask: fillMask,
      alloc: allocUnsafe,
      deferClose: true
    })
    this.source = new MessageSource(this)
    this.sink = this.sink.bind(this)

    const tcp = socket as NodeDuplex & { setNoDelay?: (v: boolean) => void, setTimeout?: (ms: number) => void }
    tcp.setNoDelay?.(true)
    tcp.setTimeout?.(0)
    socket.on('data', socketOnData)
    socket.on('end', socketOnEnd)
    socket.on('close', socketOnClose)
    socket.on('error', socketOnError)
    socket.on('drain', socketOnDrain)
    ;(socket as unknown as Record<symbol, WebSocketConnection>)[kConnection] = this
    if (this.config.heartbeatInterval > 0) {
      this.heartbeatDue = performance.now() + this.config.heartbeatInterval
      heartbeatSweeper(Math.min(this.config.heartbeatInterval, this.config.heartbeatTimeout)).add(this)
    }
    if (options.head !== undefined && options.head.length > 0) this.onData(options.head)
  }

  /** The path part of {@link Connection.url}. */
  get path (): string {
    const q = this.url.indexOf('?')
    return q < 0 ? this.url : this.url.slice(0, q)
  }

  get closed (): Promise<CloseInfo> {
    if (this.closedPromise === undefined) {
      this.closedPromise = this.closeInfo !== undefined
        ? Promise.resolve(this.closeInfo)
        : new Promise((resolve) => { this.resolveClosed = resolve })
    }
    return this.closedPromise
  }

  get signal (): AbortSignal {
    if (this.abortController === undefined) {
      this.abortController = new AbortController()
      if (this.abortReason !== undefined) this.abortController.abort(this.abortReason)
    }
    return this.abortController.signal
  }

  stats (): ConnectionStats {
    return {
      queuedInBytes: this.queuedIn,
      peakQueuedInBytes: this.peakIn,
      queuedOutBytes: this.queuedOut(),
      peakQueuedOutBytes: this.peakOut,
      pauses: this.pauseCount,
      heartbeatPings: this.heartbeatPings
    }
  }

  close (code: number = CloseCode.Normal, reason = ''): void {
    if (this.socketClosed || this.session.closing) return
    // A close already owed to the peer (its close, or its protocol error) takes precedence.
    if (this.sendOwedClose()) return
    this.session.sendClose(code, reason)
    this.onLocalClose(code, reason)
  }

  /** The connection is failing because the peer broke the protocol (the error `source` throws). */
  get failure (): ProtocolError | undefined {
    return this.protocolError
  }

  /** The consumer of `source` has seen its end: the close owed to the peer can follow the replies. */
  onSourceDrained (): void {
    if (this.session.pendingClose === undefined || this.replyScheduled) return
    this.replyScheduled = true
    // After the flush the sink scheduled for its last replies (setImmediate runs in order).
    setImmediate(replyLater, this)
  }

  /** Send the close frame owed to the peer, if any. */
  sendOwedClose (): boolean {
    const owed = this.session.pendingClose
    if (owed === undefined || this.socketClosed) return false
    this.session.sendPendingClose()
    this.ourClose ??= { code: owed.code ?? CloseCode.NoStatusReceived, reason: owed.reason }
    this.stopSink()
    this.flush()
    if (!this.socketClosed && !this.transportEnding) {
      this.armCloseTimer('closing', this.config.closeTimeout)
    }
    return true
  }

  /** Drop the TCP connection at once, without a closing handshake (1006). */
  terminate (): void {
    if (!this.socketClosed) this.socket.destroy()
  }

  ping (data: Uint8Array = new Uint8Array(0)): Promise<number> {
    if (this.socketClosed || this.session.closing) return Promise.reject(new ConnectionClosedError('the connection is closing', this.session.sentCloseCode ?? CloseCode.Abnormal))
    return new Promise((resolve, reject) => {
      this.session.sendPing(data)
      ;(this.pings ??= []).push({ data, sentAt: performance.now(), resolve, reject })
      this.flush()
    })
  }

  sink (source: Source<OutgoingMessage>): Promise<void> {
    if (this.sinkPhase !== SINK_IDLE) return Promise.reject(new Error('sink can be called only once per connection'))
    let iterator: Iterator<OutgoingMessage> | AsyncIterator<OutgoingMessage>
    try {
      iterator = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]()
    } catch (err) {
      return Promise.reject(err)
    }
    return (this.sinkPromise = new Promise<void>((resolve, reject) => {
      this.sinkIterator = iterator
      this.sinkOwn = iterator === this.source
      this.sinkResolve = resolve
      this.sinkReject = reject
      this.sinkPhase = SINK_RUNNING
      this.pumpSink()
    }))
  }

  /**
   * The handler returned `promise`: if it is this connection's sink promise, its end is the
   * handler's end (1000, or 1011 and a log line) and is reported here without a `.then`.
   */
  adoptSinkPromise (promise: unknown, logger: Logger): boolean {
    if (promise === undefined || promise !== this.sinkPromise) return false
    this.handlerLogger = logger
    if (this.sinkPhase === SINK_ENDED) this.settleHandler()
    return true
  }

  private settleHandler (): void {
    const logger = this.handlerLogger!
    this.handlerLogger = undefined
    if (this.sinkError !== undefined) {
      // Handled here, so no unhandled rejection is reported for the promise nobody else holds.
      this.sinkPromise!.then(undefined, ignore)
      finishHandler(this, this.sinkError, logger)
    } else {
      this.close(CloseCode.Normal)
    }
  }

  /**
   * Pull from the sink's iterable and send, until it must wait: for a message, for the socket
   * to drain, or for a foreign iterator's promise. A state machine rather than an async loop:
   * no promise per message on the echo path, and no async frame held per idle connection.
   */
  pumpSink (): void {
    if (this.pumping || (this.sinkPhase !== SINK_RUNNING && this.sinkPhase !== SINK_WAITING)) return
    this.sinkPhase = SINK_RUNNING
    this.pumping = true
    try {
      this.pumpLoop()
    } finally {
      this.pumping = false
    }
  }

  private pumpLoop (): void {
    const iterator = this.sinkIterator!
    for (;;) {
      if (this.stopSending()) return this.endSink(false)
      if (this.queuedOut() >= this.config.sendHigh) {
        this.flush()
        if (this.socket.writableLength >= this.config.sendHigh) {
          this.sinkPhase = SINK_BLOCKED
          return
        }
      }
      let value: OutgoingMessage
      if (this.sinkOwn) {
        let m: Uint8Array | typeof WAIT | typeof END
        try {
          m = this.source.poll()
        } catch (err) {
          return this.endSink(true, err)
        }
        if (m === WAIT) {
          this.sinkPhase = SINK_WAITING
          return
        }
        if (m === END) return this.endSink(true)
        value = m
      } else {
        let r: IteratorResult<OutgoingMessage> | PromiseLike<IteratorResult<OutgoingMessage>>
        try {
          r = iterator.next()
        } catch (err) {
          return this.endSink(true, err)
        }
        if (typeof (r as PromiseLike<unknown>).then === 'function') {
          this.sinkPhase = SINK_WAITING
          ;(r as PromiseLike<IteratorResult<OutgoingMessage>>).then(
            this.onSinkResult ??= (result) => { this.sinkPulled(result) },
            this.onSinkError ??= (err: unknown) => { if (this.sinkPhase === SINK_WAITING) this.endSink(true, err) })
          return
        }
        const result = r as IteratorResult<OutgoingMessage>
        if (result.done === true) return this.endSink(true)
        value = result.value
      }
      try {
        this.send(value)
      } catch (err) {
        return this.endSink(false, err)
      }
    }
  }

  /** A foreign iterator's promise settled with `result`. */
  private sinkPulled (result: IteratorResult<OutgoingMessage>): void {
    // Stopped meanwhile (the connection closed): that message is not sent.
    if (this.sinkPhase !== SINK_WAITING) return
    if (this.stopSending()) return this.endSink(false)
    if (result.done === true) return this.endSink(true)
    try {
      this.send(result.value)
    } catch (err) {
      return this.endSink(false, err)
    }
    this.pumpSink()
  }

  /** The sink is done: `finished` when its iterable ended (or threw) by itself. */
  private endSink (finished: boolean, error?: unknown): void {
    if (this.sinkPhase === SINK_ENDED) return
    this.sinkPhase = SINK_ENDED
    this.flush()
    const iterator = this.sinkIterator
    this.sinkIterator = undefined
    // "Stops": the handler's generators run their finally blocks.
    if (!finished && iterator !== undefined && typeof iterator.return === 'function') {
      try {
        const r = iterator.return()
        if (typeof (r as PromiseLike<unknown>)?.then === 'function') (r as Promise<unknown>).then(undefined, ignore)
      } catch {}
    }
    this.sinkError = error
    if (error !== undefined) this.sinkReject!(error)
    else this.sinkResolve!()
    if (this.handlerLogger !== undefined) this.settleHandler()
  }

  private stopSending (): boolean {
    return this.socketClosed || this.session.closing
  }

  /** Queue one message; flush at the end of the tick so a burst leaves in one write. */
  send (message: OutgoingMessage): void {
    if (typeof message === 'string') {
      this.session.sendText(Buffer.from(message))
    } else if (message instanceof Uint8Array) {
      this.session.send(message, (message as Marked)[kText] !== true)
    } else {
      throw new TypeError('a message must be a string or a Uint8Array')
    }
    if (this.session.pendingOutput >= 65536) this.flush()
    else if (!this.handling) this.scheduleFlush()
  }

  private scheduleFlush (): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    setImmediate(flushLater, this)
  }

  /** Write everything the session queued, as one corked batch. */
  flush (): void {
    this.flushScheduled = false
    if (this.socketClosed) return
    const socket = this.socket
    // 'drain' comes only once the socket's own high-water mark (16 KiB) was passed. When ours
    // is lower, or to be sure, the last write above it carries a callback: when it has been
    // written, so has everything before it, and whoever waits for room looks again.
    const watch = socket.writableLength + this.session.pendingOutput >= this.config.sendHigh ? (this.written ??= () => { this.onDrain() }) : undefined
    const out = this.session.takeOutput()
    const n = out.length
    if (n === 0) {
      // The peer's answer to our close leaves nothing to write, but TCP must still end (§7.1.1).
      if (this.session.shouldCloseTransport) this.endTransport()
      return
    }
    if (n === 1) {
      socket.write(out[0], watch)
    } else {
      socket.cork()
      for (let i = 0; i < n - 1; i++) socket.write(out[i])
      socket.write(out[n - 1], watch)
      socket.uncork()
    }
    const queued = socket.writableLength
    if (queued > this.peakOut) this.peakOut = queued
    // A peer that does not read our output (pongs included) is not read from either. The sink
    // already waits at sendHigh; this stop sits higher, so big messages still overlap.
    if (queued >= this.config.sendHigh * READ_STOP_FACTOR && !this.pausedForWrite) {
      this.pausedForWrite = true
      this.updateReading()
    }
    if (this.session.shouldCloseTransport) this.endTransport()
  }

  private queuedOut (): number {
    return this.session.pendingOutput + this.socket.writableLength
  }

  /** May a message of `bytes` join the queue? Always, unless our close is sent and the queue is full. */
  acceptQueued (bytes: number): boolean {
    return !this.session.closing || this.queuedIn + bytes <= this.config.receiveHigh
  }

  onQueued (bytes: number): void {
    this.queuedIn += bytes
    if (this.queuedIn > this.peakIn) this.peakIn = this.queuedIn
    if (this.queuedIn > this.config.receiveHigh && !this.pausedForQueue && !this.session.closing) {
      this.pausedForQueue = true
      this.updateReading()
    }
  }

  onDequeued (bytes: number): void {
    this.queuedIn -= bytes
    if (this.pausedForQueue && this.queuedIn <= this.config.receiveLow) {
      this.pausedForQueue = false
      this.updateReading()
    }
  }

  private updateReading (): void {
    const pause = this.pausedForQueue || this.pausedForWrite
    if (pause === this.readingPaused || this.socketClosed) return
    this.readingPaused = pause
    if (pause) {
      this.pauseCount++
      this.socket.pause()
    } else {
      this.socket.resume()
    }
  }

  onData (chunk: Uint8Array): void {
    this.seen = true
    const events = this.session.receive(chunk)
    // Replies made while these events are handed out (an echo) leave in the flush below.
    this.handling = true
    try {
      for (let i = 0; i < events.length; i++) this.onEvent(events[i])
    } finally {
      this.handling = false
    }
    this.flush()
  }

  private onEvent (event: SessionEvent): void {
    switch (event.type) {
      case 'message':
        if (!event.binary) (event.data as Marked)[kText] = true
        this.source.push(event.data)
        return
      case 'ping':
        return
      case 'pong':
        this.onPong(event.data)
        return
      case 'close':
        this.peerClose = { code: event.code, reason: event.reason }
        this.source.end()
        this.abortSignal()
        // DESIGN "Closing": the peer's close is answered at once, after what is already being
        // written; the sink stops. Only a protocol error waits for the handler (see onPeerClosing).
        this.sendOwedClose()
        return
      case 'error':
        this.protocolError = event.error
        // The session stops parsing once a close crosses, so no close of ours precedes this one.
        this.ourClose = { code: event.error.closeCode, reason: event.error.message }
        this.closedFirstByUs = true
        this.logger?.debug({ err: event.error, remoteAddress: this.remoteAddress }, 'peer broke the protocol')
        this.source.end(event.error)
        this.onPeerClosing()
    }
  }

  private onPong (data: Uint8Array): void {
    if (this.heartbeatAwaiting) {
      // Answered: the next ping is due `interval` from now, not after the pong timeout.
      this.heartbeatAwaiting = false
      this.seen = false
      this.heartbeatDue = performance.now() + this.config.heartbeatInterval
    }
    // Resolve the oldest ping this pong answers (§5.5.3: a pong echoes its ping's payload).
    const pings = this.pings
    if (pings === undefined) return
    for (let i = 0; i < pings.length; i++) {
      const p = pings[i]
      if (equalBytes(p.data, data)) {
        pings.splice(0, i + 1)
        p.resolve(performance.now() - p.sentAt)
        return
      }
    }
  }

  /** We started the closing handshake (close() routes a close owed to the peer elsewhere). */
  private onLocalClose (code: number, reason: string): void {
    this.ourClose = { code, reason }
    this.closedFirstByUs = true
    this.stopSink()
    this.flush()
    // The peer's answer must be read even if the handler reads no more (acceptQueued drops instead).
    if (this.pausedForQueue) {
      this.pausedForQueue = false
      this.updateReading()
    }
    // Wait for the peer's close frame, then for TCP to end; past the timeout, drop it.
    if (!this.socketClosed) {
      this.armCloseTimer('closing', this.config.closeTimeout)
    }
  }

  /**
   * The peer failed the connection: the signal aborts, and the close we owe it (1002, 1007,
   * 1009) goes out once the handler has read the messages before the bad frame (or after a
   * short grace), so its replies to them go first.
   */
  private onPeerClosing (): void {
    this.abortSignal()
    if (this.session.pendingClose === undefined || this.socketClosed) return
    if (this.source.detached) {
      this.onSourceDrained()
      return
    }
    this.armCloseTimer('owing', Math.min(REPLY_GRACE, this.config.closeTimeout))
  }

  private abortSignal (): void {
    if (this.abortReason !== undefined) return
    this.abortReason = new ConnectionClosedError('the connection is closing', this.ourClose?.code ?? this.peerClose?.code ?? CloseCode.Abnormal)
    this.abortController?.abort(this.abortReason)
  }

  /** Our close is sent or the socket is gone: the sink pulls no more; wake whatever waits. */
  private stopSink (): void {
    // Whatever the sink waits for (a message, a drain, a foreign promise), it stops now.
    if (this.sinkPhase === SINK_WAITING || this.sinkPhase === SINK_BLOCKED) this.endSink(false)
    this.abortSignal()
  }

  /** §7.1.1: the server ends TCP first; a client waits for the server, up to the close timeout. */
  private endTransport (): void {
    if (this.socketClosed || this.transportEnding) return
    this.transportEnding = true
    // After a protocol error no answer to our close is awaited, on either side.
    if (this.role === 'server' || this.protocolError !== undefined) this.socket.end()
    this.armCloseTimer('closing', this.config.closeTimeout)
  }

  onDrain (): void {
    if (this.pausedForWrite && this.socket.writableLength < this.config.sendHigh) {
      this.pausedForWrite = false
      this.updateReading()
    }
    if (this.sinkPhase === SINK_BLOCKED) {
      this.sinkPhase = SINK_RUNNING
      this.pumpSink()
    }
  }

  onEnd (): void {
    // The peer half-closed: no frame is coming any more. If its close came first, the answer it
    // is owed still goes out: on a half-open socket once the handler has replied (as usual; the
    // closing handshake then ends TCP), otherwise at once. Then we finish our side too.
    if (this.socketClosed) return
    if (this.session.pendingClose !== undefined && (this.socket as { allowHalfOpen?: boolean }).allowHalfOpen === true) return
    this.sendOwedClose()
    this.socket.end()
  }

  onError (err: Error): void {
    this.socketError ??= err
  }

  onClose (): void {
    if (this.socketClosed) return
    this.socketClosed = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.stopHeartbeat()
    const clean = this.peerClose !== undefined && this.session.closing && this.protocolError === undefined && this.socketError === undefined
    let info: CloseInfo
    // `closed` reports the code of the side that closed first.
    if (this.closedFirstByUs && this.ourClose !== undefined) {
      info = { code: this.ourClose.code, reason: this.ourClose.reason, wasClean: clean }
    } else if (this.peerClose !== undefined) {
      info = { code: this.peerClose.code, reason: this.peerClose.reason, wasClean: clean }
    } else {
      info = { code: CloseCode.Abnormal, reason: '', wasClean: false }
    }
    // After a close we started, `source` ends (the peer's answer, or closeTimeout, ends it);
    // without any close frame the connection was lost, and `source` throws.
    if (this.peerClose === undefined && this.protocolError === undefined && !this.closedFirstByUs) {
      this.source.end(new ConnectionClosedError(
        this.socketError !== undefined ? `connection lost: ${this.socketError.message}` : 'connection closed without a close frame',
        CloseCode.Abnormal, { cause: this.socketError }))
    } else {
      this.source.end()
    }
    this.stopSink()
    const pings = this.pings ?? []
    this.pings = undefined
    for (const p of pings) p.reject(new ConnectionClosedError('the connection closed before the pong', info.code))
    this.closeInfo = info
    this.resolveClosed?.(info)
    this.onClosed?.(this)
  }

  /** Once closing starts, the heartbeat stops and one timer bounds the wait. */
  private armCloseTimer (stage: 'owing' | 'closing', ms: number): void {
    this.stopHeartbeat()
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.closeStage = stage
    this.timer = setTimeout(timerFired, ms, this)
  }

  private stopHeartbeat (): void {
    if (this.config.heartbeatInterval > 0 && this.heartbeatDue !== Infinity) {
      this.heartbeatDue = Infinity
      heartbeatSweeper(Math.min(this.config.heartbeatInterval, this.config.heartbeatTimeout)).delete(this)
    }
  }

  onTimer (): void {
    this.timer = undefined
    if (this.socketClosed) return
    if (this.closeStage === 'closing') {
      // No close frame or no TCP end within closeTimeout: drop the connection.
      this.socket.destroy()
    } else if (this.closeStage === 'owing') {
      // The handler did not read up to the peer's protocol error in time: answer it now.
      this.sendOwedClose()
    }
  }

  /** The sweeper's visit, once `heartbeatDue` has passed. */
  onHeartbeat (now: number): void {
    if (this.socketClosed) return
    // Traffic proves the peer alive; while we hold reading paused its pongs cannot arrive.
    if (this.seen || this.readingPaused) {
      this.seen = false
      this.heartbeatAwaiting = false
      this.heartbeatDue = now + this.config.heartbeatInterval
      return
    }
    if (this.heartbeatAwaiting) {
      this.logger?.debug({ remoteAddress: this.remoteAddress }, 'no pong within the heartbeat timeout: dropping the peer')
      this.socket.destroy()
      return
    }
    this.heartbeatAwaiting = true
    this.heartbeatPings++
    this.session.sendPing()
    this.flush()
    this.heartbeatDue = now + this.config.heartbeatTimeout
  }
}

/**
 * One timer for the heartbeats of every connection with the same granularity, instead of a
 * timer per connection: idle connections then cost no timer at all.
 */
class HeartbeatSweeper {
  private readonly conns = new Set<WebSocketConnection>()
  private timer: NodeJS.Timeout | undefined
  private readonly tick: number

  constructor (tick: number) {
    this.tick = tick
  }

  add (conn: WebSocketConnection): void {
    this.conns.add(conn)
    if (this.timer === undefined) {
      this.timer = setInterval(sweep, this.tick, this)
      this.timer.unref()
    }
  }

  delete (conn: WebSocketConnection): void {
    this.conns.delete(conn)
    if (this.conns.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer)
      this.timer = undefined
    }
  }

  sweep (): void {
    const now = performance.now()
    for (const conn of this.conns) if (now >= conn.heartbeatDue) conn.onHeartbeat(now)
  }
}

const sweepers = new Map<number, HeartbeatSweeper>()

/** The sweeper for heartbeats whose shortest period is `period` ms: it looks 4 times per period. */
function heartbeatSweeper (period: number): HeartbeatSweeper {
  const tick = Math.max(5, Math.floor(period / 4))
  let sweeper = sweepers.get(tick)
  if (sweeper === undefined) {
    sweeper = new HeartbeatSweeper(tick)
    sweepers.set(tick, sweeper)
  }
  return sweeper
}

function sweep (sweeper: HeartbeatSweeper): void { sweeper.sweep() }

const kConnection = Symbol('wspipe.connection')

function owner (socket: unknown): WebSocketConnection {
  return (socket as Record<symbol, WebSocketConnection>)[kConnection]
}
function socketOnData (this: NodeDuplex, chunk: Uint8Array): void { owner(this).onData(chunk) }
function socketOnEnd (this: NodeDuplex): void { owner(this).onEnd() }
function socketOnClose (this: NodeDuplex): void { owner(this).onClose() }
function socketOnError (this: NodeDuplex, err: Error): void { owner(this).onError(err) }
function socketOnDrain (this: NodeDuplex): void { owner(this).onDrain() }
function flushLater (conn: WebSocketConnection): void { conn.flush() }
function timerFired (conn: WebSocketConnection): void { conn.onTimer() }
function replyLater (conn: WebSocketConnection): void { conn.sendOwedClose() }

/** How long the close owed to a peer waits for the handler to read what came before it. */
const REPLY_GRACE = 1000

/** Reading stops when this many times `sendHighWaterMark` waits to be sent. */
const READ_STOP_FACTOR = 4

function ignore (): void {}

/**
 * A handler has settled: with no error the connection closes with 1000; with one, the error is
 * logged (never sent to the peer: it may hold secrets) and it closes with 1011. The
 * connection's own failure, rethrown by `source`, is the peer's fault and already answered
 * (1002/1007/1009, or lost: 1006): not a handler bug.
 */
export function finishHandler (conn: WebSocketConnection, err: unknown, logger: Logger): void {
  if (err === conn.failure || err instanceof ConnectionClosedError) {
    logger.debug({ err, protocol: conn.protocol, remoteAddress: conn.remoteAddress }, 'connection failed')
    conn.close(CloseCode.InternalError)
    return
  }
  logger.error({ err, protocol: conn.protocol, remoteAddress: conn.remoteAddress, remotePort: conn.remotePort, path: conn.path }, 'WebSocket handler failed')
  conn.close(CloseCode.InternalError)
}

function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
