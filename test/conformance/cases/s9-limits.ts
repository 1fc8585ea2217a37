// Section 9: Limits/Performance — large messages, many fragments, chopped
// writes and round-trip series, at Autobahn's sizes (up to 16 MiB; the whole
// section takes about 11 s) and with Autobahn's exact frames: 9.3/9.4 go through
// the client's Autobahn fragment loop, so 9.3.1/9.4.1 end with the empty FIN
// continuation (65,537 frames). Autobahn only checks that the echo arrives
// (type and length) within WAITSECS and reports the time; we also compare the
// echoed octets (Autobahn leaves that as a FIXME).

import type { CaseCtx, CaseDef } from '../engine.js'
import { CLOSE_NORMAL_BY_ME } from '../engine.js'
import { OP, bin, bytesEqual, repeatTo } from '../wire.js'

const KiB = 1024
const MiB = 1024 * 1024

function judgeEcho(c: CaseCtx, payload: Uint8Array, binary: boolean, want: () => Uint8Array, wantBinary: boolean): void {
  const kind = wantBinary ? 'binary' : 'text'
  const expected = want()
  if (binary !== wantBinary) c.result = `Expected ${kind} message with payload, but got ${binary ? 'binary' : 'text'}.`
  else if (payload.length !== expected.length)
    c.result = `Expected ${kind} message with payload of length ${expected.length}, but got ${payload.length}.`
  else if (!bytesEqual(payload, expected)) c.result = `Echoed ${kind} payload of length ${payload.length} differs from what was sent.`
  else {
    c.behavior = 'OK'
    c.result = `Received ${kind} message of length ${payload.length}.`
  }
  c.conn.sendCloseFrame(1000)
}

function lazy(f: () => Uint8Array): () => Uint8Array {
  let v: Uint8Array | undefined
  return () => (v ??= f())
}

const mib = (n: number): string => (n >= MiB ? `${n / MiB} MiB` : `${n / KiB} KiB`)

/** 9.1 / 9.2: one message of increasing size; 9.5 / 9.6: 1 MiB written in chops. */
function single(id: string, binary: boolean, len: number, waitSecs: number, chop?: number): CaseDef {
  const unit = binary ? bin('\x00\xfe\x23\xfa\xf0') : bin('BAsd7&jh23')
  const payload = lazy(() => repeatTo(unit, len))
  return {
    id,
    description:
      `Send ${binary ? 'binary' : 'text'} message with payload of ${mib(len)}` +
      (chop ? `, written in chops of ${chop} octets.` : '.'),
    expectedClose: CLOSE_NORMAL_BY_ME,
    reportTime: true,
    timeoutMs: waitSecs * 1000 + 10_000,
    onOpen: (c) => {
      c.result = `Did not receive message within ${waitSecs} seconds.`
      c.conn.sendFrame({ opcode: binary ? OP.BINARY : OP.TEXT, payload: payload(), chopsize: chop })
      c.conn.closeAfter(waitSecs)
    },
    onMessage: (c, p, b) => judgeEcho(c, p, b, payload, binary),
  }
}

/** 9.3 / 9.4: a 4 MiB message in fragments of increasing size. */
function fragmented(id: string, binary: boolean, fill: string, frag: number): CaseDef {
  const len = 4 * MiB
  const payload = lazy(() => bin(fill.repeat(len)))
  return {
    id,
    description:
      `Send fragmented ${binary ? 'binary' : 'text'} message of ${mib(len)}` +
      ` in fragments of ${frag < KiB ? `${frag} octets` : mib(frag)}.`,
    expectedClose: CLOSE_NORMAL_BY_ME,
    reportTime: true,
    timeoutMs: 110_000,
    onOpen: (c) => {
      c.result = 'Did not receive message within 100 seconds.'
      c.conn.sendMessage(payload(), binary, frag)
      c.conn.closeAfter(100)
    },
    onMessage: (c, p, b) => judgeEcho(c, p, b, payload, binary),
  }
}

/** 9.7 / 9.8: 1000 messages, one at a time, each sent when the previous echo arrives. */
function roundTrips(id: string, binary: boolean, len: number, count: number, waitSecs: number): CaseDef {
  const want = bin((binary ? '\xfe' : '*').repeat(len))
  return {
    id,
    description: `Send ${count} ${binary ? 'binary' : 'text'} messages of payload size ${len}, one round trip at a time.`,
    expectedClose: CLOSE_NORMAL_BY_ME,
    reportTime: true,
    timeoutMs: waitSecs * 1000 + 10_000,
    onOpen: (c) => {
      c.result = `Case did not finish within ${waitSecs} seconds.`
      c.conn.closeAfter(waitSecs)
      c.data.count = 1
      c.conn.sendFrame({ opcode: binary ? OP.BINARY : OP.TEXT, payload: want })
    },
    onMessage: (c, p, b) => {
      const n = c.data.count as number
      if (b !== binary || !bytesEqual(p, want)) {
        c.behavior = 'FAILED'
        c.result = `Echoed message type or payload differs from what I sent (got binary = ${b}, payload length = ${p.length}).`
        c.conn.sendCloseFrame(1000)
      } else if (n < count) {
        c.data.count = n + 1
        c.conn.sendFrame({ opcode: binary ? OP.BINARY : OP.TEXT, payload: want })
      } else {
        c.behavior = 'OK'
        c.result = 'Ok, received all echoed messages in time.'
        c.conn.sendCloseFrame(1000)
      }
    },
  }
}

const SIZES: Array<[number, number, number]> = [
  // [size, 9.1 wait s, 9.2 wait s]
  [64 * KiB, 10, 10],
  [256 * KiB, 10, 10],
  [1 * MiB, 100, 10],
  [4 * MiB, 100, 10],
  [8 * MiB, 100, 100],
  [16 * MiB, 100, 100],
]
const FRAGS = [64, 256, 1 * KiB, 4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB]
const CHOPS = [64, 128, 256, 512, 1024, 2048]
const RTT: Array<[number, number]> = [
  // [payload size, wait s]; 1000 messages each
  [0, 60],
  [16, 60],
  [64, 60],
  [256, 120],
  [1024, 240],
  [4096, 480],
]

export const cases: CaseDef[] = [
  ...SIZES.map(([s, w], i) => single(`9.1.${i + 1}`, false, s, w)),
  ...SIZES.map(([s, , w], i) => single(`9.2.${i + 1}`, true, s, w)),
  ...FRAGS.map((f, i) => fragmented(`9.3.${i + 1}`, false, '*', f)),
  // Autobahn fills 9.4.1 with 0xFE and the other 9.4.x with '*'.
  ...FRAGS.map((f, i) => fragmented(`9.4.${i + 1}`, true, i === 0 ? '\xfe' : '*', f)),
  ...CHOPS.map((ch, i) => single(`9.5.${i + 1}`, false, 1 * MiB, 1000, ch)),
  ...CHOPS.map((ch, i) => single(`9.6.${i + 1}`, true, 1 * MiB, 1000, ch)),
  ...RTT.map(([len, w], i) => roundTrips(`9.7.${i + 1}`, false, len, 1000, w)),
  ...RTT.map(([len, w], i) => roundTrips(`9.8.${i + 1}`, true, len, 1000, w)),
]
