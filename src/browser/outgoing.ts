/**
 * Messages on their way out of the page: what `send` and `sink` are given, made into what the
 * browser sends — a string for text, bytes for binary. A browser sends whole messages only, so a
 * {@link StreamedMessage}'s chunks are gathered first, up to `maxMessageSize`.
 *
 * @packageDocumentation
 */

import { isText } from '../text-mark.js'
import type { StreamedMessage } from '../driver/types.js'
import { ReceivedMessage } from './source.js'

/** A message as the browser takes it: a string goes as text, bytes as binary. */
export type WireMessage = string | Uint8Array

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })
const EMPTY = new Uint8Array(0)

function ignore (): void {}

/** Is `value` a {@link StreamedMessage} (an object with `chunks`) rather than bytes or a string? */
export function isStreamedMessage (value: unknown): value is StreamedMessage {
  return typeof value === 'object' && value !== null && !(value instanceof Uint8Array) && 'chunks' in value
}

/** Text as a string (the browser encodes it again), checked as UTF-8. */
function textOf (bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes)
  } catch {
    throw new TypeError('a message marked as text is not valid UTF-8')
  }
}

/**
 * A whole message as the browser sends it: a string as it is, bytes received as text (or marked
 * with `asText`) as a string, other bytes as binary.
 * @throws TypeError for anything else, or for text that is not UTF-8.
 */
export function toWire (message: string | Uint8Array): WireMessage {
  if (typeof message === 'string') return message
  if (!(message instanceof Uint8Array)) throw new TypeError('a message must be a string, a Uint8Array or a streamed message ({ type, chunks })')
  return isText(message) ? textOf(message) : message
}

/** A streamed message whose chunks are being gathered; `stop()` ends that early (the connection closed). */
export class Gathering {
  /** The message, or `undefined` if stopped first (at once, even while a chunk is awaited). */
  readonly message: Promise<WireMessage | undefined>
  /** Stop gathering: `message` resolves with `undefined`, and the chunks' `return()` is called. */
  readonly stop: () => void

  constructor (message: Promise<WireMessage | undefined>, stop: () => void) {
    this.message = message
    this.stop = stop
  }
}

/**
 * Gather a streamed message's chunks into one message of at most `max` bytes. A message received
 * in stream mode gives its bytes at once, so that `source` may move on meanwhile.
 * @throws (rejects) TypeError for a bad type, chunks that are not iterable or a chunk that is
 * not bytes or a string; RangeError past `max`; whatever the chunks throw.
 */
export function gather (message: StreamedMessage, max: number): Gathering {
  if (message instanceof ReceivedMessage) {
    const data = message.take() ?? EMPTY
    return settled(() => message.type === 'text' ? textOf(data) : data)
  }
  const type = message.type
  if (type !== 'text' && type !== 'binary') return settled(() => { throw new TypeError(`a streamed message's type must be 'text' or 'binary', not ${String(type)}`) })
  const chunks = message.chunks as unknown as Record<symbol, (() => Iterator<unknown> | AsyncIterator<unknown>) | undefined> | null
  const open = chunks === null || typeof chunks !== 'object' ? undefined : chunks[Symbol.asyncIterator] ?? chunks[Symbol.iterator]
  if (open === undefined) return settled(() => { throw new TypeError('a streamed message\'s chunks must be an iterable or an async iterable') })
  const iterator = open.call(chunks)
  let stopped = false
  let resolve!: (m: WireMessage | undefined) => void
  let reject!: (err: unknown) => void
  const result = new Promise<WireMessage | undefined>((res, rej) => { resolve = res; reject = rej })
  /** Call `return()` on the chunks (their `finally` blocks run), once. */
  const close = (): void => {
    if (stopped) return
    stopped = true
    try {
      const r = iterator.return?.()
      if (r instanceof Promise) r.then(undefined, ignore)
    } catch {}
  }
  const stop = (): void => {
    // Settled now: a chunk that never comes must not hold the send past the close.
    resolve(undefined)
    close()
  }
  const collect = async (): Promise<WireMessage | undefined> => {
    const parts: Uint8Array[] = []
    let size = 0
    for (;;) {
      const r = await iterator.next()
      if (stopped) return undefined
      if (r.done === true) break
      const chunk = typeof r.value === 'string' ? encoder.encode(r.value) : r.value
      if (!(chunk instanceof Uint8Array)) {
        close()
        throw new TypeError('a chunk of a streamed message must be a Uint8Array or a string')
      }
      size += chunk.length
      if (size > max) {
        close()
        throw new RangeError(`a streamed message is gathered whole in the browser, and this one passed maxMessageSize (${max} bytes)`)
      }
      parts.push(chunk)
    }
    let data: Uint8Array
    if (parts.length === 1) {
      data = parts[0]
    } else {
      data = new Uint8Array(size)
      let at = 0
      for (const part of parts) {
        data.set(part, at)
        at += part.length
      }
    }
    if (type === 'text') return textOf(data)
    // Binary even if the one chunk was received as text: a plain view, without the mark.
    return isText(data) ? new Uint8Array(data.buffer, data.byteOffset, data.length) : data
  }
  collect().then(resolve, reject)
  return new Gathering(result, stop)
}

/** A gathering whose outcome is known at once. */
function settled (make: () => WireMessage): Gathering {
  let message: Promise<WireMessage>
  try {
    message = Promise.resolve(make())
  } catch (err) {
    message = Promise.reject(err)
  }
  return new Gathering(message, ignore)
}
