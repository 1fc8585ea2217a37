// Stream-mode benchmark (issue 14): 256 MiB echoed as one streamed message through wspipe's
// `echo-stream` (stream mode, as in the demo), beside the same 256 MiB as 16 whole 16 MiB
// messages through wspipe's whole-message echo and through ws (plain JS, and with bufferutil).
// Each server is its own process pinned to core 0 (bench/servers/*.ts); the client is this file
// with --client, one process pinned to core 1, and is the same for every server (wspipe's
// `connect`: stream mode for echo-stream, whole messages otherwise). Runs are interleaved over
// several rounds, each on a fresh connection; results are medians.
//
//   npm run bench:stream                # 5 rounds
//   npm run bench:stream -- --quick     # 2 rounds
//   options: --markdown  --rounds=N
//
// MB/s is echoed payload per wall-clock second, one direction, from the first byte sent to the
// last byte of the echo read. Server CPU is read from /proc; server RSS growth is its peak over
// all runs, warm-up included (sampled every 20 ms), minus its RSS once it started listening.
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ChildProcess } from 'node:child_process'
import { connect } from '../src/index.js'
import { cpuSecondsOf, kill, loadAverage, machineInfo, median, nextMessage, request, rssOf, sleep, spawnTs, srcVersion, stop, tasksetAvailable } from './lib/proc.js'

const here = dirname(fileURLToPath(import.meta.url))
const MiB = 1024 * 1024
const TOTAL = 256 * MiB
const WHOLE = 16 * MiB
const CHUNK = 256 * 1024

/** What the client is asked to do: `stream` sends TOTAL as one streamed message, `whole` as TOTAL / WHOLE messages. */
interface RunCommand { cmd: 'run', port: number, mode: 'stream' | 'whole' }
interface RunResult { type: 'result', seconds: number, echoed: number, clientCpu: number }

// ---------------------------------------------------------------- the client (--client, core 1)

/** Stamp `buf` with `i` at the front, so a repeated or lost piece shows in the echo. */
function stamp (buf: Uint8Array, i: number): Uint8Array {
  new DataView(buf.buffer, buf.byteOffset, 4).setUint32(0, i)
  return buf
}

async function runStream (port: number): Promise<number> {
  const conn = await connect(`ws://127.0.0.1:${port}/`, { protocols: ['echo-stream'], messages: 'stream', maxMessageSize: Infinity })
  try {
    // one reused buffer: the client masks each chunk into a copy as it queues it
    const buf = new Uint8Array(CHUNK).fill(0x61)
    const sending = conn.send({ type: 'binary', chunks: (function * () { for (let i = 0; i < TOTAL / CHUNK; i++) yield stamp(buf, i) })() })
    const { value: msg, done } = await conn.source.next()
    if (done === true) throw new Error('no echo')
    let echoed = 0
    let first = -1
    for await (const chunk of msg.chunks) {
      // the stamp of the first chunk: the echo starts where the message did
      if (first === -1 && chunk.length >= 4) first = new DataView(chunk.buffer, chunk.byteOffset, 4).getUint32(0)
      echoed += chunk.length
    }
    await sending
    if (echoed !== TOTAL || first !== 0) throw new Error(`echo-stream: ${echoed} bytes echoed (first stamp ${first})`)
    return echoed
  } finally {
    conn.close()
    await conn.closed
  }
}

async function runWhole (port: number): Promise<number> {
  const conn = await connect(`ws://127.0.0.1:${port}/`, { maxMessageSize: WHOLE })
  try {
    const buf = new Uint8Array(WHOLE).fill(0x62)
    const count = TOTAL / WHOLE
    // each send() waits for room below sendHighWaterMark: backpressure, while the echoes are read
    const sending = (async () => { for (let i = 0; i < count; i++) await conn.send(stamp(buf, i)) })()
    let echoed = 0
    for (let i = 0; i < count; i++) {
      const { value, done } = await conn.source.next()
      if (done === true) throw new Error(`whole: ${i} of ${count} messages echoed`)
      if (value.length !== WHOLE || new DataView(value.buffer, value.byteOffset, 4).getUint32(0) !== i) throw new Error(`whole: message ${i} came back wrong`)
      echoed += value.length
    }
    await sending
    return echoed
  } finally {
    conn.close()
    await conn.closed
  }
}

