/**
 * The browser build's own close codes. A page may send only 1000 and 3000–4999
 * (WHATWG WebSocket standard, `close()`), so where wspipe on Node would send 1008 or 1011, a
 * page sends the same number in the private range: 4008 and 4011.
 *
 * @packageDocumentation
 */

import type { ReceiveQueueFullError } from '../errors.js'

/** Close codes a page sends on its own account. */
export const PageCloseCode = {
  /** The page did not read and the receive queue was full (plain `WebSocket` only): 1008, policy violation, as 4008. */
  ReceiveQueueFull: 4008 satisfies ReceiveQueueFullError['closeCode'],
  /** The sink's iterable threw after `source` was returned: 1011, internal error, as 4011. */
  InternalError: 4011
} as const
