// Echo benchmark (issue 6): wspipe against ws (plain JS and with its native add-ons), it-ws, and
// a raw TCP echo as the ceiling. Every server is its own process pinned to core 0; the load
// generator (bench/loadgen.ts) is one process pinned to core 1. Servers are interleaved over
// several rounds and every result is reported as a median with its ratio to ws from this run.
//
//   npm run bench                      # full run (about 10 minutes)
//   npm run bench -- --quick           # about 2 minutes
//   options: --markdown  --servers=wspipe,ws  --scenarios=a,b,mem,slow  --rounds=N  --mem-rounds=N
//            --transports=tcp,tls,h2 (wspipe also over wss:// with HTTP/1.1, and over HTTP/2 with
//            every connection a stream of one session, RFC 8441; throughput and latency only)
//            --baseline=REF (wspipe's src at git REF too, in the same rounds; per-round ratios)
//            --profile (servers write V8 CPU profiles to bench/profiles/<server>/; see bench/profile-summary.ts)
//            --from-src (wspipe's src/ and the server scripts through tsx, not built: profiles then name src/ files)
//            --server-node-flags=F1,F2 (node/V8 flags for every server, e.g. --initial-old-space-size=64:
//            V8's old-generation limit otherwise decides whether a server falls into back-to-back
//            mark-compacts at 16 KiB and 1 MiB, whichever library it runs)
//            --app-heap=MB (every server keeps MB of plain objects, as an application would: a heap
//            past V8's 8 MB marking threshold, where socket traffic alone starts mark-compacts)
//            --server-env=K=V (environment for every server, repeatable; e.g.
//            GLIBC_TUNABLES=glibc.malloc.trim_threshold=33554432 keeps glibc from handing freed
//            read buffers back to the kernel, the page faults that decide many 1 MiB rounds)
//
// Every run reports both time bases: throughput per wall-clock second of the measured window
// (the first table; its ratios are wall-clock ratios) and the server's CPU time per message or MB
// (read from /proc; the second table; its ratios are CPU-time ratios).
import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { spawnTs, request, nextMessage, kill, stop, sleep, median, rssOf, procStatOf, machineCpuSeconds, machineInfo, tasksetAvailable, loadAverage, srcVersion } from './lib/proc.js'
import { currentWspipe, describeWspipe, extractBaseline, serverScript } from './lib/baseline.js'
import type { RunCommand, RunResult, Transport } from './loadgen.js'

const here = dirname(fileURLToPath(import.meta.url))

interface ServerDef { name: string, file: string, env: Record<string, string>, raw: boolean, args?: string[], transport?: Transport, memOnly?: boolean }
const SERVERS: ServerDef[] = [
  { name: 'wspipe', file: 'servers/wspipe.ts', env: {}, raw: false },
  { name: 'ws', file: 'servers/ws.ts', env: { WS_NO_BUFFER_UTIL: '1', WS_NO_UTF_8_VALIDATE: '1' }, raw: false },
  // empty strings are falsy for ws's checks, so the add-ons load even if the caller exported the flags
  { name: 'ws+native', file: 'servers/ws.ts', env: { WS_NO_BUFFER_UTIL: '', WS_NO_UTF_8_VALIDATE: '' }, raw: false },
  { name: 'it-ws', file: 'servers/it-ws.ts', env: {}, raw: false },
  { name: 'raw TCP', file: 'servers/tcp.ts', env: {}, raw: true },
  // the idle-memory floor of any WebSocket server on node:http (the mem scenario only; named in --servers)
  { name: 'upgraded socket', file: 'servers/upgraded.ts', env: {}, raw: false, memOnly: true }
]
const BASELINE = 'ws'
/** wspipe over the other transports of `--transports`: one TLS server serves both (ALPN). */
const TRANSPORT_SERVERS: Record<Exclude<Transport, 'tcp'>, ServerDef> = {
  tls: { name: 'wspipe wss h1', file: 'servers/wspipe.ts', env: {}, raw: false, args: ['--tls'], transport: 'tls' },
  h2: { name: 'wspipe wss h2', file: 'servers/wspipe.ts', env: {}, raw: false, args: ['--tls'], transport: 'h2' }
}

