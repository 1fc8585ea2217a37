// Section 7: Close handling (RFC 6455 §5.5.1, §7): what follows a close is
// ignored, close payload length and structure, valid and invalid close codes
// (§7.4), and codes outside the registry (informational).

import { type CaseCtx, type CaseDef, CLOSE_NORMAL_BY_ME, type ExpectedClose, close, frame, killAfter, msg, wrongCodeFails } from '../engine.js'
import { OP, hex, utf8 } from '../wire.js'

const BAD_UTF8_REASON = hex('cebae1bdb9cf83cebcceb5 eda080 656469746564')
const PROTOCOL_ERROR_BY_ME: ExpectedClose = { closedByMe: true, closeCode: [1002], requireClean: false }

/** Autobahn 7.1.6 / 7.13.x: behaviour left open by the spec, always INFORMATIONAL. */
function informational(note?: (c: CaseCtx) => string | undefined) {
  return (c: CaseCtx): void => {
    const n = note?.(c)
    if (n) c.result = n
    c.behavior = 'INFORMATIONAL'
    c.behaviorClose = 'INFORMATIONAL'
  }
}

// RFC 6455 §7.4.1 codes a peer may send, plus registered/private ranges (3000-4999).
const VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
// Codes that must never be on the wire: below 1000, reserved (1004-1006, 1016+), unassigned <3000.
const INVALID_CODES = [0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999]

export const cases: CaseDef[] = [
  {
    id: '7.1.1',
    description: 'Send a message followed by a close frame.',
    expected: { OK: [msg('Hello World!')] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    steps: [frame(OP.TEXT, 'Hello World!'), killAfter(1)],
    after: wrongCodeFails,
  },
  {
    id: '7.1.2',
    description: 'Send two close frames; the second is ignored.',
    expected: { OK: [] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    suppressClose: true,
    steps: [close(1000), frame(OP.CLOSE), killAfter(1)],
    after: wrongCodeFails,
  },
  {
    id: '7.1.3',
    description: 'Send a ping after the close frame; no pong.',
    expected: { OK: [] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    suppressClose: true,
    steps: [close(1000), frame(OP.PING), killAfter(1)],
    after: wrongCodeFails,
  },
  {
    id: '7.1.4',
    description: 'Send a text message after the close frame; it is ignored.',
    expected: { OK: [] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    suppressClose: true,
    steps: [close(1000), frame(OP.TEXT, 'Hello World!'), killAfter(1)],
    after: wrongCodeFails,
  },
  {
    id: '7.1.5',
    description: 'Send message fragment 1, then close, then fragment 2.',
    expected: { OK: [] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    suppressClose: true,
    steps: [frame(OP.TEXT, 'fragment1', { fin: false }), close(1000), frame(OP.CONT, 'fragment2', { fin: true }), killAfter(1)],
    after: wrongCodeFails,
  },
  {
    // Whether the 256 KiB echo is written before the close is processed is up to the implementation.
    id: '7.1.6',
    description: 'Send 256 KiB message, a small message, close, then ping, back to back.',
    expected: { OK: [msg('Hello World!')], 'NON-STRICT': [] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    suppressClose: true,
    steps: [frame(OP.TEXT, 'BAsd7&jh23', { len: 256 * 1024 }), frame(OP.TEXT, 'Hello World!'), close(1000), frame(OP.PING), killAfter(1)],
    after: informational((c) =>
      c.behavior === 'OK'
        ? 'Text message was processed before close.'
        : c.behavior === 'NON-STRICT'
          ? 'Close was processed before text message could be returned.'
          : undefined,
    ),
  },
  {
    id: '7.3.1',
    description: 'Send a close frame with payload length 0 (no code, no reason).',
    expected: { OK: [] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    suppressClose: true,
    steps: [close(), killAfter(1)],
    after: wrongCodeFails,
  },
  {
    id: '7.3.2',
    description: 'Send a close frame with payload length 1 (§5.5.1: a body starts with a 2-octet code).',
    expected: { OK: [] },
    expectedClose: PROTOCOL_ERROR_BY_ME,
    suppressClose: true,
    steps: [close(undefined, 'a'), killAfter(1)],
    after: wrongCodeFails,
  },
  {
    id: '7.3.3',
    description: 'Send a close frame with payload length 2 (code 1000).',
    expected: { OK: [] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    suppressClose: true,
    steps: [close(1000), killAfter(1)],
    after: wrongCodeFails,
  },
  {
    id: '7.3.4',
    description: 'Send a close frame with code and reason.',
    expected: { OK: [] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    suppressClose: true,
    steps: [close(1000, 'Hello World!'), killAfter(1)],
    after: wrongCodeFails,
  },
  {
    id: '7.3.5',
    description: 'Send a close frame with code and a reason of maximum length (123).',
    expected: { OK: [] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    suppressClose: true,
    steps: [close(1000, utf8('*'.repeat(123))), killAfter(1)],
    after: wrongCodeFails,
  },
  {
    id: '7.3.6',
    description: 'Send a close frame with code and a reason of 124 octets (payload 126 > 125, §5.5).',
    expected: { OK: [] },
    expectedClose: PROTOCOL_ERROR_BY_ME,
    suppressClose: true,
    steps: [close(1000, utf8('*'.repeat(124))), killAfter(1)],
    after: wrongCodeFails,
  },
  {
    id: '7.5.1',
    description: 'Send a close frame with an invalid UTF-8 reason.',
    expected: { OK: [] },
    expectedClose: { closedByMe: true, closeCode: [1002, 1007], requireClean: false },
    suppressClose: true,
    steps: [close(1000, BAD_UTF8_REASON), killAfter(1)],
    after: wrongCodeFails,
  },
  ...VALID_CODES.map(
    (code, i): CaseDef => ({
      id: `7.7.${i + 1}`,
      description: `Send close with valid close code ${code}.`,
      expected: { OK: [] },
      expectedClose: { closedByMe: true, closeCode: [1000, code], requireClean: true },
      steps: [close(code), killAfter(1)],
      after: wrongCodeFails,
    }),
  ),
  ...INVALID_CODES.map(
    (code, i): CaseDef => ({
      id: `7.9.${i + 1}`,
      description: `Send close with invalid close code ${code}.`,
      expected: { OK: [] },
      expectedClose: PROTOCOL_ERROR_BY_ME,
      steps: [close(code), killAfter(1)],
      after: wrongCodeFails,
    }),
  ),
  ...[5000, 65535].map(
    (code, i): CaseDef => ({
      id: `7.13.${i + 1}`,
      description: `Send close with close code ${code} (outside any range; behaviour undefined by the spec).`,
      expected: { OK: [] },
      expectedClose: { closedByMe: true, closeCode: [1000, code, 1002], requireClean: false },
      suppressClose: true,
      steps: [close(code), killAfter(1)],
      after: informational(() => 'Actual events are undefined by the spec.'),
    }),
  ),
]
