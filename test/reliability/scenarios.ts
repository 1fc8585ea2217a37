// The abuse scenarios of `npm run reliability`. Each one names its attack, its pass rule, the
// server it runs against (a fresh one per scenario), and returns a figure. Every loop is bounded
// in count and in time; memory attacks stop when the server's RSS passes RSS_STOP.
import { isUtf8 } from 'node:buffer'
import { spawn, spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { constants as zlibConstants, crc32, deflateRawSync, inflateRawSync } from 'node:zlib'
import { cpuSecondsOf } from '../../bench/lib/proc.js'
import { encodeMaskedFrame, repeatFrame, OP_BINARY, OP_CLOSE, OP_TEXT } from '../../bench/lib/frames.js'
import { encodeFrame, frameHeader, OP } from '../conformance/wire.js'
import { closedWithin, flood, flushed, mb, MiB, pool, RawClient, sleep, tcp, upgradeRequest } from './peers.js'
import { leakProblems, type LeakReport } from './leak.js'
import { watchRss, type RunningServer, type ServerSpec } from './servers.js'
import { connect } from '../../src/index.js'
import { createClient } from 'redis'
import { RedisServer } from '../topics/redis-server.js'

export type Kind = 'wspipe' | 'ws'

export interface Ctx {
  kind: Kind
  quick: boolean
  /** `ulimit -n` of this process (the servers inherit it). */
  fdLimit: number
}

export interface Outcome {
  /** What was measured, in a few words with numbers. */
  figure: string
  /** null: the scenario does not apply to this server. */
  pass: boolean | null
}

export interface Scenario {
  name: string
  /** What the attacker does (for docs/reliability.md). */
  does: string
  rule: string
  /** The server to start, 'none' when the scenario runs its own, 'n/a' when it does not apply. */
  server: (kind: Kind) => ServerSpec | 'none' | 'n/a'
  run: (server: RunningServer | undefined, ctx: Ctx) => Promise<Outcome>
  /** How long the runner waits for `run` before failing it; default 90 s (quick) or 300 s. */
  bound?: number
}

/** Attacks on memory stop once the server's RSS passes this (the machine is shared). */
export const RSS_STOP = 1.5 * 1024 * MiB

const q = <T>(ctx: Ctx, quick: T, full: T): T => ctx.quick ? quick : full
const demoOr = (kind: Kind, handler: 'echo' | 'idle' | 'ping' = 'echo'): ServerSpec => kind === 'ws' ? { script: 'ws', handler } : { script: 'demo' }
const mask = (): number => (Math.random() * 0x100000000) >>> 0
const CLOSE_1000 = encodeMaskedFrame(OP_CLOSE, Uint8Array.of(0x03, 0xe8), 0x01020304)
const s1 = (ms: number | undefined): string => ms === undefined ? '–' : `${(ms / 1000).toFixed(2)} s`

/** Poll `check` every 50 ms for at most `ms`; the ms it took, or undefined. */
async function waitFor (check: () => boolean, ms: number): Promise<number | undefined> {
  const start = performance.now()
  for (;;) {
    if (check()) return performance.now() - start
    if (performance.now() - start > ms) return undefined
    await sleep(50)
  }
}

/**
 * The ms until the server's descriptors fall to `fds` (its connections are gone), or undefined.
 * A client that reads nothing cannot see the server's FIN, so the server is asked instead.
 */
async function serverDropped (s: RunningServer, fds: number, ms: number): Promise<number | undefined> {
  return await waitFor(() => s.fds() <= fds, ms)
}

/** Connect, echo `n` text messages, close 1000 and wait for TCP to end. Throws on anything else. */
async function echoAndClose (port: number, n = 1): Promise<void> {
  const c = await RawClient.connect(port)
  try {
    for (let i = 0; i < n; i++) {
      const text = `echo ${i} ${Math.random()}`
      c.send(encodeMaskedFrame(OP_TEXT, Buffer.from(text), mask()))
      const f = await c.nextFrame(5000)
      if (f?.opcode !== 1 || f.payload.toString() !== text) throw new Error(`echo ${i}: got ${f === undefined ? 'close' : `opcode ${f.opcode}`}`)
    }
    c.send(CLOSE_1000)
    const close = await c.nextClose(5000)
    if (close?.code !== 1000) throw new Error(`close: got ${close?.code ?? 'none'}`)
    await c.waitClosed(5000)
  } finally {
    c.destroy()
  }
}

/** A fresh client still gets its echoes (within 5 s). */
async function freshEcho (port: number): Promise<boolean> {
  try {
    await echoAndClose(port, 3)
    return true
  } catch {
    return false
  }
}

/** The close code the server sent, if a close frame arrives within `ms`. */
async function closeCode (c: RawClient, ms: number): Promise<number | undefined> {
  try {
    return (await c.nextClose(ms))?.code
  } catch {
    return undefined
  }
}

const churn: Scenario = {
  name: 'churn',
  does: 'Connect, echo one text message, close with 1000 and wait for TCP to end — 20,000 times, 32 at a time (quick: 2,000). Baseline taken after 200 warm-up connections.',
  rule: 'failures 0; server fds back to baseline within 5 s; heap after GC ≤ baseline + 4 MiB',
  server: (kind) => demoOr(kind),
  async run (s, ctx) {
    const n = q(ctx, 2000, 20_000)
    const warm = await pool(200, 20, Date.now() + 30_000, async () => { await echoAndClose(s!.port) })
    await sleep(300)
    const base = await s!.probe()
    const start = performance.now()
    const r = await pool(n, 32, Date.now() + q(ctx, 60_000, 240_000), async () => { await echoAndClose(s!.port) })
    const secs = (performance.now() - start) / 1000
    const back = await waitFor(() => s!.fds() <= base.fds, 5000)
    const after = await s!.probe()
    const failures = warm.failures + r.failures + (n - r.started)
    const growth = after.heapUsed - base.heapUsed
    return {
      figure: `${r.started} conns in ${secs.toFixed(0)} s, ${failures} failures${r.errors.length > 0 ? ` (${r.errors[0]})` : ''}; fds ${base.fds}→${after.fds}; heap ${mb(base.heapUsed)}→${mb(after.heapUsed)}`,
      pass: failures === 0 && back !== undefined && growth <= 4 * MiB
    }
  }
}

function resets (where: 'frame' | 'handshake'): Scenario {
  return {
    name: `reset mid-${where}`,
    does: where === 'frame'
      ? '1,000 clients (quick: 200) complete the handshake, send half of a 64 KiB frame, then reset TCP (RST).'
      : '1,000 clients (quick: 200) send half of the upgrade request, then reset TCP (RST).',
    rule: 'server fds back to baseline within 5 s; heap after GC ≤ baseline + 4 MiB; a fresh client echoes',
    server: (kind) => demoOr(kind),
    async run (s, ctx) {
      const n = q(ctx, 200, 1000)
      await echoAndClose(s!.port)
      const base = await s!.probe()
      const frame = encodeMaskedFrame(OP_BINARY, Buffer.alloc(65536, 7), mask())
      const request = Buffer.from(upgradeRequest())
      const r = await pool(n, 50, Date.now() + 60_000, async () => {
        const socket = where === 'frame' ? (await RawClient.connect(s!.port)).socket : await tcp(s!.port)
        socket.write(where === 'frame' ? frame.subarray(0, 32 * 1024) : request.subarray(0, request.length >> 1))
        await flushed(socket, 2000)
        socket.resetAndDestroy()
      })
      const back = await waitFor(() => s!.fds() <= base.fds, 5000)
      const after = await s!.probe()
      const fresh = await freshEcho(s!.port)
      const growth = after.heapUsed - base.heapUsed
      return {
        figure: `${r.started - r.failures} resets; fds back ${back === undefined ? `not within 5 s (${base.fds}→${s!.fds()})` : `in ${s1(back)}`}; heap ${growth >= 0 ? '+' : ''}${mb(growth)}; fresh echo ${fresh ? 'ok' : 'FAILED'}`,
        pass: r.failures === 0 && back !== undefined && growth <= 4 * MiB && fresh
      }
    }
  }
}

const halfOpen: Scenario = {
  name: 'half-open (FIN, no close frame)',
  does: '500 clients (quick: 100) echo one message, then half-close TCP (FIN) without a close frame and keep reading.',
  rule: 'the server ends every such connection within 2 s',
  server: (kind) => demoOr(kind),
  async run (s, ctx) {
    const n = q(ctx, 100, 500)
    const times: Array<number | undefined> = []
    const r = await pool(n, 50, Date.now() + 60_000, async () => {
      const c = await RawClient.connect(s!.port)
      c.send(encodeMaskedFrame(OP_TEXT, Buffer.from('half'), mask()))
      await c.nextFrame(5000)
      const t0 = performance.now()
      c.socket.end()
      times.push(await closedWithin(c.socket, 5000, t0))
      c.destroy()
    })
    const open = times.filter((t) => t === undefined).length
    const max = Math.max(0, ...times.filter((t): t is number => t !== undefined))
    return {
      figure: `${times.length - open}/${n} ended by the server, slowest ${s1(max)}${r.failures > 0 ? `; ${r.failures} failures (${r.errors[0]})` : ''}`,
      pass: r.failures === 0 && open === 0 && times.length === n && max <= 2000
    }
  }
}

const silentPeer: Scenario = {
  name: 'silent peer (heartbeat 1 s + 1 s)',
  does: '20 clients complete the handshake, then read nothing and write nothing. wspipe runs with `heartbeat: { interval: 1000, timeout: 1000 }` (the demo\'s 30 s + 10 s would take 40 s); ws has no heartbeat of its own.',
  rule: 'every peer dropped within interval + timeout + 1 s (3 s)',
  server: (kind) => kind === 'ws' ? { script: 'ws' } : { script: 'wspipe', options: { heartbeat: { interval: 1000, timeout: 1000 } } },
  async run (s, ctx) {
    const bound = q(ctx, 4000, 8000)
    const base = s!.fds()
    const peers = await Promise.all(Array.from({ length: 20 }, async () => await RawClient.connect(s!.port)))
    for (const p of peers) p.socket.pause()
    const t = await serverDropped(s!, base, bound)
    const open = s!.fds() - base
    for (const p of peers) p.destroy()
    return {
      figure: t === undefined ? `${open}/20 still open after ${s1(bound)}` : `20/20 dropped after ${s1(t)}`,
      pass: t !== undefined && t <= 3000
    }
  }
}

const slowloris: Scenario = {
  name: 'slowloris',
  does: '300 clients (quick: 100) dribble a valid upgrade request, one byte per 500 ms; a fresh client echoes meanwhile. Bounded at 20 s (quick: 12.5 s).',
  rule: 'every dribbler dropped within handshakeTimeout (10 s) + 2 s; the fresh client echoes',
  server: (kind) => demoOr(kind),
  async run (s, ctx) {
    const n = q(ctx, 100, 300)
    const bound = q(ctx, 12_500, 20_000)
    const request = Buffer.from(upgradeRequest())
    const sockets = await Promise.all(Array.from({ length: n }, async () => await tcp(s!.port)))
    const t0 = performance.now()
    const times = sockets.map(async (sock) => await closedWithin(sock, bound, t0))
    let pos = 0
    const drip = setInterval(() => {
      for (const sock of sockets) if (!sock.destroyed && pos < request.length) sock.write(request.subarray(pos, pos + 1))
      pos++
    }, 500)
    await sleep(3000)
    const fresh = await freshEcho(s!.port)
    const done = await Promise.all(times)
    clearInterval(drip)
    for (const sock of sockets) sock.destroy()
    const open = done.filter((t) => t === undefined).length
    const max = Math.max(0, ...done.filter((t): t is number => t !== undefined))
    return {
      figure: `${n - open}/${n} dropped${open === 0 ? `, last at ${s1(max)}` : ` (${open} still open at ${s1(bound)})`}; fresh echo ${fresh ? 'ok' : 'FAILED'}`,
      pass: open === 0 && max <= 12_000 && fresh
    }
  }
}

const millionFragments: Scenario = {
  name: 'million-fragment flood',
  does: 'One client sends a text message as 1,000,000 one-byte fragments (7 MB on the wire) and never finishes it; the server is probed with the message still open.',
  rule: 'memory held after GC grows by < 4 MiB (the open message costs its 1 MB of bytes, issue 19 item 6); server RSS by < 64 MiB (parsing a million tiny frames, as for the tiny messages of defect 1a/1b)',
  server: (kind) => demoOr(kind),
  async run (s) {
    const c = await RawClient.connect(s!.port)
    const base = await s!.probe()
    const watch = watchRss(s!, RSS_STOP)
    c.socket.write(encodeFrame({ opcode: OP.TEXT, payload: Buffer.from('a'), fin: false }))
    const cont = encodeFrame({ opcode: OP.CONT, payload: Buffer.from('a'), fin: false })
    const f = await flood(c.socket, repeatFrame(cont, 10_000), { maxBytes: 999_999 * cont.length, maxMs: 30_000, stallMs: 3000, stop: () => watch.over })
    await sleep(500)
    watch.stop()
    const held = await s!.probe()
    const code = await closeCode(c, 100)
    c.destroy()
    const growth = watch.peak - base.rss
    const heldGrowth = (held.heapUsed + held.external) - (base.heapUsed + base.external)
    const fragments = 1 + Math.round(f.sent / cont.length)
    return {
      figure: `held +${mb(heldGrowth)} after GC, RSS +${mb(growth)}; ${code !== undefined ? `closed ${code}` : f.stalled ? 'reading stopped' : 'still open'} after ${fragments.toLocaleString('en')} fragments sent`,
      pass: heldGrowth < 4 * MiB && growth < 64 * MiB
    }
  }
}

const pingFlood: Scenario = {
  name: 'ping flood, peer never reads',
  does: 'One client sends 125-byte pings as fast as TCP takes them and never reads the pongs; up to 1 GiB or 30 s (quick: 256 MiB, 10 s).',
  rule: 'the server stops reading (the attacker\'s writes block for 2 s) and its RSS grows by < 64 MiB',
  server: (kind) => demoOr(kind),
  async run (s, ctx) {
    const c = await RawClient.connect(s!.port)
    c.socket.pause()
    const base = (await s!.probe()).rss
    const watch = watchRss(s!, RSS_STOP)
    const ping = encodeFrame({ opcode: OP.PING, payload: Buffer.alloc(125, 0x70) })
    const f = await flood(c.socket, repeatFrame(ping, 500), { maxBytes: q(ctx, 256, 1024) * MiB, maxMs: q(ctx, 10_000, 30_000), stallMs: 2000, stop: () => watch.over })
    await sleep(300)
    watch.stop()
    c.destroy()
    const growth = watch.peak - base
    return {
      figure: `RSS +${mb(growth)}; ${f.stalled ? `reading stopped after ${mb(f.sent)} sent` : f.closed ? `dropped after ${mb(f.sent)}` : `still reading after ${mb(f.sent)}${watch.over ? ' (RSS stop)' : ''}`}`,
      pass: (f.stalled || f.closed) && growth < 64 * MiB
    }
  }
}

const oversizedHeaders: Scenario = {
  name: 'oversized headers',
  does: '50 clients send an upgrade request with a 64 KiB header; one more streams header lines without end (up to 8 MiB).',
  rule: 'each big request answered 431 (or 400) and closed within 3 s; the endless one cut before 1 MiB sent (paced writes); RSS grows by < 16 MiB',
  server: (kind) => demoOr(kind),
  async run (s) {
    const base = (await s!.probe()).rss
    const watch = watchRss(s!, RSS_STOP)
    const big = Buffer.from(upgradeRequest({ headers: { 'X-Big': 'a'.repeat(64 * 1024) } }))
    const statuses: Record<string, number> = {}
    await Promise.all(Array.from({ length: 50 }, async () => {
      const sock = await tcp(s!.port)
      let got = ''
      sock.on('data', (d: Buffer) => { got += d.toString('latin1') })
      sock.write(big)
      const t = await closedWithin(sock, 3000)
      const status = t === undefined ? 'open' : /^HTTP\/1\.1 (\d+)/.exec(got)?.[1] ?? 'no answer'
      statuses[status] = (statuses[status] ?? 0) + 1
      sock.destroy()
    }))
    const endless = await tcp(s!.port)
    endless.on('error', () => {})
    endless.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n')
    // 8 KiB per millisecond or so, each write flushed: bytes sent before the cut are close to what the server took
    const lines = Buffer.concat(Array.from({ length: 8 }, () => Buffer.from(`X-More: ${'b'.repeat(1014)}\r\n`)))
    let sent = 0
    const t0 = Date.now()
    while (!endless.destroyed && sent < 8 * MiB && Date.now() - t0 < 10_000) {
      endless.write(lines)
      sent += lines.length
      if (!await flushed(endless, 2000)) break
      await sleep(1)
    }
    const cut = await closedWithin(endless, 2000)
    endless.destroy()
    const f = { sent }
    watch.stop()
    const growth = watch.peak - base
    const answered = (statuses['431'] ?? 0) + (statuses['400'] ?? 0)
    return {
      figure: `${Object.entries(statuses).map(([k, v]) => `${k}×${v}`).join(', ')}; endless headers ${cut !== undefined ? 'cut' : 'not cut'} after ${(f.sent / 1024).toFixed(0)} KiB; RSS +${mb(growth)}`,
      pass: answered === 50 && cut !== undefined && f.sent < MiB && growth < 16 * MiB
    }
  }
}

const concurrent: Scenario = {
  name: '10,000 concurrent connections',
  does: 'Open 10,000 connections (quick: 2,000), 100 at a time, each echoing one message, and hold them; a fresh client echoes; then all close with 1000.',
  rule: 'failures 0; the fresh client echoes; server fds back to baseline within 15 s of the closes',
  server: (kind) => demoOr(kind),
  async run (s, ctx) {
    const want = Math.min(q(ctx, 2000, 10_000), Math.max(0, ctx.fdLimit - 600))
    const base = await s!.probe()
    const clients: RawClient[] = []
    const start = performance.now()
    const r = await pool(want, 100, Date.now() + q(ctx, 60_000, 150_000), async () => {
      const c = await RawClient.connect(s!.port, {})
      clients.push(c)
      c.send(encodeMaskedFrame(OP_TEXT, Buffer.from('hold'), mask()))
      const f = await c.nextFrame(10_000)
      if (f?.opcode !== 1) throw new Error('no echo')
    })
    const openSecs = (performance.now() - start) / 1000
    const fresh = await freshEcho(s!.port)
    const held = await s!.probe()
    for (const c of clients) c.send(CLOSE_1000)
    const back = await waitFor(() => s!.fds() <= base.fds, 15_000)
    for (const c of clients) c.destroy()
    const failures = r.failures + (want - r.started)
    const perConn = (held.rss - base.rss) / Math.max(1, clients.length)
    return {
      figure: `${want < q(ctx, 2000, 10_000) ? `(ulimit -n ${ctx.fdLimit}: only ${want} tried) ` : ''}${clients.length - r.failures} open in ${openSecs.toFixed(1)} s, ${failures} failures${r.errors.length > 0 ? ` (${r.errors[0]})` : ''}; RSS ${(perConn / 1024).toFixed(1)} KiB/conn; fresh echo ${fresh ? 'ok' : 'FAILED'}; fds back ${back === undefined ? 'not within 15 s' : `in ${s1(back)}`}`,
      pass: failures === 0 && fresh && back !== undefined
    }
  }
}

function tinyMessages (size: 0 | 1): Scenario {
  const wire = 6 + size
  return {
    name: size === 0 ? 'defect 1a: empty messages, peer never reads' : 'defect 1b: 1-byte messages, peer never reads',
    does: `One client sends ${size === 0 ? 'empty' : '1-byte'} binary frames (${wire} bytes each on the wire) to the echo handler and never reads the echoes: up to 12 M frames or 20 s (quick: 6 M, 8 s).`,
    rule: 'server RSS grows by < 64 MiB (the queues\' documented limits, counted at their real cost)',
    server: (kind) => demoOr(kind),
    async run (s, ctx) {
      const c = await RawClient.connect(s!.port)
      c.socket.pause()
      const base = await s!.probe()
      const watch = watchRss(s!, RSS_STOP)
      const frame = encodeMaskedFrame(OP_BINARY, new Uint8Array(size).fill(0x61), 0x0badf00d)
      const frames = q(ctx, 6e6, 12e6)
      const f = await flood(c.socket, repeatFrame(frame, 10_000), { maxBytes: frames * wire, maxMs: q(ctx, 8000, 20_000), stallMs: 2000, stop: () => watch.over })
      await sleep(300)
      watch.stop()
      const held = await s!.probe()
      c.destroy()
      const growth = watch.peak - base.rss
      return {
        figure: `RSS +${mb(growth)}, heap ${mb(held.heapUsed)} after GC; ${(f.sent / wire / 1e6).toFixed(2)} M frames sent; ${f.stalled ? 'reading stopped' : f.closed ? 'dropped' : watch.over ? 'stopped at RSS limit' : 'still reading'}`,
        pass: growth < 64 * MiB
      }
    }
  }
}

/** 7 + 500 × 131 + 29 = 65,536 bytes: a 1-byte frame padded with unsolicited pongs fills one 64 KiB read. */
function padded (frame: Uint8Array): Buffer {
  const pongs = [...Array.from({ length: 500 }, () => encodeFrame({ opcode: OP.PONG, payload: Buffer.alloc(125) })), encodeFrame({ opcode: OP.PONG, payload: Buffer.alloc(23) })]
  return Buffer.concat([frame, ...pongs])
}

/** Write each chunk as its own write, one per event-loop turn and flushed, so that each tends to land in a read of its own. */
async function writeApart (socket: import('node:net').Socket, chunks: (i: number) => Uint8Array, count: number, stop: () => boolean, gapMs = 0): Promise<{ writes: number, bytes: number }> {
  let writes = 0
  let bytes = 0
  for (let i = 0; i < count && !socket.destroyed && !stop(); i++) {
    const chunk = chunks(i)
    socket.write(chunk)
    if (!await flushed(socket, 3000)) break
    writes++
    bytes += chunk.length
    if (gapMs > 0) await sleep(gapMs)
    else await new Promise<void>((resolve) => setImmediate(resolve))
  }
  return { writes, bytes }
}

function pinnedReads (what: 'fragments' | 'messages'): Scenario {
  return {
    name: what === 'fragments' ? 'defect 2a: 1-byte fragments pinning 64 KiB reads' : 'defect 2b: queued 1-byte messages pinning 64 KiB reads',
    does: what === 'fragments'
      ? '3,000 one-byte fragments of an unfinished message to the echo handler, each in its own 64 KiB write padded with unsolicited pongs (187.5 MiB on the wire).'
      : '3,000 one-byte messages to a handler that never reads (wspipe: awaits `conn.closed`; ws: no message listener), each in its own 64 KiB write padded with unsolicited pongs.',
    rule: 'heap + external memory held after GC grows by < 16 MiB (a small constant × the 3,000 bytes counted)',
    server: (kind) => what === 'fragments' ? demoOr(kind) : kind === 'ws' ? { script: 'ws', handler: 'idle' } : { script: 'wspipe', handler: 'idle' },
    async run (s) {
      const c = await RawClient.connect(s!.port)
      const base = await s!.probe()
      const watch = watchRss(s!, RSS_STOP)
      const first = padded(encodeFrame({ opcode: OP.BINARY, payload: Buffer.from('x'), fin: what === 'messages' }))
      const next = what === 'messages' ? first : padded(encodeFrame({ opcode: OP.CONT, payload: Buffer.from('x'), fin: false }))
      const w = await writeApart(c.socket, (i) => i === 0 ? first : next, 3000, () => watch.over)
      await sleep(500)
      watch.stop()
      const held = await s!.probe()
      const code = await closeCode(c, 100)
      c.destroy()
      const growth = (held.heapUsed + held.external) - (base.heapUsed + base.external)
      return {
        figure: `${w.writes} ${what} sent; held +${mb(growth)} after GC (RSS peak +${mb(watch.peak - base.rss)})${code !== undefined ? `; closed ${code}` : ''}`,
        pass: growth < 16 * MiB
      }
    }
  }
}

const dribbledFrame: Scenario = {
  name: 'defect 2c: a 16 MiB frame dribbled in 1 B + 4 KiB writes',
  does: 'One client sends the header of a 16 MiB binary frame, then 8 MiB of its payload (quick: 4 MiB) as alternating 1-byte and 4,096-byte writes, each flushed and 1 ms apart, and stops.',
  rule: 'heap + external memory held after GC grows by < 2 × the payload bytes sent + 4 MiB',
  server: (kind) => demoOr(kind),
  async run (s, ctx) {
    const c = await RawClient.connect(s!.port)
    const base = await s!.probe()
    const watch = watchRss(s!, RSS_STOP)
    c.socket.write(frameHeader(OP.BINARY, 16 * MiB, true, 0, new Uint8Array(4)))
    const one = Buffer.alloc(1)
    const page = Buffer.alloc(4096)
    const pairs = q(ctx, 1024, 2048) // 4 MiB or 8 MiB of payload
    const w = await writeApart(c.socket, (i) => i % 2 === 0 ? one : page, pairs * 2, () => watch.over, 1)
    await sleep(500)
    watch.stop()
    const held = await s!.probe()
    const code = await closeCode(c, 100)
    c.destroy()
    const growth = (held.heapUsed + held.external) - (base.heapUsed + base.external)
    return {
      figure: `${mb(w.bytes)} of payload in ${w.writes} writes; held +${mb(growth)} after GC (${(growth / Math.max(1, w.bytes)).toFixed(1)}× the bytes sent)${code !== undefined ? `; closed ${code}` : ''}`,
      pass: growth < 2 * w.bytes + 4 * MiB
    }
  }
}

const closeBehindPause: Scenario = {
  name: 'defect 3a: close frame behind paused reading',
  does: 'A handler that never reads (awaits `conn.closed`); the client sends 1.2 MB in 100 KiB messages, waits 300 ms, sends a close frame, and waits. wspipe: `heartbeat: { interval: 1000, timeout: 1000 }`.',
  rule: 'the server ends the connection within interval + timeout + 1.5 s (3.5 s)',
  server: (kind) => kind === 'ws' ? { script: 'ws', handler: 'idle' } : { script: 'wspipe', handler: 'idle', options: { heartbeat: { interval: 1000, timeout: 1000 } } },
  async run (s, ctx) {
    const c = await RawClient.connect(s!.port)
    const msg = encodeMaskedFrame(OP_BINARY, Buffer.alloc(100 * 1024, 1), mask())
    for (let i = 0; i < 12; i++) c.socket.write(msg)
    // let the server read it all and pause, so the close frame waits behind the paused socket
    await flushed(c.socket, 2000)
    await sleep(300)
    c.socket.write(CLOSE_1000)
    const t0 = performance.now()
    const bound = q(ctx, 5000, 15_000)
    const t = await closedWithin(c.socket, bound, t0)
    c.destroy()
    return { figure: t === undefined ? `still open after ${s1(bound)}` : `ended after ${s1(t)}`, pass: t !== undefined && t <= 3500 }
  }
}

const floodThenSilence: Scenario = {
  name: 'defect 3b: flood, then silence',
  does: 'The client floods 16 KiB messages to the echo handler without reading until its writes block (or 256 MiB; quick: 128 MiB), then goes silent. wspipe: `heartbeat: { interval: 500, timeout: 500 }`.',
  rule: 'the server drops the connection within interval + timeout + 1.5 s (2.5 s) of the silence',
  server: (kind) => kind === 'ws' ? { script: 'ws' } : { script: 'wspipe', options: { heartbeat: { interval: 500, timeout: 500 } } },
  async run (s, ctx) {
    const base = s!.fds()
    const c = await RawClient.connect(s!.port)
    c.socket.pause()
    const watch = watchRss(s!, RSS_STOP)
    const msg = encodeMaskedFrame(OP_BINARY, Buffer.alloc(16 * 1024, 2), mask())
    const f = await flood(c.socket, repeatFrame(msg, 8), { maxBytes: q(ctx, 128, 256) * MiB, maxMs: 15_000, stallMs: 1500, stop: () => watch.over })
    watch.stop()
    const bound = q(ctx, 4000, 10_000)
    const t = await serverDropped(s!, base, bound)
    c.destroy()
    return {
      figure: `${mb(f.sent)} sent${f.stalled ? ' until writes blocked' : ''}; ${t === undefined ? `still open ${s1(bound)} later` : `dropped ${s1(t)} later`}`,
      pass: t !== undefined && t <= 2500
    }
  }
}

const pingPromises: Scenario = {
  name: 'defect 4: every ping() settles',
  does: 'The handler calls `ping("a")` then `ping("b")`; the client answers only "b" (RFC 6455 §5.5.3 allows it); the handler reports how both promises settled within 2 s.',
  rule: 'both promises resolved',
  server: (kind) => kind === 'ws' ? 'n/a' : { script: 'wspipe', handler: 'ping' },
  async run (s) {
    const c = await RawClient.connect(s!.port)
    try {
      const pings: string[] = []
      let report: string | undefined
      const deadline = Date.now() + 6000
      while (report === undefined && Date.now() < deadline) {
        const f = await c.nextFrame(Math.max(1, deadline - Date.now()))
        if (f === undefined) break
        if (f.opcode === 9) {
          pings.push(f.payload.toString())
          if (pings.length === 2) c.send(Buffer.from(encodeFrame({ opcode: OP.PONG, payload: Buffer.from('b') })))
        } else if (f.opcode === 1) report = f.payload.toString()
      }
      c.send(CLOSE_1000)
      return { figure: report === undefined ? `no report (pings seen: ${pings.join(',')})` : `ping a: ${report.split(',')[0]}, ping b: ${report.split(',')[1]}`, pass: report === 'resolved,resolved' }
    } finally {
      c.destroy()
    }
  }
}

const segmentation: Scenario = {
  name: 'defect 5: frames in the upgrade request\'s segment',
  does: 'Upgrade request + a text frame + a close frame: in one write, and split at 20 points inside the request (the rest of the request and the frames in the second write).',
  rule: 'all 21 echoed',
  server: (kind) => demoOr(kind),
  async run (s) {
    let echoed = 0
    const trials = 21
    for (let k = 0; k < trials; k++) {
      const request = Buffer.from(upgradeRequest())
      const text = `seg-${k}-${Math.random().toString(36).slice(2)}`
      const frames = Buffer.concat([encodeMaskedFrame(OP_TEXT, Buffer.from(text), mask()), CLOSE_1000])
      const split = k === 0 ? 0 : Math.floor(request.length * k / trials)
      const sock = await tcp(s!.port)
      let got = ''
      sock.on('data', (d: Buffer) => { got += d.toString('latin1') })
      if (split > 0) {
        sock.write(request.subarray(0, split))
        await flushed(sock, 1000)
        await sleep(20)
      }
      sock.write(Buffer.concat([request.subarray(split), frames]))
      await closedWithin(sock, 3000)
      sock.destroy()
      if (got.includes(text)) echoed++
    }
    return { figure: `${echoed}/${trials} echoed`, pass: echoed === trials }
  }
}

const budget: Scenario = {
  name: 'memory budget: 48 × 15.5 MiB of a 16 MiB frame',
  does: '48 clients each send the header of a 16 MiB binary frame and 15.5 MiB of its payload, then stop (744 MiB in all); then a fresh client echoes. wspipe with default options (test/reliability/wspipe-server.ts, which exposes `server.stats()`: the budget is read from it, 256 MiB assumed without it).',
  rule: 'heap + external memory held after GC grows by < budget + 16 MiB; server RSS peak grows by < budget + 128 MiB (V8 lets up to its 64 MB external-memory soft limit of released read buffers wait for the next GC); the fresh client echoes (the attackers may get 1013)',
  server: (kind) => kind === 'ws' ? { script: 'ws' } : { script: 'wspipe' },
  async run (s, ctx) {
    const base = await s!.probe()
    const stats = base.stats as { memoryBudget?: number } | undefined
    const budgetBytes = stats?.memoryBudget ?? 256 * MiB
    const watch = watchRss(s!, RSS_STOP)
    const header = frameHeader(OP.BINARY, 16 * MiB, true, 0, new Uint8Array(4)) // a zero mask: the payload is sent as is
    const chunk = Buffer.alloc(MiB / 2) // 31 of them: 15.5 MiB, the frame stays unfinished
    const peers = await Promise.all(Array.from({ length: 48 }, async () => await RawClient.connect(s!.port)))
    const floods = await Promise.all(peers.map(async (p) => {
      p.socket.write(header)
      return await flood(p.socket, chunk, { maxBytes: 15.5 * MiB, maxMs: 60_000, stallMs: 3000, stop: () => watch.over })
    }))
    await sleep(1000)
    // After a full GC: what the server really keeps, garbage aside.
    const during = await s!.probe()
    const held = (during.stats as { heldBytes?: number } | undefined)?.heldBytes
    const kept = (during.heapUsed + during.external) - (base.heapUsed + base.external)
    const fresh = await freshEcho(s!.port)
    watch.stop()
    const codes = await Promise.all(peers.map(async (p) => await closeCode(p, 200)))
    for (const p of peers) p.destroy()
    const c1013 = codes.filter((c) => c === 1013).length
    const growth = watch.peak - base.rss
    const sent = floods.reduce((a, f) => a + f.sent, 0)
    return {
      figure: `held +${mb(kept)} after GC, RSS peak +${mb(growth)} (${ctx.kind === 'ws' ? 'ws has no budget; rule with 256 MiB' : stats?.memoryBudget === undefined ? 'budget 256 MiB assumed: no server.stats()' : `budget ${mb(budgetBytes)}, heldBytes ${held === undefined ? '?' : mb(held)}`}); ${mb(sent)} sent; ${c1013}/48 got 1013; fresh echo ${fresh ? 'ok' : 'FAILED'}${watch.over ? '; stopped at RSS limit' : ''}`,
      pass: kept < budgetBytes + 16 * MiB && growth < budgetBytes + 128 * MiB && fresh
    }
  }
}

const GiB = 1024 * MiB

/**
 * One message of `total` bytes sent as `chunk`-sized chunks, each a fresh buffer (as a file read
 * gives: a sender that held the chunks it sent would grow by the whole message), each stamped
 * with its index so that a lost, repeated or reordered chunk changes the checksum.
 */
function* stampedChunks (total: number, chunk: number, sent: { bytes: number, crc: number }): Generator<Uint8Array> {
  const pattern = new Uint8Array(chunk)
  for (let i = 0; i < chunk; i++) pattern[i] = (i * 31 + 7) & 0xff
  for (let i = 0; sent.bytes < total; i++) {
    const piece = Math.min(chunk, total - sent.bytes)
    const out = pattern.slice(0, piece)
    new DataView(out.buffer).setUint32(0, i)
    sent.crc = crc32(out, sent.crc)
    sent.bytes += piece
    yield out
  }
}

/** A full GC of this process, for a baseline that later collections do not undercut. */
function collectGarbage (): void {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  for (let i = 0; i < 4; i++) gc()
}

const streamEcho: Scenario = {
  name: '4 GiB message through echo-stream',
  does: 'One client (our `connect(url, { messages: \'stream\', maxMessageSize: Infinity })`, in the suite\'s process) sends one 4 GiB binary message with `send({ type: \'binary\', chunks })` (4 × 2^30 bytes in 256 KiB chunks, each a fresh buffer as a file read gives, stamped with its index, CRC-32 as it goes) to the demo\'s `echo-stream` subprotocol, and reads the echo at the same time, counting its bytes and its CRC-32. The server\'s RSS is sampled from /proc, the sender\'s (this process, after a full GC before it starts) from `process.memoryUsage.rss()`, every 50 ms; the server\'s RSS passing 1.5 GiB, or the sender\'s growing by 1.5 GiB, stops the run. Bounded at 120 s. ws gets the same client with its defaults (`maxPayload` 100 MiB); a ws server with `maxPayload` raised would hold the whole message before echoing it, so that is not run.',
  rule: 'the echo has 4 GiB and the same CRC-32; server RSS grows by < 64 MB; the sender\'s RSS grows by < 96 MB; within 120 s',
  server: (kind) => demoOr(kind),
  // past the scenario's own 120 s, so that it reports how far it got
  bound: 135_000,
  async run (s, ctx) {
    const total = 4 * GiB
    const bound = 120_000
    const conn = await connect(`ws://127.0.0.1:${s!.port}/`, { protocols: ['echo-stream'], messages: 'stream', maxMessageSize: Infinity })
    await sleep(200)
    const base = (await s!.probe()).rss
    const watch = watchRss(s!, RSS_STOP)
    collectGarbage()
    const senderBase = process.memoryUsage.rss()
    let senderPeak = senderBase
    const cpu0 = cpuSecondsOf(s!.pid)
    const sent = { bytes: 0, crc: 0 }
    const got = { bytes: 0, crc: 0 }
    const t0 = performance.now()
    let sentMs: number | undefined
    let gotMs: number | undefined
    let timedOut = false
    let stopped: 'server' | 'sender' | undefined
    const timer = setTimeout(() => { timedOut = true; conn.close(1001, 'time bound') }, bound)
    // The peak in each half of the message: bounded memory shows as the same peak in both.
    const halves = [0, 0]
    const senderHalves = [0, 0]
    const guard = setInterval(() => {
      const h = sent.bytes < total / 2 ? 0 : 1
      halves[h] = Math.max(halves[h], s!.rss() - base)
      const rss = process.memoryUsage.rss()
      senderPeak = Math.max(senderPeak, rss)
      senderHalves[h] = Math.max(senderHalves[h], rss - senderBase)
      // RSS_STOP: the machine is shared; over it, stop rather than let either side grow further
      if (stopped === undefined && (watch.over || rss - senderBase > RSS_STOP)) {
        stopped = watch.over ? 'server' : 'sender'
        conn.close(1001, 'RSS limit')
      }
    }, 50)
    const sending = conn.send({ type: 'binary', chunks: stampedChunks(total, 256 * 1024, sent) })
      .then(() => { sentMs = performance.now() - t0 }, (err: unknown) => err)
    const reading = (async () => {
      const { value: msg, done } = await conn.source.next()
      if (done === true) return new Error('no message came back')
      if (msg.type !== 'binary') return new Error(`the echo came back as ${msg.type}`)
      for await (const chunk of msg.chunks) {
        got.crc = crc32(chunk, got.crc)
        got.bytes += chunk.length
      }
      gotMs = performance.now() - t0
      return undefined
    })().catch((err: unknown) => err)
    const [sendError, readError] = await Promise.all([sending, reading])
    const cpu = cpuSecondsOf(s!.pid) - cpu0
    clearTimeout(timer)
    clearInterval(guard)
    watch.stop()
    // what the server still holds with the connection open, once its garbage is collected
    const held = await s!.probe()
    conn.close()
    const info = await Promise.race([conn.closed, sleep(5000).then(() => undefined)])
    const growth = watch.peak - base
    const senderGrowth = senderPeak - senderBase
    const secs = (performance.now() - t0) / 1000
    const rate = (bytes: number, ms: number | undefined): string => ms === undefined ? '–' : `${(bytes / 1e6 / (ms / 1000)).toFixed(0)} MB/s`
    const complete = sendError === undefined && readError === undefined && got.bytes === total && sent.bytes === total
    const same = complete && got.crc === sent.crc
    const error = (readError ?? sendError) as Error | undefined
    const code = info?.code ?? (error as { closeCode?: number } | undefined)?.closeCode
    const ending = timedOut
      ? `not done within ${bound / 1000} s`
      : stopped !== undefined
        ? `stopped at the ${stopped}'s RSS limit`
        : !complete
          ? code !== undefined ? `closed ${code}${info?.reason !== undefined && info.reason !== '' ? ` (${info.reason})` : ''}` : `failed: ${error?.message ?? 'short echo'}`
          : same ? 'CRC-32 matches' : 'CRC-32 DIFFERS'
    const split = (h: number[]): string => sent.bytes > total / 2 ? `; first half +${mb(h[0])}, second +${mb(h[1])}` : ''
    return {
      figure: `${mb(sent.bytes)} sent, ${mb(got.bytes)} echoed in ${secs.toFixed(1)} s (${rate(sent.bytes, sentMs)} out, ${rate(got.bytes, gotMs)} back); ${ending}; server RSS +${mb(growth)} (${(growth / 1e6).toFixed(1)} MB${split(halves)}), heap + external ${mb(held.heapUsed + held.external)} after GC; sender RSS +${mb(senderGrowth)} (${(senderGrowth / 1e6).toFixed(1)} MB${split(senderHalves)}); server CPU ${cpu.toFixed(1)} s${ctx.kind === 'ws' ? ' (ws defaults: maxPayload 100 MiB)' : ''}`,
      pass: same && !timedOut && growth < 64e6 && senderGrowth < 96e6
    }
  }
}

// ── deflate bombs (issue 19, item 2) ─────────────────────────────────────────────────────────

/** 16 MiB of one letter, raw-deflated (§7.2.1 tail dropped): ~16 KB on the wire. */
function letterBomb (): Buffer {
  const out = deflateRawSync(Buffer.alloc(16 * MiB, 0x61), { finishFlush: zlibConstants.Z_SYNC_FLUSH })
  return out.subarray(0, out.length - 4)
}

/** A compressed payload that stands alone, inflated (§7.2.1 tail put back); '' if it is not one. */
function inflated (payload: Uint8Array): string {
  try {
    return inflateRawSync(Buffer.concat([payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: zlibConstants.Z_SYNC_FLUSH }).toString()
  } catch {
    return ''
  }
}

/** The p-th percentile of `xs` (nearest rank). */
function percentile (xs: number[], p: number): number {
  if (xs.length === 0) return NaN
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)]
}

