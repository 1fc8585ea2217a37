/**
 * What the server keeps of an upgrade request for its connection, beyond the handshake: the
 * application's headers, the client's address behind trusted proxies, and the path.
 *
 * @packageDocumentation
 */

import type { IncomingHttpHeaders } from 'node:http'
import { isIP } from 'node:net'

/** Headers the handshake consumed: kept off `conn.headers`, so each idle connection holds less. */
const HANDSHAKE_HEADERS = new Set(['connection', 'upgrade', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions'])

/** The request's headers less the handshake's own, as a fresh object (the request can then be freed). */
export function applicationHeaders (headers: IncomingHttpHeaders): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {}
  for (const name in headers) if (!HANDSHAKE_HEADERS.has(name)) out[name] = headers[name]
  return out
}

/**
 * The client's address by `X-Forwarded-For`, trusting the last `hops` proxies: each appends the
 * address it received the request from, so the entry `hops` from the end is the last one written
 * by a proxy we trust. Only an IP address counts (a bracketed IPv6 one without its brackets):
 * anything else there, as no header at all, gives undefined (the socket's address). Its
 * neighbours are not tried instead: those further left are anyone's to write.
 */
export function forwardedFor (header: string | string[] | undefined, hops: number): string | undefined {
  if (header === undefined) return undefined
  // Several header lines form one list (RFC 9110 §5.3).
  const entries = (Array.isArray(header) ? header.join(',') : header).split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (entries.length === 0) return undefined
  const entry = entries[Math.max(0, entries.length - hops)]
  if (isIP(entry) !== 0) return entry
  // `[2001:db8::1]`, as a URI writes an IPv6 host (RFC 3986 §3.2.2); never with a port.
  if (entry.startsWith('[') && entry.endsWith(']') && isIP(entry.slice(1, -1)) === 6) return entry.slice(1, -1)
  return undefined
}

/** The path of a request target: less its query. */
export function pathOf (url: string): string {
  const q = url.indexOf('?')
  return q < 0 ? url : url.slice(0, q)
}

/** An HTTP/2 request's headers as a handler sees them: `:authority` as `host`, the other pseudo-headers and the handshake's own left out. */
export function streamHeaders (headers: IncomingHttpHeaders): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {}
  for (const name in headers) {
    if (name.startsWith(':') || HANDSHAKE_HEADERS.has(name)) continue
    out[name] = headers[name]
  }
  if (headers[':authority'] !== undefined && out.host === undefined) out.host = headers[':authority']
  return out
}
