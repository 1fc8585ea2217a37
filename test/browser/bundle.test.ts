/**
 * A web app bundles wspipe for the browser without configuration: esbuild, told only the
 * platform, follows the package's `exports` to the browser build, and nothing reachable from it
 * imports a Node built-in (any such import fails the bundle). For Node the same import still
 * gets the Node build, and `wspipe/protocol` bundles for the browser as well. The size of
 * `import { connect } from 'wspipe'` is logged (bench/browser-size.ts prints it too).
 */

import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { noNodeBuiltins } from '../../examples/demo/bundle.js'
import { bundleApp, installPackage, type Installed } from './installed.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

let app: Installed | undefined

test.before(async () => {
  app = await installPackage()
})

test.after.always(() => {
  app?.remove()
})

test('the package exports a browser condition before the Node build\'s, for "." and as "./browser"', (t) => {
  const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { exports: Record<string, Record<string, unknown>> }
  const dot = pkg.exports['.']
  t.is(Object.keys(dot)[0], 'browser', 'conditions are tried in order: browser must come first')
  t.deepEqual(dot.browser, { types: './dist/browser/index.d.ts', default: './dist/browser/index.js' })
  t.deepEqual(pkg.exports['./browser'], { types: './dist/browser/index.d.ts', default: './dist/browser/index.js' })
})

test('import { connect } from \'wspipe\', bundled for the browser with esbuild\'s defaults, gets the browser build and no Node built-in', async (t) => {
  const bundle = await bundleApp(app!, "import { connect } from 'wspipe'\nexport { connect }\n", 'browser', { minify: true, plugins: [noNodeBuiltins] })
  t.true(bundle.packageFiles.includes('dist/browser/connect.js'), bundle.packageFiles.join(', '))
  t.false(bundle.packageFiles.includes('dist/client.js'))
  t.false(bundle.packageFiles.some((f) => f.startsWith('dist/driver/connection') || f === 'dist/server.js'))
  // Only files with no Node in them: the browser build, the pure layer, and plain modules.
  t.deepEqual(bundle.packageFiles.filter((f) => !f.startsWith('dist/browser/')), ['dist/connect-options.js', 'dist/errors.js', 'dist/fifo.js', 'dist/json.js', 'dist/outbox.js', 'dist/protocol/close-codes.js', 'dist/protocol/gather.js', 'dist/text-mark.js'])
  t.log(`import { connect } from 'wspipe' for the browser: ${bundle.code.length} bytes minified, ${bundle.gzipped} gzipped`)
})

test('the whole browser API bundles for the browser; wspipe/protocol too', async (t) => {
  const all = await bundleApp(app!, "export * from 'wspipe'\n", 'browser', { minify: true, plugins: [noNodeBuiltins] })
  t.true(all.packageFiles.every((f) => !f.startsWith('dist/topics') && f !== 'dist/cluster.js'))
  t.log(`export * from 'wspipe' for the browser: ${all.code.length} bytes minified, ${all.gzipped} gzipped`)
  const protocol = await bundleApp(app!, "export * from 'wspipe/protocol'\n", 'browser', { minify: true, plugins: [noNodeBuiltins] })
  t.true(protocol.packageFiles.includes('dist/protocol/session.js'))
  t.log(`export * from 'wspipe/protocol' for the browser: ${protocol.code.length} bytes minified, ${protocol.gzipped} gzipped`)
})

test('for Node the same import gets the Node build; the Node build bundled for a browser fails on its Node built-ins', async (t) => {
  const node = await bundleApp(app!, "import { connect } from 'wspipe'\nexport { connect }\n", 'node')
  t.true(node.packageFiles.includes('dist/client.js'))
  t.false(node.packageFiles.some((f) => f.startsWith('dist/browser/')))
  // The check that guards the browser build does catch Node: wspipe's Node entry point, by path.
  const error = await t.throwsAsync(bundleApp(app!, "export * from './node_modules/wspipe/dist/index.js'\n", 'browser', { plugins: [noNodeBuiltins] }))
  t.regex(error?.message ?? '', /node:\w+ is a Node built-in/)
})
