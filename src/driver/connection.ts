/**
 * The connection: one per transport. It holds its parts together — the inbound queue
 * (incoming.ts / streamed.ts), the sending engine (sink.ts), the output and its budget
 * (output.ts), reading pause and resume (reading.ts), the zlib work (compression.ts), the
 * heartbeat and pings (heartbeat.ts) — turns session events into the duplex, and (in the
 * closing group at the end) carries out the closing rules of DESIGN.md. No protocol rule lives
 * here: the session decides, the driver carries out.
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
import { PerMessageDeflate } from '../extensions/permessage-deflate.js'
import { connectionCloseChannel, connectionOpenChannel, heartbeatDropChannel, memoryBudgetExhaustedChannel, publishBudgetExhausted, publishClose, publishHeartbeatDrop, publishOpen } from '../diagnostics.js'
import { systemClock, type Clock, type ClockTimer } from './clock.js'
import { Compression, type CompressionOwner } from './compression.js'
import { Heartbeat, type HeartbeatOwner } from './heartbeat.js'
import { MessageSource, type IncomingOwner } from './incoming.js'
import { Output, type OutputOwner } from './output.js'
import { FOR_FAILURE, FOR_INFLATE, FOR_QUEUE, Reading } from './reading.js'
import { SinkPump, type SinkOwner } from './sink.js'
import { StreamSource, type StreamOwner } from './streamed.js'
import type { Transport } from './transport.js'
import { resolveLimits, type CloseInfo, type ConnectionStats, type DriverOptions, type Logger, type OutgoingMessage, type ResolvedLimits } from './types.js'

function allocUnsafe (size: number): Uint8Array {
  return Buffer.allocUnsafe(size)
}

const encoder = new TextEncoder()

/**
 * The driver: one per transport. Implements {@link Connection}, or in stream mode
 * {@link StreamConnection} (its `source` is then a {@link StreamSource}).
 */
export class WebSocketConnection implements IncomingOwner, SinkOwner, StreamOwner, OutputOwner, CompressionOwner, HeartbeatOwner {
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
  /** Where every timer of this connection runs. */
  readonly clock: Clock
  private readonly session: Session
  private readonly role: Role
  private readonly logger: Logger | undefined
  private readonly config: ResolvedLimits
  /** Bytes that came with the handshake, processed by start(). */
  private head: Uint8Array | undefined

  // The parts (reading is the output's: see the getter below).
  private readonly output: Output
  /** The zlib work, when permessage-deflate was negotiated. */
  private readonly compression: Compression | undefined
  private readonly heartbeat: Heartbeat
  /** The sending engine, made by the first `sink()` or `send()`. */
  private pump: SinkPump | undefined

  private boundSend: ((message: OutgoingMessage) => Promise<void>) | undefined
  private boundClose: ((code?: number, reason?: string) => void) | undefined
  private boundPing: ((data?: Uint8Array | string) => Promise<number>) | undefined

