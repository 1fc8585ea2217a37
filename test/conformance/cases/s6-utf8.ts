// Section 6: UTF-8 handling. Text messages must be valid UTF-8 (RFC 6455
// §5.6, §8.1), invalid ones fail the connection with 1007; 6.4.x checks
// fail-fast on the first invalid octet, and 6.5-6.23 walk Markus Kuhn's
// UTF-8 decoder stress test as Autobahn does.

import {
  CLOSE_NORMAL_BY_ME,
  type CaseDef,
  FAIL_1007,
  type Step,
  closeAfter,
  frame,
  killAfter,
  later,
  message,
  msg,
  timeout,
} from '../engine.js'
import { OP, concat, hex, isValidUtf8, utf8 } from '../wire.js'

const HELLO = utf8('Hello-µ@ßöäüàá-UTF-8!!')
const HELLO1 = utf8('Hello-µ@ßöä')
const HELLO2 = utf8('üàá-UTF-8!!')
const KOSME = hex('ceba e1bdb9 cf83 cebc ceb5') // "κόσμε"

function valid(id: string, description: string, payload: Uint8Array, steps: Step[]): CaseDef {
  return { id, description, expected: { OK: [msg(payload)] }, expectedClose: CLOSE_NORMAL_BY_ME, steps: [...steps, closeAfter(1)] }
}

// 6.3.x: κόσμε + a UTF-16 surrogate (invalid at octet 12) + "edited"
const BAD_SURROGATE = concat([KOSME, hex('eda080'), hex('656469746564')])

// 6.4.x: κόσμε + F4 90 80 80 (U+110000, out of range: invalid at octet 12, the 0x90) + "edited"
const P1 = KOSME
const P2 = hex('f4908080')
const P3 = hex('656469746564')
const BAD_RANGE = concat([P1, P2, P3])

/**
 * Fail-fast: the valid part is accepted (we get to "timeout A"); the invalid octet
 * should fail the connection at once (OK). If the server only notices at the end of
 * the message we also reach "timeout B" (NON-STRICT).
 */
function failFast(id: string, description: string, first: Step[], second: Step[], third: Step[]): CaseDef {
  return {
    id,
    description,
    expected: { OK: [timeout('A')], 'NON-STRICT': [timeout('A'), timeout('B')] },
    nonStrict: 'invalid UTF-8 rejected only once the message was complete, not fail-fast',
    expectedClose: FAIL_1007,
    steps: [
      ...first,
      later(1, 'A', [...second, later(1, 'B', [...third, killAfter(1)], { requireOpen: true, record: true })], {
        requireOpen: true,
        record: true,
      }),
    ],
  }
}

