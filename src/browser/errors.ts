/**
 * The browser build's own error and close codes. A page may send only 1000 and 3000–4999
 * (WHATWG WebSocket standard, `close()`), so where wspipe on Node would send 1008 or 1011, a
 * page sends the same number in the private range: 4008 and 4011.
 *
 * @packageDocumentation
 */

/** Close codes a page sends on its own account. */
export const PageCloseCode = {
  /** The page did not read and the receive queue was full (plain `WebSocket` only): 1008, policy violation, as 4008. */
  ReceiveQueueFull: 4008,
  /** The sink's iterable threw after `source` was returned: 1011, internal error, as 4011. */
  InternalError: 4011
} as const

/**
 * The page did not read: on plain `WebSocket` (which cannot stop reading) a message arrived while
 * the receive queue was above `receiveHighWaterMark`, so the connection was closed with 4008.
 * `source` throws it after the messages that were queued.
 */
export class ReceiveQueueFullError extends Error {
  /** `'ReceiveQueueFullError'`. */
  override name = 'ReceiveQueueFullError'
  /** The stable code `WS_ERR_RECEIVE_QUEUE_FULL`. */
  readonly code = 'WS_ERR_RECEIVE_QUEUE_FULL'
  /** The close code sent: 4008. */
  readonly closeCode = PageCloseCode.ReceiveQueueFull

  /** Made by the connection as it closes with 4008; its message says why. */
  constructor () {
    super('the page did not read: the receive queue passed receiveHighWaterMark, so the connection was closed (4008)')
  }
}
