/**
 * docs/guide.md shows code from files that the tests run. Each ```ts block whose first line is
 * `// file: <path>` must equal that file, byte for byte (after the marker line), so the guide
 * cannot drift from the code. Run with WSPIPE_SYNC_DOCS=1 to rewrite the blocks from the files.
 */

import { readFileSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import test from 'ava'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const GUIDE = `${ROOT}docs/guide.md`
const BLOCK = /```ts\n\/\/ file: (\S+)\n([\s\S]*?)```/g

/** Files the guide must show in full. */
const REQUIRED = [
  'examples/echo-server.ts',
  'test/examples/handler.test.ts',
  'examples/client.ts',
  'examples/run.ts',
  'examples/uppercase.ts',
  'examples/json.ts',
  'examples/chat-server.ts',
  'examples/file-stream.ts',
  'examples/upload.ts'
]

if (process.env.WSPIPE_SYNC_DOCS === '1') {
  const old = readFileSync(GUIDE, 'utf8')
  writeFileSync(GUIDE, old.replace(BLOCK, (_all, path: string) => '```ts\n// file: ' + path + '\n' + readFileSync(`${ROOT}${path}`, 'utf8') + '```'))
}

const guide = readFileSync(GUIDE, 'utf8')
const blocks = [...guide.matchAll(BLOCK)].map((m) => ({ path: m[1], code: m[2] }))

test('the guide shows every required file', (t) => {
  const shown = blocks.map((b) => b.path)
  for (const path of REQUIRED) t.true(shown.includes(path), `docs/guide.md has a block for ${path}`)
})

for (const { path, code } of blocks) {
  test(`docs/guide.md: the block for ${path} equals the file`, (t) => {
    t.is(code, readFileSync(`${ROOT}${path}`, 'utf8'), `run WSPIPE_SYNC_DOCS=1 npx ava test/examples/docs-sync.test.ts to update the guide`)
  })
}

/** The markdown table that starts with the closing rules' header row. */
function closingTable (file: string): string {
  const text = readFileSync(`${ROOT}${file}`, 'utf8')
  const start = text.indexOf('| event | close frame sent |')
  return start < 0 ? '' : text.slice(start, text.indexOf('\n\n', start))
}

test('the closing rules are one table: docs/guide.md shows the one of docs/server.md', (t) => {
  const table = closingTable('docs/server.md')
  t.true(table.split('\n').length >= 9, 'docs/server.md has the table')
  t.is(closingTable('docs/guide.md'), table)
})
