/**
 * The demo behind `npm start`: a page at http://127.0.0.1:8080/ to try wspipe from a browser
 * (examples/demo/index.html), and on the same port the WebSocket endpoints it talks to: an echo
 * for clients offering the subprotocol `echo` and for clients offering none, a streaming echo on
 * `echo-stream` (each message goes back chunk by chunk as it arrives, so a message of any size
 * passes in bounded memory), and the chat rooms of examples/chat-server.ts on `chat` (the page
 * joins `/room/lobby`), and `transport`, which tells a client the HTTP version its WebSocket came
 * over and closes. GET /stats tells the page how many connections are open, and how many of
 * them came over HTTP/2.
 *
 *   npm start -- --port 8080
 *   npm start -- --port 8443 --cert cert.pem --key key.pem   (https:// and wss://)
 *   npm start -- --port 8443 --tls                           (a self-signed certificate for 127.0.0.1)
 *
 * Over TLS one port serves the page, /stats and every WebSocket endpoint over HTTP/2 and
 * HTTP/1.1 (by ALPN): a browser opens its WebSockets as streams of the HTTP/2 connection it
 * loaded the page on (RFC 8441).
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
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import { createSecureServer, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import { WebSocketServer, type Handler, type StreamHandler, type WebSocketServerOptions } from '../src/index.js'
import { chat } from './chat-server.js'
import { bundleBrowserBuild } from './demo/bundle.js'
import { selfSignedCertificate, type DemoTls } from './demo/certificate.js'
import { cannotListen, isMain } from './run.js'

const PAGE = new URL('./demo/index.html', import.meta.url)

export interface Demo {
  readonly pageUrl: string
  readonly wsUrl: string
  readonly server: WebSocketServer
  /** The HTTP server of the page (an HTTP/2 one with `tls`), on which `server` is attached. */
  readonly http: HttpServer | Http2SecureServer
  /** Close every WebSocket with 1001 (going away), then stop serving the page. */
  close: () => Promise<void>
}

/** A key and certificate (PEM) for the demo's TLS. */
export type { DemoTls }

/**
 * Start the demo on `port`; with `tls`, over https:// and wss:// with HTTP/2 beside HTTP/1.1 on
 * that one port.
 */
export async function startDemo (port = 8080, host = '127.0.0.1', options: WebSocketServerOptions = {}, streamDefault = false, tls?: DemoTls): Promise<Demo> {
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
    // The page asks which HTTP version its WebSockets get ('2' over an HTTP/2 connection).
    .register('transport', async (conn) => { await conn.send(`HTTP/${conn.httpVersion}`) })
  if (streamDefault) server.register('', echoStream, { messages: 'stream', maxMessageSize: options.maxMessageSize })

  // The page's server is ours, not wspipe's: its own timeouts drop a client that dribbles or
  // never finishes its request (an upgrade included), as wspipe's handshakeTimeout would.
  // Node's defaults are 60 s, checked every 30 s; here handshakeTimeout, checked every 250 ms.
  const handshakeTimeout = options.handshakeTimeout ?? 10_000
  let browserBuild: Promise<string> | undefined
  const serve = (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void => {
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
      let http2 = 0
      for (const conn of server.clients) if (conn.httpVersion === '2') http2++
      const stats = { connections: server.clients.size, chat: server.topics.count('room/lobby'), http2 }
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(JSON.stringify(stats))
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found\n')
    }
  }
  // Over TLS: HTTP/2 and HTTP/1.1 on one port; wspipe's attach turns on extended CONNECT.
  const sessions = new Set<Http2Session>()
  const http = tls === undefined
    ? createServer({ headersTimeout: handshakeTimeout, requestTimeout: Math.max(handshakeTimeout, 30_000), connectionsCheckingInterval: 250 }, serve)
    : createSecureServer({ ...tls, allowHTTP1: true }, serve)
  http.on('session', (session: Http2Session) => {
    sessions.add(session)
    session.once('close', () => sessions.delete(session))
  })
  server.attach(http)
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject)
    http.listen(port, host, () => { http.off('error', reject); resolve() })
  })
  const address = http.address() as AddressInfo
  const secure = tls === undefined ? '' : 's'
  return {
    pageUrl: `http${secure}://${address.address}:${address.port}/`,
    wsUrl: `ws${secure}://${address.address}:${address.port}/`,
    server,
    http,
    close: async () => {
      await server.close()
      // HTTP/2 sessions had their GOAWAY from server.close(); what a browser keeps open goes now.
      for (const session of sessions) session.destroy()
      ;(http as { closeAllConnections?: () => void }).closeAllConnections?.()
      await new Promise<void>((resolve) => http.close(() => resolve()))
    }
  }
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      stream: { type: 'boolean', default: false },
      cert: { type: 'string' },
      key: { type: 'string' },
      tls: { type: 'boolean', default: false }
    }
  })
  let tls: DemoTls | undefined
  if (values.cert !== undefined || values.key !== undefined) {
    if (values.cert === undefined || values.key === undefined) {
      console.error('echo-server: --cert and --key go together')
      process.exit(1)
    }
    tls = { cert: await readFile(values.cert), key: await readFile(values.key) }
  } else if (values.tls) {
    tls = await selfSignedCertificate()
  }
  const demo = await startDemo(Number(values.port), values.host, {}, values.stream, tls).catch(cannotListen(values.host, values.port))
  console.log(demo.pageUrl)
  console.log(demo.wsUrl)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { void demo.close().then(() => process.exit(0)) })
  }
}
