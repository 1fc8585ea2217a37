// wspipe echo server: the handler pipes each connection's source into its own sink.
// Default options except maxMessageSize, raised to the 64 MiB the other servers get;
// --defaults (the slow-reader run) uses no options at all. Clients offering `echo-stream`
// (bench/stream.ts) get the demo's streaming echo: stream mode, no message size limit.
import { WebSocketServer } from '../../src/index.js'
import { announce } from './control.js'

const server = new WebSocketServer(process.argv.includes('--defaults') ? {} : { maxMessageSize: 64 * 1024 * 1024 })
server.register('', ({ source, sink }) => sink(source))
server.register('echo-stream', ({ source, sink }) => sink(source), { messages: 'stream', maxMessageSize: Infinity })
const addr = await server.listen({ port: 0, host: '127.0.0.1' })
announce({ port: addr.port })
