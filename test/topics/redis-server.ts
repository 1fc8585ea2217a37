/**
 * A real `redis-server` (Debian package redis-server) for tests: on 127.0.0.1, a free port, no
 * persistence; it can be stopped and started again on the same port.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'

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
