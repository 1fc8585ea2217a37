/**
 * The transport over `WebSocketStream` (Chromium 124 and later): messages are read from its
 * readable ahead of `source` into a queue of at most `receiveHighWaterMark` (plus one message),
 * and no further, so a page that does not read stops the browser reading (its buffers fill, then
 * TCP pushes back on the server). Reading ahead also keeps what came before the peer's close: in
 * Chromium 156 a readable read only after the close arrived gives its first message and drops the
 * rest. Sends wait for the writer's writes to finish. Not in the WHATWG standard yet; typed here for what wspipe uses.
 *
 * @packageDocumentation
 */

import { ConnectionClosedError } from '../errors.js'
import { CloseCode } from '../protocol/close-codes.js'
import { ITEM_OVERHEAD } from '../protocol/gather.js'
import type { CloseInfo } from '../driver/types.js'
import { Inbox } from './inbox.js'
import { handshakeFailed } from './websocket.js'
import { timeoutTimer, toMessage, type Transport, type TransportLimits, type TransportOwner } from './transport.js'

/** What `opened` gives: the two streams of one connection. */
interface WebSocketStreamConnection {
  readonly readable: ReadableStream<string | ArrayBuffer>
  readonly writable: WritableStream<string | Uint8Array>
  readonly protocol: string
  readonly extensions: string
}

/** The part of `WebSocketStream` wspipe uses. */
interface WebSocketStreamLike {
  readonly opened: Promise<WebSocketStreamConnection>
  /** Resolves on a clean close; rejects with a `WebSocketError` (`closeCode` 1006) otherwise. */
  readonly closed: Promise<{ closeCode: number, reason: string }>
  close: (info?: { closeCode?: number, reason?: string }) => void
}

type WebSocketStreamConstructor = new (url: string, options?: { protocols?: string[] }) => WebSocketStreamLike
type WebSocketErrorConstructor = new (message: string, init: { closeCode: number, reason: string }) => Error

interface WebSocketStreamGlobals {
  WebSocketStream?: WebSocketStreamConstructor
  WebSocketError?: WebSocketErrorConstructor
}

/** Does this browser have `WebSocketStream`? */
export function hasWebSocketStream (): boolean {
  return typeof (globalThis as WebSocketStreamGlobals).WebSocketStream === 'function'
}

function noop (): void {}

/**
 * Open a `WebSocketStream`; resolves once it is open. Rejects with an {@link UpgradeError}
 * (status 0: the browser does not say why) if the handshake fails, or with `signal.reason` if
 * `signal` aborts first.
 */
