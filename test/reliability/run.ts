// `npm run reliability`: the abuse suite. Each scenario runs against a fresh server — the demo
// (`npm start`), or a wspipe server with the options the scenario names — and beside it `ws`
// with default options; each prints a figure and its pass rule, then a table of all.
//
//   npm run reliability                         # full run, both servers (~15 min)
//   npm run reliability -- --quick              # reduced, ≤ 3 min with --server wspipe
//   npm run reliability -- --server wspipe|ws|both --only churn,slowloris
//   npm run reliability -- --markdown [--before test/reliability/results/742c2cf-full.json] [--save out.json]
//   npm run reliability -- --describe          # the scenario list of docs/reliability.md
//   npm run reliability -- --markdown --from saved.json [--before other.json]   # a saved run's table, no run
//
// Exits 1 if a wspipe scenario fails its rule; ws failing is only reported.
import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { SCENARIOS, type Kind, type Outcome } from './scenarios.js'
import { startServer, type RunningServer } from './servers.js'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    server: { type: 'string', default: 'both' },
    only: { type: 'string' },
    markdown: { type: 'boolean', default: false },
    save: { type: 'string' },
    before: { type: 'string' },
    describe: { type: 'boolean', default: false },
    from: { type: 'string' }
  }
})

const kinds: Kind[] = values.server === 'both' ? ['wspipe', 'ws'] : [values.server as Kind]
if (!kinds.every((k) => k === 'wspipe' || k === 'ws')) throw new Error('--server must be wspipe, ws or both')
const only = values.only?.split(',').map((s) => s.trim().toLowerCase())
const scenarios = SCENARIOS.filter((s) => only === undefined || only.some((o) => s.name.toLowerCase().includes(o)))

