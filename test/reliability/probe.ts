// Preloaded (`node --import`) into every server the reliability suite starts, the demo included,
// so the demo itself carries no test hooks. Answers the orchestrator's IPC `probe` with memory
// after a full GC (needs --expose-gc), open file descriptors, and active handles by type.
import { readdirSync } from 'node:fs'

declare const gc: undefined | (() => void)

/** What a server reports about itself. */
export interface ProbeReply {
  type: 'probe'
  rss: number
  heapUsed: number
  external: number
  arrayBuffers: number
  fds: number
  resources: Record<string, number>
  /** `server.stats()` of a server script that exposes its server (undefined for the demo). */
  stats?: unknown
  /** --expose-gc was on, so the heap figures follow a full collection. */
  collected: boolean
}

function countBy (names: string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const n of names) out[n] = (out[n] ?? 0) + 1
  return out
}

if (process.send !== undefined) {
  process.on('message', (msg: any) => {
    if (msg?.cmd !== 'probe') return
    if (msg.gc === true && typeof gc === 'function') for (let i = 0; i < 4; i++) gc()
    const m = process.memoryUsage()
    let fds = -1
    try { fds = readdirSync('/proc/self/fd').length } catch {}
    const server = (globalThis as { __reliabilityServer?: { stats?: () => unknown } }).__reliabilityServer
    let stats: unknown
    try { stats = typeof server?.stats === 'function' ? server.stats() : undefined } catch (err) { stats = { error: String(err) } }
    const reply: ProbeReply = {
      type: 'probe',
      rss: m.rss,
      heapUsed: m.heapUsed,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      fds,
      resources: countBy(process.getActiveResourcesInfo()),
      stats,
      collected: msg.gc === true && typeof gc === 'function'
    }
    process.send!(reply)
  })
  // The orchestrator is gone: do not linger.
  process.on('disconnect', () => process.exit(0))
}
