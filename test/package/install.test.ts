/**
 * The package as a user gets it: `npm pack` builds it (the `prepare` script) and ships dist/ with
 * its types; a new ES module project and a new CommonJS project install the tarball, and the git
 * URL, and echo a message through it; their TypeScript finds the types (`module: nodenext`, and
 * the older `node10` / `bundler` resolutions), and every entry point loads, `wspipe/browser`
 * included; a page's TypeScript (`bundler` with the `browser` condition, as docs/browser.md says)
 * gets the browser build's types from `wspipe`.
 *
 * Offline and bounded: every npm command runs with `--offline` (npm's cache only; `npm ci` or
 * `npm install` in this repository put every tarball there) and a time limit. A throwaway project
 * gets a lockfile that pins wspipe's runtime dependencies to this repository's lockfile, so npm
 * needs no registry metadata; installing from git installs the devDependencies of the clone (to
 * build it) from this repository's lockfile the same way. The git repository is a copy of the
 * working tree, so uncommitted changes are what is tested.
 */

import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import ts from 'typescript'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const MANIFEST = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string
  dependencies: Record<string, string>
  exports: Record<string, { types: string, default: string }>
}

/** Per npm command; a git install builds the clone, so it gets the longest. */
const NPM_TIMEOUT = 240_000

interface Output { stdout: string, stderr: string }

