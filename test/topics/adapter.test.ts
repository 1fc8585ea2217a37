/**
 * `Subscription.ready` against an adapter in the test's hands: it resolves true once the
 * adapter's `subscribe` promise says the topic is live across processes, false when the
 * subscription ends first, and at once without an adapter or on a topic already live.
 */

import test from 'ava'
import { Topics, type TopicsAdapter } from '../../src/index.js'

/** An adapter whose subscriptions go live when the test says so. */
function fakeAdapter (): TopicsAdapter & { live: (topic: string) => void, calls: string[] } {
  const waiting = new Map<string, () => void>()
  const calls: string[] = []
  return {
    calls,
    start: () => {},
    publish: () => {},
    async subscribe (topic) {
      calls.push(`subscribe ${topic}`)
      await new Promise<void>((resolve) => waiting.set(topic, resolve))
    },
    unsubscribe (topic) {
      calls.push(`unsubscribe ${topic}`)
      // A topic given up settles its promise (as RedisAdapter does): Topics must ignore it.
      waiting.get(topic)?.()
      waiting.delete(topic)
    },
    live (topic) {
      waiting.get(topic)?.()
      waiting.delete(topic)
    },
    close: async () => {}
  }
}

/** Has `promise` settled (after the microtasks queued so far)? With what? */
async function peek<T> (promise: Promise<T>): Promise<T | 'pending'> {
  return await Promise.race([promise, new Promise<'pending'>((resolve) => setImmediate(resolve, 'pending'))])
}

test('without an adapter a subscription is ready at once', async (t) => {
  const topics = new Topics()
  t.true(await topics.subscribe('a').ready)
})

test('ready waits for the adapter to confirm, for every subscriber of the topic; later subscribers of a live topic are ready at once', async (t) => {
  const adapter = fakeAdapter()
  const topics = new Topics({ adapter })
  const first = topics.subscribe('a')
  const second = topics.subscribe('a')
  t.deepEqual(adapter.calls, ['subscribe a'])
  t.is(await peek(first.ready), 'pending')
  t.is(await peek(second.ready), 'pending')
  adapter.live('a')
  t.true(await first.ready)
  t.true(await second.ready)
  t.true(await peek(topics.subscribe('a').ready))
})

test('a subscription that ends before the topic is live: ready resolves false; a stale confirmation does not make a new one live', async (t) => {
  const adapter = fakeAdapter()
  const topics = new Topics({ adapter })
  const gone = topics.subscribe('a')
  gone.unsubscribe()
  t.false(await gone.ready)
  // Subscribed again: the first subscribe's promise (settled by the unsubscribe) is not this one's.
  const again = topics.subscribe('a')
  t.deepEqual(adapter.calls, ['subscribe a', 'unsubscribe a', 'subscribe a'])
  t.is(await peek(again.ready), 'pending')
  adapter.live('a')
  t.true(await again.ready)
  // One that ends after it was live stays ready.
  again.unsubscribe()
  t.true(await again.ready)
})

test('an adapter whose subscribe returns nothing counts as live at once', async (t) => {
  const adapter: TopicsAdapter = { start: () => {}, publish: () => {}, subscribe: () => {}, unsubscribe: () => {}, close: async () => {} }
  t.true(await new Topics({ adapter }).subscribe('a').ready)
})
