/**
 * RFC 6455 §5.7 examples, byte for byte, both ways: parsed by the role that receives them and
 * encoded by the role that sends them (unmasked = server → client, masked = client → server).
 * The mask is pinned to the RFC's key 37 fa 21 3d by passing a mask function.
 */

import test from 'ava'
import { FrameParser, Opcode, encodeFrame, type Frame, type Role } from '../../src/protocol/index.js'
import { RFC_KEY, concat, hex, naiveMask, newSession, output, rfcMask, toHex, utf8 } from './helpers.js'

interface Example {
  name: string
  /** Who sends these bytes. */
  sender: Role
  bytes: Uint8Array
  frames: Array<{ opcode: number, fin: boolean, payload: Uint8Array }>
}

const bin256 = Uint8Array.from({ length: 256 }, (_, i) => i & 0xff)
const bin64k = Uint8Array.from({ length: 65536 }, (_, i) => (i * 7) & 0xff)

const EXAMPLES: Example[] = [
  {
    name: 'single-frame unmasked text "Hello"',
    sender: 'server',
    bytes: hex('81 05 48 65 6c 6c 6f'),
    frames: [{ opcode: Opcode.Text, fin: true, payload: utf8('Hello') }]
  },
  {
    name: 'single-frame masked text "Hello"',
    sender: 'client',
    bytes: hex('81 85 37 fa 21 3d 7f 9f 4d 51 58'),
    frames: [{ opcode: Opcode.Text, fin: true, payload: utf8('Hello') }]
  },
  {
    name: 'fragmented unmasked text "Hel" + "lo"',
    sender: 'server',
    bytes: hex('01 03 48 65 6c  80 02 6c 6f'),
    frames: [
      { opcode: Opcode.Text, fin: false, payload: utf8('Hel') },
      { opcode: Opcode.Continuation, fin: true, payload: utf8('lo') }
    ]
  },
  {
    name: 'unmasked ping "Hello"',
    sender: 'server',
    bytes: hex('89 05 48 65 6c 6c 6f'),
    frames: [{ opcode: Opcode.Ping, fin: true, payload: utf8('Hello') }]
  },
  {
    name: 'masked pong "Hello"',
    sender: 'client',
    bytes: hex('8a 85 37 fa 21 3d 7f 9f 4d 51 58'),
    frames: [{ opcode: Opcode.Pong, fin: true, payload: utf8('Hello') }]
  },
  {
    name: '256 bytes binary in a single unmasked frame (16-bit length)',
    sender: 'server',
    bytes: concat([hex('82 7e 01 00'), bin256]),
    frames: [{ opcode: Opcode.Binary, fin: true, payload: bin256 }]
  },
  {
    name: '64 KiB binary in a single unmasked frame (64-bit length)',
    sender: 'server',
    bytes: concat([hex('82 7f 00 00 00 00 00 01 00 00'), bin64k]),
    frames: [{ opcode: Opcode.Binary, fin: true, payload: bin64k }]
  }
]

/** The same example as the other role would send it: masked with the RFC key, or unmasked. */
function flipRole (ex: Example): Example {
  const sender: Role = ex.sender === 'server' ? 'client' : 'server'
  const parts: Uint8Array[] = []
  for (const f of ex.frames) {
    const encoded = concat(encodeFrame({ opcode: f.opcode, payload: f.payload, fin: f.fin }, { role: sender, mask: rfcMask }))
    parts.push(encoded)
  }
  return { name: `${ex.name}, as sent by a ${sender}`, sender, bytes: concat(parts), frames: ex.frames }
}

function assertFrames (t: import('ava').ExecutionContext, got: Frame[], want: Example['frames']): void {
  t.is(got.length, want.length)
  for (let i = 0; i < want.length; i++) {
    t.is(got[i].opcode, want[i].opcode)
    t.is(got[i].fin, want[i].fin)
    t.false(got[i].rsv1 || got[i].rsv2 || got[i].rsv3)
    t.deepEqual(got[i].payload, want[i].payload)
  }
}

