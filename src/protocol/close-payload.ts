/**
 * A close frame's payload both ways (RFC 6455 §5.5.1): the status code in two bytes, then the
 * reason in UTF-8; empty when there is no code.
 *
 * @packageDocumentation
 */

import { CloseCode, isValidCloseCode } from './close-codes.js'
import { checkClose, type ClosePayload } from './closing.js'
import { ProtocolError } from './errors.js'
import { isUtf8 as jsIsUtf8 } from './utf8.js'

const decoder = new TextDecoder()

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

/**
 * A close frame's payload (§5.5.1): the code in two bytes, then the reason in UTF-8; empty without a code.
 * @throws as {@link checkClose}, for a code or reason that may not be sent.
 */
export function closePayload (code: number | undefined, reason: string): Uint8Array {
  const text = checkClose(code, reason)
  if (code === undefined) return text
  const payload = new Uint8Array(2 + text.length)
  payload[0] = code >>> 8
  payload[1] = code & 0xff
  payload.set(text, 2)
  return payload
}
