/**
 * Diagnostics channels (`node:diagnostics_channel`), named as undici names its own
 * (`undici:websocket:open`): what an operator watches — connections opening and closing,
 * refused upgrades, connections failed for the memory budget, slow topic subscribers, heartbeat
 * drops, connections paused for the zlib budget. Each message is built only when its channel has a subscriber, so nobody listening
 * costs one property read per event.
 *
 * @example
 * ```ts
 * import { subscribe } from 'node:diagnostics_channel'
 * import type { ConnectionCloseMessage } from 'wspipe'
 *
 * subscribe('wspipe:connection:close', (message) => {
 *   const { code, wasClean } = message as ConnectionCloseMessage
 *   if (!wasClean) console.log(`a connection ended with ${code}`)
 * })
 * ```
 *
 * @packageDocumentation
 */

import { channel } from 'node:diagnostics_channel'
import type { Connection, StreamConnection } from './driver/types.js'

/** The names of wspipe's diagnostics channels. */
export const DIAGNOSTICS_CHANNELS = {
  /** {@link ConnectionOpenMessage}. */
  connectionOpen: 'wspipe:connection:open',
  /** {@link ConnectionCloseMessage}. */
  connectionClose: 'wspipe:connection:close',
  /** {@link HandshakeRefusedMessage}. */
  handshakeRefused: 'wspipe:handshake:refused',
  /** {@link MemoryBudgetExhaustedMessage}. */
  memoryBudgetExhausted: 'wspipe:memory_budget:exhausted',
  /** {@link SlowSubscriberMessage}. */
  slowSubscriber: 'wspipe:topic:slow_subscriber',
  /** {@link HeartbeatDropMessage}. */
  heartbeatDrop: 'wspipe:heartbeat:drop',
  /** {@link ZlibBudgetWaitMessage}. */
  zlibBudgetWait: 'wspipe:zlib_budget:wait'
} as const

/** Which end of a connection this process is: a server's handler, or a client from `connect()` (or `connectInMemory`). */
export type ConnectionRole = 'server' | 'client'

/**
 * `wspipe:connection:open`: a connection is open. On a server, after the 101 is written and
 * before the handler runs; on a client, once the server's 101 is checked, before `connect()`
 * resolves. Each connection also publishes one {@link ConnectionCloseMessage}.
 */
export interface ConnectionOpenMessage {
  /** The connection (a {@link StreamConnection} in stream mode). */
  readonly connection: Connection | StreamConnection
  /** A server's connection or a client's. */
  readonly role: ConnectionRole
  /** The subprotocol in use, `''` for none. */
  readonly protocol: string
  /** The peer's address, as `connection.remoteAddress` has it (after `trustProxy`). */
  readonly remoteAddress: string | undefined
}

/** `wspipe:connection:close`: a connection is gone, once per connection that published an open; what `connection.closed` settles with. */
export interface ConnectionCloseMessage {
  /** The connection, as its open message had it. */
  readonly connection: Connection | StreamConnection
  /** A server's connection or a client's. */
  readonly role: ConnectionRole
  /** The close code of the side that closed first; 1006 when no close frame crossed. */
  readonly code: number
  /** The reason that came with that code, `''` for none. */
  readonly reason: string
  /** Both close frames crossed and TCP closed without error. */
  readonly wasClean: boolean
}

/**
 * `wspipe:handshake:refused`: a server answered an upgrade request with an HTTP error instead
 * of 101 (400, 401, 403, 404, 405, 426, 500, 503; not Node's own 431 for oversized headers).
 */
export interface HandshakeRefusedMessage {
  /** The HTTP status sent. */
  readonly status: number
  /** The one-line reason sent in the body, e.g. `a subprotocol is required`. */
  readonly reason: string
  /** The client's address: the TCP peer's, or with `trustProxy` what `X-Forwarded-For` says when the request was read. */
  readonly remoteAddress: string | undefined
}

/**
 * `wspipe:memory_budget:exhausted`: the server's `memoryBudget` was spent when a connection (its
 * input or output) or a topic subscription (its queue) needed more: that connection is failed
 * with 1013, the others carry on. A {@link ConnectionCloseMessage} with code 1013 follows.
 */
export interface MemoryBudgetExhaustedMessage {
  /** The connection failed; undefined for a topic subscription made without one. */
  readonly connection: Connection | StreamConnection | undefined
  /** What needed more: the connection's own buffers, or its subscription to `topic`. */
  readonly holder: 'connection' | 'subscription'
  /** The topic, for a subscription. */
  readonly topic?: string
  /** Bytes the holder held when it failed (with the growth that did not fit). */
  readonly heldBytes: number
  /** Bytes charged to the budget by all connections then. */
  readonly usedBytes: number
  /** The budget (`memoryBudget`). */
  readonly limitBytes: number
}

/**
 * `wspipe:topic:slow_subscriber`: a subscriber's queue had no room for a message
 * (`topics.maxQueuedBytes`). Under the `'close'` policy once, as its connection is closed with
 * 1008; under `'drop'` for every message skipped.
 */
export interface SlowSubscriberMessage {
  /** The topic subscribed to. */
  readonly topic: string
  /** The subscriber's connection; undefined for a subscription made without one. */
  readonly connection: Connection | StreamConnection | undefined
  /** What was done: `'close'` (the subscriber is closed) or `'drop'` (this message skipped). */
  readonly policy: 'close' | 'drop'
  /** Bytes queued for the subscriber, as `maxQueuedBytes` counts them. */
  readonly queuedBytes: number
  /** Messages skipped for this subscription so far (`'drop'`). */
  readonly dropped: number
}