/** Run `command args` in `cwd`, within `timeout` ms; rejects with its output if it fails. */
function run (command: string, args: string[], cwd: string, timeout: number): Promise<Output> {
  // No NODE_OPTIONS from the test runner: the programs run as a user's would.
  const env = { ...process.env, NODE_OPTIONS: '', npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' }
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, timeout, env, maxBuffer: 16 * 1024 * 1024, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${command} ${args.join(' ')} failed in ${cwd}: ${err.message}\n${stdout}\n${stderr}`))
      else resolve({ stdout, stderr })
    })
  })
}

const work = mkdtempSync(join(tmpdir(), 'wspipe-install-'))
test.after.always(() => { rmSync(work, { recursive: true, force: true }) })

interface Packed { tarball: string, files: string[] }
let packing: Promise<Packed> | undefined

/** `npm pack` of this repository, once: its `prepare` script builds dist/. */
function pack (): Promise<Packed> {
  packing ??= run('npm', ['pack', '--json', '--pack-destination', work], ROOT, NPM_TIMEOUT).then(({ stdout }) => {
    // Lifecycle scripts print before the JSON.
    const [info] = JSON.parse(stdout.slice(stdout.indexOf('\n[') + 1)) as Array<{ filename: string, files: Array<{ path: string }> }>
    return { tarball: join(work, info.filename), files: info.files.map((f) => f.path) }
  })
  return packing
}

let copying: string | undefined

/** A git repository holding this working tree's files (tracked and untracked, not ignored). */
async function gitCopy (): Promise<string> {
  if (copying !== undefined) return copying
  const repo = join(work, 'repo')
  const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], ROOT, 30_000)
  // node_modules may be a symlink, which `node_modules/` in .gitignore does not match.
  const files = [...new Set(stdout.split('\0'))].filter((f) => f !== '' && f !== 'node_modules' && !f.startsWith('node_modules/'))
  for (const f of files) {
    mkdirSync(dirname(join(repo, f)), { recursive: true })
    try {
      cpSync(join(ROOT, f), join(repo, f))
    } catch (err) {
      // A file deleted from the working tree but still in the index.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }
  await run('git', ['init', '-q'], repo, 30_000)
  await run('git', ['add', '-A'], repo, 30_000)
  await run('git', ['-c', 'user.name=wspipe-test', '-c', 'user.email=test@localhost', 'commit', '-q', '-m', 'working tree'], repo, 30_000)
  copying = repo
  return repo
}

interface LockEntry { version: string, resolved?: string, integrity?: string, dependencies?: Record<string, string> }

/**
 * A lockfile for a new project that pins wspipe's runtime dependencies (and theirs) to the
 * versions of this repository's lockfile: npm then takes them from its cache without asking the
 * registry which versions exist.
 */
function seededLockfile (name: string): object {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> }
  const packages: Record<string, unknown> = { '': { name, version: '1.0.0' } }
  const queue = Object.keys(MANIFEST.dependencies)
  while (queue.length > 0) {
    const dep = queue.pop()!
    const key = `node_modules/${dep}`
    if (packages[key] !== undefined) continue
    const entry = lock.packages[key]
    if (entry === undefined) throw new Error(`${dep} is not at the top of package-lock.json`)
    packages[key] = entry
    queue.push(...Object.keys(entry.dependencies ?? {}))
  }
  return { name, version: '1.0.0', lockfileVersion: 3, requires: true, packages }
}

/** The program each project runs: a server, a client, one echo, and the other Node entry points. */
const ESM_PROGRAM = `import { WebSocketServer, connect } from 'wspipe'
import { CloseCode } from 'wspipe/protocol'
import { connectInMemory } from 'wspipe/testing'
import { RedisAdapter } from 'wspipe/redis'
import { serveCluster } from 'wspipe/cluster'
import { connect as connectFromPage } from 'wspipe/browser'

const server = new WebSocketServer().register('echo', ({ source, sink }) => sink(source))
const { port } = await server.listen({ port: 0, host: '127.0.0.1' })
const conn = await connect('ws://127.0.0.1:' + port + '/', { protocols: ['echo'] })
await conn.send('hello from ESM')
const { value } = await conn.source.next()
conn.close()
const { code } = await conn.closed
await server.close()
console.log(JSON.stringify({ echo: new TextDecoder().decode(value), code, normal: CloseCode.Normal, testing: typeof connectInMemory, redis: typeof RedisAdapter.connect, cluster: typeof serveCluster, browser: typeof connectFromPage }))
`

const CJS_PROGRAM = `const { WebSocketServer, connect } = require('wspipe')
const { CloseCode } = require('wspipe/protocol')
const { connectInMemory } = require('wspipe/testing')
const { RedisAdapter } = require('wspipe/redis')
const { serveCluster } = require('wspipe/cluster')
const { connect: connectFromPage } = require('wspipe/browser')

async function main () {
  const server = new WebSocketServer().register('echo', ({ source, sink }) => sink(source))
  const { port } = await server.listen({ port: 0, host: '127.0.0.1' })
  const conn = await connect('ws://127.0.0.1:' + port + '/', { protocols: ['echo'] })
  await conn.send('hello from CommonJS')
  const { value } = await conn.source.next()
  conn.close()
  const { code } = await conn.closed
  await server.close()
  console.log(JSON.stringify({ echo: new TextDecoder().decode(value), code, normal: CloseCode.Normal, testing: typeof connectInMemory, redis: typeof RedisAdapter.connect, cluster: typeof serveCluster, browser: typeof connectFromPage }))
}
main().catch((err) => { console.error(err); process.exitCode = 1 })
`

/** What a TypeScript user of either kind writes: `.ts` is ESM or CommonJS by the project's "type". */
const TYPED = `import { WebSocketServer, connect, type Connection } from 'wspipe'
import { CloseCode } from 'wspipe/protocol'
import { connectInMemory } from 'wspipe/testing'
import { RedisAdapter, type RedisAdapterOptions } from 'wspipe/redis'
import { serveCluster, type ClusterOptions } from 'wspipe/cluster'
import { connect as connectFromPage, type ConnectOptions as PageConnectOptions } from 'wspipe/browser'

const echo = ({ source, sink }: Connection): Promise<void> => sink(source)
export const server: WebSocketServer = new WebSocketServer().register('echo', echo)
export const opening: Promise<Connection> = connect('ws://127.0.0.1:8080/', { protocols: ['echo'] })
export const normal: number = CloseCode.Normal
export const client = connectInMemory(echo)
export const redisOptions: RedisAdapterOptions = { url: 'redis://127.0.0.1:6379' }
export const adapter: Promise<RedisAdapter> = RedisAdapter.connect(redisOptions)
export const clusterOptions: ClusterOptions = { workers: 2, start: () => server }
export const cluster = serveCluster(clusterOptions)
export const pageOptions: PageConnectOptions = { protocols: ['echo'] }
export const fromPage = connectFromPage('/echo', pageOptions)
`

/** A web app's module: under the `browser` condition `wspipe` is the browser build (docs/browser.md). */
const PAGE = `import { connect, isText, PageCloseCode, type ConnectOptions, type Connection } from 'wspipe'

const options: ConnectOptions = { protocols: ['echo'] }
export const opening: Promise<Connection> = connect('/echo', options)
export const text = (message: Uint8Array): boolean => isText(message)
export const code: number = PageCloseCode.ReceiveQueueFull
`

type Kind = 'esm' | 'cjs'

/** A new project of `kind` in its own directory, with its programs, that has installed nothing yet. */
function newProject (name: string, kind: Kind): string {
  const dir = join(work, name)
  mkdirSync(dir)
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, type: kind === 'esm' ? 'module' : 'commonjs' }, null, 2))
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(seededLockfile(name), null, 2))
  writeFileSync(join(dir, kind === 'esm' ? 'echo.mjs' : 'echo.cjs'), kind === 'esm' ? ESM_PROGRAM : CJS_PROGRAM)
  writeFileSync(join(dir, 'typed.ts'), TYPED)
  writeFileSync(join(dir, 'page.ts'), PAGE)
  return dir
}

/** TypeScript settings a user might have, by kind of project; each must find every type. */
const TS_SETTINGS: Record<Kind, Array<{ label: string, options: ts.CompilerOptions, file?: string }>> = {
  esm: [
    { label: 'module nodenext', options: { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext } },
    { label: 'moduleResolution bundler', options: { module: ts.ModuleKind.Preserve, moduleResolution: ts.ModuleResolutionKind.Bundler } },
    // A web app's settings (docs/browser.md): the page's module, with the DOM's types.
    { label: 'moduleResolution bundler, customConditions browser', file: 'page.ts', options: { module: ts.ModuleKind.Preserve, moduleResolution: ts.ModuleResolutionKind.Bundler, customConditions: ['browser'], lib: ['lib.es2022.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'] } }
  ],
  cjs: [
    // TypeScript 5.8 and later let a CommonJS file under nodenext require() an ES module, as Node 20.19 does.
    { label: 'module nodenext', options: { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext } },
    // Older settings resolve without `exports`: `typesVersions` maps the subpaths for them.
    { label: 'module commonjs (node10 resolution)', options: { module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10, ignoreDeprecations: '6.0' } }
  ]
}

/** TypeScript's complaints about `typed.ts` (or a setting's own file) in `dir` under each setting of its kind, none expected. */
function typeErrors (dir: string, kind: Kind): string[] {
  const errors: string[] = []
  for (const { label, options, file = 'typed.ts' } of TS_SETTINGS[kind]) {
    const program = ts.createProgram([join(dir, file)], {
      ...options,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      noEmit: true,
      // The package's declaration files are checked too.
      skipLibCheck: false,
      types: ['node'],
      typeRoots: [join(ROOT, 'node_modules/@types')]
    })
    for (const d of ts.getPreEmitDiagnostics(program)) {
      errors.push(`${label}: ${d.file?.fileName ?? ''} TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`)
    }
  }
  return errors
}

test.serial('npm pack builds the package: the tarball holds dist/ with the code and types of every export', async (t) => {
  t.timeout(NPM_TIMEOUT + 10_000)
  const { files } = await pack()
  for (const [entry, target] of Object.entries(MANIFEST.exports)) {
    for (const file of [target.types, target.default]) t.true(files.includes(file.replace(/^\.\//, '')), `${entry}: ${file} is in the tarball`)
  }
  t.false(files.some((f) => f.startsWith('test/') || f.startsWith('examples/') || f.startsWith('bench/')), 'no tests, examples or benchmarks')
})

const installs: Array<{ kind: Kind, from: 'tarball' | 'git' }> = [
  { kind: 'esm', from: 'tarball' },
  { kind: 'cjs', from: 'tarball' },
  { kind: 'esm', from: 'git' },
  { kind: 'cjs', from: 'git' }
]

for (const { kind, from } of installs) {
  const label = kind === 'esm' ? 'an ES module project' : 'a CommonJS project'
  test.serial(`${label} installs the ${from === 'git' ? 'git URL' : 'packed tarball'}, echoes a message through it and finds its types`, async (t) => {
    t.timeout(2 * NPM_TIMEOUT + 60_000)
    const spec = from === 'git' ? `git+file://${await gitCopy()}` : (await pack()).tarball
    const dir = newProject(`${kind}-${from}`, kind)
    const installed = await run('npm', ['install', '--offline', spec], dir, NPM_TIMEOUT)
    // npm 11 lists `prepare` of a package from a file or git as a script to review (for a
    // tarball it never runs: dist/ is already built): shown, not failed on.
    t.log(`npm install ${from}: ${installed.stderr.trim().split('\n').join(' | ') || 'no warnings'}`)
    t.regex(readFileSync(join(dir, 'node_modules/wspipe/dist/index.d.ts'), 'utf8'), /WebSocketServer/)

    const { stdout, stderr } = await run(process.execPath, [kind === 'esm' ? 'echo.mjs' : 'echo.cjs'], dir, 30_000)
    t.deepEqual(JSON.parse(stdout), { echo: `hello from ${kind === 'esm' ? 'ESM' : 'CommonJS'}`, code: 1000, normal: 1000, testing: 'function', redis: 'function', cluster: 'function', browser: 'function' })
    // require() of an ES module prints no warning on Node 20.19 and later.
    t.is(stderr, '')
    t.deepEqual(typeErrors(dir, kind), [])
  })
}
