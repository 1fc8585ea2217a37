/**
 * A compressed message the extension leaves for later (`decompress` returns `undefined`): the
 * session hands it out as a `compressed` event and holds everything received after it, in order,
 * until `decompressed()` brings its bytes; a failure meanwhile drops what is held. And
 * `sendCompressed()`, for a payload compressed elsewhere (in parts, never joined). Pure: a fake
 * extension that "inflates" by reversing the bytes, and leaves for later what starts with 'L'.
 */

import test from 'ava'
import { FrameParser, Opcode, ProtocolError, Session, type MessageCompression, type SessionEvent } from '../../src/protocol/index.js'
import { assertSessionFailed, concat, peerFrame, rfcMask, utf8 } from './helpers.js'

const decoder = new TextDecoder()

/** The fake extension: compressed bytes are the message reversed; a message starting with 'L' (once inflated, its last byte) is left for later. */
function fake (): MessageCompression & { calls: number } {
  return {
    calls: 0,
    decompress (parts) {
      this.calls++
      const data = concat(parts).reverse()
      return data[0] === 0x4c ? undefined : data
    },
    compress: () => undefined,
    heldBytes: 0
  }
}

const compressed = (text: string, opcode = Opcode.Text): Uint8Array => peerFrame('server', { opcode, rsv: 0x40, payload: utf8(text).reverse() })
const plain = (text: string): Uint8Array => peerFrame('server', { opcode: Opcode.Text, payload: utf8(text) })

function describe (events: readonly SessionEvent[]): string[] {
  return events.map((e) => {
    switch (e.type) {
      case 'message': return `message:${decoder.decode(e.data)}`
      case 'compressed': return `compressed:${decoder.decode(concat(e.parts).reverse())}`
      case 'error': return `error:${e.error.closeCode}`
      case 'close': return `close:${e.code}`
      default: return e.type
    }
  })
}

test('a message left for later comes out as `compressed`; what follows waits, in order, and is handed out after its bytes', (t) => {
  const z = fake()
  const s = new Session({ role: 'server', compression: z })
  const first = s.receive(concat([compressed('a'), compressed('Large one'), plain('b'), peerFrame('server', { opcode: Opcode.Ping, payload: utf8('p') })]))
  t.deepEqual(describe(first), ['message:a', 'compressed:Large one'])
  t.true(s.awaitingDecompressed)
  // Later reads are held too, unparsed into events; a close among them waits its turn.
  t.deepEqual(s.receive(concat([compressed('c'), peerFrame('server', { opcode: Opcode.Close, payload: Uint8Array.of(0x03, 0xe8) }), plain('after close')])), [])
  t.is(z.calls, 2, 'nothing after the message left for later was inflated')
  t.true(s.heldBytes >= 4 * 256, `held frames are counted (${s.heldBytes})`)
  const rest = s.decompressed(utf8('Large one'))
  t.deepEqual(describe(rest), ['message:Large one', 'message:b', 'ping', 'message:c', 'close:1000'])
  t.false(s.awaitingDecompressed)
  t.is(s.heldBytes, 0)
  // The ping was answered once its turn came (its pong is queued).
  t.true(s.pendingOutput > 0)
})

test('the next message left for later stops handing out again; a fragmented one too', (t) => {
  const s = new Session({ role: 'server', compression: fake() })
  const body = utf8('Lfragmented').reverse()
  const frag1 = peerFrame('server', { opcode: Opcode.Text, rsv: 0x40, fin: false, payload: body.subarray(0, 4) })
  const frag2 = peerFrame('server', { opcode: Opcode.Continuation, payload: body.subarray(4) })
  t.deepEqual(describe(s.receive(concat([compressed('L1'), compressed('x'), frag1, frag2, plain('y')]))), ['compressed:L1'])
  t.deepEqual(describe(s.decompressed(utf8('L1'))), ['message:L1', 'message:x', 'compressed:Lfragmented'])
  t.deepEqual(describe(s.decompressed(utf8('Lfragmented'))), ['message:Lfragmented', 'message:y'])
})

