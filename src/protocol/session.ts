/**
 * The message-level session: a sans-I/O state machine on top of {@link FrameParser}. Bytes go in
 * through {@link Session.receive}; whole messages, pings, pongs and the peer's close come out as
 * events; everything to send (messages, automatic pongs, close replies) queues as bytes for
 * {@link Session.takeOutput}. It owns every protocol decision and no timer: the driver carries
 * out {@link Session.closeDecision} (the close timer, when an owed close goes, the transport's
 * end) and runs the clocks.
 *
 * Its parts own their fields: the closing rules are closing.ts's, the frames it sends go through
 * a FrameWriter (frame-writer.ts) and the data frames it receives through a MessageAssembly
 * (message-assembly.ts); the session holds the parser, the closing state, control frames and the
 * order of handling.
 *
 * @example
 * ```ts
 * const session = new Session({ role: 'server' })
 * for (const event of session.receive(bytesFromSocket)) {
 *   if (event.type === 'message') session.send(event.data, event.binary)
 * }
 * socket.write(concat(session.takeOutput()))
 * ```
 *
 * @packageDocumentation
 */

import { CloseCode } from './close-codes.js'
import { closePayload, parseClosePayload } from './close-payload.js'
import { checkClose, closeDecision, closeOutcome, closeStep, inputStopped, isClosing, OPEN_CLOSE_STATE, type CloseDecision, type CloseInput, type CloseOutcome, type CloseState, type PendingClose } from './closing.js'
import { ProtocolError } from './errors.js'
import type { MessageCompression } from './extension.js'
import { FrameParser, type Frame, type Role, type WholeFrameTaker } from './frame-parser.js'
import { FrameWriter, newBytes } from './frame-writer.js'
import { MessageAssembly } from './message-assembly.js'
import { Opcode } from './opcode.js'
import { DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_MESSAGE_SIZE, type MessageReceiver, type SessionEvent, type SessionOptions, type SessionState } from './session-types.js'
import { maskInView } from './mask.js'
import { isUtf8 as jsIsUtf8 } from './utf8.js'

export { DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_MESSAGE_SIZE, type MessageReceiver, type SessionOptions, type SessionMessageEvent, type SessionChunkEvent, type SessionCompressedEvent, type SessionControlEvent, type SessionCloseEvent, type SessionErrorEvent, type SessionEvent, type SessionState } from './session-types.js'
export type { ClosePayload, PendingClose } from './closing.js'
export { parseClosePayload } from './close-payload.js'

const encoder = new TextEncoder()

/** One WebSocket connection's protocol state, either side. */
export class Session implements WholeFrameTaker {
  /** Which end this session is. */
  readonly role: Role
  /** {@link SessionOptions.streamMessages}. */
  readonly streamMessages: boolean
  private readonly parser: FrameParser
  /** The inbound side for data frames: reassembly, limits, UTF-8, what waits behind an inflating message. */
  private readonly messages: MessageAssembly
  /** The outbound side: frames encoded into the output queue. */
  private readonly writer: FrameWriter
  private readonly isUtf8: (bytes: Uint8Array) => boolean
  private readonly compression: MessageCompression | undefined
  private readonly deferClose: boolean

  /** Where the closing handshake stands: the one closing state (closing.ts), changed only by {@link Session.step}. */
  private close: CloseState = OPEN_CLOSE_STATE
  /** A fragmented message of ours is under way: its next frame is a continuation (§5.4). */
  private sendingFragments = false
  /**
   * Messages of this chunk echoed so far, as they were found ({@link MessageReceiver.echoesChunk}),
   * or -1 when this chunk's are not echoed. One field: every idle connection holds it.
   */
  private echoed = -1

