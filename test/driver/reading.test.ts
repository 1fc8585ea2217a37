// Reading on its own: paused while any reason holds, resumed when none does.
import test from 'ava'
import { FOR_FAILURE, FOR_INFLATE, FOR_QUEUE, FOR_WRITE, Reading } from '../../src/driver/reading.js'
import { FakeTransport } from './fakes.js'

test('paused while any reason holds; resumed only when the last one goes', (t) => {
  const transport = new FakeTransport()
  const reading = new Reading(transport)
  reading.set(FOR_QUEUE, true)
  reading.set(FOR_WRITE, true)
  t.true(reading.paused)
  t.is(transport.pauses, 1, 'one pause for two reasons')
  reading.set(FOR_QUEUE, false)
  t.true(transport.paused)
  reading.set(FOR_WRITE, false)
  t.false(transport.paused)
  t.is(reading.pauses, 1)
})

test('assign changes several reasons with at most one pause or resume', (t) => {
  const transport = new FakeTransport()
  const reading = new Reading(transport)
  reading.set(FOR_FAILURE, true)
  reading.assign(FOR_FAILURE | FOR_INFLATE, FOR_INFLATE)
  t.true(reading.paused)
  t.true(reading.has(FOR_INFLATE))
  t.false(reading.has(FOR_FAILURE))
  t.is(transport.pauses, 1)
  t.is(transport.resumes, 0)
})

test('once stopped (the transport is gone), nothing is paused or resumed', (t) => {
  const transport = new FakeTransport()
  const reading = new Reading(transport)
  reading.stop()
  reading.set(FOR_QUEUE, true)
  t.is(transport.pauses, 0)
})
