/**
 * The opening handshake, RFC 6455 §4, as pure functions: validate a client's upgrade request,
 * pick a subprotocol, build the 101 or the refusal, and (for the client) check the server's 101.
 * No I/O and no Node imports: SHA-1 for `Sec-WebSocket-Accept` is passed in by the caller.
 *
 * @packageDocumentation
 */

import { HandshakeError } from './errors.js'

/** The GUID of RFC 6455 §1.3, appended to the key before hashing. */
export const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

/** Header values as Node gives them: lower-case names; repeated headers as arrays or joined. */
export type HeaderMap = Record<string, string | string[] | undefined>

/** The parts of an HTTP request the handshake looks at. */
export interface UpgradeRequest {
  method?: string
  /** `"1.1"` for HTTP/1.1. */
  httpVersion: string
  /** The request target as sent: origin-form (`/chat?x=1`) or absolute-form (`http://host/chat?x=1`). */
  url?: string
  headers: HeaderMap
  /** Header names and values as sent, alternating (Node's `rawHeaders`); when given, a repeated `Host` is refused. */
  rawHeaders?: readonly string[]
}

/**
 * One element of a `Sec-WebSocket-Extensions` header (§9.1), a client's offer or a server's
 * answer: `permessage-deflate; client_max_window_bits` → `{ name, params: { client_max_window_bits: true } }`.
 */
export interface ExtensionElement {
  /** The extension's token, e.g. `permessage-deflate`. */
  name: string
  /** Its parameters: a value, or `true` for a parameter without one. */
  params: Record<string, string | true>
  /** The first parameter named twice, if any (RFC 7692 §7 declines such an offer, and fails such an answer; `params` keeps the last). */
  repeated?: string
}

/** What a valid upgrade request asks for. */
export interface ValidUpgrade {
  key: string
  /** The request target in origin-form: path and query, `/` when absent. */
  url: string
  /** Offered subprotocols in the client's order of preference. */
  protocols: string[]
  extensions: ExtensionElement[]
  origin: string | undefined
}

/** RFC 7230 §3.2.6 tchar: what a token (a subprotocol, an extension name) may contain. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** Base64 of exactly 16 bytes: 22 significant characters and `==` (§4.2.1 item 5). */
const KEY = /^[A-Za-z0-9+/]{21}[AQgw]==$/

/** One header's value, with repeated lines joined by commas (RFC 7230 §3.2.2). */
export function headerValue (headers: HeaderMap, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v.join(', ') : v
}

const NONE = Object.freeze([]) as unknown as string[]

/** Split a comma-separated header into trimmed, non-empty items. */
export function splitList (value: string | undefined): string[] {
  if (value === undefined) return NONE
  const out: string[] = []
  for (const item of value.split(',')) {
    const t = item.trim()
    if (t !== '') out.push(t)
  }
  return out
}

/**
 * Parse `Sec-WebSocket-Protocol` (§4.1, §11.3.4): `1#token`. Empty elements beside tokens are
 * ignored (RFC 7230 §7); a header naming no token at all, or any element that is not a token,
 * throws a 400. An absent header (`undefined`) offers none.
 */
export function parseProtocols (value: string | undefined): string[] {
  const protocols = splitList(value)
  if (value !== undefined && protocols.length === 0) throw new HandshakeError(400, 'the Sec-WebSocket-Protocol header names no subprotocol')
  for (const p of protocols) {
    if (!TOKEN.test(p)) throw new HandshakeError(400, `invalid subprotocol: ${JSON.stringify(p).slice(0, 64)}`)
  }
  return protocols
}

