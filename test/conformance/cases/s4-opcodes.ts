// Section 4: Opcodes. Reserved non-control (3-7) and control (0xB-0xF)
// opcodes must fail the connection (RFC 6455 §5.2).

import { type CaseDef, FAIL_1002, type Step, frame, killAfter, msg } from '../engine.js'
import { OP } from '../wire.js'

const HELLO = 'Hello, world!'

function single(id: string, opcode: number, withPayload: boolean): CaseDef {
  return {
    id,
    description: `Send frame with reserved ${opcode < 8 ? 'non-control' : 'control'} opcode ${opcode}${withPayload ? ' and non-empty payload' : ''}.`,
    expected: { OK: [] },
    expectedClose: FAIL_1002,
    steps: [frame(opcode, withPayload ? 'reserved opcode payload' : undefined), killAfter(1)],
  }
}

function afterMessage(id: string, opcode: number, withPayload: boolean, chop?: number): CaseDef {
  const steps: Step[] = [
    frame(OP.TEXT, HELLO, { chop }),
    frame(opcode, withPayload ? HELLO : undefined, { chop }),
    frame(OP.PING, undefined, { chop }),
    killAfter(1),
  ]
  return {
    id,
    description: `Send small text message, then frame with reserved opcode ${opcode}${withPayload ? ' and payload' : ''}, then ping${chop ? ' (octet-wise writes)' : ''}.`,
    expected: { OK: [msg(HELLO)], 'NON-STRICT': [] },
    nonStrict: 'failed before echoing the valid message sent ahead of the bad frame',
    expectedClose: FAIL_1002,
    steps,
  }
}

export const cases: CaseDef[] = [
  single('4.1.1', 3, false),
  single('4.1.2', 4, true),
  afterMessage('4.1.3', 5, false),
  afterMessage('4.1.4', 6, true),
  afterMessage('4.1.5', 7, true, 1),
  single('4.2.1', 11, false),
  single('4.2.2', 12, true),
  afterMessage('4.2.3', 13, false),
  afterMessage('4.2.4', 14, true),
  afterMessage('4.2.5', 15, true, 1),
]
