/**
 * serveCluster's primary timers on the `clock` option, in virtual time: the respawn pauses (and
 * the back-off's "served long enough", read from the clock) and close()'s kill of a worker that
 * hangs while starting. node:cluster's fork is replaced by fake workers in this process, so no
 * process is forked; each rule is checked at its exact time (nothing 1 ms before, done at it).
 */
import cluster, { type Worker } from 'node:cluster'
import { EventEmitter } from 'node:events'
import test, { type ExecutionContext } from 'ava'
import { serveCluster } from '../../src/cluster.js'
import { VirtualClock } from '../../src/testing.js'

/** A worker as the primary sees it: messages, exit, send, kill. */
class FakeWorker extends EventEmitter {
  static pids = 1000
  readonly kills: string[] = []
  dead = false
  readonly process = {
    pid: FakeWorker.pids++,
    kill: (signal: string): void => {
      this.kills.push(signal)
      this.exit(null, signal)
    }
  }

  /** `hang`: it never reports that it serves. */
  constructor (hang: boolean) {
    super()
    setImmediate(() => {
      this.emit('message', { wspipe: 'starting' })
      if (!hang) this.emit('message', { wspipe: 'ready', address: undefined })
    })
  }

  send (message: { wspipe: string }): boolean {
    if (message.wspipe === 'stop') setImmediate(() => { this.exit(0, null) })
    return true
  }

  isDead (): boolean {
    return this.dead
  }

  exit (code: number | null, signal: string | null): void {
    if (this.dead) return
    this.dead = true
    this.emit('exit', code, signal)
  }
}

/** Replace cluster.fork (and quiet the primary's stderr lines) for one test. */
function fakeCluster (t: ExecutionContext, hang: (n: number) => boolean = () => false): FakeWorker[] {
  const forks: FakeWorker[] = []
  const fork = cluster.fork
  const error = console.error
  cluster.fork = (() => {
    const worker = new FakeWorker(hang(forks.length))
    forks.push(worker)
    return worker as unknown as Worker
  }) as typeof cluster.fork
  console.error = () => {}
  t.teardown(() => {
    cluster.fork = fork
    console.error = error
  })
  return forks
}

const turns = async (n = 5): Promise<void> => { for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve)) }

test.serial('a worker that exits unasked is replaced after the pause on the clock; the pause doubles for a crash loop and starts afresh after resetAfter', async (t) => {
  const forks = fakeCluster(t)
  const clock = new VirtualClock()
  const primary = (await serveCluster({ workers: 1, start: () => ({ close: async () => {} }), respawn: { delay: 500, maxDelay: 4000, resetAfter: 30_000 }, signals: false, clock }))!
  t.is(forks.length, 1)
  forks[0].exit(1, null)
  await clock.advance(499)
  t.is(forks.length, 1, 'not replaced at pause - 1')
  await clock.advance(1)
  t.is(forks.length, 2, 'replaced at the pause')
  await turns()
  t.is(primary.pids.length, 1)
  // It crashes at once: the next pause is twice the last.
  forks[1].exit(1, null)
  await clock.advance(999)
  t.is(forks.length, 2, 'not replaced at 2 × pause - 1')
  await clock.advance(1)
  t.is(forks.length, 3)
  await turns()
  // It serves resetAfter (virtual), then exits: back to the first pause.
  await clock.advance(30_000)
  forks[2].exit(1, null)
  await clock.advance(499)
  t.is(forks.length, 3)
  await clock.advance(1)
  t.is(forks.length, 4, 'a worker that served resetAfter is replaced after delay again')
  await turns()
  await primary.close()
  t.is(clock.pending, 0)
})

test.serial('close() kills a worker that hangs while starting, 10 s after it is asked (on the clock), and not before', async (t) => {
  // The first worker serves; its replacement hangs before it hears stop messages.
  const forks = fakeCluster(t, (n) => n === 1)
  const clock = new VirtualClock()
  const primary = (await serveCluster({ workers: 1, start: () => ({ close: async () => {} }), respawn: { delay: 100 }, signals: false, clock }))!
  forks[0].exit(1, null)
  await clock.advance(100)
  t.is(forks.length, 2)
  // Hung after 'starting' with no 'ready': close() asks it to stop; the fake hangs even so.
  forks[1].send = () => true
  let closed = false
  const closing = primary.close().then(() => { closed = true })
  await clock.advance(9999)
  t.deepEqual(forks[1].kills, [], 'not killed at 10 s - 1')
  t.false(closed)
  await clock.advance(1)
  t.deepEqual(forks[1].kills, ['SIGKILL'])
  await closing
  t.true(closed)
  t.is(forks.length, 2, 'no replacement after close')
})

test.serial('close() cancels a replacement waiting for its pause', async (t) => {
  const forks = fakeCluster(t)
  const clock = new VirtualClock()
  const primary = (await serveCluster({ workers: 2, start: () => ({ close: async () => {} }), respawn: { delay: 500 }, signals: false, clock }))!
  forks[0].exit(1, null)
  t.is(clock.pending, 1)
  await primary.close()
  t.is(clock.pending, 0)
  await clock.advance(1000)
  t.is(forks.length, 2)
})