/** Parse `Sec-WebSocket-Extensions` (§9.1): `name; param; param=value, name2`. Throws a 400 when malformed. */
export function parseExtensions (value: string | undefined): ExtensionElement[] {
  if (value === undefined) return []
  const elements: ExtensionElement[] = []
  for (const item of splitList(value)) {
    const [name, ...rest] = item.split(';').map((s) => s.trim())
    if (!TOKEN.test(name)) throw new HandshakeError(400, 'invalid Sec-WebSocket-Extensions header')
    const params: Record<string, string | true> = {}
    let repeated: string | undefined
    for (const p of rest) {
      const eq = p.indexOf('=')
      const key = (eq < 0 ? p : p.slice(0, eq)).trim()
      let val: string | true = true
      if (eq >= 0) {
        val = p.slice(eq + 1).trim()
        if (val.length >= 2 && val.startsWith('"') && val.endsWith('"')) val = val.slice(1, -1)
        if (!TOKEN.test(val)) throw new HandshakeError(400, 'invalid Sec-WebSocket-Extensions header')
      }
      if (!TOKEN.test(key)) throw new HandshakeError(400, 'invalid Sec-WebSocket-Extensions header')
      if (Object.hasOwn(params, key)) repeated ??= key
      params[key] = val
    }
    elements.push(repeated === undefined ? { name, params } : { name, params, repeated })
  }
  return elements
}

/** `scheme://authority` at the start of an absolute-form target (RFC 3986 §3.1–§3.2). */
const SCHEME_AUTHORITY = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/

/**
 * The origin-form of a request target (RFC 7230 §5.3): an origin-form target as it is; an
 * absolute-form one, which a server MUST accept (§5.3.2), less its scheme and authority, with
 * `/` for an empty path. `undefined` for any other form (`*`, authority-form).
 */
export function originForm (target: string): string | undefined {
  if (target.startsWith('/')) return target
  const m = SCHEME_AUTHORITY.exec(target)
  if (m === null) return undefined
  const rest = target.slice(m[0].length)
  return rest.startsWith('/') ? rest : '/' + rest
}

/** How many `Host` lines `rawHeaders` (name, value, name, value, …) holds. */
function countHost (rawHeaders: readonly string[]): number {
  let n = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (name.length === 4 && name.toLowerCase() === 'host') n++
  }
  return n
}

function hasToken (value: string | undefined, token: string): boolean {
  if (value === undefined) return false
  // The common case, a single token, without splitting.
  if (value.length === token.length) return value.toLowerCase() === token
  return splitList(value).some((t) => t.toLowerCase() === token)
}

/**
 * Validate a client's opening handshake, RFC 6455 §4.2.1. Throws a {@link HandshakeError} with
 * 400 for a malformed request, or 426 plus `Sec-WebSocket-Version: 13` for another version.
 */
