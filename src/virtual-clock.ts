/**
 * A clock whose time moves only when a test says so, for `wspipe/testing`.
 *
 * @packageDocumentation
 */

import type { Clock, ClockTimer } from './driver/clock.js'

/** A timer of a {@link VirtualClock}. */
interface VirtualTimer {
  due: number
  /** Order among timers due at once: the order they were set in. */
  seq: number
  /** Repeats every `period` ms; 0: once. */
  readonly period: number
  readonly callback: (arg: never) => void
  readonly arg: unknown
}

function turn (): Promise<void> {
  return new Promise((resolve) => { setImmediate(resolve) })
}

/**
 * A {@link Clock} for tests: `now()` starts at 0 and moves only in {@link VirtualClock.advance}.
 * Give it to `connectInMemory(handler, { clock })` (or a server's or `connect()`'s `clock`
 * option) and every timer of it runs in virtual time (close timeout, reply grace, heartbeat, zlib
 * budget waits and refill, handshake timeout, `server.close()`'s timeouts: the list is the
 * `clock` option's in docs/server.md), so a test of "dropped after 30 s" takes no 30 s.
 *
 * What {@link VirtualClock.advance} guarantees:
 * - Timers fire in order of their due time; timers due at the same time, in the order they were
 *   set. `now()` reads the timer's due time while its callback runs, and the target time after.
 * - A timer set during the advance (by a callback, or by code the settling ran) that is due by
 *   the target fires in the same advance; one cleared before its turn does not fire.
 * - Before the first timer, between timers and after the last, the event loop turns
 *   {@link VirtualClock.turns} times (`setImmediate`), so promise chains, `setImmediate` work
 *   (the driver's flushes) and the in-memory transport's deliveries run: what a timer sets off
 *   between in-memory peers has happened when the next timer fires. Real sockets are not waited
 *   for.
 * - The process's own timers (`setTimeout`) are neither moved nor waited for.
 */
export class VirtualClock implements Clock {
  /** Event-loop turns let run around each timer (see {@link VirtualClock.advance}). Default 20. */
  turns: number
  private time = 0
  private seq = 0
  private timers: VirtualTimer[] = []

  /** A clock at time 0; `turns`: event-loop turns around each timer in {@link VirtualClock.advance} (default 20). */
  constructor (options: { turns?: number } = {}) {
    this.turns = options.turns ?? 20
  }

  now (): number {
    return this.time
  }

  setTimeout<A> (callback: (arg: A) => void, ms: number, arg: A): ClockTimer {
    return this.add(callback, ms, arg, 0)
  }

  /** Cancel a timer `setTimeout` returned: it never fires. */
  clearTimeout (timer: ClockTimer): void {
    this.cancel(timer)
  }

  setInterval<A> (callback: (arg: A) => void, ms: number, arg: A): ClockTimer {
    return this.add(callback, ms, arg, Math.max(1, ms))
  }

  /** Cancel a timer `setInterval` returned: it fires no more. */
  clearInterval (timer: ClockTimer): void {
    this.cancel(timer)
  }

  /** Timers set and not yet fired or cleared (an interval counts until cleared). */
  get pending (): number {
    return this.timers.length
  }

  /** Let the event loop turn {@link VirtualClock.turns} times without moving time. */
  async settle (): Promise<void> {
    for (let i = 0; i < this.turns; i++) await turn()
  }

  /** Move time forward by `ms`, firing what falls due on the way (see the class's guarantees). */
  async advance (ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError('advance() takes a number of ms, 0 or more')
    const target = this.time + ms
    await this.settle()
    for (;;) {
      const next = this.timers[0]
      if (next === undefined || next.due > target) break
      this.timers.shift()
      this.time = Math.max(this.time, next.due)
      if (next.period > 0) {
        next.due += next.period
        next.seq = this.seq++
        this.insert(next)
      }
      ;(next.callback as (arg: unknown) => void)(next.arg)
      await this.settle()
    }
    this.time = target
    await this.settle()
  }

  private add (callback: (arg: never) => void, ms: number, arg: unknown, period: number): VirtualTimer {
    const timer: VirtualTimer = { due: this.time + Math.max(0, Number(ms) || 0), seq: this.seq++, period, callback, arg }
    this.insert(timer)
    return timer
  }

  private insert (timer: VirtualTimer): void {
    const timers = this.timers
    let i = timers.length
    while (i > 0 && (timers[i - 1].due > timer.due || (timers[i - 1].due === timer.due && timers[i - 1].seq > timer.seq))) i--
    timers.splice(i, 0, timer)
  }

  private cancel (timer: ClockTimer): void {
    const i = this.timers.indexOf(timer as VirtualTimer)
    if (i >= 0) this.timers.splice(i, 1)
  }
}
