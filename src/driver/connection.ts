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
import { CloseCode } from '../protocol/close-codes.js'
import { ProtocolError } from '../protocol/errors.js'
import type { Role } from '../protocol/frame-parser.js'
import { Session, type MessageReceiver, type SessionEvent } from '../protocol/session.js'
import { fillMask } from '../crypto.js'
import { ConnectionClosedError, InvalidStateError } from '../errors.js'
import { PerMessageDeflate } from '../extensions/permessage-deflate.js'
import { connectionCloseChannel, connectionOpenChannel, heartbeatDropChannel, memoryBudgetExhaustedChannel, publishBudgetExhausted, publishClose, publishHeartbeatDrop, publishOpen } from '../diagnostics.js'
import { systemClock, type Clock } from './clock.js'
import { Closing, type ClosingOwner } from './closing.js'
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

/** A `Buffer` viewing part of `buffer`: what a socket's `write` takes as it is. */
function bufferView (buffer: ArrayBufferLike, byteOffset: number, length: number): Uint8Array {
  return Buffer.from(buffer as ArrayBuffer, byteOffset, length)
}

const encoder = new TextEncoder()

/**
 * The driver: one per transport. Implements {@link Connection}, or in stream mode
 * {@link StreamConnection} (its `source` is then a {@link StreamSource}).
 */
export class WebSocketConnection implements MessageReceiver, IncomingOwner, SinkOwner, StreamOwner, OutputOwner, CompressionOwner, HeartbeatOwner, ClosingOwner {
  readonly protocol: string
  readonly url: string
  readonly headers: Record<string, string | string[] | undefined>
  readonly remoteAddress: string | undefined
  readonly remotePort: number | undefined
  readonly httpVersion: '1.1' | '2'
  readonly source: MessageSource | StreamSource
  /** Called once the connection is gone (the server's bookkeeping; no promise needed). */
  onClosed: ((conn: WebSocketConnection) => void) | undefined

  private readonly transport: Transport
  /** Where every timer of this connection runs. */
  readonly clock: Clock
  private readonly session: Session
  private readonly logger: Logger | undefined
  private readonly config: ResolvedLimits

  // The parts (reading is the output's: see the getter below).
  private readonly output: Output
  /** The zlib work, when permessage-deflate was negotiated. */
  private readonly compression: Compression | undefined
  private readonly heartbeat: Heartbeat
  /** The sending engine, made by the first `sink()` or `send()`. */
  private pump: SinkPump | undefined

  /** `sink`, bound; made on first use (a handler that only reads never makes it). */
  private boundSink: ((source: Source<OutgoingMessage>) => Promise<void>) | undefined = undefined
  /** `send`, `close` and `ping`, bound, made on first use: one field for the three. */
  private bound: BoundMethods | undefined = undefined

  /** The closing part: the close timer, the transport's end, `closed` and `signal` (closing.ts). */
  private readonly closing: Closing

