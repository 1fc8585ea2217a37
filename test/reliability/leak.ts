// The leak test: connections through every way a connection can end, then the process must be
// back where it started: heap after GC, no connection object left uncollected, no timer, socket
// or listener left. In-process (server and raw clients in one process), so that everything the
// server holds can be counted. test/server/leak.test.ts runs a few hundred; `npm run reliability`
// runs 10,000 (test/reliability/leak-main.ts).
import { createServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer, type Connection, type Handler, type WebSocketServerOptions } from '../../src/index.js'
import { clientFrame, closePayload, RawClient } from '../server/helpers.js'
import { pool, sleep } from './peers.js'

/** How a connection ends, and the code the server's `closed` must report. */
export const ENDINGS = {
  normal: 1000, // the handler returns after one echo
  throw: 1011, // the handler throws
  reset: 1006, // the client resets TCP mid-frame
  closeTimeout: 1000, // the server closes, the client never answers: dropped after closeTimeout
  heartbeat: 1006, // the client never answers pings: dropped after interval + timeout
  protocolError: 1002, // the client sends an unmasked frame
  budget: 1013 // a frame that cannot get memory under the server's memoryBudget
} as const

export type Ending = keyof typeof ENDINGS

export interface EndingReport {
  expectedCode: number
  connections: number
  clientFailures: number
  errors: string[]
  /** `closed` codes the server reported, by code. */
  codes: Record<string, number>
  /** Not run: the server lacks what this ending needs (e.g. memoryBudget). */
  unsupported?: string
}

export interface LeakReport {
  endings: Record<Ending, EndingReport>
  heapBaseline: number
  heapAfter: number
  /** Server-side connection objects not garbage-collected after the run. */
  uncollected: number
  /** Active handles (by type) and live timers (unref'd too) above the baseline, with every connection gone (servers still listening). */
  resourcesLeft: Record<string, number>
  /** Listeners above the baseline on the HTTP servers and on `process`. */
  listenersLeft: Record<string, number>
  /** `server.stats()` of each server once its connections are gone, where it has one: must be 0 connections, 0 bytes held. */
  statsAfter: Partial<Record<Ending, { connections?: number, heldBytes?: number }>>
  /** Active handles above those before any server existed, once the servers are closed. */
  resourcesAfterClose: Record<string, number>
  seconds: number
}

export interface LeakOptions {
  /** Connections per ending. */
  perEnding: number
  concurrency: number
  /** Stop starting connections after this many ms (per ending). */
  maxMsPerEnding: number
  /** A full garbage collection. */
  gc: () => void
}

const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} }
const BUDGET = 256 * 1024

function countResources (): Record<string, number> {
  const out: Record<string, number> = {}
  for (const n of process.getActiveResourcesInfo()) out[n] = (out[n] ?? 0) + 1
  return out
}

function above (now: Record<string, number>, base: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(now)) if (v > (base[k] ?? 0)) out[k] = v - (base[k] ?? 0)
  return out
}

const HTTP_EVENTS = ['upgrade', 'connection', 'request', 'close', 'error', 'listening'] as const
const PROCESS_EVENTS = ['exit', 'beforeExit', 'uncaughtException', 'unhandledRejection', 'warning'] as const

function countListeners (servers: HttpServer[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const e of HTTP_EVENTS) out[`http:${e}`] = servers.reduce((n, s) => n + s.listenerCount(e), 0)
  for (const e of PROCESS_EVENTS) out[`process:${e}`] = process.listenerCount(e)
  return out
}

/**
 * Every timer made through the global setTimeout/setInterval while installed, until it fires
 * or is cleared. `process.getActiveResourcesInfo()` does not list unref'd timers, such as the
 * driver's shared heartbeat sweeper, so they are counted here.
 */
export function trackTimers (): { live: () => Record<string, number>, restore: () => void } {
  const g = globalThis as unknown as Record<'setTimeout' | 'setInterval' | 'clearTimeout' | 'clearInterval', (...args: any[]) => any>
  const saved = { setTimeout: g.setTimeout, setInterval: g.setInterval, clearTimeout: g.clearTimeout, clearInterval: g.clearInterval }
  const live = new Map<unknown, 'timeout' | 'interval'>()
  g.setTimeout = (fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const t = saved.setTimeout((...a: unknown[]) => { live.delete(t); fn(...a) }, ms, ...args)
    live.set(t, 'timeout')
    return t
  }
  g.setInterval = (fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const t = saved.setInterval(fn, ms, ...args)
    live.set(t, 'interval')
    return t
  }
  g.clearTimeout = (t: unknown) => { live.delete(t); saved.clearTimeout(t) }
  g.clearInterval = (t: unknown) => { live.delete(t); saved.clearInterval(t) }
  return {
    live () {
      const out: Record<string, number> = {}
      for (const kind of live.values()) out[`timer:${kind}`] = (out[`timer:${kind}`] ?? 0) + 1
      return out
    },
    restore () { Object.assign(g, saved) }
  }
}

