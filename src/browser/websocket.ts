/**
 * The transport over plain `WebSocket`, for browsers without `WebSocketStream`. The browser
 * reads as fast as the network delivers and offers no way to stop it, so received messages wait
 * in a queue bounded by `receiveHighWaterMark` (past it the connection is closed: see
 * {@link ReceiveQueueFullError}); sends wait on `bufferedAmount`, which no event reports, so that
 * wait polls (bounded: see {@link SocketTransport.room}).
 *
 * @packageDocumentation
 */

import { ConnectionClosedError, UpgradeError } from '../errors.js'
import { CloseCode } from '../protocol/close-codes.js'
import { ITEM_OVERHEAD } from '../protocol/gather.js'
import type { CloseInfo } from '../driver/types.js'
import { ReceiveQueueFullError } from '../errors.js'
import { Inbox } from './inbox.js'
import { timeoutTimer, toMessage, type Transport, type TransportLimits, type TransportOwner } from './transport.js'

/** The first and the longest wait between two looks at `bufferedAmount`, in ms. */
const FIRST_POLL = 1
const LONGEST_POLL = 16

/** What a handshake that failed rejects with: the browser says nothing more (WHATWG WebSocket: a failed connection fires only `error` and `close` 1006). */
export function handshakeFailed (): UpgradeError {
  return new UpgradeError('the opening handshake failed: the browser does not say why (refused, unreachable, or an invalid answer; its console may tell)', 0, '')
}

/**
 * Open a plain `WebSocket`; resolves once it is open. Rejects with an {@link UpgradeError}
 * (status 0) if the handshake fails, or with `signal.reason` if `signal` aborts first.
 */
