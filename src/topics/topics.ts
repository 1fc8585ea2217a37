/**
 * {@link Topics}: publish/subscribe in one process, in the duplex idiom. A subscription is an
 * async iterable of messages that a connection's `sink` (or `it-merge`) takes; a publish
 * encodes its frame once and hands the same bytes to every subscriber. A slow subscriber is
 * bounded on its own and never slows the others; with an adapter the same topics span processes.
 *
 * @packageDocumentation
 */

import { CloseCode } from '../protocol/close-codes.js'
import { prepareMessage, preparedShare } from '../driver/prepared.js'
import { SHARED_MIN, type SharedBytes } from '../driver/budget.js'
import { asText, isText } from '../text-mark.js'
import type { Connection } from '../driver/types.js'

/** What a topic carries: whole messages (a string as text, bytes as binary unless marked with `asText`). */
export type TopicMessage = Uint8Array | string
import type { TopicsAdapter } from './adapter.js'
import { SlowSubscriberError } from '../errors.js'
import { Fifo } from '../fifo.js'
import { memoryBudgetExhaustedChannel, publishBudgetExhausted, publishSlowSubscriber, slowSubscriberChannel } from '../diagnostics.js'

/** What {@link Topics} does with a subscriber whose queue is full. */
export type SlowSubscriberPolicy = 'close' | 'drop'

/** Options of {@link Topics}. */
export interface TopicsOptions {
  /**
   * Bytes a subscription may hold for a subscriber that has not taken them yet, each message
   * counted as its payload plus 64 bytes (a queue slot and its bookkeeping). This comes on top
   * of the connection's own output (`sendHighWaterMark`), where the sink stops pulling. Default 1 MiB.
   */
  maxQueuedBytes?: number
  /**
   * Past {@link TopicsOptions.maxQueuedBytes}: `'close'` (default) closes the subscriber's
   * connection with 1008 (policy violation), reason "subscriber too slow", and ends its
   * subscription: it got every message up to then, in order, and knows it missed the rest.
   * `'drop'` skips the message for that subscriber only (counted in {@link Subscription.dropped}).
   */
  slowSubscriber?: SlowSubscriberPolicy
  /** Carries publishes to and from other processes (e.g. {@link "wspipe/redis"!RedisAdapter}). Default: this process only. */
  adapter?: TopicsAdapter
}

/** Defaults of {@link TopicsOptions}. */
export const DEFAULT_TOPICS_OPTIONS = {
  /** {@link TopicsOptions.maxQueuedBytes}: 1 MiB. */
  maxQueuedBytes: 1024 * 1024,
  /** {@link TopicsOptions.slowSubscriber}: close with 1008. */
  slowSubscriber: 'close'
} as const

/** An iterable being published lets the event loop turn after this many messages. */
const YIELD_EVERY = 64

/** What a queued message is counted as beyond its payload. */
const ENTRY_OVERHEAD = 64

/** The part of a memory budget topics use (the server's `memoryBudget`). */
interface Budget {
  charge: (delta: number) => boolean
  hold: (shared: SharedBytes) => boolean
  release: (shared: SharedBytes) => void
  /** Bytes charged now, and the bound: for the diagnostics channel. */
  readonly used: number
  readonly limit: number
}

/**
 * Topics in one process. `server.topics` is one bound to the server's memory budget; a
 * `new Topics()` of your own works with any connection (its queues then count against no budget).
 *
 * @example
 * ```ts
 * import { WebSocketServer } from 'wspipe'
 *
 * const server = new WebSocketServer()
 * server.register('chat', async (conn) => {
 *   const sending = conn.sink(server.topics.subscribe('lobby', conn))
 *   await server.topics.publish('lobby', conn.source)
 *   await sending
 * })
 * ```
 */
export class Topics {
  private readonly subscribers = new Map<string, Set<Subscription>>()
  /** Topics the adapter has not confirmed yet, with the promise that will (a stale one is ignored). */
  private readonly pendingLive = new Map<string, Promise<void>>()
  /** @internal The per-subscriber bound, read by each subscription on every delivery. */
  readonly maxQueued: number
  /** @internal What happens past it. */
  readonly policy: SlowSubscriberPolicy
  private readonly adapter: TopicsAdapter | undefined
  /** @internal The server's budget, when these are `server.topics`. */
  budget: Budget | undefined

