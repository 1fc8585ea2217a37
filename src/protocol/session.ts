/**
 * The message-level session: a sans-I/O state machine on top of {@link FrameParser}. Bytes go in
 * through {@link Session.receive}; whole messages, pings, pongs and the peer's close come out as
 * events; everything to send (messages, automatic pongs, close replies) queues as bytes for
 * {@link Session.takeOutput}. It owns every protocol decision and no timer: the driver asks it
 * {@link Session.shouldCloseTransport} and runs the clocks.
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

import { CloseCode, isValidCloseCode } from './close-codes.js'
import { checkClose, closeDecision, closeOutcome, closeStep, inputStopped, isClosing, OPEN_CLOSE_STATE, type CloseDecision, type CloseInput, type CloseOutcome, type ClosePayload, type CloseState, type PendingClose } from './closing.js'
import { frameHeaderSize, writeFrameHeader, type MaskSource } from './encode.js'
import { ProtocolError } from './errors.js'
import type { MessageCompression } from './extension.js'
import { Gatherer, ITEM_OVERHEAD } from './gather.js'
import { DEFAULT_MAX_FRAME_SIZE, FrameParser, type Frame, type IncompleteFrame, type Role } from './frame-parser.js'
import { applyMask } from './mask.js'
import { Opcode } from './opcode.js'
import { isUtf8 as jsIsUtf8, Utf8Validator } from './utf8.js'

/** Options of {@link Session}. Every limit has a default. */
export interface SessionOptions {
  /** Which end this session is: it decides masking (§5.1). */
  role: Role
  /** Largest message, in bytes, after reassembly. Default 16 MiB. Over it: 1009. */
  maxMessageSize?: number
  /** Largest single frame, in bytes. Default: `maxMessageSize`. Over it: 1009, refused from the header. */
  maxFrameSize?: number
  /**
   * Most frames in one message; over it: 1009. Default: no limit. A fragment costs its bytes and
   * no more (small ones are copied together, empty ones not kept), and those bytes are bounded by
   * `maxMessageSize` and counted in {@link Session.heldBytes}, so the count guards no memory. It
   * is for an application that wants to cap frames per message anyway.
   */
  maxFragments?: number
  /** Whole-buffer UTF-8 check; the Node driver passes `buffer.isUtf8`. Default: a plain-JS check. */
  isUtf8?: (bytes: Uint8Array) => boolean
  /** Random source for masking keys: required for a client (§5.3). */
  mask?: MaskSource
  /** Allocates outgoing buffers; the Node driver passes `Buffer.allocUnsafe`. Default: `new Uint8Array`. */
  alloc?: (size: number) => Uint8Array
  /**
   * Hold back the close frame that answers the peer's close, or that reports the peer's
   * protocol error, until {@link Session.sendPendingClose}: so replies to the messages that
   * came before it can still go out first (§5.5.1 lets an endpoint finish sending before its
   * close). Default false: the close is queued at once.
   */
  deferClose?: boolean
  /**
   * A negotiated per-message compression extension (RFC 7692 permessage-deflate): RSV1 is then
   * allowed on the first frame of a data message, and such messages pass through it. Default: none.
   */
  compression?: MessageCompression
  /**
   * Stream messages instead of reassembling them: data arrives as {@link SessionChunkEvent}s,
   * one per fragment or per read of a fragment, each checked (UTF-8 included) before it is
   * handed out. No message or frame is held, so `maxFrameSize` and `maxFragments` do not apply
   * to what is received; `maxMessageSize` still bounds the bytes of one message (a message
   * whose first frame cannot fit is opened by an empty first chunk before the 1009 error, so the
   * error belongs to it as when the limit is passed later). Not with `compression`. Default false.
   */
  streamMessages?: boolean
}

/** Default of {@link SessionOptions.maxMessageSize}. */
export const DEFAULT_MAX_MESSAGE_SIZE = DEFAULT_MAX_FRAME_SIZE
/**
 * Default of {@link SessionOptions.maxFragments}: no limit. Autobahn's 9.3.1 alone sends 65,537
 * frames (4 MiB in 64-byte fragments, then an empty final one).
 */
export const DEFAULT_MAX_FRAGMENTS = Infinity

