/**
 * FrameParser: every §5.2 header rule with the error code and close code it yields, for both
 * roles, fed whole and one byte at a time; limits at and one past the edge; buffering.
 */

import test from 'ava'
import { DEFAULT_MAX_FRAME_SIZE, FrameParser, Opcode, ProtocolError, type ProtocolErrorCode, type Role } from '../../src/protocol/index.js'
import { goesDirect } from '../../src/protocol/frame-parser.js'
import { TEST_KEY, assertParseError, concat, hex, oneByteAtATime, parseAll, peerFrame, rawFrame, utf8 } from './helpers.js'

const ROLES: Role[] = ['server', 'client']
const other = (role: Role): Role => role === 'server' ? 'client' : 'server'

/**
 * One failure case: `bytes` must make a parser of `role` throw `code` / `closeCode`, both when fed
 * whole and when fed byte by byte; `failsAt` (byte count) says how early the byte-wise feed fails.
 */
function failure (name: string, role: Role, bytes: Uint8Array, code: ProtocolErrorCode, closeCode: number, failsAt = bytes.length): void {
  test(`${name} (${role})`, (t) => {
    assertParseError(t, () => new FrameParser({ role }).push(bytes.slice()), code, closeCode)
    const parser = new FrameParser({ role })
    const copy = bytes.slice()
    let fed = 0
    const err = t.throws(() => {
      for (; fed < copy.length; fed++) parser.push(copy.subarray(fed, fed + 1))
    }, { instanceOf: ProtocolError })
    t.is(err?.code, code)
    // The byte that broke the rule is the last one fed.
    t.is(fed + 1, failsAt, 'fails as soon as the offending header byte arrives')
  })
}

// §5.1: "a server MUST close the connection upon receiving a frame that is not masked" and
// "a client MUST close a connection if it detects a masked frame".
failure('§5.1 a server rejects an unmasked frame → 1002', 'server', hex('81 05 48 65 6c 6c 6f'), 'WS_ERR_EXPECTED_MASK', 1002, 2)
failure('§5.1 a client rejects a masked frame → 1002', 'client', hex('81 85 37 fa 21 3d 7f 9f 4d 51 58'), 'WS_ERR_UNEXPECTED_MASK', 1002, 2)
failure('§5.1 a server rejects an unmasked control frame → 1002', 'server', hex('89 00'), 'WS_ERR_EXPECTED_MASK', 1002, 2)
failure('§5.1 a client rejects a masked control frame → 1002', 'client', rawFrame({ opcode: Opcode.Pong, key: TEST_KEY }), 'WS_ERR_UNEXPECTED_MASK', 1002, 2)

