// Broadcast server on ws, as its users write it: for each message from /pub, a loop over
// `wss.clients` calling send (ws queues whatever a client does not read, without bound).
import { WebSocketServer, type WebSocket } from 'ws'
import { announce } from './control.js'

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
wss.on('connection', (ws: WebSocket, req) => {
  ws.on('error', () => {})
  if (req.url !== '/pub') return
  ws.on('message', (data, isBinary) => {
    for (const client of wss.clients) if (client !== ws) client.send(data as Buffer, { binary: isBinary })
  })
})
wss.on('listening', () => {
  const addr = wss.address()
  if (addr === null || typeof addr === 'string') throw new Error('unexpected address')
  announce({ port: addr.port })
})