test('text that is not UTF-8 once inflated elsewhere → 1007, and what was held is dropped', (t) => {
  const s = new Session({ role: 'server', compression: fake() })
  s.receive(concat([compressed('L'), plain('never')]))
  const events = s.decompressed(Uint8Array.of(0x4c, 0xc3, 0x28))
  assertSessionFailed(t, s, events, 'WS_ERR_INVALID_UTF8', 1007)
  t.deepEqual(describe(events), ['error:1007'])
  t.is(s.heldBytes, 0)
  t.deepEqual(s.receive(plain('later')), [])
})

test('failWith while a message is left for later (1009 from the inflater, 1013 from a budget): one error, held frames dropped', (t) => {
  const s = new Session({ role: 'server', compression: fake() })
  s.receive(concat([compressed('L'), plain('held')]))
  const events = s.failWith(new ProtocolError('WS_ERR_MESSAGE_TOO_BIG'))
  t.deepEqual(describe(events), ['error:1009'])
  t.false(s.awaitingDecompressed)
  t.is(s.heldBytes, 0)
  t.throws(() => s.decompressed(utf8('L')), { message: /no compressed message awaits/ })
})

test('a protocol error after the message left for later is reported after it, not before', (t) => {
  const s = new Session({ role: 'server', compression: fake() })
  // An unmasked frame from a client is 1002 (§5.1).
  const bad = peerFrame('client', { opcode: Opcode.Text, payload: utf8('unmasked') })
  t.deepEqual(describe(s.receive(concat([compressed('L'), plain('ok'), bad]))), ['compressed:L'])
  t.deepEqual(describe(s.decompressed(utf8('L'))), ['message:L', 'message:ok', 'error:1002'])
})

test('sendCompressed: a payload compressed elsewhere goes with RSV1, one buffer or parts (a client masks across them); undefined sends the message plain', (t) => {
  const parts = [utf8('first part, '), utf8('then a second, '), utf8('and a third')]
  for (const role of ['server', 'client'] as const) {
    const s = new Session({ role, mask: rfcMask, compression: fake() })
    t.true(s.sendCompressed(utf8('ignored'), false, parts))
    t.true(s.sendCompressed(utf8('ignored'), true, parts[1]))
    t.true(s.sendCompressed(utf8('as it is'), false, undefined))
    const frames = new FrameParser({ role: role === 'server' ? 'client' : 'server', allowedReservedBits: 0x40 }).push(concat(s.takeOutput()))
    t.deepEqual(frames.map((f) => [f.opcode, f.rsv1, decoder.decode(f.payload)]), [
      [Opcode.Text, true, 'first part, then a second, and a third'],
      [Opcode.Binary, true, 'then a second, '],
      [Opcode.Text, false, 'as it is']
    ])
  }
  // The parts are queued as they are (a server does not copy them).
  const s = new Session({ role: 'server', compression: fake() })
  const big = [new Uint8Array(8192).fill(1), new Uint8Array(8192).fill(2)]
  s.sendCompressed(new Uint8Array(0), true, big)
  const out = s.takeOutput()
  t.is(out[1], big[0])
  t.is(out[2], big[1])
  t.throws(() => new Session({ role: 'server' }).sendCompressed(utf8('x'), false, utf8('y')), { instanceOf: TypeError })
})

test('sendParts with an extension negotiated: one binary frame, RSV1 clear (an uncompressed message), the parts by reference, not joined', (t) => {
  const s = new Session({ role: 'server', compression: fake() })
  const parts = [new Uint8Array(8192).fill(1), new Uint8Array(8192).fill(2)]
  t.true(s.sendParts(parts))
  const out = s.takeOutput()
  t.is(out[1], parts[0])
  t.is(out[2], parts[1])
  const [frame] = new FrameParser({ role: 'client', allowedReservedBits: 0x40 }).push(concat(out))
  t.deepEqual([frame.opcode, frame.rsv1, frame.fin, frame.payload.length], [Opcode.Binary, false, true, 16384])
})