for (const role of ROLES) {
  // §5.2: "RSV1, RSV2, RSV3: 1 bit each. MUST be 0 unless an extension is negotiated".
  for (const rsv of [0x40, 0x20, 0x10, 0x70]) {
    failure(`§5.2 reserved bits 0x${rsv.toString(16)} without an extension → 1002`, role, peerFrame(role, { rsv, opcode: Opcode.Text, payload: utf8('x') }), 'WS_ERR_UNEXPECTED_RSV', 1002, 2)
  }
  failure('§5.2 a reserved bit on a control frame → 1002', role, peerFrame(role, { rsv: 0x40, opcode: Opcode.Ping }), 'WS_ERR_UNEXPECTED_RSV', 1002, 2)

  // §5.2: opcodes 3-7 and B-F are reserved; "If an unknown opcode is received, the receiving endpoint MUST _Fail_".
  for (const opcode of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
    failure(`§5.2 unknown opcode ${opcode} → 1002`, role, peerFrame(role, { opcode }), 'WS_ERR_INVALID_OPCODE', 1002, 2)
  }

  // §5.5: "All control frames MUST have a payload length of 125 bytes or less and MUST NOT be fragmented."
  for (const opcode of [Opcode.Close, Opcode.Ping, Opcode.Pong]) {
    failure(`§5.5 control opcode ${opcode} with 126 bytes (16-bit length) → 1002`, role, peerFrame(role, { opcode, payload: new Uint8Array(126) }), 'WS_ERR_CONTROL_TOO_LONG', 1002, 2)
    failure(`§5.5 control opcode ${opcode} with a 64-bit length → 1002`, role, peerFrame(role, { opcode, payload: new Uint8Array(70000) }), 'WS_ERR_CONTROL_TOO_LONG', 1002, 2)
    failure(`§5.5 control opcode ${opcode} fragmented (FIN clear) → 1002`, role, peerFrame(role, { opcode, fin: false, payload: utf8('x') }), 'WS_ERR_FRAGMENTED_CONTROL', 1002, 2)
  }

  // §5.2: "the most significant bit MUST be 0" of the 64-bit length.
  failure('§5.2 64-bit length with its top bit set → 1002', role,
    concat([hex('82'), hex(role === 'server' ? 'ff' : '7f'), hex('80 00 00 00 00 00 00 00'), role === 'server' ? new Uint8Array(TEST_KEY) : new Uint8Array(0)]),
    'WS_ERR_LENGTH_TOP_BIT', 1002, role === 'server' ? 14 : 10)
  failure('§5.2 64-bit length ff…ff → 1002', role,
    concat([hex('82'), hex(role === 'server' ? 'ff' : '7f'), hex('ff ff ff ff ff ff ff ff'), role === 'server' ? new Uint8Array(TEST_KEY) : new Uint8Array(0)]),
    'WS_ERR_LENGTH_TOP_BIT', 1002, role === 'server' ? 14 : 10)

  // §5.2: "the minimal number of bytes MUST be used to encode the length".
  const hl16 = role === 'server' ? 8 : 4
  const hl64 = role === 'server' ? 14 : 10
  for (const n of [0, 1, 125]) {
    failure(`§5.2 length ${n} in the 16-bit form → 1002`, role, peerFrame(role, { opcode: Opcode.Binary, payload: new Uint8Array(n), lengthForm: 16 }), 'WS_ERR_INVALID_LENGTH', 1002, hl16)
  }
  for (const n of [0, 125, 126, 65535]) {
    failure(`§5.2 length ${n} in the 64-bit form → 1002`, role, peerFrame(role, { opcode: Opcode.Binary, payload: new Uint8Array(n), lengthForm: 64 }), 'WS_ERR_INVALID_LENGTH', 1002, hl64)
  }

  test(`§5.2 minimal lengths at each form's lower edge are accepted: 125, 126 (16-bit), 65536 (64-bit) (${role})`, (t) => {
    for (const n of [0, 125, 126, 65535, 65536]) {
      const payload = Uint8Array.from({ length: n }, (_, i) => i & 0xff)
      const frames = new FrameParser({ role }).push(peerFrame(role, { opcode: Opcode.Binary, payload }))
      t.is(frames.length, 1)
      t.deepEqual(frames[0].payload, payload)
    }
  })

  test(`§5.2 allowedReservedBits lets a negotiated RSV1 through and reports it; other bits still fail (${role})`, (t) => {
    const parser = new FrameParser({ role, allowedReservedBits: 0x40 })
    const frames = parser.push(peerFrame(role, { rsv: 0x40, opcode: Opcode.Text, payload: utf8('z') }))
    t.is(frames.length, 1)
    t.true(frames[0].rsv1)
    t.false(frames[0].rsv2)
    t.false(frames[0].rsv3)
    assertParseError(t, () => parser.push(peerFrame(role, { rsv: 0x20, opcode: Opcode.Text })), 'WS_ERR_UNEXPECTED_RSV', 1002)
    const all = new FrameParser({ role, allowedReservedBits: 0x70 }).push(peerFrame(role, { rsv: 0x70, opcode: Opcode.Binary }))
    t.true(all[0].rsv1 && all[0].rsv2 && all[0].rsv3)
  })

  test(`§5.5 control frames of exactly 125 bytes pass; 126 fail (${role})`, (t) => {
    for (const opcode of [Opcode.Close, Opcode.Ping, Opcode.Pong]) {
      const payload = new Uint8Array(125).fill(0x61)
      const frames = new FrameParser({ role }).push(peerFrame(role, { opcode, payload }))
      t.is(frames.length, 1)
      t.is(frames[0].payload.length, 125)
      assertParseError(t, () => new FrameParser({ role }).push(peerFrame(role, { opcode, payload: new Uint8Array(126) })), 'WS_ERR_CONTROL_TOO_LONG', 1002)
    }
  })

  // The limit is checked from the header: "length > max_size before read_exact(length)".
  for (const [form, max] of [['7-bit', 100], ['16-bit', 1000], ['64-bit', 70000]] as const) {
    test(`maxFrameSize (${form} length): exactly at the limit passes, one byte over → 1009 from the header alone (${role})`, (t) => {
      const at = new FrameParser({ role, maxFrameSize: max })
      const payload = new Uint8Array(max).fill(7)
      const frames = at.push(peerFrame(role, { opcode: Opcode.Binary, payload }))
      t.is(frames.length, 1)
      t.is(frames[0].payload.length, max)

      // Only the header of the oversized frame is fed: the refusal must not wait for payload.
      const over = new FrameParser({ role, maxFrameSize: max })
      const header = peerFrame(role, { opcode: Opcode.Binary, declaredLength: max + 1 })
      assertParseError(t, () => over.push(header.slice()), 'WS_ERR_FRAME_TOO_BIG', 1009)

      // Byte by byte: nothing beyond the header is ever buffered.
      const slow = new FrameParser({ role, maxFrameSize: max })
      const err = t.throws(() => {
        for (let i = 0; i < header.length; i++) {
          slow.push(header.slice(i, i + 1))
          t.true(slow.bufferedBytes <= 14)
        }
      }, { instanceOf: ProtocolError })
      t.is(err?.code, 'WS_ERR_FRAME_TOO_BIG')
    })
  }

  test(`maxFrameSize bounds data frames only: with a limit of 10 a 125-byte ping and a close with a long reason still pass (${role})`, (t) => {
    const parser = new FrameParser({ role, maxFrameSize: 10 })
    const ping = parser.push(peerFrame(role, { opcode: Opcode.Ping, payload: new Uint8Array(125).fill(1) }))
    t.deepEqual(ping.map((f) => [f.opcode, f.payload.length]), [[Opcode.Ping, 125]])
    const close = parser.push(peerFrame(role, { opcode: Opcode.Close, payload: new Uint8Array(32).fill(0x61).fill(0x03, 0, 1).fill(0xf1, 1, 2) }))
    t.deepEqual(close.map((f) => [f.opcode, f.payload.length]), [[Opcode.Close, 32]])
  })

  test(`maxFrameSize default is 16 MiB: a header declaring 16 MiB + 1 fails at once, 2^53 too (${role})`, (t) => {
    t.is(DEFAULT_MAX_FRAME_SIZE, 16 * 1024 * 1024)
    assertParseError(t, () => new FrameParser({ role }).push(peerFrame(role, { opcode: Opcode.Binary, declaredLength: DEFAULT_MAX_FRAME_SIZE + 1 })), 'WS_ERR_FRAME_TOO_BIG', 1009)
    assertParseError(t, () => new FrameParser({ role }).push(peerFrame(role, { opcode: Opcode.Binary, declaredLength: 2 ** 53 })), 'WS_ERR_FRAME_TOO_BIG', 1009)
    // Exactly 16 MiB is accepted from the header (the parser then waits for the payload).
    const parser = new FrameParser({ role })
    t.deepEqual(parser.push(peerFrame(role, { opcode: Opcode.Binary, declaredLength: DEFAULT_MAX_FRAME_SIZE })), [])
    t.is(parser.incomplete?.length, DEFAULT_MAX_FRAME_SIZE)
  })

  test(`a frame split across chunks is gathered; bufferedBytes and incomplete track it (${role})`, (t) => {
    const payload = Uint8Array.from({ length: 10000 }, (_, i) => (i * 31) & 0xff)
    const bytes = peerFrame(role, { opcode: Opcode.Binary, payload })
    const parser = new FrameParser({ role })
    t.deepEqual(parser.push(bytes.slice(0, 1)), [])
    t.is(parser.bufferedBytes, 1)
    const headerLen = role === 'server' ? 8 : 4
    t.deepEqual(parser.push(bytes.slice(1, headerLen + 100)), [])
    t.is(parser.bufferedBytes, 100)
    t.is(parser.incomplete?.length, 10000)
    t.is(parser.incomplete?.received, 100)
    t.is(parser.incomplete?.opcode, Opcode.Binary)
    // Small pieces and one big piece, to go through both ways of holding parts.
    for (let at = headerLen + 100; at < headerLen + 200; at++) parser.push(bytes.slice(at, at + 1))
    t.is(parser.bufferedBytes, 200)
    t.deepEqual(concat(parser.incomplete?.parts ?? []), payload.subarray(0, 200))
    t.deepEqual(parser.push(bytes.slice(headerLen + 200, headerLen + 5200)), [])
    const frames = parser.push(concat([bytes.slice(headerLen + 5200), peerFrame(role, { opcode: Opcode.Text, payload: utf8('next') })]))
    t.is(frames.length, 2)
    t.deepEqual(frames[0].payload, payload)
    t.deepEqual(frames[1].payload, utf8('next'))
    t.is(parser.bufferedBytes, 0)
    t.is(parser.incomplete, undefined)
  })

  test(`a large frame split across chunks (gathered straight into its final buffer) is whole and unmasked, and incomplete shows its prefix (${role})`, (t) => {
    const payload = Uint8Array.from({ length: 300 * 1024 + 3 }, (_, i) => (i * 131 + (i >>> 9)) & 0xff)
    const bytes = peerFrame(role, { opcode: Opcode.Binary, payload })
    const headerLen = role === 'server' ? 14 : 10
    // Odd cut points: parts before the final buffer is made (under half of the frame), the part
    // that makes it, later parts at every key offset, and a final part followed by another frame.
    const cuts = [5, headerLen + 1000, headerLen + 9001, headerLen + 9002, headerLen + 70000, headerLen + 200003, bytes.length - 1]
    const parser = new FrameParser({ role, maxFrameSize: 1 << 20 })
    let from = 0
    for (const cut of cuts) {
      t.deepEqual(parser.push(bytes.slice(from, cut)), [])
      const got = Math.max(0, cut - headerLen)
      if (got > 0) {
        t.is(parser.incomplete?.received, got)
        t.deepEqual(concat(parser.incomplete?.parts ?? []), payload.subarray(0, got))
        t.true(parser.heldBytes >= payload.length)
      }
      from = cut
    }
    const frames = parser.push(concat([bytes.slice(from), peerFrame(role, { opcode: Opcode.Text, payload: utf8('next') })]))
    t.is(frames.length, 2)
    t.deepEqual(frames[0].payload, payload)
    t.deepEqual(frames[1].payload, utf8('next'))
    t.is(parser.incomplete, undefined)
    // The same frame in 64 KiB and 4 KiB reads, never asking for incomplete: with 4 KiB, parts
    // gathered still masked are moved into the final buffer and unmasked there.
    for (const read of [65536, 4096]) {
      const again = new FrameParser({ role, maxFrameSize: 1 << 20 })
      const out = []
      for (let at = 0; at < bytes.length; at += read) out.push(...again.push(bytes.slice(at, at + read)))
      t.is(out.length, 1)
      t.deepEqual(out[0].payload, payload)
    }
  })

  test(`empty chunks are harmless at every point of a frame (${role})`, (t) => {
    const bytes = peerFrame(role, { opcode: Opcode.Text, payload: utf8('hello world') })
    const parser = new FrameParser({ role })
    const frames = []
    for (let i = 0; i < bytes.length; i++) {
      frames.push(...parser.push(new Uint8Array(0)))
      frames.push(...parser.push(bytes.slice(i, i + 1)))
    }
    frames.push(...parser.push(new Uint8Array(0)))
    t.is(frames.length, 1)
    t.deepEqual(frames[0].payload, utf8('hello world'))
  })

  test(`frames completed before a bad header in the same chunk are kept in the output array (${role})`, (t) => {
    const parser = new FrameParser({ role })
    const out: import('../../src/protocol/index.js').Frame[] = []
    const good = peerFrame(role, { opcode: Opcode.Text, payload: utf8('ok') })
    const bad = peerFrame(role, { opcode: 3 })
    assertParseError(t, () => parser.push(concat([good, good, bad]), out), 'WS_ERR_INVALID_OPCODE', 1002)
    t.is(out.length, 2)
    t.deepEqual(out[1].payload, utf8('ok'))
  })

  test(`the payload of a frame inside one chunk is a view of that chunk, unmasked in place (${role})`, (t) => {
    const chunk = peerFrame(role, { opcode: Opcode.Binary, payload: utf8('abcdef') })
    const frames = new FrameParser({ role }).push(chunk)
    t.is(frames[0].payload.buffer, chunk.buffer)
    t.deepEqual(chunk.subarray(chunk.length - 6), utf8('abcdef'))
  })

  test(`the masking rule follows the role: the other role's frames are refused (${role})`, (t) => {
    const parser = new FrameParser({ role })
    const fromWrongSide = rawFrame({ opcode: Opcode.Text, payload: utf8('x'), key: other(role) === 'server' ? TEST_KEY : undefined })
    assertParseError(t, () => parser.push(fromWrongSide), role === 'server' ? 'WS_ERR_EXPECTED_MASK' : 'WS_ERR_UNEXPECTED_MASK', 1002)
  })
}

