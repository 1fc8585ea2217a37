/**
 * The session's inbound side for data frames: messages reassembled from their fragments (or
 * handed out piece by piece in stream mode), with §5.4's sequencing, the message and fragment
 * limits and §8.1's UTF-8 check, as early as the bytes allow; whole compressed messages passed
 * to the extension; and the frames that wait behind a message inflated elsewhere. Control frames
 * and the closing handshake are the {@link Session}'s.
 *
 * @packageDocumentation
 */

import { ProtocolError } from './errors.js'
import type { MessageCompression } from './extension.js'
import { Gatherer, ITEM_OVERHEAD } from './gather.js'
import type { Frame, FrameParser, IncompleteFrame } from './frame-parser.js'
import { Opcode } from './opcode.js'
import type { MessageReceiver, SessionEvent } from './session-types.js'
import { Utf8Validator } from './utf8.js'

const EMPTY = new Uint8Array(0)

/** What a {@link MessageAssembly} enforces and uses; every field is required (the session resolves the defaults). */
export interface MessageAssemblyOptions {
  /** Largest message, in bytes, after reassembly: over it, 1009. */
  readonly maxMessageSize: number
  /** Most frames in one message: over it, 1009. */
  readonly maxFragments: number
  /** Whole-buffer UTF-8 check. */
  readonly isUtf8: (bytes: Uint8Array) => boolean
  /** Allocates the buffer a fragmented message is joined into. */
  readonly alloc: (size: number) => Uint8Array
  /** The negotiated per-message compression, if any. */
  readonly compression: MessageCompression | undefined
  /** Hand data out as `chunk` events instead of reassembling it. */
  readonly streamMessages: boolean
}

/** Reassembles and checks the data messages of one connection. */
export class MessageAssembly {
  private readonly parser: FrameParser
  private readonly maxMessageSize: number
  private readonly maxFragments: number
  private readonly isUtf8: (bytes: Uint8Array) => boolean
  private readonly alloc: (size: number) => Uint8Array
  private readonly compression: MessageCompression | undefined
  private readonly streamMessages: boolean
  /** Stream mode: bytes still to come of the frame whose piece is being handled (set by the session per piece). */
  pieceRest = 0
  /** Where whole single-frame messages go while the session's receive() runs, if its caller gave one. */
  receiver: MessageReceiver | undefined = undefined

  /** A message is under way: its next data frame is a continuation (§5.4). */
  private open = false
  private text = false
  private bytes = 0
  private fragments = 0
  /** The open message's first frame had RSV1: it is inflated once whole (RFC 7692 §6.2). */
  private compressed = false
  /** The fragments of the open message, joined once when it is complete (small ones copied, so none pins its read). */
  private parts: Gatherer | undefined
  /** Made when first needed: only fragmented or still-arriving text uses it. */
  private utf8: Utf8Validator | undefined
  /** The parser's incomplete frame whose payload prefix was already validated, and how much of it. */
  validatingFrame: Omit<IncompleteFrame, 'parts'> | undefined
  private validatedBytes = 0

  /** A compressed message was handed out to be inflated elsewhere (a `compressed` event): whether it is binary. */
  awaiting: { binary: boolean } | undefined
  /**
   * Frames received while {@link MessageAssembly.awaiting}, in order. None has a validated start:
   * that is checked only once all frames before it are handled, which is never while awaiting.
   */
  private held: Frame[] | undefined
  /** What the held frames cost: their bytes plus an item's overhead each. */
  private heldCost = 0
  /** The parser's error after the held frames. */
  heldError: unknown

  /** Assembly of the data frames `parser` yields (its incomplete frame is checked as it arrives). */
  constructor (parser: FrameParser, options: MessageAssemblyOptions) {
    this.parser = parser
    this.maxMessageSize = options.maxMessageSize
    this.maxFragments = options.maxFragments
    this.isUtf8 = options.isUtf8
    this.alloc = options.alloc
    this.compression = options.compression
    this.streamMessages = options.streamMessages
  }

  private validator (): Utf8Validator {
    return (this.utf8 ??= new Utf8Validator())
  }

  /** A fragmented message (or, in stream mode, a frame's pieces) is under way. */
  get messageOpen (): boolean {
    return this.open
  }

  /** Bytes received but not yet delivered: the open message's, and the held frames'. */
  get bufferedBytes (): number {
    // A streamed message's bytes are handed out as they come: none are held.
    return (this.open && !this.streamMessages ? this.bytes : 0) + this.heldCost
  }

  /** Memory held for them: the open message's parts and the held frames, with their overhead. */
  get heldBytes (): number {
    return (this.parts?.held ?? 0) + this.heldCost
  }