async function collect (gc: () => void): Promise<void> {
  // Finalization callbacks and weak references need turns of the event loop between passes.
  for (let i = 0; i < 4; i++) {
    gc()
    await sleep(20)
  }
}

interface Target {
  ending: Ending
  ws: WebSocketServer
  http: HttpServer
  port: number
  ended: number
  codes: Record<string, number>
}

const once: Handler = async (conn) => {
  for await (const m of conn.source) {
    await conn.sink([m])
    return
  }
}
const thrower: Handler = async (conn) => {
  for await (const m of conn.source) throw new Error(`leak test: handler fails on purpose (${m.length} bytes)`)
}
const echo: Handler = ({ source, sink }) => sink(source)

const SETUP: Record<Ending, { handler: Handler, options: WebSocketServerOptions }> = {
  normal: { handler: once, options: {} },
  throw: { handler: thrower, options: {} },
  reset: { handler: echo, options: {} },
  closeTimeout: { handler: () => {}, options: { closeTimeout: 200 } },
  heartbeat: { handler: async (conn) => { await conn.closed }, options: { heartbeat: { interval: 200, timeout: 200 } } },
  protocolError: { handler: echo, options: {} },
  budget: { handler: echo, options: { memoryBudget: BUDGET } as WebSocketServerOptions }
}

/** Does this server have the memory budget (issue 10)? `stats()` reports it. */
export function hasMemoryBudget (ws: WebSocketServer): boolean {
  const stats = (ws as unknown as { stats?: () => { memoryBudget?: number } }).stats
  return typeof stats === 'function' && typeof stats.call(ws).memoryBudget === 'number'
}

/** One client through `ending`; throws if the server did not behave as that ending requires. */
async function client (ending: Ending, port: number): Promise<void> {
  const c = await RawClient.connect(port)
  try {
    switch (ending) {
      case 'normal':
      case 'throw': {
        c.send(clientFrame(1, 'leak'))
        const close = await c.nextClose(5000)
        if (close?.code !== ENDINGS[ending]) throw new Error(`expected close ${ENDINGS[ending]}, got ${close?.code}`)
        c.send(clientFrame(8, closePayload(close.code)))
        await c.waitClosed(5000)
        return
      }
      case 'reset':
        c.socket.write(clientFrame(2, Buffer.alloc(4096)).subarray(0, 1000))
        await new Promise<void>((resolve) => c.socket.write(new Uint8Array(0), () => resolve()))
        c.socket.resetAndDestroy()
        return
      case 'closeTimeout': {
        const close = await c.nextClose(5000)
        if (close?.code !== 1000) throw new Error(`expected close 1000, got ${close?.code}`)
        // never answer: the server must drop us after closeTimeout
        await c.waitClosed(3000)
        return
      }
      case 'heartbeat':
        // read (and ignore) the pings: the server must drop us after interval + timeout
        await c.waitClosed(3000)
        return
      case 'protocolError': {
        c.send(clientFrame(1, 'unmasked', { mask: false }))
        const close = await c.nextClose(5000)
        if (close?.code !== 1002) throw new Error(`expected close 1002, got ${close?.code}`)
        await c.waitClosed(3000)
        return
      }
      case 'budget': {
        // The header of a 1 MiB frame and half its payload: more than the whole budget.
        c.socket.write(clientFrame(2, Buffer.alloc(1024 * 1024)).subarray(0, 512 * 1024 + 14))
        const close = await c.nextClose(5000)
        if (close?.code !== 1013) throw new Error(`expected close 1013, got ${close?.code ?? 'none'}`)
        await c.waitClosed(3000)
      }
    }
  } finally {
    c.destroy()
  }
}

/** Server-side connections made while measuring and not yet garbage-collected. */
interface Census { measuring: boolean, alive: number, registry: FinalizationRegistry<boolean> }

async function startTarget (ending: Ending, census: Census): Promise<Target> {
  const { handler, options } = SETUP[ending]
  const ws = new WebSocketServer({ logger: quiet, ...options })
  const http = createServer()
  const target: Target = { ending, ws, http, port: 0, ended: 0, codes: {} }
  const wrapped: Handler = (conn: Connection) => {
    if (census.measuring) {
      census.alive++
      census.registry.register(conn, true)
    }
    void conn.closed.then((info) => {
      target.codes[info.code] = (target.codes[info.code] ?? 0) + 1
      target.ended++
    })
    return handler(conn)
  }
  ws.register('', wrapped)
  ws.attach(http)
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  target.port = (http.address() as AddressInfo).port
  return target
}

async function drained (targets: Target[], ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (targets.some((t) => t.ws.clients.size > 0) && Date.now() < deadline) await sleep(20)
}

export async function runLeak (options: LeakOptions): Promise<LeakReport> {
  const timers = trackTimers()
  try {
    return await measure(options, timers)
  } finally {
    timers.restore()
  }
}

