// Shared by every echo server: announce the port, and answer the orchestrator's IPC commands.
// Servers run with --expose-gc so memory can be measured after a full collection.

import { PerformanceObserver, constants } from 'node:perf_hooks'

declare const gc: undefined | (() => void)

// V8's collections, counted for the orchestrator's `gcstats`: on a small heap V8 can fall into
// back-to-back mark-compacts under socket traffic (docs/performance.md), which decides CPU figures.
const gcStats = { major: 0, minor: 0, ms: 0 }
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind
    if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) gcStats.major++
    else if (kind === constants.NODE_PERFORMANCE_GC_MINOR) gcStats.minor++
    gcStats.ms += e.duration
  }
}).observe({ entryTypes: ['gc'] })

// BENCH_APP_HEAP_MB (echo.ts --app-heap): the application a real server carries, as small objects
// and strings kept for the process's life; it puts the old generation past V8's 8 MB threshold
// for incremental marking, the regime a deployed server lives in.
const appHeapMb = Number(process.env.BENCH_APP_HEAP_MB ?? 0)
const appHeap: Array<{ id: number, name: string, tags: string[] }> = []
for (let i = 0; i < appHeapMb * 1024 * 1024 / 160; i++) appHeap.push({ id: i, name: `user-${i}`, tags: [`t${i % 97}`] })
;(globalThis as { benchAppHeap?: unknown }).benchAppHeap = appHeap

export interface Listening { port: number, [k: string]: unknown }

export function announce (info: Listening): void {
  console.log(`listening on 127.0.0.1:${info.port}`)
  if (process.send === undefined) return
  process.send({ type: 'listening', ...info })
  process.on('message', (msg: any) => {
    if (msg?.cmd === 'gcstats') process.send!({ type: 'gcstats', ...gcStats })
    if (msg?.cmd === 'gc') {
      // several passes so weak/finalized objects from the previous pass are collected too
      for (let i = 0; i < 4; i++) gc?.()
      const m = process.memoryUsage()
      process.send!({ type: 'gc', rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, exposed: typeof gc === 'function' })
    }
  })
  // orchestrator gone: do not linger
  process.on('disconnect', () => process.exit(0))
}