  /** Topics of your own, bound to no budget (`server.topics` is the server's, bound to its `memoryBudget`). */
  constructor (options: TopicsOptions = {}) {
    this.maxQueued = options.maxQueuedBytes ?? DEFAULT_TOPICS_OPTIONS.maxQueuedBytes
    if (!(this.maxQueued > 0)) throw new RangeError('maxQueuedBytes must be a positive number of bytes')
    this.policy = options.slowSubscriber ?? DEFAULT_TOPICS_OPTIONS.slowSubscriber
    if (this.policy !== 'close' && this.policy !== 'drop') throw new RangeError("slowSubscriber must be 'close' or 'drop'")
    this.adapter = options.adapter
    this.adapter?.start((topic, payload, text) => { this.deliver(topic, prepareMessage(text ? asText(payload) : payload)) })
  }

  /**
   * Subscribe `conn` to `topic`: the returned subscription yields every message published to the
   * topic from now on, in order, for `conn.sink` (or `it-merge`) to take. It ends by itself when
   * `conn` starts closing; `unsubscribe()` (or the sink stopping) ends it sooner. Without `conn`
   * the subscription is a plain async iterable; past its bound under the `'close'` policy it throws.
   * With an adapter, `subscription.ready` says when other processes' publishes reach it too.
   */
  subscribe (topic: string, conn?: Connection): Subscription {
    if (typeof topic !== 'string') throw new TypeError('a topic is a string')
    const sub = new Subscription(this, topic, conn)
    if (sub.ended) return sub
    let set = this.subscribers.get(topic)
    if (set === undefined) {
      set = new Set()
      this.subscribers.set(topic, set)
      const live = this.adapter?.subscribe(topic)
      if (live !== undefined) this.waitLive(topic, live)
    }
    set.add(sub)
    if (!this.pendingLive.has(topic)) sub.live()
    return sub
  }

  private waitLive (topic: string, live: Promise<void>): void {
    this.pendingLive.set(topic, live)
    const onLive = (): void => {
      // The topic was given up (and maybe subscribed again) meanwhile: this promise is not its own.
      if (this.pendingLive.get(topic) !== live) return
      this.pendingLive.delete(topic)
      for (const sub of this.subscribers.get(topic) ?? []) sub.live()
    }
    live.then(onLive, onLive)
  }

  /** How many subscriptions `topic` has in this process. */
  count (topic: string): number {
    return this.subscribers.get(topic)?.size ?? 0
  }

  /** The topics that have subscribers in this process. */
  topics (): string[] {
    return [...this.subscribers.keys()]
  }

  /**
   * Publish to `topic`: one message (a string goes as text, bytes as binary unless marked as
   * text, as with `sink`), or every message of an iterable (e.g. a connection's `source`), as it
   * comes. Every subscriber in this process gets it, and, through the adapter, every subscriber
   * in the others. A single message returns how many subscribers here took it; an iterable
   * returns a promise of the messages published, settling when it ends (rejecting if it throws).
   */
  publish (topic: string, message: TopicMessage): number
  publish (topic: string, messages: Iterable<TopicMessage> | AsyncIterable<TopicMessage>): Promise<number>
  publish (topic: string, what: TopicMessage | Iterable<TopicMessage> | AsyncIterable<TopicMessage>): number | Promise<number> {
    if (typeof what === 'string' || what instanceof Uint8Array) return this.publishOne(topic, what)
    return this.publishAll(topic, what)
  }

  private async publishAll (topic: string, messages: Iterable<TopicMessage> | AsyncIterable<TopicMessage>): Promise<number> {
    let n = 0
    for await (const message of messages) {
      this.publishOne(topic, message)
      // A source with a full queue (a publisher that writes fast) would otherwise be drained in
      // one run of microtasks: let timers and I/O (the subscribers' writes) in now and then.
      if (++n % YIELD_EVERY === 0) await new Promise(setImmediate)
    }
    return n
  }

  private publishOne (topic: string, message: TopicMessage): number {
    if (typeof topic !== 'string') throw new TypeError('a topic is a string')
    // Encoded once: every subscriber's connection writes these same frame bytes.
    const prepared = prepareMessage(message)
    this.adapter?.publish(topic, prepared, isText(prepared))
    return this.deliver(topic, prepared)
  }

  /** Hand a prepared message to this process's subscribers of `topic`. */
  private deliver (topic: string, message: Uint8Array): number {
    const set = this.subscribers.get(topic)
    if (set === undefined) return 0
    let n = 0
    for (const sub of set) if (sub.offer(message)) n++
    return n
  }

