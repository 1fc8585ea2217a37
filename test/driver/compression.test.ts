// The zlib part on its own: a fake extension and session, a fake transport, virtual time.
import test from 'ava'
import { PENDING, type PerMessageDeflate } from '../../src/extensions/permessage-deflate.js'
import type { Session } from '../../src/protocol/session.js'
import { Compression, type CompressionOwner } from '../../src/driver/compression.js'
import { FOR_ZLIB, Reading } from '../../src/driver/reading.js'
import { ITEM_OVERHEAD } from '../../src/protocol/gather.js'
import { VirtualClock } from '../../src/virtual-clock.js'
import { FakeTransport } from './fakes.js'

function setup (): { sent: string[], sentAll: number, z: { done: Array<(p: Uint8Array) => void>, wait: number }, compression: Compression, reading: Reading, clock: VirtualClock } {
  const sent: string[] = []
  const z = { done: [] as Array<(p: Uint8Array) => void>, wait: 0 }
  const deflate = {
    offLoop: false,
    room: Infinity,
    waitingOn: 'connection',
    budget: { wait: () => z.wait },
    // Messages of 100 bytes or more go off the loop.
    deflate: (data: Uint8Array, _broadcast: boolean, done: (p: Uint8Array) => void) => {
      if (data.length < 100) return data
      z.done.push(done)
      return PENDING
    },
    cancel: () => { z.done = [] },
    cancelInflate: () => {}
  } as unknown as PerMessageDeflate
  const session = {
    sendCompressed: (data: Uint8Array) => { sent.push(`m${data.length}`) },
    sendChunk: (data: Uint8Array, _binary: boolean, fin: boolean) => { sent.push(`c${data.length}${fin ? '!' : ''}`) }
  } as unknown as Session
  const state = { sent, sentAll: 0, z }
  const owner: CompressionOwner = {
    gone: false,
    queuedIn: 0,
    handleEvents: () => {},
    flush: () => {},
    onOutgoingSent: () => { state.sentAll++ }
  }
  const clock = new VirtualClock()
  const reading = new Reading(new FakeTransport())
  const compression = new Compression(owner, session, deflate, clock, reading, 'server', { receiveHigh: 1 << 20, maxInflated: 1 << 20, maxOutFrame: 1 << 20 })
  return Object.assign(state, { compression, reading, clock })
}

test('while a message is compressed off the loop, what is sent after it waits behind it, in order, and counts', (t) => {
  const s = setup()
  s.compression.send(new Uint8Array(200), true, false)
  t.true(s.compression.busy)
  s.compression.send(new Uint8Array(10), true, false)
  s.compression.pushChunk(new Uint8Array(5), false, true)
  t.deepEqual(s.sent, [])
  t.is(s.compression.outgoingBytes, 215 + 3 * ITEM_OVERHEAD)
  s.z.done[0](new Uint8Array(20))
  t.deepEqual(s.sent, ['m200', 'm10', 'c5!'])
  t.false(s.compression.busy)
  t.is(s.compression.outgoingBytes, 0)
  t.is(s.sentAll, 1, 'the senders are told once all is in the session')
})

test('drop(): the peer closed: what is being compressed and what waits behind it is not sent', (t) => {
  const s = setup()
  s.compression.send(new Uint8Array(200), true, false)
  s.compression.send(new Uint8Array(10), true, false)
  s.compression.drop()
  t.false(s.compression.busy)
  t.is(s.compression.outgoingBytes, 0)
  t.deepEqual(s.sent, [])
})

test('a spent zlib budget pauses reading until it recovers (looked at again in virtual time)', async (t) => {
  const s = setup()
  s.z.wait = 250
  s.compression.checkBudget()
  t.true(s.reading.has(FOR_ZLIB))
  t.is(s.compression.waits, 1)
  await s.clock.advance(100)
  t.true(s.reading.has(FOR_ZLIB), 'still spent: looked again, still waiting')
  s.z.wait = 0
  await s.clock.advance(100)
  t.false(s.reading.has(FOR_ZLIB))
  t.is(s.clock.pending, 0)
})
