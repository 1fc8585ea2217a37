/**
 * The demo server behind `npm start`: echoes every message back, for clients offering the
 * subprotocol `echo` and for clients offering none.
 *
 *   npm start -- --port 8080
 */
import { parseArgs } from 'node:util'
import { WebSocketServer } from '../src/index.js'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8080' },
    host: { type: 'string', default: '127.0.0.1' }
  }
})

// Limits wide enough for the largest Autobahn cases (16 MiB messages, 64 Ki fragments of 64 B).
const server = new WebSocketServer({
  maxMessageSize: 64 * 1024 * 1024,
  maxFragments: 1024 * 1024
})
const echo = ({ source, sink }: { source: AsyncIterable<Uint8Array>, sink: (s: AsyncIterable<Uint8Array>) => Promise<void> }): Promise<void> => sink(source)
server.register('echo', echo)
server.register('', echo)

const address = await server.listen({ port: Number(values.port), host: values.host })
console.log(`ws://${address.address}:${address.port}/`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void server.close().then(() => process.exit(0))
  })
}
