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

const REASONS = 31
/** Reading is paused now. */
const PAUSED = 1 << 30
/** The transport is gone. */
const STOPPED = 1 << 29

/** Whether the transport is read, and why not. */
export class Reading {
  private readonly transport: Transport
  /** The reasons that hold, and the {@link PAUSED} and {@link STOPPED} bits (one field: a connection holds many of these). */
  private state = 0
  /** Times reading was paused. */
  pauses = 0

  constructor (transport: Transport) {
    this.transport = transport
  }

  /** Reading is paused now. */
  get paused (): boolean {
    return (this.state & PAUSED) !== 0
  }

  /** Does `reason` hold? */
  has (reason: number): boolean {
    return (this.state & reason) !== 0
  }

  /** `reason` holds (`on`) or no longer does: pause or resume to match. */
  set (reason: number, on: boolean): void {
    this.assign(reason, on ? reason : 0)
  }

  /** The reasons in `mask` are now those in `bits`: pause or resume (once) to match. */
  assign (mask: number, bits: number): void {
    const state = (this.state & ~mask) | (bits & mask & REASONS)
    const pause = (state & REASONS) !== 0
    if (pause === ((state & PAUSED) !== 0) || (state & STOPPED) !== 0) {
      this.state = state
      return
    }
    this.state = pause ? state | PAUSED : state & ~PAUSED
    if (pause) {
      this.pauses++
      this.transport.pause()
    } else {
      this.transport.resume()
    }
  }

  /** The transport is gone. */
  stop (): void {
    this.state |= STOPPED
  }
}
