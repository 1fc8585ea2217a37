/**
 * The opening handshake of WebSocket over HTTP/2 (RFC 8441), as pure functions: validate an
 * extended CONNECT request's headers, build the 200 and the refusals. No I/O and no Node
 * imports, like `handshake.ts`, whose token and extension parsers it shares.
 *
 * @packageDocumentation
 */

import { HandshakeError } from '../errors.js'
import { headerValue, originForm, parseExtensions, parseProtocols, type ExtensionElement, type HeaderMap } from '../handshake.js'

/** What a valid extended CONNECT asks for (the HTTP/2 counterpart of `ValidUpgrade`). */
export interface ValidConnect {
  /** The request target in origin-form (`:path`). */
  url: string
  /** Offered subprotocols in the client's order of preference. */
  protocols: string[]
  extensions: ExtensionElement[]
  origin: string | undefined
  /** `sec-websocket-key`, if the client sent one (RFC 8441 §5 does not use it; undici does). */
  key: string | undefined
}

/** Is this request an extended CONNECT (RFC 8441 §4: CONNECT with `:protocol`)? */
export function isExtendedConnect (headers: HeaderMap): boolean {
  return headers[':method'] === 'CONNECT' && headers[':protocol'] !== undefined
}

/**
 * Validate the HEADERS of an extended CONNECT (RFC 8441 §4–5). Throws a {@link HandshakeError}
 * with the status to answer on the stream:
 * - 501 for a `:protocol` other than `websocket` (RFC 8441 §4 leaves it open; RFC 9220 §3, its
 *   HTTP/3 twin, says a server SHOULD answer an unsupported protocol with 501);
 * - 400 for a missing `:scheme`, `:path` or `:authority` (§4: "MUST also be included"), a bad
 *   target, a malformed subprotocol or extension list, and a `sec-websocket-version` other than 13
 *   (RFC 6455 §4.4 asks for `Sec-WebSocket-Version: 13` in the answer; its 426 would need an
 *   `Upgrade` header, which HTTP/2 forbids, RFC 9113 §8.2.2).
 */
export function validateConnectRequest (headers: HeaderMap): ValidConnect {
  // RFC 8441 §5: "The :protocol pseudo-header field MUST be included … with a value of websocket".
  const protocol = headerValue(headers, ':protocol')
  if (protocol === undefined || protocol.toLowerCase() !== 'websocket') throw new HandshakeError(501, 'only the websocket protocol is served over extended CONNECT')
  // RFC 8441 §4: ":scheme and :path … MUST also be included"; §5: :authority names the target.
  const path = headerValue(headers, ':path')
  if (headerValue(headers, ':scheme') === undefined || path === undefined || headerValue(headers, ':authority') === undefined) {
    throw new HandshakeError(400, 'an extended CONNECT needs :scheme, :path and :authority')
  }
  const url = originForm(path)
  if (url === undefined) throw new HandshakeError(400, 'the :path must be a path')
  // RFC 8441 §5 with RFC 6455 §4.2.1 item 6: version 13, and we say which one we speak (§4.4).
  if (headerValue(headers, 'sec-websocket-version')?.trim() !== '13') throw new HandshakeError(400, 'sec-websocket-version must be 13', { 'sec-websocket-version': '13' })
  const key = headerValue(headers, 'sec-websocket-key')?.trim()
  return {
    url,
    protocols: parseProtocols(headerValue(headers, 'sec-websocket-protocol')),
    extensions: parseExtensions(headerValue(headers, 'sec-websocket-extensions')),
    origin: headerValue(headers, 'origin'),
    key: key === '' ? undefined : key
  }
}

/**
 * The 200 that accepts an extended CONNECT (RFC 8441 §5): the chosen subprotocol and extensions.
 * `accept` (`sec-websocket-accept`) is answered only when the client sent a key: RFC 8441 does
 * not use it, but undici's client requires it then.
 */
export function buildConnectResponse (protocol: string, extensions: string | undefined, accept: string | undefined): Record<string, string | number> {
  const out: Record<string, string | number> = { ':status': 200 }
  if (protocol !== '') out['sec-websocket-protocol'] = protocol
  if (extensions !== undefined) out['sec-websocket-extensions'] = extensions
  if (accept !== undefined) out['sec-websocket-accept'] = accept
  return out
}

/** Connection-specific headers, which HTTP/2 forbids (RFC 9113 §8.2.2): left out of a refusal. */
const CONNECTION_SPECIFIC = new Set(['connection', 'upgrade', 'keep-alive', 'proxy-connection', 'transfer-encoding'])

/** The response headers of a refusal on a stream: status, a plain-text body's type and length, `error`'s own headers less the connection-specific ones. */
export function buildRefusalHeaders (error: HandshakeError, bodyLength: number): Record<string, string | number> {
  const out: Record<string, string | number> = { ':status': error.status, 'content-type': 'text/plain; charset=utf-8', 'content-length': bodyLength }
  for (const [name, value] of Object.entries(error.headers)) {
    const lower = name.toLowerCase()
    if (!CONNECTION_SPECIFIC.has(lower) && !lower.startsWith(':')) out[lower] = value
  }
  return out
}