async function measure (options: LeakOptions, timers: ReturnType<typeof trackTimers>): Promise<LeakReport> {
  const started = performance.now()
  const counts = (): Record<string, number> => ({ ...countResources(), ...timers.live() })
  const resourcesAtStart = counts()
  const census: Census = { measuring: false, alive: 0, registry: new FinalizationRegistry<boolean>((measured) => { if (measured) census.alive-- }) }
  const targets: Target[] = []
  for (const ending of Object.keys(ENDINGS) as Ending[]) targets.push(await startTarget(ending, census))
  const runnable = (t: Target): string | undefined =>
    t.ending === 'budget' && !hasMemoryBudget(t.ws) ? 'WebSocketServer has no memoryBudget (server.stats().memoryBudget missing)' : undefined

  // Warm-up: lazily made state (timers shared by connections, JIT code, pools) goes into the baseline.
  for (const t of targets) {
    if (runnable(t) !== undefined) continue
    for (let i = 0; i < 3; i++) await client(t.ending, t.port).catch(() => {})
  }
  await drained(targets, 5000)
  await collect(options.gc)
  const heapBaseline = process.memoryUsage().heapUsed
  const resourcesBaseline = counts()
  const listenersBaseline = countListeners(targets.map((t) => t.http))
  for (const t of targets) { t.ended = 0; t.codes = {} }
  census.measuring = true

  const endings = {} as Record<Ending, EndingReport>
  for (const t of targets) {
    const report: EndingReport = { expectedCode: ENDINGS[t.ending], connections: 0, clientFailures: 0, errors: [], codes: {} }
    endings[t.ending] = report
    const unsupported = runnable(t)
    if (unsupported !== undefined) {
      report.unsupported = unsupported
      continue
    }
    const result = await pool(options.perEnding, options.concurrency, Date.now() + options.maxMsPerEnding, async () => { await client(t.ending, t.port) })
    report.connections = result.started
    report.clientFailures = result.failures
    report.errors = result.errors
  }
  census.measuring = false
  await drained(targets, 10_000)
  // every connection's `closed` has settled: its code is counted
  await sleep(50)
  for (const t of targets) endings[t.ending].codes = t.codes
  await collect(options.gc)
  const heapAfter = process.memoryUsage().heapUsed
  const resourcesLeft = above(counts(), resourcesBaseline)
  const listenersLeft = above(countListeners(targets.map((t) => t.http)), listenersBaseline)
  const left = census.alive
  const statsAfter: LeakReport['statsAfter'] = {}
  for (const t of targets) {
    const stats = (t.ws as unknown as { stats?: () => { connections?: number, heldBytes?: number } }).stats
    if (typeof stats === 'function') {
      const st = stats.call(t.ws)
      statsAfter[t.ending] = { connections: st.connections, heldBytes: st.heldBytes }
    }
  }

  for (const t of targets) {
    await t.ws.close()
    await new Promise<void>((resolve) => t.http.close(() => resolve()))
  }
  await sleep(50)
  const resourcesAfterClose = above(counts(), resourcesAtStart)
  return { endings, heapBaseline, heapAfter, uncollected: left, resourcesLeft, listenersLeft, statsAfter, resourcesAfterClose, seconds: (performance.now() - started) / 1000 }
}

/** The pass rule, as a list of what is wrong (empty: pass). */
export function leakProblems (r: LeakReport, heapSlack = 2 * 1024 * 1024): string[] {
  const problems: string[] = []
  for (const [ending, e] of Object.entries(r.endings)) {
    if (e.unsupported !== undefined) { problems.push(`${ending}: ${e.unsupported}`); continue }
    if (e.clientFailures > 0) problems.push(`${ending}: ${e.clientFailures} of ${e.connections} clients failed (${e.errors[0]})`)
    const wrong = Object.entries(e.codes).filter(([code]) => Number(code) !== e.expectedCode)
    if (wrong.length > 0) problems.push(`${ending}: server closed with ${wrong.map(([c, n]) => `${c}×${n}`).join(', ')}, expected ${e.expectedCode}`)
    const total = Object.values(e.codes).reduce((a, b) => a + b, 0)
    if (total !== e.connections) problems.push(`${ending}: ${total} of ${e.connections} connections reported closed`)
  }
  for (const [ending, st] of Object.entries(r.statsAfter ?? {})) {
    // the budget's own accounting must come back to zero, or the budget shrinks with every leak
    if (st.heldBytes !== 0 || st.connections !== 0) problems.push(`${ending}: server.stats() after every connection ended: ${JSON.stringify(st)}`)
  }
  if (r.heapAfter - r.heapBaseline > heapSlack) problems.push(`heap ${((r.heapAfter - r.heapBaseline) / 1048576).toFixed(2)} MiB above baseline after GC`)
  if (r.uncollected > 0) problems.push(`${r.uncollected} connection objects not collected`)
  if (Object.keys(r.resourcesLeft).length > 0) problems.push(`handles left: ${JSON.stringify(r.resourcesLeft)}`)
  if (Object.keys(r.listenersLeft).length > 0) problems.push(`listeners left: ${JSON.stringify(r.listenersLeft)}`)
  if (Object.keys(r.resourcesAfterClose).length > 0) problems.push(`handles left after server.close(): ${JSON.stringify(r.resourcesAfterClose)}`)
  return problems
}
