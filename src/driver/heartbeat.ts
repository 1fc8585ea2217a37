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
  /** The handler took a message, or {@link Pulse.outputMoved}. */
  readonly moved: boolean
  /** The transport finished writing some of our output since a visit that found some still queued: the peer reads it. */
  readonly outputMoved: boolean
  /** A heartbeat ping is waiting for its pong. */
  readonly awaiting: boolean
  /** When a sign of life was last seen (ms). */
  readonly lastLife: number
}

/**
 * What to do at a visit: `alive` (schedule the next), `ping`, `wait` (paused, not yet stalled
 * long enough), `pending` (the ping's pong may be behind our own output, which moves: look
 * again after another timeout) or `drop`.
 */
export type Verdict = 'alive' | 'ping' | 'wait' | 'pending' | 'drop'

/**
 * The heartbeat's rule. Traffic proves the peer alive. While reading is paused no pong can
 * arrive, so no ping is sent; but with nothing read and nothing written for `interval +
 * timeout` the connection is dropped all the same: no state lives forever (DESIGN "Limits").
 * Otherwise an idle peer is pinged, and dropped if the pong does not come within `timeout`,
 * unless our output moved meanwhile (which it can only if the ping was queued behind it): a
 * slow reader of a long feed reads the ping, and answers it, only after what we queued before
 * it. The peer reading our bytes is life then; once they stop moving, the `timeout` ends it.
 */