interface Scenario { id: string, title: string, unit: 'msg/s' | 'MB/s' | 'latency', conns: number, inflight: number, payloadSize: number, text: boolean }
const SCENARIOS: Scenario[] = [
  { id: 'a', title: '64 conns × 32 B binary, 16 in flight each', unit: 'msg/s', conns: 64, inflight: 16, payloadSize: 32, text: false },
  { id: 'b', title: '1 conn × 32 B binary, 1 in flight', unit: 'latency', conns: 1, inflight: 1, payloadSize: 32, text: false },
  { id: 'c', title: '16 conns × 16 KiB binary, 4 in flight each', unit: 'MB/s', conns: 16, inflight: 4, payloadSize: 16 * 1024, text: false },
  { id: 'd', title: '4 conns × 1 MiB binary, 2 in flight each', unit: 'MB/s', conns: 4, inflight: 2, payloadSize: 1024 * 1024, text: false },
  { id: 'e', title: '16 conns × 1 KiB UTF-8 text, 16 in flight each', unit: 'msg/s', conns: 16, inflight: 16, payloadSize: 1024, text: true }
]
const IDLE_CONNS = 5000
const SLOW_BYTES = 200e6
const SLOW_FRAME = 64 * 1024
const CLIENT_SATURATED = 90 // % of one core

const args = process.argv.slice(2)
const flag = (name: string): string | undefined => args.find(a => a.startsWith(`--${name}=`))?.split('=')[1]
const quick = args.includes('--quick')
const cfg = {
  rounds: Number(flag('rounds') ?? (quick ? 2 : 5)),
  warmupMs: quick ? 300 : 1000,
  durationMs: quick ? 1000 : 3000,
  // idle memory: the server measured first in a run shows more RSS (V8's young generation grows
  // with the machine's state), so each round starts with the next server (--mem-rounds=N)
  memRounds: Number(flag('mem-rounds') ?? (quick ? 1 : 2)),
  slowMaxMs: quick ? 5000 : 20000
}
const onlyServers = flag('servers')?.split(',')
const transports = (flag('transports')?.split(',') ?? ['tcp']) as Transport[]
for (const t of transports) if (t !== 'tcp' && t !== 'tls' && t !== 'h2') throw new Error(`--transports takes tcp, tls and h2, not ${t}`)
const baselineRef = flag('baseline')
// the flags hold '=' themselves: everything after the option's own '='
const serverNodeFlags = args.find(a => a.startsWith('--server-node-flags='))?.slice('--server-node-flags='.length).split(',').filter(f => f !== '') ?? []
// --app-heap=MB: every server first builds and keeps MB of plain objects (bench/servers/control.ts),
// standing in for the application a real server carries
const appHeapMb = Number(args.find(a => a.startsWith('--app-heap='))?.slice('--app-heap='.length) ?? 0)
// --server-env=K=V (repeatable): environment for every server, e.g. glibc's malloc tunables
const serverEnv = Object.fromEntries(args.filter(a => a.startsWith('--server-env=')).map(a => {
  const kv = a.slice('--server-env='.length)
  const eq = kv.indexOf('=')
  if (eq < 1) throw new Error(`--server-env wants K=V, got ${kv}`)
  return [kv.slice(0, eq), kv.slice(eq + 1)]
}))
const onlyScenarios = flag('scenarios')?.split(',')
const wantScenario = (id: string): boolean => onlyScenarios === undefined || onlyScenarios.includes(id)

/**
 * serverCpu, otherCpu, irqCpu: % of one core over the window; serverUser and serverSys: CPU
 * seconds; minorFaults, majorGcs (mark-compacts), gcMs (all of V8's pauses): the server's, in the window.
 */
type Measured = RunResult & { serverCpu: number, otherCpu: number, irqCpu: number, serverUser: number, serverSys: number, minorFaults: number, majorGcs: number, gcMs: number }
interface GcStats { major: number, minor: number, ms: number }

interface Running { def: ServerDef, child: ChildProcess, port: number }