  /**
   * An open session for `options.role` (the handshake is done elsewhere), with its limits and,
   * if negotiated, its compression.
   * @throws TypeError for a client session without a `mask` source, or streamed messages with compression.
   */
  constructor (options: SessionOptions) {
    this.role = options.role
    const maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
    this.streamMessages = options.streamMessages ?? false
    if (this.streamMessages && options.compression !== undefined) throw new TypeError('streamed messages cannot be compressed: an extension transforms whole messages')
    this.parser = new FrameParser({
      role: options.role,
      // A streamed frame is never held: only the message limit bounds it, checked per piece
      // (from the header on) by the message assembly, so a message refused at its first frame is handed out.
      maxFrameSize: this.streamMessages ? Infinity : Math.min(options.maxFrameSize ?? maxMessageSize, maxMessageSize),
      streamData: this.streamMessages,
      alloc: options.alloc,
      // RFC 7692 §6: permessage-deflate takes RSV1; where it may appear is checked per frame.
      allowedReservedBits: options.compression === undefined ? 0 : 0x40
    })
    this.compression = options.compression
    this.isUtf8 = options.isUtf8 ?? jsIsUtf8
    const alloc = options.alloc ?? newBytes
    this.writer = new FrameWriter(options.role === 'client', options.mask, alloc, options.view)
    this.messages = new MessageAssembly(this.parser, {
      maxMessageSize,
      maxFragments: options.maxFragments ?? DEFAULT_MAX_FRAGMENTS,
      isUtf8: this.isUtf8,
      alloc,
      compression: this.compression,
      streamMessages: this.streamMessages
    })
    this.deferClose = options.deferClose ?? false
  }

  /** See {@link SessionState}. */
  get state (): SessionState {
    const stage = this.close.stage
    if (stage === 'done' || stage === 'closed') return 'closed'
    // A failure whose close is held back by deferClose is no longer open: it is closing.
    return isClosing(this.close) ? 'closing' : 'open'
  }

  /** The one closing state: stage, close frames either way, failure, the transport's end (see closing.ts). */
  get closeState (): CloseState {
    return this.close
  }

  /**
   * What the driver is to do now: which close timer should run (a new name, a fresh timer) and
   * whether to keep, end (once the output is written) or destroy the transport. §7.1.1: the
   * server ends TCP first; a client waits for the server's end, within the timeout.
   */
  get closeDecision (): CloseDecision {
    return closeDecision(this.close, this.role)
  }

  /** What `closed` reports, as things stand (final once the transport is gone). */
  get closeOutcome (): CloseOutcome {
    return closeOutcome(this.close)
  }

  /** We have sent our close frame: nothing more may be sent (§5.5.1). */
  get closeSent (): boolean {
    return this.close.sent !== undefined
  }

  /** The peer's close frame has arrived. */
  get peerClosed (): boolean {
    return this.close.received !== undefined
  }

  /**
   * The closing handshake is over (both close frames crossed), or our close went out after a
   * failure (§7.1.7): TCP's end is due. Who ends it is {@link Session.closeDecision}'s to say
   * (§7.1.1: a server at once, a client once the server has, or after a failure).
   */
  get shouldCloseTransport (): boolean {
    return this.close.sent !== undefined && inputStopped(this.close)
  }

  /** The close frame held back by {@link SessionOptions.deferClose}, if one is owed. */
  get pendingClose (): PendingClose | undefined {
    return this.close.owed
  }

  /** Send the close frame held back by {@link SessionOptions.deferClose}. Returns false if none was owed. */
  sendPendingClose (): boolean {
    if (this.close.owed === undefined) return false
    return this.sendClose()
  }

  /** The code of the close frame we sent (1005 for an empty one), if any. */
  get sentCloseCode (): number | undefined {
    const sent = this.close.sent
    return sent === undefined ? undefined : sent.code ?? CloseCode.NoStatusReceived
  }

  /**
   * The peer ended its side of the transport (python-websockets' `receive_eof`): nothing more
   * will arrive. An owed close is queued now unless ours stays `writable` (a half-open
   * transport). See {@link Session.closeDecision} for what follows.
   */
  receiveEof (writable = false): void {
    this.step({ type: 'eof', writable })
  }

  /**
   * The close timer {@link Session.closeDecision} asked for fired: an owed close goes out now
   * (queued: flush it), or the transport is to be destroyed.
   */
  closeTimerFired (): void {
    this.step({ type: 'timeout' })
  }

  /** The transport is gone (`error`: it failed rather than ended): the outcome is final. */
  transportClosed (error = false): void {
    this.step({ type: 'closed', error })
    this.dropInput()
  }

