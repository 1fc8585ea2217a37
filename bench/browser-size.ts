// The size of wspipe's browser build as an app gets it: this package installed into a temporary
// app (see test/browser/installed.ts), and each entry below bundled by esbuild for the browser
// with its defaults plus minification; gzip at level 9. Prints bytes minified and gzipped.
//
//   npx tsx bench/browser-size.ts
import { noNodeBuiltins } from '../examples/demo/bundle.js'
import { bundleApp, installPackage } from '../test/browser/installed.js'

const ENTRIES: Array<[string, string]> = [
  ["import { connect } from 'wspipe'", "export { connect } from 'wspipe'\n"],
  ["import { connect, isText, json, Outbox } from 'wspipe'", "export { connect, isText, json, Outbox } from 'wspipe'\n"],
  ["export * from 'wspipe' (the whole browser API)", "export * from 'wspipe'\n"],
  ["export * from 'wspipe/protocol'", "export * from 'wspipe/protocol'\n"]
]

const app = await installPackage()
try {
  console.log('| entry | minified | gzipped |\n|---|---:|---:|')
  for (const [name, entry] of ENTRIES) {
    const bundle = await bundleApp(app, entry, 'browser', { minify: true, plugins: [noNodeBuiltins] })
    console.log(`| \`${name}\` | ${bundle.code.length} B | ${bundle.gzipped} B |`)
  }
} finally {
  app.remove()
}