async function startServer (def: ServerDef, extra: string[] = []): Promise<Running> {
  const nodeArgs = ['--expose-gc', ...serverNodeFlags]
  // one directory per server: the tsx loader thread writes a profile of its own next to the main thread's
  if (args.includes('--profile')) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${join(here, 'profiles', def.name.replace(/\W+/g, '-'))}`)
  const env = { ...def.env, ...serverEnv, ...(appHeapMb > 0 ? { BENCH_APP_HEAP_MB: String(appHeapMb) } : {}) }
  const child = spawnTs(serverScript(here, def.file), { core: 0, env, nodeArgs, args: [...(def.args ?? []), ...extra] })
  try {
    const m = await nextMessage(child, 'listening', 30_000)
    if (def.name === 'ws' && (m.bufferutil === true || m.utf8validate === true)) throw new Error('plain ws loaded a native add-on')
    if (def.name === 'ws+native' && m.bufferutil !== true) throw new Error('bufferutil did not load')
    return { def, child, port: m.port }
  } catch (err) {
    await kill(child)
    throw err
  }
}

function fmtNum (x: number, digits = 0): string {
  if (!Number.isFinite(x)) return 'n/a'
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

async function main (): Promise<void> {
  const t0 = Date.now()
  const info = machineInfo()
  let ulimit = 'unknown'
  try { ulimit = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim() } catch {}
  console.log(`echo benchmark${quick ? ' (--quick)' : ''}: ${info.date}, ${info.nproc} cores, ${info.cpu}, node ${info.node}, ` +
    `taskset: ${tasksetAvailable() ? 'servers on core 0, load generator on core 1' : 'not available, processes unpinned'}, ulimit -n ${ulimit}, load average ${loadAverage()}`)
  console.log(`src at ${srcVersion()}; ${cfg.rounds} rounds × (${cfg.warmupMs} ms warm-up + ${cfg.durationMs} ms measured) per server and scenario${serverNodeFlags.length > 0 ? `; servers run with ${serverNodeFlags.join(' ')}` : ''}${appHeapMb > 0 ? `; every server keeps ${appHeapMb} MB of application objects` : ''}${Object.keys(serverEnv).length > 0 ? `; server environment ${Object.entries(serverEnv).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}\n`)
  if (ulimit !== 'unlimited' && Number(ulimit) < IDLE_CONNS + 100) {
    console.log(`warning: ulimit -n is ${ulimit}; the ${IDLE_CONNS}-connection test needs more (run \`ulimit -n 65536\` first)\n`)
  }

  // wspipe as it ships: built from src/ (bench/lib/baseline.ts)
  const current = currentWspipe(here)
  SERVERS[0].env = current.env
  for (const def of Object.values(TRANSPORT_SERVERS)) def.env = current.env
  console.log(`wspipe: ${describeWspipe(current)}\n`)
  const extracted = baselineRef !== undefined ? extractBaseline(baselineRef, here) : undefined
  const baseline: { def: ServerDef } | undefined = extracted !== undefined ? { def: { name: extracted.name, file: 'servers/wspipe.ts', env: extracted.env, raw: false } } : undefined
  const defs = [
    ...(transports.includes('tcp') ? SERVERS.filter(s => onlyServers === undefined ? s.memOnly !== true : onlyServers.includes(s.name)) : []),
    ...(baseline !== undefined ? [baseline.def] : []),
    ...transports.filter((t): t is Exclude<Transport, 'tcp'> => t !== 'tcp').map(t => TRANSPORT_SERVERS[t])
  ]
  const unavailable = new Map<string, string>()
  const warnings: string[] = []
  // results[scenario][server] = runs
  const runs = new Map<string, Map<string, Array<Measured>>>()
  const mem = new Map<string, Array<{ perConn: number, heapPerConn: number }>>()
  const slow = new Map<string, Array<{ peak: number, sent: number, seconds: number }>>()

  const loadgen = spawnTs(join(here, 'loadgen.ts'), { core: 1 })
  await nextMessage(loadgen, 'ready', 30_000)

  // ---- throughput and latency: one long-lived process per server for all rounds
  const scenarios = SCENARIOS.filter(s => wantScenario(s.id))
  if (scenarios.length > 0) {
    const live = new Map<string, Running>()
    for (const def of defs) {
      if (def.memOnly === true) continue
      try {
        live.set(def.name, await startServer(def))
      } catch (err) {
        unavailable.set(def.name, (err as Error).message)
        console.log(`${def.name}: not available (${(err as Error).message})`)
      }
    }
    try {
      for (let round = 0; round < cfg.rounds; round++) {
        for (const [si, sc] of scenarios.entries()) {
          const order = [...live.values()]
          for (let i = 0; i < (round + si) % Math.max(1, order.length); i++) order.push(order.shift()!)
          for (const srv of order) {
            if (srv.def.raw && sc.text) continue // raw TCP knows no text
            if (!live.has(srv.def.name)) continue
            const cmd: RunCommand = {
              cmd: 'run', port: srv.port, raw: srv.def.raw, conns: sc.conns, inflight: sc.inflight,
              payloadSize: sc.payloadSize, text: sc.text, warmupMs: cfg.warmupMs, durationMs: cfg.durationMs, latency: sc.unit === 'latency',
              transport: srv.def.transport
            }
            let cpuStart = { user: 0, system: 0, minorFaults: 0 }
            let cpuEnd = { user: 0, system: 0, minorFaults: 0 }
            let machineStart = { busy: 0, interrupts: 0 }
            let machineEnd = { busy: 0, interrupts: 0 }
            // V8's collection counts at the window's edges, asked of the server as the edges pass
            let gcStart: Promise<GcStats | undefined> = Promise.resolve(undefined)
            let gcEnd: Promise<GcStats | undefined> = Promise.resolve(undefined)
            const gcStats = async (): Promise<GcStats | undefined> => await request<GcStats>(srv.child, { cmd: 'gcstats' }, 'gcstats', 5000).catch(() => undefined)
            const onMsg = (m: any): void => {
              if (m?.type === 'window-start') gcStart = gcStats()
              if (m?.type === 'window-end') gcEnd = gcStats()
              if (m?.type === 'window-start') { cpuStart = procStatOf(srv.child.pid!); machineStart = machineCpuSeconds() }
              if (m?.type === 'window-end') { cpuEnd = procStatOf(srv.child.pid!); machineEnd = machineCpuSeconds() }
            }
            loadgen.on('message', onMsg)
            try {
              const r = await request<RunResult>(loadgen, cmd, 'result', cfg.warmupMs + cfg.durationMs + 60_000)
              const serverUser = cpuEnd.user - cpuStart.user
              const serverSys = cpuEnd.system - cpuStart.system
              const minorFaults = cpuEnd.minorFaults - cpuStart.minorFaults
              const serverCpu = 100 * (serverUser + serverSys) / r.seconds
              const [g0, g1] = await Promise.all([gcStart, gcEnd])
              const majorGcs = g0 !== undefined && g1 !== undefined ? g1.major - g0.major : NaN
              const gcMs = g0 !== undefined && g1 !== undefined ? g1.ms - g0.ms : NaN
              // interrupt work (loopback TCP runs much of itself in softirq) and, apart from
              // that, whatever other processes ran on the machine meanwhile
              const irqCpu = 100 * (machineEnd.interrupts - machineStart.interrupts) / r.seconds
              const otherCpu = Math.max(0, 100 * (machineEnd.busy - machineStart.busy) / r.seconds - irqCpu - serverCpu - r.clientCpu)
              if (!runs.has(sc.id)) runs.set(sc.id, new Map())
              const byServer = runs.get(sc.id)!
              byServer.set(srv.def.name, [...(byServer.get(srv.def.name) ?? []), { ...r, serverCpu, otherCpu, irqCpu, serverUser, serverSys, minorFaults, majorGcs, gcMs }])
            } catch (err) {
              const msg = `${srv.def.name}, scenario ${sc.id}, round ${round + 1}: ${(err as Error).message}`
              warnings.push(msg)
              console.log(`  error: ${msg}`)
              if (srv.child.exitCode !== null || srv.child.signalCode !== null) {
                // the server died: restart it so the remaining runs still happen
                live.delete(srv.def.name)
                try { live.set(srv.def.name, await startServer(srv.def)) } catch {}
              }
            } finally {
              loadgen.off('message', onMsg)
            }
          }
        }
        console.log(`  round ${round + 1}/${cfg.rounds} done (${((Date.now() - t0) / 1000).toFixed(0)} s)`)
      }
    } finally {
      for (const srv of live.values()) await stop(srv.child)
    }
  }

  // ---- memory per idle connection: a fresh server each time, RSS after forced GC
  if (wantScenario('mem')) {
    for (let round = 0; round < cfg.memRounds; round++) {
      const order = [...defs.slice(round % defs.length), ...defs.slice(0, round % defs.length)]
      for (const def of order) {
        if (unavailable.has(def.name) || def.transport !== undefined) continue
        let srv: Running | undefined
        try {
          srv = await startServer(def)
          await sleep(300)
          const before = await request(srv.child, { cmd: 'gc' }, 'gc', 10_000)
          const opened = await request(loadgen, { cmd: 'open', port: srv.port, raw: def.raw, conns: IDLE_CONNS }, 'opened', 120_000)
          await sleep(1000)
          const after = await request(srv.child, { cmd: 'gc' }, 'gc', 30_000)
          await request(loadgen, { cmd: 'closeAll' }, 'closed', 60_000)
          mem.set(def.name, [...(mem.get(def.name) ?? []), {
            perConn: (after.rss - before.rss) / opened.count,
            heapPerConn: (after.heapUsed + after.external - before.heapUsed - before.external) / opened.count
          }])
        } catch (err) {
          warnings.push(`${def.name}, ${IDLE_CONNS} idle connections: ${(err as Error).message}`)
          try { await request(loadgen, { cmd: 'closeAll' }, 'closed', 60_000) } catch {}
        } finally {
          if (srv !== undefined) await kill(srv.child)
        }
      }
    }
    console.log(`  idle-connection memory done (${((Date.now() - t0) / 1000).toFixed(0)} s)`)
  }

  // ---- slow reader: default server options, sample the server's RSS while the client floods it
  if (wantScenario('slow')) {
    for (const def of defs) {
      if (unavailable.has(def.name) || def.transport !== undefined || def.memOnly === true) continue
      let srv: Running | undefined
      try {
        srv = await startServer(def, ['--defaults'])
        await sleep(300)
        const pid = srv.child.pid!
        const base = rssOf(pid)
        let peak = base
        const timer = setInterval(() => { peak = Math.max(peak, rssOf(pid)) }, 25)
        const r = await request(loadgen, { cmd: 'slow', port: srv.port, raw: def.raw, totalBytes: SLOW_BYTES, maxMs: cfg.slowMaxMs, frameSize: SLOW_FRAME }, 'slow', cfg.slowMaxMs + 60_000)
        await sleep(500) // the server may still be working through what it read
        clearInterval(timer)
        peak = Math.max(peak, rssOf(pid))
        slow.set(def.name, [{ peak: peak - base, sent: r.sentBytes, seconds: r.seconds }])
      } catch (err) {
        warnings.push(`${def.name}, slow reader: ${(err as Error).message}`)
      } finally {
        if (srv !== undefined) await kill(srv.child)
      }
    }
    console.log(`  slow reader done (${((Date.now() - t0) / 1000).toFixed(0)} s)`)
  }
  await kill(loadgen)

  // ---- report
  const names = defs.map(d => d.name)
  const med = (sc: string, name: string, f: (r: Measured) => number | undefined): number =>
    median((runs.get(sc)?.get(name) ?? []).map(f).filter((x): x is number => x !== undefined))
  const value = (sc: Scenario, name: string): number =>
    sc.unit === 'msg/s' ? med(sc.id, name, r => r.messages / r.seconds) : med(sc.id, name, r => r.payloadBytes / r.seconds / 1e6)
  const ratio = (x: number, base: number): string => Number.isFinite(x) && Number.isFinite(base) && base > 0 ? ` (${(x / base).toFixed(2)}×)` : ''
  const head = ['server']
  const cols: Array<(name: string) => string> = []
  for (const sc of scenarios) {
    if (sc.unit === 'latency') {
      head.push(`${sc.id} p50 µs`, `${sc.id} p99 µs`)
      cols.push(n => { const v = med(sc.id, n, r => r.p50us); return fmtNum(v, 1) + ratio(v, med(sc.id, BASELINE, r => r.p50us)) })
      cols.push(n => { const v = med(sc.id, n, r => r.p99us); return fmtNum(v, 1) + ratio(v, med(sc.id, BASELINE, r => r.p99us)) })
    } else {
      head.push(`${sc.id} ${sc.unit}`)
      cols.push(n => { const v = value(sc, n); return fmtNum(v, sc.unit === 'MB/s' ? 1 : 0) + ratio(v, value(sc, BASELINE)) })
    }
  }
  if (wantScenario('mem')) {
    const m = (n: string, k: 'perConn' | 'heapPerConn'): number => median((mem.get(n) ?? []).map(x => x[k])) / 1024
    head.push('idle KiB/conn (RSS)', 'idle KiB/conn (heap+ext)')
    cols.push(n => fmtNum(m(n, 'perConn'), 1) + ratio(m(n, 'perConn'), m(BASELINE, 'perConn')))
    cols.push(n => fmtNum(m(n, 'heapPerConn'), 1) + ratio(m(n, 'heapPerConn'), m(BASELINE, 'heapPerConn')))
  }
  if (wantScenario('slow')) {
    const s = (n: string): number => (slow.get(n)?.[0]?.peak ?? NaN) / 1e6
    head.push('slow reader: peak RSS growth MB', 'slow reader: MB accepted')
    cols.push(n => fmtNum(s(n), 1) + ratio(s(n), s(BASELINE)))
    cols.push(n => { const r = slow.get(n)?.[0]; return r ? `${fmtNum(r.sent / 1e6, 0)} in ${r.seconds.toFixed(1)} s` : 'n/a' })
  }
  const rows = names.map(n => [n, ...cols.map(c => c(n))])

  const printTable = (h: string[], rs: string[][]): void => {
    const widths = h.map((x, i) => Math.max(x.length, ...rs.map(r => r[i].length)))
    console.log(h.map((x, i) => x.padEnd(widths[i])).join(' | '))
    console.log(widths.map(w => '-'.repeat(w)).join('-|-'))
    for (const r of rs) console.log(r.map((x, i) => x.padEnd(widths[i])).join(' | '))
  }
  const printMarkdown = (h: string[], rs: string[][]): void => {
    console.log('| ' + h.join(' | ') + ' |')
    console.log('|' + h.map((_, i) => i === 0 ? '---' : '---:').join('|') + '|')
    for (const r of rs) console.log('| ' + r.join(' | ') + ' |')
  }

  console.log(`\nWall clock: medians over ${cfg.rounds} rounds (idle memory: ${cfg.memRounds}) of throughput per wall-clock second of the measured window; ` +
    `(×) = ratio to ${BASELINE} (plain JS) of these wall-clock medians, from this run. ` +
    'MB/s counts echoed payload bytes, one direction. Higher is better except latency and memory.')
  for (const sc of scenarios) console.log(`  ${sc.id}: ${sc.title}`)
  if (wantScenario('mem')) console.log(`  idle: ${IDLE_CONNS} open idle connections, server RSS (and V8 heap+external) delta after GC, per connection`)
  if (wantScenario('slow')) console.log(`  slow reader: 1 client sends up to ${SLOW_BYTES / 1e6} MB of ${SLOW_FRAME / 1024} KiB frames and never reads (limit ${cfg.slowMaxMs / 1000} s); default server options`)
  console.log('')
  printTable(head, rows)

  // CPU table: who was saturated, and was anything else running?
  const cpuHead = ['server', ...scenarios.map(s => `${s.id} server/client/irq/other`)]
  const cpuRows = names.map(n => [n, ...scenarios.map(sc => {
    const s = med(sc.id, n, r => r.serverCpu)
    const c = med(sc.id, n, r => r.clientCpu)
    const q = med(sc.id, n, r => r.irqCpu)
    const o = med(sc.id, n, r => r.otherCpu)
    if (Number.isFinite(c) && c > CLIENT_SATURATED) warnings.push(`${n}, scenario ${sc.id}: the load generator used ${c.toFixed(0)}% of its core — the client, not the server, may be the limit`)
    if (Number.isFinite(o) && o > 25) warnings.push(`${n}, scenario ${sc.id}: other processes took ${o.toFixed(0)}% of a core during the window — numbers are noisy`)
    return Number.isFinite(s) ? `${s.toFixed(0)} / ${c.toFixed(0)} / ${q.toFixed(0)} / ${o.toFixed(0)}` : 'n/a'
  })])
  // Server CPU time per unit of work: less sensitive than throughput to other load on the machine
  const costHead = ['server', ...scenarios.map(sc => sc.unit === 'MB/s' ? `${sc.id} server CPU ms/MB` : `${sc.id} server CPU µs/msg`)]
  const cost = (sc: Scenario, n: string): number => med(sc.id, n, r => r.messages === 0
    ? undefined
    : sc.unit === 'MB/s' ? 1000 * (r.serverCpu / 100) * r.seconds / (r.payloadBytes / 1e6) : 1e6 * (r.serverCpu / 100) * r.seconds / r.messages)
  const costRows = names.map(n => [n, ...scenarios.map(sc => {
    const v = cost(sc, n)
    return fmtNum(v, sc.unit === 'MB/s' ? 2 : 2) + ratio(v, cost(sc, BASELINE))
  })])
  // The same CPU time split into user and system, with the minor page faults taken meanwhile: on
  // this kind of machine large messages' cost follows the C allocator's faults (docs/performance.md).
  const perUnit = (sc: Scenario, r: Measured, x: number): number | undefined => r.messages === 0
    ? undefined
    : sc.unit === 'MB/s' ? x / (r.payloadBytes / 1e6) : x / r.messages
  const splitHead = ['server', ...scenarios.map(sc => sc.unit === 'MB/s' ? `${sc.id} user / sys ms/MB · faults/MB · MC/s, GC %` : `${sc.id} user / sys µs/msg · faults/msg · MC/s, GC %`)]
  const splitRows = names.map(n => [n, ...scenarios.map(sc => {
    const scale = sc.unit === 'MB/s' ? 1e3 : 1e6
    const u = med(sc.id, n, r => perUnit(sc, r, scale * r.serverUser))
    const y = med(sc.id, n, r => perUnit(sc, r, scale * r.serverSys))
    const f = med(sc.id, n, r => perUnit(sc, r, r.minorFaults))
    const mc = med(sc.id, n, r => r.majorGcs / r.seconds)
    const gcShare = med(sc.id, n, r => r.gcMs / 10 / r.seconds)
    return Number.isFinite(u) ? `${u.toFixed(2)} / ${y.toFixed(2)} · ${f.toFixed(sc.unit === 'MB/s' ? 1 : 3)} · ${fmtNum(mc, 1)}, ${fmtNum(gcShare, 1)} %` : 'n/a'
  })])
  if (scenarios.length > 0) {
    console.log('\nCPU time: the server\'s CPU time (user + system, from /proc) per echoed message (or MB), lower is better; (×) = ratio to ws of these CPU-time medians:\n')
    printTable(costHead, costRows)
    console.log('\nThe same, user and system time apart; the server\'s minor page faults per message (or MB); V8\'s mark-compacts per second and its GC pauses as % of the window (from the server\'s `gc` performance entries); medians:\n')
    printTable(splitHead, splitRows)
    console.log('\nCPU during the measured window, % of one core: server (core 0) / load generator (core 1) / irq+softirq / other processes:\n')
    printTable(cpuHead, cpuRows)
    printLead('ws+native')
    // issue 24 item 4 measures the small echo's server CPU against the raw-TCP echo's
    printLead('raw TCP')
  }

  if (baseline !== undefined) printAB(baseline.def.name)
  for (const [n, why] of unavailable) console.log(`\nnote: ${n} not measured: ${why}`)
  if (warnings.length > 0) console.log('\nwarnings:\n' + warnings.map(w => `  - ${w}`).join('\n'))

  if (args.includes('--markdown')) {
    console.log(`\n<!-- ${info.date}; ${info.nproc} cores, ${info.cpu}; node ${info.node}; linux ${info.kernel}; src ${srcVersion()}; ${quick ? '--quick' : 'full run'} -->\n`)
    console.log('Wall clock (ratios of wall-clock throughput):\n')
    printMarkdown(head, rows)
    if (scenarios.length > 0) {
      console.log('\nCPU time (ratios of server CPU time per message or MB):\n')
      printMarkdown(costHead, costRows)
      console.log('\nUser / system CPU and minor page faults per unit:\n')
      printMarkdown(splitHead, splitRows)
      console.log('\nCPU during the window, % of one core:\n')
      printMarkdown(cpuHead, cpuRows)
    }
  }
  console.log(`\ntotal ${((Date.now() - t0) / 1000).toFixed(0)} s; load average at the end ${loadAverage()}`)

  /**
   * Round by round, wspipe against `other` (servers are interleaved, so each round's pair ran
   * minutes apart at most): how far ahead wspipe is by each clock, median [min–max] of the rounds.
   */
  function printLead (other: string): void {
    if (!names.includes('wspipe') || !names.includes(other)) return
    const rows = scenarios.filter(sc => sc.unit !== 'latency').map(sc => {
      const a = runs.get(sc.id)?.get('wspipe') ?? []
      const b = runs.get(sc.id)?.get(other) ?? []
      const n = Math.min(a.length, b.length)
      const unit = (r: Measured): number => sc.unit === 'msg/s' ? r.messages : r.payloadBytes
      const wall = a.slice(0, n).map((r, i) => (unit(r) / r.seconds) / (unit(b[i]) / b[i].seconds)).filter(Number.isFinite)
      const cpu = a.slice(0, n).map((r, i) => (b[i].serverCpu * b[i].seconds / unit(b[i])) / (r.serverCpu * r.seconds / unit(r))).filter(Number.isFinite)
      const spread = (xs: number[]): string => xs.length === 0 ? 'n/a' : `${median(xs).toFixed(2)}× [${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}]`
      return [sc.id, spread(wall), spread(cpu), String(Math.min(wall.length, cpu.length))]
    })
    console.log(`\nwspipe against ${other}, per round, median [min–max]; above 1 means wspipe is ahead by that clock:\n`)
    printTable(['scenario', `throughput, wspipe ÷ ${other}`, `server CPU per unit, ${other} ÷ wspipe`, 'rounds'], rows)
  }

  /** Round by round, this src against the baseline's: the two ran back to back in each round. */
  function printAB (base: string): void {
    const perRound = (sc: Scenario, f: (r: Measured) => number): number[] => {
      const a = runs.get(sc.id)?.get('wspipe') ?? []
      const b = runs.get(sc.id)?.get(base) ?? []
      return a.slice(0, b.length).map((r, i) => f(r) / f(b[i])).filter(Number.isFinite)
    }
    const spread = (xs: number[]): string => xs.length === 0
      ? 'n/a'
      : `${median(xs).toFixed(3)}× [${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}]`
    const abHead = ['scenario', 'wall clock: throughput ratio', 'CPU time: server CPU per unit ratio', 'rounds']
    const abRows = scenarios.filter(sc => sc.unit !== 'latency').map(sc => {
      const wall = perRound(sc, r => sc.unit === 'msg/s' ? r.messages / r.seconds : r.payloadBytes / r.seconds)
      const cpu = perRound(sc, r => r.serverCpu * r.seconds / (sc.unit === 'msg/s' ? r.messages : r.payloadBytes))
      return [sc.id, spread(wall), spread(cpu), String(cpu.length)]
    })
    console.log(`\nA/B: wspipe (src at ${srcVersion()}) ÷ ${base}, per round, median [min–max]; throughput: higher is better, CPU: lower is better:\n`)
    printTable(abHead, abRows)
    const idle = (n: string): number => median((mem.get(n) ?? []).map(x => x.perConn))
    if (wantScenario('mem')) console.log(`\nidle RSS per connection: ${fmtNum(idle('wspipe'))} B ÷ ${fmtNum(idle(base))} B = ${(idle('wspipe') / idle(base)).toFixed(3)}×`)
  }
}

main().catch(err => { console.error(err); process.exitCode = 1 })
