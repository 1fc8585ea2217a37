// Fan-out benchmark (issue 13): 1 publisher, 500 subscribers, 64 B binary messages, wspipe topics
// against ws's loop over `wss.clients`, in the same run. Then the same with 10 more subscribers
// that never read: the 500 readers' rate and the server's RSS growth.
//
// Each server is its own process pinned to core 0; the clients are raw TCP sockets in this
// process (a subscriber only counts bytes: every delivery is one 66-byte frame), so the client
// side costs little. Servers are interleaved over rounds; each figure is a median.
//
//   npx tsx bench/broadcast.ts [--quick] [--rounds=N] [--subscribers=N] [--markdown]
//   --baseline=REF: wspipe's src at git REF too, in the same rounds, with per-round ratios
import { execFileSync, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { currentWspipe, extractBaseline, serverScript } from './lib/baseline.js'
import { encodeMaskedFrame, OP_BINARY } from './lib/frames.js'
import { cpuSecondsOf, kill, request, loadAverage, machineInfo, median, nextMessage, rssOf, sleep, spawnTs, srcVersion, tasksetAvailable } from './lib/proc.js'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const flag = (name: string): string | undefined => args.find(a => a.startsWith(`--${name}=`))?.split('=')[1]
const quick = args.includes('--quick')
const cfg = {
  rounds: Number(flag('rounds') ?? (quick ? 2 : 4)),
  subscribers: Number(flag('subscribers') ?? 500),
  slow: 10,
  payload: 64,
  warmupMs: quick ? 500 : 1000,
  durationMs: quick ? 1500 : 3000
}
const FRAME = 2 + cfg.payload // what each subscriber receives per message
const baseline = flag('baseline') !== undefined ? extractBaseline(flag('baseline')!, here) : undefined
const SERVERS: Array<{ name: string, file: string, env?: Record<string, string> }> = [
  { name: 'wspipe topics', file: 'servers/broadcast-wspipe.ts', env: currentWspipe(here).env },
  ...(baseline !== undefined ? [{ name: `${baseline.name} topics`, file: 'servers/broadcast-wspipe.ts', env: baseline.env }] : []),
  { name: 'ws loop', file: 'servers/broadcast-ws.ts' }
]

const info = machineInfo()
// The clients get core 1 where taskset exists: the server has core 0 to itself.
if (tasksetAvailable()) {
  try { execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' }) } catch {}
}

/** Open a WebSocket by hand on a raw socket; resolves once the 101 is read, with any bytes after it. */
async function upgrade (port: number, path: string): Promise<Socket> {
  const socket = connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  const key = randomBytes(16).toString('base64')
  const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
  let head = Buffer.alloc(0)
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      socket.off('data', onData)
      if (!head.subarray(0, end).toString().includes(accept)) return reject(new Error('bad handshake'))
      if (head.length > end + 4) socket.unshift(head.subarray(end + 4))
      resolve()
    }
    socket.on('data', onData)
    socket.once('error', reject)
  })
  return socket
}

interface Result {
  rate: number
  /** Peak RSS less RSS with every connection open and nothing published yet. */
  rssGrowthMB: number
  /** RSS at the end of the measured interval less RSS at its start (after warm-up): growth that goes on. */
  rssSteadyMB: number
  slowClosed: number
  /** Server CPU (user + system) per delivery in the measured interval, µs; and its share of one core. */
  cpuPerDelivery: number
  cpuShare: number
}

async function run (file: string, slow: number, env?: Record<string, string>): Promise<Result> {
  const child: ChildProcess = spawnTs(serverScript(here, file), { core: 0, nodeArgs: ['--expose-gc'], env })
  try {
    const { port } = await nextMessage<{ port: number }>(child, 'listening', 30_000)
    let bytes = 0
    const subs: Socket[] = []
    for (let i = 0; i < cfg.subscribers; i++) {
      const s = await upgrade(port, '/sub')
      s.on('data', (chunk: Buffer) => { bytes += chunk.length })
      subs.push(s)
    }
    let slowClosed = 0
    const sleepers: Socket[] = []
    for (let i = 0; i < slow; i++) {
      // A small receive window and no reading at all: the server must hold or drop what it sends.
      const s = await upgrade(port, '/sub')
      s.pause()
      s.once('close', () => { slowClosed++ })
      s.on('error', () => {})
      sleepers.push(s)
    }
    await sleep(300)
    const rssBefore = rssOf(child.pid!)
    const pub = await upgrade(port, '/pub')
    const batch = Buffer.concat(Array.from({ length: 256 }, () => encodeMaskedFrame(OP_BINARY, randomBytes(cfg.payload), 0x12345678)))
    let publishing = true
    const write = (): void => { while (publishing && pub.write(batch)) { /* until TCP says wait */ } }
    pub.on('drain', write)
    write()
    await sleep(cfg.warmupMs)
    const rssWarm = rssOf(child.pid!)
    const cpu0 = cpuSecondsOf(child.pid!)
    const start = bytes
    const t0 = performance.now()
    let rssMax = rssOf(child.pid!)
    const sampler = setInterval(() => { rssMax = Math.max(rssMax, rssOf(child.pid!)) }, 100)
    await sleep(cfg.durationMs)
    const seconds = (performance.now() - t0) / 1000
    const deliveries = (bytes - start) / FRAME
    const rate = deliveries / seconds
    const cpu = cpuSecondsOf(child.pid!) - cpu0
    clearInterval(sampler)
    const rssEnd = rssOf(child.pid!)
    rssMax = Math.max(rssMax, rssEnd)
    if (process.env.BENCH_STATS === '1' && file.includes('wspipe')) console.log(await request(child, { cmd: 'stats' }, 'stats', 5000))
    publishing = false
    for (const s of [pub, ...subs, ...sleepers]) s.destroy()
    return { rate, rssGrowthMB: (rssMax - rssBefore) / 1e6, rssSteadyMB: (rssEnd - rssWarm) / 1e6, slowClosed, cpuPerDelivery: cpu / deliveries * 1e6, cpuShare: cpu / seconds }
  } finally {
    await kill(child)
  }
}

