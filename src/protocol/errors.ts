/**
 * The one error the pure layers throw: {@link ProtocolError}, which says what close code to send.
 *
 * @packageDocumentation
 */

import { CloseCode } from './close-codes.js'

/** Stable error codes, each with the close code it yields and its message. */
export const PROTOCOL_ERRORS = {
  WS_ERR_UNEXPECTED_MASK: { closeCode: CloseCode.ProtocolError, message: 'client frames must not be masked' },
  WS_ERR_EXPECTED_MASK: { closeCode: CloseCode.ProtocolError, message: 'client frames must be masked' },
  WS_ERR_UNEXPECTED_RSV: { closeCode: CloseCode.ProtocolError, message: 'reserved bits must be clear' },
  WS_ERR_INVALID_OPCODE: { closeCode: CloseCode.ProtocolError, message: 'unknown opcode' },
  WS_ERR_FRAGMENTED_CONTROL: { closeCode: CloseCode.ProtocolError, message: 'control frames must not be fragmented' },
  WS_ERR_CONTROL_TOO_LONG: { closeCode: CloseCode.ProtocolError, message: 'control frame payload over 125 bytes' },
  WS_ERR_INVALID_LENGTH: { closeCode: CloseCode.ProtocolError, message: 'payload length not minimally encoded' },
  WS_ERR_LENGTH_TOP_BIT: { closeCode: CloseCode.ProtocolError, message: '64-bit payload length has its top bit set' },
  WS_ERR_FRAME_TOO_BIG: { closeCode: CloseCode.MessageTooBig, message: 'frame exceeds maxFrameSize' },
  WS_ERR_MESSAGE_TOO_BIG: { closeCode: CloseCode.MessageTooBig, message: 'message exceeds maxMessageSize' },
  WS_ERR_TOO_MANY_FRAGMENTS: { closeCode: CloseCode.MessageTooBig, message: 'message exceeds maxFragments' },
  WS_ERR_UNEXPECTED_CONTINUATION: { closeCode: CloseCode.ProtocolError, message: 'continuation frame with no message open' },
  WS_ERR_EXPECTED_CONTINUATION: { closeCode: CloseCode.ProtocolError, message: 'new data frame while a fragmented message is open' },
  WS_ERR_INVALID_UTF8: { closeCode: CloseCode.InvalidPayload, message: 'text is not valid UTF-8' },
  WS_ERR_INVALID_CLOSE_PAYLOAD: { closeCode: CloseCode.ProtocolError, message: 'close payload of 1 byte' },
  WS_ERR_INVALID_CLOSE_CODE: { closeCode: CloseCode.ProtocolError, message: 'invalid close code' },
  WS_ERR_INVALID_CLOSE_REASON: { closeCode: CloseCode.InvalidPayload, message: 'close reason is not valid UTF-8' },
  WS_ERR_INVALID_COMPRESSED: { closeCode: CloseCode.InvalidPayload, message: 'compressed data could not be inflated' },
  WS_ERR_MEMORY_BUDGET: { closeCode: CloseCode.TryAgainLater, message: 'memory budget exhausted' },
  WS_ERR_INTERNAL: { closeCode: CloseCode.InternalError, message: 'internal error' }
} as const

/** One of the stable codes in {@link PROTOCOL_ERRORS}. */
export type ProtocolErrorCode = keyof typeof PROTOCOL_ERRORS

/**
 * The peer broke RFC 6455 (or a configured limit). Carries the close code to send and a short
 * reason that is safe to put in the close frame.
 */
export class ProtocolError extends Error {
  override name = 'ProtocolError'
  /** A stable string such as `WS_ERR_INVALID_UTF8`. */
  readonly code: ProtocolErrorCode
  /** The close code to send: 1002, 1007, 1009, 1011 or 1013. */
  readonly closeCode: number

  constructor (code: ProtocolErrorCode, detail?: string) {
    const entry = PROTOCOL_ERRORS[code]
    super(detail === undefined ? entry.message : `${entry.message}: ${detail}`)
    this.code = code
    this.closeCode = entry.closeCode
  }
}
