// How the benchmarks load wspipe: as it ships, JavaScript built from src/ (comments stripped,
// one file per module, as `npm run build` makes dist/), not src/ through tsx's loader, which
// keeps every module's TypeScript source and a source map in the heap. The server scripts
// (bench/servers) are built too and run on node alone, as a deployed server runs: tsx's loader
// would add its own ~1 MB to every server's heap. On these small heaps that decides whether
// V8 starts marking at all (docs/performance.md, "the mark-compact loop"). --from-src keeps the
// tsx path for wspipe and the servers (CPU profiles then name src/ files).
//
// --baseline=REF: src/ as it was at git REF, extracted with `git archive` and built the same way,
// so the same server harness runs over both versions in one run (WSPIPE_SRC tells a server
// script which index to import).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { buildSync } from 'esbuild'

/** A wspipe to load: `name` is `wspipe` or `wspipe@<short hash>`, `env` goes to the server process. */
export interface Baseline { name: string, env: Record<string, string>, cleanup: () => void }

const fromSrc = process.argv.includes('--from-src')

function root (cwd: string): string {
  return execFileSync('git', ['rev-parse', '--show-toplevel'], { cwd, encoding: 'utf8' }).trim()
}

/** Every .ts file under `dir`, recursively. */
function tsFiles (dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter(f => f.endsWith('.ts') && !f.endsWith('.d.ts')).map(f => join(dir, f))
}

/** Build `srcDir` into `outDir` (a file per module, as tsc would) and return the index's path. */
function build (srcDir: string, outDir: string): string {
  buildSync({ entryPoints: tsFiles(srcDir), outdir: outDir, outbase: srcDir, format: 'esm', platform: 'node', target: 'node20', legalComments: 'none', logLevel: 'error' })
  return join(outDir, 'index.js')
}

function tempDir (repo: string): { dir: string, cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'wspipe-bench-'))
  // the built modules resolve their dependencies from this checkout's node_modules
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'))
  // ESM, as wspipe's own package.json says: without it node takes the built .js files for
  // CommonJS, and tsx (the servers' loader) rewrites every one of them, keeping the rewritten
  // source and an inline source map per module in the server's heap (1.5 MB over ws's)
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n')
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true })
  process.on('exit', cleanup)
  return { dir, cleanup }
}

/** This checkout's wspipe, built (or, with --from-src, its src/ as it is). */
export function currentWspipe (cwd: string): Baseline {
  if (fromSrc) return { name: 'wspipe', env: {}, cleanup: () => {} }
  const repo = root(cwd)
  const { dir, cleanup } = tempDir(repo)
  const index = build(join(repo, 'src'), join(dir, 'dist'))
  return { name: 'wspipe', env: { WSPIPE_SRC: index }, cleanup }
}

/** The server scripts the echo and broadcast benches run, built for node alone. */
const SERVER_SCRIPTS = ['control', 'wspipe', 'ws', 'it-ws', 'tcp', 'upgraded', 'broadcast-wspipe', 'broadcast-ws']

/**
 * Where a bench server script runs from: with --from-src, `bench/<file>` under tsx; otherwise
 * the script built to JavaScript (once per process, in a temp directory), which
 * {@link spawnTs} then runs without tsx. `file` is relative to bench/, e.g. `servers/ws.ts`.
 */
export function serverScript (cwd: string, file: string): string {
  const repo = root(cwd)
  if (fromSrc) return join(repo, 'bench', file)
  if (builtServers === undefined) {
    const { dir } = tempDir(repo)
    const srcDir = join(repo, 'bench', 'servers')
    buildSync({ entryPoints: SERVER_SCRIPTS.map(n => join(srcDir, `${n}.ts`)), outdir: join(dir, 'servers'), outbase: srcDir, format: 'esm', platform: 'node', target: 'node20', legalComments: 'none', logLevel: 'error' })
    builtServers = dir
  }
  return join(builtServers, file.replace(/\.ts$/, '.js'))
}
let builtServers: string | undefined

/** wspipe's src/ at git `ref`, built like {@link currentWspipe}. */
export function extractBaseline (ref: string, cwd: string): Baseline {
  const repo = root(cwd)
  const short = execFileSync('git', ['rev-parse', '--short', ref], { cwd: repo, encoding: 'utf8' }).trim()
  const { dir, cleanup } = tempDir(repo)
  execFileSync('sh', ['-c', `git archive ${short} src | tar -x -C "${dir}"`], { cwd: repo })
  const index = fromSrc ? join(dir, 'src', 'index.ts') : build(join(dir, 'src'), join(dir, 'dist'))
  return { name: `wspipe@${short}`, env: { WSPIPE_SRC: index }, cleanup }
}

/** Where a built index came from, for the report's header. */
export function describeWspipe (b: Baseline): string {
  return b.env.WSPIPE_SRC === undefined
    ? 'src/ through tsx, and so are the server scripts (--from-src)'
    : `built from src/ (${relative(tmpdir(), b.env.WSPIPE_SRC)}); the server scripts built too, on node without tsx`
}
