/**
 * {@link RedisAdapter}: topics across processes and machines through Redis pub/sub, with the
 * npm `redis` client, an optional peer dependency loaded only when an adapter is made.
 *
 * @packageDocumentation
 */

import { Buffer } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import type { Logger } from '../driver/types.js'
import type { RemoteDelivery, TopicsAdapter } from './adapter.js'

/** Options of {@link RedisAdapter.connect}. */
export interface RedisAdapterOptions {
  /** The Redis server. Default `redis://127.0.0.1:6379`. */
  url?: string
  /** Put before each topic to name its Redis channel, so several applications can share a Redis. Default `wspipe:`. */
  prefix?: string
  /** Longest wait between two attempts to reconnect, in ms (the wait grows by 50 ms per attempt up to it). Default 1,000. */
  maxReconnectDelay?: number
  /** Where connection errors go (`warn`). Default: nowhere (they are counted in {@link RedisAdapter.errors}). */
  logger?: Logger
}

/** The part of a node-redis client used here (v5 and v6 alike). */
interface RedisClient {
  readonly isReady: boolean
  connect: () => Promise<unknown>
  on: (event: 'error', listener: (err: Error) => void) => unknown
  publish: (channel: string, message: Buffer) => Promise<unknown>
  subscribe: (channel: string, listener: (message: Buffer, channel: Buffer) => void, bufferMode: true) => Promise<void>
  unsubscribe: (channel: string) => Promise<void>
  close?: () => Promise<unknown>
  quit?: () => Promise<unknown>
  destroy?: () => void
}

/** The message's flags, then the publishing process's id, then the payload. */
const ID_BYTES = 16
const HEADER = 1 + ID_BYTES
const FLAG_TEXT = 1

/**
 * Topics across processes through Redis pub/sub: each topic is a Redis channel, subscribed to
 * while this process has subscribers of it. Two connections to Redis (a subscribing connection
 * can do nothing else). Delivery is at most once: while Redis is unreachable, publishes here
 * reach this process's subscribers only and are counted in {@link RedisAdapter.dropped}; once
 * Redis is back (reconnecting on its own) the topics are subscribed again and messages flow.
 *
 * @example
 * ```ts
 * import { RedisAdapter, WebSocketServer } from 'wspipe'
 *
 * const adapter = await RedisAdapter.connect({ url: 'redis://127.0.0.1:6379' })
 * const server = new WebSocketServer({ topics: { adapter } })
 * ```
 */
export class RedisAdapter implements TopicsAdapter {
  /** Messages sent to Redis. */
  published = 0
  /** Messages published while Redis was unreachable, or that it refused: they reached this process only. */
  dropped = 0
  /** Messages that came from other processes. */
  received = 0
  /** Connection errors seen (each reconnect attempt that fails is one). */
  errors = 0
  private readonly pub: RedisClient
  private readonly sub: RedisClient
  private readonly prefix: string
  private readonly id = randomBytes(ID_BYTES)
  private deliver: RemoteDelivery | undefined

  private constructor (pub: RedisClient, sub: RedisClient, prefix: string) {
    this.pub = pub
    this.sub = sub
    this.prefix = prefix
  }

  /**
   * Load the `redis` package (`npm install redis`), connect to Redis and resolve once both
   * connections are up. Rejects if `redis` is not installed. While Redis is unreachable it keeps
   * trying (as after a later loss): a caller that must start within a time bounds it itself.
   */
  static async connect (options: RedisAdapterOptions = {}): Promise<RedisAdapter> {
    let mod: { createClient: (options: unknown) => RedisClient }
    try {
      // A variable, so that neither TypeScript nor a bundler needs `redis` unless this runs.
      const name = 'redis'
      mod = await import(name) as typeof mod
    } catch (err) {
      throw new Error('RedisAdapter needs the `redis` package: npm install redis', { cause: err })
    }
    const maxDelay = options.maxReconnectDelay ?? 1000
    const clientOptions = (offlineQueue: boolean): unknown => ({
      url: options.url ?? 'redis://127.0.0.1:6379',
      socket: { reconnectStrategy: (retries: number) => Math.min(50 + retries * 50, maxDelay) },
      // At most once: a publish while Redis is away fails at once rather than waiting in an
      // unbounded queue. Subscriptions do queue (one per topic), so they are made on reconnect.
      disableOfflineQueue: !offlineQueue
    })
    const adapter = new RedisAdapter(mod.createClient(clientOptions(false)), mod.createClient(clientOptions(true)), options.prefix ?? 'wspipe:')
    const onError = (err: Error): void => {
      adapter.errors++
      options.logger?.warn({ err }, 'Redis connection error (reconnecting)')
    }
    adapter.pub.on('error', onError)
    adapter.sub.on('error', onError)
    await Promise.all([adapter.pub.connect(), adapter.sub.connect()])
    return adapter
  }

  /** Both connections to Redis are up. */
  get connected (): boolean {
    return this.pub.isReady && this.sub.isReady
  }

  start (deliver: RemoteDelivery): void {
    if (this.deliver !== undefined) throw new Error('a RedisAdapter serves one Topics')
    this.deliver = deliver
  }

  publish (topic: string, payload: Uint8Array, text: boolean): void {
    if (!this.pub.isReady) {
      this.dropped++
      return
    }
    const message = Buffer.allocUnsafe(HEADER + payload.length)
    message[0] = text ? FLAG_TEXT : 0
    this.id.copy(message, 1)
    message.set(payload, HEADER)
    this.published++
    this.pub.publish(this.prefix + topic, message).then(undefined, () => {
      this.published--
      this.dropped++
    })
  }

  subscribe (topic: string): void {
    this.sub.subscribe(this.prefix + topic, (message) => { this.onMessage(topic, message) }, true).then(undefined, (err: unknown) => {
      this.errors++
      void err
    })
  }

  unsubscribe (topic: string): void {
    this.sub.unsubscribe(this.prefix + topic).then(undefined, () => { this.errors++ })
  }

  private onMessage (topic: string, message: Buffer): void {
    // Our own publishes come back from Redis: this process's subscribers already have them.
    if (message.length < HEADER || this.id.equals(message.subarray(1, HEADER))) return
    this.received++
    this.deliver?.(topic, message.subarray(HEADER), (message[0] & FLAG_TEXT) !== 0)
  }

  async close (): Promise<void> {
    await Promise.all([this.pub, this.sub].map(async (client) => {
      try {
        if (client.close !== undefined) await client.close()
        else await client.quit?.()
      } catch {
        client.destroy?.()
      }
    }))
  }
}
