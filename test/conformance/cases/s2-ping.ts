// Section 2: Pings/Pongs (RFC 6455 §5.5.2, §5.5.3).

import { CLOSE_NORMAL_BY_ME, type CaseDef, FAIL_1002, type Step, close, closeAfter, frame, killAfter, pong } from '../engine.js'
import { OP, bin } from '../wire.js'

const tenPings = (chop?: number): { steps: Step[]; pongs: ReturnType<typeof pong>[] } => {
  const steps: Step[] = []
  const pongs = []
  for (let i = 0; i < 10; i++) {
    steps.push(frame(OP.PING, `payload-${i}`, { chop }))
    pongs.push(pong(`payload-${i}`))
  }
  steps.push(closeAfter(3))
  return { steps, pongs }
}

const p10 = tenPings()
const p11 = tenPings(1)

export const cases: CaseDef[] = [
  {
    id: '2.1',
    description: 'Send ping without payload.',
    expected: { OK: [pong('')] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    steps: [frame(OP.PING), closeAfter(1)],
  },
  {
    id: '2.2',
    description: 'Send ping with small text payload.',
    expected: { OK: [pong('Hello, world!')] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    steps: [frame(OP.PING, 'Hello, world!'), closeAfter(1)],
  },
  {
    id: '2.3',
    description: 'Send ping with small binary (non UTF-8) payload.',
    expected: { OK: [pong(bin('\x00\xff\xfe\xfd\xfc\xfb\x00\xff'))] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    steps: [frame(OP.PING, bin('\x00\xff\xfe\xfd\xfc\xfb\x00\xff')), closeAfter(1)],
  },
  {
    id: '2.4',
    description: 'Send ping with binary payload of 125 octets.',
    expected: { OK: [pong(bin('\xfe'.repeat(125)))] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    steps: [frame(OP.PING, bin('\xfe'.repeat(125))), closeAfter(1)],
  },
  {
    // Control frames carry at most 125 octets (§5.5).
    id: '2.5',
    description: 'Send ping with binary payload of 126 octets: connection must be failed (1002).',
    expected: { OK: [] },
    expectedClose: FAIL_1002,
    steps: [frame(OP.PING, bin('\xfe'.repeat(126))), killAfter(1)],
  },
  {
    id: '2.6',
    description: 'Send ping with binary payload of 125 octets, written octet by octet.',
    expected: { OK: [pong(bin('\xfe'.repeat(125)))] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    steps: [frame(OP.PING, bin('\xfe'.repeat(125)), { chop: 1 }), closeAfter(2)],
  },
  {
    id: '2.7',
    description: 'Send unsolicited pong without payload; nothing comes back.',
    expected: { OK: [] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    steps: [frame(OP.PONG), close(1000), closeAfter(1)],
  },
  {
    id: '2.8',
    description: 'Send unsolicited pong with payload; nothing comes back.',
    expected: { OK: [] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    steps: [frame(OP.PONG, 'unsolicited pong payload'), close(1000), closeAfter(1)],
  },
  {
    id: '2.9',
    description: 'Send unsolicited pong, then ping: only the ping is answered.',
    expected: { OK: [pong('ping payload')] },
    expectedClose: CLOSE_NORMAL_BY_ME,
    steps: [frame(OP.PONG, 'unsolicited pong payload'), frame(OP.PING, 'ping payload'), closeAfter(1)],
  },
  {
    id: '2.10',
    description: 'Send 10 pings with payload; expect 10 pongs (not required by the spec, checked anyway).',
    expected: { OK: p10.pongs },
    expectedClose: CLOSE_NORMAL_BY_ME,
    steps: p10.steps,
  },
  {
    id: '2.11',
    description: 'Send 10 pings with payload, written octet by octet; expect 10 pongs.',
    expected: { OK: p11.pongs },
    expectedClose: CLOSE_NORMAL_BY_ME,
    steps: p11.steps,
  },
]
