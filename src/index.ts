/**
 * wspipe: WebSocket (RFC 6455) for Node.js, where every connection is an async-iterable duplex.
 *
 * @example
 * ```ts
 * import { WebSocketServer } from 'wspipe'
 *
 * const server = new WebSocketServer()
 * server.register('echo', ({ source, sink }) => sink(source))
 * await server.listen({ port: 8080 })
 * ```
 *
 * The optional parts have entry points of their own, so a program that does not use them does
 * not load them: `wspipe/redis` ({@link TopicsAdapter} over Redis), `wspipe/cluster` (one
 * server per core), `wspipe/testing` and `wspipe/protocol`.
 *
 * @module wspipe
 */

export { WebSocketServer, DEFAULT_SERVER_OPTIONS, type WholeModeOptions, type ServerStats, type WebSocketServerOptions, type ListenOptions, type ListenTlsOptions, type AuthorizeResult, type HostServer } from './server.js'
export type { Http2UpgradeRequest } from './http2/server.js'
export { isText, asText } from './text-mark.js'
export { DEFAULT_LIMITS, type Connection, type CloseInfo, type ConnectionLimits, type ConnectionStats, type HeartbeatOptions, type Logger, type OutgoingMessage, type ReceivedStream, type StreamConnection, type StreamedMessage, type StreamModeOptions } from './driver/types.js'
export type { Handler, StreamHandler } from './handler.js'
export { connect, type ConnectOptions, type StreamConnectOptions } from './client.js'
export { Outbox, DEFAULT_OUTBOX_LIMIT } from './outbox.js'
export { json } from './json.js'
export { Topics, Subscription, DEFAULT_TOPICS_OPTIONS, type TopicsOptions, type SlowSubscriberPolicy, type TopicMessage } from './topics/topics.js'
export type { TopicsAdapter, RemoteDelivery } from './topics/adapter.js'
export { DEFAULT_DEFLATE_OPTIONS, type PerMessageDeflateOptions } from './extensions/deflate-options.js'
export { ConnectionClosedError, InvalidStateError, JsonDecodeError, MessageAbandonedError, SlowSubscriberError, UpgradeError } from './errors.js'
export { CloseCode, ProtocolError } from './protocol/index.js'
export { DIAGNOSTICS_CHANNELS, type ConnectionRole, type ConnectionOpenMessage, type ConnectionCloseMessage, type HandshakeRefusedMessage, type MemoryBudgetExhaustedMessage, type SlowSubscriberMessage, type HeartbeatDropMessage, type ZlibBudgetWaitMessage } from './diagnostics.js'
