// Raw TCP echo: the ceiling for any WebSocket echo in Node on this machine (no framing at all).
import { createServer } from 'node:net'
import { announce } from './control.js'

// Stop reading only once 1 MiB is queued for the peer (what wspipe's sendHighWaterMark does);
// pipe() would pause at the socket's 16 KiB mark and spend its time in pause/resume.
const HIGH_WATER = 1024 * 1024

const server = createServer((socket) => {
  socket.setNoDelay(true)
  socket.on('error', () => {})
  socket.on('data', (chunk) => {
    if (!socket.write(chunk) && socket.writableLength > HIGH_WATER) {
      socket.pause()
      socket.once('drain', () => socket.resume())
    }
  })
  socket.on('end', () => socket.end())
})
server.listen(0, '127.0.0.1', () => {
  const addr = server.address()
  if (addr === null || typeof addr === 'string') throw new Error('no address')
  announce({ port: addr.port })
})
