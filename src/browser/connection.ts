/**
 * {@link PageConnection}: a connection in the page, the {@link Connection} duplex over a
 * {@link Transport}. It carries out the closing rules of the Node side where a browser can:
 * the close code of the side that closed first, `signal` aborting when closing starts, the sink
 * stopping, and "done reading" (`source` returned) closing once the sending side is done too.
 *
 * @packageDocumentation
 */

import type { Source } from 'it-stream-types'
import { ConnectionClosedError, InvalidStateError } from '../errors.js'
import { CloseCode } from '../protocol/close-codes.js'
import type { CloseInfo, OutgoingMessage } from '../driver/types.js'
import { PageCloseCode } from './close-codes.js'
import { gather, Gathering, isStreamedMessage, toWire, type WireMessage } from './outgoing.js'
import { PageSink, type SinkOwner } from './sink.js'
import { PageSource, PageStreamSource, ReceivedMessage, type SourceOwner } from './source.js'
import type { Transport, TransportOwner } from './transport.js'

const encoder = new TextEncoder()
const RESOLVED = Promise.resolve()
function noop (): void {}

/**
 * Check a close code and reason a page may send.
 * @throws TypeError or RangeError, as {@link Connection.close} says.
 */
export function checkClose (code: number, reason: string): void {
  if (!Number.isInteger(code)) throw new TypeError(`a close code must be an integer, not ${typeof code === 'string' ? `the string '${code}'` : String(code)}`)
  // WHATWG WebSocket, close(): "If code is present, but is neither an integer equal to 1000 nor
  // an integer in the range 3000 to 4999, inclusive, throw an InvalidAccessError".
  if (code !== CloseCode.Normal && (code < 3000 || code > 4999)) throw new RangeError(`close code ${code} may not be sent from a page: use 1000 or 3000-4999 (the WHATWG WebSocket standard allows no other)`)
  if (typeof reason !== 'string') throw new TypeError('a close reason must be a string')
  if (encoder.encode(reason).length > 123) throw new RangeError('a close reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5)')
}

/** One connection in the page; implements `Connection`, or `StreamConnection` in stream mode. */
export class PageConnection implements SourceOwner, SinkOwner, TransportOwner {
  readonly protocol: string
  readonly source: PageSource | PageStreamSource
  readonly closed: Promise<CloseInfo>
  /** Closing has started: nothing more is sent. */
  closing = false
  private readonly transport: Transport
  private readonly messages: PageSource
  private readonly maxMessageSize: number
  private readonly abortController = new AbortController()
  /** `closed` has settled: sends are refused as "closed", not "closing". */
  private hasClosed = false
  /** Our close, if we closed first (then `closed` reports it). */
  private ourClose: { code: number, reason: string } | undefined
  /** The code closing started with, for the errors sends reject with. */
  private closingCode: number = CloseCode.Abnormal
  private pump: PageSink | undefined
  /** `send()` was used: `sink` may not be. */
  private sending = false
  /** Settles when the streamed messages given to `send()` so far are sent: later sends wait for it. */
  private sendChain: Promise<void> | undefined
  /** Streamed messages being gathered: stopped when closing starts. */
  private readonly gatherings = new Set<Gathering>()
  private doneCheckScheduled = false

  constructor (transport: Transport, options: { stream: boolean, maxMessageSize: number }) {
    this.transport = transport
    this.protocol = transport.protocol
    this.maxMessageSize = options.maxMessageSize
    this.messages = new PageSource(transport, this)
    this.source = options.stream ? new PageStreamSource(this.messages) : this.messages
    this.closed = transport.closed.then((info) => {
      this.onClosing(info.code)
      this.hasClosed = true
      const ours = this.ourClose
      return ours !== undefined ? { code: ours.code, reason: ours.reason, wasClean: info.wasClean } : info
    })
  }

  /** Aborts when the connection starts closing, for any reason. */
  get signal (): AbortSignal {
    return this.abortController.signal
  }

  /** `close`, bound, so `({ close })` works. */
  readonly close = (code: number = CloseCode.Normal, reason = ''): void => {
    checkClose(code, reason)
    this.closeWith(code, reason)
  }

  private closeWith (code: number, reason: string): void {
    if (this.closing) return
    // `closed` reports our code only if it was sent: not when the peer's close came first.
    if (this.transport.close(code, reason)) this.ourClose = { code, reason }
    this.startClosing(code)
  }

  /** The transport saw the peer's close or a failure. */
  onClosing (code: number): void {
    if (!this.closing) this.startClosing(code)
  }