export function openWebSocketStream (url: string, protocols: string[], limits: TransportLimits, signal: AbortSignal | undefined): Promise<StreamTransport> {
  const Constructor = (globalThis as WebSocketStreamGlobals).WebSocketStream!
  return new Promise((resolve, reject) => {
    let wss: WebSocketStreamLike
    try {
      wss = new Constructor(url, { protocols })
    } catch (err) {
      reject(err)
      return
    }
    let settled = false
    // A failed handshake rejects `closed` too: nobody else would handle that.
    wss.closed.then(undefined, noop)
    const onAbort = (): void => {
      settled = true
      wss.close()
      reject(signal!.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    wss.opened.then((opened) => {
      signal?.removeEventListener('abort', onAbort)
      if (!settled) resolve(new StreamTransport(wss, opened, limits))
    }, () => {
      signal?.removeEventListener('abort', onAbort)
      if (!settled) reject(handshakeFailed())
    })
  })
}

/** `WebSocketStream` as a {@link Transport}. */
export class StreamTransport implements Transport {
  readonly protocol: string
  readonly closed: Promise<CloseInfo>
  owner!: TransportOwner
  private readonly wss: WebSocketStreamLike
  private readonly reader: ReadableStreamDefaultReader<string | ArrayBuffer>
  private readonly writer: WritableStreamDefaultWriter<string | Uint8Array>
  private readonly limits: TransportLimits
  /** Messages read ahead of `source`. */
  private readonly inbox = new Inbox()
  /** A read of the readable is under way. */
  private reading = false
  /** The readable is done (ended or failed). */
  private drained = false
  /**
   * What the writes not finished cost: each message's bytes (a string: its length) plus
   * {@link ITEM_OVERHEAD}, so that empty messages are held back too.
   */
  private inFlight = 0
  /** Writes not finished. */
  private pending = 0
  private roomWaiters: Array<(room: boolean) => void> | undefined
  private gone = false
  /** A close waiting for the pending writes, and the timer that stops waiting. */
  private closeWanted: { code: number, reason: string } | undefined
  private closeStarted = false
  private closeTimer: ReturnType<typeof setTimeout> | undefined
  /** Gives up on the peer's answer to our close frame. */
  private answerTimer: ReturnType<typeof setTimeout> | undefined
  private resolveClosed!: (info: CloseInfo) => void

  constructor (wss: WebSocketStreamLike, opened: WebSocketStreamConnection, limits: TransportLimits) {
    this.wss = wss
    this.protocol = opened.protocol
    this.reader = opened.readable.getReader()
    this.writer = opened.writable.getWriter()
    this.limits = limits
    this.closed = new Promise((resolve) => { this.resolveClosed = resolve })
    // `closed` rejects for a connection lost without a close frame (1006).
    wss.closed.then(
      ({ closeCode, reason }) => { this.resolveClosed({ code: closeCode, reason, wasClean: true }) },
      (err: { closeCode?: number, reason?: string } | undefined) => { this.resolveClosed({ code: err?.closeCode ?? CloseCode.Abnormal, reason: err?.reason ?? '', wasClean: false }) })
    void this.closed.then((info) => {
      this.gone = true
      if (this.closeTimer !== undefined) clearTimeout(this.closeTimer)
      if (this.answerTimer !== undefined) clearTimeout(this.answerTimer)
      this.settleRoom(false)
      this.owner.onClosing(info.code)
    })
    this.readAhead()
  }

  /** Read the next message from the readable, unless the queue is past the mark. */
  private readAhead (): void {
    if (this.reading || this.drained) return
    // Queued while the queue is at or below the mark: the mark plus one message at most.
    if (!this.inbox.discarding && this.inbox.cost > this.limits.receiveHigh) return
    this.reading = true
    this.reader.read().then((r) => {
      this.reading = false
      if (r.done === true) {
        this.drained = true
        // The readable ends with the peer's close frame; `closed` follows once the handshake is
        // done. The end waits for it, so that whoever sees it also sees how the connection closed.
        void this.closed.then(() => { this.inbox.finish(true) })
        return
      }
      this.inbox.deliver(toMessage(r.value))
      this.readAhead()
    }, (err: Error & { closeCode?: number }) => {
      this.reading = false
      this.drained = true
      this.inbox.finish(new ConnectionClosedError(`connection lost: ${err.message}`, err.closeCode ?? CloseCode.Abnormal, { cause: err }))
    })
  }

  read (): Promise<Uint8Array | undefined> {
    const next = this.inbox.read()
    this.readAhead()
    return next
  }

  discard (): void {
    // Not `cancel()`, which would close the connection: read on and drop, so the peer's close
    // is still seen, while the sending side may go on.
    this.inbox.discard()
    this.readAhead()
  }

  write (data: string | Uint8Array): void {
    const size = (typeof data === 'string' ? data.length : data.byteLength) + ITEM_OVERHEAD
    this.inFlight += size
    this.pending++
    // A write fails only once the connection is closing, which `closed` reports.
    this.writer.write(data).then(() => { this.written(size) }, () => { this.written(size) })
  }

  private written (size: number): void {
    this.inFlight -= size
    this.pending--
    if (this.roomWaiters !== undefined && this.inFlight <= this.limits.sendHigh) this.settleRoom(true)
    if (this.pending === 0 && this.closeWanted !== undefined) this.closeNow()
  }

  room (): Promise<boolean> | undefined {
    if (this.inFlight <= this.limits.sendHigh) return undefined
    if (this.gone) return Promise.resolve(false)
    return new Promise((resolve) => { (this.roomWaiters ??= []).push(resolve) })
  }

  private settleRoom (room: boolean): void {
    const waiters = this.roomWaiters
    this.roomWaiters = undefined
    if (waiters !== undefined) for (const w of waiters) w(room)
  }

  /**
   * Close after the pending writes, as a socket sends what it holds before its close frame. In
   * Chromium 156, `close()` with writes still queued drops them while reporting them written,
   * and with a few MiB queued crashed the page; so the close waits for them, up to
   * `closeTimeout`, and then aborts the writer with the close code, which drops the rest.
   */
  close (code: number, reason: string): boolean {
    // The readable has ended: the peer's close came first, and the browser sends no other.
    if (this.gone || this.closeStarted || this.drained) return false
    this.closeStarted = true
    this.closeWanted = { code, reason }
    if (this.pending === 0) {
      this.closeNow()
      return true
    }
    this.closeTimer = timeoutTimer(this.limits.closeTimeout, () => { this.abortWrites() })
    return true
  }

  private closeNow (): void {
    if (this.closeTimer !== undefined) clearTimeout(this.closeTimer)
    this.closeTimer = undefined
    const { code, reason } = this.closeWanted!
    this.closeWanted = undefined
    try {
      this.wss.close({ closeCode: code, reason })
    } catch {}
    this.awaitAnswer()
  }

  /**
   * Our close frame is on its way: wait `closeTimeout` for the peer's, then stop waiting (RFC
   * 6455 §7.1.1 lets a client drop the connection): `source` ends after what was queued, and
   * `closed` settles, not clean. Chromium keeps its socket until its own 60 s pass, and may
   * still deliver the close frame meanwhile.
   */
  private awaitAnswer (): void {
    if (this.gone) return
    this.answerTimer = timeoutTimer(this.limits.closeTimeout, () => {
      this.answerTimer = undefined
      this.drained = true
      this.inbox.finish(true)
      // Not `reader.cancel()`: in Chromium 156 it can replace the close frame still on its way
      // (the server saw 1005 instead of the page's code). A read under way is dropped when it comes.
      this.resolveClosed({ code: CloseCode.Abnormal, reason: '', wasClean: false })
    })
  }

  private abortWrites (): void {
    this.closeTimer = undefined
    const { code, reason } = this.closeWanted!
    this.closeWanted = undefined
    const WebSocketError = (globalThis as WebSocketStreamGlobals).WebSocketError
    // Without the code the abort would close with 1000 (as a plain error would make it).
    const why = WebSocketError !== undefined ? new WebSocketError(reason, { closeCode: code, reason }) : undefined
    this.writer.abort(why).then(undefined, noop)
    this.awaitAnswer()
  }
}
