/**
 * Shared helpers for the server tests: start a server on 127.0.0.1 with teardown, a capturing
 * logger, raw HTTP requests over node:net, a raw WebSocket client that writes any frame, and a
 * queue around the `ws` client. Every wait here is bounded by a timeout.
 */

import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import net, { type AddressInfo } from 'node:net'
import tls from 'node:tls'
import type { ExecutionContext } from 'ava'
import WebSocket from 'ws'
import { WebSocketServer, type Connection, type Handler, type Logger, type WebSocketServerOptions } from '../../src/index.js'
import { VirtualClock } from '../../src/testing.js'
import { offLoopJobs } from '../../src/extensions/zlib-work.js'

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s)

/** Resolve after `ms`; the timer is unref'd so it never keeps a worker alive. */
export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}

/** Reject with `what` if `p` has not settled within `ms`. */
export async function within<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      p,
      new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms) })
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** Poll `check` every 10 ms until it is true, at most `ms`. */
export async function until (check: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for: ${what}`)
    await sleep(10)
  }
}

/** A promise and the function that resolves it: a test's handler hands over its connection this way. */
export function deferred<T> (): { promise: Promise<T>, resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => { resolve = r })
  return { promise, resolve }
}

/**
 * A hung peer fed a trickle: the heartbeat (interval and timeout 1000 ms on `clock`) pings
 * `conn`, then 100 bytes are sent per timeout, each small enough for the transport's buffers to
 * take at once, read or not. Returns how many timeouts passed before `conn` closed (at most 10).
 */
export async function timeoutsUntilDropped (t: ExecutionContext, clock: VirtualClock, conn: Connection): Promise<number> {
  const closed = watch(conn.closed)
  await clock.advance(1000)
  t.is(conn.stats().heartbeatPings, 1, 'pinged')
  let steps = 0
  for (; steps < 10 && !closed(); steps++) {
    await conn.send(new Uint8Array(100)).catch(() => {})
    for (let i = 0; i < 50 && conn.stats().queuedOutBytes > 0; i++) await new Promise((resolve) => setTimeout(resolve, 2))
    await clock.advance(1000)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return steps
}

/** Whether `p` has settled yet: `settled()` reads false until it has. */
export function watch (p: Promise<unknown>): () => boolean {
  let settled = false
  p.then(() => { settled = true }, () => { settled = true })
  return () => settled
}

/**
 * Resolves once `conn` has handled its socket's next read (bounded by `ms`). The connection's
 * own 'data' listener was added first, so it has run by then: what the peer sent before has
 * reached the connection, and virtual time can move on. Call it before the peer sends.
 */
export function nextRead (conn: unknown, ms = 5000): Promise<void> {
  const transport = (conn as { transport: { once: (event: 'data', listener: () => void) => void } }).transport
  return within(new Promise<void>((resolve) => { transport.once('data', () => resolve()) }), ms, 'the connection to read from its socket')
}

/**
 * A VirtualClock that also says when timers are set, for timers started by real I/O (a server's
 * handshake timer starts when it accepts the TCP connection): `await clock.timersSet(n)` before
 * moving time, instead of sleeping until the server has surely seen the socket.
 */
export class WatchedClock extends VirtualClock {
  private set = 0
  private waiters: Array<() => void> = []

  override setTimeout<A> (callback: (arg: A) => void, ms: number, arg: A): unknown {
    const timer = super.setTimeout(callback, ms, arg)
    this.set++
    const waiters = this.waiters
    this.waiters = []
    for (const wake of waiters) wake()
    return timer
  }

  /** Resolves once `n` timeouts in all have been set on this clock (bounded by `ms`). */
  async timersSet (n: number, ms = 5000): Promise<void> {
    await within((async () => {
      while (this.set < n) await new Promise<void>((resolve) => { this.waiters.push(resolve) })
    })(), ms, `${n} timers to be set (${this.set} so far)`)
  }
}

/**
 * `server`'s own HTTP(S) server, made by `listen()` (a private field): a test's listener for its
 * 'connection' or 'secureConnection' event, added after the server's own, runs after it, so the
 * test holds the server's end of a socket and can look at its state without waiting.
 */
export function ownServer (server: WebSocketServer): net.Server {
  const own = (server as unknown as { httpServer?: net.Server }).httpServer
  if (own === undefined) throw new Error('the server is not listening')
  return own
}

/** The server's end of the next socket its own server accepts (TCP; with TLS, `secure` for the TLS socket once its handshake is done). */
export function nextAccepted (server: WebSocketServer, secure = false, ms = 5000): Promise<net.Socket> {
  return within(once(ownServer(server), secure ? 'secureConnection' : 'connection').then(([s]) => s as net.Socket), ms, 'the server to accept a socket')
}

/**
 * Move `clock` on `step` ms at a time until `done()`, letting the process's zlib jobs (real work
 * on the thread pool) finish between steps: for tests whose waits are the zlib budget's. At most
 * `steps` steps; throws if `done()` is still false then.
 */
export async function advanceUntil (clock: VirtualClock, done: () => boolean, what: string, step = 100, steps = 1000): Promise<void> {
  for (let i = 0; i < steps && !done(); i++) {
    await clock.advance(step)
    await until(() => done() || offLoopJobs() === 0, 10_000, `zlib jobs to finish (${what})`)
  }
  if (!done()) throw new Error(`not done after ${step * steps} ms of virtual time: ${what}`)
}

export interface LogEntry { level: string, obj: any, msg: string | undefined }

/** A logger that records every call, so tests can assert on what was logged. */
export function captureLogger (): { logger: Logger, entries: LogEntry[] } {
  const entries: LogEntry[] = []
  const at = (level: string) => (obj: unknown, msg?: string): void => { entries.push({ level, obj, msg }) }
  return { logger: { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') }, entries }
}

export interface Started {
  server: WebSocketServer
  port: number
  url: string
  entries: LogEntry[]
}

/**
 * Start a WebSocketServer on 127.0.0.1:0 with `handlers` registered; closed in teardown. The
 * logger captures (so expected errors do not litter the output) unless one is given.
 */
export async function startServer (t: ExecutionContext, handlers: Record<string, Handler>, options: WebSocketServerOptions = {}): Promise<Started> {
  const captured = captureLogger()
  const server = new WebSocketServer({ logger: captured.logger, ...options })
  for (const [protocol, handler] of Object.entries(handlers)) server.register(protocol, handler)
  const address = await server.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await within(server.close(), 15_000, 'server.close in teardown') })
  return { server, port: address.port, url: `ws://127.0.0.1:${address.port}`, entries: captured.entries }
}

