/**
 * `wspipe/cluster`: {@link serveCluster}, one server process per core with `node:cluster`, and a
 * graceful rolling restart. The workers share one listening port (the primary hands out
 * connections); topics in one worker reach the others only through an adapter (e.g.
 * `RedisAdapter` of `wspipe/redis`).
 *
 * @module wspipe/cluster
 */

import cluster, { type Worker } from 'node:cluster'
import type { AddressInfo } from 'node:net'
import { availableParallelism } from 'node:os'
import { systemClock, type Clock, type ClockTimer } from './driver/clock.js'

/** What `start` returns in each worker: something to close gracefully, e.g. a `WebSocketServer`. */
export interface ClusterServer {
  /** Stop accepting and close every connection (a `WebSocketServer` sends 1001 and drains). */
  close: () => Promise<void>
  /** Where it listens, reported to the primary (a `WebSocketServer` that called `listen` has it). */
  address?: () => AddressInfo | undefined | null
}

/** How {@link serveCluster} replaces workers that exit unasked (all in ms). */
export interface RespawnOptions {
  /** The pause before a first replacement. Default 500. */
  delay?: number
  /** The longest pause: each replacement that cannot start, or that exits before `resetAfter`, doubles it up to this. Default 30,000. */
  maxDelay?: number
  /** A worker that has served this long before exiting is replaced after `delay` again. Default 30,000. */
  resetAfter?: number
}

/** Defaults of {@link RespawnOptions}. */
export const DEFAULT_RESPAWN = {
  /** {@link RespawnOptions.delay}: half a second. */
  delay: 500,
  /** {@link RespawnOptions.maxDelay}: 30 s. */
  maxDelay: 30_000,
  /** {@link RespawnOptions.resetAfter}: 30 s. */
  resetAfter: 30_000
} as const

/** Options of {@link serveCluster}. */
export interface ClusterOptions {
  /** Worker processes. Default: `os.availableParallelism()`, one per core. */
  workers?: number
  /** Runs in each worker: make the server and listen (all workers may listen on the same port). */
  start: () => ClusterServer | Promise<ClusterServer>
  /**
   * Start a new worker when one exits without being asked to, after 0.5 s. Default true. A
   * replacement that cannot start is tried again, and one that exits again before it has served
   * 30 s is replaced again, the pause doubling each time up to 30 s, so a crash loop does not
   * spin; a worker that served 30 s is replaced after 0.5 s again. Options change those times.
   */
  respawn?: boolean | RespawnOptions
  /**
   * The primary handles signals: SIGHUP starts a rolling restart, SIGTERM or SIGINT a shutdown
   * after which it exits 0. Default true; false leaves them to the caller (use the returned
   * {@link ClusterPrimary}). A worker always closes gracefully on SIGTERM or SIGINT (Ctrl-C
   * reaches every process of the group) and ignores SIGHUP (a hangup reaches the whole group
   * too): replacing workers is the primary's rolling restart.
   */
  signals?: boolean
  /**
   * Where the primary's timers run: the respawn pauses, how long a worker served, and close()'s
   * 10 s wait before it kills a worker that hangs while starting. Default: Node's timers. Tests
   * pass `VirtualClock` from `wspipe/testing`.
   */
  clock?: Clock
}

/** The primary's handle on its workers. */
export interface ClusterPrimary {
  /** Where the workers listen, as the first of them reported it. */
  readonly address: AddressInfo | undefined
  /** The process ids of the workers serving now. */
  readonly pids: number[]
  /**
   * Replace the workers one at a time: start a new one, wait until it serves, then ask the old
   * one to close (its server sends 1001 to each connection and drains) and wait for it to exit.
   * Serving never stops. Resolves when every worker is new; rejects if a new worker cannot start
   * (the old ones not yet replaced keep serving).
   */
  restart: () => Promise<void>
  /**
   * Ask every worker to close gracefully and wait for them all to exit, including workers still
   * starting (a restart's, a replacement's). Never rejects.
   */
  close: () => Promise<void>
}

