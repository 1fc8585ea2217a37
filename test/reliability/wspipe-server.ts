// A wspipe server for the scenarios that need options or a handler the demo does not have
// (short heartbeats, a handler that never reads, one that pings, an explicit memoryBudget).
//   node --import=tsx test/reliability/wspipe-server.ts --port 0 --handler echo --options '{"heartbeat":{"interval":500,"timeout":500}}'
// Prints ws://127.0.0.1:PORT/ once listening; exposes the server to the probe (probe.ts).
import { parseArgs } from 'node:util'
import { WebSocketServer, type Connection, type WebSocketServerOptions } from '../../src/index.js'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    handler: { type: 'string', default: 'echo' },
    options: { type: 'string', default: '{}' }
  }
})

const quiet = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} }
const server = new WebSocketServer({ logger: quiet, ...(JSON.parse(values.options) as WebSocketServerOptions) })
;(globalThis as { __reliabilityServer?: unknown }).__reliabilityServer = server

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

const handlers: Record<string, (conn: Connection) => Promise<void>> = {
  // as the demo's: the sink's own promise, which the server adopts without a `.then`
  echo: ({ source, sink }) => sink(source),
  // Never reads `source`; ends only when the connection does (defect 3 of issue 10).
  idle: async (conn) => { await conn.closed },
  // Two pings, and a report of how each promise settled (defect 4): the peer answers only the second.
  ping: async (conn) => {
    const states = ['pending', 'pending']
    const settled = [conn.ping(new TextEncoder().encode('a')), conn.ping(new TextEncoder().encode('b'))]
      .map(async (p, i) => p.then(() => { states[i] = 'resolved' }, () => { states[i] = 'rejected' }))
    await Promise.race([Promise.all(settled), sleep(2000)])
    await conn.sink([states.join(',')])
    await conn.closed
  }
}
const handler = handlers[values.handler]
if (handler === undefined) throw new Error(`unknown handler ${values.handler}`)
server.register('', handler)
server.register('echo', handler)

const address = await server.listen({ port: Number(values.port), host: '127.0.0.1' })
console.log(`ws://${address.address}:${address.port}/`)
