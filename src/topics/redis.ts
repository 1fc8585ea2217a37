/**
 * `wspipe/redis`: {@link RedisAdapter}, topics across processes and machines through Redis
 * pub/sub, with the npm `redis` client, an optional peer dependency loaded only when an adapter
 * is made.
 *
 * @example
 * ```ts
 * import { WebSocketServer } from 'wspipe'
 * import { RedisAdapter } from 'wspipe/redis'
 *
 * const adapter = await RedisAdapter.connect({ url: 'redis://127.0.0.1:6379' })
 * const server = new WebSocketServer({ topics: { adapter } })
 * ```
 *
 * @module wspipe/redis
 */

import { Buffer, isUtf8 } from 'node:buffer'
import { randomBytes } from 'node:crypto'
import { systemClock, type Clock, type ClockTimer } from '../driver/clock.js'
import type { Logger } from '../driver/types.js'
import { stderrLogger } from '../server-options.js'
import { DEFAULT_MAX_MESSAGE_SIZE } from '../protocol/session.js'
import type { RemoteDelivery, TopicsAdapter } from './adapter.js'

/** Options of {@link RedisAdapter.connect}. */
export interface RedisAdapterOptions {
  /** The Redis server. Default `redis://127.0.0.1:6379`. */
  url?: string
  /** Put before each topic to name its Redis channel, so several applications can share a Redis. Default `wspipe:`. */
  prefix?: string
  /** Longest wait between two attempts to reconnect, in ms (the wait grows by 50 ms per attempt up to it). Default 1,000. */
  maxReconnectDelay?: number
  /**
   * Where an outage goes (`error`, once, at its first failed attempt; `info` when Redis is back),
   * each failed attempt (`warn`) and rejected messages (`debug`). Default: errors to stderr, the
   * rest discarded (and counted), so an unreachable Redis is never silent.
   */
  logger?: Logger
  /**
   * Largest payload taken from Redis, in bytes: a larger one is dropped and counted in
   * {@link RedisAdapter.rejected} (members would refuse it: 1009). A local publish larger than
   * this reaches this process only ({@link RedisAdapter.dropped}). Set it to the servers'
   * `maxMessageSize` when you change that. Default 16 MiB (the connections' default).
   */
  maxMessageSize?: number
  /**
   * Bytes of publishes handed to Redis and not yet answered, each counted as its message plus
   * 2 KiB (what the client holds for it). Past it (a slow or stalled Redis), publishes reach
   * this process only and are counted in {@link RedisAdapter.dropped}. Default 32 MiB.
   */
  maxPendingBytes?: number
  /**
   * Give up connecting after this many ms: `connect` rejects and lets go of its connections.
   * Default: no limit (it keeps trying while Redis is unreachable, as after a later loss).
   */
  connectTimeout?: number
  /** Aborting it makes a `connect` still under way reject with its reason and let go of its connections. */
  signal?: AbortSignal
  /**
   * Where the `connectTimeout` timer runs, as the server's `clock` option. Default: Node's
   * timers. Tests pass `VirtualClock` from `wspipe/testing`.
   */
  clock?: Clock
}

/** Defaults of {@link RedisAdapterOptions}. */
export const DEFAULT_REDIS_ADAPTER_OPTIONS = {
  /** {@link RedisAdapterOptions.url}. */
  url: 'redis://127.0.0.1:6379',
  /** {@link RedisAdapterOptions.prefix}. */
  prefix: 'wspipe:',
  /** {@link RedisAdapterOptions.maxReconnectDelay}: 1 s. */
  maxReconnectDelay: 1000,
  /** {@link RedisAdapterOptions.maxMessageSize}: 16 MiB. */
  maxMessageSize: DEFAULT_MAX_MESSAGE_SIZE,
  /** {@link RedisAdapterOptions.maxPendingBytes}: 32 MiB. */
  maxPendingBytes: 32 * 1024 * 1024
} as const

