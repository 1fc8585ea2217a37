// Reference echo server on the `ws` package, used to validate the conformance
// client itself: ws is known to pass Autobahn, so any disagreement is ours.
// Usage: node --import=tsx test/conformance/ws-echo-server.ts --port N
// Prints ws://127.0.0.1:N/ once listening.

import { WebSocketServer } from 'ws'

const i = process.argv.indexOf('--port')
const port = i >= 0 ? Number(process.argv[i + 1]) : 0

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload: 64 * 1024 * 1024, // above the largest 9.x message (16 MiB)
  perMessageDeflate: true, // sections 12 and 13
  // ws >= 8.19 caps fragments per message at 16384 (closes 1008). Autobahn 9.3.1/9.4.1
  // send 4 MiB in 64-octet fragments (65537 frames), so lift the cap for the reference run.
  maxFragments: 1 << 17,
})

wss.on('connection', (ws) => {
  // Echo text as text and binary as binary, message by message.
  ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }))
  ws.on('error', () => {}) // protocol errors are expected in the fuzzing cases; ws closes with the right code
})

wss.on('listening', () => {
  const addr = wss.address()
  const p = typeof addr === 'object' && addr ? addr.port : port
  console.log(`ws://127.0.0.1:${p}/`)
})

const stop = (): void => {
  wss.close()
  for (const c of wss.clients) c.terminate()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