/** The last commit that changed src/ (what is measured), and whether src/ has uncommitted changes. */
function commit (): string {
  try {
    const head = execFileSync('git', ['log', '-1', '--format=%h', '--', 'src'], { encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim() !== ''
    return dirty ? `${head}+dirty` : head
  } catch {
    return 'unknown'
  }
}

function fdLimit (flag: '-n' | '-Hn'): number {
  try {
    const v = execFileSync('sh', ['-c', `ulimit ${flag}`], { encoding: 'utf8' }).trim()
    return v === 'unlimited' ? Infinity : Number(v)
  } catch {
    return NaN
  }
}

// 10,000 concurrent connections need a descriptor each here and in the server: raise the soft
// limit for this process and its children when the hard limit allows (Node cannot setrlimit).
const FDS_NEEDED = 10_600
if (fdLimit('-n') < FDS_NEEDED && fdLimit('-Hn') >= FDS_NEEDED && process.env.WSPIPE_RELIABILITY_ULIMIT === undefined) {
  const again = spawnSync('sh', ['-c', `ulimit -n ${FDS_NEEDED} && exec "$0" "$@"`, process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, WSPIPE_RELIABILITY_ULIMIT: '1' }
  })
  process.exit(again.status ?? 1)
}

/** What one run saved: figures by scenario and server. */
interface Saved { commit: string, quick: boolean, date: string, results: Record<string, Partial<Record<Kind, Outcome>>> }

if (values.describe) {
  // The scenario list of docs/reliability.md, from the same text the run prints.
  for (const s of scenarios) console.log(`### ${s.name}\n\n${s.does}\n\n**Pass:** ${s.rule}.\n`)
  process.exit(0)
}

// --from: print the table of a saved run instead of running (e.g. to regenerate docs/reliability.md)
const loaded = values.from !== undefined ? JSON.parse(readFileSync(values.from, 'utf8')) as Saved : undefined
const saved: Saved = loaded ?? { commit: commit(), quick: values.quick, date: new Date().toISOString().slice(0, 16).replace('T', ' '), results: {} }
const fds = fdLimit('-n')
console.log(`wspipe reliability suite at ${saved.commit}, ${values.quick ? 'quick' : 'full'}, servers: ${kinds.join(', ')}; ulimit -n ${fds}`)
if (fds < FDS_NEEDED) console.log(`  note: ulimit -n ${fds} (hard ${fdLimit('-Hn')}): the concurrent-connections scenario opens only ${Math.max(0, fds - 600)}`)

const started = performance.now()
for (const scenario of loaded !== undefined ? [] : scenarios) {
  const row: Partial<Record<Kind, Outcome>> = {}
  saved.results[scenario.name] = row
  for (const kind of kinds) {
    const spec = scenario.server(kind)
    if (spec === 'n/a') {
      row[kind] = { figure: 'n/a', pass: null }
      continue
    }
    let server: RunningServer | undefined
    const t0 = performance.now()
    try {
      if (spec !== 'none') server = await startServer(spec)
      const bound = scenario.bound ?? (values.quick ? 90_000 : 300_000)
      let timer: NodeJS.Timeout | undefined
      row[kind] = await Promise.race([
        scenario.run(server, { kind, quick: values.quick, fdLimit: fds }),
        new Promise<Outcome>((resolve) => { timer = setTimeout(() => resolve({ figure: `did not finish within ${bound / 1000} s`, pass: false }), bound) })
      ])
      clearTimeout(timer)
    } catch (err) {
      row[kind] = { figure: `error: ${(err as Error)?.message ?? String(err)}`, pass: false }
    } finally {
      await server?.stop()
    }
    const o = row[kind]!
    const verdict = o.pass === null ? 'n/a' : o.pass ? 'pass' : 'FAIL'
    console.log(`${verdict.padEnd(4)}  ${kind.padEnd(6)}  ${scenario.name}: ${o.figure}  [${((performance.now() - t0) / 1000).toFixed(1)} s]`)
  }
  console.log(`      rule: ${scenario.rule}`)
}
const seconds = (performance.now() - started) / 1000

const mark = (o: Outcome | undefined): string => o === undefined ? '' : o.pass === null ? o.figure : `${o.pass ? '✅' : '❌'} ${o.figure}`
const cell = (s: string): string => s.replace(/\|/g, '\\|')

console.log(`\n${'='.repeat(100)}\n${scenarios.length} scenarios in ${seconds.toFixed(0)} s at ${saved.commit} (${values.quick ? 'quick' : 'full'})`)
if (values.markdown) {
  const before = values.before !== undefined ? JSON.parse(readFileSync(values.before, 'utf8')) as Saved : undefined
  const cols = ['Scenario', 'Pass rule']
  if (before !== undefined) cols.push(`wspipe BEFORE (${before.commit})`)
  if (kinds.includes('wspipe')) cols.push(before !== undefined ? `wspipe AFTER (${saved.commit})` : `wspipe (${saved.commit})`)
  if (kinds.includes('ws')) cols.push('ws (defaults)')
  console.log(`\n| ${cols.join(' | ')} |\n|${cols.map(() => '---').join('|')}|`)
  for (const s of scenarios) {
    const r = saved.results[s.name] ?? {}
    const cells = [s.name, s.rule]
    if (before !== undefined) cells.push(mark(before.results[s.name]?.wspipe))
    if (kinds.includes('wspipe')) cells.push(mark(r.wspipe))
    if (kinds.includes('ws')) cells.push(mark(r.ws))
    console.log(`| ${cells.map(cell).join(' | ')} |`)
  }
} else {
  for (const s of scenarios) {
    const r = saved.results[s.name] ?? {}
    console.log(`${s.name}`)
    for (const kind of kinds) {
      const o = r[kind] ?? { figure: 'not run', pass: null }
      console.log(`  ${(o.pass === null ? 'n/a' : o.pass ? 'pass' : 'FAIL').padEnd(4)} ${kind.padEnd(6)} ${o.figure}`)
    }
  }
}
if (values.save !== undefined) writeFileSync(values.save, JSON.stringify(saved, null, 2) + '\n')

const failed = scenarios.filter((s) => saved.results[s.name]?.wspipe?.pass === false).map((s) => s.name)
if (failed.length > 0) console.log(`\nwspipe failed ${failed.length} of ${scenarios.length}: ${failed.join('; ')}`)
process.exit(failed.length > 0 ? 1 : 0)
