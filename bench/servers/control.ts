// Shared by every echo server: announce the port, and answer the orchestrator's IPC commands.
// Servers run with --expose-gc so memory can be measured after a full collection.

declare const gc: undefined | (() => void)

export interface Listening { port: number, [k: string]: unknown }

export function announce (info: Listening): void {
  console.log(`listening on 127.0.0.1:${info.port}`)
  if (process.send === undefined) return
  process.send({ type: 'listening', ...info })
  process.on('message', (msg: any) => {
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
