/**
 * Reading from the transport: paused while any reason holds, resumed when none does. Each
 * reason is one bit, set and cleared by the part that owns it.
 *
 * @packageDocumentation
 */

import type { Transport } from './transport.js'

/** The receive queue is past its high-water mark (the handler is not reading). */
export const FOR_QUEUE = 1
/** The peer does not read our output (pongs included): see the Output part. */
export const FOR_WRITE = 2
/** A compressed message waits to be inflated: nothing after it may be parsed yet. */
export const FOR_INFLATE = 4
/** This connection's zlib budget is spent. */
export const FOR_ZLIB = 8
/** The peer broke the protocol and our close is not yet sent (§7.1.7): what it sends stays in the kernel. */
export const FOR_FAILURE = 16

/** Whether the transport is read, and why not. */
export class Reading {
  private readonly transport: Transport
  private reasons = 0
  /** Reading is paused now. */
  paused = false
  /** Times reading was paused. */
  pauses = 0
  /** The transport is gone: nothing is paused or resumed any more. */
  private stopped = false

  constructor (transport: Transport) {
    this.transport = transport
  }

  /** Does `reason` hold? */
  has (reason: number): boolean {
    return (this.reasons & reason) !== 0
  }

  /** `reason` holds (`on`) or no longer does: pause or resume to match. */
  set (reason: number, on: boolean): void {
    this.assign(reason, on ? reason : 0)
  }

  /** The reasons in `mask` are now those in `bits`: pause or resume (once) to match. */
  assign (mask: number, bits: number): void {
    const reasons = (this.reasons & ~mask) | (bits & mask)
    this.reasons = reasons
    const pause = reasons !== 0
    if (pause === this.paused || this.stopped) return
    this.paused = pause
    if (pause) {
      this.pauses++
      this.transport.pause()
    } else {
      this.transport.resume()
    }
  }

  /** The transport is gone. */
  stop (): void {
    this.stopped = true
  }
}
