// ws echo server. Run plain with WS_NO_BUFFER_UTIL=1 WS_NO_UTF_8_VALIDATE=1, or without them to
// let ws load bufferutil (and utf-8-validate, which ws skips anyway when buffer.isUtf8 exists).
import { createRequire } from 'node:module'
import { WebSocketServer } from 'ws'
import { announce } from './control.js'

// --defaults (the slow-reader run) keeps ws's own maxPayload
const limits = process.argv.includes('--defaults') ? {} : { maxPayload: 64 * 1024 * 1024 }
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, ...limits })
wss.on('connection', (ws) => {
  // the echo most ws users write: no backpressure, ws queues whatever the peer does not read
  ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }))
  ws.on('error', () => {})
})
wss.on('listening', () => {
  const cache = createRequire(import.meta.url).cache
  const loaded = (name: string): boolean => Object.keys(cache).some(k => k.includes(`/node_modules/${name}/`))
  const addr = wss.address()
  if (addr === null || typeof addr === 'string') throw new Error('unexpected address')
  announce({ port: addr.port, bufferutil: loaded('bufferutil'), utf8validate: loaded('utf-8-validate') })
})