  /**
   * The one way the closing state changes. A transition that sends our close frame queues it
   * here, so the frame and the state never disagree.
   */
  private step (input: CloseInput): void {
    const before = this.close
    const after = closeStep(before, input)
    const sent = after.sent
    if (sent !== before.sent && sent !== undefined) this.sendFrame(Opcode.Close, closePayload(sent.code, sent.reason), true)
    this.close = after
  }

  /** Bytes received but not yet part of a delivered message (partial frames and fragments). */
  get bufferedBytes (): number {
    return this.parser.bufferedBytes + this.messages.bufferedBytes
  }

  /**
   * Memory held for input not yet delivered, in bytes: {@link Session.bufferedBytes} plus what
   * holding it costs (room in copies, pinned reads, per-part overhead). What a memory budget should count.
   */
  get heldBytes (): number {
    return this.parser.heldBytes + this.messages.heldBytes + (this.compression?.heldBytes ?? 0)
  }

  /** A `compressed` event is out and its bytes are awaited ({@link Session.decompressed}): what arrives meanwhile is held. */
  get awaitingDecompressed (): boolean {
    return this.messages.awaiting !== undefined
  }

  /** Bytes queued for {@link Session.takeOutput}. */
  get pendingOutput (): number {
    return this.writer.pending
  }

  /**
   * Feed bytes from the transport. Never throws for anything the peer sends. With a `receiver`,
   * whole messages go to it as they complete, except one that follows another event of this
   * read: that one, and everything after it, comes in the returned array (see {@link MessageReceiver}).
   * A receiver must not call `receive` again (the parser is in the middle of the chunk): that throws.
   */
  receive (chunk: Uint8Array, receiver?: MessageReceiver): SessionEvent[] {
    const events: SessionEvent[] = []
    if (this.messages.receiver !== undefined) throw new Error('Session.receive re-entered from a receiver: queue the bytes and feed them after it returns')
    // §7.1.7 / §5.5.1: after failing, or after the peer's close, further bytes are discarded.
    if (inputStopped(this.close) || this.close.stage === 'closed' || this.messages.heldError !== undefined) return events
    const messages = this.messages
    // Whole messages in one small frame go to the receiver as the parser finds them (takeFrame),
    // with no Frame made, when nothing can stand before them: no message under way or awaited.
    const taker = receiver !== undefined && !messages.messageOpen && messages.awaiting === undefined && !this.streamMessages ? this : undefined
    messages.receiver = receiver
    this.parser.keepParts = taker !== undefined && receiver!.wantsParts === true
    // Decided once per chunk: whatever the chunk holds, no one sees its messages before they are sent back.
    this.echoed = taker !== undefined && this.close.sent === undefined && !this.sendingFragments && this.compression === undefined &&
      !this.writer.masked && receiver!.echoesChunk?.(chunk.length) === true ? 0 : -1
    try {
      // Frames completed before a bad header in the same chunk are still handed out first.
      const frames: Frame[] = []
      let parseError: unknown
      try {
        this.parser.push(chunk, frames, taker)
      } catch (err) {
        parseError = err
      }
      const echoed = this.echoed
      if (echoed >= 0) {
        this.echoed = -1
        if (echoed > 0) receiver!.onEchoed!(echoed)
      }
      // frames[0] may complete the frame whose start was already checked.
      const skip = messages.validatingFrame === undefined ? 0 : messages.validatedSkip(this.parser.pending)
      if (messages.awaiting !== undefined) {
        // Behind a message being inflated elsewhere: kept, in order, for decompressed().
        for (let i = 0; i < frames.length; i++) messages.hold(frames[i])
        messages.heldError = parseError
        return events
      }
      this.run(frames, skip, parseError, events)
    } finally {
      messages.receiver = undefined
    }
    return events
  }