test('a header split at every byte is parsed the same (all header forms, both roles)', (t) => {
  for (const role of ROLES) {
    for (const n of [0, 5, 125, 126, 300, 65535, 65536]) {
      const payload = Uint8Array.from({ length: n }, (_, i) => (i * 13 + 1) & 0xff)
      const bytes = peerFrame(role, { opcode: Opcode.Binary, payload })
      const headerLen = bytes.length - n
      for (let cut = 1; cut <= headerLen; cut++) {
        const frames = parseAll(new FrameParser({ role }), [bytes.subarray(0, cut), bytes.subarray(cut)])
        t.is(frames.length, 1)
        if (frames.length === 1) t.true(frames[0].payload.length === n && frames[0].payload[n - 1] === payload[n - 1])
      }
      if (n <= 300) t.deepEqual(parseAll(new FrameParser({ role }), oneByteAtATime(bytes))[0].payload, payload)
    }
  }
})

test('goesDirect: a split frame goes into its final buffer at once up to 64 KiB, a longer one once half arrived, also past 2^31 bytes (a 32-bit shift went negative there)', (t) => {
  t.true(goesDirect(16 * 1024, 1), 'up to 64 KiB: from its first part')
  t.true(goesDirect(65536, 1))
  t.false(goesDirect(65537, 32768))
  t.true(goesDirect(65537, 32769))
  // (1.6 GiB << 1) is negative in 32-bit arithmetic: frames over 1 GiB never went direct.
  t.true(((1.6 * 2 ** 30) << 1) < 0)
  t.true(goesDirect(3 * 2 ** 30, 1.6 * 2 ** 30))
  t.false(goesDirect(3 * 2 ** 30, 1.4 * 2 ** 30))
})

