/**
 * `wspipe/testing`: test a handler without sockets.
 *
 * - {@link connectInMemory} runs a handler against an in-memory client through the real
 *   framing code, so a test sees exactly what a peer would: message types, close codes, a
 *   1011 when the handler throws.
 * - {@link duplexPair} is a plain pair of in-memory duplexes, for tests that only care about a
 *   handler's data flow.
 * - {@link take}, {@link collect} and {@link text} read messages in tests.
 * - {@link VirtualClock} runs a connection's timers (close timeout, heartbeat, ...) in virtual
 *   time: `connectInMemory(handler, { clock })`, then `await clock.advance(ms)`.
 *
 * @example
 * ```ts
 * import { connectInMemory, take, text } from 'wspipe/testing'
 * const client = await connectInMemory(({ source, sink }) => sink(source), { protocol: 'echo' })
 * await client.sink(['hi'])
 * text(await take(client.source, 1)) // ['hi']
 * client.close()
 * ```
 *
 * @module wspipe/testing
 */

import type { Duplex, Source } from 'it-stream-types'
import { WebSocketConnection } from './driver/connection.js'
import type { Connection, ConnectionLimits, Logger, StreamConnection, StreamModeOptions } from './driver/types.js'
import { InvalidStateError } from './errors.js'
import type { Clock } from './driver/clock.js'
import { runHandler, type Handler, type StreamHandler } from './handler.js'
import { MemoryTransport } from './memory-transport.js'

/** Options of {@link connectInMemory}. */
export interface InMemoryOptions extends ConnectionLimits {
  /** The subprotocol the handler sees. Default `''`. */
  protocol?: string
  /** The request URL the handler sees. Default `/`. */
  url?: string
  /** Request headers the handler sees. */
  headers?: Record<string, string>
  /** Also receives what the server side logs. The handler's errors are kept in {@link InMemoryClient.errors} either way. */
  logger?: Logger
  /** `'stream'` runs the handler in stream mode (see `register`); the client end takes whole messages. Default `'whole'`. */
  messages?: 'whole' | 'stream'
  /** Where both ends' timers run (close timeout, heartbeat, ...). Default: Node's timers. */
  clock?: Clock
}

/**
 * The client end of {@link connectInMemory}: a normal {@link Connection}, plus what the server
 * side logged. `Server` is the handler's side: a `StreamConnection` for a stream-mode handler.
 */
export interface InMemoryClient<Server = Connection> extends Connection {
  /** The server side's connection, as the handler sees it. */
  readonly server: Server
  /** Errors the handler threw, as logged by the server side. */
  readonly errors: unknown[]
}

/**
 * Run `handler` against an in-memory client, through the real framing, masking and closing
 * code (no HTTP handshake). Returns the client's end.
 */
export async function connectInMemory (handler: StreamHandler, options: InMemoryOptions & StreamModeOptions): Promise<InMemoryClient<StreamConnection>>
export async function connectInMemory (handler: Handler, options?: InMemoryOptions & { messages?: 'whole' }): Promise<InMemoryClient>
export async function connectInMemory (handler: Handler | StreamHandler, options: InMemoryOptions = {}): Promise<InMemoryClient<Connection | StreamConnection>> {
  const [serverSocket, clientSocket] = MemoryTransport.pair()
  const errors: unknown[] = []
  const forward = options.logger
  const logger: Logger = {
    error: (obj, msg) => {
      errors.push((obj as { err?: unknown } | undefined)?.err ?? obj)
      forward?.error(obj, msg)
    },
    warn: (obj, msg) => forward?.warn(obj, msg),
    info: (obj, msg) => forward?.info(obj, msg),
    debug: (obj, msg) => forward?.debug(obj, msg)
  }
  // In memory the heartbeat is off unless asked for: a test should not race a ping.
  const limits: ConnectionLimits = { ...options, heartbeat: options.heartbeat ?? false }
  const common = { protocol: options.protocol ?? '', url: options.url ?? '/', headers: options.headers ?? {}, limits, remoteAddress: '127.0.0.1', remotePort: 0, clock: options.clock }
  const stream = options.messages === 'stream' ? {} : undefined
  const server = new WebSocketConnection(serverSocket, { ...common, role: 'server', logger, stream })
  const client = new WebSocketConnection(clientSocket, { ...common, role: 'client' }) as unknown as InMemoryClient<Connection | StreamConnection>
  Object.defineProperty(client, 'server', { value: server })
  Object.defineProperty(client, 'errors', { value: errors })
  runHandler(handler, server, logger)
  return client
}

