/**
 * `wspipe/protocol`: the pure, synchronous core of wspipe. Frames, masking, UTF-8, close codes
 * and the session state machine; nothing here touches Node, timers or I/O.
 *
 * @example
 * ```ts
 * import { FrameParser } from 'wspipe/protocol'
 * const parser = new FrameParser({ role: 'server' })
 * const frames = parser.push(new Uint8Array([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]))
 * // frames[0].payload is "Hello"
 * ```
 *
 * @module wspipe/protocol
 */

export { Opcode, isControlOpcode, isKnownOpcode } from './opcode.js'
export { CloseCode, CLOSE_CODES, isValidCloseCode } from './close-codes.js'
export { ProtocolError, PROTOCOL_ERRORS, type ProtocolErrorCode } from './errors.js'
export { applyMask } from './mask.js'
export { Utf8Validator, isUtf8 } from './utf8.js'
export { FrameParser, DEFAULT_MAX_FRAME_SIZE, type Frame, type FrameParserOptions, type IncompleteFrame, type Role, type WholeFrameTaker } from './frame-parser.js'
export { encodeFrame, frameHeaderSize, writeFrameHeader, type EncodeOptions, type FrameToEncode, type MaskSource } from './encode.js'
export type { MessageCompression } from './extension.js'
export { closeStep, closeOutcome, closeDecision, checkClose, OPEN_CLOSE_STATE, type CloseStage, type CloseState, type CloseInput, type CloseOutcome, type CloseDecision, type CloseTimer, type OwedClose, type TransportAction } from './closing.js'
export { Session, parseClosePayload, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_MAX_FRAGMENTS, type MessageReceiver, type SessionEvent, type SessionMessageEvent, type SessionChunkEvent, type SessionCompressedEvent, type SessionControlEvent, type SessionCloseEvent, type SessionErrorEvent, type ClosePayload, type PendingClose, type SessionOptions, type SessionState } from './session.js'
