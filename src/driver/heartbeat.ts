/**
 * Heartbeats: the rule that ends a connection nobody hears from, and one shared timer per
 * granularity that visits connections when they are due (idle connections cost no timer).
 *
 * @packageDocumentation
 */

/** What a visit knows about a connection since the previous one. */
export interface Pulse {
  /** Bytes arrived from the peer. */
  readonly seen: boolean
  /** We hold reading paused (the handler is not reading, or the peer is not reading our output): its pongs cannot arrive. */
  readonly paused: boolean
  /** While paused: the handler took a message or the socket wrote some output. */
  readonly moved: boolean
  /** A heartbeat ping is waiting for its pong. */
  readonly awaiting: boolean
  /** When a sign of life was last seen (ms). */
  readonly lastLife: number
}

/** What to do at a visit: `alive` (schedule the next), `ping`, `wait` (paused, not yet stalled long enough) or `drop`. */
export type Verdict = 'alive' | 'ping' | 'wait' | 'drop'

/**
 * The heartbeat's rule. Traffic proves the peer alive. While reading is paused no pong can
 * arrive, so no ping is sent; but with nothing read and nothing written for `interval +
 * timeout` the connection is dropped all the same: no state lives forever (DESIGN "Limits").
 * Otherwise an idle peer is pinged, and dropped if the pong does not come within `timeout`.
 */
export function judge (pulse: Pulse, now: number, interval: number, timeout: number): Verdict {
  if (pulse.seen) return 'alive'
  if (pulse.paused) {
    if (pulse.moved) return 'alive'
    return now - pulse.lastLife >= interval + timeout ? 'drop' : 'wait'
  }
  return pulse.awaiting ? 'drop' : 'ping'
}

import { systemClock, type Clock, type ClockTimer } from './clock.js'

/** A connection the sweeper visits. */
export interface HeartbeatSubject {
  /** When the sweeper next looks at it (ms, on the sweeper's clock); Infinity: never. */
  heartbeatDue: number
  onHeartbeat: (now: number) => void
}

/**
 * One timer for the heartbeats of every connection with the same granularity, instead of a
 * timer per connection.
 */
export class HeartbeatSweeper {
  private readonly subjects = new Set<HeartbeatSubject>()
  private timer: ClockTimer | undefined
  private readonly tick: number
  private readonly clock: Clock

  constructor (tick: number, clock: Clock = systemClock) {
    this.tick = tick
    this.clock = clock
  }

  /** Connections watched now. */
  get size (): number {
    return this.subjects.size
  }

  add (subject: HeartbeatSubject): void {
    this.subjects.add(subject)
    if (this.timer === undefined) {
      this.timer = this.clock.setInterval(sweep, this.tick, this)
    }
  }

  delete (subject: HeartbeatSubject): void {
    this.subjects.delete(subject)
    if (this.subjects.size === 0 && this.timer !== undefined) {
      this.clock.clearInterval(this.timer)
      this.timer = undefined
    }
  }

  /** Visit every connection that is due. */
  sweep (): void {
    const now = this.clock.now()
    for (const subject of this.subjects) if (now >= subject.heartbeatDue) subject.onHeartbeat(now)
  }
}

/** Sweepers by clock, then by tick. */
const sweepers = new WeakMap<Clock, Map<number, HeartbeatSweeper>>()

/** The sweeper on `clock` for heartbeats whose shortest period is `period` ms: it looks 4 times per period. */
export function heartbeatSweeper (period: number, clock: Clock): HeartbeatSweeper {
  const tick = Math.max(5, Math.floor(period / 4))
  let byTick = sweepers.get(clock)
  if (byTick === undefined) sweepers.set(clock, byTick = new Map())
  let sweeper = byTick.get(tick)
  if (sweeper === undefined) {
    sweeper = new HeartbeatSweeper(tick, clock)
    byTick.set(tick, sweeper)
  }
  return sweeper
}

function sweep (sweeper: HeartbeatSweeper): void { sweeper.sweep() }