/** The part of a node-redis client used here (v5 and v6 alike). */
interface RedisClient {
  readonly isReady: boolean
  connect: () => Promise<unknown>
  on: ((event: 'error', listener: (err: Error) => void) => unknown) & ((event: 'ready' | 'connect', listener: () => void) => unknown)
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
 * What a publish waiting for Redis's answer costs beyond its message: the client's command,
 * promises and queue entry (measured: 2.1 KB of heap each with redis 6.3).
 */
const PENDING_OVERHEAD = 2048

/** A topic this process wants from Redis, and the promise that says it is live. */
interface Wanted {
  readonly live: Promise<void>
  readonly resolve: () => void
}

/**
 * Topics across processes through Redis pub/sub: each topic is a Redis channel, subscribed to
 * while this process has subscribers of it. Two connections to Redis (a subscribing connection
 * can do nothing else). Delivery is at most once: while Redis is unreachable, publishes here
 * reach this process's subscribers only and are counted in {@link RedisAdapter.dropped}; once
 * Redis is back (reconnecting on its own) the topics are subscribed again and messages flow.
 * Nothing is queued while Redis is away, and what waits for its answers is bounded
 * (`maxPendingBytes`). What comes from Redis is checked like any input: malformed messages, text
 * that is not UTF-8 and payloads over `maxMessageSize` are dropped and counted in
 * {@link RedisAdapter.rejected}.
 *
 * @example
 * ```ts
 * import { WebSocketServer } from 'wspipe'
 * import { RedisAdapter } from 'wspipe/redis'
 *
 * const adapter = await RedisAdapter.connect({ url: 'redis://127.0.0.1:6379', connectTimeout: 10_000 })
 * const server = new WebSocketServer({ topics: { adapter } })
 * ```
 */
export class RedisAdapter implements TopicsAdapter {
  /** Messages sent to Redis. */
  published = 0
  /**
   * Messages that reached this process only: published while Redis was unreachable, refused by
   * it, over `maxMessageSize`, or past `maxPendingBytes`.
   */
  dropped = 0
  /** Messages that came from other processes and were delivered. */
  received = 0
  /** Messages from Redis dropped as input no process of ours sends: malformed, text that is not UTF-8, or over `maxMessageSize`. */
  rejected = 0
  /** Connection errors seen (each reconnect attempt that fails is one). */
  errors = 0
  private readonly pub: RedisClient
  private readonly sub: RedisClient
  private readonly prefix: string
  private readonly maxMessageSize: number
  private readonly maxPending: number
  private readonly logger: Logger
  /** A connection to Redis failed and both are not up again yet: its first failure was logged as an error. */
  private outage = false
  private readonly id = randomBytes(ID_BYTES)
  private deliver: RemoteDelivery | undefined
  private pending = 0
  /** The topics this process has subscribers of. */
  private readonly wanted = new Map<string, Wanted>()
  /** Topics SUBSCRIBEd on the subscribing connection whose UNSUBSCRIBE Redis has not confirmed. */
  private readonly issued = new Set<string>()
  /** One listener for every channel: the client keeps a set of listeners per channel, so this one is never there twice. */
  private readonly listener = (message: Buffer, channel: Buffer): void => { this.onMessage(message, channel) }

  private constructor (pub: RedisClient, sub: RedisClient, options: RedisAdapterOptions) {
    this.pub = pub
    this.sub = sub
    this.prefix = options.prefix ?? DEFAULT_REDIS_ADAPTER_OPTIONS.prefix
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_REDIS_ADAPTER_OPTIONS.maxMessageSize
    this.maxPending = options.maxPendingBytes ?? DEFAULT_REDIS_ADAPTER_OPTIONS.maxPendingBytes
    this.logger = options.logger ?? stderrLogger
  }

