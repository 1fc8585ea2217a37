/**
 * The socket driver: moves bytes between a socket and a {@link Session}, turns session events
 * into the connection duplex and carries out the closing rules of DESIGN.md. The incoming
 * queue, the sink pump, the heartbeat rule and the memory budget live in their own modules;
 * this one holds them together. No protocol rule lives here: the session decides, the driver
 * carries out.
 *
 * @packageDocumentation
 */

import { Buffer, isUtf8 } from 'node:buffer'
import type { Source } from 'it-stream-types'
import { CloseCode, isValidCloseCode } from '../protocol/close-codes.js'
import { ProtocolError } from '../protocol/errors.js'
import type { Role } from '../protocol/frame-parser.js'
import { Session, type SessionEvent } from '../protocol/session.js'
import { fillMask } from '../crypto.js'
import { ConnectionClosedError, InvalidStateError } from '../errors.js'
import { SHARED_MIN, type MemoryBudget, type SharedBytes } from './budget.js'
import { PENDING, PerMessageDeflate, type CompressedPayload } from '../extensions/permessage-deflate.js'
import { Fifo } from '../fifo.js'
import { ITEM_OVERHEAD } from '../protocol/gather.js'
import { heartbeatSweeper, judge } from './heartbeat.js'
import { systemClock, type Clock, type ClockTimer } from './clock.js'
import type { Transport } from './transport.js'
import { MessageSource, type IncomingOwner } from './incoming.js'
import { SinkPump, isStreamedMessage, openStream, stopIterator, type ChunkIterator, type SinkOwner } from './sink.js'
import { claimForSending, lastChunkTaken, StreamSource, type StreamOwner } from './streamed.js'
import { preparedShare } from './prepared.js'
import { SHARED_REF_COST, SharedOutput, shareOf } from './shared.js'
import { isText } from '../text-mark.js'
import { resolveLimits, type CloseInfo, type ConnectionStats, type DriverOptions, type Logger, type OutgoingMessage, type ResolvedLimits, type StreamedMessage } from './types.js'
import { DEFAULT_MAX_MESSAGE_SIZE } from '../protocol/session.js'
import { connectionCloseChannel, connectionOpenChannel, heartbeatDropChannel, memoryBudgetExhaustedChannel, publishBudgetExhausted, publishClose, publishHeartbeatDrop, publishOpen, publishZlibBudgetWait, zlibBudgetWaitChannel } from '../diagnostics.js'

function allocUnsafe (size: number): Uint8Array {
  return Buffer.allocUnsafe(size)
}

const encoder = new TextEncoder()
const RESOLVED = Promise.resolve()
const EMPTY = new Uint8Array(0)
/** What a streamed `send()` sees when the connection starts closing while it waits for a chunk. */
const ABORTED = Symbol('aborted')
function noop (): void {}

/** What waits to be sent behind a message being compressed off the event loop: a message, or a streamed message's chunk. */
type Outgoing =
  | { readonly kind: 'message', readonly data: Uint8Array, readonly binary: boolean, readonly broadcast: boolean }
  | { readonly kind: 'chunk', readonly data: Uint8Array, readonly text: boolean, readonly last: boolean }

/**
 * The driver: one per socket. Implements {@link Connection}, or in stream mode
 * {@link StreamConnection} (its `source` is then a {@link StreamSource}).
 */
export class WebSocketConnection implements IncomingOwner, SinkOwner, StreamOwner {
  readonly protocol: string
  readonly url: string
  readonly headers: Record<string, string | string[] | undefined>
  readonly remoteAddress: string | undefined
  readonly remotePort: number | undefined
  readonly httpVersion: '1.1' | '2'
  readonly source: MessageSource | StreamSource
  /** The connection's own source, when the sink may poll it (whole messages only). */
  readonly ownMessages: MessageSource | undefined
  /** Called once the connection is gone (the server's bookkeeping; no promise needed). */
  onClosed: ((conn: WebSocketConnection) => void) | undefined

  private readonly transport: Transport
  private readonly clock: Clock
  private readonly session: Session
  private readonly role: Role
  private readonly logger: Logger | undefined
  private readonly config: ResolvedLimits
  private readonly budget: MemoryBudget | undefined
  /** What this connection has charged to the budget. */
  private charged = 0
  /** Buffers in the output that other connections may hold too: the budget counts each once. */
  private shared: SharedOutput | undefined
  /** The budget refused a shared buffer this connection queued: the next charge fails it. */
  private sharedRefused = false
  /** Write callbacks of a shared buffer (without, and with, the drain watch); made when first needed. */
  private sharedWritten: (() => void) | undefined
  private sharedWrittenWatched: (() => void) | undefined
  /** Bytes that came with the handshake, processed by start(). */
  private head: Uint8Array | undefined
  /** Made on first use of `signal`: most connections never ask, and it is not free. */
  private abortController: AbortController | undefined
  private abortReason: ConnectionClosedError | undefined
  /** `closed` is made on first use; most connections are never asked. */
  private closedPromise: Promise<CloseInfo> | undefined
  private resolveClosed: ((info: CloseInfo) => void) | undefined
  private closeInfo: CloseInfo | undefined

  private peakOut = 0
  private pauseCount = 0
  private compressionWaits = 0
  private heartbeatPings = 0
  private pausedForQueue = false
  private pausedForWrite = false
  /** Payload bytes of the last data message (or chunk) queued: the one that may have crossed sendHigh. */
  private lastData = 0
  private readingPaused = false

