// WebSocketConnection on its own: a server-role connection over a fake transport, in virtual time.
// Bytes go in by the transport's 'data' event; what it writes is parsed as the client would.
import test from 'ava'
import { WebSocketConnection } from '../../src/driver/connection.js'
import { FrameParser, type Frame } from '../../src/protocol/frame-parser.js'
import { Opcode } from '../../src/protocol/opcode.js'
import { ConnectionClosedError } from '../../src/errors.js'
import { VirtualClock } from '../../src/virtual-clock.js'
import type { CloseInfo } from '../../src/driver/types.js'
import { REPLY_GRACE } from '../../src/driver/closing.js'
import { closePayload, concat, peerFrame, utf8 } from '../protocol/helpers.js'
import { FakeTransport } from './fakes.js'

const CLOSE_TIMEOUT = 1000

/** A FakeTransport whose events can be fired (with the transport as `this`, as a stream does). */
class EventTransport extends FakeTransport {
  private readonly listeners = new Map<string, (arg: never) => void>()

  override on (event?: string, listener?: (arg: never) => void): this {
    if (event !== undefined && listener !== undefined) this.listeners.set(event, listener)
    return this
  }

  emit (event: 'data' | 'end' | 'close' | 'drain' | 'error', arg?: unknown): void {
    this.listeners.get(event)?.call(this, arg as never)
  }
}

function setup (heartbeat = false, sendHighWaterMark?: number) {
  const clock = new VirtualClock()
  const transport = new EventTransport()
  const conn = new WebSocketConnection(transport, {
    limits: { closeTimeout: CLOSE_TIMEOUT, heartbeat: heartbeat ? { interval: 1000, timeout: 500 } : false, sendHighWaterMark },
    role: 'server',
    protocol: '',
    url: '/',
    headers: {},
    clock
  })
  const parser = new FrameParser({ role: 'client' })
  let read = 0
  /** Frames written since the last look (the kernel takes them: write callbacks run). */
  const out = (): Frame[] => {
    const writes = transport.pendingWrites.slice(read)
    read = transport.pendingWrites.length
    return parser.push(concat(writes.map((w) => w.bytes)))
  }
  const send = (opcode: number, payload: Uint8Array | string = new Uint8Array(0), fin = true): void => {
    transport.emit('data', peerFrame('server', { opcode, fin, payload: typeof payload === 'string' ? utf8(payload) : payload }))
  }
  return { clock, transport, conn, out, send }
}

/** One turn: the output flushes at the end of the tick it was queued in. */
const turn = async (): Promise<void> => { await new Promise((resolve) => setImmediate(resolve)) }
const kinds = (frames: Frame[]): string[] => frames.map((f) => `${f.opcode}:${new TextDecoder().decode(f.payload)}`)

async function settled (clock: VirtualClock, conn: WebSocketConnection): Promise<CloseInfo | undefined> {
  let info: CloseInfo | undefined
  void conn.closed.then((i) => { info = i })
  await clock.settle()
  return info
}

test('bytes in, split anywhere: one message on source, in order', async (t) => {
  const s = setup()
  const frame = peerFrame('server', { opcode: Opcode.Text, payload: utf8('hello') })
  s.transport.emit('data', frame.subarray(0, 3))
  s.transport.emit('data', frame.subarray(3))
  s.send(Opcode.Binary, new Uint8Array([1, 2]))
  const it = s.conn.source[Symbol.asyncIterator]()
  t.is(new TextDecoder().decode((await it.next()).value as Uint8Array), 'hello')
  t.deepEqual([...((await it.next()).value as Uint8Array)], [1, 2])
})

test('send(): each message goes out as one unmasked frame, flushed in one corked batch per turn', async (t) => {
  const s = setup()
  void s.conn.send('a')
  void s.conn.send(new Uint8Array([7]))
  t.is(s.transport.pendingWrites.length, 0, 'not written inside send()')
  await turn()
  const frames = s.out()
  t.deepEqual(frames.map((f) => f.opcode), [Opcode.Text, Opcode.Binary])
  // Unmasked: the client-role parser above fails on a masked frame (§5.1).
  t.is(s.transport.batches.length, 1)
})