const fixed: CaseDef[] = [
  valid('6.1.1', 'Send text message of length 0.', new Uint8Array(0), [frame(OP.TEXT, '')]),
  valid('6.1.2', 'Send fragmented text message, 3 fragments each of length 0.', new Uint8Array(0), [
    frame(OP.TEXT, '', { fin: false }),
    frame(OP.CONT, '', { fin: false }),
    frame(OP.CONT, '', { fin: true }),
  ]),
  valid('6.1.3', 'Send fragmented text message, 3 fragments, first and last of length 0.', utf8('middle frame payload'), [
    frame(OP.TEXT, '', { fin: false }),
    frame(OP.CONT, 'middle frame payload', { fin: false }),
    frame(OP.CONT, '', { fin: true }),
  ]),
  valid('6.2.1', 'Send a valid UTF-8 text message in one fragment.', HELLO, [message(HELLO)]),
  valid('6.2.2', 'Send a valid UTF-8 text message in two fragments, split on a code point boundary.', HELLO, [
    frame(OP.TEXT, HELLO1, { fin: false }),
    frame(OP.CONT, HELLO2, { fin: true }),
  ]),
  valid('6.2.3', 'Send a valid UTF-8 text message in fragments of 1 octet.', HELLO, [message(HELLO, { frag: 1 })]),
  valid('6.2.4', 'Send a valid UTF-8 text message (κόσμε) in fragments of 1 octet.', KOSME, [message(KOSME, { frag: 1 })]),
  {
    id: '6.3.1',
    description: 'Send invalid UTF-8 text message unfragmented.',
    expected: { OK: [] },
    expectedClose: FAIL_1007,
    steps: [message(BAD_SURROGATE), killAfter(1)],
  },
  {
    id: '6.3.2',
    description: 'Send invalid UTF-8 text message in fragments of 1 octet.',
    expected: { OK: [] },
    expectedClose: FAIL_1007,
    steps: [message(BAD_SURROGATE, { frag: 1 }), killAfter(1)],
  },
  failFast(
    '6.4.1',
    'Invalid UTF-8 text in 3 frames: valid part, wait, frame making it invalid, wait, rest.',
    [frame(OP.TEXT, P1, { fin: false })],
    [frame(OP.CONT, P2, { fin: false })],
    [frame(OP.CONT, P3, { fin: true })],
  ),
  failFast(
    '6.4.2',
    'As 6.4.1, but the 2nd frame is only the single octet that makes the payload invalid.',
    [frame(OP.TEXT, BAD_RANGE.subarray(0, 12), { fin: false })],
    [frame(OP.CONT, BAD_RANGE.subarray(12, 13), { fin: false })],
    [frame(OP.CONT, BAD_RANGE.subarray(13), { fin: true })],
  ),
  failFast(
    '6.4.3',
    'As 6.4.1, but the 3 parts are chops of one frame, not separate frames.',
    [{ op: 'beginMessage' }, { op: 'beginFrame', length: BAD_RANGE.length }, { op: 'frameData', data: P1 }],
    [{ op: 'frameData', data: P2 }],
    [{ op: 'frameData', data: P3 }, { op: 'endMessage' }],
  ),
  failFast(
    '6.4.4',
    'As 6.4.2, but the 3 parts are chops of one frame, not separate frames.',
    [{ op: 'beginMessage' }, { op: 'beginFrame', length: BAD_RANGE.length }, { op: 'frameData', data: BAD_RANGE.subarray(0, 12) }],
    [{ op: 'frameData', data: BAD_RANGE.subarray(12, 13) }],
    [{ op: 'frameData', data: BAD_RANGE.subarray(13) }, { op: 'endMessage' }],
  ),
]

// ---- 6.5 - 6.23: UTF-8 decoder stress test (cl.cam.ac.uk/~mgk25/ucs/examples/UTF-8-test.txt) ----

type Seq = [valid: boolean, payload: Uint8Array]
const V = (h: string): Seq => [true, hex(h)]
const X = (h: string): Seq => [false, hex(h)]
const octets = (from: number, to: number, sep?: number): Uint8Array => {
  const out: number[] = []
  for (let i = from; i < to; i++) {
    out.push(i)
    if (sep !== undefined) out.push(sep)
  }
  return new Uint8Array(out)
}

const missingLast = ['c0', 'e080', 'f08080', 'f8808080', 'fc80808080', 'df', 'efbf', 'f7bfbf', 'fbbfbfbf', 'fdbfbfbfbf']

function nonCharacters(): Seq[] {
  const out: Seq[] = [V('efbfbe'), V('efbfbf')]
  for (const z1 of ['f0', 'f1', 'f2', 'f3', 'f4']) {
    for (const z2 of ['8f', '9f', 'af', 'bf']) {
      if (z1 === 'f4' && z2 !== '8f') continue // beyond U+10FFFF
      for (const z3 of ['be', 'bf']) {
        const h = z1 + z2 + 'bf' + z3
        if (h === 'f08fbfbe' || h === 'f08fbfbf') continue // overlong forms
        out.push(V(h))
      }
    }
  }
  return out
}

