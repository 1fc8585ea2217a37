/**
 * The socket driver, shared by the server and the client: one module per concern under
 * `driver/` (the connection, its incoming queue, the sink pump, the heartbeat, the memory
 * budget); this file gathers what the rest of the package uses.
 *
 * @packageDocumentation
 */

export { WebSocketConnection, finishHandler } from './driver/connection.js'
export { MemoryBudget, DEFAULT_MEMORY_BUDGET } from './driver/budget.js'
export { isText, asText } from './driver/text.js'
export { DEFAULT_LIMITS, resolveLimits, type CloseInfo, type Connection, type ConnectionLimits, type ConnectionStats, type DriverOptions, type HeartbeatOptions, type Logger, type OutgoingMessage, type ReceivedStream, type ResolvedLimits, type StreamConnection, type StreamedMessage, type StreamModeOptions } from './driver/types.js'
