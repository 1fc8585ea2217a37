// Section 5: Fragmentation (RFC 6455 §5.4): control frames must not be
// fragmented, continuation frames need an open message, control frames may be
// interleaved, and octet chopping on the wire must not matter.

import { CLOSE_NORMAL_BY_ME, type CaseDef, FAIL_1002, type Step, closeAfter, frame, killAfter, later, msg, pong } from '../engine.js'
import { OP } from '../wire.js'

type W = { sync?: boolean; chop?: number }
const how = (w: W): string => (w.sync ? ' (frame-wise writes)' : w.chop ? ' (octet-wise writes)' : '')

function fragmentedControl(id: string, opcode: number): CaseDef {
  return {
    id,
    description: `Send ${opcode === OP.PING ? 'ping' : 'pong'} in 2 fragments.`,
    expected: { OK: [] },
    expectedClose: FAIL_1002,
    steps: [frame(opcode, 'fragment1', { fin: false }), frame(OP.CONT, 'fragment2', { fin: true }), killAfter(1)],
  }
}

function fragmentedText(id: string, w: W): CaseDef {
  return {
    id,
    description: `Send text message in 2 fragments${how(w)}.`,
    expected: { OK: [msg('fragment1fragment2')] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    steps: [frame(OP.TEXT, 'fragment1', { fin: false, ...w }), frame(OP.CONT, 'fragment2', { fin: true, ...w }), closeAfter(1)],
  }
}

function pingBetween(id: string, w: W): CaseDef {
  return {
    id,
    description: `Send text message in 2 fragments with a ping between them${how(w)}.`,
    expected: { OK: [pong('ping payload'), msg('fragment1fragment2')] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    steps: [
      frame(OP.TEXT, 'fragment1', { fin: false, ...w }),
      frame(OP.PING, 'ping payload', { fin: true, ...w }),
      frame(OP.CONT, 'fragment2', { fin: true, ...w }),
      closeAfter(1),
    ],
  }
}

function orphanContinuation(id: string, fin: boolean, w: W): CaseDef {
  return {
    id,
    description: `Send unfragmented continuation frame (FIN=${fin ? 1 : 0}) with no message to continue, then a text message${how(w)}.`,
    expected: { OK: [] },
    expectedClose: FAIL_1002,
    steps: [frame(OP.CONT, 'non-continuation payload', { fin, ...w }), frame(OP.TEXT, 'Hello, world!', { fin: true, ...w }), killAfter(1)],
  }
}

function repeated(id: string, firstFin: boolean): CaseDef {
  const steps: Step[] = []
  for (let i = 0; i < 2; i++) {
    steps.push(frame(OP.CONT, 'fragment1', { fin: firstFin }), frame(OP.TEXT, 'fragment2', { fin: false }), frame(OP.CONT, 'fragment3', { fin: true }))
  }
  steps.push(killAfter(1))
  return {
    id,
    description: `Repeated 2 times: continuation (FIN=${firstFin ? 1 : 0}), text (FIN=0), continuation (FIN=1).`,
    expected: { OK: [] },
    expectedClose: FAIL_1002,
    steps,
  }
}

function pingsAcrossWait(id: string, sync: boolean): CaseDef {
  const f = ['fragment1', 'fragment2', 'fragment3', 'fragment4', 'fragment5']
  const pings = ['pongme 1!', 'pongme 2!']
  return {
    id,
    description: `Text message in 5 fragments with 2 pings between them and a 1 s wait in the middle${sync ? ' (frame-wise writes)' : ''}.`,
    expected: { OK: [pong(pings[0]), pong(pings[1]), msg(f.join(''))] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    steps: [
      frame(OP.TEXT, f[0], { fin: false, sync }),
      frame(OP.CONT, f[1], { fin: false, sync }),
      frame(OP.PING, pings[0], { fin: true, sync }),
      later(1, 'part2', [
        frame(OP.CONT, f[2], { fin: false, sync }),
        frame(OP.CONT, f[3], { fin: false, sync }),
        frame(OP.PING, pings[1], { fin: true, sync }),
        frame(OP.CONT, f[4], { fin: true, sync }),
        closeAfter(1),
      ]),
    ],
  }
}

export const cases: CaseDef[] = [
  fragmentedControl('5.1', OP.PING),
  fragmentedControl('5.2', OP.PONG),
  fragmentedText('5.3', {}),
  fragmentedText('5.4', { sync: true }),
  fragmentedText('5.5', { chop: 1 }),
  pingBetween('5.6', {}),
  pingBetween('5.7', { sync: true }),
  pingBetween('5.8', { chop: 1 }),
  orphanContinuation('5.9', true, {}),
  orphanContinuation('5.10', true, { sync: true }),
  orphanContinuation('5.11', true, { chop: 1 }),
  orphanContinuation('5.12', false, {}),
  orphanContinuation('5.13', false, { sync: true }),
  orphanContinuation('5.14', false, { chop: 1 }),
  {
    id: '5.15',
    description: 'Send text message in 2 fragments, then continuation (FIN=0) and text (FIN=1) with no message to continue.',
    expected: { OK: [msg('fragment1fragment2')], 'NON-STRICT': [] },
    nonStrict: 'failed before echoing the complete message sent ahead of the bad frames',
    expectedClose: FAIL_1002,
    steps: [
      frame(OP.TEXT, 'fragment1', { fin: false }),
      frame(OP.CONT, 'fragment2', { fin: true }),
      frame(OP.CONT, 'fragment3', { fin: false }),
      frame(OP.TEXT, 'fragment4', { fin: true }),
      killAfter(1),
    ],
  },
  repeated('5.16', false),
  repeated('5.17', true),
  {
    id: '5.18',
    description: 'Send text message in 2 fragments, both with opcode text (the second must be a continuation).',
    expected: { OK: [] },
    expectedClose: FAIL_1002,
    steps: [frame(OP.TEXT, 'fragment1', { fin: false }), frame(OP.TEXT, 'fragment2', { fin: true }), killAfter(1)],
  },
  pingsAcrossWait('5.19', false),
  pingsAcrossWait('5.20', true),
]