test('sink: its messages go out in order; its end alone closes nothing (the handler\'s end does, in handler.ts)', async (t) => {
  const s = setup()
  await s.conn.sink(['x', 'y'])
  await turn()
  t.deepEqual(kinds(s.out()), [`${Opcode.Text}:x`, `${Opcode.Text}:y`])
  s.conn.onHandlerSettled(undefined)
  await turn()
  const frames = s.out()
  t.is(frames[0]?.opcode, Opcode.Close)
  t.is(closePayload(frames[0]).code, 1000, 'the handler settled: 1000')
})

test('a peer\'s ping is answered with a pong of the same payload; a pong answers conn.ping() with the virtual round-trip time', async (t) => {
  const s = setup()
  s.send(Opcode.Ping, 'p1')
  await turn()
  t.deepEqual(kinds(s.out()), [`${Opcode.Pong}:p1`])
  const rtt = s.conn.ping('mine')
  await turn()
  t.deepEqual(kinds(s.out()), [`${Opcode.Ping}:mine`])
  await s.clock.advance(25)
  s.send(Opcode.Pong, 'mine')
  t.is(await rtt, 25)
})

test('the peer closes: the same code goes back, source ends, the server ends TCP, closed is clean with the peer\'s code', async (t) => {
  const s = setup()
  const close = concat([new Uint8Array([0x0f, 0xa1]), utf8('done')])
  s.send(Opcode.Close, close)
  await turn()
  const frames = s.out()
  t.is(frames.length, 1)
  t.is(closePayload(frames[0]).code, 4001)
  const it = s.conn.source[Symbol.asyncIterator]()
  t.true((await it.next()).done)
  t.true(s.transport.ended, 'the server ends TCP first (§7.1.1)')
  t.is(await settled(s.clock, s.conn), undefined, 'not closed before the transport is')
  s.transport.emit('close')
  t.deepEqual(await settled(s.clock, s.conn), { code: 4001, reason: 'done', wasClean: true })
})

test('conn.close(): our close frame goes, the peer\'s answer ends TCP, closed is clean with our code', async (t) => {
  const s = setup()
  s.conn.close(4000, 'bye')
  await turn()
  const frames = s.out()
  t.deepEqual(closePayload(frames[0]), { code: 4000, reason: 'bye' })
  t.false(s.transport.ended, 'waits for the peer\'s close')
  await t.throwsAsync(s.conn.send('late'), { instanceOf: ConnectionClosedError })
  s.send(Opcode.Close, new Uint8Array([0x0f, 0xa0]))
  await turn()
  t.true(s.transport.ended)
  s.transport.emit('close')
  t.deepEqual(await settled(s.clock, s.conn), { code: 4000, reason: 'bye', wasClean: true })
})

test('conn.close() and a silent peer: the transport is destroyed at closeTimeout exactly, closed is not clean', async (t) => {
  const s = setup()
  s.conn.close(1000)
  await turn()
  await s.clock.advance(CLOSE_TIMEOUT - 1)
  t.false(s.transport.destroyed, 'nothing at t - 1')
  await s.clock.advance(1)
  t.true(s.transport.destroyed)
  s.transport.emit('close')
  t.deepEqual(await settled(s.clock, s.conn), { code: 1000, reason: '', wasClean: false })
})

test('a protocol error from the peer (an unmasked frame to a server) closes with 1002 and source throws', async (t) => {
  const s = setup()
  s.transport.emit('data', peerFrame('client', { opcode: Opcode.Text, payload: utf8('x') }))
  await s.clock.advance(REPLY_GRACE)
  await turn()
  const frames = s.out()
  t.is(frames.at(-1)?.opcode, Opcode.Close)
  t.is(closePayload(frames.at(-1)!).code, 1002)
  const it = s.conn.source[Symbol.asyncIterator]()
  await t.throwsAsync(it.next())
  t.not(s.conn.failure, undefined)
})

test('the transport resets before any close: source throws, closed is 1006, the signal aborts', async (t) => {
  const s = setup()
  s.send(Opcode.Text, 'kept')
  s.transport.emit('error', new Error('ECONNRESET'))
  s.transport.emit('close')
  const it = s.conn.source[Symbol.asyncIterator]()
  t.is(new TextDecoder().decode((await it.next()).value as Uint8Array), 'kept', 'what came before is still read')
  await t.throwsAsync(it.next(), { instanceOf: ConnectionClosedError })
  t.deepEqual(await settled(s.clock, s.conn), { code: 1006, reason: '', wasClean: false })
  t.true(s.conn.signal.aborted)
})