/** close() kills a worker still starting after this long (ms): its `start` may never finish. */
const KILL_AFTER = 10_000

/** Messages between the primary and a worker. */
type ToPrimary = { wspipe: 'starting' } | { wspipe: 'ready', address: AddressInfo | undefined } | { wspipe: 'closed' } | { wspipe: 'exiting' }
type ToWorker = { wspipe: 'stop' } | { wspipe: 'exit' }

/** A closed worker whose primary does not answer its 'closed' (a stuck primary) exits after this long (ms). */
const EXIT_WAIT = 5000

/**
 * Run `start` in `workers` worker processes. In the primary, resolves once every worker serves,
 * with a {@link ClusterPrimary} (if one cannot start, the others are stopped and this rejects);
 * in a worker, runs `start` and resolves with undefined (the
 * worker then lives until it is asked to stop). Call it from the program's main module, which
 * `node:cluster` runs again in each worker.
 *
 * @example
 * ```ts
 * import { WebSocketServer } from 'wspipe'
 * import { serveCluster } from 'wspipe/cluster'
 *
 * await serveCluster({
 *   start: async () => {
 *     const server = new WebSocketServer().register('echo', ({ source, sink }) => sink(source))
 *     await server.listen({ port: 8080 })
 *     return server
 *   }
 * })
 * ```
 */
export async function serveCluster (options: ClusterOptions): Promise<ClusterPrimary | undefined> {
  if (cluster.isPrimary) return await runPrimary(options)
  await runWorker(options)
  return undefined
}

async function runWorker (options: ClusterOptions): Promise<void> {
  let server: ClusterServer | undefined = undefined
  let stopping: Promise<void> | undefined
  let exitCode = 0
  const stop = (): void => {
    // Asked to stop while `start` runs (it may never finish): it has not served, so it exits
    // once the primary answers (hand-offs still on their way are then refused back). A
    // connection its server, if `start` had begun to listen, already accepted ends with it.
    if (server === undefined) return leave()
    stopping ??= server.close().then(leave, (err: unknown) => {
      console.error('wspipe cluster: closing the worker failed', err)
      exitCode = 1
      leave()
    })
  }
  // The primary hands each connection over in an IPC message and keeps its socket until the
  // worker answers (node:cluster's round robin); one still on its way when the worker exits is
  // never answered and its client is left hanging. So a closed worker tells the primary and exits
  // on its reply: IPC is ordered, so every hand-off sent before it has reached this process, and
  // been refused (the server is closed), by then.
  let leaving = false
  const leave = (): void => {
    if (leaving) return
    leaving = true
    if (process.send === undefined || !process.connected) process.exit(exitCode)
    process.send({ wspipe: 'closed' } satisfies ToPrimary)
    setTimeout(() => process.exit(exitCode), EXIT_WAIT).unref()
    process.once('disconnect', () => process.exit(exitCode))
  }
  process.on('message', (message: ToWorker) => {
    if (message?.wspipe === 'stop') stop()
    // Exits once that last message is written: the refusals written before it are then sent too.
    else if (message?.wspipe === 'exit') process.send!({ wspipe: 'exiting' } satisfies ToPrimary, undefined, undefined, () => process.exit(exitCode))
  })
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, stop)
  // SIGHUP sent to the process group (a closed terminal, `kill -HUP -pgid`) would kill the worker
  // with no 1001: the primary hears it too and replaces the workers gracefully.
  process.on('SIGHUP', () => {})
  // From here a stop message is heard: the primary may send one.
  process.send?.({ wspipe: 'starting' } satisfies ToPrimary)
  server = await options.start()
  const address = server.address?.() ?? undefined
  process.send?.({ wspipe: 'ready', address } satisfies ToPrimary)
}

