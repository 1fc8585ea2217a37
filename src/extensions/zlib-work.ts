/**
 * What zlib work may cost, and where it runs: {@link ZlibBudget}, a token bucket of bytes of zlib
 * work per second (one per connection, one per server), and {@link runOffLoop}, the queue of
 * zlib jobs that run on libuv's thread pool, one at a time for the whole process, so that a
 * large message is compressed or inflated without holding the event loop.
 *
 * @packageDocumentation
 */

import { Fifo } from '../fifo.js'
import { systemClock, type Clock } from '../driver/clock.js'

/**
 * A compressed byte pays for this many bytes of zlib work: a message inflated or deflated is
 * charged its uncompressed size less this many times its compressed size (never less than 0).
 * Ordinary traffic compresses far less than 16-fold (JSON and text 3-10×) and is charged nothing;
 * a decompression bomb (16 MiB of one letter is 16 KiB, 1,000×) is charged nearly all of it.
 */
export const FREE_RATIO = 16

/** What a message's zlib work is charged: its uncompressed bytes beyond {@link FREE_RATIO} × its compressed bytes. */
export function chargeFor (uncompressed: number, compressed: number): number {
  return Math.max(0, uncompressed - FREE_RATIO * compressed)
}

/**
 * A token bucket of zlib work, in bytes per second: it holds up to one second's worth, a charge
 * may take it below zero (the work is done, then paid for), and while it is below zero whoever
 * draws on it waits ({@link ZlibBudget.wait}). `Infinity` never runs out.
 */
export class ZlibBudget {
  /** Bytes of work per second, and the most the bucket holds. */
  readonly rate: number
  private tokens: number
  private at: number
  /** Refills by this clock's time: the connection's or server's, so a virtual one moves it too. */
  private readonly clock: Clock

  constructor (rate: number, clock: Clock = systemClock) {
    if (!(rate > 0)) throw new RangeError('a zlib budget must be a positive number of bytes per second')
    this.rate = rate
    this.tokens = rate
    this.clock = clock
    this.at = clock.now()
  }

  private refill (): void {
    const now = this.clock.now()
    this.tokens = Math.min(this.rate, this.tokens + (now - this.at) * this.rate / 1000)
    this.at = now
  }

  /** Take `bytes` of work (a negative amount gives back what was taken too much). */
  charge (bytes: number): void {
    if (bytes === 0 || this.rate === Infinity) return
    this.refill()
    this.tokens = Math.min(this.rate, this.tokens - bytes)
  }

  /** Bytes of work the bucket holds now (negative: its debt): for tests and monitoring. */
  get available (): number {
    if (this.rate === Infinity) return Infinity
    this.refill()
    return this.tokens
  }

  /** Milliseconds until the bucket is out of debt; 0 when it is not in debt. */
  wait (): number {
    if (this.rate === Infinity) return 0
    this.refill()
    return this.tokens >= 0 ? 0 : Math.ceil(-this.tokens * 1000 / this.rate)
  }
}

/** A zlib job waiting for its turn, or running. */
export interface OffLoopJob {
  /** Starts the work; calls `done` once, on a later turn, when it is over. Must not throw. */
  start: (done: () => void) => void
  /** Set by {@link cancelOffLoop}: a job not yet started never starts. */
  cancelled: boolean
}

const waiting = new Fifo<OffLoopJob>()
let running = false

/**
 * Run `job` on the thread pool after the jobs before it: one at a time in the process, so zlib
 * never takes more than one core (and never all of libuv's four threads) whatever the number of
 * connections, and each job's turn comes in order.
 */
export function runOffLoop (job: OffLoopJob): void {
  waiting.push(job)
  if (!running) next()
}

/** `job` is not wanted any more: if it has not started it never will (a running one finishes, unheeded). */
export function cancelOffLoop (job: OffLoopJob): void {
  job.cancelled = true
}

/** Jobs waiting for their turn (cancelled ones included until their turn), or running: for tests and monitoring. */
export function offLoopJobs (): number {
  return waiting.size + (running ? 1 : 0)
}

function next (): void {
  let job: OffLoopJob | undefined
  while ((job = waiting.shift()) !== undefined && job.cancelled);
  if (job === undefined) {
    running = false
    return
  }
  running = true
  job.start(next)
}
