/**
 * Every ```ts block of README.md and docs/*.md type-checks against the package's source, and the
 * blocks that can run on their own do run. A block is compiled as a module of its own, with
 * `wspipe`, `wspipe/protocol` and `wspipe/testing` mapped to src/. A block that needs context (a
 * `server` from an earlier block, a socket) gets it from an HTML comment on the line before its
 * fence, invisible on GitHub:
 *
 *     <!-- check: compile            (or `check: run`: compile, then run it)
 *     import { WebSocketServer } from 'wspipe'
 *     const server = new WebSocketServer()
 *     -->
 *
 * The lines after the first are put before the block. docs/guide.md's `// file:` blocks are the
 * files themselves (test/examples/docs-sync.test.ts), so those files are compiled instead.
 *
 * The `@example` blocks of the TSDoc in src/ (what the API reference and an editor's hover show)
 * are mostly fragments, so only their imports are checked: each name imported from a package
 * entry point must be exported there.
 */

import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import test from 'ava'
import ts from 'typescript'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const DOCS = ['README.md', ...readdirSync(`${ROOT}docs`).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)]

/** What the package's exports map to, for the compiler and for running. */
const ENTRY_POINTS: Record<string, string> = {
  wspipe: `${ROOT}src/index.ts`,
  'wspipe/protocol': `${ROOT}src/protocol/index.ts`,
  'wspipe/browser': `${ROOT}src/browser/index.ts`,
  'wspipe/testing': `${ROOT}src/testing.ts`,
  'wspipe/redis': `${ROOT}src/topics/redis.ts`,
  'wspipe/cluster': `${ROOT}src/cluster.ts`
}

interface Block {
  /** `README.md:9`: the document and the line of the fence. */
  readonly name: string
  /** A path for the compiler; no such file is written. */
  readonly path: string
  readonly code: string
  /** How many lines of context precede the block in `code`. */
  readonly contextLines: number
  readonly run: boolean
  /** A TSDoc example: only its `import` lines are checked. */
  readonly importsOnly?: boolean
}

const FENCE = /(?:<!-- check: (compile|run)\s*\n?([\s\S]*?)-->\n)?```ts\n([\s\S]*?)```/g

function blocksOf (doc: string): { blocks: Block[], files: string[] } {
  const text = readFileSync(`${ROOT}${doc}`, 'utf8')
  const blocks: Block[] = []
  const files: string[] = []
  for (const m of text.matchAll(FENCE)) {
    const [, mode, context = '', code] = m
    const file = /^\/\/ file: (\S+)\n/.exec(code)
    if (file !== null) {
      files.push(`${ROOT}${file[1]}`)
      continue
    }
    const line = text.slice(0, m.index + m[0].indexOf('```ts')).split('\n').length
    const name = `${doc}:${line}`
    blocks.push({
      name,
      path: `${ROOT}.doc-blocks/${doc.replace('/', '-')}-${line}.ts`,
      code: context + code,
      contextLines: context.split('\n').length - 1,
      run: mode === 'run'
    })
  }
  return { blocks, files }
}