  constructor (transport: Transport, options: DriverOptions) {
    this.transport = transport
    this.clock = options.clock ?? systemClock
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
      view: bufferView,
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
    } else {
      this.source = new MessageSource(this, config.receiveHigh, config.receiveLow)
    }
    ;(transport as unknown as Record<symbol, WebSocketConnection>)[kConnection] = this
    transport.on('data', transportOnData)
    transport.on('end', transportOnEnd)
    transport.on('close', transportOnClose)
    transport.on('error', transportOnError)
    transport.on('drain', transportOnDrain)
    this.heartbeat = new Heartbeat(this, config)
    this.closing = new Closing(this, session, transport)
    // After the 101, before the handler (or connect()'s caller) gets the connection.
    if (connectionOpenChannel.hasSubscribers) publishOpen(this, this.role, this.protocol, this.remoteAddress)
  }

  /**
   * Process `head`, the bytes that came with the handshake. Called once a handler is in place,
   * so frames in the same TCP segment as the upgrade request are treated like frames that came
   * later. The caller keeps them meanwhile: the connection holds no field for them.
   */
  start (head: Uint8Array | undefined): void {
    if (head !== undefined && head.length > 0 && !this.closing.gone) this.onData(head)
  }

  /** The connection's own source, when the sink may poll it (whole messages only). */
  get ownMessages (): MessageSource | undefined {
    const source = this.source
    return source instanceof MessageSource ? source : undefined
  }

  private get role (): Role {
    return this.session.role
  }

  /** `closeTimeout`, for the closing part. */
  get closeTimeout (): number {
    return this.config.closeTimeout
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
    const bound = this.bound ??= {}
    return (bound.close ??= (code, reason) => { this.closing.close(code, reason) })
  }

  /** `ping`, bound; made on first use. */
  get ping (): (data?: Uint8Array | string) => Promise<number> {
    const bound = this.bound ??= {}
    return (bound.ping ??= (data) => this.sendPingFrame(data))
  }

  private sendPingFrame (data: Uint8Array | string = new Uint8Array(0)): Promise<number> {
    let payload: Uint8Array
    if (typeof data === 'string') payload = encoder.encode(data)
    else if (data instanceof Uint8Array) payload = data
    else return Promise.reject(new TypeError('a ping payload must be a Uint8Array or a string'))
    // §5.5: "All control frames MUST have a payload length of 125 bytes or less".
    if (payload.length > 125) return Promise.reject(new RangeError('a ping payload is at most 125 bytes (RFC 6455 §5.5)'))
    if (this.closing.gone || this.session.closeSent) return Promise.reject(this.closingError())
    // A copy: the caller may reuse its buffer before the pong comes.
    return this.heartbeat.ping(new Uint8Array(payload))
  }

  /** `sink`: sends each message of `source` (see {@link OutgoingMessage}); resolves when it ends. Bound, so `({ sink })` works; made on first use. */
  get sink (): (source: Source<OutgoingMessage>) => Promise<void> {
    return (this.boundSink ??= this.sinkFrom.bind(this))
  }

  /** `sink` was called and has not ended: a handler returning now cuts it short. */
  get sinkUnderWay (): boolean {
    return this.pump !== undefined && !this.pump.sends && !this.pump.ended
  }

  private sinkFrom (source: Source<OutgoingMessage>): Promise<void> {
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
    const bound = this.bound ??= {}
    return (bound.send ??= (message) => this.sendMessage(message))
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
    else this.closing.close(CloseCode.Normal)
  }

  /** Reading pause and resume: a part the output holds (one field fewer per connection). */
  private get reading (): Reading {
    return this.output.reading
  }

  // What the parts ask of the connection.

  get sendingStopped (): boolean {
    return this.closing.sendingStopped
  }

  get dropWhenFull (): boolean {
    return this.session.closeSent
  }

  get fragmentsUnderWay (): boolean {
    return this.session.fragmentsUnderWay
  }

  get gone (): boolean {
    return this.closing.gone
  }

  get failed (): boolean {
    return this.closing.failure !== undefined
  }

  get queuedIn (): number {
    return this.source.cost
  }

  get taken (): number {
    return this.source.taken
  }

  get outputWritten (): number {
    return this.output.writtenBytes
  }

  get outputQueued (): number {
    return this.output.queuedOut()
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

  roomFor (length: number): boolean {
    return this.output.roomFor(length)
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

  queueEchoAt (chunk: Uint8Array, start: number, end: number, text: boolean): void {
    this.output.echoAt(chunk, start, end, text)
  }

  queueEchoParts (parts: readonly Uint8Array[], length: number): void {
    this.output.echoParts(parts, length)
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
    if (!this.sendingStopped) this.closing.close(CloseCode.InternalError)
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
  updateReading (): void {
    // After a failure nothing more is parsed (§7.1.7): until our close is sent, what the peer
    // still sends stays in the kernel rather than be read and thrown away. Then reading resumes,
    // so the peer's end of TCP is seen.
    const failed = this.closing.failure !== undefined && this.session.pendingClose !== undefined
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
    const view = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    const output = this.output
    // Replies made while this read's messages are handed out (an echo) leave in one flush at its
    // end. The session hands whole messages straight to onMessage (no event object each).
    output.handling = true
    try {
      this.dispatch(this.session.receive(view, this))
    } finally {
      output.handling = false
    }
    this.afterHandling()
    if (z !== undefined) z.afterRead()
  }

  handleEvents (events: SessionEvent[]): void {
    const output = this.output
    // Replies made while these events are handed out (an echo) leave in the flush below.
    output.handling = true
    try {
      this.dispatch(events)
    } finally {
      output.handling = false
    }
    this.afterHandling()
  }

  private dispatch (events: SessionEvent[]): void {
    for (let i = 0; i < events.length; i++) this.onEvent(events[i])
    // What is still queued must not pin this read.
    this.source.settle()
    this.output.flush()
  }

  private afterHandling (): void {
    this.output.charge()
    this.compression?.checkBudget()
  }

  /** A whole message from the session (a `message` event, or handed over during receive). */
  onMessage (data: Uint8Array, binary: boolean): void {
    // A message joined from parts or frames lies in a buffer from `alloc` (a Buffer, for
    // the output's sake): hand out a plain view of it.
    if (data instanceof Buffer) data = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    ;(this.source as MessageSource).push(data, !binary)
  }

  /** A whole binary message lying at `chunk[start, end)` of the read (handed over during receive). */
  onMessageAt (chunk: Uint8Array, start: number, end: number, binary: boolean): void {
    const source = this.source as MessageSource
    // An echo's sink waits for exactly this: its frame is copied from the read, with no view made.
    if (source.sinkTakesNext && this.pump!.offerAt(chunk, start, end, !binary)) {
      source.taken++
      return
    }
    source.push(new Uint8Array(chunk.buffer, chunk.byteOffset + start, end - start), !binary)
  }

  /** An echo waits for its next message with room for all a chunk of `length` bytes holds: the session may echo its small messages itself (the session asks only with no compression negotiated). */
  echoesChunk (length: number): boolean {
    return (this.source as MessageSource).sinkTakesNext && this.pump!.takesChunk(length)
  }

  /** The session echoed `count` messages of the read being handled: the echo's sink took them. */
  onEchoed (count: number): void {
    this.source.taken += count
    this.output.echoed()
  }

  /** An echo (its own source polled, no compression) takes long messages as the parts they arrived in. */
  get wantsParts (): boolean {
    return this.compression === undefined && this.pump?.echoes === true
  }

  /** A long binary message as the parts it arrived in: an echo waiting for it writes them as they are, never joined. */
  onMessageParts (parts: readonly Uint8Array[], length: number): boolean {
    const source = this.source as MessageSource
    if (!source.sinkTakesNext || !this.pump!.offerParts(parts, length)) return false
    source.taken++
    return true
  }

  private onEvent (event: SessionEvent): void {
    switch (event.type) {
      case 'message':
        this.onMessage(event.data, event.binary)
        return
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
        // DESIGN "Closing": the peer's close is answered at once, after what is already being
        // written; the sink stops. Only a protocol error waits for the handler.
        this.closing.onPeerClose()
        return
      case 'error':
        // Nothing after the bad frame is handled: a message left for later is dropped.
        if (this.compression?.inflating === true) this.compression.stopInflating()
        this.logger?.debug({ err: event.error, remoteAddress: this.remoteAddress }, 'peer broke the protocol')
        this.closing.onFailure(event.error)
    }
  }

  onDrain (): void {
    this.output.drained()
    this.pump?.onDrain()
    // What was written is no longer held: the budget gets it back now, not at the next message.
    if (!this.output.handling && !this.closing.gone) this.output.charge()
  }

  // ─── Closing ─────────────────────────────────────────────────────────────────────────────────
  // The closing part (closing.ts) carries out the session's decisions; here, what it is given
  // and what it asks of the connection (ClosingOwner).

  get closed (): Promise<CloseInfo> {
    return this.closing.closed
  }

  get signal (): AbortSignal {
    return this.closing.signal
  }

  /** The connection is failing because the peer broke the protocol (the error `source` throws). */
  get failure (): ProtocolError | undefined {
    return this.closing.failure
  }

  /** What waited behind compression is in the session: a close asked for meanwhile goes now; else the senders go on. */
  onOutgoingSent (): void {
    if (this.closing.compressed()) return
    // Whoever waited for these to go (the sink, send()) goes on.
    this.pump?.onDrain()
  }

  /** The consumer of `source` has seen its end: the close owed to the peer can follow the replies. */
  onSourceDrained (): void {
    this.closing.onSourceDrained()
  }

  /**
   * The consumer returned `source` (a `break` out of `for await`, `first(source)`): it is done
   * reading. WebSocket has no half-close, so the connection closes (1000) once the sending side
   * is done too: right away when no sink is running, otherwise when the sink ends.
   */
  onSourceReturned (): void {
    this.closing.scheduleDoneCheck()
  }

  /** The sink is done (or `send()` has nothing under way); if `source` was returned too, nothing is read or sent any more. */
  onSinkEnded (): void {
    if (this.source.detached) this.closing.scheduleDoneCheck()
  }

  /** Both directions done (`source` returned): 1000, or 1011 if the sink's iterable threw; undefined while sending. */
  doneSending (): number | undefined {
    const pump = this.pump
    // A streamed message being sent by send() is finished first; its end checks again.
    if (pump === undefined || pump.idle) return CloseCode.Normal
    if (pump.ended) return pump.failed ? CloseCode.InternalError : CloseCode.Normal
    return undefined
  }

  /** Drop the connection at once, without a closing handshake (1006). */
  terminate (): void {
    if (!this.closing.gone) this.transport.destroy()
  }

  /** What `send()` and `ping()` reject with once the connection is closing, or closed once `closed` has settled. */
  closingError (code?: number): ConnectionClosedError {
    return this.closing.closingError(code)
  }

  /** The output was written: the closing part carries out the session's orders (§7.1.1). */
  afterFlush (): void {
    this.closing.afterFlush()
  }

  stopSending (): void {
    this.pump?.stop()
  }

  stopHeartbeat (): void {
    this.heartbeat.stop()
  }

  dropZlibWork (): void {
    this.compression?.drop()
  }

  get isCompressing (): boolean {
    return this.compression !== undefined && this.compression.busy
  }

  get sourceDetached (): boolean {
    return this.source.detached
  }

  endSource (error?: Error): void {
    this.source.end(error)
  }

  releaseSource (): void {
    this.source.release()
  }

  /** The transport is gone: the budget gets back all this connection charged (shared buffers too); pings reject; the server is told. */
  onGone (info: CloseInfo): void {
    this.output.release()
    this.heartbeat.rejectPings(() => new ConnectionClosedError('the connection closed before the pong', info.code))
    if (connectionCloseChannel.hasSubscribers) publishClose(this, this.role, info.code, info.reason, info.wasClean)
    this.onClosed?.(this)
  }

  onEnd (): void {
    this.closing.onEnd()
  }

  onError (err: Error): void {
    this.closing.onError(err)
  }

  onClose (): void {
    if (!this.closing.gone) this.reading.stop()
    this.closing.onClose()
  }
}

/** `send`, `close` and `ping` of one connection, bound. */
interface BoundMethods {
  send?: (message: OutgoingMessage) => Promise<void>
  close?: (code?: number, reason?: string) => void
  ping?: (data?: Uint8Array | string) => Promise<number>
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