  /** @internal A subscription ended. */
  remove (sub: Subscription): void {
    const set = this.subscribers.get(sub.topic)
    if (set === undefined || !set.delete(sub) || set.size > 0) return
    this.subscribers.delete(sub.topic)
    this.pendingLive.delete(sub.topic)
    this.adapter?.unsubscribe(sub.topic)
  }

}

/** The frame a queued message shares with every subscriber, when it is worth counting once (see `SHARED_MIN`). */
function sharedOf (message: Uint8Array): SharedBytes | undefined {
  const shared = preparedShare(message)
  return shared !== undefined && shared.size >= SHARED_MIN ? shared : undefined
}

const DONE: IteratorResult<Uint8Array> = { done: true, value: undefined }

/**
 * One subscriber of one topic: an async iterable (and its own iterator) of the messages
 * published to the topic since it subscribed. Each message is a `Uint8Array`, marked as text
 * when it was published as text (see `isText`), shared by every subscriber: do not change it.
 */
export class Subscription implements AsyncIterableIterator<Uint8Array> {
  /** The topic. */
  readonly topic: string
  /** Messages skipped under the `'drop'` policy. */
  dropped = 0
  private readonly owner: Topics
  private readonly conn: Connection | undefined
  private readonly queue = new Fifo<Uint8Array>()
  /** Bytes queued, as `maxQueuedBytes` counts them. */
  private bytes = 0
  /** The budget its queue counts against (the server's), fixed when it subscribed. */
  private readonly budget: Budget | undefined
  private waiting: ((result: IteratorResult<Uint8Array>) => void) | undefined
  private failWaiting: ((err: unknown) => void) | undefined
  private done = false
  private error: Error | undefined
  private readonly onAbort: (() => void) | undefined
  /** Whether it went live (true) or ended first (false); undefined while neither. */
  private liveState: boolean | undefined
  private readyPromise: Promise<boolean> | undefined
  private settleReady: ((live: boolean) => void) | undefined

  /** @internal Made by {@link Topics.subscribe}. */
  constructor (owner: Topics, topic: string, conn: Connection | undefined) {
    this.owner = owner
    this.topic = topic
    this.conn = conn
    this.budget = owner.budget
    if (conn !== undefined) {
      const signal = conn.signal
      if (signal.aborted) {
        this.done = true
        this.liveState = false
      } else {
        this.onAbort = () => { this.unsubscribe() }
        signal.addEventListener('abort', this.onAbort, { once: true })
      }
    }
  }

  /** The subscription has ended: it takes no more messages. */
  get ended (): boolean {
    return this.done
  }

  /** Bytes queued and not yet taken, as `maxQueuedBytes` counts them. */
  get queuedBytes (): number {
    return this.bytes
  }

  /**
   * Resolves true once the subscription receives what every process publishes: at once without
   * an adapter, else when the adapter confirmed the topic (for Redis: its SUBSCRIBE was
   * acknowledged). A message another process publishes after that reaches it (while the link
   * holds). Resolves false if the subscription ends first. Never rejects.
   */
  get ready (): Promise<boolean> {
    if (this.liveState !== undefined) return Promise.resolve(this.liveState)
    this.readyPromise ??= new Promise((resolve) => { this.settleReady = resolve })
    return this.readyPromise
  }

  /** @internal The topic is live across processes (or the subscription ended: false). */
  live (live = true): void {
    if (this.liveState !== undefined) return
    this.liveState = live
    this.settleReady?.(live)
    this.settleReady = undefined
  }

  /** @internal A message for this subscriber; false if it was not taken. */
  offer (message: Uint8Array): boolean {
    if (this.done) return false
    const waiting = this.waiting
    if (waiting !== undefined) {
      // The consumer waits: hand it over directly, nothing is queued.
      this.waiting = undefined
      this.failWaiting = undefined
      waiting({ done: false, value: message })
      return true
    }
    const cost = message.length + ENTRY_OVERHEAD
    // Read from the fields: an object made per delivery would cost one per subscriber per publish.
    const { maxQueued, policy } = this.owner
    if (this.bytes + cost > maxQueued) {
      if (policy === 'drop') {
        this.dropped++
        if (slowSubscriberChannel.hasSubscribers) publishSlowSubscriber(this.topic, this.conn, 'drop', this.bytes, this.dropped)
        return false
      }
      if (slowSubscriberChannel.hasSubscribers) publishSlowSubscriber(this.topic, this.conn, 'close', this.bytes, this.dropped)
      this.tooSlow()
      return false
    }
    this.queue.push(message)
    this.bytes += cost
    // The server's budget is spent: this subscriber fails as a connection would (1013).
    if (this.budget !== undefined && !this.charge(message)) {
      if (memoryBudgetExhaustedChannel.hasSubscribers) publishBudgetExhausted(this.conn, this.topic, this.bytes, this.budget.used, this.budget.limit)
      this.overBudget()
    }
    return true
  }

