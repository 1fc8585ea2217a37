/**
 * Aborting a WebSocket's HTTP/2 stream the way RFC 8441 §5 says: "RST exceptions are represented
 * with the RST_STREAM frame … with the CANCEL error code". Node's `destroy()` without an error
 * resets an open stream with NO_ERROR, which a peer may take for an orderly end (RFC 9113 §8.1).
 *
 * @packageDocumentation
 */

import type { Http2Stream } from 'node:http2'
import { CANCEL } from './error-codes.js'

/**
 * Make `stream.destroy()` (the driver's drop: close timeout, heartbeat, `terminate()`) reset a
 * stream still open with CANCEL first. A stream already closed (both ends, or a reset) and one
 * whose session is gone are left to Node. Set once per stream, when its WebSocket opens.
 */
export function cancelOnDestroy (stream: Http2Stream): void {
  const destroy = stream.destroy
  stream.destroy = function (this: Http2Stream, err?: Error) {
    if (!this.closed && !this.destroyed && this.session !== undefined && !this.session.destroyed) this.close(CANCEL)
    return destroy.call(this, err)
  }
}