  /** Plain `WebSocket`: the page did not read and the queue is full. */
  onReceiveQueueFull (): void {
    this.closeWith(PageCloseCode.ReceiveQueueFull, 'receive queue full')
  }

  private startClosing (code: number): void {
    this.closing = true
    this.closingCode = code
    this.abortController.abort(this.closingError())
    this.pump?.stop()
    for (const g of this.gatherings) g.stop()
    this.gatherings.clear()
  }

  /** What sends reject with once the connection is closing, or closed once `closed` has settled. */
  private closingError (): ConnectionClosedError {
    return new ConnectionClosedError(this.hasClosed ? 'the connection is closed' : 'the connection is closing', this.ourClose?.code ?? this.closingCode)
  }

  /** `sink`, bound: sends each message of `source`; resolves when it ends or the connection closes. */
  readonly sink = (source: Source<OutgoingMessage>): Promise<void> => {
    if (this.pump !== undefined) return Promise.reject(new InvalidStateError('sink can be called only once per connection'))
    if (this.sending) return Promise.reject(new InvalidStateError('sink cannot be called on a connection that send() was used on'))
    try {
      this.pump = new PageSink(this, source)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.pump.promise
  }

  /** `send`, bound: one message; resolves when there is room for the next. */
  readonly send = (message: OutgoingMessage): Promise<void> => {
    if (this.pump !== undefined) return Promise.reject(new InvalidStateError('send() cannot be used on a connection whose sink was called: send through the sink\'s iterable (an Outbox, say)'))
    if (this.closing) return Promise.reject(this.closingError())
    this.sending = true
    if (this.sendChain === undefined && !isStreamedMessage(message)) return this.deliver(message)
    // A streamed message is gathered over many turns: whatever is sent after it waits its turn.
    // One received in stream mode gives its bytes now, before `source` moves on.
    const outgoing = message instanceof ReceivedMessage ? gather(message, this.maxMessageSize) : message
    const p = (this.sendChain ?? RESOLVED).then(() => this.deliver(outgoing))
    const tail = p.then(noop, noop)
    this.sendChain = tail
    void tail.then(() => {
      if (this.sendChain !== tail) return
      this.sendChain = undefined
      if (this.messages.detached) this.scheduleDoneCheck()
    })
    return p
  }

  /** Send one message, its turn come; resolves when there is room for the next. */
  deliver (message: OutgoingMessage | Gathering): Promise<void> {
    if (this.closing) {
      if (message instanceof Gathering) message.stop()
      return Promise.reject(this.closingError())
    }
    if (isStreamedMessage(message)) return this.deliver(gather(message, this.maxMessageSize))
    if (message instanceof Gathering) {
      this.gatherings.add(message)
      return message.message.then((wire) => {
        this.gatherings.delete(message)
        return wire === undefined ? Promise.reject(this.closingError()) : this.write(wire)
      }, (err: unknown) => {
        this.gatherings.delete(message)
        throw err
      })
    }
    let wire: WireMessage
    try {
      wire = toWire(message)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.write(wire)
  }

  private write (wire: WireMessage): Promise<void> {
    if (this.closing) return Promise.reject(this.closingError())
    this.transport.write(wire)
    const room = this.transport.room()
    if (room === undefined) return RESOLVED
    return room.then((ok) => { if (!ok) throw this.closingError() })
  }

  onSourceReturned (): void {
    this.scheduleDoneCheck()
  }

  onSinkEnded (): void {
    if (this.messages.detached) this.scheduleDoneCheck()
  }

  /**
   * On a later turn, not now: a `throw` out of a `for await` loop also returns `source`, and the
   * page's own `close()` on its way must decide the code, not this rule.
   */
  private scheduleDoneCheck (): void {
    if (this.doneCheckScheduled || this.closing) return
    this.doneCheckScheduled = true
    setTimeout(() => { this.closeIfDone() }, 0)
  }

  /** Both directions done: close with 1000, or 4011 if the sink's iterable threw (a page cannot send 1011). */
  private closeIfDone (): void {
    this.doneCheckScheduled = false
    if (!this.messages.detached || this.closing) return
    const pump = this.pump
    if (pump === undefined) {
      if (this.sendChain === undefined) this.closeWith(CloseCode.Normal, '')
    } else if (pump.ended) {
      this.closeWith(pump.failed ? PageCloseCode.InternalError : CloseCode.Normal, '')
    }
  }
}
