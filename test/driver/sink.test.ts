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
    roomFor: () => !o.full,
    queueMessage: (m) => { if (typeof m !== 'string' && !(m instanceof Uint8Array)) throw new TypeError('bad'); o.sent.push(m) },
    queueEcho: (m) => { o.sent.push(m) },
    queueEchoAt: (c, start, end) => { o.sent.push(c.slice(start, end)) },
    queueEchoParts: (parts) => { o.sent.push(Buffer.concat(parts)) },
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

// send(): the same engine, fed message by message.

/** A fake whose chunks are recorded in order with the whole messages. */
function sendFake (): Fake & { log: string[], failed: unknown[] } {
  const o = fake() as Fake & { log: string[], failed: unknown[] }
  o.log = []
  o.failed = []
  o.queueMessage = (m) => { if (typeof m !== 'string' && !(m instanceof Uint8Array)) throw new TypeError('bad'); o.log.push(`m:${String(m)}`) }
  o.queueChunk = (c) => { if (typeof c !== 'string') throw new TypeError('bad chunk'); o.log.push(`c:${c}`) }
  o.endStream = () => { o.log.push('end') }
  o.failStream = (err) => { o.failed.push(err); o.stopped = true }
  return o
}

const tick = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

test('send(): a whole message with nothing ahead is queued at once and resolves at once while there is room', async (t) => {
  const o = sendFake()
  const pump = new SinkPump(o, undefined)
  const p = pump.send('a')
  t.deepEqual(o.log, ['m:a'])
  await p
  t.true(pump.idle)
})

test('send(): past the mark, the message is still queued at once and its call resolves at drain', async (t) => {
  const o = sendFake()
  const pump = new SinkPump(o, undefined)
  o.full = true
  let done = false
  const p = pump.send('a').then(() => { done = true })
  t.deepEqual(o.log, ['m:a'])
  await tick()
  t.false(done)
  pump.onDrain()
  await tick()
  t.false(done, 'still full: still waiting')
  o.full = false
  pump.onDrain()
  await p
  t.true(done)
})

test('send(): what is sent after a streamed message waits for its end, in the order of the calls', async (t) => {
  const o = sendFake()
  const pump = new SinkPump(o, undefined)
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const chunks = (async function * () { yield 'x'; await gate; yield 'y' })()
  const streamed = pump.send({ type: 'text', chunks })
  const after = pump.send('b')
  await tick()
  t.deepEqual(o.log, ['c:x'])
  t.false(pump.idle)
  release()
  await Promise.all([streamed, after])
  t.deepEqual(o.log, ['c:x', 'c:y', 'end', 'm:b'])
  t.true(pump.idle)
})

test('send(): stopping rejects the streamed call under way and those behind it, and calls return() on its chunks', async (t) => {
  const o = sendFake()
  const pump = new SinkPump(o, undefined)
  let returned = 0
  const chunks: AsyncIterableIterator<string> = {
    next: async () => await new Promise<IteratorResult<string>>(() => {}),
    return: async () => { returned++; return { done: true, value: undefined } },
    [Symbol.asyncIterator] () { return this }
  }
  const streamed = pump.send({ type: 'binary', chunks })
  const behind = pump.send('b')
  await tick()
  o.stopped = true
  pump.stop()
  await t.throwsAsync(streamed, { message: 'closing' })
  await t.throwsAsync(behind, { message: 'closing' })
  t.is(returned, 1)
  t.deepEqual(o.log, [])
})

test('send(): chunks that throw fail the stream (1011 by the owner) and reject that call with their error', async (t) => {
  const o = sendFake()
  const pump = new SinkPump(o, undefined)
  const boom = new Error('boom')
  const chunks = (function * () { yield 'x'; throw boom })()
  await t.throwsAsync(pump.send({ type: 'text', chunks }), { is: boom })
  t.deepEqual(o.failed, [boom])
  t.deepEqual(o.log, ['c:x'])
})

test('send(): a bad message rejects only its own call; the next one goes', async (t) => {
  const o = sendFake()
  const pump = new SinkPump(o, undefined)
  await t.throwsAsync(pump.send(42 as unknown as string), { instanceOf: TypeError })
  await pump.send('ok')
  t.deepEqual(o.log, ['m:ok'])
})
