/**
 * What `wspipe` loads: the optional parts with entry points of their own (`wspipe/redis`,
 * `wspipe/cluster`) stay out of it.
 */

import { fileURLToPath } from 'node:url'
import test from 'ava'
import { build } from 'esbuild'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

test('wspipe loads neither the Redis adapter nor the cluster helper, and neither node:cluster', async (t) => {
  const result = await build({ absWorkingDir: ROOT, entryPoints: ['src/index.ts'], bundle: true, write: false, metafile: true, platform: 'node', format: 'esm', packages: 'external', logLevel: 'silent' })
  const inputs = Object.keys(result.metafile.inputs)
  t.true(inputs.includes('src/server.ts'), inputs.join(', '))
  t.false(inputs.includes('src/topics/redis.ts'), inputs.join(', '))
  t.false(inputs.includes('src/cluster.ts'), inputs.join(', '))
  const imports = result.metafile.outputs[Object.keys(result.metafile.outputs)[0]].imports.map((i) => i.path)
  t.false(imports.includes('node:cluster'), imports.join(', '))
})
