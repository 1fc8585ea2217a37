/**
 * `source` in the page: {@link PageSource} pulls whole messages from the transport one at a
 * time (the transport reads ahead at most `receiveHighWaterMark`, so with `WebSocketStream` a
 * page that does not read stops the browser reading); {@link PageStreamSource} hands each one out as a {@link ReceivedStream}
 * whose `chunks` yield it as one chunk, for code written for Node's stream mode.
 *
 * @packageDocumentation
 */

import { InvalidStateError, MessageAbandonedError } from '../errors.js'
import { isText } from '../text-mark.js'
import type { ReceivedStream } from '../driver/types.js'
import type { Transport } from './transport.js'

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined }
const DONE_PROMISE = Promise.resolve(DONE)

/** What a source tells its connection. */
export interface SourceOwner {
  /** The consumer called `return()`: it is done reading. */
  onSourceReturned: () => void
}

/** Whole messages, pulled from the transport as the consumer asks. */
export class PageSource implements AsyncIterableIterator<Uint8Array> {
  /** The consumer called `return()`: later messages are dropped. */
  detached = false
  private readonly transport: Transport
  private readonly owner: SourceOwner
  /** The end (or the error, reported once) has been handed out. */
  private finished = false
  private waiter: { resolve: (r: IteratorResult<Uint8Array>) => void, reject: (e: unknown) => void } | undefined

  constructor (transport: Transport, owner: SourceOwner) {
    this.transport = transport
    this.owner = owner
  }

  next (): Promise<IteratorResult<Uint8Array>> {
    if (this.finished || this.detached) return DONE_PROMISE
    if (this.waiter !== undefined) return Promise.reject(new InvalidStateError('source.next() called while a previous call is pending'))
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject }
      this.transport.read().then((message) => {
        const waiter = this.waiter
        // Returned meanwhile: the message is dropped, as later ones are.
        if (waiter === undefined) return
        this.waiter = undefined
        if (message !== undefined) {
          waiter.resolve({ done: false, value: message })
          return
        }
        this.finished = true
        waiter.resolve(DONE)
      }, (err: unknown) => {
        const waiter = this.waiter
        if (waiter === undefined) return
        this.waiter = undefined
        this.finished = true
        waiter.reject(err)
      })
    })
  }

  /** Done reading: the connection closes once its sending side is done too. */
  return (): Promise<IteratorResult<Uint8Array>> {
    if (this.detached) return DONE_PROMISE
    this.detached = true
    this.transport.discard()
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.resolve(DONE)
    this.owner.onSourceReturned()
    return DONE_PROMISE
  }

  [Symbol.asyncIterator] (): this {
    return this
  }
}

/** One received message in stream mode: already whole, so its `chunks` yield it at once. */
export class ReceivedMessage implements ReceivedStream, AsyncIterableIterator<Uint8Array> {
  readonly type: 'text' | 'binary'
  received = 0
  private data: Uint8Array | undefined
  /** `source` moved on before the chunk was read: reading it now is an error. */
  private movedOn = false

  constructor (data: Uint8Array) {
    this.data = data
    this.type = isText(data) ? 'text' : 'binary'
  }

  get chunks (): AsyncIterableIterator<Uint8Array> {
    return this
  }

  /** The bytes not yet read (all or nothing): what sending this message sends. */
  take (): Uint8Array | undefined {
    const data = this.data
    this.data = undefined
    if (data !== undefined) this.received = data.length
    return data
  }

  /** `source` moved on: the unread bytes are dropped. */
  abandon (): void {
    if (this.data === undefined) return
    this.data = undefined
    this.movedOn = true
  }

  next (): Promise<IteratorResult<Uint8Array>> {
    const data = this.take()
    if (data !== undefined) return Promise.resolve({ done: false, value: data })
    return this.movedOn ? Promise.reject(new MessageAbandonedError()) : DONE_PROMISE
  }

  return (): Promise<IteratorResult<Uint8Array>> {
    this.data = undefined
    return DONE_PROMISE
  }

  [Symbol.asyncIterator] (): this {
    return this
  }
}

/** `source` in stream mode: each whole message as a {@link ReceivedStream}; asking for the next abandons the unread one. */
export class PageStreamSource implements AsyncIterableIterator<ReceivedStream> {
  private readonly messages: PageSource
  private current: ReceivedMessage | undefined

  constructor (messages: PageSource) {
    this.messages = messages
  }

  get detached (): boolean {
    return this.messages.detached
  }

  next (): Promise<IteratorResult<ReceivedStream>> {
    this.current?.abandon()
    this.current = undefined
    return this.messages.next().then((r) => {
      if (r.done === true) return r
      this.current = new ReceivedMessage(r.value)
      return { done: false, value: this.current }
    })
  }

  return (): Promise<IteratorResult<ReceivedStream>> {
    return this.messages.return() as Promise<IteratorReturnResult<undefined>>
  }

  [Symbol.asyncIterator] (): this {
    return this
  }
}
