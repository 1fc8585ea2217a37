// The message pool (src/driver/pool.ts) and the echo path that gives its buffers back.
import test from 'ava'
import { allocMessage, recycleMessage, sizeClass, POOL_MIN, POOL_MAX } from '../../src/driver/pool.js'
import { Session } from '../../src/protocol/session.js'
import { Output, type OutputOwner } from '../../src/driver/output.js'
import { Reading } from '../../src/driver/reading.js'
import { FrameParser } from '../../src/protocol/frame-parser.js'
import { FakeTransport } from './fakes.js'

test('a size class is at most an eighth larger than the size, and the same for equal sizes', (t) => {
  for (const n of [POOL_MIN, POOL_MIN + 1, 100_000, 1 << 20, (1 << 20) + 1, POOL_MAX]) {
    const c = sizeClass(n)
    t.true(c >= n && c <= n * 1.125, `${n} -> ${c}`)
  }
  t.is(sizeClass(1 << 20), 1 << 20)
})

test('a buffer given back is taken again for the next message of its class; a smaller or larger one gets fresh memory', (t) => {
  const a = allocMessage(300_000)
  t.is(a.length, 300_000)
  t.is(a.byteOffset, 0)
  recycleMessage(a)
  const b = allocMessage(300_001)
  t.is(b.buffer, a.buffer, 'same class: same memory')
  t.is(b.length, 300_001)
  const c = allocMessage(300_000)
  t.not(c.buffer, a.buffer, 'the memory is in use: not handed out twice')
  const small = allocMessage(POOL_MIN - 1)
  t.is(small.length, POOL_MIN - 1)
  recycleMessage(small)
  t.not(allocMessage(POOL_MIN - 1).buffer, small.buffer, 'below the pool: never reused')
})

test('giving a buffer back twice hands it out once; views and foreign buffers are never taken', (t) => {
  const a = allocMessage(200_000)
  recycleMessage(a)
  recycleMessage(a)
  const b = allocMessage(200_000)
  const c = allocMessage(200_000)
  t.is(b.buffer, a.buffer)
  t.not(c.buffer, a.buffer, 'given back twice, handed out once')
  recycleMessage(c.subarray(1))
  t.not(allocMessage(200_000).buffer, c.buffer, 'a view that does not start the buffer is not its whole message')
  const foreign = new Uint8Array(200_000)
  recycleMessage(foreign)
  t.not(allocMessage(200_000).buffer, foreign.buffer, 'memory the pool did not make is left alone')
})

function setup (): { transport: FakeTransport, output: Output } {
  const owner: OutputOwner = {
    gone: false,
    failed: false,
    heldBeside: () => 0,
    onDrain: () => {},
    afterFlush: () => {},
    failForBudget: () => {}
  }
  const transport = new FakeTransport()
  const session = new Session({ role: 'server', alloc: allocMessage })
  const output = new Output(owner, transport, session, new Reading(transport), { sendHigh: 1 << 20, maxOutFrame: 1 << 20 }, undefined)
  return { transport, output }
}

test('an echoed message goes back to the pool once the transport has written it, not before', (t) => {
  const { transport, output } = setup()
  const message = allocMessage(100_000)
  message.fill(7)
  output.echo(message, false)
  output.flush()
  t.not(allocMessage(100_000).buffer, message.buffer, 'still queued in the transport: not reused')
  // What the transport was given is the message itself, unchanged.
  const frames = new FrameParser({ role: 'client' }).push(Buffer.concat(transport.batches.flat()))
  t.is(frames.length, 1)
  t.true(frames[0].payload.every((b) => b === 7))
  transport.written()
  t.is(allocMessage(100_000).buffer, message.buffer, 'written: its memory takes the next message')
})

test('a failed write gives nothing back', (t) => {
  const { transport, output } = setup()
  const message = allocMessage(100_000)
  output.echo(message, false)
  output.flush()
  for (const w of transport.pendingWrites) w.callback?.(new Error('reset'))
  t.not(allocMessage(100_000).buffer, message.buffer)
})

test('a message sent with message() (not polled by an echo) is never given back: it may be the handler\'s', (t) => {
  const { transport, output } = setup()
  const message = allocMessage(100_000)
  output.message(message)
  output.flush()
  transport.written()
  t.not(allocMessage(100_000).buffer, message.buffer)
})