  private flushScheduled = false
  /** Inside onData, which flushes when it is done: no need to schedule a flush. */
  private handling = false
  /** The negotiated permessage-deflate, whose large messages this driver runs off the event loop. */
  private readonly deflate: PerMessageDeflate | undefined
  /** Largest message inflated (the session's limit, enforced off the loop by the extension). */
  private readonly maxInflated: number
  /**
   * A compressed message was left for later (the session holds what came after it): reading is
   * paused until it is inflated. What it waits for: room in the receive queue, the zlib budget
   * (a timer), or its job off the loop; undefined: nothing yet.
   */
  private inflating = false
  private inflateWait: 'room' | 'timer' | 'job' | undefined
  private inflateTimer: ClockTimer | undefined
  private readonly onInflated: ((error: ProtocolError | undefined, data: Uint8Array | undefined) => void) | undefined
  /** This connection's zlib budget is spent: reading is paused until it recovers (a timer). */
  private pausedForZlib = false
  private zlibTimer: ClockTimer | undefined
  /** The message being compressed off the loop, and what waits behind it in order; undefined when none is. */
  private compressing: Outgoing | undefined
  private outgoing: Fifo<Outgoing> | undefined
  /** What those hold: their bytes plus an item's overhead each. */
  private outgoingBytes = 0
  private readonly onDeflated: ((payload: CompressedPayload | undefined) => void) | undefined
  /** A close of ours asked for while messages are being compressed: sent once they are. */
  private closeAfterOutgoing: { code: number, reason: string } | undefined
  private pump: SinkPump | undefined
  private doneCheckScheduled = false
  /** `send()` was used: `sink` may not be. */
  private sending = false
  private sendWaiters: Array<{ resolve: () => void, reject: (e: unknown) => void }> | undefined
  /** Settles when the streamed messages given to `send()` so far are sent: later sends wait for it. */
  private sendChain: Promise<void> | undefined
  /** A streamed `send()` waiting for its next chunk: woken with {@link ABORTED} when the connection starts closing. */
  private chunkWaiter: ((value: typeof ABORTED) => void) | undefined
  private boundSend: ((message: OutgoingMessage) => Promise<void>) | undefined
  private boundClose: ((code?: number, reason?: string) => void) | undefined
  private boundPing: ((data?: Uint8Array | string) => Promise<number>) | undefined
  /** Largest fragment of a streamed message we send. */
  private readonly maxOutFrame: number
  private handlerLogger: Logger | undefined
  private pings: Array<{ data: Uint8Array, sentAt: number, resolve: (rtt: number) => void, reject: (e: unknown) => void }> | undefined
  /** Write callback of a flush that left the queue above `sendHigh` (made when first needed). */
  private written: (() => void) | undefined

  /** The close timer (owing an answer, or waiting for the peer's); heartbeats use a shared sweeper. */
  private timer: ClockTimer | undefined
  private closeStage: 'owing' | 'closing' | undefined
  private heartbeatAwaiting = false
  /** When the heartbeat next looks at this connection (ms, performance.now clock). */
  heartbeatDue = 0
  /** Signs of life for the heartbeat: bytes arrived; when life was last seen; what moved while paused. */
  private seen = false
  private lastLife = 0
  private takenAtVisit = 0
  private writableAtVisit = 0
  private replyScheduled = false
  private socketClosed = false
  private socketError: Error | undefined
  private peerClose: { code: number, reason: string } | undefined
  private ourClose: { code: number, reason: string } | undefined
  private closedFirstByUs = false
  private protocolError: ProtocolError | undefined
  private transportEnding = false

  constructor (transport: Transport, options: DriverOptions) {
    this.transport = transport
    this.clock = options.clock ?? systemClock
    this.role = options.role
    this.protocol = options.protocol
    this.url = options.url
    this.headers = options.headers
    this.remoteAddress = options.remoteAddress
    this.remotePort = options.remotePort
    this.httpVersion = options.httpVersion ?? '1.1'
    this.logger = options.logger
    const limits = options.limits
    this.config = options.resolved ?? resolveLimits(limits)
    this.budget = options.budget
    const stream = options.stream
    this.session = new Session({
      role: options.role,
      maxMessageSize: stream?.maxMessageSize ?? limits.maxMessageSize,
      maxFrameSize: limits.maxFrameSize,
      maxFragments: limits.maxFragments,
      isUtf8,
      mask: fillMask,
      alloc: allocUnsafe,
      deferClose: true,
      compression: options.compression,
      streamMessages: stream !== undefined
    })
    this.maxOutFrame = limits.maxFrameSize ?? limits.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
    this.maxInflated = limits.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
    if (options.compression instanceof PerMessageDeflate) {
      // Large messages are ours to compress and inflate, off the event loop and within the budgets.
      this.deflate = options.compression
      this.deflate.offLoop = true
      this.onInflated = (error, data) => { this.inflated(error, data) }
      this.onDeflated = (payload) => { this.deflated(payload) }
    }
    if (stream !== undefined) {
      this.source = new StreamSource(this, this.config.receiveHigh, this.config.receiveLow)
      this.ownMessages = undefined
    } else {
      this.source = this.ownMessages = new MessageSource(this, this.config.receiveHigh, this.config.receiveLow)
    }
    this.sink = this.sink.bind(this)
    this.head = options.head !== undefined && options.head.length > 0 ? options.head : undefined

    ;(transport as unknown as Record<symbol, WebSocketConnection>)[kConnection] = this
    transport.on('data', transportOnData)
    transport.on('end', transportOnEnd)
    transport.on('close', transportOnClose)
    transport.on('error', transportOnError)
    transport.on('drain', transportOnDrain)
    if (this.config.heartbeatInterval > 0) {
      const now = this.clock.now()
      this.lastLife = now
      this.heartbeatDue = now + this.config.heartbeatInterval
      heartbeatSweeper(Math.min(this.config.heartbeatInterval, this.config.heartbeatTimeout), this.clock).add(this)
    }
    // After the 101, before the handler (or connect()'s caller) gets the connection.
    if (connectionOpenChannel.hasSubscribers) publishOpen(this, this.role, this.protocol, this.remoteAddress)
  }