  /**
   * The next message. When one is queued the result itself is returned rather than a promise
   * (`await` and `for await` take both): a connection's sink then drains a burst without a
   * promise per message.
   */
  next (): Promise<IteratorResult<Uint8Array>> {
    if (this.queue.size > 0) {
      const value = this.queue.shift()!
      this.bytes -= value.length + ENTRY_OVERHEAD
      if (this.budget !== undefined) this.release(value)
      return { done: false, value } as unknown as Promise<IteratorResult<Uint8Array>>
    }
    if (this.error !== undefined) {
      const err = this.error
      this.error = undefined
      return Promise.reject(err)
    }
    if (this.done) return Promise.resolve(DONE)
    return new Promise((resolve, reject) => {
      this.waiting = resolve
      this.failWaiting = reject
    })
  }

  /** Unsubscribe (a consumer that stops early, e.g. the sink of a closing connection, calls this). */
  return (): Promise<IteratorResult<Uint8Array>> {
    this.unsubscribe()
    return Promise.resolve(DONE)
  }

  /** The subscription is its own iterator: it can be iterated once. */
  [Symbol.asyncIterator] (): this {
    return this
  }

  /** Stop receiving: queued messages are let go (their budget with them) and the iteration ends. */
  unsubscribe (): void {
    // Ended as too slow, a bare subscription keeps its queue (and the error) for next() to
    // drain; a consumer that stops instead lets them go here, or the budget never gets them back.
    if (this.done) this.error = undefined
    else this.end()
    if (this.budget !== undefined) {
      for (let m = this.queue.shift(); m !== undefined; m = this.queue.shift()) this.release(m)
    } else {
      this.queue.clear()
    }
    this.bytes = 0
  }

  private end (error?: Error): void {
    this.done = true
    this.live(false)
    this.owner.remove(this)
    if (this.onAbort !== undefined) this.conn!.signal.removeEventListener('abort', this.onAbort)
    const waiting = this.waiting
    const fail = this.failWaiting
    this.waiting = undefined
    this.failWaiting = undefined
    if (error !== undefined) {
      if (fail !== undefined) fail(error)
      else this.error = error
    } else {
      waiting?.(DONE)
    }
  }

  /**
   * Count a queued message against the budget: its queue slot here, and its frame, which every
   * subscriber's queue and connection shares, once for all of them. False when the budget is spent.
   */
  private charge (message: Uint8Array): boolean {
    const budget = this.budget!
    const shared = sharedOf(message)
    // Both, always: release() gives back both.
    const slot = budget.charge(shared === undefined ? message.length + ENTRY_OVERHEAD : ENTRY_OVERHEAD)
    return (shared === undefined || budget.hold(shared)) && slot
  }

  /** A queued message was taken or dropped: the budget gets back what {@link Subscription.charge} counted. */
  private release (message: Uint8Array): void {
    const budget = this.budget!
    const shared = sharedOf(message)
    if (shared === undefined) {
      budget.charge(-(message.length + ENTRY_OVERHEAD))
    } else {
      budget.charge(-ENTRY_OVERHEAD)
      budget.release(shared)
    }
  }

  /** The `'close'` policy: the connection closes with 1008; a bare subscription throws after what it holds. */
  private tooSlow (): void {
    if (this.conn !== undefined) {
      this.unsubscribe()
      this.conn.close(CloseCode.PolicyViolation, 'subscriber too slow')
    } else {
      this.end(new SlowSubscriberError())
    }
  }

  private overBudget (): void {
    this.unsubscribe()
    if (this.conn !== undefined) this.conn.close(CloseCode.TryAgainLater, 'memory budget exhausted')
    else this.end(new SlowSubscriberError())
  }
}