function deflateBombs (attackers: number): Scenario {
  return {
    name: `deflate bombs (${attackers === 1 ? '1 attacker' : `${attackers} attackers`})`,
    does: `${attackers === 1 ? 'One client negotiates' : `${attackers} clients negotiate`} permessage-deflate with the demo and ${attackers === 1 ? 'sends' : 'send, round-robin,'} 300 KB/s of ~16 KB binary frames that each inflate to 16 MiB of one letter, for 8 s, reading the echoes; an attacker whose socket holds 1 MiB unsent skips its turn. Meanwhile a bystander (permessage-deflate negotiated too, with \`server_no_context_takeover\` so that each echo stands alone: ws compresses even 32 bytes) sends a 32-byte text message 20 ms after each echo and times the echo. ws: \`perMessageDeflate: true\` (test/reliability/ws-server.ts --deflate).`,
    rule: 'server CPU < 25 % of one core over the 8 s; the bystander\'s echo p99 < 50 ms',
    server: (kind) => kind === 'ws' ? { script: 'ws', deflate: true } : { script: 'demo' },
    async run (s) {
      const seconds = 8
      const rate = 300_000
      const offer = { 'Sec-WebSocket-Extensions': 'permessage-deflate' }
      const frame = encodeMaskedFrame(OP_BINARY, letterBomb(), 0x0badf00d)
      frame[0] |= 0x40 // RSV1: compressed (RFC 7692 §6)
      const peers = await Promise.all(Array.from({ length: attackers }, async () => await RawClient.connect(s!.port, { headers: offer })))
      const bystander = await RawClient.connect(s!.port, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; server_no_context_takeover' } })
      await sleep(200)
      const cpu0 = cpuSecondsOf(s!.pid)
      const t0 = performance.now()
      const end = t0 + seconds * 1000
      let sent = 0
      let skipped = 0
      // Paced: frames due by now at `rate` bytes a second, one attacker after the other.
      const pacer = setInterval(() => {
        const due = Math.floor((performance.now() - t0) / 1000 * rate / frame.length) + 1
        while (sent + skipped < due && performance.now() < end) {
          const p = peers[(sent + skipped) % attackers]
          if (p.socket.destroyed || p.socket.writableLength > MiB) { skipped++; continue }
          p.send(frame)
          sent++
        }
      }, 5)
      const rtts: number[] = []
      let lost = 0
      while (performance.now() < end) {
        const text = `bystander ${String(rtts.length).padStart(22, '0')}`.slice(0, 32)
        const start = performance.now()
        bystander.send(encodeMaskedFrame(OP_TEXT, Buffer.from(text), mask()))
        try {
          const f = await bystander.nextFrame(5000)
          if (f === undefined || (f.payload.toString() !== text && inflated(f.payload) !== text)) { lost++; break }
          rtts.push(performance.now() - start)
        } catch {
          rtts.push(performance.now() - start)
          lost++
          break
        }
        await sleep(20)
      }
      clearInterval(pacer)
      const secs = (performance.now() - t0) / 1000
      const cpu = (cpuSecondsOf(s!.pid) - cpu0) / secs * 100
      const echoed = peers.reduce((n, p) => n + p.received, 0)
      for (const p of [...peers, bystander]) p.destroy()
      const p99 = percentile(rtts, 99)
      return {
        figure: `${sent} bombs sent (${mb(sent * frame.length)} on the wire, ${skipped} turns skipped), ${(echoed / 1024).toFixed(0)} KiB of echoes back; server CPU ${cpu.toFixed(0)} % of one core over ${secs.toFixed(1)} s; bystander: ${rtts.length} echoes, p50 ${percentile(rtts, 50).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...rtts).toFixed(0)} ms${lost > 0 ? `, LOST after ${rtts.length}` : ''}`,
        pass: cpu < 25 && p99 < 50 && lost === 0
      }
    }
  }
}

const require = createRequire(import.meta.url)
const tsxLoader = pathToFileURL(require.resolve('tsx')).href

const leak: Scenario = {
  name: 'leak: every ending',
  does: '10,000 connections (quick: 700), 1/7 through each ending: 1000, 1011 from a throwing handler, client reset, close timeout, heartbeat drop, protocol error (1002), budget 1013. In its own process (test/reliability/leak-main.ts); `npm test` runs 280 (test/server/leak.test.ts).',
  rule: 'each ending closes with its code; heap after GC ≤ baseline + 2 MiB; every connection object collected; no handle or listener left',
  server: (kind) => kind === 'ws' ? 'n/a' : 'none',
  async run (_s, ctx) {
    const perEnding = q(ctx, 100, 1429)
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, ['--expose-gc', '--import', tsxLoader, 'test/reliability/leak-main.ts', '--per-ending', String(perEnding)], { cwd: fileURLToPath(new URL('../../', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] })
      const killChild = (): void => { child.kill('SIGKILL') }
      process.once('exit', killChild)
      let text = ''
      child.stdout.on('data', (d: Buffer) => { text += d.toString() })
      const timer = setTimeout(() => { child.kill('SIGKILL') }, 280_000)
      child.once('exit', (code) => {
        clearTimeout(timer)
        process.off('exit', killChild)
        if (code === 0) resolve(text)
        else reject(new Error(`leak-main exited ${code}`))
      })
    })
    const report = JSON.parse(out.trim().split('\n').at(-1)!) as LeakReport
    const problems = leakProblems(report)
    const total = Object.values(report.endings).reduce((a, e) => a + e.connections, 0)
    const heap = report.heapAfter - report.heapBaseline
    return {
      figure: `${total.toLocaleString('en')} conns in ${report.seconds.toFixed(0)} s; heap ${heap >= 0 ? '+' : ''}${(heap / 1024).toFixed(0)} KiB; ${report.uncollected} uncollected; ${problems.length === 0 ? 'nothing left' : problems.join('; ')}`,
      pass: problems.length === 0
    }
  }
}

