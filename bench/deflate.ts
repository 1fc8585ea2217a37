// permessage-deflate benchmark (issue 12): wspipe beside ws, both with deflate on.
//
//   npm run bench:deflate                 # about 2 minutes
//   options: --rounds=N  --conns=2000 (memory scenario)  --servers=wspipe,ws  --memory-only
//
// Throughput, "JSON chat": 16 connections, each keeping 16 messages of 1 KiB JSON in flight to an
// echo server; messages/s and the bytes on the wire per message each way. The client is this
// process and cheap on purpose: it sends pre-compressed, pre-masked frames (offering
// client_no_context_takeover, so each frame stands alone) and counts the replies by their
// headers without inflating them. The server pays for inflating and deflating every message.
//
// Memory: 2,000 connections negotiate permessage-deflate with context takeover on both sides
// (the browser offer), each sends one 1 KiB message and reads its echo (so ws has made its zlib
// streams), then idles; RSS above the server's baseline after a full GC, per connection. Then
// each connection sends 40 KiB more in 1-8 KiB messages ("after traffic": wspipe's windows
// full) and RSS is read again.
import { createHash, randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { deflateRawSync, constants } from 'node:zlib'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import { execFileSync } from 'node:child_process'
import { spawnTs, nextMessage, request, stop, sleep, median, rssOf, cpuSecondsOf, machineInfo, tasksetAvailable } from './lib/proc.js'
import { prng } from './lib/frames.js'

const here = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const flag = (name: string): string | undefined => args.find(a => a.startsWith(`--${name}=`))?.split('=')[1]
const ROUNDS = Number(flag('rounds') ?? 3)
const IDLE_CONNS = Number(flag('conns') ?? 2000)
const ONLY = flag('servers')?.split(',')
const MEMORY_ONLY = args.includes('--memory-only')
const DURATION_MS = 3000
const WARMUP_MS = 1000
const CONNS = 16
const INFLIGHT = 16
const SIZE = 1024

interface ServerDef { name: string, args: string[] }
const SERVERS: ServerDef[] = [
  { name: 'wspipe', args: ['--impl', 'wspipe'] },
  { name: 'wspipe shared', args: ['--impl', 'wspipe', '--mode', 'shared'] },
  { name: 'wspipe no-context', args: ['--impl', 'wspipe', '--mode', 'no-context'] },
  { name: 'ws', args: ['--impl', 'ws'] }
].filter(d => ONLY === undefined || ONLY.includes(d.name))

/** `n` distinct JSON chat messages of exactly SIZE bytes. */
function chatMessages (n: number): Buffer[] {
  const next = prng(7)
  const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']
  const words = ['hello', 'meeting', 'at', 'noon', 'see', 'you', 'there', 'thanks', 'great', 'news', 'deploy', 'done', 'lunch', 'coffee',
    'the', 'build', 'is', 'green', 'again', 'who', 'has', 'the', 'keys', 'to', 'staging', 'review', 'please', 'merged', 'tomorrow', 'ok',
    'release', 'notes', 'draft', 'ready', 'call', 'in', 'five', 'minutes', 'link', 'below', 'sorry', 'late', 'traffic', 'on', 'bridge']
  const out: Buffer[] = []
  for (let i = 0; i < n; i++) {
    const text: string[] = []
    const msg = { type: 'message', room: 'general', id: 100000 + i, user: users[next() % users.length], ts: 1764500000000 + i * 137, text: '', mentions: [users[next() % users.length]], reactions: { '+1': next() % 5, heart: next() % 3 } }
    let s = JSON.stringify(msg)
    while (s.length < SIZE) {
      text.push(words[next() % words.length])
      msg.text = text.join(' ')
      s = JSON.stringify(msg)
    }
    // Trim the text so the whole message is exactly SIZE bytes.
    msg.text = msg.text.slice(0, msg.text.length - (s.length - SIZE))
    out.push(Buffer.from(JSON.stringify(msg)))
  }
  return out
}

function maskedFrame (payload: Buffer, rsv1: boolean, opcode = 1): Buffer {
  const n = payload.length
  const head = n < 126 ? Buffer.from([0x80 | (rsv1 ? 0x40 : 0) | opcode, 0x80 | n]) : Buffer.from([0x80 | (rsv1 ? 0x40 : 0) | opcode, 0x80 | 126, n >> 8, n & 0xff])
  const key = randomBytes(4)
  const body = Buffer.alloc(n)
  for (let i = 0; i < n; i++) body[i] = payload[i] ^ key[i & 3]
  return Buffer.concat([head, key, body])
}

function compressed (payload: Buffer): Buffer {
  const out = deflateRawSync(payload, { finishFlush: constants.Z_SYNC_FLUSH })
  return out.subarray(0, out.length - 4)
}

/** Open a WebSocket over a raw socket with `extensions` offered; resolves with the socket and the answer. */
function open (port: number, extensions: string): Promise<{ socket: Socket, answer: string }> {
  return new Promise((resolve, reject) => {
    const key = randomBytes(16).toString('base64')
    const socket = connect(port, '127.0.0.1')
    socket.setNoDelay(true)
    let got = Buffer.alloc(0)
    const onData = (c: Buffer): void => {
      got = Buffer.concat([got, c])
      const end = got.indexOf('\r\n\r\n')
      if (end < 0) return
      socket.off('data', onData)
      const head = got.subarray(0, end).toString('latin1')
      const accept = createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
      if (!head.startsWith('HTTP/1.1 101') || !head.includes(accept)) { reject(new Error(`bad handshake: ${head}`)); return }
      const answer = /sec-websocket-extensions: *([^\r\n]*)/i.exec(head)?.[1] ?? ''
      if (got.length > end + 4) socket.unshift(got.subarray(end + 4))
      resolve({ socket, answer })
    }
    socket.on('data', onData)
    socket.once('error', reject)
    socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: ${extensions}\r\n\r\n`)
  })
}

/** Counts data frames by their headers; returns how many completed in `chunk`. */
class Counter {
  private buf = Buffer.alloc(0)
  private skip = 0
  frames = 0
  feed (chunk: Buffer): number {
    let done = 0
    const b = this.buf.length > 0 ? Buffer.concat([this.buf, chunk]) : chunk
    let i = 0
    for (;;) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, b.length - i)
        this.skip -= take
        i += take
        if (this.skip > 0) break
        done++
        continue
      }
      if (b.length - i < 2) break
      let len = b[i + 1] & 0x7f
      let hl = 2
      if (len === 126) { if (b.length - i < 4) break; len = b.readUInt16BE(i + 2); hl = 4 } else if (len === 127) { if (b.length - i < 10) break; len = Number(b.readBigUInt64BE(i + 2)); hl = 10 }
      i += hl
      if (len === 0) { done++; continue }
      this.skip = len
    }
    this.buf = i < b.length ? Buffer.from(b.subarray(i)) : Buffer.alloc(0)
    this.frames += done
    return done
  }
}

async function startServer (def: ServerDef): Promise<{ child: ChildProcess, port: number }> {
  const child = spawnTs(join(here, 'servers/deflate.ts'), { core: 0, nodeArgs: ['--expose-gc'], args: def.args })
  const { port } = await nextMessage<{ port: number }>(child, 'listening', 20_000)
  return { child, port }
}

interface Throughput { msgs: number, inPerMsg: number, outPerMsg: number, cpu: number, answer: string }

async function throughput (def: ServerDef, frames: Buffer[]): Promise<Throughput> {
  const { child, port } = await startServer(def)
  const conns = await Promise.all(Array.from({ length: CONNS }, () => open(port, 'permessage-deflate; client_no_context_takeover; client_max_window_bits')))
  let counting = false
  let received = 0
  let k = 0
  for (const { socket } of conns) {
    const counter = new Counter()
    socket.on('data', (c: Buffer) => {
      const n = counter.feed(c)
      if (counting) received += n
      // Keep INFLIGHT messages outstanding: one new message per reply.
      if (n > 0) {
        const batch: Buffer[] = []
        for (let i = 0; i < n; i++) batch.push(frames[k++ % frames.length])
        socket.write(batch.length === 1 ? batch[0] : Buffer.concat(batch))
      }
    })
    for (let i = 0; i < INFLIGHT; i++) socket.write(frames[k++ % frames.length])
  }
  await sleep(WARMUP_MS)
  const read0 = conns.reduce((n, c) => n + c.socket.bytesRead, 0)
  const written0 = conns.reduce((n, c) => n + c.socket.bytesWritten, 0)
  const cpu0 = cpuSecondsOf(child.pid!)
  counting = true
  const t0 = performance.now()
  await sleep(DURATION_MS)
  counting = false
  const seconds = (performance.now() - t0) / 1000
  const cpu = (cpuSecondsOf(child.pid!) - cpu0) / seconds * 100
  const read = conns.reduce((n, c) => n + c.socket.bytesRead, 0) - read0
  const written = conns.reduce((n, c) => n + c.socket.bytesWritten, 0) - written0
  for (const { socket } of conns) socket.destroy()
  await stop(child)
  return { msgs: received / seconds, inPerMsg: written / received, outPerMsg: read / received, cpu, answer: conns[0].answer }
}

async function gcRss (child: ChildProcess): Promise<number> {
  const m = await request<{ rss: number }>(child, { cmd: 'gc' }, 'gc', 20_000)
  await sleep(200)
  return Math.max(m.rss, rssOf(child.pid!))
}

/** Send one message on each socket and wait for every echo. */
async function exchange (sockets: Socket[], counters: Counter[], frame: (i: number) => Buffer, each: number): Promise<void> {
  const want = counters.map(c => c.frames + each)
  for (const s of sockets) for (let j = 0; j < each; j++) s.write(frame(j))
  const deadline = Date.now() + 60_000
  while (counters.some((c, i) => c.frames < want[i])) {
    if (Date.now() > deadline) throw new Error('echoes did not come back')
    await sleep(50)
  }
}

interface Memory { idle: number, traffic: number, answer: string }

async function memory (def: ServerDef, chat: Buffer[]): Promise<Memory> {
  const { child, port } = await startServer(def)
  // One throwaway connection first, so code paths and pools are warm in the baseline.
  const warm = await open(port, 'permessage-deflate; client_max_window_bits')
  warm.socket.write(maskedFrame(compressed(chat[0]), true))
  await sleep(300)
  warm.socket.destroy()
  await sleep(300)
  const base = await gcRss(child)
  const sockets: Socket[] = []
  const counters: Counter[] = []
  let answer = ''
  for (let i = 0; i < IDLE_CONNS; i += 100) {
    const batch = await Promise.all(Array.from({ length: Math.min(100, IDLE_CONNS - i) }, () => open(port, 'permessage-deflate; client_max_window_bits')))
    for (const { socket, answer: a } of batch) {
      const c = new Counter()
      socket.on('data', (d: Buffer) => c.feed(d))
      sockets.push(socket)
      counters.push(c)
      answer = a
    }
  }
  // The first message of a context stands alone, so one pre-compressed frame fits every socket.
  const plain = answer === ''
  const first = plain ? maskedFrame(chat[1], false) : maskedFrame(compressed(chat[1]), true)
  await exchange(sockets, counters, () => first, 1)
  const idle = (await gcRss(child) - base) / IDLE_CONNS
  // 40 KiB more per connection, compressed one message at a time with context takeover.
  const next = prng(11)
  const sizes = Array.from({ length: 10 }, () => 1024 + (next() % 7168))
  const bodies = sizes.map((n, j) => Buffer.from(Array.from({ length: n }, (_, i) => chat[(i + j) % chat.length][i % SIZE])))
  // A context-taking-over stream for the client side: one deflate stream per sequence, same for all sockets.
  const frames: Buffer[] = []
  let dictionary = chat[1]
  const reset = answer.includes('client_no_context_takeover')
  for (const b of bodies) {
    // The server's window for us (client_max_window_bits) bounds how far back we may refer.
    const bits = Number(/client_max_window_bits=(\d+)/.exec(answer)?.[1] ?? 15)
    const out = deflateRawSync(b, { finishFlush: constants.Z_SYNC_FLUSH, windowBits: Math.max(9, bits), dictionary: reset ? undefined : dictionary.subarray(Math.max(0, dictionary.length - (1 << bits))) })
    frames.push(plain ? maskedFrame(b, false) : maskedFrame(out.subarray(0, out.length - 4), true))
    dictionary = Buffer.concat([dictionary, b])
  }
  await exchange(sockets, counters, (j) => frames[j], frames.length)
  const traffic = (await gcRss(child) - base) / IDLE_CONNS
  for (const s of sockets) s.destroy()
  await stop(child)
  return { idle, traffic, answer }
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US')
const kib = (n: number): string => `${(n / 1024).toFixed(1)} KiB`

async function main (): Promise<void> {
  const info = machineInfo()
  console.log(`permessage-deflate benchmark — ${info.date}, ${info.cpu}, ${info.nproc} cores, node ${info.node}`)
  // Many distinct messages, so no window finds the very same message again (a chat room's
  // messages share their keys and vocabulary, not their text).
  const chat = chatMessages(4096)
  const frames = chat.map(m => maskedFrame(compressed(m), true))
  console.log(`JSON chat messages: ${SIZE} B each, ${(frames.reduce((n, f) => n + f.length, 0) / frames.length).toFixed(0)} B per client frame compressed (no context)`)
  // Servers on core 0 (with their threads: ws's zlib pool too), this client on core 1.
  if (tasksetAvailable()) execFileSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' })
  const rows: string[] = []
  const base = new Map<string, number>()
  const all = new Map<string, Throughput[]>(SERVERS.map(d => [d.name, []]))
  // Rounds interleave the servers, so a busy moment on the machine does not fall on one of them.
  for (let r = 0; r < (MEMORY_ONLY ? 0 : ROUNDS); r++) for (const def of SERVERS) all.get(def.name)!.push(await throughput(def, frames))
  for (const def of MEMORY_ONLY ? [] : SERVERS) {
    const runs = all.get(def.name)!
    const msgs = median(runs.map(x => x.msgs))
    base.set(def.name, msgs)
    const t = runs[0]
    rows.push(`| ${def.name} | ${fmt(msgs)} | ${median(runs.map(x => x.outPerMsg)).toFixed(0)} | ${median(runs.map(x => x.inPerMsg)).toFixed(0)} | ${median(runs.map(x => x.cpu)).toFixed(0)}% | \`${t.answer}\` |`)
    console.log(`  ${def.name}: ${runs.map(x => fmt(x.msgs)).join(', ')} msg/s`)
  }
  console.log(`\nThroughput (${CONNS} conns × ${INFLIGHT} in flight, ${SIZE} B JSON, median of ${ROUNDS} × ${DURATION_MS / 1000} s):\n`)
  console.log('| server | messages/s | bytes/msg server→client | bytes/msg client→server | server CPU | answer |')
  console.log('|---|---:|---:|---:|---:|---|')
  for (const r of rows) console.log(r)
  const ws = base.get('ws')
  if (ws !== undefined) console.log(`\nwspipe / ws: ${((base.get('wspipe') ?? NaN) / ws).toFixed(2)}×; shared / ws: ${((base.get('wspipe shared') ?? NaN) / ws).toFixed(2)}×`)

  const mem: string[] = []
  for (const def of [...SERVERS, { name: 'wspipe, deflate off', args: ['--impl', 'wspipe-off'] }]) {
    const m = await memory(def, chat)
    mem.push(`| ${def.name} | ${kib(m.idle)} | ${kib(m.traffic)} | \`${m.answer}\` |`)
    console.log(`  ${def.name}: idle ${kib(m.idle)}, after traffic ${kib(m.traffic)}`)
  }
  console.log(`\nRSS per connection, ${IDLE_CONNS} connections (above the server's baseline, after GC):\n`)
  console.log('| server | idle, after one 1 KiB message each way | after 40 KiB more each way | answer |')
  console.log('|---|---:|---:|---|')
  for (const r of mem) console.log(r)
}

main().then(() => process.exit(0), (e: unknown) => { console.error(e); process.exit(1) })
