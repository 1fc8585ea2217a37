/**
 * serveCluster through examples/cluster.ts, as a program: two workers (this machine's two
 * cores) share one port and both serve; SIGHUP restarts them one at a time, each old worker
 * closing its connections with 1001 while new connections are served throughout; a worker
 * killed from outside is replaced; SIGTERM
 * closes every connection with 1001 and the primary exits 0.
 */

import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { connect } from '../../src/index.js'
import { collect, text } from '../../src/testing.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

async function pidOf (url: string): Promise<number> {
  const conn = await connect(url, { protocols: ['pid'] })
  return Number(text(await collect(conn.source))[0])
}

test('two workers serve one port; SIGHUP replaces them one at a time without a gap; a killed worker is replaced; SIGTERM closes with 1001 and exits 0', async (t) => {
  t.timeout(120_000)
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/cluster.ts', '--port', '0', '--workers', '2'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const lines: string[] = []
  const waiting: Array<() => void> = []
  createInterface({ input: child.stdout! }).on('line', (line) => { lines.push(line); for (const w of waiting.splice(0)) w() })
  const nextLine = async (what: string): Promise<string> => {
    const start = lines.length
    for (let i = 0; i < 600 && lines.length === start; i++) await new Promise<void>((resolve) => { waiting.push(resolve); setTimeout(resolve, 100) })
    if (lines.length === start) throw new Error(`no ${what} line`)
    return lines[start]
  }
  try {
    const url = await nextLine('URL')
    t.regex(url, /^ws:\/\/127\.0\.0\.1:\d+\/$/)
    // The primary hands connections out in turn: a few connections meet both workers.
    const before = new Set<number>()
    for (let i = 0; i < 20 && before.size < 2; i++) before.add(await pidOf(url))
    t.is(before.size, 2, 'both workers serve')
    t.false(before.has(child.pid!), 'the primary serves nothing itself')

    const member = await connect(`${url}room/lobby`, { protocols: ['chat'] })
    const restarted = nextLine('restarted')
    child.kill('SIGHUP')
    // Throughout the restart every new connection is served, from four clients at once: one
    // that an old worker accepted just before its close() still gets its answer (CI once saw
    // ECONNRESET there), then 1001.
    let served = 0
    let done = false
    const failures: string[] = []
    void restarted.then(() => { done = true }, () => { done = true })
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 400 && !done; i++) {
        try {
          await pidOf(url)
          served++
        } catch (err) {
          failures.push(String(err))
        }
      }
    }))
    t.is(await restarted, 'restarted')
    t.true(served > 0)
    t.deepEqual(failures, [], 'no connection failed during the rolling restart')
    t.log(`${served} connections served during the rolling restart`)
    t.deepEqual(await member.closed, { code: 1001, reason: 'server shutting down', wasClean: true })
    const after = new Set<number>()
    for (let i = 0; i < 20 && after.size < 2; i++) after.add(await pidOf(url))
    t.is(after.size, 2)
    for (const pid of after) t.false(before.has(pid), 'every worker is new')

    // A worker that dies unasked is replaced.
    const [victim] = after
    process.kill(victim, 'SIGKILL')
    const respawned = new Set<number>()
    for (let i = 0; i < 200 && respawned.size < 2; i++) {
      try {
        const pid = await pidOf(url)
        if (pid !== victim) respawned.add(pid)
      } catch {}
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    t.is(respawned.size, 2, 'two workers serve again, one of them new')
    t.false(respawned.has(victim))

    const last = await connect(`${url}room/lobby`, { protocols: ['chat'] })
    child.kill('SIGTERM')
    t.is((await last.closed).code, 1001)
    t.is(await exited, 0)
  } finally {
    child.kill('SIGKILL')
  }
})
