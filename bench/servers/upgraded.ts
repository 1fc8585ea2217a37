// The floor of idle memory for a WebSocket server on node:http (the `mem` scenario only): it
// answers the 101 and keeps the upgraded socket with one `data` listener, and nothing else: no
// session, no parser, no message queue. Any library on node:http holds at least this per
// connection, so its ratio to ws bounds what a real server's ratio can be.
// UPGRADED_HOLD=N (`--server-env=UPGRADED_HOLD=N`): also keep N bytes of V8 heap per connection
// (one array, allocated with no garbage beside it), to find how much state a connection can hold
// before its ratio to ws passes a given figure.
import { createHash } from 'node:crypto'
import { createServer } from 'node:http'
import { announce } from './control.js'

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
const ignore = (): void => {}
const HOLD = Number(process.env.UPGRADED_HOLD ?? 0)
const held: unknown[] = []
// an array's header is 32 bytes (no pointer compression in Node 20), then 8 per element

const server = createServer((_req, res) => { res.writeHead(426).end() })
server.on('upgrade', (req, socket) => {
  const key = String(req.headers['sec-websocket-key'] ?? '')
  const accept = createHash('sha1').update(key + GUID).digest('base64')
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`)
  socket.on('data', ignore)
  socket.on('error', ignore)
  if (HOLD > 0) held.push(new Array(Math.max(0, Math.round((HOLD - 32) / 8))))
})
server.listen(0, '127.0.0.1', () => {
  const addr = server.address()
  if (addr === null || typeof addr === 'string') throw new Error('no address')
  announce({ port: addr.port })
})
