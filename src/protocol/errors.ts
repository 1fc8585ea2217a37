/**
 * The one error the pure layers throw: {@link ProtocolError}, which says what close code to send.
 *
 * @packageDocumentation
 */

import { CloseCode } from './close-codes.js'

/** Stable error codes, each with the close code it yields (`closeCode`) and its message (`message`, which a close frame carries as its reason). */
export const PROTOCOL_ERRORS = {
  /** A client received a masked frame (RFC 6455 §5.1). */
  WS_ERR_UNEXPECTED_MASK: { closeCode: CloseCode.ProtocolError, message: 'server frames must not be masked' },
  /** A server received an unmasked frame (§5.1). */
  WS_ERR_EXPECTED_MASK: { closeCode: CloseCode.ProtocolError, message: 'client frames must be masked' },
  /** A reserved bit is set that no extension negotiated (§5.2). */
  WS_ERR_UNEXPECTED_RSV: { closeCode: CloseCode.ProtocolError, message: 'reserved bits must be clear' },
  /** An opcode other than 0, 1, 2, 8, 9 or 10 (§5.2). */
  WS_ERR_INVALID_OPCODE: { closeCode: CloseCode.ProtocolError, message: 'unknown opcode' },
  /** A control frame without FIN (§5.5). */
  WS_ERR_FRAGMENTED_CONTROL: { closeCode: CloseCode.ProtocolError, message: 'control frames must not be fragmented' },
  /** A control frame over 125 bytes (§5.5). */
  WS_ERR_CONTROL_TOO_LONG: { closeCode: CloseCode.ProtocolError, message: 'control frame payload over 125 bytes' },
  /** A payload length not in its minimal encoding (§5.2). */
  WS_ERR_INVALID_LENGTH: { closeCode: CloseCode.ProtocolError, message: 'payload length not minimally encoded' },
  /** A 64-bit payload length with its most significant bit set (§5.2). */
  WS_ERR_LENGTH_TOP_BIT: { closeCode: CloseCode.ProtocolError, message: '64-bit payload length has its top bit set' },
  /** A frame over `maxFrameSize`. */
  WS_ERR_FRAME_TOO_BIG: { closeCode: CloseCode.MessageTooBig, message: 'frame exceeds maxFrameSize' },
  /** A message over `maxMessageSize`. */
  WS_ERR_MESSAGE_TOO_BIG: { closeCode: CloseCode.MessageTooBig, message: 'message exceeds maxMessageSize' },
  /** A message in more frames than `maxFragments`. */
  WS_ERR_TOO_MANY_FRAGMENTS: { closeCode: CloseCode.MessageTooBig, message: 'message exceeds maxFragments' },
  /** A continuation frame with no message open (§5.4). */
  WS_ERR_UNEXPECTED_CONTINUATION: { closeCode: CloseCode.ProtocolError, message: 'continuation frame with no message open' },
  /** A new text or binary frame while a fragmented message is open (§5.4). */
  WS_ERR_EXPECTED_CONTINUATION: { closeCode: CloseCode.ProtocolError, message: 'new data frame while a fragmented message is open' },
  /** A text message that is not UTF-8 (§8.1). */
  WS_ERR_INVALID_UTF8: { closeCode: CloseCode.InvalidPayload, message: 'text is not valid UTF-8' },
  /** A close frame with a 1-byte payload (§5.5.1). */
  WS_ERR_INVALID_CLOSE_PAYLOAD: { closeCode: CloseCode.ProtocolError, message: 'close payload of 1 byte' },
  /** A close code that may not be sent (§7.4). */
  WS_ERR_INVALID_CLOSE_CODE: { closeCode: CloseCode.ProtocolError, message: 'invalid close code' },
  /** A close reason that is not UTF-8 (§5.5.1). */
  WS_ERR_INVALID_CLOSE_REASON: { closeCode: CloseCode.InvalidPayload, message: 'close reason is not valid UTF-8' },
  /** A compressed message that does not inflate (RFC 7692). */
  WS_ERR_INVALID_COMPRESSED: { closeCode: CloseCode.InvalidPayload, message: 'compressed data could not be inflated' },
  /** The server's memory budget was spent when this connection needed more (IANA 1013, Try Again Later). */
  WS_ERR_MEMORY_BUDGET: { closeCode: CloseCode.TryAgainLater, message: 'memory budget exhausted' },
  /** An unexpected exception inside the session; nothing about it is sent. */
  WS_ERR_INTERNAL: { closeCode: CloseCode.InternalError, message: 'internal error' }
} as const

/** One of the stable codes in {@link PROTOCOL_ERRORS}. */
export type ProtocolErrorCode = keyof typeof PROTOCOL_ERRORS

/**
 * The peer broke RFC 6455 (or a configured limit). Carries the close code to send and a short
 * reason that is safe to put in the close frame.
 */
export class ProtocolError extends Error {
  /** `'ProtocolError'`. */
  override name = 'ProtocolError'
  /** A stable string such as `WS_ERR_INVALID_UTF8`. */
  readonly code: ProtocolErrorCode
  /** The close code to send: 1002, 1007, 1009, 1011 or 1013. */
  readonly closeCode: number

  /** The error `code` names ({@link PROTOCOL_ERRORS}: its message and close code), with an optional `detail` after the message. */
  constructor (code: ProtocolErrorCode, detail?: string) {
    const entry = PROTOCOL_ERRORS[code]
    super(detail === undefined ? entry.message : `${entry.message}: ${detail}`)
    this.code = code
    this.closeCode = entry.closeCode
  }
}