  /**
   * The parser's offer of a whole small frame during {@link Session.receive} (see
   * {@link WholeFrameTaker}): a whole text or binary message (FIN, no RSV bit) goes straight to
   * the receiver, unmasked in place, or, when this chunk is echoed, straight into the output,
   * unmasked as it is copied. Anything else, and text that is not UTF-8, is left to the frame
   * path (as it came), which judges it in order.
   */
  takeFrame (b0: number, view: DataView | undefined, chunk: Uint8Array, start: number, end: number, key: number): boolean {
    const receiver = this.messages.receiver
    if (receiver === undefined) return false
    if (b0 === (0x80 | Opcode.Binary)) {
      // Only a server echoes, and a server's frames are masked: they come with a view.
      if (this.echoed >= 0 && view !== undefined) {
        // Copied into the output and unmasked there, as send() would copy it: no view, no hand-over.
        this.writer.frameFrom(Opcode.Binary, view, start, end, key)
        this.echoed++
        return true
      }
      if (view !== undefined) maskInView(view, chunk, start, end, key)
      receiver.onMessageAt(chunk, start, end, true)
      return true
    }
    if (b0 !== (0x80 | Opcode.Text)) return false
    if (view !== undefined) maskInView(view, chunk, start, end, key)
    const data = new Uint8Array(chunk.buffer, chunk.byteOffset + start, end - start)
    // §8.1: text must be UTF-8; the message assembly fails it with 1007.
    if (!this.isUtf8(data)) {
      // Left as it came (masked again): the parser's frame path unmasks it.
      if (view !== undefined) maskInView(view, chunk, start, end, key)
      return false
    }
    if (this.echoed >= 0 && view !== undefined) {
      this.writer.frameFrom(Opcode.Text, view, start, end, 0)
      this.echoed++
      return true
    }
    receiver.onMessage(data, false)
    return true
  }

  /**
   * The parser's offer of a long frame that arrived over several reads, as its parts (see
   * {@link WholeFrameTaker.takeParts}): a whole binary message (FIN, no RSV bit) goes to a
   * receiver that takes parts. Its length was checked against the limits from its header.
   */
  takeParts (b0: number, parts: readonly Uint8Array[], length: number): boolean {
    // The read starts with the end of a long message, which the room echoesChunk found for the
    // read did not count: its small messages go one by one, each as the sink would take it.
    this.echoed = -1
    const receiver = this.messages.receiver
    if (receiver?.onMessageParts === undefined || b0 !== (0x80 | Opcode.Binary)) return false
    return receiver.onMessageParts(parts, length)
  }

  /**
   * {@link Session.send} for a binary message given as `parts` (a received one, echoed): one
   * frame whose payload is the parts, queued by reference, never joined; with permessage-deflate
   * negotiated it goes uncompressed (RSV1 clear, as {@link Session.sendCompressed} with no
   * payload sends). False after our close.
   */
  sendParts (parts: readonly Uint8Array[]): boolean {
    if (this.close.sent !== undefined) return false
    this.checkNoFragments()
    this.writer.parts(Opcode.Binary, parts, false)
    return true
  }

  /** Handle parsed frames in order (then the parser's error, then the frame still arriving), until one leaves a message for later. */
  private run (frames: Frame[], skip: number, parseError: unknown, events: SessionEvent[]): void {
    const messages = this.messages
    try {
      // Stream mode: what is still to come of the frame the chunk ended in (its last piece here).
      const rest = this.streamMessages ? this.parser.pieceRemaining : 0
      for (let i = 0; i < frames.length; i++) {
        if (rest > 0) messages.pieceRest = i === frames.length - 1 ? rest : 0
        const frame = frames[i]
        if (frame.opcode >= Opcode.Close) this.onControlFrame(frame, events)
        else messages.onFrame(frame, i === 0 ? skip : 0, events)
        if (this.close.received !== undefined) return
        if (messages.awaiting !== undefined) {
          for (let j = i + 1; j < frames.length; j++) messages.hold(frames[j])
          messages.heldError = parseError
          return
        }
      }
      if (parseError !== undefined) throw parseError
      const pending = this.parser.pending
      if (pending !== undefined) messages.checkIncomplete(pending)
    } catch (err) {
      // Anything else is our bug: 1011, with no detail sent (it may be sensitive).
      this.fail(err instanceof ProtocolError ? err : new ProtocolError('WS_ERR_INTERNAL'), events)
    }
  }