  // The closing group's fields (see the end of the class).
  /** The close timer (owing an answer, or waiting for the peer's); heartbeats use a shared sweeper. */
  private timer: ClockTimer | undefined
  private closeStage: 'owing' | 'closing' | undefined
  private socketClosed = false
  private socketError: Error | undefined
  private peerClose: { code: number, reason: string } | undefined
  private ourClose: { code: number, reason: string } | undefined
  private closedFirstByUs = false
  private protocolError: ProtocolError | undefined
  private transportEnding = false
  private closeInfo: CloseInfo | undefined
  /** `closed` is made on first use; most connections are never asked. */
  private closedPromise: Promise<CloseInfo> | undefined
  private resolveClosed: ((info: CloseInfo) => void) | undefined
  /** Made on first use of `signal`: most connections never ask, and it is not free. */
  private abortController: AbortController | undefined
  private abortReason: ConnectionClosedError | undefined
  /** A close of ours asked for while messages are being compressed: sent once they are. */
  private closeAfterOutgoing: { code: number, reason: string } | undefined
  private replyScheduled = false
  private doneCheckScheduled = false

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
    const config = this.config = options.resolved ?? resolveLimits(limits)
    const stream = options.stream
    const session = this.session = new Session({
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
    const reading = new Reading(transport)
    this.output = new Output(this, transport, session, reading, config, options.budget)
    if (options.compression instanceof PerMessageDeflate) {
      this.compression = new Compression(this, session, options.compression, this.clock, reading, options.role, config)
      this.output.compression = this.compression
    }
    if (stream !== undefined) {
      this.source = new StreamSource(this, config.receiveHigh, config.receiveLow)
      this.ownMessages = undefined
    } else {
      this.source = this.ownMessages = new MessageSource(this, config.receiveHigh, config.receiveLow)
    }
    this.sink = this.sink.bind(this)
    this.head = options.head !== undefined && options.head.length > 0 ? options.head : undefined
    ;(transport as unknown as Record<symbol, WebSocketConnection>)[kConnection] = this
    transport.on('data', transportOnData)
    transport.on('end', transportOnEnd)
    transport.on('close', transportOnClose)
    transport.on('error', transportOnError)
    transport.on('drain', transportOnDrain)
    this.heartbeat = new Heartbeat(this, config)
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

  stats (): ConnectionStats {
    return {
      queuedInBytes: this.source.cost,
      peakQueuedInBytes: this.source.peak,
      queuedOutBytes: this.output.queuedOut(),
      peakQueuedOutBytes: this.output.peak,
      pauses: this.reading.pauses,
      heartbeatPings: this.heartbeat.pings,
      heldBytes: this.output.held(),
      compressionWaits: this.compression?.waits ?? 0
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

  private sendPingFrame (data: Uint8Array | string = new Uint8Array(0)): Promise<number> {
    let payload: Uint8Array
    if (typeof data === 'string') payload = encoder.encode(data)
    else if (data instanceof Uint8Array) payload = data
    else return Promise.reject(new TypeError('a ping payload must be a Uint8Array or a string'))
    // §5.5: "All control frames MUST have a payload length of 125 bytes or less".
    if (payload.length > 125) return Promise.reject(new RangeError('a ping payload is at most 125 bytes (RFC 6455 §5.5)'))
    if (this.socketClosed || this.session.closing) return Promise.reject(this.closingError(this.session.sentCloseCode ?? CloseCode.Abnormal))
    // A copy: the caller may reuse its buffer before the pong comes.
    return this.heartbeat.ping(new Uint8Array(payload))
  }

  /** `sink`: sends each message of `source` (see {@link OutgoingMessage}); resolves when it ends. */
  sink (source: Source<OutgoingMessage>): Promise<void> {
    if (this.pump !== undefined) return Promise.reject(new InvalidStateError(this.pump.sends ? 'sink cannot be called on a connection that send() was used on' : 'sink can be called only once per connection'))
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
   * Send one message, for code that sends as it goes (an interactive client) rather than
   * through `sink`. Resolves once the message is queued and the output is below
   * `sendHighWaterMark` (at once, usually; else when the transport drains). Exclusive with
   * `sink`: one way of sending per connection, so the order of messages is never in question.
   * Messages go through the same engine as `sink`'s.
   */
  get send (): (message: OutgoingMessage) => Promise<void> {
    // Bound, like `sink`, so `({ source, send })` works; made on first use.
    return (this.boundSend ??= (message) => this.sendMessage(message))
  }

  private sendMessage (message: OutgoingMessage): Promise<void> {
    const pump = this.pump
    if (pump !== undefined && !pump.sends) return Promise.reject(new InvalidStateError('send() cannot be used on a connection whose sink was called: send through the sink\'s iterable (an Outbox, say)'))
    if (this.sendingStopped) return Promise.reject(this.closingError())
    return (pump ?? (this.pump = new SinkPump(this, undefined))).send(message)
  }

  /**
   * The handler returned `promise`: if it is this connection's sink promise, its end is the
   * handler's end (1000, or 1011 and a log line) and is reported without a `.then`.
   */
  adoptSinkPromise (promise: unknown, logger: Logger): boolean {
    const pump = this.pump
    if (promise === undefined || pump === undefined || promise !== pump.promise) return false
    pump.adopt(logger)
    return true
  }

  onHandlerSettled (error: unknown, logger?: Logger): void {
    if (error !== undefined) finishHandler(this, error, logger!)
    else this.closeWith(CloseCode.Normal)
  }

  /** Reading pause and resume: a part the output holds (one field fewer per connection). */
  private get reading (): Reading {
    return this.output.reading
  }

  // What the parts ask of the connection.

  get sendingStopped (): boolean {
    return this.socketClosed || this.session.closing || this.closeAfterOutgoing !== undefined
  }

  get dropWhenFull (): boolean {
    return this.session.closing
  }

  get fragmentsUnderWay (): boolean {
    return this.session.fragmentsUnderWay
  }

  get gone (): boolean {
    return this.socketClosed
  }

  get failed (): boolean {
    return this.protocolError !== undefined
  }

  get queuedIn (): number {
    return this.source.cost
  }

  get taken (): number {
    return this.source.taken
  }

  get writableLength (): number {
    return this.transport.writableLength
  }

  get readingPaused (): boolean {
    return this.reading.paused
  }

  heldBeside (): number {
    return this.source.cost + (this.compression?.outgoingBytes ?? 0)
  }

  outputFull (): boolean {
    // Messages being compressed go first: the sink waits for them (order), and wakes when they are sent.
    if (this.compression !== undefined && this.compression.busy) return true
    return this.output.full()
  }

  wakeSink (): void {
    this.pump?.pump()
  }

  offerToSink (message: Uint8Array, text: boolean): boolean {
    return this.pump?.offer(message, text) ?? false
  }

  queueFull (full: boolean): void {
    this.reading.set(FOR_QUEUE, full)
    // A compressed message waited for room: on the next turn, not inside the consumer's next().
    if (!full) this.compression?.roomAgain()
  }

  onQueueEmptied (): void {
    // Inside onData the charge comes once, at its end.
    if (!this.output.handling) this.output.charge()
  }

  queueMessage (message: OutgoingMessage): void {
    this.output.message(message)
  }

  queueEcho (message: Uint8Array, text: boolean): void {
    this.output.echo(message, text)
  }

  queueChunk (chunk: Uint8Array | string, text: boolean, last?: boolean): void {
    this.output.chunk(chunk, text, last)
  }

  endStream (text: boolean): void {
    this.output.endStream(text)
  }

  flush (): void {
    this.output.flush()
  }

  sendPing (payload?: Uint8Array): void {
    this.session.sendPing(payload)
    this.output.flush()
  }

  /** A streamed message's chunks threw: it cannot be finished, so the connection closes with 1011. */
  failStream (err: unknown): void {
    this.logger?.debug({ err, protocol: this.protocol, remoteAddress: this.remoteAddress }, 'a streamed message failed part-way: closing the connection (1011)')
    if (!this.sendingStopped) this.closeWith(CloseCode.InternalError)
  }

  /** The budget refused what this connection holds: it fails with 1013, which lets its buffers go. */
  failForBudget (held: number): void {
    const budget = this.output.budgetInfo()
    this.logger?.warn({ remoteAddress: this.remoteAddress, held, used: budget.used, limit: budget.limit }, 'memory budget exhausted: failing the connection that needed more (1013)')
    if (memoryBudgetExhaustedChannel.hasSubscribers) publishBudgetExhausted(this, undefined, held, budget.used, budget.limit)
    const events = this.session.failWith(new ProtocolError('WS_ERR_MEMORY_BUDGET'))
    for (let i = 0; i < events.length; i++) this.onEvent(events[i])
  }

  /** The heartbeat found no sign of life in time. */
  drop (stalled: boolean): void {
    this.logger?.debug({ remoteAddress: this.remoteAddress, paused: stalled }, stalled
      ? 'nothing read or written within the heartbeat interval + timeout: dropping the peer'
      : 'no pong within the heartbeat timeout: dropping the peer')
    if (heartbeatDropChannel.hasSubscribers) publishHeartbeatDrop(this, this.role, stalled ? 'stalled' : 'pong-timeout')
    this.transport.destroy()
  }

  /** Recompute the reasons to pause that the closing rules and the zlib work change. */
  private updateReading (): void {
    // After a failure nothing more is parsed (§7.1.7): until our close is sent, what the peer
    // still sends stays in the kernel rather than be read and thrown away. Then reading resumes,
    // so the peer's end of TCP is seen.
    const failed = this.protocolError !== undefined && this.session.pendingClose !== undefined
    const inflating = this.compression !== undefined && this.compression.inflating
    this.reading.assign(FOR_FAILURE | FOR_INFLATE, (failed ? FOR_FAILURE : 0) | (inflating ? FOR_INFLATE : 0))
  }

  // Bytes in, events out.

  onData (chunk: Uint8Array): void {
    this.heartbeat.seen = true
    const z = this.compression
    if (z !== undefined) z.beforeRead()
    // Messages are handed out as plain Uint8Arrays (not Buffers), so they print and compare
    // like the bytes a user makes: one view per read, and the frames inside it are views of it.
    this.handleEvents(this.session.receive(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)))
    if (z !== undefined) z.afterRead()
  }

  handleEvents (events: SessionEvent[]): void {
    const output = this.output
    // Replies made while these events are handed out (an echo) leave in the flush below.
    output.handling = true
    try {
      for (let i = 0; i < events.length; i++) this.onEvent(events[i])
      // What is still queued must not pin this read.
      this.source.settle()
      output.flush()
    } finally {
      output.handling = false
    }
    output.charge()
    this.compression?.checkBudget()
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
        // Left for later (large, or no room): inflated by the zlib part; until then, nothing is read.
        this.compression!.leftForLater()
        return
      case 'ping':
        return
      case 'pong':
        this.heartbeat.onPong(event.data)
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
        if (this.compression?.inflating === true) this.compression.stopInflating()
        // The session stops parsing once a close crosses, so no close of ours precedes this one.
        this.ourClose = { code: event.error.closeCode, reason: event.error.message }
        this.closedFirstByUs = true
        this.logger?.debug({ err: event.error, remoteAddress: this.remoteAddress }, 'peer broke the protocol')
        this.updateReading()
        this.source.end(event.error)
        this.onPeerClosing()
    }
  }

  onDrain (): void {
    this.output.drained()
    this.pump?.onDrain()
    // What was written is no longer held: the budget gets it back now, not at the next message.
    if (!this.output.handling && !this.socketClosed) this.output.charge()
  }

  // ─── Closing ─────────────────────────────────────────────────────────────────────────────────
  // The closing rules, kept together for the closing part (h-closing) to replace: closeWith,
  // failure, closeIfDone, scheduleDoneCheck, sendOwedClose, onLocalClose, onPeerClosing,
  // abortSignal, stopSink, endTransport, armCloseTimer, onTimer, onEnd/onClose/onError, and the
  // fields above marked as the closing group's.

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

  private closeWith (code: number = CloseCode.Normal, reason = ''): void {
    // A programmer's mistake is reported whatever the state (§7.4: only some codes may be sent).
    if (!Number.isInteger(code)) throw new TypeError(`a close code must be an integer, not ${typeof code === 'string' ? `the string '${code}'` : String(code)}`)
    if (!isValidCloseCode(code)) throw new RangeError(`close code ${code} may not be sent: use 1000, 1001-1003, 1007-1014 or 3000-4999 (RFC 6455 §7.4)`)
    if (typeof reason !== 'string') throw new TypeError('a close reason must be a string')
    if (Buffer.byteLength(reason) > 123) throw new RangeError('a close reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5)')
    if (this.socketClosed || this.session.closing || this.closeAfterOutgoing !== undefined) return
    // A close already owed to the peer (its close, or its protocol error) takes precedence.
    if (this.sendOwedClose()) return
    if (this.compression !== undefined && this.compression.busy) {
      // The messages already given to send go first (DESIGN "Closing"); nothing more is taken.
      this.closeAfterOutgoing = { code, reason }
      this.stopSink()
      return
    }
    this.session.sendClose(code, reason)
    this.onLocalClose(code, reason)
  }

  /** What waited behind compression is in the session: a close asked for meanwhile goes now; else the senders go on. */
  onOutgoingSent (): void {
    const close = this.closeAfterOutgoing
    if (close !== undefined) {
      this.closeAfterOutgoing = undefined
      this.closeWith(close.code, close.reason)
      return
    }
    // Whoever waited for these to go (the sink, send()) goes on.
    this.pump?.onDrain()
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

  /** The sink is done (or `send()` has nothing under way); if `source` was returned too, nothing is read or sent any more. */
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
    if (pump === undefined || pump.idle) this.closeWith(CloseCode.Normal)
    else if (pump.ended) this.closeWith(pump.failed ? CloseCode.InternalError : CloseCode.Normal)
  }

  /** Send the close frame owed to the peer, if any. */
  sendOwedClose (): boolean {
    const owed = this.session.pendingClose
    if (owed === undefined || this.socketClosed) return false
    // The peer closed or failed: what was still being compressed is dropped, as later writes are.
    this.compression?.drop()
    this.session.sendPendingClose()
    this.ourClose ??= { code: owed.code ?? CloseCode.NoStatusReceived, reason: owed.reason }
    this.stopSink()
    this.flush()
    if (this.reading.paused) this.updateReading()
    if (!this.socketClosed && !this.transportEnding) {
      this.armCloseTimer('closing', this.config.closeTimeout)
    }
    return true
  }

  /** Drop the connection at once, without a closing handshake (1006). */
  terminate (): void {
    if (!this.socketClosed) this.transport.destroy()
  }

  /** What `send()` and `ping()` reject with once the connection is closing, or closed once `closed` has settled. */
  closingError (code?: number): ConnectionClosedError {
    // The code `closed` settles with: the side that closed first (or the close owed to the peer).
    code ??= this.closeInfo?.code ?? (this.closedFirstByUs ? this.ourClose?.code : this.peerClose?.code) ?? this.ourClose?.code ?? this.session.pendingClose?.code ?? this.closeAfterOutgoing?.code ?? CloseCode.Abnormal
    return new ConnectionClosedError(this.closeInfo === undefined ? 'the connection is closing' : 'the connection is closed', code)
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
  }

  /** Our close is sent or the transport is gone: the sending engine stops; whatever waits wakes. */
  private stopSink (): void {
    this.pump?.stop()
    this.abortSignal()
  }

  /** §7.1.1: the server ends TCP first; a client waits for the server, up to the close timeout. */
  endTransport (): void {
    if (this.socketClosed || this.transportEnding) return
    this.transportEnding = true
    // After a protocol error no answer to our close is awaited, on either side.
    if (this.role === 'server' || this.protocolError !== undefined) this.transport.end()
    this.armCloseTimer('closing', this.config.closeTimeout)
  }

  onEnd (): void {
    // The peer half-closed: no frame is coming any more. If its close came first, the answer it
    // is owed still goes out: on a half-open transport once the handler has replied (as usual;
    // the closing handshake then ends TCP), otherwise at once. Then we finish our side too.
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
    this.reading.stop()
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.timer = undefined
    this.heartbeat.stop()
    this.compression?.drop()
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
    this.output.release()
    this.heartbeat.rejectPings(() => new ConnectionClosedError('the connection closed before the pong', info.code))
    this.closeInfo = info
    this.resolveClosed?.(info)
    if (connectionCloseChannel.hasSubscribers) publishClose(this, this.role, info.code, info.reason, info.wasClean)
    this.onClosed?.(this)
  }

  /** Once closing starts, the heartbeat stops and one timer bounds the wait. */
  private armCloseTimer (stage: 'owing' | 'closing', ms: number): void {
    this.heartbeat.stop()
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer)
    this.closeStage = stage
    this.timer = this.clock.setTimeout(timerFired, ms, this)
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
function timerFired (conn: WebSocketConnection): void { conn.onTimer() }
function replyLater (conn: WebSocketConnection): void { conn.sendOwedClose() }
function doneCheck (conn: WebSocketConnection): void { conn.closeIfDone() }

/** How long the close owed to a peer waits for the handler to read what came before it. */
const REPLY_GRACE = 1000

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