export function validateUpgradeRequest (req: UpgradeRequest): ValidUpgrade {
  const h = req.headers
  // §4.2.1 item 1: "An HTTP/1.1 or higher GET request".
  if (req.method !== undefined && req.method !== 'GET') throw new HandshakeError(405, 'the method must be GET', { Allow: 'GET' })
  if (req.httpVersion !== '1.1') {
    const [major, minor] = req.httpVersion.split('.').map(Number)
    if (!(major > 1 || (major === 1 && minor >= 1))) throw new HandshakeError(400, 'HTTP/1.1 or later is required')
  }
  const url = originForm(req.url ?? '/')
  if (url === undefined) throw new HandshakeError(400, 'the request target must be a path or an absolute URI')
  // Item 2: a Host header; RFC 7230 §5.4: exactly one (Node's `headers` keeps only the first).
  if (headerValue(h, 'host') === undefined) throw new HandshakeError(400, 'missing Host header')
  if (req.rawHeaders !== undefined && countHost(req.rawHeaders) > 1) throw new HandshakeError(400, 'more than one Host header')
  // Item 3: Upgrade including the "websocket" keyword, case-insensitively.
  if (!hasToken(headerValue(h, 'upgrade'), 'websocket')) throw new HandshakeError(400, 'the Upgrade header must include "websocket"')
  // Item 4: Connection including the "Upgrade" token (so "keep-alive, Upgrade" is fine).
  if (!hasToken(headerValue(h, 'connection'), 'upgrade')) throw new HandshakeError(400, 'the Connection header must include "Upgrade"')
  // What follows the request's headers is the client's first frames (§4.1: its handshake is a
  // GET with no content), so a body would be read as frames, and a proxy that delimits the body
  // and the server would disagree about where frames begin: refused.
  const length = headerValue(h, 'content-length')
  if (headerValue(h, 'transfer-encoding') !== undefined || (length !== undefined && length.trim() !== '0')) throw new HandshakeError(400, 'an upgrade request must not have a body')
  // Item 6 before item 5, so a client of another version learns which one we speak (§4.4).
  const version = headerValue(h, 'sec-websocket-version')
  if (version === undefined) throw new HandshakeError(426, 'missing Sec-WebSocket-Version header', { 'Sec-WebSocket-Version': '13' })
  if (version.trim() !== '13') throw new HandshakeError(426, 'unsupported WebSocket version', { 'Sec-WebSocket-Version': '13' })
  // Item 5: a key that base64-decodes to exactly 16 bytes.
  const key = headerValue(h, 'sec-websocket-key')?.trim()
  if (key === undefined || !KEY.test(key)) throw new HandshakeError(400, 'Sec-WebSocket-Key must be base64 of 16 bytes')
  return {
    key,
    url,
    protocols: parseProtocols(headerValue(h, 'sec-websocket-protocol')),
    extensions: parseExtensions(headerValue(h, 'sec-websocket-extensions')),
    origin: headerValue(h, 'origin')
  }
}

/** The first offered protocol that `has` accepts (the client lists them by preference, §4.1), or `''` when none was offered and `has('')`. */
export function selectProtocol (offered: readonly string[], has: (protocol: string) => boolean): string | undefined {
  if (offered.length === 0) return has('') ? '' : undefined
  for (const p of offered) if (has(p)) return p
  return undefined
}

/** Most characters of the offered list a refusal quotes: its body stays short however much was offered. */
const QUOTED_OFFER = 80

/** The reason for a 400 when no handler serves the offer: names the offer, quoting at most a short prefix of it. */
export function noHandlerReason (offered: readonly string[]): string {
  if (offered.length === 0) return 'a subprotocol is required'
  const list = offered.join(', ')
  if (list.length <= QUOTED_OFFER) return `no handler for subprotocol ${list}`
  const prefix = list.slice(0, QUOTED_OFFER) + '…'
  return offered.length === 1
    ? `no handler for subprotocol ${prefix}`
    : `no handler for any of the ${offered.length} subprotocols offered: ${prefix}`
}

/** §4.2.2 item 5.4: base64(SHA-1(key + GUID)). `sha1Base64` is the caller's hash, e.g. from `node:crypto`. */
export function acceptValue (key: string, sha1Base64: (input: string) => string): string {
  return sha1Base64(key + WEBSOCKET_GUID)
}

/** Build the 101 response of §4.2.2 item 5. */
export function buildAcceptResponse (accept: string, protocol: string, extraHeaders: Record<string, string> = {}): string {
  let out = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${accept}\r\n`
  if (protocol !== '') out += `Sec-WebSocket-Protocol: ${protocol}\r\n`
  for (const [name, value] of Object.entries(extraHeaders)) out += `${name}: ${value}\r\n`
  return out + '\r\n'
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  426: 'Upgrade Required',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable'
}

/** The one-line plain-text body of a refusal. */
export function rejectBody (reason: string): string {
  return reason.replace(/[\r\n]+/g, ' ') + '\n'
}

/** Build a refusal: a real HTTP response with a one-line plain-text body, then the connection closes. */
export function buildRejectResponse (status: number, reason: string, extraHeaders: Record<string, string> = {}): string {
  const body = rejectBody(reason)
  let out = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nConnection: close\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${new TextEncoder().encode(body).length}\r\n`
  for (const [name, value] of Object.entries(extraHeaders)) out += `${name}: ${value}\r\n`
  return out + '\r\n' + body
}

