/**
 * What the browser connection needs from the platform's socket: a {@link Transport}, one for
 * `WebSocketStream` and one for plain `WebSocket`, each turning received data into bytes
 * (text encoded to UTF-8, and marked) and waiting for room to send.
 *
 * @packageDocumentation
 */

import type { CloseInfo } from '../driver/types.js'
import { markNew } from '../text-mark.js'

/** What the connection is told by its transport. */
export interface TransportOwner {
  /** The connection is closing (the peer's close came, or it failed) with `code`. Nothing more may be sent. */
  onClosing: (code: number) => void
  /** Plain `WebSocket`: a message arrived while the receive queue was above its mark: close (4008). */
  onReceiveQueueFull: () => void
}

/** Resolved limits shared by both transports. */
export interface TransportLimits {
  readonly receiveHigh: number
  readonly sendHigh: number
  readonly closeTimeout: number
}

/** The platform socket, seen by the connection. */
export interface Transport {
  readonly protocol: string
  /** Set once, right after opening, before any event can come (events are tasks; this runs in the microtask that opened it). */
  owner: TransportOwner
  /** What the platform reports when the connection is gone (the connection decides whose code to report). */
  readonly closed: Promise<CloseInfo>
  /**
   * The next message (text already marked); `undefined` once the peer has closed. Rejects with
   * the connection's failure. One call at a time.
   */
  read: () => Promise<Uint8Array | undefined>
  /** The consumer is done reading: later messages are dropped, and a pending `read` sees the end. */
  discard: () => void
  /** Hand one message to the browser (a string goes as text). */
  write: (data: string | Uint8Array) => void
  /** `undefined` when what waits to be sent is at or below the send mark; else a promise for true once it is, or false if the connection closes first. */
  room: () => Promise<boolean> | undefined
  /**
   * Start the closing handshake (a code the page may send, checked by the caller). False if
   * the peer's close came first, so ours is not sent.
   */
  close: (code: number, reason: string) => boolean
}

const encoder = new TextEncoder()

/** The longest delay `setTimeout` takes: a longer one (or Infinity) fires at once. */
export const LONGEST_TIMER = 2 ** 31 - 1

/** `setTimeout` for a timeout option: none for Infinity, at most {@link LONGEST_TIMER} ms otherwise. */
export function timeoutTimer (ms: number, fire: () => void): ReturnType<typeof setTimeout> | undefined {
  if (ms === Infinity) return undefined
  return setTimeout(fire, Math.min(ms, LONGEST_TIMER))
}

/** A message as the platform delivers it (a string for text), as wspipe hands it out. */
export function toMessage (data: string | ArrayBuffer): Uint8Array {
  if (typeof data !== 'string') return new Uint8Array(data)
  // The browser decoded the frame's UTF-8; wspipe's messages are bytes, so it is encoded again.
  const bytes = encoder.encode(data)
  markNew(bytes)
  return bytes
}
