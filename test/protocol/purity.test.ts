/**
 * DESIGN.md "Pure means pure": src/protocol imports nothing from `node:`, holds no timers and
 * never awaits. Checked on the source text so a slip fails CI, not a browser build.
 */

import { readdirSync, readFileSync } from 'node:fs'
import test from 'ava'

const dir = new URL('../../src/protocol/', import.meta.url)
const files = readdirSync(dir).filter((f) => f.endsWith('.ts'))

test('src/protocol has the expected modules', (t) => {
  t.true(files.includes('frame-parser.ts') && files.includes('session.ts') && files.includes('index.ts'))
})

for (const file of files) {
  test(`src/protocol/${file} is pure: no node: imports, no require, no timers, no await`, (t) => {
    // Strip comments so an RFC quote or an example in a doc comment does not trip the check.
    const code = readFileSync(new URL(file, dir), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '')
    t.notRegex(code, /from\s+['"]node:/)
    t.notRegex(code, /import\(\s*['"]node:/)
    t.notRegex(code, /\brequire\s*\(/)
    t.notRegex(code, /\b(setTimeout|setInterval|setImmediate|queueMicrotask|process\.nextTick)\b/)
    t.notRegex(code, /\bawait\b|\basync\s/)
    t.notRegex(code, /\bBuffer\b/)
    // Only sibling modules and the one declared dependency.
    for (const [, spec] of code.matchAll(/from\s+['"]([^'"]+)['"]/g)) t.true(spec.startsWith('./') || spec === 'uint8arraylist', spec)
  })
}
