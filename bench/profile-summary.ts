// Top self-time functions of a V8 .cpuprofile (as written by node --cpu-prof).
//   npx tsx bench/profile-summary.ts bench/profiles/wspipe-*.cpuprofile [--top=25] [--filter=/src/]
import { readFileSync } from 'node:fs'

interface Node { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number, children?: number[] }
interface Profile { nodes: Node[], startTime: number, endTime: number, samples: number[], timeDeltas: number[] }

const args = process.argv.slice(2)
const files = args.filter(a => !a.startsWith('--'))
const top = Number(args.find(a => a.startsWith('--top='))?.slice(6) ?? 25)
const filter = args.find(a => a.startsWith('--filter='))?.slice(9)

for (const file of files) {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile
  const byId = new Map(p.nodes.map(n => [n.id, n]))
  // self time per node from sample deltas (more exact than hitCount × interval)
  const selfUs = new Map<number, number>()
  for (let i = 0; i < p.samples.length; i++) selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0))
  const byFn = new Map<string, number>()
  let total = 0
  let idle = 0
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)!.callFrame
    const name = cf.functionName || '(anonymous)'
    total += us
    if (name === '(idle)') { idle += us; continue }
    const where = cf.url === '' ? '' : ` ${cf.url.replace(/^file:\/\//, '').replace(process.cwd() + '/', '')}:${cf.lineNumber + 1}`
    const key = `${name}${where}`
    byFn.set(key, (byFn.get(key) ?? 0) + us)
  }
  const busy = total - idle
  console.log(`\n${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy`)
  const rows = [...byFn].filter(([k]) => filter === undefined || k.includes(filter)).sort((a, b) => b[1] - a[1]).slice(0, top)
  for (const [k, us] of rows) console.log(`${(100 * us / busy).toFixed(1).padStart(6)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`)
}
