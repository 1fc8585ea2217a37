/**
 * Peers for the client tests, all on 127.0.0.1 and port 0: the `ws` server, Python's
 * `websockets` server (Debian's /usr/bin/python3 running fixtures/python_echo_server.py), our
 * own WebSocketServer, raw node:net servers that answer the handshake however a test likes, and
 * a self-signed certificate made with `openssl`.
 */

import { spawn, execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { WebSocketServer as WsServer, type ServerOptions as WsServerOptions, type WebSocket as WsSocket } from 'ws'
import { connect, WebSocketServer, type Connection, type ConnectOptions, type Handler, type WebSocketServerOptions } from '../../src/index.js'

export const decoder = new TextDecoder()
export const encoder = new TextEncoder()

/** Read at most `max` messages (all of them if the source ends first). */
export async function take (source: AsyncIterable<Uint8Array>, max: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  if (max <= 0) return out
  for await (const message of source) {
    out.push(message)
    if (out.length >= max) break
  }
  return out
}

/** Read every message until the source ends. */
export async function collect (source: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = []
  for await (const message of source) out.push(message)
  return out
}

export function sha256 (...parts: Uint8Array[]): string {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return h.digest('hex')
}

/**
 * Poll `condition` every `intervalMs`, at most `tries` times (bounded in count and time).
 * Resolves true as soon as it holds, false if it never did.
 */
export async function eventually (condition: () => boolean, tries = 500, intervalMs = 10): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (condition()) return true
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
  return condition()
}

/** Resolve with `promise`, or with `fallback` once `ms` have passed: a bound on waits that must not hang a test. */
export async function within<T, F> (promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([promise, new Promise<F>((resolve) => { timer = setTimeout(resolve, ms, fallback) })])
  } finally {
    clearTimeout(timer)
  }
}

export interface Peer {
  url: string
  close: () => Promise<void>
}

/** Run `body` with a client connected to `peer` (heartbeat off); closes both afterwards. */
export async function withPeer (peer: Peer, body: (conn: Connection) => Promise<void>, options: ConnectOptions = {}): Promise<void> {
  try {
    const conn = await connect(peer.url, { heartbeat: false, ...options })
    try {
      await body(conn)
    } finally {
      conn.close()
      await conn.closed
    }
  } finally {
    await peer.close()
  }
}

/** A `ws` server; `onConnection` gets each socket (default: echo, text as text). */
export async function startWsServer (onConnection?: (ws: WsSocket) => void, options: WsServerOptions = {}): Promise<Peer & { wss: WsServer }> {
  const server = createHttpServer()
  const wss = new WsServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024, ...options })
  wss.on('connection', (ws) => {
    ws.on('error', () => {})
    if (onConnection !== undefined) onConnection(ws)
    else ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `ws://127.0.0.1:${port}/`,
    wss,
    close: async () => {
      for (const c of wss.clients) c.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** A `ws` server over HTTPS. */
export async function startWssServer (cert: Certificate): Promise<Peer> {
  const server = createHttpsServer({ key: cert.key, cert: cert.cert })
  const wss = new WsServer({ server, perMessageDeflate: false })
  wss.on('connection', (ws) => {
    ws.on('error', () => {})
    ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `wss://127.0.0.1:${port}/`,
    close: async () => {
      for (const c of wss.clients) c.terminate()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

const PYTHON = '/usr/bin/python3'
const PYTHON_FIXTURE = fileURLToPath(new URL('./fixtures/python_echo_server.py', import.meta.url))

/** Python's `websockets` echo server in a child process (`--deflate`: with permessage-deflate); it exits when we close its stdin. */
export async function startPythonServer (args: string[] = []): Promise<Peer> {
  const child = spawn(PYTHON, [PYTHON_FIXTURE, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const lines = createInterface({ input: child.stdout })
  const port = await within(new Promise<string>((resolve, reject) => {
    lines.once('line', resolve)
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`python echo server exited with ${String(code)}`)))
  }), 10_000, undefined)
  lines.close()
  if (port === undefined || !/^\d+$/.test(port)) {
    child.kill()
    throw new Error(`python echo server did not print its port (got ${String(port)})`)
  }
  return {
    url: `ws://127.0.0.1:${port}/`,
    close: async () => {
      child.stdin.end()
      if (await within(exited.then(() => true), 5000, false)) return
      child.kill('SIGKILL')
      await exited
    }
  }
}

/** Our own server with `handlers` registered (`''` for clients offering no subprotocol). */
export async function startOurServer (handlers: Record<string, Handler>, options: WebSocketServerOptions = {}, tls?: Certificate): Promise<Peer & { server: WebSocketServer }> {
  const server = new WebSocketServer(options)
  for (const [protocol, handler] of Object.entries(handlers)) server.register(protocol, handler)
  const { port } = await server.listen(tls !== undefined ? { tls: { key: tls.key, cert: tls.cert } } : {})
  return { url: `${tls !== undefined ? 'wss' : 'ws'}://127.0.0.1:${port}/`, server, close: () => server.close() }
}

export const echo: Handler = ({ source, sink }) => sink(source)

export interface Certificate {
  key: string
  cert: string
}

/** A self-signed certificate for 127.0.0.1 and localhost, made with `openssl` in a temporary directory. */
export function makeCertificate (): Certificate {
  const dir = mkdtempSync(join(tmpdir(), 'wspipe-cert-'))
  try {
    const key = join(dir, 'key.pem')
    const cert = join(dir, 'cert.pem')
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'
    ], { stdio: 'ignore' })
    return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The request a raw server received. */
export interface RawRequest {
  requestLine: string
  headers: Record<string, string>
  /** The right Sec-WebSocket-Accept for the request's key. */
  accept: string
}

/**
 * A raw TCP server: reads each connection's request head, then calls `respond`, which writes
 * whatever it likes (or nothing) on the socket.
 */
export async function startRawServer (respond: (socket: Socket, request: RawRequest) => void): Promise<{ port: number, url: string, sockets: Set<Socket>, close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const server = createNetServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let head = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) {
        if (head.length > 64 * 1024) socket.destroy()
        return
      }
      socket.off('data', onData)
      const [requestLine, ...lines] = head.subarray(0, end).toString('latin1').split('\r\n')
      const headers: Record<string, string> = {}
      for (const line of lines) {
        const colon = line.indexOf(':')
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      const accept = createHash('sha1').update((headers['sec-websocket-key'] ?? '') + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64')
      const rest = head.subarray(end + 4)
      respond(socket, { requestLine, headers, accept })
      if (rest.length > 0) socket.unshift(rest)
    }
    socket.on('data', onData)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    port,
    url: `ws://127.0.0.1:${port}/`,
    sockets,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** A valid 101 for `request`, with `extra` header lines (each `Name: value`). */
export function switchingProtocols (request: RawRequest, extra: string[] = []): string {
  return ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${request.accept}`, ...extra, '', ''].join('\r\n')
}
