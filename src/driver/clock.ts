/**
 * Time, as the driver and the server see it: every timer of a connection (close timeout, reply
 * grace, heartbeat, zlib budget waits, the paused-connection drop), of a server (handshake
 * timeout, a refused socket's linger, `close()`'s timeouts, HTTP/2 session timers) and of a
 * client (handshake timeout, an idle HTTP/2 session), and the time they read (a TLS handshake's
 * length, the zlib budgets' refill), goes through a {@link Clock}. The {@link systemClock} is
 * Node's; tests pass the `VirtualClock` of `wspipe/testing` and move time by hand.
 *
 * @packageDocumentation
 */

/** A timer a {@link Clock} made: only ever given back to the same clock. */
export type ClockTimer = unknown

/**
 * A source of time and timers. Callbacks take one argument, given when the timer is set, so a
 * timer needs no closure.
 */
export interface Clock {
  /** Milliseconds from an arbitrary origin; never goes back. */
  now: () => number
  /** Call `callback(arg)` once, `ms` from now. */
  setTimeout: <A>(callback: (arg: A) => void, ms: number, arg: A) => ClockTimer
  /** Cancel a timer `setTimeout` returned (a fired or cancelled one is ignored). */
  clearTimeout: (timer: ClockTimer) => void
  /** Call `callback(arg)` every `ms`, without keeping the process alive for it (the heartbeat's sweep). */
  setInterval: <A>(callback: (arg: A) => void, ms: number, arg: A) => ClockTimer
  /** Cancel a timer `setInterval` returned. */
  clearInterval: (timer: ClockTimer) => void
}

/** The longest delay Node's timers take: a longer one, `Infinity` included, fires after 1 ms. */
const LONGEST_DELAY = 2 ** 31 - 1

/**
 * Node's own clock: `performance.now()` and the global timers. A timeout of `Infinity` sets no
 * timer (it never fires, as on a `VirtualClock`), and a longer delay than Node takes waits that longest one.
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (callback, ms, arg) => ms === Infinity ? undefined : setTimeout(callback, Math.min(ms, LONGEST_DELAY), arg),
  clearTimeout: (timer) => { clearTimeout(timer as NodeJS.Timeout | undefined) },
  setInterval: (callback, ms, arg) => setInterval(callback, Math.min(ms, LONGEST_DELAY), arg).unref(),
  clearInterval: (timer) => { clearInterval(timer as NodeJS.Timeout) }
}
