/**
 * RFC 9113 §7 error codes for RST_STREAM and GOAWAY, as wspipe uses them: written out so that
 * node:http2 is loaded only when HTTP/2 is used.
 *
 * @packageDocumentation
 */

/** A graceful end: after a complete response, asks the peer to stop sending (§8.1). */
export const NO_ERROR = 0x0
/** The stream was not processed: the client may send it again (§8.7). */
export const REFUSED_STREAM = 0x7
/** The stream is no longer needed; RFC 8441 §5 represents a WebSocket's TCP reset with it. */
export const CANCEL = 0x8
