// Frame-parsing throughput: wspipe's FrameParser vs ws's Receiver (pure JS and with bufferutil),
// plus a plain-JavaScript reference (XOR-ing every byte through a Uint32Array, 4 words a round).
//
// Each decoder runs in its own long-lived child process, because ws picks its unmask
// implementation once, at load time, from WS_NO_BUFFER_UTIL. The orchestrator interleaves the
// decoders over several rounds and reports medians of wire-byte throughput.
//
//   npm run bench:parse                # 7 rounds
//   npm run bench:parse -- --quick     # 3 rounds
//   npm run bench:parse -- --markdown  # also print a markdown table
//
// What is timed: whole passes over >= 64 MiB of frames, each fed as 64 KiB reads that own their
// memory (as socket reads do), the consumer touching every frame; by wall clock (hrtime), with
// the worker's CPU time (process.cpuUsage) of the same passes beside it. Each worker warms up
// with two untimed passes per size and collects its garbage (gc()) before every timed pass, so
// no pass pays for the garbage of the pass or decoder before it but each pays for its own.
// Ratios are medians of per-round ratios (each round runs every decoder back to back), printed
// with their spread: on a shared machine the spread is the figure's error bar.
//
//   npm run bench:parse -- --sizes=16 --rounds=9   # one size, more rounds
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import { buildStream, sumBytes, type FrameStream } from './lib/frames.js'
import { spawnTs, request, nextMessage, kill, median, machineInfo, tasksetAvailable, loadAverage, srcVersion } from './lib/proc.js'

const SIZES = [16, 125, 1024, 64 * 1024, 1024 * 1024]
/**
 * The sizes as run: each fed as 64 KiB reads that own their memory, as socket reads do (a parser
 * may keep such a read by reference), and 1 MiB also as 64 KiB views of one large buffer (which
 * a parser must copy out of rather than pin).
 */
interface Case { key: string, size: number, owned: boolean }
const CASES: Case[] = [...SIZES.map(size => ({ key: String(size), size, owned: true })), { key: 'views', size: 1024 * 1024, owned: false }]
const MIN_WIRE_BYTES = 64 * 1024 * 1024
const CHUNK = 64 * 1024
const MAX_FRAME = 64 * 1024 * 1024

type Variant = 'wspipe' | 'ws-js' | 'ws-bufferutil' | 'xor-u32'
const VARIANTS: Variant[] = ['wspipe', 'ws-js', 'ws-bufferutil', 'xor-u32']
const LABEL: Record<Variant, string> = {
  wspipe: 'wspipe FrameParser',
  'ws-js': 'ws Receiver (plain JS)',
  'ws-bufferutil': 'ws Receiver + bufferutil',
  'xor-u32': 'ceiling: XOR via Uint32Array'
}

interface RunResult { type: 'result', cpuMbps: number, wallMbps: number, frames: number, payloadBytes: number, passes: number }

/** Untimed passes per size before the timed ones (the first also checks the decoded bytes). */
const WARMUP_PASSES = 2
const gc = (globalThis as { gc?: () => void }).gc

// ---------------------------------------------------------------- worker

/** Decodes every chunk of `work`; returns frames and payload bytes seen. */
type Decoder = (chunks: readonly Buffer[], work: Buffer) => { frames: number, payloadBytes: number }

const allocUnsafe = (size: number): Uint8Array => Buffer.allocUnsafe(size)

