// The case table: every Autobahn fuzzingclient case of sections 1-7, 9, 10, 12 and 13, in
// Autobahn's order. (Section 8 does not exist; 12 and 13 are permessage-deflate.)

import type { CaseDef } from '../engine.js'
import { cases as s1 } from './s1-framing.js'
import { cases as s10 } from './s10-misc.js'
import { cases as s2 } from './s2-ping.js'
import { cases as s3 } from './s3-rsv.js'
import { cases as s4 } from './s4-opcodes.js'
import { cases as s5 } from './s5-fragmentation.js'
import { cases as s6 } from './s6-utf8.js'
import { cases as s7 } from './s7-close.js'
import { cases as s9 } from './s9-limits.js'
import { section12, section13 } from './s12-s13-deflate.js'

export const SECTIONS: Record<string, string> = {
  '1': 'Framing',
  '2': 'Pings/Pongs',
  '3': 'Reserved Bits',
  '4': 'Opcodes',
  '5': 'Fragmentation',
  '6': 'UTF-8 Handling',
  '7': 'Close Handling',
  '9': 'Limits/Performance',
  '10': 'Misc',
  '12': 'Compression: payloads',
  '13': 'Compression: parameters',
}

export function allCases(o: { full: boolean }): CaseDef[] {
  return [...s1, ...s2, ...s3, ...s4, ...s5, ...s6, ...s7, ...s9, ...s10, ...section12(o), ...section13(o)]
}

/**
 * Autobahn's case patterns: a pattern with '*' is a regex prefix match ('.' literal,
 * '*' any run), as in caseset.py; a pattern without '*' names one case exactly.
 */
export function selectCases(all: CaseDef[], patterns: string[] | undefined): CaseDef[] {
  if (!patterns || patterns.length === 0) return all
  const tests = patterns.map((p) => {
    if (!p.includes('*')) return (id: string) => id === p
    const re = new RegExp('^' + p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*'))
    return (id: string) => re.test(id)
  })
  return all.filter((c) => tests.some((t) => t(c.id)))
}
