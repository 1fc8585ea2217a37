// The zlib part's inflate side on its own: a fake extension and session, a fake transport, virtual time.
import test from 'ava'
import type { PerMessageDeflate } from '../../src/extensions/permessage-deflate.js'
import type { Session, SessionEvent } from '../../src/protocol/session.js'
import { ProtocolError } from '../../src/protocol/errors.js'
import { Compression, type CompressionOwner } from '../../src/driver/compression.js'
import { FOR_INFLATE, FOR_QUEUE, FOR_ZLIB, Reading } from '../../src/driver/reading.js'
import { VirtualClock } from '../../src/virtual-clock.js'
import { FakeTransport } from './fakes.js'

/** What the fake extension's inflateLater answers, one per call: bytes (at once), a wait (ms), or 'job' (off the loop). */
type Answer = Uint8Array | number | 'job' | Error

function setup () {
  const answers: Answer[] = []
  const jobs: Array<(error: ProtocolError | undefined, data: Uint8Array | undefined) => void> = []
  const delivered: number[] = []
  const failures: string[] = []
  const state = { calls: 0, cancels: 0, budgetWait: 0, leaveNext: 0, handled: 0 }
  const deflate = {
    offLoop: false,
    room: Infinity,
    waitingOn: 'connection',
    budget: { wait: () => state.budgetWait },
    inflateLater: (_max: number, done: (error: ProtocolError | undefined, data: Uint8Array | undefined) => void) => {
      state.calls++
      const a = answers.shift()
      if (a === undefined) throw new Error('no answer scripted')
      if (a === 'job') {
        jobs.push(done)
        return undefined
      }
      if (a instanceof Error) throw a
      return a
    },
    cancel: () => {},
    cancelInflate: () => { state.cancels++; jobs.length = 0 }
  } as unknown as PerMessageDeflate
  const session = {
    awaitingDecompressed: true,
    decompressed: (data: Uint8Array): SessionEvent[] => {
      delivered.push(data.length)
      return []
    },
    failWith: (error: ProtocolError): SessionEvent[] => {
      failures.push(error.code)
      return []
    }
  } as unknown as Session
  const transport = new FakeTransport()
  const reading = new Reading(transport)
  const clock = new VirtualClock()
  const owner: CompressionOwner = {
    gone: false,
    queuedIn: 0,
    handleEvents: () => {
      state.handled++
      // The session left the next compressed message for later, as it does when one follows.
      if (state.leaveNext > 0) {
        state.leaveNext--
        compression.leftForLater()
      }
    },
    flush: () => {},
    onOutgoingSent: () => {}
  }
  const compression: Compression = new Compression(owner, session, deflate, clock, reading, 'server', { receiveHigh: 1000, maxInflated: 1 << 20, maxOutFrame: 1 << 20 })
  return { answers, jobs, delivered, failures, state, compression, reading, transport, clock, owner }
}

const turn = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

test('a message left for later pauses reading (FOR_INFLATE); inflated after the read, it is delivered and reading resumes', (t) => {
  const s = setup()
  s.compression.leftForLater()
  t.true(s.compression.inflating)
  t.true(s.reading.has(FOR_INFLATE))
  t.true(s.transport.paused)
  s.answers.push(new Uint8Array(7))
  s.compression.afterRead()
  t.deepEqual(s.delivered, [7])
  t.false(s.compression.inflating)
  t.false(s.reading.has(FOR_INFLATE))
  t.false(s.transport.paused)
  t.is(s.transport.resumes, 1)
})

test('left for later while the receive queue is at its mark: nothing is inflated until room comes, then on the next turn', async (t) => {
  const s = setup()
  s.reading.set(FOR_QUEUE, true)
  s.compression.leftForLater()
  s.answers.push(new Uint8Array(5))
  s.compression.afterRead()
  t.is(s.state.calls, 0, 'not inflated while the queue is at its mark')
  s.compression.afterRead()
  t.is(s.state.calls, 0, 'a later read does not start it either: it waits for room')
  s.reading.set(FOR_QUEUE, false)
  s.compression.roomAgain()
  t.is(s.state.calls, 0, 'not inside the consumer\'s next()')
  await turn()
  t.is(s.state.calls, 1)
  t.deepEqual(s.delivered, [5])
  t.false(s.reading.has(FOR_INFLATE))
})

test('roomAgain() when nothing waits for room does nothing', async (t) => {
  const s = setup()
  s.compression.leftForLater()
  s.answers.push('job')
  s.compression.afterRead()
  t.is(s.state.calls, 1)
  s.compression.roomAgain()
  await turn()
  t.is(s.state.calls, 1, 'the job under way is not started twice')
})

