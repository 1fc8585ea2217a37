// Section 10: Misc — 10.1.1 auto-fragmentation: a 64 KiB text message sent in
// 1300-octet frames must be echoed whole. Autobahn also checks its own frame
// counts (50 continuation + 1 text frame), which we keep.

import { CLOSE_NORMAL_BY_ME, type CaseDef, killAfter, msg } from '../engine.js'
import { OP, bin } from '../wire.js'

const PAYLOAD = bin('*'.repeat(65536))
const FRAG = 1300

export const cases: CaseDef[] = [
  {
    id: '10.1.1',
    description: 'Send text message of 65536 octets auto-fragmented into frames of 1300 octets.',
    expected: { OK: [msg(PAYLOAD)] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    steps: [killAfter(10)],
    onOpen: (c) => {
      c.conn.autoFragmentSize = FRAG
      c.conn.sendMessage(PAYLOAD)
    },
    after: (c) => {
      if (!c.conn.connectionWasOpen) {
        c.behavior = 'FAILED'
        c.result = 'WebSocket connection was never open'
        return
      }
      const want = { [OP.CONT]: Math.floor(PAYLOAD.length / FRAG), [OP.TEXT]: PAYLOAD.length % FRAG > 0 ? 1 : 0 }
      const got = { [OP.CONT]: c.conn.txFrameStats[OP.CONT] ?? 0, [OP.TEXT]: c.conn.txFrameStats[OP.TEXT] ?? 0 }
      if (want[OP.CONT] !== got[OP.CONT] || want[OP.TEXT] !== got[OP.TEXT]) {
        c.behavior = 'FAILED'
        c.result = `Frames transmitted ${JSON.stringify(got)} does not match what we expected ${JSON.stringify(want)}.`
      }
    },
  },
]
