// Raw TCP echo: the ceiling for any WebSocket echo in Node on this machine (no framing at all).
import { createServer } from 'node:net'
import { announce } from './control.js'

const server = createServer((socket) => {
  socket.on('error', () => {})
  socket.pipe(socket) // pipe() honours backpressure, so a slow reader stalls the writer
})
server.listen(0, '127.0.0.1', () => {
  const addr = server.address()
  if (addr === null || typeof addr === 'string') throw new Error('no address')
  announce({ port: addr.port })
})
