/**
 * wspipe as an app's bundler sees it once installed: a temporary `node_modules/wspipe` holding
 * this package.json and `dist/` (src/ transpiled file by file with esbuild, as `npm run build`
 * lays it out), with the runtime dependencies linked beside it. An app entry that imports
 * `wspipe` is then bundled with esbuild's defaults for a platform, so the package's `exports`
 * decide which build it gets. Used by test/browser/bundle.test.ts and bench/browser-size.ts.
 */

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { build, type Metafile, type Plugin } from 'esbuild'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

export interface Installed {
  /** The app's directory, with `node_modules/wspipe` in it. */
  readonly dir: string
  remove: () => void
}

/** Install this package into a temporary app directory. */
export async function installPackage (): Promise<Installed> {
  const dir = mkdtempSync(join(tmpdir(), 'wspipe-app-'))
  const pkgDir = join(dir, 'node_modules', 'wspipe')
  mkdirSync(pkgDir, { recursive: true })
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> }
  writeFileSync(join(pkgDir, 'package.json'), JSON.stringify(pkg, null, 2))
  const sources = readdirSync(join(ROOT, 'src'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => join(ROOT, 'src', f))
  await build({ entryPoints: sources, outdir: join(pkgDir, 'dist'), outbase: join(ROOT, 'src'), format: 'esm', platform: 'neutral', target: 'es2022', logLevel: 'silent' })
  for (const name of Object.keys(pkg.dependencies ?? {})) {
    const link = join(dir, 'node_modules', name)
    mkdirSync(join(link, '..'), { recursive: true })
    symlinkSync(join(ROOT, 'node_modules', name), link, 'dir')
  }
  return { dir, remove: () => { rmSync(dir, { recursive: true, force: true }) } }
}

export interface AppBundle {
  readonly code: Uint8Array
  readonly text: string
  readonly metafile: Metafile
  /** Files of the package in the bundle, relative to its directory (`dist/browser/connect.js`). */
  readonly packageFiles: string[]
  readonly gzipped: number
}

/**
 * Bundle `entry` (an app's module, TypeScript or JavaScript) in `app` with esbuild's defaults for `platform`: nothing said
 * about wspipe, so its `exports` conditions choose. `plugins` may only check, not steer.
 */
export async function bundleApp (app: Installed, entry: string, platform: 'browser' | 'node', options: { minify?: boolean, plugins?: Plugin[] } = {}): Promise<AppBundle> {
  // TypeScript or JavaScript: esbuild takes either from a .ts file.
  const file = join(app.dir, `app-${Math.random().toString(36).slice(2)}.ts`)
  writeFileSync(file, entry)
  const result = await build({
    entryPoints: [file],
    absWorkingDir: app.dir,
    bundle: true,
    platform,
    format: 'esm',
    minify: options.minify ?? false,
    write: false,
    metafile: true,
    logLevel: 'silent',
    plugins: options.plugins ?? []
  })
  const code = result.outputFiles[0].contents
  const prefix = 'node_modules/wspipe/'
  const packageFiles = Object.keys(result.metafile.inputs).filter((f) => f.startsWith(prefix)).map((f) => f.slice(prefix.length)).sort()
  return { code, text: result.outputFiles[0].text, metafile: result.metafile, packageFiles, gzipped: gzipSync(code, { level: 9 }).length }
}
