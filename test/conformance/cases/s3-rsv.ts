// Section 3: Reserved bits. RSV1-3 must be 0 unless an extension defines
// them (RFC 6455 §5.2); none is negotiated here, so each case must fail with 1002.

import { type CaseDef, FAIL_1002, frame, killAfter, msg } from '../engine.js'
import { OP, bin } from '../wire.js'

const HELLO = 'Hello, world!'
// Echo of the valid first message is OK; failing before echoing it is NON-STRICT.
const echoThenFail = { OK: [msg(HELLO)], 'NON-STRICT': [] }
const NS = 'failed before echoing the valid message sent ahead of the bad frame'

export const cases: CaseDef[] = [
  {
    id: '3.1',
    description: 'Send small text message with RSV = 1.',
    expected: { OK: [] },
    expectedClose: FAIL_1002,
    steps: [frame(OP.TEXT, HELLO, { rsv: 1 }), killAfter(1)],
  },
  {
    id: '3.2',
    description: 'Send small text message, then again with RSV = 2, then ping.',
    expected: echoThenFail,
    nonStrict: NS,
    expectedClose: FAIL_1002,
    steps: [frame(OP.TEXT, HELLO), frame(OP.TEXT, HELLO, { rsv: 2 }), frame(OP.PING), killAfter(1)],
  },
  {
    id: '3.3',
    description: 'Send small text message, then again with RSV = 3, then ping; frame-wise writes.',
    expected: echoThenFail,
    nonStrict: NS,
    expectedClose: FAIL_1002,
    steps: [frame(OP.TEXT, HELLO, { sync: true }), frame(OP.TEXT, HELLO, { rsv: 3, sync: true }), frame(OP.PING, undefined, { sync: true }), killAfter(1)],
  },
  {
    id: '3.4',
    description: 'Send small text message, then again with RSV = 4, then ping; octet-wise writes.',
    expected: echoThenFail,
    nonStrict: NS,
    expectedClose: FAIL_1002,
    steps: [frame(OP.TEXT, HELLO, { chop: 1 }), frame(OP.TEXT, HELLO, { rsv: 4, chop: 1 }), frame(OP.PING, undefined, { chop: 1 }), killAfter(1)],
  },
  {
    id: '3.5',
    description: 'Send small binary message with RSV = 5.',
    expected: { OK: [] },
    expectedClose: FAIL_1002,
    steps: [frame(OP.BINARY, bin('\x00\xff\xfe\xfd\xfc\xfb\x00\xff'), { rsv: 5 }), killAfter(1)],
  },
  {
    // Autobahn's 3.6 says "Ping" but sends a binary frame; reproduced as it is on the wire.
    id: '3.6',
    description: 'Send frame (binary, as Autobahn does) with RSV = 6.',
    expected: { OK: [] },
    expectedClose: FAIL_1002,
    steps: [frame(OP.BINARY, HELLO, { rsv: 6 }), killAfter(1)],
  },
  {
    id: '3.7',
    description: 'Send close with RSV = 7.',
    expected: { OK: [] },
    expectedClose: FAIL_1002,
    steps: [frame(OP.CLOSE, undefined, { rsv: 7 }), killAfter(1)],
  },
]