test('the heartbeat (session events routed to it): a silent peer is pinged at the interval and dropped after the timeout', async (t) => {
  const s = setup(true)
  await s.clock.advance(1000)
  await turn()
  t.deepEqual(s.out().map((f) => f.opcode), [Opcode.Ping])
  s.send(Opcode.Pong)
  await s.clock.advance(1000)
  await turn()
  t.deepEqual(s.out().map((f) => f.opcode), [Opcode.Ping], 'a pong counts as life: pinged again, not dropped')
  t.false(s.transport.destroyed)
  await s.clock.advance(1000)
  t.true(s.transport.destroyed, 'no pong within the timeout: dropped')
  s.transport.emit('close')
  t.is((await settled(s.clock, s.conn))?.code, 1006)
})

test('sink(source), an echo: a long binary message split across reads is written back from the reads themselves (unmasked in place), not joined into a new buffer', async (t) => {
  const s = setup()
  void s.conn.sink(s.conn.source)
  await turn()
  const payload = Uint8Array.from({ length: 300_000 }, (_, i) => (i * 13 + 1) & 0xff)
  const wire = peerFrame('server', { opcode: Opcode.Binary, payload })
  const reads: Uint8Array[] = []
  for (let at = 0; at < wire.length; at += 65536) reads.push(wire.slice(at, at + 65536))
  for (const r of reads) s.transport.emit('data', r)
  await turn()
  const frames = s.out()
  t.is(frames.length, 1)
  t.is(frames[0].opcode, Opcode.Binary)
  t.deepEqual(frames[0].payload, payload)
  const readBuffers = new Set(reads.map((r) => r.buffer))
  const fromReads = s.transport.batches.flat().filter((b) => readBuffers.has(b.buffer as ArrayBuffer))
  t.true(fromReads.length >= reads.length - 2, `${fromReads.length} written buffers are the reads' own memory`)
})

test('sink(source), an echo: the messages of one read go back in the wire\'s order, binary as binary and text as text, with the pong owed between them, in one write', async (t) => {
  const s = setup()
  void s.conn.sink(s.conn.source)
  await turn()
  s.transport.emit('data', concat([
    peerFrame('server', { opcode: Opcode.Binary, payload: new Uint8Array([1, 2, 3]) }),
    peerFrame('server', { opcode: Opcode.Text, payload: utf8('hé') }),
    peerFrame('server', { opcode: Opcode.Binary, payload: new Uint8Array(0) }),
    peerFrame('server', { opcode: Opcode.Ping, payload: utf8('p') }),
    peerFrame('server', { opcode: Opcode.Binary, payload: utf8('after') })
  ]))
  t.is(s.transport.pendingWrites.length, 1, 'the read\'s replies leave in one write')
  t.deepEqual(kinds(s.out()), [`${Opcode.Binary}:\u0001\u0002\u0003`, `${Opcode.Text}:hé`, `${Opcode.Binary}:`, `${Opcode.Pong}:p`, `${Opcode.Binary}:after`])
})