export const UTF8_SEQUENCES: Array<[title: string, seqs: Seq[]]> = [
  ['Some valid UTF-8 sequences', [V('68656c6c6f 24 776f726c64'), V('68656c6c6f c2a2 776f726c64'), V('68656c6c6f e282ac 776f726c64'), V('68656c6c6f f0a4ada2 776f726c64'), [true, KOSME]]],
  ['All prefixes of a valid UTF-8 string that contains multi-byte code points', Array.from({ length: KOSME.length }, (_, i): Seq => [isValidUtf8(KOSME.subarray(0, i + 1)), KOSME.slice(0, i + 1)])],
  ['First possible sequence of a certain length', [V('00'), V('c280'), V('e0a080'), V('f0908080')]],
  ['First possible sequence length 5/6 (invalid codepoints)', [X('f888808080'), X('fc8480808080')]],
  ['Last possible sequence of a certain length', [V('7f'), V('dfbf'), V('efbfbf'), V('f48fbfbf')]],
  ['Last possible sequence length 4/5/6 (invalid codepoints)', [X('f7bfbfbf'), X('fbbfbfbfbf'), X('fdbfbfbfbfbf')]],
  ['Other boundary conditions', [V('ed9fbf'), V('ee8080'), V('efbfbd'), V('f48fbfbf'), X('f4908080')]],
  ['Unexpected continuation bytes', [X('80'), X('bf'), X('80bf'), X('80bf80'), X('80bf80bf'), X('80bf80bf80'), X('80bf80bf80bf'), [false, octets(0x80, 0xbf)]]],
  ['Lonely start characters', [[false, octets(0xc0, 0xdf, 0x20)], [false, octets(0xe0, 0xef, 0x20)], [false, octets(0xf0, 0xf7, 0x20)], [false, octets(0xf8, 0xfb, 0x20)], [false, octets(0xfc, 0xfd, 0x20)]]],
  ['Sequences with last continuation byte missing', missingLast.map((h) => X(h))],
  ['Concatenation of incomplete sequences', [X(missingLast.join(''))]],
  ['Impossible bytes', [X('fe'), X('ff'), X('fefeffff')]],
  ['Examples of an overlong ASCII character', [X('c0af'), X('e080af'), X('f08080af'), X('f8808080af'), X('fc80808080af')]],
  ['Maximum overlong sequences', [X('c1bf'), X('e09fbf'), X('f08fbfbf'), X('f887bfbfbf'), X('fc83bfbfbfbf')]],
  ['Overlong representation of the NUL character', [X('c080'), X('e08080'), X('f0808080'), X('f880808080'), X('fc8080808080')]],
  ['Single UTF-16 surrogates', [X('eda080'), X('edadbf'), X('edae80'), X('edafbf'), X('edb080'), X('edbe80'), X('edbfbf')]],
  ['Paired UTF-16 surrogates', [X('eda080edb080'), X('eda080edbfbf'), X('edadbfedb080'), X('edadbfedbfbf'), X('edae80edb080'), X('edae80edbfbf'), X('edafbfedb080'), X('edafbfedbfbf')]],
  ['Non-character code points (valid UTF-8)', nonCharacters()],
  ['Unicode specials (i.e. replacement char)', [V('efbfb9'), V('efbfba'), V('efbfbb'), V('efbfbc'), V('efbfbd'), V('efbfbe'), V('efbfbf')]],
]

const generated: CaseDef[] = UTF8_SEQUENCES.flatMap(([title, seqs], i) =>
  seqs.map(([ok, payload], j): CaseDef => ({
    id: `6.${i + 5}.${j + 1}`,
    description: `${title}: text message with ${ok ? 'valid' : 'invalid'} UTF-8 payload 0x${Buffer.from(payload).toString('hex')} in one frame.`,
    expected: { OK: ok ? [msg(payload)] : [] },
    expectedClose: ok ? CLOSE_NORMAL_BY_ME : FAIL_1007,
    steps: [message(payload), killAfter(0.5)],
  })),
)

export const cases: CaseDef[] = [...fixed, ...generated]