/** The TSDoc `@example` blocks of src/ that import from the package (the others are fragments of a line or two). */
function tsdocExamples (): Block[] {
  const sources = execFileSync('git', ['ls-files', '-z', 'src'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter((f) => f.endsWith('.ts'))
  const examples: Block[] = []
  for (const file of sources) {
    const text = readFileSync(`${ROOT}${file}`, 'utf8')
    for (const m of text.matchAll(/@example\s*\n\s*\* ```ts\n([\s\S]*?)\n\s*\* ```/g)) {
      const code = m[1].split('\n').map((l) => l.replace(/^\s*\* ?/, '')).join('\n')
      if (!/^import .* from 'wspipe[/'"]/m.test(code)) continue
      const line = text.slice(0, m.index).split('\n').length + 2
      examples.push({ name: `${file}:${line} (TSDoc)`, path: `${ROOT}.doc-blocks/${file.replaceAll('/', '-')}-${line}.ts`, code, contextLines: 0, run: false, importsOnly: true })
    }
  }
  return examples
}

const all = DOCS.map(blocksOf)
const examples = tsdocExamples()
const blocks = [...all.flatMap((d) => d.blocks), ...examples]
const files = all.flatMap((d) => d.files)

const OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
  types: ['node'],
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  isolatedModules: true,
  verbatimModuleSyntax: true,
  allowImportingTsExtensions: true,
  paths: Object.fromEntries(Object.entries(ENTRY_POINTS).map(([k, v]) => [k, [v]]))
}

/** The diagnostics of one program holding every block (each its own module) and every shown file. */
function compile (): Map<string, string[]> {
  const sources = new Map(blocks.map((b) => [b.path, b.code]))
  const host = ts.createCompilerHost(OPTIONS)
  const fileExists = host.fileExists.bind(host)
  const readFile = host.readFile.bind(host)
  const getSourceFile = host.getSourceFile.bind(host)
  host.fileExists = (f) => sources.has(f) || fileExists(f)
  host.readFile = (f) => sources.get(f) ?? readFile(f)
  host.getSourceFile = (f, language, onError, create) => {
    const code = sources.get(f)
    return code !== undefined ? ts.createSourceFile(f, code, language) : getSourceFile(f, language, onError, create)
  }
  const program = ts.createProgram([...sources.keys(), ...files], OPTIONS, host)
  const byFile = new Map<string, string[]>()
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const file = d.file?.fileName ?? '(global)'
    const block = blocks.find((b) => b.path === file)
    let where = file
    if (d.file !== undefined && d.start !== undefined) {
      const { line, character } = d.file.getLineAndCharacterOfPosition(d.start)
      where = block !== undefined ? `line ${line + 1 - block.contextLines} of the block` : `${file}:${line + 1}:${character + 1}`
    }
    const list = byFile.get(file) ?? []
    list.push(`${where}: TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`)
    byFile.set(file, list)
  }
  return byFile
}

let diagnostics: Map<string, string[]> | undefined
const diagnosticsOf = (file: string): string[] => (diagnostics ??= compile()).get(file) ?? []

test('README.md and docs/*.md have ts blocks to check', (t) => {
  t.true(blocks.length >= 14, `${blocks.length} blocks`)
  t.true(files.length >= 8, `${files.length} files shown in full`)
})

test('src/ has TSDoc examples that import from the package', (t) => {
  t.true(examples.length >= 10, `${examples.length} examples`)
})

for (const block of examples) {
  test(`${block.name}: what it imports from the package is exported there`, (t) => {
    const lines = block.code.split('\n')
    const onImports = diagnosticsOf(block.path).filter((d) => /^line (\d+) /.test(d) && lines[Number(/^line (\d+) /.exec(d)![1]) - 1].startsWith('import '))
    t.deepEqual(onImports, [], block.code)
  })
}

for (const block of blocks.filter((b) => b.importsOnly !== true)) {
  test(`${block.name} type-checks`, (t) => {
    t.deepEqual(diagnosticsOf(block.path), [], block.code)
  })
}

for (const file of files) {
  test(`${file.slice(ROOT.length)} (shown in docs/guide.md) type-checks`, (t) => {
    t.deepEqual(diagnosticsOf(file), [])
  })
}

for (const block of blocks.filter((b) => b.run)) {
  test(`${block.name} runs`, async (t) => {
    // A copy whose package imports point at src/, loaded through tsx like any test file.
    const dir = mkdtempSync(join(tmpdir(), 'wspipe-doc-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const code = block.code.replace(/from '(wspipe(?:\/\w+)?)'/g, (all, name: string) =>
      ENTRY_POINTS[name] !== undefined ? `from '${pathToFileURL(ENTRY_POINTS[name]).href}'` : all)
    const path = join(dir, 'block.ts')
    writeFileSync(path, code)
    await t.notThrowsAsync(import(pathToFileURL(path).href))
  })
}
