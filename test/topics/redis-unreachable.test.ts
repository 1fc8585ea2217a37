/**
 * An unreachable Redis is never silent: `RedisAdapter.connect` without `connectTimeout` waits for
 * it (by design), and without a logger it said nothing while it did, so a newcomer whose Redis
 * was not running saw a program that hung. Now the first failed attempt of each outage is
 * logged at `error` (to stderr by default), saying what to do; each further attempt at `warn`.
 * The first two tests need no redis-server: their "Redis" drops every connection it accepts.
 */

import { once } from 'node:events'
import net, { type AddressInfo } from 'node:net'
import test from 'ava'
import { RedisAdapter } from '../../src/topics/redis.js'
import { peerTest } from '../peers.js'
import { captureLogger, until } from '../server/helpers.js'
import { RedisServer } from './redis-server.js'

/** A port that accepts each connection and drops it at once, counting them: a Redis that is not there. */
async function droppingPort (): Promise<{ port: number, accepted: () => number, stop: () => Promise<void> }> {
  let accepted = 0
  const server = net.createServer((socket) => { accepted++; socket.destroy() })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    stop: () => new Promise((resolve) => server.close(() => resolve()))
  }
}

test.serial('with no logger, the first failed attempt goes to stderr once, saying connect() waits and how not to; the retries do not', async (t) => {
  t.timeout(30_000)
  const redis = await droppingPort()
  t.teardown(() => redis.stop())
  const lines: unknown[][] = []
  const stderr = console.error
  console.error = (...args: unknown[]) => { lines.push(args) }
  t.teardown(() => { console.error = stderr })
  const abort = new AbortController()
  const connecting = RedisAdapter.connect({ url: `redis://127.0.0.1:${redis.port}`, signal: abort.signal, maxReconnectDelay: 50 })
  // Loading `redis` through the test's loader may take seconds on a busy machine.
  await until(() => redis.accepted() >= 6, 20_000, 'several failed attempts (each of the two connections tries)')
  abort.abort(new Error('test over'))
  await t.throwsAsync(connecting, { message: 'test over' })
  console.error = stderr
  t.is(lines.length, 1, 'one line per outage, not one per attempt')
  const [message, details] = lines[0] as [string, { err: Error }]
  t.regex(message, /Redis is unreachable/)
  t.regex(message, /connectTimeout/, 'says how to fail instead of waiting')
  t.regex(message, /publishes reach this process only/)
  t.true(details.err instanceof Error, 'the error that failed the attempt')
})

test.serial('with a logger: error once per outage, warn for each failed attempt; the URL (which may hold a password) is not logged', async (t) => {
  t.timeout(30_000)
  const redis = await droppingPort()
  t.teardown(() => redis.stop())
  const { logger, entries } = captureLogger()
  const url = `redis://user:secret@127.0.0.1:${redis.port}`
  const abort = new AbortController()
  const connecting = RedisAdapter.connect({ url, signal: abort.signal, maxReconnectDelay: 50, logger })
  await until(() => entries.filter((e) => e.level === 'warn').length >= 3, 20_000, 'three failed attempts')
  abort.abort(new Error('test over'))
  await t.throwsAsync(connecting, { message: 'test over' })
  const errors = entries.filter((e) => e.level === 'error')
  t.is(errors.length, 1)
  t.regex(String(errors[0].msg), /Redis is unreachable/)
  t.false(JSON.stringify(entries.map((e) => [e.msg, String(e.obj?.err)])).includes('secret'))
})

peerTest('redis-server')('a later outage is logged the same way: error once when Redis goes, info when it is back, error again at the next outage', async (t) => {
  t.timeout(60_000)
  const redis = await RedisServer.start()
  const { logger, entries } = captureLogger()
  const adapter = await RedisAdapter.connect({ url: redis.url, maxReconnectDelay: 50, logger })
  try {
    const levels = (): string => entries.filter((e) => e.level !== 'warn').map((e) => `${e.level} ${e.msg ?? ''}`).join(' | ')
    t.is(levels(), '', 'nothing while Redis is up')
    for (let outage = 1; outage <= 2; outage++) {
      await redis.stop()
      await until(() => entries.filter((e) => e.level === 'warn').length >= 2 * outage, 20_000, `failed attempts in outage ${outage}`)
      await redis.start()
      await until(() => adapter.connected, 20_000, 'the adapter to reconnect')
      await until(() => entries.filter((e) => e.level === 'info').length === outage, 20_000, 'the info that Redis is back')
    }
    const outageLine = 'error Redis is unreachable (retrying): publishes reach this process only until it is back'
    t.is(levels(), [outageLine, 'info Redis is reachable again', outageLine, 'info Redis is reachable again'].join(' | '), 'no connect() hint once connected')
  } finally {
    await adapter.close()
    await redis.stop()
  }
})

test.serial('connectTimeout\'s error names the Redis it waited for without the password in its URL', async (t) => {
  t.timeout(30_000)
  const redis = await droppingPort()
  t.teardown(() => redis.stop())
  const { logger } = captureLogger()
  const error = await t.throwsAsync(RedisAdapter.connect({ url: `redis://user:secret@127.0.0.1:${redis.port}/2`, connectTimeout: 200, logger }))
  t.is(error?.message, `Redis at redis://user:***@127.0.0.1:${redis.port}/2 did not answer within 200 ms`)
})
