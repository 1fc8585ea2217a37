/**
 * Helpers for the example tests: start an example's server in this process, or run the example
 * as its README says (`tsx examples/<name>.ts --port 0`) and read the URL it prints.
 */

import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { WebSocketServer } from '../../src/index.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** Listen on 127.0.0.1, any port; returns the URL. */
export async function listen (server: WebSocketServer): Promise<string> {
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 })
  return `ws://127.0.0.1:${port}/`
}

/** Run `examples/<name>.ts --port 0 ...args` with tsx; resolves with the URL it printed and a stop function. */
export async function runExample (name: string, args: string[] = []): Promise<{ url: string, stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', `examples/${name}.ts`, '--port', '0', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const lines = createInterface({ input: child.stdout })
  let timer: NodeJS.Timeout | undefined
  const url = await Promise.race([
    new Promise<string>((resolve) => lines.once('line', resolve)),
    exited.then((code) => { throw new Error(`examples/${name}.ts exited with ${String(code)} before printing its URL`) }),
    new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`examples/${name}.ts printed no URL within 30 s`)), 30_000) })
  ]).finally(() => clearTimeout(timer))
  return {
    url,
    stop: async () => {
      child.kill('SIGTERM')
      let killTimer: NodeJS.Timeout | undefined
      const code = await Promise.race([exited, new Promise<'timeout'>((resolve) => { killTimer = setTimeout(resolve, 10_000, 'timeout') })])
      clearTimeout(killTimer)
      if (code !== 'timeout') return code
      child.kill('SIGKILL')
      return await exited
    }
  }
}

/** A file of `size` random bytes in a fresh temporary folder, with its SHA-256, for a test file's `before`. */
export function randomFile (prefix: string, size: number): { dir: string, file: string, hash: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  const file = join(dir, 'big.bin')
  const data = randomBytes(size)
  writeFileSync(file, data)
  return { dir, file, hash: createHash('sha256').update(data).digest('hex') }
}
