// Section 1: Framing — text (1.1.x) and binary (1.2.x) messages around the
// 7-bit / 16-bit / 64-bit payload length boundaries (RFC 6455 §5.2).

import { CLOSE_NORMAL_BY_ME, type CaseDef, frame, killAfter, msg } from '../engine.js'
import { OP, bin } from '../wire.js'

// [case number, payload length, chopsize]
const SIZES: Array<[number, number, number | undefined]> = [
  [1, 0, undefined],
  [2, 125, undefined],
  [3, 126, undefined],
  [4, 127, undefined],
  [5, 128, undefined],
  [6, 65535, undefined],
  [7, 65536, undefined],
  [8, 65536, 997], // octets written in chops of 997
]

function rows(sub: 1 | 2): CaseDef[] {
  const binary = sub === 2
  return SIZES.map(([n, len, chop]) => {
    const payload = bin((binary ? '\xfe' : '*').repeat(len))
    return {
      id: `1.${sub}.${n}`,
      description: `Send ${binary ? 'binary' : 'text'} message with payload length ${len}${chop ? `, written in chops of ${chop} octets` : ''}.`,
      expected: { OK: [msg(payload, binary)] },
      expectedClose: CLOSE_NORMAL_BY_ME,
      steps: [frame(binary ? OP.BINARY : OP.TEXT, payload, { chop }), killAfter(len >= 65535 ? 10 : 1)],
    }
  })
}

export const cases: CaseDef[] = [...rows(1), ...rows(2)]
