// RedisAdapter's connectTimeout on the `clock` option: the timeout is checked at its exact time
// in virtual time. Redis is a silent TCP port on 127.0.0.1 (accepts, never answers).
import test from 'ava'
import { RedisAdapter } from '../../src/topics/redis.js'
import { VirtualClock } from '../../src/testing.js'
import { SilentPort } from './redis-server.js'

const CONNECT_TIMEOUT = 60_000

/**
 * Wait (bounded) until `check` holds, real turns of the event loop apart: 3000 turns, 30 s or
 * more. What it waits for first, connect() loading `redis` through the test's TypeScript loader,
 * took seconds on a busy machine.
 */
async function until (check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (check()) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`timed out waiting for ${what}`)
}

test('connectTimeout runs on the clock: nothing at t - 1; at t connect rejects and lets go of its connections', async (t) => {
  const silent = await SilentPort.start()
  try {
    const clock = new VirtualClock()
    let outcome: unknown
    const attempt = RedisAdapter.connect({ url: silent.url, connectTimeout: CONNECT_TIMEOUT, clock }).then(
      (adapter) => { outcome = adapter },
      (err: unknown) => { outcome = err })
    // The timer is set once the `redis` package is loaded and both connections are started.
    await until(() => clock.pending === 1 && silent.accepted > 0, 'the connect timer and a connection')
    await clock.advance(CONNECT_TIMEOUT - 1)
    t.is(outcome, undefined, 'still connecting at t - 1')
    await clock.advance(1)
    await attempt
    t.true(outcome instanceof Error)
    t.regex((outcome as Error).message, /did not answer within 60000 ms/)
    t.is(clock.pending, 0)
    await until(() => silent.open === 0, 'the adapter to close its connections')
  } finally {
    await silent.stop()
  }
})

test('connect settled first (a signal): the connectTimeout timer is cleared from the clock', async (t) => {
  const silent = await SilentPort.start()
  try {
    const clock = new VirtualClock()
    const controller = new AbortController()
    const attempt = RedisAdapter.connect({ url: silent.url, connectTimeout: CONNECT_TIMEOUT, clock, signal: controller.signal })
    await until(() => clock.pending === 1, 'the connect timer')
    const reason = new Error('stop')
    controller.abort(reason)
    await t.throwsAsync(attempt, { is: reason })
    t.is(clock.pending, 0)
  } finally {
    await silent.stop()
  }
})