const fmt = (x: number): string => Math.round(x).toLocaleString('en-US')
console.log(`fan-out: 1 publisher → ${cfg.subscribers} subscribers × ${cfg.payload} B binary; ${cfg.rounds} rounds of ${cfg.durationMs} ms after ${cfg.warmupMs} ms warm-up`)
console.log(`${info.date} · ${info.cpu} · ${info.nproc} cores · node ${info.node} · wspipe ${srcVersion()} · load ${loadAverage()}${tasksetAvailable() ? ' · server on core 0, clients on core 1' : ' · not pinned'}`)
console.log('(the machine is shared with other work: figures are noisy; compare within one run)\n')

const fast = new Map<string, Result[]>()
const withSlow = new Map<string, Result[]>()
for (let r = 0; r < cfg.rounds; r++) {
  for (const s of SERVERS) {
    const a = await run(s.file, 0, s.env)
    ;(fast.get(s.name) ?? fast.set(s.name, []).get(s.name)!).push(a)
    const b = await run(s.file, cfg.slow, s.env)
    ;(withSlow.get(s.name) ?? withSlow.set(s.name, []).get(s.name)!).push(b)
    console.log(`round ${r + 1} ${s.name}: ${fmt(a.rate)} deliveries/s (server ${(a.cpuShare * 100).toFixed(0)} % of a core, ${a.cpuPerDelivery.toFixed(2)} µs CPU each), RSS +${a.rssGrowthMB.toFixed(1)} MB (steady ${a.rssSteadyMB.toFixed(1)}); with ${cfg.slow} non-readers ${fmt(b.rate)}/s, RSS +${b.rssGrowthMB.toFixed(1)} MB (steady ${b.rssSteadyMB.toFixed(1)}), ${b.slowClosed} non-readers closed`)
  }
}

const rows = SERVERS.map((s) => {
  const f = fast.get(s.name)!
  const w = withSlow.get(s.name)!
  const a = median(f.map((x) => x.rate))
  const b = median(w.map((x) => x.rate))
  return { name: s.name, a, b, kept: b / a, us: median(f.map((x) => x.cpuPerDelivery)), share: median(f.map((x) => x.cpuShare)), rssFast: median(f.map((x) => x.rssGrowthMB)), rssSlow: median(w.map((x) => x.rssGrowthMB)), steadySlow: median(w.map((x) => x.rssSteadyMB)) }
})
const base = rows.find((r) => r.name === 'ws loop')!
console.log('')
console.log(`| server | deliveries/s | × ws | server CPU per delivery | server CPU | RSS growth | with ${cfg.slow} non-readers: deliveries/s | kept | RSS growth | of it, during the measured ${cfg.durationMs / 1000} s |`)
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
for (const r of rows) {
  console.log(`| ${r.name} | ${fmt(r.a)} | ${(r.a / base.a).toFixed(2)} | ${r.us.toFixed(2)} µs | ${(r.share * 100).toFixed(0)} % | ${r.rssFast.toFixed(0)} MB | ${fmt(r.b)} | ${(r.kept * 100).toFixed(0)} % | ${r.rssSlow.toFixed(0)} MB | ${r.steadySlow.toFixed(0)} MB |`)
}
console.log('\nRSS growth: peak RSS less RSS with all connections open before the first publish (medians).')
if (baseline !== undefined) {
  // round by round: the two versions ran back to back in each round
  const mine = fast.get('wspipe topics')!
  const theirs = fast.get(`${baseline.name} topics`)!
  const spread = (xs: number[]): string => `${median(xs).toFixed(3)}× [${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}]`
  console.log(`\nA/B: wspipe (src at ${srcVersion()}) ÷ ${baseline.name}, per round, median [min–max]: ` +
    `deliveries/s ${spread(mine.map((x, i) => x.rate / theirs[i].rate))} (higher is better), ` +
    `server CPU per delivery ${spread(mine.map((x, i) => x.cpuPerDelivery / theirs[i].cpuPerDelivery))} (lower is better)`)
}
