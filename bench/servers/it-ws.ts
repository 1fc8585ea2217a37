// it-ws echo server (async-iterable duplex on top of ws): pipe(stream, stream).
import { createServer as createHttpServer } from 'node:http'
import { createServer } from 'it-ws/server'
import { pipe } from 'it-pipe'
import { announce } from './control.js'

const http = createHttpServer()
const server = createServer({
  server: http,
  onConnection: (stream: any) => {
    pipe(stream, stream).catch(() => {})
  }
})
// listen ourselves: it-ws's listen() takes no host and would bind every interface
http.listen(0, '127.0.0.1', () => {
  const addr = server.address()
  if (addr === null || typeof addr === 'string') throw new Error('no address')
  announce({ port: addr.port })
})