// Issue 19, item 1: one message to a room is built once and shared by every member's socket;
// the memory budget must count it once, not once per member.
const sharedBroadcast: Scenario = {
  name: 'issue 19.1: a 16 MiB − 64 B message to a room of 50',
  does: '50 members join one chat room of the demo (`chat` on /room/NAME; our client in stream mode, each counting the bytes it receives as they come, so the suite holds none of them); one member sends one text message of 16 MiB − 64 B (under the default `maxMessageSize`). Every member, the sender included, reads at full speed. Then 2 s more for late closes. ws has no rooms: n/a.',
  rule: 'all 50 members receive the whole message and none is closed (the 256 MiB default budget holds one 16 MiB frame shared by 50 sockets); server RSS grows by < 128 MiB; within 60 s',
  server: (kind) => kind === 'ws' ? 'n/a' : { script: 'demo' },
  async run (s) {
    const MEMBERS = 50
    const SIZE = 16 * MiB - 64
    const url = `ws://127.0.0.1:${s!.port}/room/issue19`
    const watch = watchRss(s!, RSS_STOP)
    const base = s!.rss()
    const members = await Promise.all(Array.from({ length: MEMBERS }, async () => await connect(url, { protocols: ['chat'], messages: 'stream', maxMessageSize: Infinity, heartbeat: false })))
    const received = new Array<number>(MEMBERS).fill(0)
    const codes = new Array<number | undefined>(MEMBERS).fill(undefined)
    const reading = members.map(async (m, i) => {
      void m.closed.then((info) => { codes[i] = info.code })
      try {
        for await (const message of m.source) for await (const chunk of message.chunks) received[i] += chunk.length
      } catch {}
    })
    const start = performance.now()
    // The room needs every member subscribed before the message: a first small one tells.
    const payload = Buffer.alloc(SIZE, 'x')
    await members[0].send({ type: 'text', chunks: ['ready'] })
    const ready = await waitFor(() => received.every((n) => n >= 5), 10_000)
    await members[0].send({ type: 'text', chunks: [payload] })
    const done = await waitFor(() => received.every((n, i) => n >= 5 + SIZE || codes[i] !== undefined), 60_000)
    await sleep(2000)
    const secs = (performance.now() - start) / 1000
    watch.stop()
    const whole = received.filter((n) => n === 5 + SIZE).length
    const closed = codes.filter((c) => c !== undefined)
    const c1013 = closed.filter((c) => c === 1013).length
    for (const m of members) m.close()
    await Promise.race([Promise.all(reading), sleep(5000)])
    const growth = watch.peak - base
    return {
      figure: `${whole}/${MEMBERS} got the whole message, ${closed.length} closed (${c1013} with 1013${closed.length > c1013 ? `, others: ${closed.filter((c) => c !== 1013).join(', ')}` : ''}) in ${secs.toFixed(1)} s${ready === undefined ? '; room not ready within 10 s' : ''}${done === undefined ? '; timed out' : ''}; RSS +${mb(growth)}${watch.over ? '; stopped at RSS limit' : ''}`,
      pass: whole === MEMBERS && closed.length === 0 && growth < 128 * MiB && done !== undefined
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Issue 19, item 4: what comes from Redis is input. Self-contained: a redis-server of its own and
// the chat example (`examples/chat-server.ts --redis`) as a child process.

/** A redis-server to run against, unless the Debian package is missing (then the scenario is n/a, or fails under WSPIPE_REQUIRE_PEERS=1). */
function redisMissing (): Outcome | undefined {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore', timeout: 10_000 }).status === 0) return undefined
  return { figure: 'needs redis-server: apt-get install redis-server', pass: process.env.WSPIPE_REQUIRE_PEERS === '1' ? false : null }
}

/** Start `examples/chat-server.ts --redis URL`; resolves with its port and a way to kill it. */
async function chatServer (redisUrl: string): Promise<{ port: number, stop: () => Promise<void> }> {
  const child = spawn(process.execPath, ['--import', tsxLoader, 'examples/chat-server.ts', '--port', '0', '--redis', redisUrl], { cwd: fileURLToPath(new URL('../../', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] })
  const killChild = (): void => { child.kill('SIGKILL') }
  process.once('exit', killChild)
  const stop = async (): Promise<void> => {
    process.off('exit', killChild)
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }
  let out = ''
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error('chat-server: no port within 20 s')) }, 20_000)
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
      const m = /127\.0\.0\.1:(\d+)/.exec(out)
      if (m !== null) { clearTimeout(timer); resolve(Number(m[1])) }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`chat-server exited ${code}`)) })
  }).catch(async (err: unknown) => { await stop(); throw err })
  child.stdout.resume()
  return { port, stop }
}

