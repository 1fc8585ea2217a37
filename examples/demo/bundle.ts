/**
 * wspipe's browser build (src/browser/index.ts) bundled for a page with esbuild, in memory: what
 * the demo serves at /wspipe.js, and what the browser tests load. esbuild is a devDependency,
 * which `npm install` brings, so `npm start` needs no build step. Any import of a Node built-in
 * fails the bundle: nothing in the browser build may need Node.
 */
import { builtinModules } from 'node:module'
import { fileURLToPath } from 'node:url'
import { build, type Metafile, type Plugin } from 'esbuild'

const ENTRY = fileURLToPath(new URL('../../src/browser/index.ts', import.meta.url))
const BUILTINS = new Set(builtinModules)

/** An esbuild plugin that fails the build on any import of a Node built-in, `node:` or bare. */
export const noNodeBuiltins: Plugin = {
  name: 'no-node-builtins',
  setup (b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      if (!args.path.startsWith('node:') && !BUILTINS.has(args.path)) return undefined
      return { errors: [{ text: `${args.path} is a Node built-in (imported by ${args.importer}): the browser build must not need Node` }] }
    })
  }
}

/** How to bundle: an ES module (`import { connect } from '/wspipe.js'`) or a script that sets `globalThis.wspipe`. */
export interface BundleOptions {
  format?: 'esm' | 'iife'
  minify?: boolean
}

/** Bundle the browser build; resolves with the code and esbuild's metafile. */
export async function bundleBrowserBuild (options: BundleOptions = {}): Promise<{ code: string, metafile: Metafile }> {
  const format = options.format ?? 'esm'
  const result = await build({
    entryPoints: [ENTRY],
    bundle: true,
    platform: 'browser',
    format,
    globalName: format === 'iife' ? 'wspipe' : undefined,
    target: 'es2022',
    minify: options.minify ?? false,
    write: false,
    metafile: true,
    logLevel: 'silent',
    plugins: [noNodeBuiltins]
  })
  return { code: result.outputFiles[0].text, metafile: result.metafile }
}