async function runPrimary (options: ClusterOptions): Promise<ClusterPrimary> {
  const count = options.workers ?? availableParallelism()
  if (!Number.isInteger(count) || count < 1) throw new RangeError('workers must be a positive integer')
  const pool = new WorkerPool(respawnPolicy(options.respawn ?? true), options.clock ?? systemClock)
  const first = await Promise.allSettled(Array.from({ length: count }, () => pool.fork()))
  const failed = first.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed !== undefined) {
    // No handle reaches the caller: the workers that did start are stopped here.
    await pool.close()
    throw failed.reason
  }
  if (options.signals ?? true) {
    process.on('SIGHUP', () => {
      pool.restart().catch((err: unknown) => { console.error('wspipe cluster: rolling restart failed', err) })
    })
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.on(signal, () => { void pool.close().then(() => process.exit(0)) })
    }
  }
  return {
    get address () { return pool.address },
    get pids () { return pool.serving.map((w) => w.process.pid!).filter((pid) => pid !== undefined) },
    restart: () => pool.restart(),
    close: () => pool.close()
  }
}

/** The respawn option checked and with its defaults; undefined for `respawn: false`. */
function respawnPolicy (respawn: boolean | RespawnOptions): Required<RespawnOptions> | undefined {
  const { delay, maxDelay, resetAfter } = { ...DEFAULT_RESPAWN, ...(typeof respawn === 'object' ? respawn : {}) }
  for (const [name, ms] of Object.entries({ delay, maxDelay, resetAfter })) {
    if (!(ms >= 0) || ms === Infinity) throw new RangeError(`respawn.${name} must be a finite number of ms`)
  }
  return respawn === false ? undefined : { delay, maxDelay, resetAfter }
}

/** A worker forked and not yet serving: whether it hears a stop message yet, and its start. */
interface Starting {
  listening: boolean
  ready?: Promise<void>
}

/** The primary's workers: forking, replacing those that exit unasked, rolling restart, close. */
class WorkerPool {
  /** Workers serving, in the order they started. */
  readonly serving: Worker[] = []
  /** Where the workers listen, as the first of them reported it. */
  address: AddressInfo | undefined
  /** Workers asked to stop: their exit is expected. */
  private readonly stopping = new Set<Worker>()
  /** Workers forked and not yet serving (first start, restart, replacement): close() waits for them. */
  private readonly starting = new Map<Worker, Starting>()
  /** Replacements waiting for their pause: close() cancels them. */
  private readonly respawnTimers = new Set<ClockTimer>()
  private closing = false
  private restarting: Promise<void> | undefined

  constructor (private readonly respawn: Required<RespawnOptions> | undefined, private readonly clock: Clock) {}

  /**
   * Fork a worker; resolves once it serves, rejects if it exits first. `pause` is what its
   * replacement, should it exit before `resetAfter`, waits twice of (0 for a first worker).
   */
  async fork (pause = 0): Promise<Worker> {
    const worker = cluster.fork()
    // A worker that closed asks before it exits (see runWorker).
    worker.on('message', (message: ToPrimary) => { if (message?.wspipe === 'closed' && worker.isConnected()) worker.send({ wspipe: 'exit' } satisfies ToWorker) })
    const entry: Starting = { listening: false }
    entry.ready = this.started(worker, entry)
    this.starting.set(worker, entry)
    try {
      await entry.ready
    } finally {
      this.starting.delete(worker)
    }
    this.serving.push(worker)
    this.watch(worker, pause)
    return worker
  }