/** A whole message: fragments reassembled, text already checked as UTF-8. */
export interface SessionMessageEvent {
  /** The discriminant. */
  readonly type: 'message'
  /** The payload, unmasked. */
  readonly data: Uint8Array
  /** Binary (opcode 2) rather than text (opcode 1). */
  readonly binary: boolean
}

/**
 * Part of a message, with {@link SessionOptions.streamMessages}: its bytes as they arrived
 * (unmasked; text checked as UTF-8 up to here). Every message starts with a chunk whose `first`
 * is true and ends with one whose `last` is true (the same chunk when it came in one piece);
 * only such chunks may be empty.
 */
export interface SessionChunkEvent {
  /** The discriminant. */
  readonly type: 'chunk'
  /** The bytes: a view of the received bytes, valid until they are reused by the caller. */
  readonly data: Uint8Array
  /** The message is binary (opcode 2) rather than text (opcode 1). */
  readonly binary: boolean
  /** This chunk starts a message. */
  readonly first: boolean
  /** This chunk ends its message (text then ends on a character boundary). */
  readonly last: boolean
}

/**
 * A whole compressed message that the extension left for later (its `decompress` returned
 * `undefined`: too large to inflate at once, or no room for it yet). The session processes
 * nothing received after it until {@link Session.decompressed} gives it the inflated bytes (or
 * {@link Session.failWith} fails the connection), so messages stay in order.
 */
export interface SessionCompressedEvent {
  /** The discriminant. */
  readonly type: 'compressed'
  /** Its compressed payloads in order (fragments, not joined): views of the received bytes. */
  readonly parts: readonly Uint8Array[]
  /** Binary (opcode 2) rather than text (opcode 1). */
  readonly binary: boolean
}

/** A ping (the pong is already queued) or a pong from the peer. */
export interface SessionControlEvent {
  /** The discriminant. */
  readonly type: 'ping' | 'pong'
  /** The application data, at most 125 bytes. */
  readonly data: Uint8Array
}

/** The peer's close frame (code 1005 when it carried none); the reply is already queued or owed. */
export interface SessionCloseEvent extends ClosePayload {
  /** The discriminant. */
  readonly type: 'close'
}

/** The peer broke the protocol or a limit; a close frame with `error.closeCode` is queued or owed. */
export interface SessionErrorEvent {
  /** The discriminant. */
  readonly type: 'error'
  /** What was broken, with the close code it yields. */
  readonly error: ProtocolError
}

/** What {@link Session.receive} reports. */
export type SessionEvent = SessionMessageEvent | SessionChunkEvent | SessionCompressedEvent | SessionControlEvent | SessionCloseEvent | SessionErrorEvent

export type { ClosePayload, PendingClose } from './closing.js'

/**
 * `open`: both may send. `closing`: one close frame has crossed, or the connection failed and
 * our close is still held back. `closed`: both have, or ours went out after a failure, or the
 * transport is gone. {@link Session.closeState} has the detail.
 */
export type SessionState = 'open' | 'closing' | 'closed'

/** Frames whose header and payload fit in this many bytes are copied into the output slab. */
const COPY_LIMIT = 4096
/** Slabs start small, so an idle connection holds none and a quiet one little, and double up to this. */
const SLAB_MAX = 64 * 1024
const SLAB_MIN = 1024
/** A slab with less room than this left is let go after a flush rather than kept. */
const SLAB_KEEP = 256
const EMPTY = new Uint8Array(0)

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** One WebSocket connection's protocol state, either side. */
export class Session {
  /** Which end this session is. */
  readonly role: Role
  private readonly parser: FrameParser
  private readonly maxMessageSize: number
  private readonly maxFragments: number
  private readonly isUtf8: (bytes: Uint8Array) => boolean
  private readonly mask: MaskSource | undefined
  private readonly alloc: (size: number) => Uint8Array
  private readonly masked: boolean
  private readonly compression: MessageCompression | undefined
  /** {@link SessionOptions.streamMessages}. */
  readonly streamMessages: boolean
  /** Stream mode: bytes still to come of the frame whose piece is being handled. */
  private pieceRest = 0

  /** Where the closing handshake stands: the one closing state (closing.ts), changed only by {@link Session.step}. */
  private close: CloseState = OPEN_CLOSE_STATE
  private readonly deferClose: boolean