async function makeDecoder (variant: Variant, verify: (p: Uint8Array) => void): Promise<Decoder | string> {
  if (variant === 'wspipe') {
    let mod: any
    try {
      // a computed specifier: the harness must run (and type-check) before src/ is complete
      mod = await import(new URL('../src/protocol/index.js', import.meta.url).href)
    } catch (err) {
      return `cannot load src/protocol/index.js: ${(err as Error).message.split('\n')[0]}`
    }
    if (typeof mod.FrameParser !== 'function') return 'src/protocol/index.js does not export FrameParser'
    const FrameParser = mod.FrameParser
    return (chunks) => {
      // the allocator the Node driver gives it (no zero-fill), as a server runs it
      const parser = new FrameParser({ role: 'server', maxFrameSize: MAX_FRAME, alloc: allocUnsafe })
      let frames = 0
      let payloadBytes = 0
      for (let c = 0; c < chunks.length; c++) {
        const out = parser.push(chunks[c])
        // the consumer touches every frame, as a session does: its opcode and its payload
        for (let i = 0; i < out.length; i++) {
          const frame = out[i]
          if (frame.opcode !== 2) throw new Error('unexpected opcode')
          payloadBytes += frame.payload.length
          frames++
          verify(frame.payload)
        }
      }
      return { frames, payloadBytes }
    }
  }
  if (variant === 'ws-js' || variant === 'ws-bufferutil') {
    const require = createRequire(import.meta.url)
    // ws's package exports hide lib/, so go by path from the package root
    const Receiver = require(join(dirname(require.resolve('ws')), 'lib', 'receiver.js'))
    // ws requires bufferutil lazily from lib/buffer-util.js; the module cache tells whether it did
    const loaded = Object.keys(require.cache).some(k => k.includes('/node_modules/bufferutil/'))
    if (variant === 'ws-js' && loaded) return 'bufferutil got loaded although WS_NO_BUFFER_UTIL=1'
    if (variant === 'ws-bufferutil' && !loaded) return 'bufferutil did not load'
    return (chunks) => {
      let frames = 0
      let payloadBytes = 0
      const r = new Receiver({ isServer: true, maxPayload: MAX_FRAME, skipUTF8Validation: true })
      r.on('message', (data: Buffer) => { frames++; payloadBytes += data.length; verify(data) })
      r.on('error', (err: Error) => { throw err })
      // _write calls back synchronously, so write() never buffers and messages fire in this loop
      for (let c = 0; c < chunks.length; c++) r.write(chunks[c])
      return { frames, payloadBytes }
    }
  }
  return (_chunks, work) => {
    // the same bytes XOR-ed with one fixed key through a Uint32Array, four words a round (V8
    // runs that unrolled loop ~1.5x faster than one word a round): the cost of touching them in JS
    const words = new Uint32Array(work.buffer, work.byteOffset, work.length >>> 2)
    const perChunk = CHUNK >>> 2
    const key = 0x5a17c3e9
    for (let off = 0; off < words.length; off += perChunk) {
      const end = Math.min(off + perChunk, words.length)
      let i = off
      for (; i + 3 < end; i += 4) {
        words[i] ^= key
        words[i + 1] ^= key
        words[i + 2] ^= key
        words[i + 3] ^= key
      }
      for (; i < end; i++) words[i] ^= key
    }
    return { frames: 0, payloadBytes: 0 }
  }
}

async function worker (variant: Variant): Promise<void> {
  let checksum = 0
  let checking = false
  const verify = (p: Uint8Array): void => { if (checking) checksum = sumBytes(p, checksum) }
  const decoder = await makeDecoder(variant, verify)
  if (typeof decoder === 'string') {
    process.send!({ type: 'ready', unavailable: decoder })
    return
  }
  process.send!({ type: 'ready' })
  let cached: { key: string, stream: FrameStream, work: Buffer, reads: Buffer[] } | undefined
  // The reads of one pass: views of `work`, or buffers that each own their memory, made once
  // per size and refilled in place before every pass (fresh 64 MiB per pass would time the
  // allocator and the collector's external-memory heuristics, not the parser).
  const readsOf = (work: Buffer, owned: boolean): Buffer[] => {
    const reads: Buffer[] = []
    for (let off = 0; off < work.length; off += CHUNK) {
      const view = work.subarray(off, off + CHUNK)
      reads.push(owned ? Buffer.from(new ArrayBuffer(view.length)) : view)
    }
    return reads
  }
  /** Fresh masked bytes in every read, outside the timed region (both parsers unmask in place). */
  const refill = (stream: FrameStream, work: Buffer, reads: Buffer[], owned: boolean): Buffer[] => {
    work.set(stream.bytes)
    if (!owned) return reads
    for (let i = 0, off = 0; i < reads.length; i++, off += CHUNK) reads[i].set(stream.bytes.subarray(off, off + reads[i].length))
    return reads
  }
  process.on('message', (msg: any) => {
    if (msg.cmd !== 'run') return
    try {
      const owned = msg.owned === true
      const key = `${msg.size as number}:${String(owned)}`
      if (cached === undefined || cached.key !== key) {
        cached = undefined // let the previous size's buffers go first
        const stream = buildStream(msg.size, MIN_WIRE_BYTES)
        // own ArrayBuffer, so the Uint32Array view of the ceiling is aligned
        const work = Buffer.from(new ArrayBuffer(stream.bytes.length))
        cached = { key, stream, work, reads: readsOf(work, owned) }
        for (let w = 0; w < WARMUP_PASSES; w++) {
          const reads = refill(stream, work, cached.reads, owned)
          checking = w === 0; checksum = 0
          const r = decoder(reads, work)
          checking = false
          // the first pass checks that everything was decoded and really unmasked
          if (w === 0 && variant !== 'xor-u32' && (r.frames !== stream.frames || r.payloadBytes !== stream.payloadBytes || checksum !== stream.checksum)) {
            throw new Error(`${variant} size ${msg.size}: decoded ${r.frames} frames / ${r.payloadBytes} B / sum ${checksum}, ` +
              `expected ${stream.frames} / ${stream.payloadBytes} / ${stream.checksum}`)
          }
        }
      }
      const { stream, work, reads } = cached!
      let ns = 0n
      let cpuUs = 0
      let passes = 0
      let frames = 0
      let payloadBytes = 0
      while (passes < msg.minPasses || ns < BigInt(msg.targetMs) * 1_000_000n) {
        refill(stream, work, reads, owned)
        // what earlier passes left is collected here, untimed; each pass pays for its own garbage
        gc?.()
        const c0 = process.cpuUsage()
        const t0 = process.hrtime.bigint()
        const r = decoder(reads, work)
        ns += process.hrtime.bigint() - t0
        const c1 = process.cpuUsage(c0)
        cpuUs += c1.user + c1.system
        passes++
        frames = r.frames
        payloadBytes = r.payloadBytes
      }
      if (variant !== 'xor-u32' && (frames !== stream.frames || payloadBytes !== stream.payloadBytes)) {
        throw new Error(`${variant} size ${msg.size}: frame count mismatch ${frames} != ${stream.frames}`)
      }
      // both time bases over the same passes: CPU time leaves out slices other processes took
      // from this core, wall clock counts them (and is what a user waits for)
      const bytes = stream.bytes.length * passes
      const cpuMbps = bytes / (cpuUs / 1e6) / 1e6
      const wallMbps = bytes / (Number(ns) / 1e9) / 1e6
      process.send!({ type: 'result', cpuMbps, wallMbps, frames: stream.frames, payloadBytes: stream.payloadBytes, passes } satisfies RunResult)
    } catch (err) {
      process.send!({ type: 'error', message: (err as Error).message })
    }
  })
}

