/**
 * Handlers and how one is run: a handler serves one connection, and its settling closes it.
 * Shared by the server and by `wspipe/testing`, which runs handlers without one.
 *
 * @packageDocumentation
 */

import { CloseCode } from './protocol/close-codes.js'
import { finishHandler, type WebSocketConnection } from './driver/connection.js'
import type { Connection, Logger, StreamConnection } from './driver/types.js'

/** A handler serves one connection; its promise settling closes it (1000, or 1011 if it threw). */
export type Handler = (connection: Connection) => void | Promise<void>

/** A handler in stream mode: its connection's `source` yields each message as a stream of chunks. */
export type StreamHandler = (connection: StreamConnection) => void | Promise<void>

/** Run a handler: its settling closes the connection, 1000 or (after logging) 1011. */
export function runHandler (handler: Handler | StreamHandler, conn: WebSocketConnection, logger: Logger): void {
  let result: void | PromiseLike<void>
  try {
    // The connection is whichever duplex the handler was registered for.
    result = (handler as (c: unknown) => void | PromiseLike<void>)(conn)
  } catch (err) {
    finishHandler(conn, err, logger)
    return
  }
  // `({ source, sink }) => sink(source)` returns the sink's own promise: the sink reports its
  // end to the connection directly, with no promise reactions held per connection.
  if (conn.adoptSinkPromise(result, logger)) return
  // Any thenable counts (a promise from another realm or library), not only a native Promise.
  if (typeof (result as PromiseLike<void> | undefined)?.then === 'function') {
    Promise.resolve(result).then(() => conn.close(CloseCode.Normal), (err: unknown) => finishHandler(conn, err, logger))
  } else {
    // `({ source, sink }) => { sink(source) }`: the braces drop the sink's promise, so the
    // connection closes at once. Almost surely a missing `return`: never silently.
    if (conn.sinkUnderWay) {
      const err = new Error('return (or await) the sink\'s promise: the connection closes when the handler returns')
      logger.error({ err, protocol: conn.protocol, remoteAddress: conn.remoteAddress, path: conn.path }, 'WebSocket handler returned before its sink was done, so the connection closed at once')
    }
    conn.close(CloseCode.Normal)
  }
}