  /**
   * Process the bytes that came with the handshake. Called once a handler is in place, so frames
   * in the same TCP segment as the upgrade request are treated like frames that came later.
   */
  start (): void {
    const head = this.head
    this.head = undefined
    if (head !== undefined && !this.socketClosed) this.onData(head)
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
      queuedInBytes: this.source.cost,
      peakQueuedInBytes: this.source.peak,
      queuedOutBytes: this.queuedOut(),
      peakQueuedOutBytes: this.peakOut,
      pauses: this.pauseCount,
      heartbeatPings: this.heartbeatPings,
      heldBytes: this.held(),
      compressionWaits: this.compressionWaits
    }
  }

  /** `close`, bound (like `sink` and `send`), so `({ close })` works; made on first use. */
  get close (): (code?: number, reason?: string) => void {
    return (this.boundClose ??= (code, reason) => { this.closeWith(code, reason) })
  }

  /** `ping`, bound; made on first use. */
  get ping (): (data?: Uint8Array | string) => Promise<number> {
    return (this.boundPing ??= (data) => this.sendPingFrame(data))
  }

  private closeWith (code: number = CloseCode.Normal, reason = ''): void {
    // A programmer's mistake is reported whatever the state (§7.4: only some codes may be sent).
    if (!Number.isInteger(code)) throw new TypeError(`a close code must be an integer, not ${typeof code === 'string' ? `the string '${code}'` : String(code)}`)
    if (!isValidCloseCode(code)) throw new RangeError(`close code ${code} may not be sent: use 1000, 1001-1003, 1007-1014 or 3000-4999 (RFC 6455 §7.4)`)
    if (typeof reason !== 'string') throw new TypeError('a close reason must be a string')
    if (Buffer.byteLength(reason) > 123) throw new RangeError('a close reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5)')
    if (this.socketClosed || this.session.closing || this.closeAfterOutgoing !== undefined) return
    // A close already owed to the peer (its close, or its protocol error) takes precedence.
    if (this.sendOwedClose()) return
    if (this.compressing !== undefined) {
      // The messages already given to send go first (DESIGN "Closing"); nothing more is taken.
      this.closeAfterOutgoing = { code, reason }
      this.stopSink()
      return
    }
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

  /**
   * The consumer returned `source` (a `break` out of `for await`, `first(source)`): it is done
   * reading. WebSocket has no half-close, so the connection closes (1000) once the sending side
   * is done too: right away when no sink is running, otherwise when the sink ends.
   */
  onSourceReturned (): void {
    this.scheduleDoneCheck()
  }

  /** The sink is done; if `source` was returned too, nothing is read or sent any more. */
  onSinkEnded (): void {
    if (this.source.detached) this.scheduleDoneCheck()
  }

  /**
   * On the next turn of the event loop, not now: a `throw` out of a `for await` loop also
   * returns the source, and the error on its way to the handler must decide the close code
   * (1011, or the handler's own `close()`), not this rule.
   */
  private scheduleDoneCheck (): void {
    if (this.doneCheckScheduled || this.sendingStopped) return
    this.doneCheckScheduled = true
    setImmediate(doneCheck, this)
  }

  /** Both directions done: close with 1000, or 1011 if the sink's iterable threw. */
  closeIfDone (): void {
    this.doneCheckScheduled = false
    const pump = this.pump
    if (!this.source.detached || this.sendingStopped) return
    // A streamed message being sent by send() is finished first; its end checks again.
    if (pump === undefined) {
      if (this.sendChain === undefined) this.closeWith(CloseCode.Normal)
    }
    else if (pump.ended) this.closeWith(pump.failed ? CloseCode.InternalError : CloseCode.Normal)
  }

  /** Send the close frame owed to the peer, if any. */
  sendOwedClose (): boolean {
    const owed = this.session.pendingClose
    if (owed === undefined || this.socketClosed) return false
    // The peer closed or failed: what was still being compressed is dropped, as later writes are.
    this.dropZlibWork()
    this.session.sendPendingClose()
    this.ourClose ??= { code: owed.code ?? CloseCode.NoStatusReceived, reason: owed.reason }
    this.stopSink()
    this.flush()
    if (this.readingPaused) this.updateReading()
    if (!this.socketClosed && !this.transportEnding) {
      this.armCloseTimer('closing', this.config.closeTimeout)
    }
    return true
  }

  /** Drop the TCP connection at once, without a closing handshake (1006). */
  terminate (): void {
    if (!this.socketClosed) this.transport.destroy()
  }

  private sendPingFrame (data: Uint8Array | string = new Uint8Array(0)): Promise<number> {
    let payload: Uint8Array
    if (typeof data === 'string') payload = encoder.encode(data)
    else if (data instanceof Uint8Array) payload = data
    else return Promise.reject(new TypeError('a ping payload must be a Uint8Array or a string'))
    // §5.5: "All control frames MUST have a payload length of 125 bytes or less".
    if (payload.length > 125) return Promise.reject(new RangeError('a ping payload is at most 125 bytes (RFC 6455 §5.5)'))
    if (this.socketClosed || this.session.closing) return Promise.reject(this.closingError(this.session.sentCloseCode ?? CloseCode.Abnormal))
    // A copy: the caller may reuse its buffer before the pong comes.
    const copy = new Uint8Array(payload)
    return new Promise((resolve, reject) => {
      this.session.sendPing(copy)
      ;(this.pings ??= []).push({ data: copy, sentAt: this.clock.now(), resolve, reject })
      this.flush()
    })
  }

  /** `sink`: sends each message of `source` (see {@link OutgoingMessage}); resolves when it ends. */
  sink (source: Source<OutgoingMessage>): Promise<void> {
    if (this.pump !== undefined) return Promise.reject(new InvalidStateError('sink can be called only once per connection'))
    if (this.sending) return Promise.reject(new InvalidStateError('sink cannot be called on a connection that send() was used on'))
    let pump: SinkPump
    try {
      pump = new SinkPump(this, source)
    } catch (err) {
      return Promise.reject(err)
    }
    this.pump = pump
    pump.pump()
    return pump.promise
  }

  /**
   * The handler returned `promise`: if it is this connection's sink promise, its end is the
   * handler's end (1000, or 1011 and a log line) and is reported without a `.then`.
   */
  adoptSinkPromise (promise: unknown, logger: Logger): boolean {
    const pump = this.pump
    if (promise === undefined || pump === undefined || promise !== pump.promise) return false
    this.handlerLogger = logger
    pump.adopt()
    return true
  }

  onHandlerSettled (error: unknown): void {
    if (error !== undefined) finishHandler(this, error, this.handlerLogger!)
    else this.closeWith(CloseCode.Normal)
  }

  get sendingStopped (): boolean {
    return this.socketClosed || this.session.closing || this.closeAfterOutgoing !== undefined
  }

  get dropWhenFull (): boolean {
    return this.session.closing
  }

  outputFull (): boolean {
    // Messages being compressed go first: the sink waits for them (order), and wakes when they are sent.
    if (this.compressing !== undefined) return true
    if (this.queuedOut() < this.config.sendHigh) return false
    this.flush()
    return this.transport.writableLength >= this.config.sendHigh
  }

  wakeSink (): void {
    this.pump?.pump()
  }

  offerToSink (message: Uint8Array, text: boolean): boolean {
    return this.pump?.offer(message, text) ?? false
  }

  queueFull (full: boolean): void {
    this.pausedForQueue = full
    this.updateReading()
    // A compressed message waited for room: on the next turn, not inside the consumer's next().
    if (!full && this.inflateWait === 'room') {
      this.inflateWait = undefined
      setImmediate(inflateWhenRoom, this)
    }
  }

  onQueueEmptied (): void {
    // Inside onData the charge comes once, at its end.
    if (this.budget !== undefined && !this.handling) this.charge()
  }

  /**
   * Send one message, for code that sends as it goes (an interactive client) rather than
   * through `sink`. Resolves once the message is queued and the output is below
   * `sendHighWaterMark` (at once, usually; else when the socket drains). Exclusive with `sink`:
   * one way of sending per connection, so the order of messages is never in question.
   */
  get send (): (message: OutgoingMessage) => Promise<void> {
    // Bound, like `sink`, so `({ source, send })` works; made on first use.
    return (this.boundSend ??= (message) => this.sendMessage(message))
  }

  private sendMessage (message: OutgoingMessage): Promise<void> {
    if (this.pump !== undefined) return Promise.reject(new InvalidStateError('send() cannot be used on a connection whose sink was called: send through the sink\'s iterable (an Outbox, say)'))
    if (this.sendingStopped) return Promise.reject(this.closingError())
    this.sending = true
    if (this.sendChain !== undefined || isStreamedMessage(message)) {
      // Its chunks are read on a later turn: leaving `source` meanwhile must not abandon it.
      if (isStreamedMessage(message)) claimForSending(message)
      // A streamed message is sent over many turns: whatever is sent after it waits its turn.
      const p = (this.sendChain ?? RESOLVED).then(() => isStreamedMessage(message) ? this.sendStream(message) : this.sendWhole(message))
      const tail = p.then(noop, noop)
      this.sendChain = tail
      void tail.then(() => {
        if (this.sendChain !== tail) return
        this.sendChain = undefined
        if (this.source.detached) this.scheduleDoneCheck()
      })
      return p
    }
    return this.sendWhole(message)
  }

  /** `send()` of a whole message, its turn come. */
  private sendWhole (message: Uint8Array | string): Promise<void> {
    // A streamed message cut off part-way (the connection is closing) cannot be followed (§5.4).
    if (this.sendingStopped || this.session.fragmentsUnderWay) return Promise.reject(this.closingError())
    try {
      this.queueMessage(message)
    } catch (err) {
      return Promise.reject(err)
    }
    if (!this.outputFull()) return RESOLVED
    return new Promise((resolve, reject) => { (this.sendWaiters ??= []).push({ resolve, reject }) })
  }

  /**
   * `send()` of a streamed message: each chunk as it comes, waiting for room in between. A
   * chunk source that stalls does not hold the call past the connection's close.
   */
  private async sendStream (message: StreamedMessage): Promise<void> {
    if (this.sendingStopped || this.session.fragmentsUnderWay) throw this.closingError()
    const { text, chunks: iterator } = openStream(message)
    let finished = false
    for (;;) {
      let result: IteratorResult<Uint8Array | string> | typeof ABORTED
      try {
        result = await this.nextChunk(iterator)
      } catch (err) {
        // Half a message cannot be taken back: the connection closes (§7.4.1 1011).
        this.failStream(err)
        throw err
      }
      if (result === ABORTED || this.sendingStopped) {
        stopIterator(iterator)
        throw this.closingError()
      }
      if (result.done === true) break
      // A received message tells when its last chunk is out: that chunk then carries FIN.
      const last = lastChunkTaken(iterator)
      try {
        this.queueChunk(result.value, text, last)
      } catch (err) {
        stopIterator(iterator)
        this.failStream(err)
        throw err
      }
      if (last) {
        finished = true
        break
      }
      if (this.outputFull()) {
        try {
          await this.waitForRoom()
        } catch (err) {
          stopIterator(iterator)
          throw err
        }
      }
    }
    if (this.sendingStopped) throw this.closingError()
    if (!finished) this.endStream(text)
    if (this.outputFull()) await this.waitForRoom()
  }

  /**
   * The next chunk of a streamed `send()`, or {@link ABORTED} once the connection starts closing,
   * whichever comes first. Not a `Promise.race` against a promise of the close: that one stays
   * pending for the whole message, and every chunk raced against it would stay reachable from
   * it until the message ends. Here the only waiter is this chunk's, and the close wakes it.
   */
  private nextChunk (iterator: ChunkIterator): IteratorResult<Uint8Array | string> | typeof ABORTED | Promise<IteratorResult<Uint8Array | string> | typeof ABORTED> {
    if (this.abortReason !== undefined) return ABORTED
    const r = iterator.next()
    if (typeof (r as PromiseLike<unknown>).then !== 'function') return r as IteratorResult<Uint8Array | string>
    return new Promise((resolve, reject) => {
      const wake = (value: IteratorResult<Uint8Array | string> | typeof ABORTED): void => {
        if (this.chunkWaiter === wake) this.chunkWaiter = undefined
        resolve(value)
      }
      this.chunkWaiter = wake
      ;(r as PromiseLike<IteratorResult<Uint8Array | string>>).then(wake, (err: unknown) => {
        if (this.chunkWaiter === wake) this.chunkWaiter = undefined
        reject(err)
      })
    })
  }

  private waitForRoom (): Promise<void> {
    return new Promise((resolve, reject) => { (this.sendWaiters ??= []).push({ resolve, reject }) })
  }

  /**
   * Queue one chunk of a streamed message as fragments of at most `maxFrameSize` (§5.4); the
   * session picks each one's opcode. An empty chunk sends nothing unless it is the `last`.
   * @throws TypeError for anything but bytes or a string.
   */
  queueChunk (chunk: Uint8Array | string, text: boolean, last = false): void {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    if (!(data instanceof Uint8Array)) throw new TypeError('a chunk of a streamed message must be a Uint8Array or a string')
    if (data.length === 0 && !last) return
    this.lastData = data.length
    if (this.compressing !== undefined) this.pushOutgoing({ kind: 'chunk', data, text, last })
    else this.writeChunk(data, text, last)
    this.queued()
  }

  /** Queue a chunk of a streamed message as fragments (§5.4). */
  private writeChunk (data: Uint8Array, text: boolean, last: boolean): void {
    const max = this.maxOutFrame
    let at = 0
    do {
      const end = Math.min(data.length, at + max)
      this.session.sendChunk(at === 0 && end === data.length ? data : data.subarray(at, end), !text, last && end === data.length)
      at = end
    } while (at < data.length)
  }

  /** End a streamed message: an empty final fragment (the chunks' end is known only after the last). */
  endStream (text: boolean): void {
    if (this.compressing !== undefined) this.pushOutgoing({ kind: 'chunk', data: EMPTY, text, last: true })
    else this.session.sendChunk(EMPTY, !text, true)
    this.queued()
  }

  /** A streamed message's chunks threw: it cannot be finished, so the connection closes with 1011. */
  failStream (err: unknown): void {
    this.logger?.debug({ err, protocol: this.protocol, remoteAddress: this.remoteAddress }, 'a streamed message failed part-way: closing the connection (1011)')
    if (!this.sendingStopped) this.closeWith(CloseCode.InternalError)
  }

  /** What `send()` and `ping()` reject with once the connection is closing, or closed once `closed` has settled. */
  closingError (code?: number): ConnectionClosedError {
    // The code `closed` settles with: the side that closed first (or the close owed to the peer).
    code ??= this.closeInfo?.code ?? (this.closedFirstByUs ? this.ourClose?.code : this.peerClose?.code) ?? this.ourClose?.code ?? this.session.pendingClose?.code ?? this.closeAfterOutgoing?.code ?? CloseCode.Abnormal
    return new ConnectionClosedError(this.closeInfo === undefined ? 'the connection is closing' : 'the connection is closed', code)
  }

  /** Calls of `send()` waiting for room: resolved on drain, rejected when sending stops. */
  private settleSendWaiters (room: boolean): void {
    const waiters = this.sendWaiters
    if (waiters === undefined) return
    this.sendWaiters = undefined
    const error = room ? undefined : this.closingError()
    for (const w of waiters) {
      if (error === undefined) w.resolve()
      else w.reject(error)
    }
  }

  /** Queue one message; flush at the end of the tick so a burst leaves in one write. */
  queueMessage (message: OutgoingMessage): void {
    if (typeof message === 'string') {
      const data = Buffer.from(message)
      this.lastData = data.length
      this.sendData(data, false, false)
    } else if (message instanceof Uint8Array) {
      this.lastData = message.length
      const session = this.session
      // A prepared message (a broadcast) carries its frame, encoded once for every connection.
      // A session that must transform each payload (an extension) compresses it instead, once for
      // all connections that negotiated alike.
      const prepared = preparedShare(message)
      if (prepared !== undefined && session.acceptsEncoded) {
        if (session.sendEncoded(prepared.bytes)) this.holdShared(prepared)
      } else if (this.deflate !== undefined) {
        this.sendData(message, !isText(message), prepared !== undefined)
      } else if (this.budget !== undefined && session.queuesByReference(message.length)) {
        // Queued by reference: the same message sent on many connections is held once.
        if (session.send(message, !isText(message))) this.holdShared(shareOf(message))
      } else {
        session.send(message, !isText(message))
      }
    } else {
      throw new TypeError('a message must be a string or a Uint8Array')
    }
    this.queued()
  }

  /** Queue a message polled from this connection's own source (an echo), text if it came as text. */
  queueEcho (message: Uint8Array, text: boolean): void {
    this.lastData = message.length
    this.sendData(message, !text, false)
    this.queued()
  }

  /** `shared` is now in the output: the budget counts it once, whoever else holds it. */
  private holdShared (shared: SharedBytes): void {
    if (this.budget === undefined || this.socketClosed || shared.size < SHARED_MIN) return
    if (!(this.shared ??= new SharedOutput()).add(shared, this.budget)) this.sharedRefused = true
  }

  /**
   * Queue one whole message: compressed by the extension when one was negotiated — at once when
   * it is small, else off the event loop, with what is sent after it waiting its turn.
   */
  private sendData (data: Uint8Array, binary: boolean, broadcast: boolean): void {
    const z = this.deflate
    if (z === undefined) {
      this.session.send(data, binary)
      return
    }
    if (this.compressing !== undefined) {
      this.pushOutgoing({ kind: 'message', data, binary, broadcast })
      return
    }
    const payload = z.deflate(data, broadcast, this.onDeflated!)
    if (payload === PENDING) {
      this.compressing = { kind: 'message', data, binary, broadcast }
      this.outgoingBytes += data.length + ITEM_OVERHEAD
      return
    }
    this.session.sendCompressed(data, binary, payload)
  }

  private pushOutgoing (item: Outgoing): void {
    ;(this.outgoing ??= new Fifo()).push(item)
    this.outgoingBytes += item.data.length + ITEM_OVERHEAD
  }

  /** The message being compressed off the loop is: send it, then what waited behind it, up to the next that must wait. */
  private deflated (payload: CompressedPayload | undefined): void {
    const done = this.compressing
    if (done === undefined || done.kind !== 'message' || this.socketClosed) return
    this.compressing = undefined
    this.outgoingBytes -= done.data.length + ITEM_OVERHEAD
    this.session.sendCompressed(done.data, done.binary, payload)
    const z = this.deflate!
    const outgoing = this.outgoing
    let item: Outgoing | undefined
    while (outgoing !== undefined && (item = outgoing.shift()) !== undefined) {
      this.outgoingBytes -= item.data.length + ITEM_OVERHEAD
      if (item.kind === 'chunk') {
        this.writeChunk(item.data, item.text, item.last)
        continue
      }
      const next = z.deflate(item.data, item.broadcast, this.onDeflated!)
      if (next === PENDING) {
        this.compressing = item
        this.outgoingBytes += item.data.length + ITEM_OVERHEAD
        break
      }
      this.session.sendCompressed(item.data, item.binary, next)
    }
    if (this.compressing === undefined) this.outgoing = undefined
    this.flush()
    this.checkZlibBudget()
    if (this.compressing !== undefined) return
    const close = this.closeAfterOutgoing
    if (close !== undefined) {
      this.closeAfterOutgoing = undefined
      this.closeWith(close.code, close.reason)
      return
    }
    // Whoever waited for these to go (the sink, send()) goes on.
    this.pump?.onDrain()
    if (this.sendWaiters !== undefined && !this.outputFull()) this.settleSendWaiters(true)
  }

  /** The peer's close or the socket's end: compressions under way and messages behind them are dropped, and inflating stops. */
  private dropZlibWork (): void {
    const z = this.deflate
    if (z === undefined) return
    this.stopInflating()
    z.cancel()
    this.compressing = undefined
    this.outgoing = undefined
    this.outgoingBytes = 0
    if (this.zlibTimer !== undefined) this.clock.clearTimeout(this.zlibTimer)
    this.zlibTimer = undefined
    this.pausedForZlib = false
  }

  /**
   * Inflate the compressed message the session left for later, once the receive queue has room
   * and the budgets allow: at once if it turns out small, else off the loop. Each one's bytes
   * go back to the session, which hands out what came after it (and maybe leaves the next one).
   */
  inflateLater (): void {
    const z = this.deflate!
    while (this.inflating && this.inflateWait === undefined && !this.socketClosed) {
      // RFC 7692 leaves the pace to us: the queue is past its mark, so this waits for its low mark.
      if (this.pausedForQueue) {
        this.inflateWait = 'room'
        return
      }
      let result: Uint8Array | number | undefined
      try {
        result = z.inflateLater(this.maxInflated, this.onInflated!)
      } catch (err) {
        this.inflated(err as ProtocolError, undefined)
        continue
      }
      if (result === undefined) {
        this.inflateWait = 'job'
        return
      }
      if (typeof result === 'number') {
        // Counted once per wait, not per look.
        if (this.inflateTimer === undefined) {
          this.compressionWaits++
          if (zlibBudgetWaitChannel.hasSubscribers) publishZlibBudgetWait(this, this.role, z.waitingOn, result)
        }
        this.inflateWait = 'timer'
        // Looked at again within BUDGET_RECHECK: what an inflate was charged ahead is given back when it ends.
        this.inflateTimer = this.clock.setTimeout(inflateTimerFired, Math.min(result, BUDGET_RECHECK), this)
        return
      }
      this.inflateTimer = undefined
      this.inflated(undefined, result)
    }
  }

  /** The budget wait is over: try again. */
  onInflateTimer (): void {
    if (this.inflateWait !== 'timer') return
    this.inflateWait = undefined
    this.inflateLater()
    // Still waiting (a new timer was set), or done waiting.
    if (this.inflateWait !== 'timer') this.inflateTimer = undefined
  }

  /** The message left for later is inflated (or failed): the session gets its bytes and goes on with what came after. */
  private inflated (error: ProtocolError | undefined, data: Uint8Array | undefined): void {
    if (this.socketClosed || !this.inflating) return
    if (!this.session.awaitingDecompressed) {
      // The session failed meanwhile (the memory budget): nothing more is handled.
      this.stopInflating()
      return
    }
    if (error === undefined && data === undefined) {
      // It cost more than the budgets had left: let in again, in full, once they allow.
      this.inflateWait = undefined
      this.inflateLater()
      return
    }
    this.inflating = false
    const wasJob = this.inflateWait === 'job'
    this.inflateWait = undefined
    let events: SessionEvent[]
    if (error !== undefined) {
      events = this.session.failWith(error instanceof ProtocolError ? error : new ProtocolError('WS_ERR_INTERNAL'))
    } else {
      // What follows may be inflated at once up to the mark, this message counted.
      this.deflate!.room = this.config.receiveHigh - this.source.cost - data!.length - ITEM_OVERHEAD
      events = this.session.decompressed(data!)
    }
    this.handleEvents(events)
    if (!this.inflating) this.updateReading()
    // Off the loop, the next one (if the session left one) is started here; at once, by the caller's loop.
    if (wasJob && this.inflating) this.inflateLater()
  }

  /** The session handles nothing more: the message left for later is not inflated. */
  private stopInflating (): void {
    this.inflating = false
    this.inflateWait = undefined
    if (this.inflateTimer !== undefined) this.clock.clearTimeout(this.inflateTimer)
    this.inflateTimer = undefined
    this.deflate?.cancelInflate()
  }

  /** This connection's zlib budget is spent: stop reading from it until it has recovered. */
  private checkZlibBudget (): void {
    const z = this.deflate
    if (z === undefined || this.pausedForZlib || this.socketClosed) return
    const wait = z.budget.wait()
    if (wait === 0) return
    this.pausedForZlib = true
    this.compressionWaits++
    if (zlibBudgetWaitChannel.hasSubscribers) publishZlibBudgetWait(this, this.role, 'connection', wait)
    this.updateReading()
    this.zlibTimer = this.clock.setTimeout(zlibTimerFired, Math.min(wait, BUDGET_RECHECK), this)
  }

  /** The budget's wait is over: read again, unless it is still spent (then look again later). */
  onZlibTimer (): void {
    this.zlibTimer = undefined
    const wait = this.deflate!.budget.wait()
    if (wait > 0 && !this.socketClosed) {
      this.zlibTimer = this.clock.setTimeout(zlibTimerFired, Math.min(wait, BUDGET_RECHECK), this)
      return
    }
    this.pausedForZlib = false
    this.updateReading()
  }

  private queued (): void {
    if (this.deflate !== undefined && !this.handling) this.checkZlibBudget()
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
    const transport = this.transport
    // 'drain' comes only once the socket's own high-water mark (16 KiB) was passed. When ours
    // is lower, or to be sure, the last write above it carries a callback: when it has been
    // written, so has everything before it, and whoever waits for room looks again.
    const watch = transport.writableLength + this.session.pendingOutput >= this.config.sendHigh ? (this.written ??= () => { this.onDrain() }) : undefined
    const out = this.session.takeOutput()
    const n = out.length
    if (n === 0) {
      // The peer's answer to our close leaves nothing to write, but TCP must still end (§7.1.1).
      if (this.session.shouldCloseTransport) this.endTransport()
      return
    }
    // Shared buffers in this output go back to the budget once the socket has written it.
    const done = this.shared?.flushed() === true
      ? watch !== undefined
        ? (this.sharedWrittenWatched ??= () => { this.onSharedWritten(); this.onDrain() })
        : (this.sharedWritten ??= () => { this.onSharedWritten() })
      : watch
    if (n === 1) {
      transport.write(out[0], done)
    } else {
      transport.cork()
      for (let i = 0; i < n - 1; i++) transport.write(out[i])
      transport.write(out[n - 1], done)
      transport.uncork()
    }
    const queued = transport.writableLength
    if (queued > this.peakOut) this.peakOut = queued
    // A peer that does not read our output (pongs included) is not read from either. The sink
    // already waits at sendHigh, so data passes it by at most the message that crossed it; this
    // stop sits above both, so only replies the sink does not make (pongs, close) reach it. Were
    // a big message to count, two peers each sending one would stop reading each other: deadlock.
    if (queued >= this.config.sendHigh * READ_STOP_FACTOR + this.lastData && !this.pausedForWrite) {
      this.pausedForWrite = true
      this.updateReading()
    }
    if (this.budget !== undefined && !this.handling) this.charge()
    if (this.session.shouldCloseTransport) this.endTransport()
  }

  /** The socket wrote the oldest batch of shared buffers given to it (or was destroyed with it). */
  private onSharedWritten (): void {
    const shared = this.shared!
    shared.written(this.budget!)
    // Their bytes went back to the budget above; this connection's slots for them go once all are written.
    if (shared.count === 0 && !this.socketClosed) this.charge()
  }

  private queuedOut (): number {
    return this.session.pendingOutput + this.transport.writableLength
  }

  /**
   * Memory held for this connection: undelivered input, the receive queue, output. A shared
   * buffer in the output counts as its slot here; the budget counts its bytes once for everyone.
   */
  private held (): number {
    let out = this.queuedOut()
    const shared = this.shared
    // At least 0: the socket drops what it wrote from its length just before the write callbacks run.
    if (shared !== undefined && shared.count > 0) out = Math.max(0, out - shared.bytes) + shared.count * SHARED_REF_COST
    return this.session.heldBytes + this.source.cost + out + this.outgoingBytes
  }

  /**
   * Report what this connection holds to the server's budget. Growth that finds the budget spent
   * fails the connection with 1013 (IANA: Try Again Later), which lets its buffers go.
   */
  private charge (): void {
    const budget = this.budget!
    const held = this.socketClosed ? 0 : this.held()
    const delta = held - this.charged
    this.charged = held
    const refused = this.sharedRefused
    this.sharedRefused = false
    if ((budget.charge(delta) && !refused) || this.socketClosed || this.protocolError !== undefined) return
    this.logger?.warn({ remoteAddress: this.remoteAddress, held, used: budget.used, limit: budget.limit }, 'memory budget exhausted: failing the connection that needed more (1013)')
    if (memoryBudgetExhaustedChannel.hasSubscribers) publishBudgetExhausted(this, undefined, held, budget.used, budget.limit)
    const events = this.session.failWith(new ProtocolError('WS_ERR_MEMORY_BUDGET'))
    for (let i = 0; i < events.length; i++) this.onEvent(events[i])
    const after = this.held()
    budget.charge(after - this.charged)
    this.charged = after
  }

  private updateReading (): void {
    // After a failure nothing more is parsed (§7.1.7): until our close is sent, what the peer
    // still sends stays in the kernel rather than be read and thrown away. Then reading resumes,
    // so the peer's end of TCP is seen.
    const pause = this.pausedForQueue || this.pausedForWrite || this.inflating || this.pausedForZlib || (this.protocolError !== undefined && this.session.pendingClose !== undefined)
    if (pause === this.readingPaused || this.socketClosed) return
    this.readingPaused = pause
    if (pause) {
      this.pauseCount++
      this.transport.pause()
    } else {
      this.transport.resume()
    }
  }

  onData (chunk: Uint8Array): void {
    this.seen = true
    const z = this.deflate
    // What this read may inflate at once: up to the receive queue's mark (then the rest waits).
    if (z !== undefined) z.room = this.config.receiveHigh - this.source.cost
    // Messages are handed out as plain Uint8Arrays (not Buffers), so they print and compare
    // like the bytes a user makes: one view per read, and the frames inside it are views of it.
    this.handleEvents(this.session.receive(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)))
    if (this.inflating && this.inflateWait === undefined) this.inflateLater()
  }

  private handleEvents (events: SessionEvent[]): void {
    // Replies made while these events are handed out (an echo) leave in the flush below.
    this.handling = true
    try {
      for (let i = 0; i < events.length; i++) this.onEvent(events[i])
      // What is still queued must not pin this read.
      this.source.settle()
      this.flush()
    } finally {
      this.handling = false
    }
    if (this.budget !== undefined) this.charge()
    if (this.deflate !== undefined) this.checkZlibBudget()
  }

  private onEvent (event: SessionEvent): void {
    switch (event.type) {
      case 'message': {
        let data = event.data
        // A message joined from parts or frames lies in a buffer from `alloc` (a Buffer, for
        // the output's sake): hand out a plain view of it.
        if (data instanceof Buffer) data = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
        ;(this.source as MessageSource).push(data, !event.binary)
        return
      }
      case 'chunk':
        (this.source as StreamSource).push(event.data, !event.binary, event.first, event.last)
        return
      case 'compressed':
        // Left for later (large, or no room): inflated by inflateLater(); until then, nothing is read.
        this.inflating = true
        this.updateReading()
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
        // Nothing after the bad frame is handled: a message left for later is dropped.
        if (this.inflating) this.stopInflating()
        // The session stops parsing once a close crosses, so no close of ours precedes this one.
        this.ourClose = { code: event.error.closeCode, reason: event.error.message }
        this.closedFirstByUs = true
        this.logger?.debug({ err: event.error, remoteAddress: this.remoteAddress }, 'peer broke the protocol')
        this.updateReading()
        this.source.end(event.error)
        this.onPeerClosing()
    }
  }

  private onPong (data: Uint8Array): void {
    if (this.heartbeatAwaiting) {
      // Answered: the next ping is due `interval` from now, not after the pong timeout.
      this.heartbeatAwaiting = false
      this.seen = false
      const now = this.clock.now()
      this.lastLife = now
      this.heartbeatDue = now + this.config.heartbeatInterval
    }
    // §5.5.3: a pong echoes its ping's payload, and a peer may answer only the latest ping: the
    // pong settles the ping it echoes and every earlier one.
    const pings = this.pings
    if (pings === undefined) return
    for (let i = 0; i < pings.length; i++) {
      if (!equalBytes(pings[i].data, data)) continue
      const answered = pings.splice(0, i + 1)
      const now = this.clock.now()
      for (const p of answered) p.resolve(now - p.sentAt)
      return
    }
  }

  /** We started the closing handshake (close() routes a close owed to the peer elsewhere). */
  private onLocalClose (code: number, reason: string): void {
    this.ourClose = { code, reason }
    this.closedFirstByUs = true
    this.stopSink()
    this.flush()
    // The peer's answer must be read even if the handler reads no more (the queue drops instead).
    this.source.release()
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
    const waiter = this.chunkWaiter
    this.chunkWaiter = undefined
    waiter?.(ABORTED)
  }

  /** Our close is sent or the socket is gone: the sink pulls no more; wake whatever waits. */
  private stopSink (): void {
    this.pump?.stop()
    this.settleSendWaiters(false)
    this.abortSignal()
  }

  /** §7.1.1: the server ends TCP first; a client waits for the server, up to the close timeout. */
  private endTransport (): void {
    if (this.socketClosed || this.transportEnding) return
    this.transportEnding = true
    // After a protocol error no answer to our close is awaited, on either side.
    if (this.role === 'server' || this.protocolError !== undefined) this.transport.end()
    this.armCloseTimer('closing', this.config.closeTimeout)
  }

  onDrain (): void {
    if (this.pausedForWrite && this.transport.writableLength < this.config.sendHigh) {
      this.pausedForWrite = false
      this.updateReading()
    }
    this.pump?.onDrain()
    if (this.sendWaiters !== undefined && this.transport.writableLength < this.config.sendHigh) this.settleSendWaiters(true)
    // What was written is no longer held: the budget gets it back now, not at the next message.
    if (this.budget !== undefined && !this.handling && !this.socketClosed) this.charge()
  }

  onEnd (): void {
    // The peer half-closed: no frame is coming any more. If its close came first, the answer it
    // is owed still goes out: on a half-open socket once the handler has replied (as usual; the
    // closing handshake then ends TCP), otherwise at once. Then we finish our side too.
    if (this.socketClosed) return
    if (this.session.pendingClose !== undefined && this.transport.allowHalfOpen === true) return
    this.sendOwedClose()
    this.transport.end()
  }

  onError (err: Error): void {
    this.socketError ??= err
  }

  onClose (): void {
    if (this.socketClosed) return
    this.socketClosed = true
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.timer = undefined
    this.stopHeartbeat()
    this.dropZlibWork()
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
    // The budget gets back all this connection charged, and its holds on shared buffers.
    if (this.budget !== undefined) {
      this.shared?.clear(this.budget)
      this.budget.charge(-this.charged)
      this.charged = 0
    }
    const pings = this.pings ?? []
    this.pings = undefined
    for (const p of pings) p.reject(new ConnectionClosedError('the connection closed before the pong', info.code))
    this.closeInfo = info
    this.resolveClosed?.(info)
    if (connectionCloseChannel.hasSubscribers) publishClose(this, this.role, info.code, info.reason, info.wasClean)
    this.onClosed?.(this)
  }

  /** Once closing starts, the heartbeat stops and one timer bounds the wait. */
  private armCloseTimer (stage: 'owing' | 'closing', ms: number): void {
    this.stopHeartbeat()
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.closeStage = stage
    this.timer = this.clock.setTimeout(timerFired, ms, this)
  }

  private stopHeartbeat (): void {
    if (this.config.heartbeatInterval > 0 && this.heartbeatDue !== Infinity) {
      this.heartbeatDue = Infinity
      heartbeatSweeper(Math.min(this.config.heartbeatInterval, this.config.heartbeatTimeout), this.clock).delete(this)
    }
  }

  onTimer (): void {
    this.timer = undefined
    if (this.socketClosed) return
    if (this.closeStage === 'closing') {
      // No close frame or no TCP end within closeTimeout: drop the connection.
      this.transport.destroy()
    } else if (this.closeStage === 'owing') {
      // The handler did not read up to the peer's protocol error in time: answer it now.
      this.sendOwedClose()
    }
  }

  /** The sweeper's visit, once `heartbeatDue` has passed. */
  onHeartbeat (now: number): void {
    if (this.socketClosed) return
    const writable = this.transport.writableLength
    const moved = this.source.taken !== this.takenAtVisit || writable < this.writableAtVisit
    this.takenAtVisit = this.source.taken
    this.writableAtVisit = writable
    const { heartbeatInterval: interval, heartbeatTimeout: timeout } = this.config
    const verdict = judge({ seen: this.seen, paused: this.readingPaused, moved, awaiting: this.heartbeatAwaiting, lastLife: this.lastLife }, now, interval, timeout)
    this.seen = false
    switch (verdict) {
      case 'alive':
        this.lastLife = now
        this.heartbeatAwaiting = false
        this.heartbeatDue = now + interval
        return
      case 'wait':
        this.heartbeatDue = Math.min(now + interval, this.lastLife + interval + timeout)
        return
      case 'drop':
        this.logger?.debug({ remoteAddress: this.remoteAddress, paused: this.readingPaused }, this.readingPaused
          ? 'nothing read or written within the heartbeat interval + timeout: dropping the peer'
          : 'no pong within the heartbeat timeout: dropping the peer')
        if (heartbeatDropChannel.hasSubscribers) publishHeartbeatDrop(this, this.role, this.readingPaused ? 'stalled' : 'pong-timeout')
        this.transport.destroy()
        return
      case 'ping':
        this.heartbeatAwaiting = true
        this.heartbeatPings++
        this.session.sendPing()
        this.flush()
        this.heartbeatDue = now + timeout
    }
  }
}