async function client (): Promise<void> {
  process.on('message', (msg: RunCommand) => {
    if (msg?.cmd !== 'run') return
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    ;(msg.mode === 'stream' ? runStream(msg.port) : runWhole(msg.port)).then((echoed) => {
      const seconds = (performance.now() - t0) / 1000
      const cpu = process.cpuUsage(cpu0)
      const reply: RunResult = { type: 'result', seconds, echoed, clientCpu: 100 * (cpu.user + cpu.system) / 1e6 / seconds }
      process.send!(reply)
    }, (err: Error) => { process.send!({ type: 'error', message: err.message }) })
  })
  process.on('disconnect', () => process.exit(0))
  process.send!({ type: 'ready' })
}

// ---------------------------------------------------------------- the orchestrator

interface Case { name: string, file: string, env: Record<string, string>, mode: 'stream' | 'whole' }
const CASES: Case[] = [
  { name: `wspipe echo-stream, 1 × ${TOTAL / MiB} MiB`, file: 'servers/wspipe.ts', env: {}, mode: 'stream' },
  { name: `wspipe whole, ${TOTAL / WHOLE} × ${WHOLE / MiB} MiB`, file: 'servers/wspipe.ts', env: {}, mode: 'whole' },
  { name: `ws whole, ${TOTAL / WHOLE} × ${WHOLE / MiB} MiB`, file: 'servers/ws.ts', env: { WS_NO_BUFFER_UTIL: '1', WS_NO_UTF_8_VALIDATE: '1' }, mode: 'whole' },
  // empty strings are falsy for ws's checks, so the add-ons load even if the caller exported the flags
  { name: `ws+native whole, ${TOTAL / WHOLE} × ${WHOLE / MiB} MiB`, file: 'servers/ws.ts', env: { WS_NO_BUFFER_UTIL: '', WS_NO_UTF_8_VALIDATE: '' }, mode: 'whole' }
]

interface Sample { mbps: number, cpuMsPerMB: number, clientCpu: number }
/** % of its core above which the client, not the server, may be the limit. */
const CLIENT_SATURATED = 90

