/**
 * The it-pipe example of docs/browser.md runs unchanged in Node and in the page: the block is
 * taken from the document, imported in this process (`wspipe` is then the Node build) and
 * bundled as an app would bundle it (`wspipe` resolves through the package's browser condition)
 * for Chromium, on both paths, each against the same echo server.
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { noNodeBuiltins } from '../../examples/demo/bundle.js'
import { sharedChromium } from '../chromium.js'
import { peerTest } from '../peers.js'
import { bundleApp, installPackage } from './installed.js'
import { openPage, pageServer, PATHS } from './helpers.js'
import type { Handler } from '../../src/index.js'

const test = peerTest('chromium')
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const WORDS = ['one', 'twö', 'three']
const EXPECTED = ['text one', 'text twö', 'text three']

/** The ```ts block of docs/browser.md that defines `roundTrip`. */
function example (): string {
  const doc = readFileSync(`${ROOT}docs/browser.md`, 'utf8')
  const block = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]).find((code) => code.includes('export async function roundTrip'))
  if (block === undefined) throw new Error('docs/browser.md has no roundTrip example')
  return block
}

const browser = sharedChromium(test)

const echo: Handler = ({ source, sink }) => sink(source)

test.serial('docs/browser.md: the it-pipe example runs in Node and, bundled for the browser, in Chromium on both paths', async (t) => {
  t.timeout(90_000)
  const code = example()
  // In the browser: bundled as an app would, from an installed copy of the package.
  const app = await installPackage()
  t.teardown(() => app.remove())
  const bundled = await bundleApp(app, code, 'browser', { plugins: [noNodeBuiltins] })
  t.true(bundled.packageFiles.includes('dist/browser/connect.js'))
  const srv = await pageServer(t, { echo }, {}, { '/example.js': bundled.text })

  // In Node: the same text, with the package names pointing at this checkout.
  const dir = mkdtempSync(join(tmpdir(), 'wspipe-doc-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'example.ts')
  writeFileSync(file, code
    .replace("from 'wspipe'", `from '${pathToFileURL(`${ROOT}src/index.ts`).href}'`)
    .replace("from 'it-pipe'", `from '${import.meta.resolve('it-pipe')}'`))
  const { roundTrip } = await import(pathToFileURL(file).href) as { roundTrip: (url: string, words: string[]) => Promise<string[]> }
  t.deepEqual(await roundTrip(srv.wsUrl, WORDS), EXPECTED)

  for (const path of PATHS) {
    const page = await openPage(t, browser(), srv.origin, path)
    const replies = await page.evaluate(async ({ url, words }) => {
      // A variable, so that the compiler does not look for the page's module.
      const where = '/example.js'
      const { roundTrip } = await import(where) as { roundTrip: (url: string, words: string[]) => Promise<string[]> }
      return await roundTrip(url, words)
    }, { url: srv.wsUrl, words: WORDS })
    t.deepEqual(replies, EXPECTED, path)
  }
})