const kConnection = Symbol('wspipe.connection')

function owner (transport: Transport): WebSocketConnection {
  return (transport as unknown as Record<symbol, WebSocketConnection>)[kConnection]
}
function transportOnData (this: Transport, chunk: Uint8Array): void { owner(this).onData(chunk) }
function transportOnEnd (this: Transport): void { owner(this).onEnd() }
function transportOnClose (this: Transport): void { owner(this).onClose() }
function transportOnError (this: Transport, err: Error): void { owner(this).onError(err) }
function transportOnDrain (this: Transport): void { owner(this).onDrain() }
function flushLater (conn: WebSocketConnection): void { conn.flush() }
function timerFired (conn: WebSocketConnection): void { conn.onTimer() }
function replyLater (conn: WebSocketConnection): void { conn.sendOwedClose() }
function doneCheck (conn: WebSocketConnection): void { conn.closeIfDone() }
function inflateWhenRoom (conn: WebSocketConnection): void { conn.inflateLater() }
function inflateTimerFired (conn: WebSocketConnection): void { conn.onInflateTimer() }
function zlibTimerFired (conn: WebSocketConnection): void { conn.onZlibTimer() }

/** How long the close owed to a peer waits for the handler to read what came before it. */
const REPLY_GRACE = 1000

/** A connection waiting for a zlib budget looks again at least this often (ms). */
const BUDGET_RECHECK = 100

/** Reading stops when this many times `sendHighWaterMark` waits to be sent. */
const READ_STOP_FACTOR = 4

/**
 * A handler has settled with `err`: the error is logged (never sent to the peer: it may hold
 * secrets) and the connection closes with 1011. The connection's own failure, rethrown by
 * `source`, is the peer's fault and already answered (1002/1007/1009/1013, or lost: 1006): not
 * a handler bug.
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