async function orchestrate (): Promise<void> {
  const args = process.argv.slice(2)
  const quick = args.includes('--quick')
  const rounds = Number(args.find(a => a.startsWith('--rounds='))?.split('=')[1] ?? (quick ? 2 : 5))
  const info = machineInfo()
  const t0 = Date.now()
  console.log(`stream benchmark${quick ? ' (--quick)' : ''}: ${info.date}, ${info.nproc} cores, ${info.cpu}, node ${info.node}, ` +
    `taskset: ${tasksetAvailable() ? 'servers on core 0, client on core 1' : 'not available, processes unpinned'}, load average ${loadAverage()}`)
  console.log(`src at ${srcVersion()}; ${rounds} rounds of ${TOTAL / MiB} MiB per case, after one warm-up run each\n`)

  const clientProc = spawnTs(fileURLToPath(import.meta.url), { core: 1, args: ['--client'] })
  await nextMessage(clientProc, 'ready', 30_000)
  const servers: ChildProcess[] = []
  const ports: number[] = []
  const startRss: number[] = []
  const peakRss: number[] = []
  try {
    // one server process per case, alive for all rounds (two run wspipe's server: one per mode)
    for (const c of CASES) {
      const child = spawnTs(join(here, c.file), { core: 0, env: c.env, nodeArgs: ['--expose-gc'] })
      const m = await nextMessage(child, 'listening', 30_000)
      if (c.name.startsWith('ws whole') && m.bufferutil === true) throw new Error('plain ws loaded bufferutil')
      if (c.name.startsWith('ws+native') && m.bufferutil !== true) throw new Error('bufferutil did not load')
      servers.push(child)
      ports.push(m.port)
    }
    await sleep(300)
    for (const child of servers) {
      startRss.push(rssOf(child.pid!))
      peakRss.push(rssOf(child.pid!))
    }
    const samples = CASES.map((): Sample[] => [])
    const once = async (i: number): Promise<Sample> => {
      const pid = servers[i].pid!
      const timer = setInterval(() => { peakRss[i] = Math.max(peakRss[i], rssOf(pid)) }, 20)
      const cpu0 = cpuSecondsOf(pid)
      try {
        const r = await request<RunResult>(clientProc, { cmd: 'run', port: ports[i], mode: CASES[i].mode }, 'result', 120_000)
        const cpu = cpuSecondsOf(pid) - cpu0
        peakRss[i] = Math.max(peakRss[i], rssOf(pid))
        return { mbps: r.echoed / 1e6 / r.seconds, cpuMsPerMB: 1000 * cpu / (r.echoed / 1e6), clientCpu: r.clientCpu }
      } finally {
        clearInterval(timer)
      }
    }
    for (let i = 0; i < CASES.length; i++) await once(i)
    for (let round = 0; round < rounds; round++) {
      // rotate the order each round, so no case always runs first
      for (let k = 0; k < CASES.length; k++) {
        const i = (k + round) % CASES.length
        samples[i].push(await once(i))
        await sleep(200)
      }
      console.log(`  round ${round + 1}/${rounds} done (${((Date.now() - t0) / 1000).toFixed(0)} s)`)
    }

    const med = (i: number, f: (s: Sample) => number): number => median(samples[i].map(f))
    const ratio = (x: number, base: number): string => `${(x / base).toFixed(2)}×`
    const stream = med(0, s => s.mbps)
    const ws = med(2, s => s.mbps)
    const head = ['case', 'MB/s', 'vs echo-stream', 'vs ws whole', 'server CPU ms/MB', 'server RSS growth MB', 'client CPU %']
    const rows = CASES.map((c, i) => {
      const v = med(i, s => s.mbps)
      return [c.name, v.toFixed(0), ratio(v, stream), ratio(v, ws), med(i, s => s.cpuMsPerMB).toFixed(2), ((peakRss[i] - startRss[i]) / 1e6).toFixed(1), med(i, s => s.clientCpu).toFixed(0)]
    })
    console.log(`\nmedians over ${rounds} rounds; MB/s = echoed payload per wall-clock second, one direction (higher is better)\n`)
    const widths = head.map((h, j) => Math.max(h.length, ...rows.map(r => r[j].length)))
    console.log(head.map((h, j) => h.padEnd(widths[j])).join(' | '))
    console.log(widths.map(w => '-'.repeat(w)).join('-|-'))
    for (const r of rows) console.log(r.map((x, j) => x.padEnd(widths[j])).join(' | '))
    console.log(`\necho-stream / wspipe whole: ${ratio(stream, med(1, s => s.mbps))}; echo-stream / ws whole: ${ratio(stream, ws)}; echo-stream / ws+native whole: ${ratio(stream, med(3, s => s.mbps))}`)
    for (const [i, c] of CASES.entries()) {
      const cpu = med(i, s => s.clientCpu)
      if (cpu > CLIENT_SATURATED) console.log(`warning: ${c.name}: the client used ${cpu.toFixed(0)}% of its core — the client, not the server, may be the limit`)
    }
    if (args.includes('--markdown')) {
      console.log(`\n<!-- ${info.date}; ${info.nproc} cores, ${info.cpu}; node ${info.node}; linux ${info.kernel}; src ${srcVersion()}; ${rounds} rounds -->\n`)
      console.log('| ' + head.join(' | ') + ' |')
      console.log('|' + head.map((_, j) => j === 0 ? '---' : '---:').join('|') + '|')
      for (const r of rows) console.log('| ' + r.join(' | ') + ' |')
    }
    console.log(`\ntotal ${((Date.now() - t0) / 1000).toFixed(0)} s; load average at the end ${loadAverage()}`)
  } finally {
    for (const s of servers) await stop(s)
    await kill(clientProc)
  }
}

if (process.argv.includes('--client')) await client()
else await orchestrate()