  // The message being reassembled.
  private messageOpen = false
  private messageText = false
  private messageBytes = 0
  private messageFragments = 0
  /** The open message's first frame had RSV1: it is inflated once whole (RFC 7692 §6.2). */
  private messageCompressed = false
  /** A fragmented message of ours is under way: its next frame is a continuation (§5.4). */
  private sendingFragments = false
  /** The fragments of the open message, joined once when it is complete (small ones copied, so none pins its read). */
  private messageParts: Gatherer | undefined
  /** Made when first needed: only fragmented or still-arriving text uses it. */
  private utf8: Utf8Validator | undefined
  /** The parser's incomplete frame whose payload prefix was already validated, and how much of it. */
  private validatingFrame: Omit<IncompleteFrame, 'parts'> | undefined
  private validatedBytes = 0
  /** A compressed message was handed out to be inflated elsewhere (a `compressed` event): whether it is binary. */
  private awaiting: { binary: boolean } | undefined
  /**
   * Frames received while {@link Session.awaiting}, in order. None has a validated start: that
   * is checked only once all frames before it are handled, which is never while awaiting.
   */
  private held: Frame[] | undefined
  /** What the held frames cost: their bytes plus an item's overhead each. */
  private heldCost = 0
  /** The parser's error after the held frames. */
  private heldError: unknown

  // Outgoing bytes: small frames are packed into a slab, large payloads queued by reference.
  private output: Uint8Array[] | undefined
  private outputBytes = 0
  private slab: Uint8Array = EMPTY
  private nextSlabSize = SLAB_MIN
  private slabStart = 0
  private slabUsed = 0
  /** A client's masking key (a server never masks). */
  private readonly maskKey: Uint8Array

  /**
   * An open session for `options.role` (the handshake is done elsewhere), with its limits and,
   * if negotiated, its compression.
   * @throws TypeError for a client session without a `mask` source, or streamed messages with compression.
   */
  constructor (options: SessionOptions) {
    this.role = options.role
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE
    this.maxFragments = options.maxFragments ?? DEFAULT_MAX_FRAGMENTS
    this.streamMessages = options.streamMessages ?? false
    if (this.streamMessages && options.compression !== undefined) throw new TypeError('streamed messages cannot be compressed: an extension transforms whole messages')
    this.parser = new FrameParser({
      role: options.role,
      // A streamed frame is never held: only the message limit bounds it, checked per piece
      // (from the header on) by onChunk, so a message refused at its first frame is handed out.
      maxFrameSize: this.streamMessages ? Infinity : Math.min(options.maxFrameSize ?? this.maxMessageSize, this.maxMessageSize),
      streamData: this.streamMessages,
      alloc: options.alloc,
      // RFC 7692 §6: permessage-deflate takes RSV1; where it may appear is checked per frame below.
      allowedReservedBits: options.compression === undefined ? 0 : 0x40
    })
    this.compression = options.compression
    this.isUtf8 = options.isUtf8 ?? jsIsUtf8
    this.mask = options.mask
    this.masked = options.role === 'client'
    this.maskKey = this.masked ? new Uint8Array(4) : EMPTY
    if (this.masked && this.mask === undefined) throw new TypeError('a client session needs a mask source')
    this.alloc = options.alloc ?? ((size) => new Uint8Array(size))
    this.deferClose = options.deferClose ?? false
  }