export function openWebSocket (url: string, protocols: string[], limits: TransportLimits, signal: AbortSignal | undefined): Promise<SocketTransport> {
  return new Promise((resolve, reject) => {
    let ws: WebSocket
    try {
      ws = new WebSocket(url, protocols)
    } catch (err) {
      reject(err)
      return
    }
    ws.binaryType = 'arraybuffer'
    const done = (): void => {
      signal?.removeEventListener('abort', onAbort)
      ws.onopen = ws.onerror = ws.onclose = null
    }
    const onAbort = (): void => {
      done()
      ws.close()
      reject(signal!.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    ws.onopen = () => {
      done()
      resolve(new SocketTransport(ws, limits))
    }
    // A failed handshake fires `error`, then `close`: either one settles.
    ws.onerror = ws.onclose = () => {
      done()
      reject(handshakeFailed())
    }
  })
}

/** Plain `WebSocket` as a {@link Transport}. */
export class SocketTransport implements Transport {
  readonly protocol: string
  readonly closed: Promise<CloseInfo>
  owner!: TransportOwner
  private readonly ws: WebSocket
  private readonly limits: TransportLimits
  private resolveClosed!: (info: CloseInfo) => void
  private readonly inbox = new Inbox()
  /** The close event came. */
  private gone = false
  /** We started closing: what still arrives is queued up to the mark, then dropped (the peer's close must still come). */
  private closing = false
  private roomWaiters: Array<(room: boolean) => void> | undefined
  private pollTimer: ReturnType<typeof setTimeout> | undefined
  private pollDelay = FIRST_POLL
  /** Gives up on the peer's answer to our close frame. */
  private answerTimer: ReturnType<typeof setTimeout> | undefined
  /**
   * Messages sent since `bufferedAmount` was last seen at 0: {@link ITEM_OVERHEAD} each counts
   * against the send mark, since `bufferedAmount` does not grow for an empty message.
   */
  private unseen = 0

  constructor (ws: WebSocket, limits: TransportLimits) {
    this.ws = ws
    this.limits = limits
    this.protocol = ws.protocol
    this.closed = new Promise((resolve) => { this.resolveClosed = resolve })
    ws.onmessage = (e: MessageEvent<string | ArrayBuffer>) => { this.onMessage(e.data) }
    ws.onclose = (e: CloseEvent) => { this.onClose(e) }
  }

  private onMessage (data: string | ArrayBuffer): void {
    // An event that comes anyway: a moment to look at bufferedAmount for free.
    if (this.roomWaiters !== undefined) this.lookForRoom()
    if (!this.inbox.open) return
    // The mark plus one message at most: a message is queued while the queue is at or below
    // the mark, so one larger than the mark still passes when the page reads between messages.
    if (this.inbox.cost > this.limits.receiveHigh) {
      if (this.closing) return
      this.inbox.finish(new ReceiveQueueFullError())
      this.owner.onReceiveQueueFull()
      return
    }
    this.inbox.deliver(toMessage(data))
  }

  private onClose (e: Pick<CloseEvent, 'code' | 'reason' | 'wasClean'>): void {
    // 1006 (and 1015) mean that no close frame came: the connection was lost.
    this.inbox.finish(e.code === CloseCode.Abnormal || e.code === CloseCode.TlsHandshake
      ? new ConnectionClosedError('connection closed without a close frame', e.code)
      : true)
    this.gone = true
    if (this.answerTimer !== undefined) clearTimeout(this.answerTimer)
    this.settleRoom(false)
    this.owner.onClosing(e.code)
    this.resolveClosed({ code: e.code, reason: e.reason, wasClean: e.wasClean })
  }

  read (): Promise<Uint8Array | undefined> {
    return this.inbox.read()
  }

  discard (): void {
    this.inbox.discard()
  }

  write (data: string | Uint8Array): void {
    // A view over a SharedArrayBuffer is refused by the browser with a TypeError, as it should be.
    this.ws.send(data as string | Uint8Array<ArrayBuffer>)
    this.unseen++
  }

  /** What waits to be sent, as it counts against the send mark; `polled` on a later task than the sends. */
  private buffered (polled = false): number {
    const bytes = this.ws.bufferedAmount
    // Seen at 0 a task later: the browser has taken what was sent.
    if (bytes === 0 && polled) this.unseen = 0
    return bytes + this.unseen * ITEM_OVERHEAD
  }

  /**
   * Room to send: `bufferedAmount` (plus {@link ITEM_OVERHEAD} per message sent since it was
   * last seen at 0) at or below the send mark. No event tells when it falls, so
   * a wait looks again on a timer — one per connection however many wait, first after 1 ms,
   * then doubling to at most 16 ms apart, and none once the connection closes — and whenever a
   * message arrives.
   */
  room (): Promise<boolean> | undefined {
    if (this.buffered() <= this.limits.sendHigh) return undefined
    if (this.gone) return Promise.resolve(false)
    const waiting = new Promise<boolean>((resolve) => { (this.roomWaiters ??= []).push(resolve) })
    if (this.pollTimer === undefined) {
      this.pollDelay = FIRST_POLL
      this.pollTimer = setTimeout(this.poll, this.pollDelay)
    }
    return waiting
  }

  private readonly poll = (): void => {
    this.pollTimer = undefined
    if (this.lookForRoom()) return
    this.pollDelay = Math.min(this.pollDelay * 2, LONGEST_POLL)
    this.pollTimer = setTimeout(this.poll, this.pollDelay)
  }

  /** Wake the waiting sends if there is room now; true if nobody waits any more. */
  private lookForRoom (): boolean {
    if (this.buffered(true) > this.limits.sendHigh) return false
    this.settleRoom(true)
    return true
  }

  private settleRoom (room: boolean): void {
    if (this.pollTimer !== undefined && !room) {
      clearTimeout(this.pollTimer)
      this.pollTimer = undefined
    }
    const waiters = this.roomWaiters
    this.roomWaiters = undefined
    if (waiters !== undefined) for (const w of waiters) w(room)
  }

  close (code: number, reason: string): boolean {
    // Not OPEN: the peer's close came first (CLOSING), and the browser sends no other.
    const sent = this.ws.readyState === WebSocket.OPEN
    this.closing = true
    // The browser sends what `bufferedAmount` holds, then the close frame.
    this.ws.close(code, reason)
    if (!this.gone && this.answerTimer === undefined) this.answerTimer = timeoutTimer(this.limits.closeTimeout, this.giveUp)
    return sent
  }

  /**
   * The peer did not answer our close within `closeTimeout`: stop waiting (RFC 6455 §7.1.1 lets
   * a client drop the connection): `source` ends after what was queued, and `closed` settles,
   * not clean. The browser keeps its socket until its own timeout.
   */
  private readonly giveUp = (): void => {
    this.answerTimer = undefined
    if (this.gone) return
    this.inbox.finish(true)
    this.ws.onmessage = this.ws.onclose = null
    this.onClose({ code: CloseCode.Abnormal, reason: '', wasClean: false })
  }
}