  /** Resolves when `worker` reports it serves, rejects if it exits first; marks it listening once it hears stop messages. */
  private started (worker: Worker, entry: Starting): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onMessage = (message: ToPrimary): void => {
        if (message?.wspipe === 'starting') {
          entry.listening = true
          // Closing already: a worker still starting is not waited for.
          if (this.closing) worker.send({ wspipe: 'stop' } satisfies ToWorker)
          return
        }
        if (message?.wspipe !== 'ready') return
        this.address ??= message.address
        worker.off('exit', onEarlyExit)
        worker.off('message', onMessage)
        resolve()
      }
      const onEarlyExit = (code: number | null): void => {
        worker.off('message', onMessage)
        reject(new Error(`a worker exited with ${String(code)} before it served`))
      }
      worker.on('message', onMessage)
      worker.once('exit', onEarlyExit)
    })
  }

  /** When a serving `worker` exits unasked, replace it (a crash loop backs off as failed starts do). */
  private watch (worker: Worker, pause: number): void {
    const servedAt = this.clock.now()
    worker.once('exit', (code: number | null, signal: string | null) => {
      const i = this.serving.indexOf(worker)
      if (i >= 0) this.serving.splice(i, 1)
      if (this.stopping.delete(worker) || this.closing || this.respawn === undefined) return
      const { delay, maxDelay, resetAfter } = this.respawn
      // A worker that stayed up starts the back-off afresh.
      const next = this.clock.now() - servedAt >= resetAfter ? delay : Math.min(Math.max(pause * 2, delay), maxDelay)
      console.error(`wspipe cluster: worker ${String(worker.process.pid)} exited (${String(signal ?? code)}) unasked; replacing it in ${Math.round(next)} ms`)
      this.replace(next)
    })
  }

  /**
   * A worker exited unasked: fork a replacement after `pause` (so a crash loop does not spin);
   * one that cannot start is tried again, the pause doubling up to `maxDelay`.
   */
  private replace (pause: number): void {
    // Not unref'd (the system clock's setTimeout is not): with every worker gone, this timer is
    // what keeps the primary alive.
    const timer = this.clock.setTimeout(() => {
      this.respawnTimers.delete(timer)
      if (this.closing) return
      this.fork(pause).catch((err: unknown) => {
        const { delay, maxDelay } = this.respawn!
        const next = Math.min(Math.max(pause * 2, delay), maxDelay)
        console.error(`wspipe cluster: a replacement worker could not start; trying again in ${Math.round(next)} ms`, err)
        if (!this.closing) this.replace(next)
      })
    }, pause, undefined)
    this.respawnTimers.add(timer)
  }

  /** Ask `worker` to close gracefully; resolves when it has exited. */
  async stop (worker: Worker): Promise<void> {
    if (worker.isDead()) return
    this.stopping.add(worker)
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
    worker.send({ wspipe: 'stop' } satisfies ToWorker)
    await exited
  }

  /** {@link ClusterPrimary.restart}: one at a time, a restart already running is the one returned. */
  restart (): Promise<void> {
    this.restarting ??= this.replaceAll().finally(() => { this.restarting = undefined })
    return this.restarting
  }

  private async replaceAll (): Promise<void> {
    for (const old of [...this.serving]) {
      if (this.closing) return
      await this.fork()
      await this.stop(old)
    }
  }

  /** {@link ClusterPrimary.close}. */
  async close (): Promise<void> {
    this.closing = true
    for (const timer of this.respawnTimers) this.clock.clearTimeout(timer)
    this.respawnTimers.clear()
    // Workers still starting (a restart's, a replacement's; their `start` may never finish) are
    // asked to stop, or will be once they listen; one that hangs before that is killed after
    // 10 s. One that served meanwhile is in `serving` and stopped with the others. A failed
    // restart is its caller's error, not close()'s.
    for (const [worker, { listening }] of this.starting) if (listening) worker.send({ wspipe: 'stop' } satisfies ToWorker)
    const kill = this.clock.setTimeout(() => { for (const worker of this.starting.keys()) worker.process.kill('SIGKILL') }, KILL_AFTER, undefined)
    while (this.starting.size > 0) await Promise.allSettled([...this.starting.values()].map((e) => e.ready))
    this.clock.clearTimeout(kill)
    await Promise.all([...this.serving].map((w) => this.stop(w)))
  }
}