  private validator (): Utf8Validator {
    return (this.utf8 ??= new Utf8Validator())
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
   * will arrive. See {@link Session.closeDecision} for what follows.
   */
  receiveEof (): void {
    this.step({ type: 'eof' })
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
    this.dropMessage()
    this.parser.discard()
    this.dropHeld()
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
    // A streamed message's bytes are handed out as they come: none are held.
    return this.parser.bufferedBytes + (this.messageOpen && !this.streamMessages ? this.messageBytes : 0) + this.heldCost
  }

  /**
   * Memory held for input not yet delivered, in bytes: {@link Session.bufferedBytes} plus what
   * holding it costs (room in copies, pinned reads, per-part overhead). What a memory budget should count.
   */
  get heldBytes (): number {
    return this.parser.heldBytes + (this.messageParts?.held ?? 0) + (this.compression?.heldBytes ?? 0) + this.heldCost
  }

  /** A `compressed` event is out and its bytes are awaited ({@link Session.decompressed}): what arrives meanwhile is held. */
  get awaitingDecompressed (): boolean {
    return this.awaiting !== undefined
  }

  /** Bytes queued for {@link Session.takeOutput}. */
  get pendingOutput (): number {
    return this.outputBytes + (this.slabUsed - this.slabStart)
  }

  /** Feed bytes from the transport. Never throws for anything the peer sends. */
  receive (chunk: Uint8Array): SessionEvent[] {
    const events: SessionEvent[] = []
    // §7.1.7 / §5.5.1: after failing, or after the peer's close, further bytes are discarded.
    if (inputStopped(this.close) || this.close.stage === 'closed' || this.heldError !== undefined) return events
    // Frames completed before a bad header in the same chunk are still handed out first.
    const frames: Frame[] = []
    let parseError: unknown
    try {
      this.parser.push(chunk, frames)
    } catch (err) {
      parseError = err
    }
    let skip = 0
    if (this.validatingFrame !== undefined && this.parser.pending !== this.validatingFrame) {
      // frames[0] completes the frame whose start we already checked.
      skip = this.validatedBytes
      this.validatingFrame = undefined
    }
    if (this.awaiting !== undefined) {
      // Behind a message being inflated elsewhere: kept, in order, for decompressed().
      for (let i = 0; i < frames.length; i++) this.hold(frames[i])
      this.heldError = parseError
      return events
    }
    this.run(frames, skip, parseError, events)
    return events
  }

  /** Handle parsed frames in order (then the parser's error, then the frame still arriving), until one leaves a message for later. */
  private run (frames: Frame[], skip: number, parseError: unknown, events: SessionEvent[]): void {
    try {
      // Stream mode: what is still to come of the frame the chunk ended in (its last piece here).
      const rest = this.streamMessages ? this.parser.pieceRemaining : 0
      for (let i = 0; i < frames.length; i++) {
        if (rest > 0) this.pieceRest = i === frames.length - 1 ? rest : 0
        this.onFrame(frames[i], i === 0 ? skip : 0, events)
        if (this.close.received !== undefined) return
        if (this.awaiting !== undefined) {
          for (let j = i + 1; j < frames.length; j++) this.hold(frames[j])
          this.heldError = parseError
          return
        }
      }
      if (parseError !== undefined) throw parseError
      const pending = this.parser.pending
      if (pending !== undefined) this.checkIncomplete(pending)
    } catch (err) {
      // Anything else is our bug: 1011, with no detail sent (it may be sensitive).
      this.fail(err instanceof ProtocolError ? err : new ProtocolError('WS_ERR_INTERNAL'), events)
    }
  }

  /** Keep a frame that arrived behind a message being inflated; a small view is copied, so it does not pin its read. */
  private hold (frame: Frame): void {
    const p = frame.payload
    if (p.length * 2 < p.buffer.byteLength) frame = { ...frame, payload: p.slice() }
    ;(this.held ??= []).push(frame)
    this.heldCost += p.length + ITEM_OVERHEAD
  }

  /**
   * The bytes of the message last handed out as a `compressed` event, inflated (within
   * `maxMessageSize`, which the inflater enforces: past it, call {@link Session.failWith} with
   * `WS_ERR_MESSAGE_TOO_BIG`). Returns its `message` event (text checked as UTF-8, §8.1), then
   * the events of what arrived after it, which may end with the next `compressed` event.
   * @throws Error when no compressed message awaits its bytes.
   */
  decompressed (data: Uint8Array): SessionEvent[] {
    const awaiting = this.awaiting
    if (awaiting === undefined) throw new Error('no compressed message awaits its bytes')
    this.awaiting = undefined
    const events: SessionEvent[] = []
    if (!awaiting.binary && !this.isUtf8(data)) {
      this.fail(new ProtocolError('WS_ERR_INVALID_UTF8'), events)
      return events
    }
    events.push({ type: 'message', data, binary: awaiting.binary })
    const held = this.held ?? []
    const parseError = this.heldError
    this.held = undefined
    this.heldCost = 0
    this.heldError = undefined
    this.run(held, 0, parseError, events)
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

  private sendMessage (opcode: number, data: Uint8Array): boolean {
    if (this.close.sent !== undefined) return false
    this.checkNoFragments()
    const compressed = this.compression?.compress(data)
    // RFC 7692 §6.1: RSV1 marks the (first) frame of a compressed message.
    if (compressed !== undefined) return this.sendFrame(opcode, compressed, true, true)
    return this.sendFrame(opcode, data, true)
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
    return this.sendParts(opcode, compressed)
  }

  /** One frame whose payload is `parts`, in order: the parts are queued as they are (a client masks a copy), never joined. */
  private sendParts (opcode: number, parts: readonly Uint8Array[]): boolean {
    let length = 0
    for (const p of parts) length += p.length
    if (this.slabUsed + 14 > this.slab.length) this.newSlab(14)
    let at = writeFrameHeader(this.slab, this.slabUsed, opcode, length, true, true, this.masked)
    if (this.masked) at = this.writeMaskKey(this.slab, at)
    this.slabUsed = at
    this.flushSlab()
    const key = this.maskKey
    let offset = 0
    for (const p of parts) {
      let body = p
      if (this.masked) {
        body = this.alloc(p.length)
        body.set(p)
        // The key's cycle goes on across the parts (§5.3: octet i is XORed with key octet i mod 4).
        applyMask(body, key[0], key[1], key[2], key[3], offset)
      }
      offset += p.length
      ;(this.output ??= []).push(body)
      this.outputBytes += body.length
    }
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
    return !this.masked && this.compression === undefined
  }

  /**
   * Is a payload of `length` bytes given to {@link Session.send} queued by reference (the very
   * object, among what {@link Session.takeOutput} returns)? Yes when {@link Session.acceptsEncoded}
   * and its frame is past the copy limit; a smaller one is copied into the output slab, and a
   * client masks a copy. A driver can then count a payload sent on many connections once.
   */
  queuesByReference (length: number): boolean {
    return this.acceptsEncoded && frameHeaderSize(length, false) + length > COPY_LIMIT
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
    const length = frame.length
    if (this.slabUsed > this.slabStart) this.flushSlab()
    ;(this.output ??= []).push(frame)
    this.outputBytes += length
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
    this.dropMessage()
    this.parser.discard()
    this.dropHeld()
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

  /** Take everything queued for the transport, in order; the caller writes it. */
  takeOutput (): Uint8Array[] {
    if (this.slabUsed > this.slabStart) this.flushSlab()
    // Let a nearly full slab go now rather than hold it while the connection idles.
    if (this.slab.length - this.slabUsed < SLAB_KEEP) {
      this.slab = EMPTY
      this.slabStart = 0
      this.slabUsed = 0
    }
    const out = this.output
    // Never the internal array, so a caller's array never grows behind its back.
    if (out === undefined) return []
    this.output = undefined
    this.outputBytes = 0
    return out
  }

  private sendFrame (opcode: number, payload: Uint8Array, fin: boolean, rsv1 = false): boolean {
    if (this.close.sent !== undefined) return false
    const length = payload.length
    const headerLen = frameHeaderSize(length, this.masked)
    if (headerLen + length <= COPY_LIMIT) {
      // Small frame: header and payload copied into the slab, so many frames leave in one write.
      if (this.slabUsed + headerLen + length > this.slab.length) this.newSlab(headerLen + length)
      const slab = this.slab
      let at = writeFrameHeader(slab, this.slabUsed, opcode, length, fin, rsv1, this.masked)
      if (this.masked) at = this.writeMaskKey(slab, at)
      slab.set(payload, at)
      if (this.masked && length > 0) {
        const key = this.maskKey
        applyMask(slab.subarray(at, at + length), key[0], key[1], key[2], key[3])
      }
      this.slabUsed = at + length
      return true
    }
    // Large frame: a header in the slab, then the payload by reference (a masked copy for a client).
    if (this.slabUsed + 14 > this.slab.length) this.newSlab(14)
    let at = writeFrameHeader(this.slab, this.slabUsed, opcode, length, fin, rsv1, this.masked)
    if (this.masked) at = this.writeMaskKey(this.slab, at)
    this.slabUsed = at
    this.flushSlab()
    let body = payload
    if (this.masked) {
      body = this.alloc(length)
      body.set(payload)
      const key = this.maskKey
      applyMask(body, key[0], key[1], key[2], key[3])
    }
    ;(this.output ??= []).push(body)
    this.outputBytes += length
    return true
  }

  private writeMaskKey (slab: Uint8Array, at: number): number {
    const key = this.maskKey
    this.mask!(key)
    slab[at] = key[0]; slab[at + 1] = key[1]; slab[at + 2] = key[2]; slab[at + 3] = key[3]
    return at + 4
  }

  private flushSlab (): void {
    ;(this.output ??= []).push(this.slab.subarray(this.slabStart, this.slabUsed))
    this.outputBytes += this.slabUsed - this.slabStart
    this.slabStart = this.slabUsed
  }

  /** Queued slices of the old slab stay valid: a fresh slab is taken rather than reused. */
  private newSlab (atLeast: number): void {
    if (this.slabUsed > this.slabStart) this.flushSlab()
    // A connection that keeps filling slabs gets bigger ones: fewer allocations, larger writes.
    const size = Math.max(atLeast, this.nextSlabSize)
    if (this.slab !== EMPTY && this.nextSlabSize < SLAB_MAX) this.nextSlabSize *= 2
    this.slab = this.alloc(size)
    this.slabStart = 0
    this.slabUsed = 0
  }

  private onFrame (frame: Frame, skip: number, events: SessionEvent[]): void {
    const opcode = frame.opcode
    // RFC 7692 §6: RSV1 only on the first frame of a data message (the parser let it through
    // only because an extension was negotiated); on a control frame or a continuation it is 1002.
    if (frame.rsv1 && (opcode >= Opcode.Close || opcode === Opcode.Continuation)) throw new ProtocolError('WS_ERR_UNEXPECTED_RSV', 'RSV1 is only for the first frame of a message (RFC 7692 §6)')
    if (opcode >= Opcode.Close) {
      this.onControlFrame(frame, events)
      return
    }
    const payload = frame.payload
    if (opcode === Opcode.Continuation) {
      // §5.4: a continuation needs an open message.
      if (!this.messageOpen) throw new ProtocolError('WS_ERR_UNEXPECTED_CONTINUATION')
    } else {
      // §5.4: "fragments of one message MUST NOT be interleaved" with another message.
      if (this.messageOpen) throw new ProtocolError('WS_ERR_EXPECTED_CONTINUATION')
      if (this.streamMessages) {
        this.messageText = opcode === Opcode.Text
        this.messageBytes = 0
        if (this.messageText) this.validator().reset()
      }
    }
    if (this.streamMessages) {
      this.onChunk(frame, opcode !== Opcode.Continuation, events)
      return
    }
    if (opcode !== Opcode.Continuation) {
      if (frame.fin) {
        if (frame.rsv1) this.onCompressedMessage(opcode, [payload], events)
        else this.onWholeMessage(frame, skip, events)
        return
      }
      this.messageOpen = true
      this.messageText = opcode === Opcode.Text
      this.messageCompressed = frame.rsv1
      this.messageBytes = 0
      this.messageFragments = 0
      if (this.messageText && !this.messageCompressed && skip === 0) this.validator().reset()
    }
    this.messageBytes += payload.length
    if (this.messageBytes > this.maxMessageSize) throw new ProtocolError('WS_ERR_MESSAGE_TOO_BIG')
    if (++this.messageFragments > this.maxFragments) throw new ProtocolError('WS_ERR_TOO_MANY_FRAGMENTS')
    if (this.messageCompressed) {
      // Compressed fragments are held (and counted in heldBytes) until the message is whole.
      if (!frame.fin) {
        if (payload.length > 0) (this.messageParts ??= new Gatherer()).append(payload)
        return
      }
      const parts = this.messageParts?.parts ?? []
      if (payload.length > 0) parts.push(payload)
      const text = opcode === Opcode.Continuation ? this.messageText : opcode === Opcode.Text
      this.dropMessage()
      this.onCompressedMessage(text ? Opcode.Text : Opcode.Binary, parts, events)
      return
    }
    // §8.1: fail on the fragment that breaks UTF-8, not at the end of the message.
    if (this.messageText && !this.validator().push(payload, skip)) throw new ProtocolError('WS_ERR_INVALID_UTF8')
    if (!frame.fin) {
      if (payload.length > 0) (this.messageParts ??= new Gatherer()).append(payload)
      return
    }
    if (this.messageText && !this.validator().complete) throw new ProtocolError('WS_ERR_INVALID_UTF8')
    // The last fragment is joined straight from the read (it is not held); one part is handed out as it is.
    const data = this.messageParts?.join(this.alloc, payload) ?? payload
    const binary = !this.messageText
    this.dropMessage()
    events.push({ type: 'message', data, binary })
  }

  /** A fragment, or a piece of one, in stream mode: checked, then handed out at once. */
  private onChunk (frame: Frame, first: boolean, events: SessionEvent[]): void {
    const data = frame.payload
    const text = this.messageText
    this.messageBytes += data.length
    // A frame that cannot fit is refused from its header, before its bytes are judged (as whole).
    // One that starts a message opens it first, empty: the error then belongs to that message,
    // and its reader gets it from the message's chunks, as when the limit is passed later on.
    if (this.messageBytes + this.pieceRest > this.maxMessageSize) {
      if (first) events.push({ type: 'chunk', data: EMPTY, binary: !text, first: true, last: false })
      throw new ProtocolError('WS_ERR_MESSAGE_TOO_BIG')
    }
    this.pieceRest = 0
    // §8.1: fail on the chunk that breaks UTF-8, before it is handed out; the end of the message
    // must fall on a character boundary.
    if (text && data.length > 0 && !this.pushUtf8(data)) throw new ProtocolError('WS_ERR_INVALID_UTF8')
    const last = frame.fin
    if (last) {
      if (text && !this.validator().complete) throw new ProtocolError('WS_ERR_INVALID_UTF8')
      this.dropMessage()
    } else {
      this.messageOpen = true
      // An empty fragment in the middle of a message says nothing.
      if (data.length === 0 && !first) return
    }
    events.push({ type: 'chunk', data, binary: !text, first, last })
  }

  /**
   * Check a chunk of text, carrying a character split across chunks over: the bytes up to the
   * last character boundary go through the native whole-buffer check, the rest through the
   * incremental validator.
   */
  private pushUtf8 (bytes: Uint8Array): boolean {
    const v = this.validator()
    const n = bytes.length
    let i = 0
    // Finish a character begun in the previous chunk (at most three bytes).
    while (i < n && !v.complete) {
      if (!v.push(bytes, i, i + 1)) return false
      i++
    }
    if (i === n) return true
    // Where the last character starts, if it is cut short: its lead byte is among the last four.
    let end = n
    let k = n - 1
    const stop = Math.max(i, n - 4)
    while (k >= stop && (bytes[k] & 0xc0) === 0x80) k--
    if (k >= stop) {
      const lead = bytes[k]
      const size = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1
      if (k + size > n) end = k
    }
    if (end > i && !this.isUtf8(i === 0 && end === n ? bytes : bytes.subarray(i, end))) return false
    return v.push(bytes, end, n)
  }

  /** A message in one frame: the common case, validated in one native call when it arrived whole. */
  private onWholeMessage (frame: Frame, skip: number, events: SessionEvent[]): void {
    const payload = frame.payload
    const binary = frame.opcode === Opcode.Binary
    if (!binary) {
      const ok = skip === 0
        ? this.isUtf8(payload)
        : this.validator().push(payload, skip) && this.validator().complete
      if (!ok) throw new ProtocolError('WS_ERR_INVALID_UTF8')
    }
    events.push({ type: 'message', data: payload, binary })
  }

  /**
   * A whole compressed message: inflated within `maxMessageSize`, then checked like any other
   * (RFC 7692 §6.2); or, when the extension leaves it for later, handed out as it is, and
   * nothing after it is handled until its bytes come back ({@link Session.decompressed}).
   */
  private onCompressedMessage (opcode: number, parts: Uint8Array[], events: SessionEvent[]): void {
    const binary = opcode === Opcode.Binary
    const data = this.compression!.decompress(parts, this.maxMessageSize)
    if (data === undefined) {
      this.awaiting = { binary }
      events.push({ type: 'compressed', parts, binary })
      return
    }
    if (!binary && !this.isUtf8(data)) throw new ProtocolError('WS_ERR_INVALID_UTF8')
    events.push({ type: 'message', data, binary })
  }

  private onControlFrame (frame: Frame, events: SessionEvent[]): void {
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
        this.dropMessage()
        // §5.5.1: nothing after the close is read; what was buffered of it is let go.
        this.parser.discard()
        this.dropHeld()
        // §5.5.1: the answer is owed (closing.ts); held back under deferClose.
        if (!this.deferClose) this.sendPendingClose()
        events.push({ type: 'close', code, reason })
      }
    }
  }

  /** Check the start of a frame still arriving: size limits now, and UTF-8 as far as it goes (fail fast). */
  private checkIncomplete (frame: Omit<IncompleteFrame, 'parts'>): void {
    const continuation = frame.opcode === Opcode.Continuation
    // RFC 7692 §6: known from the header, so fail before the payload is buffered.
    if (frame.rsv1 && (frame.opcode >= Opcode.Close || continuation)) throw new ProtocolError('WS_ERR_UNEXPECTED_RSV', 'RSV1 is only for the first frame of a message (RFC 7692 §6)')
    if (frame.opcode >= Opcode.Close) return
    // §5.4 sequencing is known from the header: fail now rather than buffer a doomed frame.
    if (continuation && !this.messageOpen) throw new ProtocolError('WS_ERR_UNEXPECTED_CONTINUATION')
    if (!continuation && this.messageOpen) throw new ProtocolError('WS_ERR_EXPECTED_CONTINUATION')
    const total = (continuation ? this.messageBytes : 0) + frame.length
    if (total > this.maxMessageSize) throw new ProtocolError('WS_ERR_MESSAGE_TOO_BIG')
    if (continuation && this.messageFragments + 1 > this.maxFragments) throw new ProtocolError('WS_ERR_TOO_MANY_FRAGMENTS')
    const text = continuation ? this.messageText : frame.opcode === Opcode.Text
    // Compressed text is checked once inflated.
    if (!text || (continuation ? this.messageCompressed : frame.rsv1)) return
    if (frame !== this.validatingFrame) {
      this.validatingFrame = frame
      this.validatedBytes = 0
      if (!continuation) this.validator().reset()
    }
    // Parts only grow at the end; validate the bytes not seen yet.
    let partStart = 0
    // Only text needs the bytes early (they are unmasked on this read).
    for (const part of this.parser.incomplete!.parts) {
      const partEnd = partStart + part.length
      if (partEnd > this.validatedBytes) {
        if (!this.validator().push(part, this.validatedBytes - partStart)) throw new ProtocolError('WS_ERR_INVALID_UTF8')
        this.validatedBytes = partEnd
      }
      partStart = partEnd
    }
  }

  private fail (error: ProtocolError, events: SessionEvent[]): void {
    this.step({ type: 'fail', code: error.closeCode, reason: error.message })
    if (!this.deferClose) this.sendPendingClose()
    this.dropMessage()
    this.parser.discard()
    this.dropHeld()
    events.push({ type: 'error', error })
  }

  /** Nothing more is handled: what waited behind a message being inflated goes too. */
  private dropHeld (): void {
    this.awaiting = undefined
    this.held = undefined
    this.heldCost = 0
    this.heldError = undefined
  }

  private dropMessage (): void {
    this.messageOpen = false
    this.messageCompressed = false
    this.messageParts = undefined
    this.messageBytes = 0
    this.messageFragments = 0
    this.validatingFrame = undefined
  }
}

/** Parse and check a close frame's payload, RFC 6455 §5.5.1 and §7.4. */
export function parseClosePayload (payload: Uint8Array, isUtf8: (bytes: Uint8Array) => boolean = jsIsUtf8): ClosePayload {
  if (payload.length === 0) return { code: CloseCode.NoStatusReceived, reason: '' }
  // §5.5.1: if there is a body, its first two bytes are the status code.
  if (payload.length === 1) throw new ProtocolError('WS_ERR_INVALID_CLOSE_PAYLOAD')
  const code = (payload[0] << 8) | payload[1]
  if (!isValidCloseCode(code)) throw new ProtocolError('WS_ERR_INVALID_CLOSE_CODE', String(code))
  const reasonBytes = payload.subarray(2)
  // §5.5.1: the reason "is not guaranteed to be human readable" but MUST be UTF-8.
  if (!isUtf8(reasonBytes)) throw new ProtocolError('WS_ERR_INVALID_CLOSE_REASON')
  return { code, reason: reasonBytes.length === 0 ? '' : decoder.decode(reasonBytes) }
}

/** A close frame's payload (§5.5.1): the code in two bytes, then the reason in UTF-8; empty without a code. */
function closePayload (code: number | undefined, reason: string): Uint8Array {
  const text = checkClose(code, reason)
  if (code === undefined) return text
  const payload = new Uint8Array(2 + text.length)
  payload[0] = code >>> 8
  payload[1] = code & 0xff
  payload.set(text, 2)
  return payload
}