/** The echo handler. */
export const echo: Handler = ({ source, sink }) => sink(source)

// ---------------------------------------------------------------------------------------------
// Raw HTTP

export function newKey (): string {
  return randomBytes(16).toString('base64')
}

/** A valid upgrade request; `headers` override or (with `undefined`) remove default headers. */
export function upgradeRequest (options: { method?: string, path?: string | undefined, version?: string, headers?: Record<string, string | string[] | undefined> } = {}): string {
  const defaults: Record<string, string | string[] | undefined> = {
    Host: '127.0.0.1',
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': newKey(),
    'Sec-WebSocket-Version': '13'
  }
  const headers = { ...defaults, ...options.headers }
  let out = `${options.method ?? 'GET'} ${options.path ?? '/'} HTTP/${options.version ?? '1.1'}\r\n`
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue
    for (const v of Array.isArray(value) ? value : [value]) out += `${name}: ${v}\r\n`
  }
  return out + '\r\n'
}

export interface RawResponse {
  status: number
  statusLine: string
  headers: Record<string, string | undefined>
  body: string
  /** Every byte the server sent before closing (or before the timeout). */
  raw: Buffer
  /** The server closed the connection. */
  closed: boolean
}

export function parseResponse (raw: Buffer, closed: boolean): RawResponse {
  const text = raw.toString('latin1')
  const end = text.indexOf('\r\n\r\n')
  const head = end < 0 ? text : text.slice(0, end)
  const [statusLine, ...lines] = head.split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
  }
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? NaN)
  return { status, statusLine, headers, body: end < 0 ? '' : raw.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1')).toString('utf8'), raw, closed }
}

/**
 * Write `request` on a fresh TCP connection and collect what comes back until the server
 * closes or `ms` pass (then `closed` is false).
 */
export function rawRequest (port: number, request: string | Buffer, ms = 5000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    let done = false
    const finish = (closed: boolean): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resolve(parseResponse(Buffer.concat(chunks), closed))
    }
    const timer = setTimeout(() => finish(false), ms)
    socket.on('data', (c: Buffer) => {
      chunks.push(c)
      // A 101 leaves the connection open: its head is the whole answer.
      const got = Buffer.concat(chunks)
      if (got.subarray(0, 12).toString('latin1') === 'HTTP/1.1 101' && got.includes('\r\n\r\n')) finish(false)
    })
    socket.on('end', () => finish(true))
    socket.on('close', () => finish(true))
    socket.on('error', (err) => {
      // A reset after a complete response still counts as a response.
      if (chunks.length > 0) finish(true)
      else if (!done) { done = true; clearTimeout(timer); reject(err) }
    })
    socket.write(request)
  })
}

