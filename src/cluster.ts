/**
 * {@link serveCluster}: one server process per core with `node:cluster`, and a graceful rolling
 * restart. The workers share one listening port (the primary hands out connections); topics in
 * one worker reach the others only through an adapter (e.g. {@link RedisAdapter}).
 *
 * @packageDocumentation
 */

import cluster, { type Worker } from 'node:cluster'
import type { AddressInfo } from 'node:net'
import { availableParallelism } from 'node:os'

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

/** Messages between the primary and a worker. */
type ToPrimary = { wspipe: 'starting' } | { wspipe: 'ready', address: AddressInfo | undefined }
type ToWorker = { wspipe: 'stop' }

/**
 * Run `start` in `workers` worker processes. In the primary, resolves once every worker serves,
 * with a {@link ClusterPrimary} (if one cannot start, the others are stopped and this rejects);
 * in a worker, runs `start` and resolves with undefined (the
 * worker then lives until it is asked to stop). Call it from the program's main module, which
 * `node:cluster` runs again in each worker.
 *
 * @example
 * ```ts
 * import { serveCluster, WebSocketServer } from 'wspipe'
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
  const stop = (): void => {
    // Asked to stop while `start` runs (it may never finish): it has not served, so it just exits.
    if (server === undefined) process.exit(0)
    stopping ??= server.close().then(() => { process.exit(0) }, (err: unknown) => {
      console.error('wspipe cluster: closing the worker failed', err)
      process.exit(1)
    })
  }
  process.on('message', (message: ToWorker) => { if (message?.wspipe === 'stop') stop() })
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
  const respawn = options.respawn ?? true
  const { delay, maxDelay, resetAfter } = { ...DEFAULT_RESPAWN, ...(typeof respawn === 'object' ? respawn : {}) }
  for (const [name, ms] of Object.entries({ delay, maxDelay, resetAfter })) {
    if (!(ms >= 0) || ms === Infinity) throw new RangeError(`respawn.${name} must be a finite number of ms`)
  }
  /** Workers serving, in the order they started. */
  const serving: Worker[] = []
  /** Workers asked to stop: their exit is expected. */
  const stopping = new Set<Worker>()
  /**
   * Workers forked and not yet serving (first start, restart, replacement): whether they hear a
   * stop message yet, and their start, which close() waits for.
   */
  const starting = new Map<Worker, { listening: boolean, ready?: Promise<void> }>()
  /** Replacements waiting for their pause: close() cancels them. */
  const respawnTimers = new Set<NodeJS.Timeout>()
  let address: AddressInfo | undefined
  let closing = false

  /**
   * Fork a worker; resolves once it serves, rejects if it exits first. `pause` is what its
   * replacement, should it exit before `resetAfter`, waits twice of (0 for a first worker).
   */
  const fork = async (pause = 0): Promise<Worker> => {
    const worker = cluster.fork()
    const entry: { listening: boolean, ready?: Promise<void> } = { listening: false }
    entry.ready = new Promise<void>((resolve, reject) => {
      const onMessage = (message: ToPrimary): void => {
        if (message?.wspipe === 'starting') {
          entry.listening = true
          // Closing already: a worker still starting is not waited for.
          if (closing) worker.send({ wspipe: 'stop' } satisfies ToWorker)
          return
        }
        if (message?.wspipe !== 'ready') return
        address ??= message.address
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
    starting.set(worker, entry)
    try {
      await entry.ready
    } finally {
      starting.delete(worker)
    }
    serving.push(worker)
    const servedAt = performance.now()
    worker.once('exit', (code: number | null, signal: string | null) => {
      const i = serving.indexOf(worker)
      if (i >= 0) serving.splice(i, 1)
      if (stopping.delete(worker) || closing || respawn === false) return
      // A crash loop backs off as failed starts do; a worker that stayed up starts it afresh.
      const next = performance.now() - servedAt >= resetAfter ? delay : Math.min(Math.max(pause * 2, delay), maxDelay)
      console.error(`wspipe cluster: worker ${String(worker.process.pid)} exited (${String(signal ?? code)}) unasked; replacing it in ${Math.round(next)} ms`)
      replace(next)
    })
    return worker
  }

  /**
   * A worker exited unasked: fork a replacement after `pause` (so a crash loop does not spin);
   * one that cannot start is tried again, the pause doubling up to `maxDelay`.
   */
  const replace = (pause: number): void => {
    // Not unref'd: with every worker gone, this timer is what keeps the primary alive.
    const timer = setTimeout(() => {
      respawnTimers.delete(timer)
      if (closing) return
      fork(pause).catch((err: unknown) => {
        const next = Math.min(Math.max(pause * 2, delay), maxDelay)
        console.error(`wspipe cluster: a replacement worker could not start; trying again in ${Math.round(next)} ms`, err)
        if (!closing) replace(next)
      })
    }, pause)
    respawnTimers.add(timer)
  }

  /** Ask `worker` to close gracefully; resolves when it has exited. */
  const stop = async (worker: Worker): Promise<void> => {
    if (worker.isDead()) return
    stopping.add(worker)
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
    worker.send({ wspipe: 'stop' } satisfies ToWorker)
    await exited
  }

  let restarting: Promise<void> | undefined
  const restart = async (): Promise<void> => {
    for (const old of [...serving]) {
      if (closing) return
      await fork()
      await stop(old)
    }
  }

  const close = async (): Promise<void> => {
    closing = true
    for (const timer of respawnTimers) clearTimeout(timer)
    respawnTimers.clear()
    // Workers still starting (a restart's, a replacement's; their `start` may never finish) are
    // asked to stop, or will be once they listen; one that hangs before that is killed after
    // 10 s. One that served meanwhile is in `serving` and stopped with the others. A failed
    // restart is its caller's error, not close()'s.
    for (const [worker, { listening }] of starting) if (listening) worker.send({ wspipe: 'stop' } satisfies ToWorker)
    const kill = setTimeout(() => { for (const worker of starting.keys()) worker.process.kill('SIGKILL') }, 10_000)
    while (starting.size > 0) await Promise.allSettled([...starting.values()].map((e) => e.ready))
    clearTimeout(kill)
    await Promise.all([...serving].map(stop))
  }

  const first = await Promise.allSettled(Array.from({ length: count }, () => fork()))
  const failed = first.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed !== undefined) {
    // No handle reaches the caller: the workers that did start are stopped here.
    await close()
    throw failed.reason
  }

  if (options.signals ?? true) {
    process.on('SIGHUP', () => {
      restarting ??= restart().catch((err: unknown) => { console.error('wspipe cluster: rolling restart failed', err) }).finally(() => { restarting = undefined })
    })
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.on(signal, () => { void close().then(() => process.exit(0)) })
    }
  }

  return {
    get address () { return address },
    get pids () { return serving.map((w) => w.process.pid!).filter((pid) => pid !== undefined) },
    restart: () => (restarting ??= restart().finally(() => { restarting = undefined })),
    close
  }
}