  /**
   * Load the `redis` package (`npm install redis`), connect to Redis and resolve once both
   * connections are up. Rejects if `redis` is not installed. While Redis is unreachable it keeps
   * trying (as after a later loss) until `connectTimeout` passes or `signal` aborts, if given:
   * then it rejects (with the signal's reason, or an error saying how long it waited) and lets
   * go of both connections.
   */
  static async connect (options: RedisAdapterOptions = {}): Promise<RedisAdapter> {
    for (const name of ['maxMessageSize', 'maxPendingBytes', 'connectTimeout', 'maxReconnectDelay'] as const) {
      const value = options[name]
      if (value !== undefined && !(value >= 0)) throw new RangeError(`${name} must be a number ≥ 0`)
    }
    const { signal, connectTimeout } = options
    signal?.throwIfAborted()
    let mod: { createClient: (options: unknown) => RedisClient }
    try {
      // A variable, so that neither TypeScript nor a bundler needs `redis` unless this runs.
      const name = 'redis'
      mod = await import(name) as typeof mod
    } catch (err) {
      throw new Error('RedisAdapter needs the `redis` package: npm install redis', { cause: err })
    }
    signal?.throwIfAborted()
    const url = options.url ?? DEFAULT_REDIS_ADAPTER_OPTIONS.url
    const maxDelay = options.maxReconnectDelay ?? DEFAULT_REDIS_ADAPTER_OPTIONS.maxReconnectDelay
    const clientOptions = {
      url,
      socket: { reconnectStrategy: (retries: number) => Math.min(50 + retries * 50, maxDelay) },
      // At most once: nothing waits in the client's unbounded offline queue while Redis is
      // away. A publish fails at once; subscriptions are made (again) once it is back.
      disableOfflineQueue: true
    }
    const adapter = new RedisAdapter(mod.createClient(clientOptions), mod.createClient(clientOptions), options)
    let lastError: Error | undefined
    // While connect() is under way without connectTimeout, the outage's log line says that it waits.
    let hint = connectTimeout === undefined ? '; RedisAdapter.connect() waits until it is up (pass connectTimeout to give up instead)' : ''
    const onError = (err: Error): void => { lastError = err; adapter.failed(err, hint) }
    adapter.pub.on('error', onError)
    adapter.sub.on('error', onError)
    adapter.pub.on('ready', () => { adapter.backUp() })
    adapter.sub.on('ready', () => { adapter.resubscribe(); adapter.backUp() })
    const connecting = Promise.all([adapter.pub.connect(), adapter.sub.connect()])
    if (signal === undefined && connectTimeout === undefined) {
      await connecting
      hint = ''
      return adapter
    }
    const clock = options.clock ?? systemClock
    await new Promise<void>((resolve, reject) => {
      let timer: ClockTimer | undefined
      const settle = (err?: unknown): void => {
        if (timer !== undefined) clock.clearTimeout(timer)
        timer = undefined
        hint = ''
        signal?.removeEventListener('abort', onAbort)
        if (err === undefined) {
          resolve()
        } else {
          // Both clients stop reconnecting: nothing of this attempt is left running.
          adapter.destroy()
          reject(err)
        }
      }
      const onAbort = (): void => { settle(signal!.reason) }
      if (connectTimeout !== undefined) {
        timer = clock.setTimeout(() => { settle(new Error(`Redis at ${withoutPassword(url)} did not answer within ${connectTimeout} ms`, { cause: lastError })) }, connectTimeout, undefined)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      connecting.then(() => { settle() }, settle)
    })
    return adapter
  }

  /** A connection to Redis failed: the first failure of an outage is an error (never silent), the others warnings. */
  private failed (err: Error, hint: string): void {
    this.errors++
    if (this.outage) {
      this.logger.warn({ err }, 'Redis connection error (reconnecting)')
      return
    }
    this.outage = true
    // Not the URL: it may hold a password.
    this.logger.error({ err }, `Redis is unreachable (retrying): publishes reach this process only until it is back${hint}`)
  }

  /** A connection to Redis is up: the outage is over once both are. */
  private backUp (): void {
    if (!this.outage || !this.connected) return
    this.outage = false
    this.logger.info({}, 'Redis is reachable again')
  }

  /** Both connections to Redis are up. */
  get connected (): boolean {
    return this.pub.isReady && this.sub.isReady
  }

  /** Bytes of publishes waiting for Redis's answer, as `maxPendingBytes` counts them. */
  get pendingBytes (): number {
    return this.pending
  }

  start (deliver: RemoteDelivery): void {
    if (this.deliver !== undefined) throw new Error('a RedisAdapter serves one Topics')
    this.deliver = deliver
  }

  publish (topic: string, payload: Uint8Array, text: boolean): void {
    const cost = HEADER + payload.length + PENDING_OVERHEAD
    if (!this.pub.isReady || payload.length > this.maxMessageSize || this.pending + cost > this.maxPending) {
      this.dropped++
      return
    }
    const message = Buffer.allocUnsafe(HEADER + payload.length)
    message[0] = text ? FLAG_TEXT : 0
    this.id.copy(message, 1)
    message.set(payload, HEADER)
    this.published++
    this.pending += cost
    this.pub.publish(this.prefix + topic, message).then(() => {
      this.pending -= cost
    }, () => {
      this.pending -= cost
      this.published--
      this.dropped++
    })
  }

  /** Resolves once Redis confirmed the SUBSCRIBE (or the topic was unsubscribed first). */
  subscribe (topic: string): Promise<void> {
    const known = this.wanted.get(topic)
    if (known !== undefined) return known.live
    let resolve!: () => void
    const live = new Promise<void>((settle) => { resolve = settle })
    const wanted = { live, resolve }
    this.wanted.set(topic, wanted)
    // While Redis is away nothing is sent (nor queued): the 'ready' that follows subscribes.
    if (this.sub.isReady) this.sendSubscribe(topic, wanted)
    return live
  }

  unsubscribe (topic: string): void {
    const wanted = this.wanted.get(topic)
    if (wanted === undefined) return
    this.wanted.delete(topic)
    wanted.resolve()
    if (this.sub.isReady && this.issued.has(topic)) this.sendUnsubscribe(topic)
  }

  private sendSubscribe (topic: string, wanted: Wanted): void {
    this.issued.add(topic)
    // A channel the client already has (it subscribes again by itself after a reconnect)
    // resolves at once, with this same listener.
    this.sub.subscribe(this.prefix + topic, this.listener, true).then(() => {
      if (this.wanted.get(topic) === wanted) wanted.resolve()
    }, () => {
      // The link went down (the next 'ready' subscribes again) or Redis refused.
      this.errors++
    })
  }

  private sendUnsubscribe (topic: string): void {
    this.sub.unsubscribe(this.prefix + topic).then(() => {
      // Unless it was subscribed again meanwhile (that SUBSCRIBE went out after this UNSUBSCRIBE).
      if (!this.wanted.has(topic)) this.issued.delete(topic)
    }, () => {
      // The link went down: the client may subscribe to it again by itself; the next 'ready' undoes that.
      this.errors++
    })
  }

  /** The subscribing connection is up (again): make Redis's subscriptions the ones this process wants. */
  private resubscribe (): void {
    for (const topic of this.issued) if (!this.wanted.has(topic)) this.sendUnsubscribe(topic)
    for (const [topic, wanted] of this.wanted) this.sendSubscribe(topic, wanted)
  }

  private onMessage (message: Buffer, channel: Buffer): void {
    // What comes from Redis is input: anyone who can publish on the channel can send any bytes.
    if (message.length < HEADER || message[0] > FLAG_TEXT) {
      this.reject(channel, 'malformed')
      return
    }
    // Our own publishes come back from Redis: this process's subscribers already have them.
    if (this.id.equals(message.subarray(1, HEADER))) return
    const payload = message.subarray(HEADER)
    const text = message[0] === FLAG_TEXT
    if (payload.length > this.maxMessageSize) {
      this.reject(channel, 'over maxMessageSize')
      return
    }
    // RFC 6455 §8.1: a text message is UTF-8; a member's client would close with 1007.
    if (text && !isUtf8(payload)) {
      this.reject(channel, 'text that is not UTF-8')
      return
    }
    this.received++
    this.deliver?.(channel.toString().slice(this.prefix.length), payload, text)
  }

  private reject (channel: Buffer, why: string): void {
    this.rejected++
    this.logger.debug({ channel: channel.toString() }, `a message from Redis was dropped: ${why}`)
  }

  /** Stop both clients at once (no reconnecting, nothing waited for). */
  private destroy (): void {
    for (const client of [this.pub, this.sub]) {
      // node-redis keeps a socket only once it has connected: one still connecting when destroy()
      // runs is missed and would stay open (seen under load in CI), so it goes when it says so.
      client.on('connect', () => {
        try {
          client.destroy?.()
        } catch {}
      })
      try {
        client.destroy?.()
      } catch {}
    }
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

/** `url` as an error message may show it: a password in it masked (messages end up in logs). */
function withoutPassword (url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password === '') return url
    parsed.password = '***'
    return parsed.href
  } catch {
    return 'the URL given'
  }
}