/** The server's answer to an upgrade request as the client sees it (a 101, or not). */
export interface UpgradeResponse {
  statusCode: number
  headers: HeaderMap
}

/**
 * Check a server's handshake response, §4.1 (the client's side): status 101, `Upgrade:
 * websocket`, `Connection: Upgrade`, the right `Sec-WebSocket-Accept`, then what
 * {@link validateNegotiation} checks. Returns the chosen protocol (`''` for none) and extensions.
 */
export function validateUpgradeResponse (res: UpgradeResponse, expectedAccept: string, offeredProtocols: readonly string[], offeredExtensions: readonly string[] = []): { protocol: string, extensions: ExtensionElement[] } {
  validateSwitchingProtocols(res, expectedAccept)
  return validateNegotiation(res.headers, offeredProtocols, offeredExtensions)
}

/**
 * The HTTP/1.1 part of {@link validateUpgradeResponse}: status 101, `Upgrade: websocket`,
 * `Connection: Upgrade` and the right `Sec-WebSocket-Accept` (§4.1). Throws a
 * {@link HandshakeError} with the server's status, or 101 when the 101 is wrong.
 */
export function validateSwitchingProtocols (res: UpgradeResponse, expectedAccept: string): void {
  const h = res.headers
  if (res.statusCode !== 101) throw new HandshakeError(res.statusCode, `server answered ${res.statusCode} instead of 101`)
  if (!hasToken(headerValue(h, 'upgrade'), 'websocket')) throw new HandshakeError(101, 'the Upgrade header of the response is not "websocket"')
  if (!hasToken(headerValue(h, 'connection'), 'upgrade')) throw new HandshakeError(101, 'the Connection header of the response lacks "Upgrade"')
  if (headerValue(h, 'sec-websocket-accept')?.trim() !== expectedAccept) throw new HandshakeError(101, 'Sec-WebSocket-Accept does not match the key')
}

/**
 * The part of a server's answer that does not depend on how the connection was opened (an
 * HTTP/1.1 101 or an HTTP/2 200): a subprotocol only if one was offered and then one of those,
 * and no extension that was not offered. Throws a {@link HandshakeError} with status 101.
 */
export function validateNegotiation (h: HeaderMap, offeredProtocols: readonly string[], offeredExtensions: readonly string[] = []): { protocol: string, extensions: ExtensionElement[] } {
  // §4.1 item 6, and WHATWG WebSockets: with protocols offered, the 101 must select one of them;
  // with none offered, it must not name any (not even an empty one).
  const header = headerValue(h, 'sec-websocket-protocol')
  let protocol = ''
  if (header !== undefined) {
    const chosen = splitList(header)
    if (chosen.length > 1) throw new HandshakeError(101, 'the server chose more than one subprotocol')
    protocol = chosen[0] ?? ''
    if (protocol === '') throw new HandshakeError(101, 'the server sent an empty Sec-WebSocket-Protocol header')
    if (!offeredProtocols.includes(protocol)) throw new HandshakeError(101, `the server chose a subprotocol that was not offered: ${protocol.slice(0, 64)}`)
  } else if (offeredProtocols.length > 0) {
    throw new HandshakeError(101, 'the server selected no subprotocol, though some were offered')
  }
  let extensions: ExtensionElement[]
  try {
    extensions = parseExtensions(headerValue(h, 'sec-websocket-extensions'))
  } catch {
    // The server answered 101: a malformed answer is a bad 101, not a 400 of ours.
    throw new HandshakeError(101, 'the server sent a malformed Sec-WebSocket-Extensions header')
  }
  for (const e of extensions) {
    if (!offeredExtensions.includes(e.name)) throw new HandshakeError(101, `the server chose an extension that was not offered: ${e.name}`)
  }
  return { protocol, extensions }
}