  /**
   * A data frame (opcode below 8), whole or (stream mode) a piece of one. `skip`: how many bytes
   * of its payload were already checked as UTF-8 while it arrived. Events go to `events`.
   * @throws ProtocolError for a broken rule or limit.
   */
  onFrame (frame: Frame, skip: number, events: SessionEvent[]): void {
    if (this.streamMessages) {
      this.onPiece(frame, events)
      return
    }
    const opcode = frame.opcode
    const payload = frame.payload
    if (opcode === Opcode.Continuation) {
      // RFC 7692 §6: RSV1 only on the first frame of a message (the parser let it through only
      // because an extension was negotiated).
      if (frame.rsv1) throw new ProtocolError('WS_ERR_UNEXPECTED_RSV', 'RSV1 is only for the first frame of a message (RFC 7692 §6)')
      // §5.4: a continuation needs an open message.
      if (!this.open) throw new ProtocolError('WS_ERR_UNEXPECTED_CONTINUATION')
    } else {
      // §5.4: "fragments of one message MUST NOT be interleaved" with another message.
      if (this.open) throw new ProtocolError('WS_ERR_EXPECTED_CONTINUATION')
      if (frame.fin) {
        if (frame.rsv1) this.onCompressedMessage(opcode, [payload], events)
        else this.onWholeMessage(frame, skip, events)
        return
      }
      this.open = true
      this.text = opcode === Opcode.Text
      this.compressed = frame.rsv1
      this.bytes = 0
      this.fragments = 0
      if (this.text && !this.compressed && skip === 0) this.validator().reset()
    }
    this.bytes += payload.length
    if (this.bytes > this.maxMessageSize) throw new ProtocolError('WS_ERR_MESSAGE_TOO_BIG')
    if (++this.fragments > this.maxFragments) throw new ProtocolError('WS_ERR_TOO_MANY_FRAGMENTS')
    if (this.compressed) this.onCompressedFragment(frame, events)
    else this.onFragment(frame, skip, events)
  }

  /** A fragment of an uncompressed message: checked, held, or (the last) joined with the rest. */
  private onFragment (frame: Frame, skip: number, events: SessionEvent[]): void {
    const payload = frame.payload
    // §8.1: fail on the fragment that breaks UTF-8, not at the end of the message.
    if (this.text && !this.validator().push(payload, skip)) throw new ProtocolError('WS_ERR_INVALID_UTF8')
    if (!frame.fin) {
      if (payload.length > 0) (this.parts ??= new Gatherer()).append(payload)
      return
    }
    if (this.text && !this.validator().complete) throw new ProtocolError('WS_ERR_INVALID_UTF8')
    // The last fragment is joined straight from the read (it is not held); one part is handed out as it is.
    const data = this.parts?.join(this.alloc, payload) ?? payload
    const binary = !this.text
    this.drop()
    events.push({ type: 'message', data, binary })
  }

  /** Compressed fragments are held (and counted in heldBytes) until the message is whole. */
  private onCompressedFragment (frame: Frame, events: SessionEvent[]): void {
    const payload = frame.payload
    if (!frame.fin) {
      if (payload.length > 0) (this.parts ??= new Gatherer()).append(payload)
      return
    }
    const parts = this.parts?.parts ?? []
    if (payload.length > 0) parts.push(payload)
    const text = this.text
    this.drop()
    this.onCompressedMessage(text ? Opcode.Text : Opcode.Binary, parts, events)
  }

  /** Stream mode: a data frame, or a piece of one (never compressed: the session refuses that). */
  private onPiece (frame: Frame, events: SessionEvent[]): void {
    const opcode = frame.opcode
    const first = opcode !== Opcode.Continuation
    // A frame that cannot fit alone is refused from its header, before its sequencing is judged,
    // as the whole-message parser's frame limit (never above the message limit) refuses it. A
    // later piece of a frame that passed has less to come, so it passes too.
    if (frame.payload.length + this.pieceRest > this.maxMessageSize) {
      if (first && !this.open) events.push({ type: 'chunk', data: EMPTY, binary: opcode !== Opcode.Text, first: true, last: false })
      throw new ProtocolError('WS_ERR_MESSAGE_TOO_BIG')
    }
    // §5.4: a continuation needs an open message, and messages are not interleaved.
    if (!first) {
      if (!this.open) throw new ProtocolError('WS_ERR_UNEXPECTED_CONTINUATION')
    } else {
      if (this.open) throw new ProtocolError('WS_ERR_EXPECTED_CONTINUATION')
      this.text = opcode === Opcode.Text
      this.bytes = 0
      if (this.text) this.validator().reset()
    }
    this.onChunk(frame, first, events)
  }

