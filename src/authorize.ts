/**
 * The `authorize` hook's answer, read the same way over HTTP/1.1 and HTTP/2.
 *
 * @packageDocumentation
 */

import { HandshakeError } from './errors.js'
import type { Logger } from './driver/types.js'

/** What `authorize` may answer: true to accept, false for a 403, or a status and reason. */
export type AuthorizeResult = boolean | {
  /** 401 (Unauthorized) or 403 (Forbidden). */
  status: 401 | 403
  /** A short reason for the response body. */
  reason?: string
  /** Extra response headers, e.g. `WWW-Authenticate` with a 401. */
  headers?: Record<string, string>
}

/**
 * What `authorize` answered, as a refusal (undefined: accepted). Anything but a boolean or
 * `{ status: 401 | 403 }` is a bug in the hook: 500, logged.
 */
export function authorizeRefusal (result: unknown, logger: Logger, remoteAddress: string | undefined): HandshakeError | undefined {
  if (result === true) return undefined
  if (result === false) return new HandshakeError(403, 'forbidden')
  const r = result as Exclude<AuthorizeResult, boolean> | null
  if (typeof r === 'object' && r !== null && (r.status === 401 || r.status === 403)) {
    return new HandshakeError(r.status, r.reason ?? (r.status === 401 ? 'unauthorized' : 'forbidden'), r.headers)
  }
  logger.error({ result, remoteAddress }, 'authorize returned neither a boolean nor { status: 401 | 403 }')
  return new HandshakeError(500, 'authorization failed')
}
