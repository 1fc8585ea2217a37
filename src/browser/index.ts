/**
 * wspipe in the browser: `connect(url)` gives the same async-iterable duplex as on Node, over
 * `WebSocketStream` where the browser has it (backpressure both ways) and plain `WebSocket`
 * elsewhere. Bundlers pick this build through the package's `browser` condition; nothing in it
 * needs Node. See docs/browser.md.
 *
 * @example
 * ```ts
 * import { pipe } from 'it-pipe'
 * import { connect } from 'wspipe'
 *
 * const conn = await connect('/echo', { protocols: ['echo'] })
 * await conn.send('hello')
 * for await (const message of conn.source) console.log(new TextDecoder().decode(message))
 * ```
 *
 * @module wspipe/browser
 */

export { connect, DEFAULT_BROWSER_OPTIONS } from './connect.js'
export type { Connection, ConnectOptions, StreamConnection, StreamConnectOptions, CloseInfo, OutgoingMessage, ReceivedStream, StreamedMessage } from './types.js'
export { PageCloseCode } from './close-codes.js'
export { isText, asText } from '../text-mark.js'
export { Outbox, DEFAULT_OUTBOX_LIMIT } from '../outbox.js'
export { json } from '../json.js'
export { ConnectionClosedError, InvalidStateError, JsonDecodeError, MessageAbandonedError, ReceiveQueueFullError, UpgradeError } from '../errors.js'
export { CloseCode } from '../protocol/close-codes.js'