/** One end of {@link duplexPair}: reads `In`, writes `Out`. */
export type PairEnd<In, Out = In> = Duplex<AsyncGenerator<In>, Source<Out>, Promise<void>>

/**
 * A pair of in-memory duplexes: what one end's `sink` consumes, the other's `source` yields,
 * one item at a time (a sink waits until its item is taken). For testing a handler's data flow
 * with no framing at all.
 *
 * - A sink that throws makes the other end's `source` throw the same error, after the items
 *   before it.
 * - When the reader stops (`break` out of `for await`, or `return()`), the writing `sink` stops
 *   pulling, calls `return()` on its iterable and resolves.
 * - Each end's `sink` may be called once.
 *
 * `AB` is what flows from the first end to the second, `BA` the other way (default: the same),
 * e.g. `duplexPair<Uint8Array, OutgoingMessage>()` for a client end and a handler end.
 */
export function duplexPair<AB, BA = AB> (): [PairEnd<BA, AB>, PairEnd<AB, BA>] {
  const ab = new Channel<AB>()
  const ba = new Channel<BA>()
  return [
    { source: ba.source(), sink: async (s) => { await ab.pump(s) } },
    { source: ab.source(), sink: async (s) => { await ba.pump(s) } }
  ]
}

/** A one-slot rendezvous channel: `pump` hands items to `source` one by one. */
class Channel<T> {
  private item: { value: T } | undefined
  private ended = false
  private pumping = false
  /** The reader has stopped: the writer stops too. */
  private readerGone = false
  private error: { value: unknown } | undefined
  private wakeReader: (() => void) | undefined
  private wakeWriter: (() => void) | undefined

  async pump (source: Source<T>): Promise<void> {
    if (this.pumping) throw new InvalidStateError('sink can be called only once per end')
    this.pumping = true
    try {
      for await (const value of source) {
        while (this.item !== undefined && !this.readerGone) await new Promise<void>((resolve) => { this.wakeWriter = resolve })
        if (this.readerGone) break
        this.item = { value }
        this.wake('reader')
      }
    } catch (err) {
      this.error = { value: err }
      throw err
    } finally {
      this.ended = true
      this.wake('reader')
    }
  }

  async * source (): AsyncGenerator<T> {
    try {
      for (;;) {
        if (this.item !== undefined) {
          const { value } = this.item
          this.item = undefined
          this.wake('writer')
          yield value
          continue
        }
        if (this.ended) {
          if (this.error !== undefined) throw this.error.value
          return
        }
        await new Promise<void>((resolve) => { this.wakeReader = resolve })
      }
    } finally {
      // Normal end, throw, or the reader's return(): nobody reads any more.
      this.readerGone = true
      this.item = undefined
      this.wake('writer')
    }
  }

  private wake (who: 'reader' | 'writer'): void {
    const w = who === 'reader' ? this.wakeReader : this.wakeWriter
    if (who === 'reader') this.wakeReader = undefined
    else this.wakeWriter = undefined
    w?.()
  }
}

/**
 * Read up to `count` messages, fewer if the source ends first. Unlike `break` in a `for await`
 * loop, this leaves the source open, so it can be read again (returning a connection's
 * `source` means "done reading": the connection closes once its sink is done too).
 */
export async function take<T> (source: AsyncIterable<T>, count: number): Promise<T[]> {
  const out: T[] = []
  if (count <= 0) return out
  const iterator = source[Symbol.asyncIterator]()
  while (out.length < count) {
    const r = await iterator.next()
    if (r.done === true) break
    out.push(r.value)
  }
  return out
}

/** Read every message until the source ends. */
export async function collect<T> (source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const item of source) out.push(item)
  return out
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/** A message's bytes as a string (UTF-8); each of `messages` when given an array. */
export function text (message: Uint8Array): string
export function text (messages: readonly Uint8Array[]): string[]
export function text (m: Uint8Array | readonly Uint8Array[]): string | string[] {
  return m instanceof Uint8Array ? utf8.decode(m) : m.map((x) => utf8.decode(x))
}

export { VirtualClock } from './virtual-clock.js'
export type { Clock, ClockTimer } from './driver/clock.js'
export type { Handler } from './handler.js'
export type { Connection } from './driver/types.js'
