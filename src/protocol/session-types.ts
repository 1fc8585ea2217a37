/**
 * What a {@link Session} is given and what it reports: its options with their defaults, the
 * events {@link Session.receive} returns, and its coarse state. Apart from session.ts so the
 * parts that make events (message-assembly.ts) need not import the session.
 *
 * @packageDocumentation
 */

import type { ClosePayload } from './closing.js'
import type { MaskSource } from './encode.js'
import type { ProtocolError } from './errors.js'
import type { MessageCompression } from './extension.js'
import { DEFAULT_MAX_FRAME_SIZE, type Role } from './frame-parser.js'

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
   * Makes the views of `alloc`'s buffers that {@link Session.takeOutput} returns. The Node driver
   * passes one that makes a `Buffer`, what a socket's `write` takes as it is (`subarray` of a
   * `Buffer` looks up its species constructor, a JavaScript class, each time). Default: `new Uint8Array`.
   */
  view?: (buffer: ArrayBufferLike, byteOffset: number, length: number) => Uint8Array
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

/**
 * Takes whole messages from {@link Session.receive} as they complete, instead of as `message`
 * events: a driver that hands each message on at once (an echo) then makes no event object per
 * message. Called only while no other event of the same read waits in the returned array, so the
 * order of messages and events is the wire's.
 */
export interface MessageReceiver {
  /** A whole message, unfragmented and uncompressed: unmasked, text already checked as UTF-8 (§8.1). */
  onMessage: (data: Uint8Array, binary: boolean) => void
  /**
   * The same for a binary message that lies whole in the chunk being received, at
   * `chunk[start, end)`: no view of it was made, so one that only copies the bytes (an echo's
   * frame) makes none either.
   */
  onMessageAt: (chunk: Uint8Array, start: number, end: number, binary: boolean) => void
  /**
   * Whether {@link MessageReceiver.onMessageParts} would likely take the next long message (an
   * echo): only then are long frames kept in parts rather than copied into one buffer as they
   * come. Read at the start of each {@link Session.receive}.
   */
  readonly wantsParts?: boolean
  /**
   * The same for a binary message in one frame that arrived over several reads, as its parts
   * (unmasked; large ones are views of the reads, none pins much more than its bytes) and
   * `length`, their total. True: taken (an echo sends the parts as they are, never joined);
   * false: they are joined and the message comes by `onMessage` or in the returned events.
   */
  onMessageParts?: (parts: readonly Uint8Array[], length: number) => boolean
  /**
   * Whether each whole small message of a chunk of `length` bytes may be sent back at once as it
   * is found (an echo that waits for its next message and has room for all of them): then the
   * session copies each one into its output itself, as {@link Session.send} would, and reports
   * them with {@link MessageReceiver.onEchoed} rather than handing them over one by one. Asked
   * at the start of each {@link Session.receive}, which checks its own side (no close sent, no
   * fragments of ours under way, no compression).
   */
  echoesChunk?: (length: number) => boolean
  /** `count` messages of this chunk, each of at most 125 bytes, were echoed; called before any other message of the chunk is handed out. */
  onEchoed?: (count: number) => void
}

/** What {@link Session.receive} reports. */
export type SessionEvent = SessionMessageEvent | SessionChunkEvent | SessionCompressedEvent | SessionControlEvent | SessionCloseEvent | SessionErrorEvent

/**
 * `open`: both may send. `closing`: one close frame has crossed, or the connection failed and
 * our close is still held back. `closed`: both have, or ours went out after a failure, or the
 * transport is gone. {@link Session.closeState} has the detail.
 */
export type SessionState = 'open' | 'closing' | 'closed'