for (const role of ROLES) {
  test(`${role}: a 16 KiB frame split across reads is copied into one buffer of its length from its first part, and handed out as that buffer`, (t) => {
    const payload = new Uint8Array(16 * 1024).map((_, i) => (i * 7) & 0xff)
    const wire = peerFrame(role, { opcode: Opcode.Binary, payload })
    const sizes: number[] = []
    const buffers: Uint8Array[] = []
    const parser = new FrameParser({ role, alloc: (n) => { sizes.push(n); const b = new Uint8Array(n); buffers.push(b); return b } })
    // A first part of 100 payload bytes: not half of the frame, yet the final buffer is taken now.
    const header = wire.length - payload.length
    t.deepEqual(parser.push(wire.slice(0, header + 100)), [])
    t.deepEqual(sizes, [16 * 1024], 'one buffer of the declared length, at the first part')
    const frames = parser.push(wire.slice(header + 100))
    t.is(frames.length, 1)
    t.is(frames[0].payload, buffers[0], 'no join: the payload is that buffer')
    t.deepEqual(frames[0].payload, payload)
    t.deepEqual(sizes, [16 * 1024], 'nothing else allocated')
  })
}

// §5.3: payload byte i is XORed with key byte i mod 4. Small frames are unmasked four bytes at a
// time wherever they start in the read, bytes only at the end: every length 0-125, every alignment.
test('§5.3 small frames back to back in one chunk: every length 0-125 at every offset comes out unmasked, each a view of the chunk', (t) => {
  const keys = [[0x12, 0x34, 0x56, 0x78], [0xff, 0x00, 0x80, 0x01], [0, 0, 0, 0]]
  for (const lead of [0, 1, 2, 3]) {
    const payloads: Uint8Array[] = []
    const parts: Uint8Array[] = [new Uint8Array(lead)]
    for (let n = 0; n <= 125; n++) {
      const payload = new Uint8Array(n)
      for (let i = 0; i < n; i++) payload[i] = (i * 31 + n + lead) & 0xff
      payloads.push(payload)
      parts.push(rawFrame({ opcode: n % 2 === 0 ? Opcode.Binary : Opcode.Text, payload, key: keys[n % keys.length] }))
    }
    const chunk = concat(parts)
    const frames = new FrameParser({ role: 'server' }).push(chunk.subarray(lead))
    t.is(frames.length, payloads.length)
    for (let n = 0; n <= 125; n++) {
      t.deepEqual(frames[n].payload, payloads[n], `length ${n} after ${lead} leading bytes`)
      t.is(frames[n].payload.buffer, chunk.buffer)
      t.is(frames[n].opcode, n % 2 === 0 ? Opcode.Binary : Opcode.Text)
      t.true(frames[n].fin)
    }
  }
})

