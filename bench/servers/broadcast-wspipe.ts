// Broadcast server on wspipe topics: a connection to /pub publishes every message it sends to
// topic `t`; every other connection subscribes to it. Default limits (the slow-subscriber
// policy closes a subscriber 1 MiB behind with 1008).
import { announce } from './control.js'

// WSPIPE_SRC: another checkout's src/index.ts (bench/broadcast.ts --baseline)
const { WebSocketServer } = await import(process.env.WSPIPE_SRC ?? '../../src/index.js') as typeof import('../../src/index.js')

const server = new WebSocketServer({ heartbeat: false })
server.register('', async (conn) => {
  if (conn.path === '/pub') {
    await server.topics.publish('t', conn.source)
    return
  }
  await conn.sink(server.topics.subscribe('t', conn))
})
const { port } = await server.listen({ port: 0 })
announce({ port })
process.on('message', (msg: any) => {
  if (msg?.cmd === 'stats') process.send!({ type: 'stats', ...server.stats(), heap: process.memoryUsage().heapUsed, external: process.memoryUsage().external })
})
if (process.env.BENCH_TRACE === '1') {
  let last = performance.now()
  setInterval(() => {
    const now = performance.now()
    const m = process.memoryUsage()
    console.error(`lag ${(now - last - 500).toFixed(0)} ms rss ${(m.rss / 1e6).toFixed(0)} heap ${(m.heapUsed / 1e6).toFixed(0)} ext ${(m.external / 1e6).toFixed(0)} ab ${(m.arrayBuffers / 1e6).toFixed(0)} held ${server.stats().heldBytes}`)
    last = now
  }, 500)
}