/** The iterator's next result within `ms` (its timer cleared), or undefined on timeout or error. */
async function nextWithin<T> (iterator: AsyncIterator<T>, ms: number): Promise<IteratorResult<T> | undefined> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([iterator.next(), new Promise<undefined>((resolve) => { timer = setTimeout(() => { resolve(undefined) }, Math.max(1, ms)) })])
  } catch {
    return undefined
  } finally {
    clearTimeout(timer)
  }
}

/** The adapter's wire format, as any Redis client can forge it: flags (1: text), a 16-byte process id, the payload. */
const redisWire = (flags: number, payload: Uint8Array): Buffer => Buffer.concat([Buffer.from([flags]), Buffer.alloc(16, 0x5a), payload])

const redisInput: Scenario = {
  name: 'issue 19.4: raw payloads on a chat room\'s Redis channel',
  does: 'The chat example with `--redis` (its own redis-server). Members of /room/lobby: 2 raw clients (they count every frame) and 2 wspipe clients with default limits (they close on invalid UTF-8, 1007, and past 16 MiB frames, 1009). A plain Redis client publishes on the room\'s channel (a) 1,000 random payloads of 0–64 bytes, (b) to fresh wspipe members, one well-formed text message of invalid UTF-8, (c) to fresh ones, a 20 MiB binary message; each followed by a well-formed sentinel. Then (d) Redis is killed, 2,000 members each join and leave a room of their own, and Redis is restarted: its SUBSCRIBE calls are counted (INFO commandstats).',
  rule: 'no text frame of invalid UTF-8 reaches a member; no member is closed; every member gets every sentinel; after the restart Redis gets ≤ 1 SUBSCRIBE (the rooms joined meanwhile are all empty)',
  server: (kind) => kind === 'ws' ? 'n/a' : 'none',
  async run (_s, ctx) {
    const missing = redisMissing()
    if (missing !== undefined) return missing
    const redis = await RedisServer.start()
    let chat: { port: number, stop: () => Promise<void> } | undefined
    const raw = createClient({ url: redis.url })
    raw.on('error', () => {})
    try {
      chat = await chatServer(redis.url)
      const port = chat.port
      await raw.connect()
      const channel = 'wspipe:room/lobby'
      const url = `ws://127.0.0.1:${port}/room/lobby`
      const closed: string[] = []
      const everyMember: Array<Awaited<ReturnType<typeof connect>>> = []
      const wspipeMembers = async (phase: string): Promise<Array<Awaited<ReturnType<typeof connect>>>> => {
        const members = await Promise.all([0, 1].map(async () => await connect(url, { protocols: ['chat'] })))
        for (const m of members) void m.closed.then((info) => { closed.push(`${phase} ${info.code}`) })
        everyMember.push(...members)
        return members
      }
      const rawMembers = await Promise.all([0, 1].map(async () => await RawClient.connect(port, { path: '/room/lobby', protocol: 'chat' })))
      let members = await wspipeMembers('random')
      for (let i = 0; i < 200; i++) {
        if ((await raw.pubSubNumSub(channel))[channel] === 1) break
        await sleep(25)
      }
      // Per raw member: frames before the sentinel, and text frames among them that are not UTF-8.
      let frames = [0, 0]
      let invalidText = [0, 0]
      let sentinelsMissed = 0
      /** Publish the sentinel; every member (raw and wspipe) must get it within 20 s. */
      const sentinel = async (): Promise<void> => {
        const mark = `sentinel ${Math.random()}`
        await raw.publish(channel, redisWire(1, Buffer.from(mark)))
        const deadline = Date.now() + 20_000
        for (const [i, c] of rawMembers.entries()) {
          for (;;) {
            const f = await c.nextFrame(Math.max(1, deadline - Date.now())).catch(() => undefined)
            if (f === undefined) { sentinelsMissed++; break }
            if (f.opcode === 1 && f.payload.toString() === mark) break
            frames[i]++
            if (f.opcode === 1 && !isUtf8(f.payload)) invalidText[i]++
          }
        }
        for (const m of members) {
          let got = false
          const iterator = m.source[Symbol.asyncIterator]()
          while (!got && Date.now() < deadline) {
            const r = await nextWithin(iterator, deadline - Date.now())
            if (r === undefined || r.done === true) break
            got = Buffer.from(r.value).toString() === mark
          }
          if (!got) sentinelsMissed++
        }
      }
      const randomBytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => Math.floor(Math.random() * 256)))
      for (let i = 0; i < 1000; i++) await raw.publish(channel, randomBytes(Math.floor(Math.random() * 65)))
      await sentinel()
      const randomFigure = `(a) raw members got ${frames.join(' / ')} frames, ${invalidText.join(' / ')} of them text of invalid UTF-8`
      let invalid = invalidText[0] + invalidText[1]
      frames = [0, 0]
      invalidText = [0, 0]
      members = await wspipeMembers('(b)')
      await raw.publish(channel, redisWire(1, Uint8Array.of(0xc3, 0x28)))
      await sentinel()
      members = await wspipeMembers('(c)')
      await raw.publish(channel, redisWire(0, Buffer.alloc(20 * MiB)))
      await sentinel()
      invalid += invalidText[0] + invalidText[1]
      await sleep(200)
      const closedByRedis = [...closed]
      for (const m of everyMember) m.close()
      for (const c of rawMembers) c.destroy()

      // (d) Rooms joined and left while Redis is down.
      await raw.close()
      await redis.stop()
      await sleep(200)
      const rooms = q(ctx, 500, 2000)
      const churned = await pool(rooms, 32, Date.now() + 60_000, async (i) => {
        const c = await RawClient.connect(port, { path: `/room/visitor-${i}`, protocol: 'chat' })
        c.send(CLOSE_1000)
        await c.waitClosed(5000).catch(() => {})
        c.destroy()
      })
      await redis.start()
      // The adapter reconnects within maxReconnectDelay (1 s); give what it replays time to arrive.
      await sleep(3000)
      const probe = createClient({ url: redis.url })
      probe.on('error', () => {})
      await probe.connect()
      const stats = String(await probe.sendCommand(['INFO', 'commandstats']))
      await probe.close()
      const subscribes = Number(/cmdstat_subscribe:calls=(\d+)/.exec(stats)?.[1] ?? 0)
      await sleep(100)
      return {
        figure: `${randomFigure}; wspipe members closed: ${closedByRedis.length === 0 ? 'none' : closedByRedis.join(', ')}; sentinels missed ${sentinelsMissed}; (d) ${churned.started - churned.failures} rooms joined and left while Redis was down, then ${subscribes} SUBSCRIBE calls`,
        pass: invalid === 0 && closedByRedis.length === 0 && sentinelsMissed === 0 && subscribes <= 1
      }
    } finally {
      await raw.close().catch(() => {})
      await chat?.stop()
      await redis.stop()
    }
  }
}

export const SCENARIOS: Scenario[] = [
  churn, resets('frame'), resets('handshake'), halfOpen, silentPeer, slowloris, millionFragments, pingFlood,
  oversizedHeaders, concurrent, tinyMessages(0), tinyMessages(1), pinnedReads('fragments'), pinnedReads('messages'), dribbledFrame, closeBehindPause, floodThenSilence, pingPromises,
  segmentation, budget, streamEcho, sharedBroadcast, deflateBombs(1), deflateBombs(10), redisInput, leak
]