// ---------------------------------------------------------------------------------------------
// Raw WebSocket client

export interface RawFrame { fin: boolean, opcode: number, payload: Buffer }

/** A client frame; masked unless `mask: false` (which a server must refuse). */
export function clientFrame (opcode: number, payload: Uint8Array | string, options: { fin?: boolean, mask?: boolean } = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(payload)
  const mask = options.mask ?? true
  const len = data.length
  const header: number[] = [((options.fin ?? true) ? 0x80 : 0) | opcode]
  const m = mask ? 0x80 : 0
  if (len < 126) header.push(m | len)
  else if (len < 65536) header.push(m | 126, len >>> 8, len & 0xff)
  else {
    header.push(m | 127, 0, 0, 0, 0)
    header.push((len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff)
  }
  if (!mask) return Buffer.concat([Buffer.from(header), data])
  const key = randomBytes(4)
  const body = Buffer.alloc(len)
  for (let i = 0; i < len; i++) body[i] = data[i] ^ key[i & 3]
  return Buffer.concat([Buffer.from(header), key, body])
}

export function closePayload (code: number, reason = ''): Buffer {
  const r = Buffer.from(reason)
  const out = Buffer.alloc(2 + r.length)
  out.writeUInt16BE(code, 0)
  r.copy(out, 2)
  return out
}

/** A WebSocket client over a bare socket: handshake by hand, frames by hand, reading under the test's control. */
export class RawClient {
  readonly socket: net.Socket
  private buffer: Buffer = Buffer.alloc(0)
  private frames: RawFrame[] = []
  private waiters: Array<() => void> = []
  /** Bytes received after the handshake. */
  received = 0
  ended = false

  private constructor (socket: net.Socket, rest: Buffer) {
    this.socket = socket
    socket.on('data', (c: Buffer) => this.onData(c))
    socket.on('close', () => { this.ended = true; this.wake() })
    socket.on('error', () => {})
    if (rest.length > 0) this.onData(rest)
  }

  /** Connect and complete the opening handshake; rejects unless the answer is 101. */
  static connect (port: number, options: { path?: string, protocol?: string, head?: Buffer, tls?: tls.ConnectionOptions, headers?: Record<string, string> } = {}): Promise<RawClient> {
    const socket = options.tls !== undefined ? tls.connect({ host: '127.0.0.1', port, ...options.tls }) : net.connect(port, '127.0.0.1')
    return RawClient.handshake(socket, options)
  }

  /** Send the upgrade request on `socket` (connected or connecting); rejects unless the answer is 101. */
  static handshake (socket: net.Socket, options: { path?: string, protocol?: string, head?: Buffer, headers?: Record<string, string> } = {}): Promise<RawClient> {
    return within(new Promise<RawClient>((resolve, reject) => {
      socket.setNoDelay(true)
      let got = Buffer.alloc(0)
      const onData = (c: Buffer): void => {
        got = Buffer.concat([got, c])
        const end = got.indexOf('\r\n\r\n')
        if (end < 0) return
        socket.off('data', onData)
        socket.off('error', reject)
        const res = parseResponse(got.subarray(0, end + 4), false)
        if (res.status !== 101) {
          socket.destroy()
          reject(new Error(`expected 101, got ${res.statusLine}`))
          return
        }
        resolve(new RawClient(socket, got.subarray(end + 4)))
      }
      socket.on('data', onData)
      socket.on('error', reject)
      socket.once('close', () => reject(new Error('the server closed the socket before answering')))
      const headers: Record<string, string> = { ...options.headers }
      if (options.protocol !== undefined) headers['Sec-WebSocket-Protocol'] = options.protocol
      const request = Buffer.from(upgradeRequest({ path: options.path, headers }))
      socket.write(options.head === undefined ? request : Buffer.concat([request, options.head]))
    }), 5000, 'raw handshake')
  }

  private onData (chunk: Buffer): void {
    this.received += chunk.length
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk])
    for (;;) {
      const b = this.buffer
      if (b.length < 2) break
      let len = b[1] & 0x7f
      let at = 2
      if (len === 126) {
        if (b.length < 4) break
        len = b.readUInt16BE(2)
        at = 4
      } else if (len === 127) {
        if (b.length < 10) break
        len = Number(b.readBigUInt64BE(2))
        at = 10
      }
      if (b[1] & 0x80) at += 4 // servers never mask; tolerate it anyway
      if (b.length < at + len) break
      this.frames.push({ fin: (b[0] & 0x80) !== 0, opcode: b[0] & 0x0f, payload: b.subarray(at, at + len) })
      this.buffer = b.subarray(at + len)
    }
    this.wake()
  }

  private wake (): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  /** The next frame from the server, or undefined if the socket closes first. */
  async nextFrame (ms = 5000): Promise<RawFrame | undefined> {
    const deadline = Date.now() + ms
    while (this.frames.length === 0) {
      if (this.ended) return undefined
      const left = deadline - Date.now()
      if (left <= 0) throw new Error('timed out waiting for a frame')
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
    return this.frames.shift()
  }

  /** The frames received and not yet taken, taken now (none waited for). */
  takeFrames (): RawFrame[] {
    const frames = this.frames
    this.frames = []
    return frames
  }

  /** Skip data frames until a close frame; returns its code and reason (1005 when empty). */
  async nextClose (ms = 5000): Promise<{ code: number, reason: string } | undefined> {
    const deadline = Date.now() + ms
    for (;;) {
      const f = await this.nextFrame(Math.max(1, deadline - Date.now()))
      if (f === undefined) return undefined
      if (f.opcode === 8) {
        return f.payload.length === 0
          ? { code: 1005, reason: '' }
          : { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString('utf8') }
      }
    }
  }

  send (frame: Buffer): void {
    this.socket.write(frame)
  }

  /** Resolves when the socket has closed (bounded by `ms`). */
  async waitClosed (ms = 5000): Promise<void> {
    await within(new Promise<void>((resolve) => {
      if (this.socket.destroyed && this.ended) resolve()
      else this.socket.once('close', () => resolve())
    }), ms, 'raw socket close')
  }

  destroy (): void {
    this.socket.destroy()
  }
}

