// The sink pump on its own, with a fake connection.
import test from 'ava'
import { MessageSource } from '../../src/driver/incoming.js'
import { SinkPump, type SinkOwner } from '../../src/driver/sink.js'
import type { OutgoingMessage } from '../../src/driver/types.js'

interface Fake extends SinkOwner {
  sent: OutgoingMessage[]
  full: boolean
  stopped: boolean
  settled: unknown[]
  /** The pump the own source wakes. */
  pump: SinkPump | undefined
}

function fake (): Fake {
  const o: Fake = {
    sent: [],
    full: false,
    stopped: false,
    settled: [],
    pump: undefined,
    ownMessages: undefined as unknown as MessageSource,
    queueChunk: () => { throw new Error('not in these tests') },
    endStream: () => {},
    failStream: () => {},
    get sendingStopped () { return o.stopped },
    outputFull: () => o.full,
    queueMessage: (m) => { if (typeof m !== 'string' && !(m instanceof Uint8Array)) throw new TypeError('bad'); o.sent.push(m) },
    queueEcho: (m) => { o.sent.push(m) },
    flush: () => {},
    onHandlerSettled: (e) => { o.settled.push(e) },
    onSinkEnded: () => {},
    closingError: () => new Error('closing'),
    fragmentsUnderWay: false
  }
  ;(o as { ownMessages: MessageSource }).ownMessages = new MessageSource({ queueFull: () => {}, dropWhenFull: false, onSourceDrained: () => {}, onSourceReturned: () => {}, wakeSink: () => { o.pump?.pump() }, offerToSink: (m, text) => o.pump?.offer(m, text) ?? false, onQueueEmptied: () => {} }, 1 << 20, 1 << 18)
  return o
}

test('a sync iterable is sent whole; the promise resolves; an adopted sink settles the handler', async (t) => {
  const o = fake()
  const pump = new SinkPump(o, ['a', 'b', 'c'])
  pump.pump()
  await pump.promise
  t.deepEqual(o.sent, ['a', 'b', 'c'])
  pump.adopt()
  t.deepEqual(o.settled, [undefined])
})

test('output full: the pump blocks and goes on at drain', (t) => {
  const o = fake()
  o.full = true
  const pump = new SinkPump(o, ['a', 'b'])
  pump.pump()
  t.deepEqual(o.sent, [])
  o.full = false
  pump.onDrain()
  t.deepEqual(o.sent, ['a', 'b'])
})

test('stopped while waiting: the pump calls return() on the iterator it was given (DESIGN "stops")', async (t) => {
  const o = fake()
  let returned = 0
  const iterator: AsyncIterableIterator<OutgoingMessage> = {
    next: async () => await new Promise<IteratorResult<OutgoingMessage>>(() => {}),
    return: async () => { returned++; return { done: true, value: undefined } },
    [Symbol.asyncIterator] () { return this }
  }
  const pump = new SinkPump(o, iterator)
  pump.pump()
  o.stopped = true
  pump.stop()
  await pump.promise
  t.true(pump.ended)
  t.is(returned, 1)
})

test('a bad message rejects the sink with its TypeError', async (t) => {
  const o = fake()
  const pump = new SinkPump(o, [42 as unknown as string])
  pump.pump()
  await t.throwsAsync(pump.promise, { instanceOf: TypeError })
})

test('echo from the own source: polled without promises', (t) => {
  const o = fake()
  const pump = new SinkPump(o, o.ownMessages!)
  o.pump = pump
  pump.pump()
  o.ownMessages!.push(new Uint8Array([1]), false)
  o.ownMessages!.push(new Uint8Array([2]), false)
  t.is(o.sent.length, 2)
})
