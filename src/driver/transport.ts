/**
 * The byte stream under a connection: the only thing the driver calls on it. Node's
 * `net.Socket`, `tls.TLSSocket` and an HTTP/2 stream (any `stream.Duplex`) are transports as
 * they are, with no wrapper; `wspipe/testing` has an in-memory pair. What only a TCP socket has
 * (`setNoDelay`, `setTimeout`, its address and port) is done where the socket is accepted or
 * opened, not here.
 *
 * @packageDocumentation
 */

/**
 * A duplex byte stream, as the driver uses it. The events are those of a Node `Duplex`: `data`
 * (bytes read), `end` (the peer will send no more), `drain` (buffered output was written),
 * `error` (the driver then destroys the stream, for one that stays open after it, as a TLS
 * socket does when a record fails), and `close` (the stream is gone, once). Listeners are called with the
 * transport as `this`.
 */
export interface Transport {
  on: ((event: 'data', listener: (chunk: Uint8Array) => void) => unknown) &
    ((event: 'end' | 'close' | 'drain', listener: () => void) => unknown) &
    ((event: 'error', listener: (err: Error) => void) => unknown)
  /** Queue bytes; `callback` runs once they are written (or the stream is destroyed with them). */
  write: (chunk: Uint8Array, callback?: (err?: Error | null) => void) => unknown
  /** Hold writes until {@link Transport.uncork}: a batch leaves in one system call. */
  cork: () => void
  uncork: () => void
  /** Bytes queued and not yet written. */
  readonly writableLength: number
  /** Stop (and restart) `data` events: backpressure to the peer. */
  pause: () => unknown
  resume: () => unknown
  /** End our side of the stream once what is queued is written. */
  end: () => unknown
  /** Drop the stream at once (`close` follows). */
  destroy: () => unknown
  /** The stream stays open for writing after the peer's end (then our `end()` finishes it). */
  readonly allowHalfOpen?: boolean
}
