// The Output part on its own: a real session, a fake transport, a fake connection.
import test from 'ava'
import { Buffer } from 'node:buffer'
import { Session } from '../../src/protocol/session.js'
import { MemoryBudget } from '../../src/driver/budget.js'
import { Output, type OutputOwner } from '../../src/driver/output.js'
import { FOR_WRITE, Reading } from '../../src/driver/reading.js'
import { FrameParser } from '../../src/protocol/frame-parser.js'
import { FakeTransport } from './fakes.js'

/** The frames in what was written, as a client would parse them. */
function frames (transport: FakeTransport): Array<{ opcode: number, fin: boolean, length: number }> {
  const parser = new FrameParser({ role: 'client' })
  return parser.push(Buffer.concat(transport.batches.flat())).map((f) => ({ opcode: f.opcode, fin: f.fin, length: f.payload.length }))
}

interface Fake extends OutputOwner {
  drains: number
  ends: number
  refused: number[]
  beside: number
}

function setup (sendHigh = 1024, budget?: MemoryBudget): { o: Fake, transport: FakeTransport, session: Session, reading: Reading, output: Output } {
  const o: Fake = {
    drains: 0,
    ends: 0,
    refused: [],
    beside: 0,
    gone: false,
    failed: false,
    heldBeside: () => o.beside,
    onDrain: () => { o.drains++ },
    afterFlush: () => { o.ends++ },
    failForBudget: (held) => { o.refused.push(held) }
  }
  const transport = new FakeTransport()
  const session = new Session({ role: 'server', alloc: (n) => Buffer.allocUnsafe(n) })
  const reading = new Reading(transport)
  const output = new Output(o, transport, session, reading, { sendHigh, maxOutFrame: 1 << 20 }, budget)
  return { o, transport, session, reading, output }
}

const tick = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }

test('a burst queued in one tick leaves in one corked batch at the end of the tick', async (t) => {
  const { transport, output } = setup()
  output.message('a')
  output.message(new Uint8Array([1, 2]))
  output.message('c')
  t.is(transport.batches.length, 0, 'nothing written before the end of the tick')
  await tick()
  t.is(transport.batches.length, 1)
  t.deepEqual(frames(transport), [{ opcode: 1, fin: true, length: 1 }, { opcode: 2, fin: true, length: 2 }, { opcode: 1, fin: true, length: 1 }])
})

test('while handling a read, nothing is scheduled: the caller flushes once', async (t) => {
  const { transport, output } = setup()
  output.handling = true
  output.message('a')
  await tick()
  t.is(transport.batches.length, 0)
  output.flush()
  t.is(transport.batches.length, 1)
})

test('a flush that leaves the output past the mark carries a write callback: the owner hears when it is written', (t) => {
  const { o, transport, output } = setup(16)
  output.message('x'.repeat(100))
  output.flush()
  t.true(output.full())
  transport.written()
  t.is(o.drains, 1)
  t.false(output.full())
})

test('output past 4 x the mark plus the last message stops reading; drained() reads again', (t) => {
  const { transport, reading, output } = setup(16)
  // Pongs or a close the sink does not make: here, small messages that pile up.
  for (let i = 0; i < 40; i++) output.message('0123456789')
  output.flush()
  t.true(reading.has(FOR_WRITE))
  t.true(transport.paused)
  transport.written()
  output.drained()
  t.false(reading.has(FOR_WRITE))
  t.false(transport.paused)
})

test('held bytes are charged to the budget and given back on release; a refused charge fails the connection', (t) => {
  const budget = new MemoryBudget(1000)
  const { o, output } = setup(1 << 20, budget)
  o.beside = 300
  output.charge()
  t.is(budget.used, 300)
  o.beside = 2000
  output.charge()
  t.deepEqual(o.refused, [2000])
  o.beside = 0
  output.charge()
  output.release()
  t.is(budget.used, 0)
})

test('chunks of a streamed message are fragments of at most maxFrame; an empty chunk sends nothing unless last', async (t) => {
  const transport = new FakeTransport()
  const session = new Session({ role: 'server' })
  const o = { gone: false, failed: false, heldBeside: () => 0, onDrain: () => {}, afterFlush: () => {}, failForBudget: () => {} }
  const output = new Output(o, transport, session, new Reading(transport), { sendHigh: 1 << 20, maxOutFrame: 4 }, undefined)
  output.chunk(new Uint8Array(10), false)
  output.chunk(new Uint8Array(0), false)
  output.endStream(false)
  output.flush()
  t.deepEqual(frames(transport), [
    { opcode: 2, fin: false, length: 4 },
    { opcode: 0, fin: false, length: 4 },
    { opcode: 0, fin: false, length: 2 },
    { opcode: 0, fin: true, length: 0 }
  ])
  t.throws(() => { output.chunk(42 as unknown as string, false) }, { instanceOf: TypeError })
})
