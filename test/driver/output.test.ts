// The Output part on its own: a real session, a fake transport, a fake connection.
import test from 'ava'
import { Buffer } from 'node:buffer'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
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

test('over a plain TCP socket, a batch written through to the kernel (writableLength 0 after the write) leaves its bytes to the next batch; the peer gets every frame intact. A transport that may hold what it was given never has it written over', async (t) => {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve))
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1')
  const socket = await accepted
  t.teardown(() => { client.destroy(); socket.destroy(); server.close() })
  const received: Buffer[] = []
  client.on('data', (d: Buffer) => received.push(d))
  const o: OutputOwner = { gone: false, failed: false, heldBeside: () => 0, onDrain: () => {}, afterFlush: () => {}, failForBudget: () => {} }
  const session = new Session({ role: 'server', alloc: (n) => Buffer.allocUnsafe(n) })
  const output = new Output(o, socket, session, new Reading(socket), { sendHigh: 1 << 20, maxOutFrame: 1 << 20 }, undefined)
  // Watched below `write` (which must stay Node's own for the slab to be reused): what the
  // socket's `Writable` hands to its `_write` when not corked.
  const written: Uint8Array[] = []
  const socketWrite = socket._write
  socket._write = function (this: Socket, chunk: Uint8Array, ...rest: unknown[]) { written.push(chunk); return socketWrite.call(this, chunk, ...rest as [BufferEncoding, (error?: Error | null) => void]) } as typeof socket._write
  for (let i = 0; i < 50; i++) {
    output.message(new Uint8Array(20).fill(i))
    output.flush()
  }
  // Every batch went through at once (a quiet local socket), each over the same bytes.
  t.is(written.length, 50)
  t.true(written.every((w) => w.buffer === written[0].buffer && w.byteOffset === written[0].byteOffset))
  const total = 50 * 22
  for (let i = 0; i < 100 && received.reduce((n, d) => n + d.length, 0) < total; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  const frames = new FrameParser({ role: 'client' }).push(Buffer.concat(received))
  t.deepEqual(frames.map((f) => f.payload), Array.from({ length: 50 }, (_, i) => new Uint8Array(20).fill(i)))

  // Another transport may keep what it was given after saying it is written (a TLS socket, an
  // HTTP/2 stream, an in-memory pair, a user's Duplex): never written over.
  class DoneAtOnce extends FakeTransport {
    override write (chunk: Uint8Array, callback?: (err?: Error | null) => void): boolean {
      super.write(chunk, callback)
      this.written()
      return true
    }
  }
  const transport = new DoneAtOnce()
  const heldSession = new Session({ role: 'server', alloc: (n) => Buffer.allocUnsafe(n) })
  const held = new Output(o, transport, heldSession, new Reading(transport), { sendHigh: 1 << 20, maxOutFrame: 1 << 20 }, undefined)
  for (let i = 0; i < 50; i++) {
    held.message(new Uint8Array(20).fill(i))
    held.flush()
    t.is(transport.writableLength, 0)
  }
  t.deepEqual(new FrameParser({ role: 'client' }).push(Buffer.concat(transport.batches.flat())).map((f) => f.payload[0]), Array.from({ length: 50 }, (_, i) => i))
})

test('a long output goes to the transport a slice at a time (sendHigh, at least 64 KiB), each when the one before it is written; the rest, and a ping queued behind it, wait in the session; every slice tells waiters to look again', (t) => {
  const { o, transport, session, output } = setup(128 * 1024)
  const message = new Uint8Array(1024 * 1024).map((_, i) => i & 0xff)
  output.message(message)
  session.sendPing(new Uint8Array([1, 2, 3]))
  output.flush()
  const written = (): number => transport.batches.flat().reduce((n, c) => n + c.length, 0)
  t.is(written(), 128 * 1024, 'one slice handed over')
  t.is(output.queuedOut(), 10 + 1024 * 1024 + 5, 'the rest counts as queued (a 10-byte header, the message, the ping)')
  // More flushes before the slice is written hand over nothing (Node would join it all into one write).
  output.flush()
  output.queued()
  t.is(written(), 128 * 1024)
  let slices = 1
  for (let i = 0; i < 20 && transport.pendingWrites.length > 0; i++) {
    transport.written()
    slices++
  }
  t.is(slices, 10, 'nine slices of 128 KiB, the last with the ping')
  t.true(o.drains >= 8, `waiters told to look again after each slice (${o.drains})`)
  const got = frames(transport)
  t.deepEqual(got.map((f) => [f.opcode, f.length]), [[2, 1024 * 1024], [9, 3]])
  t.deepEqual(new Uint8Array(Buffer.concat(transport.batches.flat()).subarray(10, 10 + 1024 * 1024)), message)
  t.is(output.queuedOut(), 0)
})

test('a peer that does not read a long output: the read stop counts what still waits in the session, so pongs cannot pile up behind the slices', (t) => {
  const { transport, session, reading, output } = setup(64 * 1024)
  output.message(new Uint8Array(1024 * 1024))
  output.message(new Uint8Array(1024 * 1024))
  output.flush()
  t.is(transport.writableLength, 64 * 1024, 'a slice (header included) in the transport')
  t.true(reading.has(FOR_WRITE), 'reading stops: over 4 × sendHigh plus the last message waits, nearly all of it in the session')
  // Written whole at last: reading resumes on the transport's drain.
  for (let i = 0; i < 40 && transport.pendingWrites.length > 0; i++) transport.written()
  output.drained()
  t.false(reading.has(FOR_WRITE))
  t.is(session.pendingOutput, 0)
})