for (const ex of EXAMPLES) {
  test(`§5.7 decode: ${ex.name}`, (t) => {
    const receiver: Role = ex.sender === 'server' ? 'client' : 'server'
    const parser = new FrameParser({ role: receiver })
    assertFrames(t, parser.push(ex.bytes.slice()), ex.frames)
    t.is(parser.bufferedBytes, 0)
  })

  test(`§5.7 encode: ${ex.name}`, (t) => {
    const encoded = concat(ex.frames.flatMap((f) => encodeFrame({ opcode: f.opcode, payload: f.payload, fin: f.fin }, { role: ex.sender, mask: rfcMask })))
    t.is(toHex(encoded.subarray(0, 16)), toHex(ex.bytes.subarray(0, 16)))
    t.deepEqual(encoded, ex.bytes)
  })

  test(`§5.7 both roles: ${ex.name}, re-encoded by the other role, round-trips`, (t) => {
    const flipped = flipRole(ex)
    const receiver: Role = flipped.sender === 'server' ? 'client' : 'server'
    assertFrames(t, new FrameParser({ role: receiver }).push(flipped.bytes.slice()), ex.frames)
    // A client's bytes are the server's with the mask bit set, the key inserted and the payload masked (§5.3).
    if (flipped.sender === 'client') {
      const first = flipped.bytes
      t.is(first[1] & 0x80, 0x80)
      const headerLen = ex.frames[0].payload.length < 126 ? 2 : ex.frames[0].payload.length < 65536 ? 4 : 10
      t.deepEqual(Array.from(first.subarray(headerLen, headerLen + 4)), [...RFC_KEY])
      t.deepEqual(first.subarray(headerLen + 4, headerLen + 4 + ex.frames[0].payload.length), naiveMask(ex.frames[0].payload, RFC_KEY))
    }
  })
}

test('§5.7 encode: a server encodes unmasked frames as header + the payload itself, uncopied', (t) => {
  const payload = utf8('Hello')
  const out = encodeFrame({ opcode: Opcode.Text, payload }, { role: 'server' })
  t.is(out.length, 2)
  t.is(out[1], payload)
  t.deepEqual(out[0], hex('81 05'))
  // An empty payload needs no second buffer.
  t.deepEqual(encodeFrame({ opcode: Opcode.Close, payload: new Uint8Array(0) }, { role: 'server' }), [hex('88 00')])
})

test('§5.3 encode: a client must pass a mask source', (t) => {
  t.throws(() => encodeFrame({ opcode: Opcode.Text, payload: utf8('x') }, { role: 'client' }), { instanceOf: TypeError })
})

test('§5.7 Session: a client sends "Hello" as the RFC\'s masked bytes', (t) => {
  const client = newSession('client')
  t.true(client.sendText('Hello'))
  t.deepEqual(output(client), hex('81 85 37 fa 21 3d 7f 9f 4d 51 58'))
})

test('§5.7 Session: a server sends "Hello", the fragmented "Hel"+"lo", the ping and the 256/64 KiB binaries as the RFC\'s bytes', (t) => {
  const server = newSession('server')
  server.sendText('Hello')
  server.sendFragment(Opcode.Text, utf8('Hel'), false)
  server.sendFragment(Opcode.Continuation, utf8('lo'), true)
  server.sendPing(utf8('Hello'))
  server.sendBinary(bin256)
  server.sendBinary(bin64k)
  t.deepEqual(output(server), concat(EXAMPLES.filter((e) => e.sender === 'server').map((e) => e.bytes)))
})

test('§5.7 Session: a client answers the RFC\'s unmasked ping with the RFC\'s masked pong', (t) => {
  const client = newSession('client')
  const events = client.receive(hex('89 05 48 65 6c 6c 6f'))
  t.is(events.length, 1)
  t.is(events[0].type, 'ping')
  if (events[0].type === 'ping') t.deepEqual(events[0].data, utf8('Hello'))
  t.deepEqual(output(client), hex('8a 85 37 fa 21 3d 7f 9f 4d 51 58'))
})

test('§5.7 Session: a server receives the RFC\'s masked "Hello" as one text message', (t) => {
  const server = newSession('server')
  const events = server.receive(hex('81 85 37 fa 21 3d 7f 9f 4d 51 58'))
  t.deepEqual(events, [{ type: 'message', data: utf8('Hello'), binary: false }])
})

test('§5.7 Session: a client reassembles the RFC\'s fragmented "Hel"+"lo" and receives the binaries', (t) => {
  const client = newSession('client')
  const events = client.receive(concat([hex('01 03 48 65 6c  80 02 6c 6f'), hex('82 7e 01 00'), bin256, hex('82 7f 00 00 00 00 00 01 00 00'), bin64k]))
  t.deepEqual(events, [
    { type: 'message', data: utf8('Hello'), binary: false },
    { type: 'message', data: bin256, binary: true },
    { type: 'message', data: bin64k, binary: true }
  ])
})
