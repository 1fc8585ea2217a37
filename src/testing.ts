/**
 * `wspipe/testing`: test a handler without sockets.
 *
 * - {@link connectInMemory} runs a handler against an in-memory client through the real
 *   framing code, so a test sees exactly what a peer would: message types, close codes, a
 *   1011 when the handler throws.
 * - {@link duplexPair} is a plain pair of in-memory duplexes, for tests that only care about a
 *   handler's data flow.
 *
 * @example
 * ```ts
 * import { connectInMemory } from 'wspipe/testing'
 * const client = await connectInMemory(({ source, sink }) => sink(source), { protocol: 'echo' })
 * await client.sink(['hi'])
 * ```
 *
 * @packageDocumentation
 */

import { Buffer } from 'node:buffer'
import { Duplex as NodeDuplex } from 'node:stream'
import type { Duplex, Source } from 'it-stream-types'
import { WebSocketConnection, type Connection, type ConnectionLimits, type Logger } from './driver.js'
import { runHandler, type Handler } from './server.js'

/** Options of {@link connectInMemory}. */
export interface InMemoryOptions extends ConnectionLimits {
  /** The subprotocol the handler sees. Default `''`. */
  protocol?: string
  /** The request URL the handler sees. Default `/`. */
  url?: string
  /** Request headers the handler sees. */
  headers?: Record<string, string>
  /** Receives the handler's errors. Default: a logger that keeps them in {@link InMemoryClient.errors}. */
  logger?: Logger
}

/** The client end of {@link connectInMemory}: a normal {@link Connection}, plus what the server side logged. */
export interface InMemoryClient extends Connection {
  /** The server side's connection, as the handler sees it. */
  readonly server: Connection
  /** Errors the handler threw, as logged by the server side. */
  readonly errors: unknown[]
}

/** One end of an in-memory byte pipe that behaves like a TCP socket: copies, backpressure, end and reset. */
class MemorySocket extends NodeDuplex {
  peer!: MemorySocket
  readonly remoteAddress = '127.0.0.1'
  readonly remotePort = 0
  private pendingWrite: (() => void) | undefined

  constructor () {
    super({ allowHalfOpen: false, highWaterMark: 64 * 1024 })
  }

  override _write (chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    // A copy, as a network would make: the receiver unmasks in place.
    if (this.peer.push(Buffer.from(chunk))) callback()
    else this.peer.pendingWrite = callback
  }

  override _read (): void {
    const w = this.pendingWrite
    if (w !== undefined) {
      this.pendingWrite = undefined
      w()
    }
  }

  override _final (callback: (error?: Error | null) => void): void {
    this.peer.push(null)
    callback()
  }

  override _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    // Like a reset: the other end goes too.
    if (!this.peer.destroyed) process.nextTick(() => this.peer.destroy())
    callback(error)
  }
}

/** Two connected in-memory sockets. */
function socketPair (): [MemorySocket, MemorySocket] {
  const a = new MemorySocket()
  const b = new MemorySocket()
  a.peer = b
  b.peer = a
  return [a, b]
}

/**
 * Run `handler` against an in-memory client, through the real framing, masking and closing
 * code (no HTTP handshake). Returns the client's end.
 */
export async function connectInMemory (handler: Handler, options: InMemoryOptions = {}): Promise<InMemoryClient> {
  const [serverSocket, clientSocket] = socketPair()
  const errors: unknown[] = []
  const logger: Logger = options.logger ?? {
    error: (obj) => { errors.push((obj as { err?: unknown }).err ?? obj) },
    warn: () => {},
    info: () => {},
    debug: () => {}
  }
  const limits: ConnectionLimits = {
    maxMessageSize: options.maxMessageSize,
    maxFrameSize: options.maxFrameSize,
    maxFragments: options.maxFragments,
    receiveHighWaterMark: options.receiveHighWaterMark,
    sendHighWaterMark: options.sendHighWaterMark,
    closeTimeout: options.closeTimeout,
    heartbeat: options.heartbeat ?? false
  }
  const common = { protocol: options.protocol ?? '', url: options.url ?? '/', headers: options.headers ?? {}, ...limits }
  const server = new WebSocketConnection(serverSocket, { ...common, role: 'server', logger })
  const client = new WebSocketConnection(clientSocket, { ...common, role: 'client' }) as WebSocketConnection & { server: Connection, errors: unknown[] }
  Object.defineProperty(client, 'server', { value: server })
  Object.defineProperty(client, 'errors', { value: errors })
  runHandler(handler, server, logger)
  return client
}

/**
 * A pair of in-memory duplexes: what one end's `sink` consumes, the other's `source` yields,
 * one item at a time (a sink waits until its item is taken). For testing a handler's data flow
 * with no framing at all.
 */
export function duplexPair<T> (): [Duplex<AsyncGenerator<T>, Source<T>, Promise<void>>, Duplex<AsyncGenerator<T>, Source<T>, Promise<void>>] {
  const ab = new Channel<T>()
  const ba = new Channel<T>()
  return [
    { source: ba.source(), sink: async (s) => { await ab.pump(s) } },
    { source: ab.source(), sink: async (s) => { await ba.pump(s) } }
  ]
}

/** A one-slot rendezvous channel: `pump` hands items to `source` one by one. */
class Channel<T> {
  private item: { value: T } | undefined
  private ended = false
  private error: unknown
  private wakeReader: (() => void) | undefined
  private wakeWriter: (() => void) | undefined

  async pump (source: Source<T>): Promise<void> {
    try {
      for await (const value of source) {
        while (this.item !== undefined) await new Promise<void>((resolve) => { this.wakeWriter = resolve })
        this.item = { value }
        this.wake('reader')
      }
    } catch (err) {
      this.error = err
      throw err
    } finally {
      this.ended = true
      this.wake('reader')
    }
  }

  async * source (): AsyncGenerator<T> {
    for (;;) {
      if (this.item !== undefined) {
        const { value } = this.item
        this.item = undefined
        this.wake('writer')
        yield value
        continue
      }
      if (this.ended) {
        if (this.error !== undefined) throw this.error
        return
      }
      await new Promise<void>((resolve) => { this.wakeReader = resolve })
    }
  }

  private wake (who: 'reader' | 'writer'): void {
    const w = who === 'reader' ? this.wakeReader : this.wakeWriter
    if (who === 'reader') this.wakeReader = undefined
    else this.wakeWriter = undefined
    w?.()
  }
}

export type { Handler } from './server.js'
export type { Connection } from './driver.js'