  /**
   * The bytes of the message last handed out as a `compressed` event, inflated (within
   * `maxMessageSize`, which the inflater enforces: past it, call {@link Session.failWith} with
   * `WS_ERR_MESSAGE_TOO_BIG`). Returns its `message` event (text checked as UTF-8, §8.1), then
   * the events of what arrived after it, which may end with the next `compressed` event.
   * @throws Error when no compressed message awaits its bytes.
   */
  decompressed (data: Uint8Array): SessionEvent[] {
    const binary = this.messages.endAwaiting()
    const events: SessionEvent[] = []
    if (!binary && !this.isUtf8(data)) {
      this.fail(new ProtocolError('WS_ERR_INVALID_UTF8'), events)
      return events
    }
    events.push({ type: 'message', data, binary })
    const parseError = this.messages.heldError
    this.run(this.messages.takeHeld(), 0, parseError, events)
    return events
  }

  /** Queue a text message (a string is encoded as UTF-8; bytes are sent as they are). Returns false after our close. */
  sendText (data: string | Uint8Array): boolean {
    return this.sendMessage(Opcode.Text, typeof data === 'string' ? encoder.encode(data) : data)
  }

  /** Queue a binary message. Returns false after our close. */
  sendBinary (data: Uint8Array): boolean {
    return this.sendMessage(Opcode.Binary, data)
  }

  /** Queue a message of either type (compressed when an extension was negotiated and takes it). Returns false after our close. */
  send (data: Uint8Array, binary: boolean): boolean {
    return this.sendMessage(binary ? Opcode.Binary : Opcode.Text, data)
  }

  /**
   * {@link Session.send} for a payload that is `bytes[start, end)` (a message received in the
   * same read, echoed): no view of it is made when it is copied into the output.
   */
  sendAt (bytes: Uint8Array, start: number, end: number, binary: boolean): boolean {
    if (this.compression !== undefined) return this.send(bytes.subarray(start, end), binary)
    if (this.close.sent !== undefined) return false
    this.checkNoFragments()
    this.writer.frameAt(binary ? Opcode.Binary : Opcode.Text, bytes, start, end)
    return true
  }

  private sendMessage (opcode: number, data: Uint8Array): boolean {
    if (this.close.sent !== undefined) return false
    this.checkNoFragments()
    const compressed = this.compression?.compress(data)
    // RFC 7692 §6.1: RSV1 marks the (first) frame of a compressed message. The writer directly:
    // the close was checked above (an echo sends one message per message received).
    this.writer.frame(opcode, compressed ?? data, true, compressed !== undefined)
    return true
  }

  /**
   * Queue a message that the caller compressed with the negotiated extension (e.g. off the event
   * loop, or once for many connections): `compressed` is its payload, sent with RSV1 (RFC 7692
   * §6.1), or `undefined` to send `data` as it is. The payload is queued by reference when large,
   * and must not change. Returns false after our close.
   * @throws TypeError for a compressed payload when no compression was negotiated.
   */
  sendCompressed (data: Uint8Array, binary: boolean, compressed: Uint8Array | readonly Uint8Array[] | undefined): boolean {
    if (this.close.sent !== undefined) return false
    this.checkNoFragments()
    const opcode = binary ? Opcode.Binary : Opcode.Text
    if (compressed === undefined) return this.sendFrame(opcode, data, true)
    if (this.compression === undefined) throw new TypeError('a compressed payload needs a negotiated compression extension (RFC 7692 §6)')
    if (compressed instanceof Uint8Array) return this.sendFrame(opcode, compressed, true, true)
    if (compressed.length === 1) return this.sendFrame(opcode, compressed[0], true, true)
    this.writer.parts(opcode, compressed, true)
    return true
  }