// ---------------------------------------------------------------- orchestrator

function fmtSize (n: number): string {
  return n >= 1024 * 1024 ? `${n / 1024 / 1024} MiB` : n >= 1024 ? `${n / 1024} KiB` : `${n} B`
}

function option (name: string): string | undefined {
  const arg = process.argv.find(a => a.startsWith(`--${name}=`))
  return arg?.slice(name.length + 3)
}

/** Median and spread (lowest, highest) of per-round values. */
function spread (xs: number[]): { med: number, lo: number, hi: number } {
  return xs.length === 0 ? { med: NaN, lo: NaN, hi: NaN } : { med: median(xs), lo: Math.min(...xs), hi: Math.max(...xs) }
}

async function main (): Promise<void> {
  const quick = process.argv.includes('--quick')
  const markdown = process.argv.includes('--markdown')
  const rounds = Number(option('rounds') ?? (quick ? 3 : 7))
  const sizes = option('sizes')?.split(',').map(Number)
  const cases = sizes === undefined ? CASES : CASES.filter(c => sizes.includes(c.size))
  if (cases.length === 0 || !(rounds > 0)) throw new Error(`--sizes takes some of ${SIZES.join(',')}; --rounds a positive number`)
  // Passes of >= 64 MiB: at least two per round, whatever their speed.
  const targetMs = quick ? 150 : 400
  const minPasses = 2
  const self = fileURLToPath(import.meta.url)
  const info = machineInfo()
  console.log(`parse benchmark: ${info.date}, ${info.nproc} cores, ${info.cpu}, node ${info.node}; ` +
    `${rounds} rounds, >= ${MIN_WIRE_BYTES >> 20} MiB of masked frames per size in ${CHUNK >> 10} KiB reads; ` +
    `workers pinned to core 1: ${tasksetAvailable()}; load average ${loadAverage()}; src at ${srcVersion()}`)

  const workers = new Map<Variant, import('node:child_process').ChildProcess>()
  const unavailable = new Map<Variant, string>()
  const loads: number[] = []
  try {
    for (const v of VARIANTS) {
      const env: Record<string, string> = v === 'ws-js' ? { WS_NO_BUFFER_UTIL: '1' } : {}
      const child = spawnTs(self, { core: 1, env, nodeArgs: ['--expose-gc'], args: ['--worker', v] })
      const ready = await nextMessage(child, 'ready', 30_000)
      if (ready.unavailable) {
        unavailable.set(v, ready.unavailable)
        console.log(`  ${LABEL[v]}: n/a (${ready.unavailable})`)
        await kill(child)
      } else {
        workers.set(v, child)
      }
    }
    // per round: `${base}:${variant}:${case}` -> MB/s, one entry per round
    const results = new Map<string, number[]>()
    const frameCounts = new Map<number, number>()
    for (let round = 0; round < rounds; round++) {
      for (const { key: ck, size, owned } of cases) {
        // rotate the order each round so no decoder always runs first
        const order = [...workers.keys()]
        for (let i = 0; i < round % order.length; i++) order.push(order.shift()!)
        for (const v of order) {
          const r = await request<RunResult>(workers.get(v)!, { cmd: 'run', size, owned, targetMs, minPasses }, 'result', 300_000)
          for (const [base, mbps] of [['cpu', r.cpuMbps], ['wall', r.wallMbps]] as const) {
            const key = `${base}:${v}:${ck}`
            results.set(key, [...(results.get(key) ?? []), mbps])
          }
          if (v !== 'xor-u32') {
            const prev = frameCounts.get(size)
            if (prev !== undefined && prev !== r.frames) throw new Error(`frame counts differ for ${size}`)
            frameCounts.set(size, r.frames)
          }
        }
      }
      const load = Number(loadAverage().split(' ')[0])
      loads.push(load)
      process.stdout.write(`  round ${round + 1}/${rounds} done (load ${load.toFixed(2)})\n`)
    }

    const f = (x: number): string => Number.isFinite(x) ? x.toFixed(0) : 'n/a'
    // the median of per-round ratios, and their range: decoders measured seconds apart share
    // the machine's state, so a ratio within a round is steadier than a ratio of medians
    const ratio = (base: string, a: Variant, b: Variant, ck: string): string => {
      const xs = results.get(`${base}:${a}:${ck}`) ?? []
      const ys = results.get(`${base}:${b}:${ck}`) ?? []
      const per = xs.map((x, i) => x / ys[i]).filter(Number.isFinite)
      if (per.length === 0) return 'n/a'
      const r = spread(per)
      return `${r.med.toFixed(2)}× (${r.lo.toFixed(2)}–${r.hi.toFixed(2)})`
    }
    const cell = (base: string, v: Variant, ck: string): string => {
      const r = spread(results.get(`${base}:${v}:${ck}`) ?? [])
      return Number.isFinite(r.med) ? `${f(r.med)} (${f(r.lo)}–${f(r.hi)})` : 'n/a'
    }
    const head = ['payload', 'frames/pass', 'wspipe MB/s', 'ws (JS) MB/s', 'ws+bufferutil MB/s', 'ceiling MB/s', 'wspipe / ws (JS)', 'wspipe / ws+bufferutil']
    for (const base of ['wall', 'cpu'] as const) {
      const rows: string[][] = []
      for (const { key: ck, size, owned } of cases) {
        rows.push([fmtSize(size) + (owned ? '' : ', views'), String(frameCounts.get(size) ?? ''),
          cell(base, 'wspipe', ck), cell(base, 'ws-js', ck), cell(base, 'ws-bufferutil', ck), cell(base, 'xor-u32', ck),
          ratio(base, 'wspipe', 'ws-js', ck), ratio(base, 'wspipe', 'ws-bufferutil', ck)])
      }
      console.log(`\nWire-byte throughput per ${base === 'cpu' ? 'CPU second of the worker (process.cpuUsage)' : 'wall-clock second (hrtime)'} ` +
        `(MB = 10^6 bytes), median (lowest–highest) over ${rounds} rounds; ratios are medians of per-round ratios:\n`)
      const widths = head.map((h, i) => Math.max(h.length, ...rows.map(r => r[i].length)))
      const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i])).join('  ')
      console.log(line(head))
      for (const r of rows) console.log(line(r))
      if (markdown) {
        console.log(`\n${base === 'cpu' ? 'CPU time' : 'Wall clock'}:\n`)
        console.log('| ' + head.join(' | ') + ' |')
        console.log('|' + head.map(() => '---:').join('|') + '|')
        for (const r of rows) console.log('| ' + r.join(' | ') + ' |')
      }
    }
    console.log('\nFrame counts and payload checksums verified for all decoders.')
    for (const [v, why] of unavailable) console.log(`\nnote: ${LABEL[v]} not measured: ${why}`)
    console.log(`\nload average (1 min) after each round: ${loads.map(l => l.toFixed(2)).join(', ')}; at the end: ${loadAverage()}` +
      (Math.max(...loads) >= 1.5 ? ' (>= 1.5: other processes shared the machine; read the figures as loose)' : ''))
  } finally {
    for (const c of workers.values()) await kill(c)
  }
}

const wi = process.argv.indexOf('--worker')
if (wi !== -1) {
  worker(process.argv[wi + 1] as Variant).catch(err => {
    process.send?.({ type: 'error', message: String(err) })
    process.exit(1)
  })
  process.on('disconnect', () => process.exit(0))
} else {
  main().catch(err => { console.error(err); process.exitCode = 1 })
}