  /** A fragment, or a piece of one, in stream mode: checked, then handed out at once. */
  private onChunk (frame: Frame, first: boolean, events: SessionEvent[]): void {
    const data = frame.payload
    const text = this.text
    this.bytes += data.length
    // A frame that cannot fit is refused from its header, before its bytes are judged (as whole).
    // One that starts a message opens it first, empty: the error then belongs to that message,
    // and its reader gets it from the message's chunks, as when the limit is passed later on.
    if (this.bytes + this.pieceRest > this.maxMessageSize) {
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
      this.drop()
    } else {
      this.open = true
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
    // Straight to the receiver, unless an event of this read waits before it (order is the wire's).
    const receiver = this.receiver
    if (receiver !== undefined && events.length === 0) receiver.onMessage(payload, binary)
    else events.push({ type: 'message', data: payload, binary })
  }

  /**
   * A whole compressed message: inflated within `maxMessageSize`, then checked like any other
   * (RFC 7692 §6.2); or, when the extension leaves it for later, handed out as it is, and
   * nothing after it is handled until its bytes come back ({@link MessageAssembly.endAwaiting}).
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

  /**
   * The frame whose start {@link MessageAssembly.checkIncomplete} checked is complete when the
   * parser's `pending` frame is another: returns how many of its bytes were validated (0 if none).
   */
  validatedSkip (pending: Omit<IncompleteFrame, 'parts'> | undefined): number {
    if (this.validatingFrame === undefined || pending === this.validatingFrame) return 0
    this.validatingFrame = undefined
    return this.validatedBytes
  }

  /**
   * Check the start of a frame still arriving: size limits now, and UTF-8 as far as it goes (fail fast).
   * @throws ProtocolError for a broken rule or limit.
   */
  checkIncomplete (frame: Omit<IncompleteFrame, 'parts'>): void {
    const continuation = frame.opcode === Opcode.Continuation
    // RFC 7692 §6: known from the header, so fail before the payload is buffered.
    if (frame.rsv1 && (frame.opcode >= Opcode.Close || continuation)) throw new ProtocolError('WS_ERR_UNEXPECTED_RSV', 'RSV1 is only for the first frame of a message (RFC 7692 §6)')
    if (frame.opcode >= Opcode.Close) return
    // §5.4 sequencing is known from the header: fail now rather than buffer a doomed frame.
    if (continuation && !this.open) throw new ProtocolError('WS_ERR_UNEXPECTED_CONTINUATION')
    if (!continuation && this.open) throw new ProtocolError('WS_ERR_EXPECTED_CONTINUATION')
    const total = (continuation ? this.bytes : 0) + frame.length
    if (total > this.maxMessageSize) throw new ProtocolError('WS_ERR_MESSAGE_TOO_BIG')
    if (continuation && this.fragments + 1 > this.maxFragments) throw new ProtocolError('WS_ERR_TOO_MANY_FRAGMENTS')
    const text = continuation ? this.text : frame.opcode === Opcode.Text
    // Compressed text is checked once inflated.
    if (!text || (continuation ? this.compressed : frame.rsv1)) return
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

  /** Keep a frame that arrived behind a message being inflated; a small view is copied, so it does not pin its read. */
  hold (frame: Frame): void {
    const p = frame.payload
    // A copy whatever the view's class: a Node Buffer's slice() is another view of its pool.
    if (p.length * 2 < p.buffer.byteLength) frame = { ...frame, payload: new Uint8Array(p) }
    ;(this.held ??= []).push(frame)
    this.heldCost += p.length + ITEM_OVERHEAD
  }

  /**
   * The awaited message's bytes are back: it is no longer awaited. Returns whether it is binary.
   * @throws Error when no compressed message awaits its bytes.
   */
  endAwaiting (): boolean {
    const awaiting = this.awaiting
    if (awaiting === undefined) throw new Error('no compressed message awaits its bytes')
    this.awaiting = undefined
    return awaiting.binary
  }

  /** The held frames, in order, given up to be handled; read {@link MessageAssembly.heldError} first, as this clears it. */
  takeHeld (): Frame[] {
    const held = this.held ?? []
    this.held = undefined
    this.heldCost = 0
    this.heldError = undefined
    return held
  }

  /** Nothing more is handled: what waited behind a message being inflated goes too. */
  dropHeld (): void {
    this.awaiting = undefined
    this.held = undefined
    this.heldCost = 0
    this.heldError = undefined
  }

  /** The open message is let go (complete, or the connection failed or closed). */
  drop (): void {
    this.open = false
    this.compressed = false
    this.parts = undefined
    this.bytes = 0
    this.fragments = 0
    this.validatingFrame = undefined
  }
}