  /**
   * Queue one fragment of a message (§5.4): the first with `Opcode.Text`/`Binary`, later ones with
   * `Opcode.Continuation`, the last with `fin`. Fragments are never compressed. Returns false
   * after our close.
   * @throws Error for a continuation with no message under way, or a new message while one is
   * (§5.4: the fragments of one message are not interleaved with another's).
   */
  sendFragment (opcode: number, data: Uint8Array, fin: boolean): boolean {
    if (this.close.sent !== undefined) return false
    if (opcode === Opcode.Continuation) {
      if (!this.sendingFragments) throw new Error('a continuation fragment with no message under way (RFC 6455 §5.4)')
    } else if (opcode === Opcode.Text || opcode === Opcode.Binary) {
      this.checkNoFragments()
    } else {
      throw new TypeError(`a fragment's opcode is Text, Binary or Continuation, not ${opcode}`)
    }
    this.sendingFragments = !fin
    return this.sendFrame(opcode, data, fin)
  }

  /**
   * Queue the next piece of a message sent as it comes: the first piece opens it (text or
   * binary), later ones continue it, and the one with `fin` ends it (§5.4). Returns false after
   * our close.
   */
  sendChunk (data: Uint8Array, binary: boolean, fin: boolean): boolean {
    return this.sendFragment(this.sendingFragments ? Opcode.Continuation : binary ? Opcode.Binary : Opcode.Text, data, fin)
  }

  /** A fragmented message of ours is under way: until its final fragment only control frames may be sent (§5.4). */
  get fragmentsUnderWay (): boolean {
    return this.sendingFragments
  }

  /** §5.4: no other data frame while one of our fragmented messages is under way. */
  private checkNoFragments (): void {
    if (this.sendingFragments) throw new Error('a message cannot start while a fragmented one is under way (RFC 6455 §5.4)')
  }

  /**
   * Can whole frames encoded elsewhere be queued as they are ({@link Session.sendEncoded})? Only
   * on a server (client frames are masked per frame, §5.3). Seam for extensions: a session whose
   * extension transforms each payload (permessage-deflate) must answer false, and its driver then
   * encodes such messages per connection.
   */
  get acceptsEncoded (): boolean {
    return !this.writer.masked && this.compression === undefined
  }

  /**
   * Is a payload of `length` bytes given to {@link Session.send} queued by reference (the very
   * object, among what {@link Session.takeOutput} returns)? Yes when {@link Session.acceptsEncoded}
   * and its frame is past the copy limit; a smaller one is copied into the output slab, and a
   * client masks a copy. A driver can then count a payload sent on many connections once.
   */
  queuesByReference (length: number): boolean {
    return this.acceptsEncoded && FrameWriter.byReference(length)
  }

  /**
   * Queue one whole, unfragmented frame encoded elsewhere, byte for byte: a server broadcasting a
   * message encodes its unmasked frame once and queues the same bytes on every connection. The
   * caller vouches for the frame (a data frame, FIN set, no RSV bits). It is queued by reference,
   * whatever its size, and must not change: a broadcast to many connections then holds one copy
   * of its bytes, not one per connection in each connection's slab. Returns false after our close.
   * @throws TypeError when {@link Session.acceptsEncoded} is false.
   */
  sendEncoded (frame: Uint8Array): boolean {
    if (!this.acceptsEncoded) throw new TypeError('this session cannot send frames encoded elsewhere')
    if (this.close.sent !== undefined) return false
    this.checkNoFragments()
    this.writer.encoded(frame)
    return true
  }

  /** Queue a ping (payload at most 125 bytes). Returns false after our close. */
  sendPing (data: Uint8Array = new Uint8Array(0)): boolean {
    if (data.length > 125) throw new RangeError('a ping payload is at most 125 bytes (RFC 6455 §5.5)')
    return this.sendFrame(Opcode.Ping, data, true)
  }

  /** Queue a pong (payload at most 125 bytes). Returns false after our close. */
  sendPong (data: Uint8Array = new Uint8Array(0)): boolean {
    if (data.length > 125) throw new RangeError('a pong payload is at most 125 bytes (RFC 6455 §5.5)')
    return this.sendFrame(Opcode.Pong, data, true)
  }

