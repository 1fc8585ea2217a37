/**
 * The demo behind `npm start`: a page at http://127.0.0.1:8080/ to try wspipe from a browser
 * (examples/demo/index.html), and on the same port the WebSocket endpoints it talks to: an echo
 * for clients offering the subprotocol `echo` and for clients offering none, a streaming echo on
 * `echo-stream` (each message goes back chunk by chunk as it arrives, so a message of any size
 * passes in bounded memory), and the chat rooms of examples/chat-server.ts on `chat` (the page
 * joins `/room/lobby`). GET /stats tells the page
 * how many connections are open.
 *
 *   npm start -- --port 8080
 *
 * The page talks to them through wspipe's browser build (src/browser/), which esbuild bundles
 * in memory on the first request for /wspipe.js: no build step.
 *
 * permessage-deflate is on (with its defaults), so a browser negotiates it. The server keeps
 * wspipe's default limits, and the conformance runner (npm run conformance) passes Autobahn's
 * cases at full size against them; `--stream` (for the runner) makes the echo for no
 * subprotocol the streaming one.
 */
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import { WebSocketServer, type Handler, type StreamHandler, type WebSocketServerOptions } from '../src/index.js'
import { chat } from './chat-server.js'
import { bundleBrowserBuild } from './demo/bundle.js'
import { cannotListen, isMain } from './run.js'

const PAGE = new URL('./demo/index.html', import.meta.url)

export interface Demo {
  readonly pageUrl: string
  readonly wsUrl: string
  readonly server: WebSocketServer
  /** Close every WebSocket with 1001 (going away), then stop serving the page. */
  close: () => Promise<void>
}

export async function startDemo (port = 8080, host = '127.0.0.1', options: WebSocketServerOptions = {}, streamDefault = false): Promise<Demo> {
  const echo: Handler = ({ source, sink }) => sink(source)
  // Stream mode: each message is `{ type, chunks }`, and the sink sends such a message as it
  // reads its chunks, so this is an echo too, in memory bounded by the water marks.
  const echoStream: StreamHandler = ({ source, sink }) => sink(source)
  // permessage-deflate on, so browsers (which all offer it) negotiate it here.
  const server = new WebSocketServer({ perMessageDeflate: true, ...options })
  server
    .register('echo', echo)
    .register('', echo)
    .register('chat', chat(server.topics))
    // No size limit: a streamed message is never held, whatever its size.
    .register('echo-stream', echoStream, { messages: 'stream', maxMessageSize: Infinity })
  if (streamDefault) server.register('', echoStream, { messages: 'stream', maxMessageSize: options.maxMessageSize })

  // The page's server is ours, not wspipe's: its own timeouts drop a client that dribbles or
  // never finishes its request (an upgrade included), as wspipe's handshakeTimeout would.
  // Node's defaults are 60 s, checked every 30 s; here handshakeTimeout, checked every 250 ms.
  const handshakeTimeout = options.handshakeTimeout ?? 10_000
  let browserBuild: Promise<string> | undefined
  const http = createServer({ headersTimeout: handshakeTimeout, requestTimeout: Math.max(handshakeTimeout, 30_000), connectionsCheckingInterval: 250 }, (req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname
    if (req.method === 'GET' && path === '/') {
      // Read on each request, so that an edited page shows on reload.
      readFile(PAGE).then((page) => {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(page)
      }, (err: Error) => {
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(err.message)
      })
    } else if (req.method === 'GET' && path === '/wspipe.js') {
      // The library itself, bundled once for the browser; a failed bundle is tried again next time.
      (browserBuild ??= bundleBrowserBuild({ minify: true }).then((b) => b.code)).then((code) => {
        res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8' }).end(code)
      }, (err: Error) => {
        browserBuild = undefined
        res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end(err.message)
      })
    } else if (req.method === 'GET' && path === '/stats') {
      const stats = { connections: server.clients.size, chat: server.topics.count('room/lobby') }
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify(stats))
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n')
    }
  })
  server.attach(http)
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    http.listen(port, host, () => { http.off('error', reject); resolve() })
  })
  const address = http.address() as AddressInfo
  return {
    pageUrl: `http://${address.address}:${address.port}/`,
    wsUrl: `ws://${address.address}:${address.port}/`,
    server,
    close: async () => {
      await server.close()
      http.closeAllConnections()
      await new Promise<void>((resolve) => http.close(() => resolve()))
    }
  }
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      stream: { type: 'boolean', default: false }
    }
  })
  const demo = await startDemo(Number(values.port), values.host, {}, values.stream).catch(cannotListen(values.host, values.port))
  console.log(demo.pageUrl)
  console.log(demo.wsUrl)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { void demo.close().then(() => process.exit(0)) })
  }
}