test('sink(source), an echo at sendHighWaterMark: it takes a read\'s messages only while the output is below the mark; the rest wait in source and go back, in order, once the transport drains', async (t) => {
  const s = setup(false, 40)
  void s.conn.sink(s.conn.source)
  await turn()
  const parser = new FrameParser({ role: 'client' })
  /** What the transport holds, as frames; then the "kernel" takes it. */
  const take = (): Frame[] => {
    const frames = parser.push(concat(s.transport.pendingWrites.map((w) => w.bytes)))
    s.transport.written()
    return frames
  }
  const payloads = Array.from({ length: 10 }, (_, i) => new Uint8Array(10).fill(i))
  s.transport.emit('data', concat(payloads.map((payload) => peerFrame('server', { opcode: Opcode.Binary, payload }))))
  // 12-byte frames: the fourth takes the output to 48, past the mark of 40; the others wait.
  const got = take()
  t.deepEqual(got.map((f) => f.payload[0]), [0, 1, 2, 3])
  t.true(s.conn.stats().queuedInBytes > 0)
  for (let i = 0; i < 10 && got.length < 10; i++) {
    s.transport.emit('drain')
    await turn()
    got.push(...take())
  }
  t.deepEqual(got.map((f) => f.payload), payloads)
  t.is(s.conn.stats().queuedInBytes, 0)
  // Room again: a read that fits is taken whole, in one write.
  s.transport.emit('data', concat(payloads.map((payload) => peerFrame('server', { opcode: Opcode.Binary, payload: payload.subarray(0, 1) }))))
  t.is(s.transport.pendingWrites.length, 1)
  t.deepEqual(take().map((f) => f.payload[0]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
})

test('sink(source), an echo: small messages in the read that ends a long message echoed as its parts wait for room like any other (the long one took the output past sendHighWaterMark), and reading goes on: the output past 4 x the mark is the sink\'s own long message', async (t) => {
  const sendHighWaterMark = 16 * 1024
  const s = setup(false, sendHighWaterMark)
  void s.conn.sink(s.conn.source)
  await turn()
  const long = Uint8Array.from({ length: 100_000 }, (_, i) => (i * 7 + 1) & 0xff)
  const smalls = [1, 2, 3].map((i) => new Uint8Array(20).fill(i))
  const wire = concat([
    peerFrame('server', { opcode: Opcode.Binary, payload: long }),
    ...smalls.map((payload) => peerFrame('server', { opcode: Opcode.Binary, payload }))
  ])
  // The long message arrives over two reads; the second holds its last 100 bytes and the three
  // small ones: a read far below the mark, though the message it ends is far above it.
  const cut = wire.length - 3 * 26 - 100
  s.transport.emit('data', wire.slice(0, cut))
  s.transport.emit('data', wire.slice(cut))
  // The long one went (100 KB, past the mark of 16 KiB): the small ones wait in source, as the
  // sink would have them wait, and reading is not stopped for the sink's own message.
  t.true(s.conn.stats().queuedInBytes > 0, 'the small messages wait for room')
  t.is(s.transport.pauses, 0, 'reading was not stopped')
  // The peer reads: everything comes back, in order.
  const parser = new FrameParser({ role: 'client' })
  const got: Frame[] = []
  for (let i = 0; i < 10 && got.length < 4; i++) {
    got.push(...parser.push(concat(s.transport.pendingWrites.map((w) => w.bytes))))
    s.transport.written()
    s.transport.emit('drain')
    await turn()
  }
  t.deepEqual(got.map((f) => f.payload), [long, ...smalls])
})

/** One read of `n` small binary messages, `[i]` for i from `from`. */
const smallRead = (from: number, n: number): Uint8Array => concat(Array.from({ length: n }, (_, i) => peerFrame('server', { opcode: Opcode.Binary, payload: new Uint8Array([from + i]) })))

test('a sink that is not its own source polled, though it looks like an echo (a transform between), sees every message of a read: none is sent back by the session as it came', async (t) => {
  const s = setup()
  void s.conn.sink((async function * () { for await (const m of s.conn.source) yield new Uint8Array([(m as Uint8Array)[0] + 100]) })())
  await turn()
  s.transport.emit('data', smallRead(0, 5))
  for (let i = 0; i < 5; i++) await turn()
  t.deepEqual(s.out().map((f) => f.payload[0]), [100, 101, 102, 103, 104])
})

test('sink(source) after the handler read the first message itself: that one is the handler\'s, the rest of its read and every later read come back once each, in order', async (t) => {
  const s = setup()
  const first = s.conn.source.next()
  s.transport.emit('data', smallRead(0, 5))
  t.deepEqual((await first).value, new Uint8Array([0]))
  void s.conn.sink(s.conn.source)
  await turn()
  s.transport.emit('data', smallRead(5, 5))
  await turn()
  t.deepEqual(s.out().map((f) => f.payload[0]), [1, 2, 3, 4, 5, 6, 7, 8, 9])
})

test('sink(source) with a source.next() of the handler pending too: each message of a read goes to one of them, none twice, none lost', async (t) => {
  const s = setup()
  void s.conn.sink(s.conn.source)
  await turn()
  const pending = s.conn.source.next()
  s.transport.emit('data', smallRead(0, 5))
  s.transport.emit('data', smallRead(5, 5))
  await turn()
  const mine = (await pending).value as Uint8Array
  const echoed = s.out().map((f) => f.payload[0])
  t.deepEqual([mine[0], ...echoed].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  t.is(mine[0], 0)
})