  /**
   * Start the closing handshake (§7.1.2), or answer the peer's close: when a close is owed (see
   * {@link Session.pendingClose}), the owed frame goes, whatever `code` says (§5.5.1 echoes the
   * peer's code; a failure sends its own). Without a code the close frame is empty. Returns
   * false if our close was already sent, or the transport is gone.
   * @throws as {@link checkClose}, for a code or reason that may not be sent.
   */
  sendClose (code?: number, reason = ''): boolean {
    checkClose(code, reason)
    if (this.close.sent !== undefined || this.close.stage === 'closed') return false
    // The incoming message stays: §7.1.2 lets the peer go on sending until its close arrives.
    this.step({ type: 'send', code, reason })
    return true
  }

  /**
   * Fail the connection from our side (§7.1.7), e.g. 1011 when a handler threw: sends a close
   * frame with `code` unless one was sent (or one is owed: that one goes), and stops processing input.
   * @throws as {@link checkClose}, for a code or reason that may not be sent.
   */
  abort (code: number, reason = ''): void {
    checkClose(code, reason)
    this.step({ type: 'fail', code, reason })
    this.step({ type: 'send', code, reason })
    this.dropInput()
  }

  /**
   * Fail the connection for a reason found outside the protocol (e.g. a memory budget, 1013):
   * like a protocol error of the peer, the close with `error.closeCode` is owed (held back under
   * {@link SessionOptions.deferClose}), buffered input is dropped, and the one `error` event is returned.
   */
  failWith (error: ProtocolError): SessionEvent[] {
    const events: SessionEvent[] = []
    if (inputStopped(this.close) || this.close.stage === 'closed') return events
    this.fail(error, events)
    return events
  }

  /**
   * Take what is queued for the transport, in order; the caller writes it. With `max`, at most
   * that many bytes (a long chunk is cut; the rest stays queued, in {@link Session.pendingOutput}).
   */
  takeOutput (max?: number): Uint8Array[] {
    return this.writer.take(max)
  }

  /**
   * What {@link Session.takeOutput} returned last is held by no one any more, nor any view of it
   * (the transport copied it): its room is reused for what is queued next. Never call it while
   * anything may still read those bytes.
   */
  outputReleased (): void {
    this.writer.takenReleased()
  }

  /** Queue one frame unless our close went out (§5.5.1: nothing after it). */
  private sendFrame (opcode: number, payload: Uint8Array, fin: boolean, rsv1 = false): boolean {
    if (this.close.sent !== undefined) return false
    this.writer.frame(opcode, payload, fin, rsv1)
    return true
  }

  /** A ping, pong or close (§5.5); data frames are the message assembly's. */
  private onControlFrame (frame: Frame, events: SessionEvent[]): void {
    // RFC 7692 §6: RSV1 only on the first frame of a data message (the parser let it through
    // only because an extension was negotiated).
    if (frame.rsv1) throw new ProtocolError('WS_ERR_UNEXPECTED_RSV', 'RSV1 is only for the first frame of a message (RFC 7692 §6)')
    const payload = frame.payload
    switch (frame.opcode) {
      case Opcode.Ping:
        // §5.5.2: answer with a pong carrying the same application data, unless we are closing.
        if (this.close.sent === undefined) this.sendFrame(Opcode.Pong, payload, true)
        events.push({ type: 'ping', data: payload })
        return
      case Opcode.Pong:
        events.push({ type: 'pong', data: payload })
        return
      default: {
        const { code, reason } = parseClosePayload(payload, this.isUtf8)
        this.step({ type: 'receive', code, reason })
        // §5.5.1: nothing after the close is read; what was buffered of it is let go.
        this.dropInput()
        // §5.5.1: the answer is owed (closing.ts); held back under deferClose.
        if (!this.deferClose) this.sendPendingClose()
        events.push({ type: 'close', code, reason })
      }
    }
  }

  private fail (error: ProtocolError, events: SessionEvent[]): void {
    this.step({ type: 'fail', code: error.closeCode, reason: error.message })
    if (!this.deferClose) this.sendPendingClose()
    this.dropInput()
    events.push({ type: 'error', error })
  }

  /** Nothing more is read (§5.5.1, §7.1.7): the open message, the parser's buffer and what waited behind an inflating message go. */
  private dropInput (): void {
    this.messages.drop()
    this.parser.discard()
    this.messages.dropHeld()
  }
}