test('a spent zlib budget: the message waits on a timer, looked at again at min(wait, 100) ms exactly, counted once', async (t) => {
  const s = setup()
  s.compression.leftForLater()
  s.answers.push(250)
  s.compression.afterRead()
  t.is(s.state.calls, 1)
  t.is(s.compression.waits, 1)
  await s.clock.advance(99)
  t.is(s.state.calls, 1, 'nothing at t - 1')
  s.answers.push(150)
  await s.clock.advance(1)
  t.is(s.state.calls, 2, 'looked again at t')
  t.is(s.compression.waits, 1, 'one wait, however often it is looked at')
  s.answers.push(new Uint8Array(3))
  await s.clock.advance(99)
  t.deepEqual(s.delivered, [])
  await s.clock.advance(1)
  t.deepEqual(s.delivered, [3])
  t.false(s.reading.has(FOR_INFLATE))
  t.is(s.clock.pending, 0)
})

test('the connection\'s zlib budget pauses reading (FOR_ZLIB) and resumes it exactly when its wait is over', async (t) => {
  const s = setup()
  s.state.budgetWait = 40
  s.compression.checkBudget()
  t.true(s.reading.has(FOR_ZLIB))
  t.true(s.transport.paused)
  s.state.budgetWait = 0
  await s.clock.advance(39)
  t.true(s.transport.paused, 'nothing at t - 1')
  await s.clock.advance(1)
  t.false(s.reading.has(FOR_ZLIB))
  t.false(s.transport.paused)
})

test('inflated off the loop, one after another: each is delivered in order, and the next starts when the last is done', (t) => {
  const s = setup()
  s.state.leaveNext = 2
  s.compression.leftForLater()
  s.answers.push('job', 'job', 'job')
  s.compression.afterRead()
  t.is(s.jobs.length, 1)
  s.jobs.shift()!(undefined, new Uint8Array(1))
  t.deepEqual(s.delivered, [1])
  t.true(s.reading.has(FOR_INFLATE), 'the next was left for later: still paused')
  t.is(s.jobs.length, 1, 'the next started at once')
  s.jobs.shift()!(undefined, new Uint8Array(2))
  s.jobs.shift()!(undefined, new Uint8Array(3))
  t.deepEqual(s.delivered, [1, 2, 3])
  t.false(s.reading.has(FOR_INFLATE))
})

test('a job that cost more than the budgets had left is let in again, in full', (t) => {
  const s = setup()
  s.compression.leftForLater()
  s.answers.push('job', new Uint8Array(9))
  s.compression.afterRead()
  s.jobs.shift()!(undefined, undefined)
  t.is(s.state.calls, 2)
  t.deepEqual(s.delivered, [9])
})

test('an inflate that fails (too big) fails the session with its error', (t) => {
  const s = setup()
  s.compression.leftForLater()
  s.answers.push(new ProtocolError('WS_ERR_MESSAGE_TOO_BIG'))
  s.compression.afterRead()
  t.deepEqual(s.failures, ['WS_ERR_MESSAGE_TOO_BIG'])
  t.deepEqual(s.delivered, [])
})

test('drop() during a job: the inflate is cancelled and its late result is not delivered', (t) => {
  const s = setup()
  s.compression.leftForLater()
  s.answers.push('job')
  s.compression.afterRead()
  const done = s.jobs[0]
  s.compression.drop()
  t.is(s.state.cancels, 1)
  t.false(s.compression.inflating)
  done(undefined, new Uint8Array(4))
  t.deepEqual(s.delivered, [])
  t.is(s.state.handled, 0, 'no callback after drop')
})

test('drop() during a budget wait: the timers are cleared and nothing is inflated later', async (t) => {
  const s = setup()
  s.compression.leftForLater()
  s.answers.push(60)
  s.compression.afterRead()
  s.state.budgetWait = 60
  s.compression.checkBudget()
  t.is(s.clock.pending, 2)
  s.compression.drop()
  t.is(s.clock.pending, 0)
  t.false(s.reading.has(FOR_ZLIB))
  s.answers.push(new Uint8Array(1))
  await s.clock.advance(1000)
  t.is(s.state.calls, 1)
  t.deepEqual(s.delivered, [])
})

test('stopInflating() while waiting for room: room coming later inflates nothing', async (t) => {
  const s = setup()
  s.reading.set(FOR_QUEUE, true)
  s.compression.leftForLater()
  s.compression.afterRead()
  s.reading.set(FOR_QUEUE, false)
  s.compression.roomAgain()
  s.compression.stopInflating()
  s.answers.push(new Uint8Array(1))
  await turn()
  t.is(s.state.calls, 0)
  t.deepEqual(s.delivered, [])
})
