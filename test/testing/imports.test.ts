/**
 * What `wspipe/testing` loads: it runs handlers as the server does (src/handler.ts), without
 * loading the server itself.
 */

import { fileURLToPath } from 'node:url'
import test from 'ava'
import { build } from 'esbuild'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

test('wspipe/testing runs handlers through src/handler.ts and does not load src/server.ts', async (t) => {
  const result = await build({ absWorkingDir: ROOT, entryPoints: ['src/testing.ts'], bundle: true, write: false, metafile: true, platform: 'node', format: 'esm', packages: 'external', logLevel: 'silent' })
  const inputs = Object.keys(result.metafile.inputs)
  t.true(inputs.includes('src/handler.ts'), inputs.join(', '))
  t.false(inputs.includes('src/server.ts'), inputs.join(', '))
})
