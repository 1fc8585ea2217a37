// --baseline=REF for the benchmarks: src/ as it was at git REF, extracted with `git archive` to a
// temporary directory, so the same server harness runs over both versions in one run
// (WSPIPE_SRC tells a server script which src/index.ts to import).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** src at a git ref: `name` is `wspipe@<short hash>`, `env` goes to the server process. */
export interface Baseline { name: string, env: Record<string, string>, cleanup: () => void }

export function extractBaseline (ref: string, cwd: string): Baseline {
  const root = execFileSync('git', ['rev-parse', '--show-toplevel'], { cwd, encoding: 'utf8' }).trim()
  const short = execFileSync('git', ['rev-parse', '--short', ref], { cwd: root, encoding: 'utf8' }).trim()
  const dir = mkdtempSync(join(tmpdir(), 'wspipe-baseline-'))
  execFileSync('sh', ['-c', `git archive ${short} src | tar -x -C "${dir}"`], { cwd: root })
  // the extracted src resolves its dependencies from this checkout's node_modules
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'))
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true })
  process.on('exit', cleanup)
  return { name: `wspipe@${short}`, env: { WSPIPE_SRC: join(dir, 'src', 'index.ts') }, cleanup }
}
