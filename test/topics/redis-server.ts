/**
 * A real `redis-server` (Debian package redis-server) for tests: on 127.0.0.1, a free port, no
 * persistence; it can be stopped and started again on the same port, or frozen (SIGSTOP). Beside
 * it, a TCP proxy that holds what a client sends for a while, and a port that accepts and never answers.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { connect, createServer, type Server, type Socket } from 'node:net'

/** A free TCP port on 127.0.0.1 (free when asked; tests bind it at once). */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** A redis-server process. */
export class RedisServer {
  readonly port: number
  private child: ChildProcess | undefined

  private constructor (port: number) {
    this.port = port
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** Start one on a free port; resolves once it accepts connections. */
  static async start (port?: number): Promise<RedisServer> {
    const server = new RedisServer(port ?? await freePort())
    await server.start()
    return server
  }

  /** (Re)start on the same port. */
  async start (): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
    this.child = child
    let output = ''
    let timer: NodeJS.Timeout | undefined
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`redis-server did not start within 10 s: ${output}`)), 10_000)
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString()
        if (output.includes('Ready to accept connections')) resolve()
      })
      child.once('exit', (code) => reject(new Error(`redis-server exited with ${String(code)}: ${output}`)))
    }).finally(() => clearTimeout(timer))
    child.stdout!.resume()
  }

  /** Freeze it (SIGSTOP): connections stay open, nothing is answered, as a stalled Redis looks. */
  pause (): void {
    this.child?.kill('SIGSTOP')
  }

  /** Let a frozen one go on (SIGCONT). */
  resume (): void {
    this.child?.kill('SIGCONT')
  }

  /** Kill it (SIGKILL: as a crash or a network loss looks to its clients) and wait for the exit. */
  async stop (): Promise<void> {
    const child = this.child
    this.child = undefined
    if (child === undefined || child.exitCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }
}

/** A listening server on 127.0.0.1 and its port. */
async function listening (server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as { port: number }).port
}

/**
 * A port that accepts TCP connections and never answers (a firewall that lets the SYN through,
 * a wedged process): `accepted` counts the connections, `open` those the client has not closed.
 */
export class SilentPort {
  readonly port: number
  accepted = 0
  private readonly sockets = new Set<Socket>()
  private readonly server: Server

  private constructor (server: Server, port: number) {
    this.server = server
    this.port = port
    server.on('connection', (socket) => {
      this.accepted++
      this.sockets.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => this.sockets.delete(socket))
      socket.resume()
    })
  }

  static async start (): Promise<SilentPort> {
    const server = createServer()
    // Connections come as later events: the constructor's listener sees every one.
    return new SilentPort(server, await listening(server))
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get open (): number {
    return this.sockets.size
  }

  async stop (): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise((resolve) => this.server.close(resolve))
  }
}

/**
 * A TCP proxy to `target` that holds each chunk a client sends for `delay` ms before passing it
 * on (answers pass at once): commands reach Redis late, as over a slow or congested link.
 */
export class DelayProxy {
  readonly port: number
  private readonly server: Server
  private readonly sockets = new Set<Socket>()

  private constructor (server: Server, port: number) {
    this.server = server
    this.port = port
  }

  static async start (target: number, delay: number): Promise<DelayProxy> {
    const server = createServer()
    const proxy = new DelayProxy(server, await listening(server))
    server.on('connection', (client) => {
      const upstream = connect(target, '127.0.0.1')
      for (const s of [client, upstream]) {
        proxy.sockets.add(s)
        s.on('error', () => { client.destroy(); upstream.destroy() })
        s.on('close', () => { proxy.sockets.delete(s); client.destroy(); upstream.destroy() })
      }
      client.on('data', (chunk) => { setTimeout(() => { if (!upstream.destroyed) upstream.write(chunk) }, delay) })
      upstream.pipe(client)
    })
    return proxy
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  async stop (): Promise<void> {
    for (const s of this.sockets) s.destroy()
    await new Promise((resolve) => this.server.close(resolve))
  }
}