/**
 * `wspipe:heartbeat:drop`: the heartbeat dropped a connection (no close frame; a
 * {@link ConnectionCloseMessage} with 1006 follows). `'pong-timeout'`: a ping went unanswered
 * for `heartbeat.timeout`; `'stalled'`: reading was paused and nothing was read or written for
 * `interval + timeout`.
 */
export interface HeartbeatDropMessage {
  /** The connection dropped. */
  readonly connection: Connection | StreamConnection
  /** A server's connection or a client's. */
  readonly role: ConnectionRole
  /** Why: no pong in time, or stalled while reading was paused. */
  readonly reason: 'pong-timeout' | 'stalled'
}

/**
 * `wspipe:zlib_budget:wait`: a permessage-deflate connection stopped reading because a zlib
 * budget is spent (backpressure, not a close): its own (`connectionBudget`), after a message it
 * sent or received cost more zlib work than its compressed bytes pay for; or the server's
 * (`serverBudget`), when a message to be inflated off the event loop must wait for it. Once per
 * wait (what `stats().compressionWaits` counts); reading resumes when the bucket has recovered.
 */
export interface ZlibBudgetWaitMessage {
  /** The connection paused. */
  readonly connection: Connection | StreamConnection
  /** A server's connection or a client's. */
  readonly role: ConnectionRole
  /** The budget that is spent: this connection's, or the one its server's connections share. */
  readonly budget: 'connection' | 'server'
  /** Milliseconds until that budget is out of debt, as it stood when the wait began. */
  readonly wait: number
}

// The channels, made once: `hasSubscribers` is what each publishing site reads first.
/** `wspipe:connection:open`. */
export const connectionOpenChannel = channel(DIAGNOSTICS_CHANNELS.connectionOpen)
/** `wspipe:connection:close`. */
export const connectionCloseChannel = channel(DIAGNOSTICS_CHANNELS.connectionClose)
/** `wspipe:handshake:refused`. */
export const handshakeRefusedChannel = channel(DIAGNOSTICS_CHANNELS.handshakeRefused)
/** `wspipe:memory_budget:exhausted`. */
export const memoryBudgetExhaustedChannel = channel(DIAGNOSTICS_CHANNELS.memoryBudgetExhausted)
/** `wspipe:topic:slow_subscriber`. */
export const slowSubscriberChannel = channel(DIAGNOSTICS_CHANNELS.slowSubscriber)
/** `wspipe:heartbeat:drop`. */
export const heartbeatDropChannel = channel(DIAGNOSTICS_CHANNELS.heartbeatDrop)
/** `wspipe:zlib_budget:wait`. */
export const zlibBudgetWaitChannel = channel(DIAGNOSTICS_CHANNELS.zlibBudgetWait)

/** What the driver passes: a connection as it knows itself (cast once, here). */
type AnyConnection = object

/** Publish {@link ConnectionOpenMessage}; call only when `connectionOpenChannel.hasSubscribers`. */
export function publishOpen (connection: AnyConnection, role: ConnectionRole, protocol: string, remoteAddress: string | undefined): void {
  const message: ConnectionOpenMessage = { connection: connection as Connection, role, protocol, remoteAddress }
  connectionOpenChannel.publish(message)
}

/** Publish {@link ConnectionCloseMessage}; call only when `connectionCloseChannel.hasSubscribers`. */
export function publishClose (connection: AnyConnection, role: ConnectionRole, code: number, reason: string, wasClean: boolean): void {
  const message: ConnectionCloseMessage = { connection: connection as Connection, role, code, reason, wasClean }
  connectionCloseChannel.publish(message)
}

/** Publish {@link HandshakeRefusedMessage}; call only when `handshakeRefusedChannel.hasSubscribers`. */
export function publishRefused (status: number, reason: string, remoteAddress: string | undefined): void {
  const message: HandshakeRefusedMessage = { status, reason, remoteAddress }
  handshakeRefusedChannel.publish(message)
}

/** Publish {@link MemoryBudgetExhaustedMessage}; call only when `memoryBudgetExhaustedChannel.hasSubscribers`. */
export function publishBudgetExhausted (connection: AnyConnection | undefined, topic: string | undefined, heldBytes: number, usedBytes: number, limitBytes: number): void {
  const message: MemoryBudgetExhaustedMessage = topic === undefined
    ? { connection: connection as Connection | undefined, holder: 'connection', heldBytes, usedBytes, limitBytes }
    : { connection: connection as Connection | undefined, holder: 'subscription', topic, heldBytes, usedBytes, limitBytes }
  memoryBudgetExhaustedChannel.publish(message)
}

/** Publish {@link SlowSubscriberMessage}; call only when `slowSubscriberChannel.hasSubscribers`. */
export function publishSlowSubscriber (topic: string, connection: AnyConnection | undefined, policy: 'close' | 'drop', queuedBytes: number, dropped: number): void {
  const message: SlowSubscriberMessage = { topic, connection: connection as Connection | undefined, policy, queuedBytes, dropped }
  slowSubscriberChannel.publish(message)
}

/** Publish {@link HeartbeatDropMessage}; call only when `heartbeatDropChannel.hasSubscribers`. */
export function publishHeartbeatDrop (connection: AnyConnection, role: ConnectionRole, reason: 'pong-timeout' | 'stalled'): void {
  const message: HeartbeatDropMessage = { connection: connection as Connection, role, reason }
  heartbeatDropChannel.publish(message)
}


/** Publish {@link ZlibBudgetWaitMessage}; call only when `zlibBudgetWaitChannel.hasSubscribers`. */
export function publishZlibBudgetWait (connection: AnyConnection, role: ConnectionRole, budget: 'connection' | 'server', wait: number): void {
  const message: ZlibBudgetWaitMessage = { connection: connection as Connection, role, budget, wait }
  zlibBudgetWaitChannel.publish(message)
}
