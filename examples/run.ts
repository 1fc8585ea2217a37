/**
 * What makes an example runnable: `npx tsx examples/<name>.ts --port N [--host H]` starts its
 * server and prints its URL; importing the module (as the tests do) starts nothing.
 */
import { realpathSync } from 'node:fs'
import { basename, extname } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import type { WebSocketServer } from '../src/index.js'

/** Was this module (`import.meta.url`) the script node was started with? */
export function isMain (moduleUrl: string): boolean {
  const script = process.argv[1]
  if (script === undefined) return false
  try {
    return pathToFileURL(realpathSync(script)).href === moduleUrl
  } catch {
    return false
  }
}

/** Listen on `--port` (default 8080) and `--host` (default 127.0.0.1), print the URL, close on SIGINT/SIGTERM. */
export async function serve (server: WebSocketServer, args: string[] = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({
    args,
    strict: false,
    options: { port: { type: 'string', default: '8080' }, host: { type: 'string', default: '127.0.0.1' } }
  })
  const address = await server.listen({ port: Number(values.port), host: String(values.host) }).catch(cannotListen(String(values.host), String(values.port)))
  console.log(`ws://${address.address}:${address.port}/`)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { void server.close().then(() => process.exit(0)) })
  }
}

/**
 * For a script that could not listen (a port in use, one it may not bind): print one line on
 * stderr, `echo-server: cannot listen on 127.0.0.1:8080: address already in use (EADDRINUSE)`,
 * and exit with 1. A stack trace would only say where Node noticed.
 */
export function cannotListen (host: string, port: string): (error: unknown) => never {
  return (error) => {
    const script = process.argv[1] ?? 'example'
    const { code, message } = error as { code?: unknown, message?: unknown }
    // Node's message is `listen EADDRINUSE: address already in use 127.0.0.1:8080`: keep its middle.
    const what = typeof code === 'string'
      ? `${String(message).replace(/^listen \w+: /, '').replace(/ \S+:\d+$/, '')} (${code})`
      : String(message ?? error)
    console.error(`${basename(script, extname(script))}: cannot listen on ${host}:${port}: ${what}`)
    process.exit(1)
  }
}