// ---------------------------------------------------------------------------------------------
// The ws client with a message queue

export interface WsMessage { data: Buffer, isBinary: boolean }

/** A `ws` client whose messages queue up to be awaited in order. */
export class WsPeer {
  readonly ws: WebSocket
  readonly opened: Promise<void>
  readonly closed: Promise<{ code: number, reason: string }>
  private messages: WsMessage[] = []
  private waiters: Array<() => void> = []
  private isClosed = false

  constructor (url: string, protocols?: string | string[], options: WebSocket.ClientOptions = {}) {
    this.ws = new WebSocket(url, protocols, options)
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve())
      this.ws.once('error', reject)
      this.ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)))
    })
    this.opened.catch(() => {})
    this.ws.on('error', () => {})
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.isClosed = true
        this.wake()
        resolve({ code, reason: reason.toString('utf8') })
      })
    })
    this.ws.on('message', (data, isBinary) => {
      this.messages.push({ data: data as Buffer, isBinary })
      this.wake()
    })
  }

  static async open (url: string, protocols?: string | string[], options: WebSocket.ClientOptions = {}): Promise<WsPeer> {
    const peer = new WsPeer(url, protocols, options)
    await within(peer.opened, 5000, `ws open ${url}`)
    return peer
  }

  private wake (): void {
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  get queued (): number {
    return this.messages.length
  }

  async next (ms = 10_000): Promise<WsMessage> {
    const deadline = Date.now() + ms
    while (this.messages.length === 0) {
      if (this.isClosed) throw new Error('closed before the next message')
      const left = deadline - Date.now()
      if (left <= 0) throw new Error('timed out waiting for a message')
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
    return this.messages.shift()!
  }

  /** Send and wait until `ws` has handed the data to the socket. */
  send (data: string | Uint8Array, options: { binary?: boolean, fin?: boolean } = {}): Promise<void> {
    return new Promise((resolve, reject) => {
      this.ws.send(data, options, (err) => { if (err != null) reject(err); else resolve() })
    })
  }

  async close (code?: number, reason?: string): Promise<{ code: number, reason: string }> {
    this.ws.close(code, reason)
    return await within(this.closed, 10_000, 'ws close')
  }

  terminate (): void {
    this.ws.terminate()
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for a child process to listen on). */
export async function freePort (): Promise<number> {
  const s = net.createServer()
  s.listen(0, '127.0.0.1')
  await once(s, 'listening')
  const port = (s.address() as AddressInfo).port
  await new Promise<void>((resolve) => s.close(() => resolve()))
  return port
}

/** End a detached child's whole process group: SIGTERM, then SIGKILL if it lingers. */
export async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  try { process.kill(-child.pid!, 'SIGTERM') } catch {}
  const done = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)])
  if (!done) {
    try { process.kill(-child.pid!, 'SIGKILL') } catch {}
    await Promise.race([exited, sleep(2000)])
  }
}
