/**
 * TCP sockets of `listen({ tls })`'s server still in their TLS handshake. The handshake timer
 * runs from TCP accept (`handshakeTimeout` covers TLS and the request together), so whoever
 * takes the TLS socket made from one (an HTTP/1.1 upgrade or an HTTP/2 session) learns here
 * how much of it TLS has spent; `close()` waits for them, and drops the silent ones early.
 *
 * @packageDocumentation
 */

import type { Duplex as NodeDuplex } from 'node:stream'
import type { Clock } from './driver/clock.js'

/** Sockets in the TLS handshake, by remote address and port (the TLS socket made from one has the same). */
export class TlsHandshakes {
  private readonly accepted = new Map<string, { raw: NodeDuplex, acceptedAt: number }>()

  /** `clock` reads the time; `gone` is called when a socket leaves the set. */
  constructor (private readonly clock: Clock, private readonly gone: () => void) {}

  get size (): number {
    return this.accepted.size
  }

  /** A TCP socket was accepted: it is in the TLS handshake until its TLS socket is taken or it closes. */
  add (raw: NodeDuplex): void {
    const key = remoteKey(raw)
    if (key === undefined) return
    this.accepted.set(key, { raw, acceptedAt: this.clock.now() })
    raw.once('close', () => {
      if (this.accepted.get(key)?.raw === raw) {
        this.accepted.delete(key)
        this.gone()
      }
    })
  }

  /** Ms since the TCP socket under `secure` was accepted (0 if unknown); it stays in the set. */
  spent (secure: NodeDuplex): number {
    const key = this.accepted.size === 0 ? undefined : remoteKey(secure)
    const tcp = key === undefined ? undefined : this.accepted.get(key)
    return tcp === undefined ? 0 : this.clock.now() - tcp.acceptedAt
  }

  /** The TLS handshake under `secure` is done: ms it spent since TCP accept (0 if unknown). */
  take (secure: NodeDuplex): number {
    const spent = this.spent(secure)
    const key = this.accepted.size === 0 ? undefined : remoteKey(secure)
    if (key !== undefined && this.accepted.delete(key)) this.gone()
    return spent
  }

  /** Drop the sockets that have sent nothing (a preconnect), or with `all`, every one. */
  drop (all: boolean): void {
    for (const [key, { raw }] of [...this.accepted]) {
      if (all || bytesReadOf(raw) === 0) {
        this.accepted.delete(key)
        raw.destroy()
      }
    }
  }
}

/** Bytes received on `socket` so far (Node's sockets count them; other duplexes: unknown, -1). */
export function bytesReadOf (socket: NodeDuplex): number {
  const n = (socket as { bytesRead?: number }).bytesRead
  return typeof n === 'number' ? n : -1
}

/** A live TCP connection's remote end, which its TLS socket shares. */
function remoteKey (socket: NodeDuplex): string | undefined {
  const { remoteAddress, remotePort } = socket as { remoteAddress?: string, remotePort?: number }
  return remoteAddress === undefined || remotePort === undefined ? undefined : `${remoteAddress}|${remotePort}`
}
