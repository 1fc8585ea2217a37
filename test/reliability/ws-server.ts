// The `ws` package with its default options, beside wspipe in every scenario.
//   node --import=tsx test/reliability/ws-server.ts --port 0 [--handler echo|idle|ping] [--deflate]
// `--deflate` turns on `perMessageDeflate: true` (ws's default is off), for the deflate scenarios.
// Prints ws://127.0.0.1:PORT/ once listening.
import { parseArgs } from 'node:util'
import { WebSocketServer } from 'ws'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    handler: { type: 'string', default: 'echo' },
    deflate: { type: 'boolean', default: false }
  }
})

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(values.port), perMessageDeflate: values.deflate })
wss.on('connection', (ws) => {
  ws.on('error', () => {})
  // The echo most ws users write: ws queues whatever the peer does not read.
  if (values.handler === 'echo') ws.on('message', (data, isBinary) => { ws.send(data as Buffer, { binary: isBinary }) })
  // ws.ping() takes a callback for "written", not for the pong: there is no promise to settle.
  if (values.handler === 'ping') { ws.ping('a'); ws.ping('b') }
})
wss.on('listening', () => {
  const a = wss.address()
  if (a === null || typeof a === 'string') throw new Error('unexpected address')
  console.log(`ws://127.0.0.1:${a.port}/`)
})