for (const role of ROLES) {
  test(`a taker is offered each whole small frame while none waits in the output array; what it refuses, and every frame after, come as frames (${role})`, (t) => {
    const offered: string[] = []
    const taker = {
      takeFrame: (b0: number, view: DataView | undefined, chunk: Uint8Array, start: number, end: number, key: number): boolean => {
        // Offered as it came: masked with `key` (0, and no view, when not masked); unmasked here in a copy.
        const payload = chunk.slice(start, end)
        for (let i = 0; i < payload.length; i++) payload[i] ^= key >>> (24 - 8 * (i & 3))
        if (view !== undefined) t.is(view.getUint8(start - 1), chunk[start - 1])
        t.is(key !== 0, role === 'server')
        t.is(view !== undefined, role === 'server')
        offered.push(`${b0.toString(16)}:${new TextDecoder().decode(payload)}`)
        return b0 !== 0x89
      }
    }
    const parser = new FrameParser({ role })
    const bytes = concat([
      peerFrame(role, { opcode: Opcode.Binary, payload: utf8('one') }),
      peerFrame(role, { opcode: Opcode.Ping, payload: utf8('p') }),
      peerFrame(role, { opcode: Opcode.Binary, payload: utf8('two') })
    ])
    const frames = parser.push(bytes, [], taker)
    // The payload is offered masked, and left as it came when refused (the ping's frame is unmasked);
    // 'two' is not offered: the refused ping waits before it.
    t.deepEqual(offered, ['82:one', '89:p'])
    t.deepEqual(frames.map((f) => `${f.opcode}:${new TextDecoder().decode(f.payload)}`), [`${Opcode.Ping}:p`, `${Opcode.Binary}:two`])
    // A frame split across chunks is gathered, never offered.
    offered.length = 0
    const split = peerFrame(role, { opcode: Opcode.Binary, payload: utf8('three') })
    t.deepEqual(parser.push(split.slice(0, 3), [], taker), [])
    const rest = parser.push(split.slice(3), [], taker)
    t.deepEqual(offered, [])
    t.deepEqual(rest.map((f) => new TextDecoder().decode(f.payload)), ['three'])
  })
}
