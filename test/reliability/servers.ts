// Start the servers under attack as child processes (the demo, a configurable wspipe server,
// `ws` with defaults), each with the probe preloaded, and read their memory and descriptors.
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { nextMessage, rssOf } from '../../bench/lib/proc.js'
import type { ProbeReply } from './probe.js'

const require = createRequire(import.meta.url)
const tsxLoader = pathToFileURL(require.resolve('tsx')).href
const probeUrl = new URL('./probe.ts', import.meta.url).href
const root = fileURLToPath(new URL('../../', import.meta.url))

/** Which server a scenario runs against. */
export type ServerSpec =
  | { script: 'demo' }
  | { script: 'wspipe', handler?: 'echo' | 'idle' | 'ping', options?: Record<string, unknown> }
  | { script: 'ws', handler?: 'echo' | 'idle' | 'ping', deflate?: boolean }

export interface RunningServer {
  readonly pid: number
  readonly port: number
  readonly label: string
  /** Memory (after a full GC if `gc`), descriptors and handles, reported by the server itself. */
  probe: (gc?: boolean) => Promise<ProbeReply>
  /** RSS from /proc: works while the server's event loop is busy. */
  rss: () => number
  /** Open descriptors from /proc. */
  fds: () => number
  stop: () => Promise<void>
}

const children = new Set<ChildProcess>()
process.on('exit', () => { for (const c of children) try { c.kill('SIGKILL') } catch {} })

function describe (spec: ServerSpec): { file: string, args: string[], label: string } {
  if (spec.script === 'demo') return { file: 'examples/echo-server.ts', args: [], label: 'demo (npm start)' }
  if (spec.script === 'ws') {
    const handler = spec.handler ?? 'echo'
    const deflate = spec.deflate === true ? ['--deflate'] : []
    return { file: 'test/reliability/ws-server.ts', args: ['--handler', handler, ...deflate], label: `ws defaults${deflate.length > 0 ? ' + perMessageDeflate' : ''}, ${handler}` }
  }
  const handler = spec.handler ?? 'echo'
  const options = JSON.stringify(spec.options ?? {})
  return { file: 'test/reliability/wspipe-server.ts', args: ['--handler', handler, '--options', options], label: `wspipe ${handler} ${options}` }
}

export async function startServer (spec: ServerSpec): Promise<RunningServer> {
  const { file, args, label } = describe(spec)
  const child = spawn(process.execPath, ['--expose-gc', '--import', tsxLoader, '--import', probeUrl, file, '--port', '0', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit', 'ipc']
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => { fail(new Error(`${label}: no port announced within 20 s`)) }, 20_000)
    const onData = (c: Buffer): void => {
      out += c.toString()
      const m = /127\.0\.0\.1:(\d+)/.exec(out)
      if (m !== null) { done(); resolve(Number(m[1])) }
    }
    const onExit = (code: number | null): void => { fail(new Error(`${label}: exited (${code}) before listening`)) }
    function fail (err: Error): void { done(); reject(err) }
    function done (): void {
      clearTimeout(timer)
      child.stdout!.off('data', onData)
      child.off('exit', onExit)
      // keep draining stdout so the child never blocks on a full pipe
      child.stdout!.resume()
    }
    child.stdout!.on('data', onData)
    child.once('exit', onExit)
  })
  const pid = child.pid!
  return {
    pid,
    port,
    label,
    async probe (gc = true) {
      const reply = nextMessage<ProbeReply>(child, 'probe', 30_000)
      child.send({ cmd: 'probe', gc })
      return await reply
    },
    rss: () => rssOf(pid),
    fds () {
      try { return readdirSync(`/proc/${pid}/fd`).length } catch { return -1 }
    },
    async stop () {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
      child.kill('SIGKILL')
      await exited
    }
  }
}

/** Samples a server's RSS every 50 ms: the peak, and whether it passed `limit` (attacks stop there). */
export function watchRss (server: RunningServer, limit: number): { readonly peak: number, readonly over: boolean, stop: () => void } {
  const state = { peak: server.rss(), over: false }
  const timer = setInterval(() => {
    const r = server.rss()
    if (r > state.peak) state.peak = r
    if (r > limit) state.over = true
  }, 50)
  return {
    get peak () { return state.peak },
    get over () { return state.over },
    stop: () => { clearInterval(timer) }
  }
}