export function judge (pulse: Pulse, now: number, interval: number, timeout: number): Verdict {
  if (pulse.seen) return 'alive'
  if (pulse.paused) {
    if (pulse.moved) return 'alive'
    return now - pulse.lastLife >= interval + timeout ? 'drop' : 'wait'
  }
  if (!pulse.awaiting) return 'ping'
  return pulse.outputMoved ? 'pending' : 'drop'
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

/** What the heartbeat needs from its connection. */
export interface HeartbeatOwner {
  /** Where the heartbeat's time comes from. */
  readonly clock: Clock
  /** The transport is gone. */
  readonly gone: boolean
  /** Messages the consumer of `source` took so far. */
  readonly taken: number
  /** Bytes of our output the transport finished writing, modulo 2^30 (only its changes count). */
  readonly outputWritten: number
  /** Bytes of our output not yet written (queued in the session or the transport). */
  readonly outputQueued: number
  /** We hold reading paused. */
  readonly readingPaused: boolean
  /** Queue a ping (none: the heartbeat's, empty) and flush. */
  sendPing: (payload?: Uint8Array) => void
  /** No sign of life in time: drop the connection (`stalled`: nothing moved while paused; else no pong). */
  drop: (stalled: boolean) => void
}

/** The heartbeat's settings (a server shares one object among its connections). */
export interface HeartbeatLimits {
  /** ms without traffic before a ping; 0: no heartbeat. */
  readonly heartbeatInterval: number
  /** ms for the pong (or, while paused, for anything to move) after that. */
  readonly heartbeatTimeout: number
}

/** {@link Heartbeat.heartbeatDue} of a connection the sweeper does not watch. */
const NOT_WATCHED = -1
/** `writtenAtVisit` when the last visit found nothing of ours queued: no write since counts. */
const NOTHING_QUEUED = -1

/** A ping of the user's, waiting for its pong. */
interface PingWaiter {
  readonly data: Uint8Array
  readonly sentAt: number
  readonly resolve: (rtt: number) => void
  readonly reject: (e: unknown) => void
}

/**
 * One connection's heartbeat (visited by the shared {@link HeartbeatSweeper}) and the pings its
 * user sent, which a pong settles with their round-trip time.
 */
export class Heartbeat implements HeartbeatSubject {
  private readonly owner: HeartbeatOwner
  /** `heartbeatInterval` (0: none) and `heartbeatTimeout`. */
  private readonly config: HeartbeatLimits
  /**
   * Times here are whole milliseconds (rounded up: a visit or a drop is never early), and
   * {@link NOT_WATCHED} stands for "never" rather than Infinity: a field that only ever holds
   * small integers is stored unboxed, a fractional one costs a 16-byte number per connection.
   */
  heartbeatDue = NOT_WATCHED
  /** A heartbeat ping is waiting for its pong. */
  private awaiting = false
  /** Bytes arrived since the last visit. */
  seen = false
  /** When life was last seen; what moved while paused, as of the last visit. */
  private lastLife = 0
  private takenAtVisit = 0
  private writtenAtVisit = NOTHING_QUEUED
  /** Heartbeat pings sent. */
  pings = 0
  private waiting: PingWaiter[] | undefined = undefined

  /** `heartbeatInterval` 0: no heartbeat (user pings still work). */
  constructor (owner: HeartbeatOwner, config: HeartbeatLimits) {
    this.owner = owner
    this.config = config
    const clock = owner.clock
    const interval = config.heartbeatInterval
    const timeout = config.heartbeatTimeout
    if (interval > 0) {
      const now = Math.ceil(clock.now())
      this.lastLife = now
      this.heartbeatDue = Math.ceil(now + interval)
      heartbeatSweeper(Math.min(interval, timeout), clock).add(this)
    }
  }

  /** Closing started or the connection is gone: no more visits. */
  stop (): void {
    const { heartbeatInterval: interval, heartbeatTimeout: timeout } = this.config
    if (interval > 0 && this.heartbeatDue !== NOT_WATCHED) {
      this.heartbeatDue = NOT_WATCHED
      heartbeatSweeper(Math.min(interval, timeout), this.owner.clock).delete(this)
    }
  }

  /** The sweeper's visit, once `heartbeatDue` has passed. */
  onHeartbeat (at: number): void {
    const now = Math.ceil(at)
    const owner = this.owner
    if (owner.gone) return
    const written = owner.outputWritten
    const taken = owner.taken
    const outputMoved = this.writtenAtVisit !== NOTHING_QUEUED && written !== this.writtenAtVisit
    const moved = outputMoved || taken !== this.takenAtVisit
    this.takenAtVisit = taken
    // The kernel takes our bytes while its buffers have room, whether or not the peer reads (a
    // hung peer's kernel still acknowledges them): writes finished count only after a visit
    // that found output of ours still queued, held back by a kernel that was full (and so a ping
    // sent at a visit that found none queued is excused by nothing: it waited behind nothing).
    this.writtenAtVisit = owner.outputQueued > 0 ? written : NOTHING_QUEUED
    const { heartbeatInterval: interval, heartbeatTimeout: timeout } = this.config
    const paused = owner.readingPaused
    const verdict = judge({ seen: this.seen, paused, moved, outputMoved, awaiting: this.awaiting, lastLife: this.lastLife }, now, interval, timeout)
    this.seen = false
    switch (verdict) {
      case 'alive':
        this.lastLife = now
        this.awaiting = false
        this.heartbeatDue = Math.ceil(now + interval)
        return
      case 'wait':
        this.heartbeatDue = Math.ceil(Math.min(now + interval, this.lastLife + interval + timeout))
        return
      case 'pending':
        this.lastLife = now
        this.heartbeatDue = Math.ceil(now + timeout)
        return
      case 'drop':
        owner.drop(paused)
        return
      case 'ping':
        this.awaiting = true
        this.pings++
        owner.sendPing()
        // The ping's own bytes going out are no sign of the peer (nor the queue they may make on a
        // transport that finishes writes later, TLS: what the visit found before the ping stands).
        if (this.writtenAtVisit !== NOTHING_QUEUED) this.writtenAtVisit = owner.outputWritten
        this.heartbeatDue = Math.ceil(now + timeout)
    }
  }

  /** Send the user's ping (`data`, a copy it keeps): resolves with the round-trip time when a pong answers it. */
  ping (data: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      this.owner.sendPing(data)
      ;(this.waiting ??= []).push({ data, sentAt: this.owner.clock.now(), resolve, reject })
    })
  }

  /** A pong arrived. */
  onPong (data: Uint8Array): void {
    if (this.awaiting) {
      // Answered: the next ping is due `interval` from now, not after the pong timeout.
      this.awaiting = false
      this.seen = false
      const now = Math.ceil(this.owner.clock.now())
      this.lastLife = now
      this.heartbeatDue = Math.ceil(now + this.config.heartbeatInterval)
    }
    // §5.5.3: a pong echoes its ping's payload, and a peer may answer only the latest ping: the
    // pong settles the ping it echoes and every earlier one.
    const waiting = this.waiting
    if (waiting === undefined) return
    for (let i = 0; i < waiting.length; i++) {
      if (!equalBytes(waiting[i].data, data)) continue
      const answered = waiting.splice(0, i + 1)
      const now = this.owner.clock.now()
      for (const p of answered) p.resolve(now - p.sentAt)
      return
    }
  }

  /** The connection closed: the pings still waiting reject with `error`. */
  rejectPings (error: (() => unknown)): void {
    const waiting = this.waiting ?? []
    this.waiting = undefined
    for (const p of waiting) p.reject(error())
  }
}

function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
