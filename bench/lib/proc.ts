// Child-process helpers for the benchmark orchestrators: pinning, IPC, /proc sampling, cleanup.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'

const require = createRequire(import.meta.url)
const tsxLoader = pathToFileURL(require.resolve('tsx')).href

let hasTaskset: boolean | undefined
export function tasksetAvailable (): boolean {
  if (hasTaskset === undefined) {
    try {
      execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' })
      hasTaskset = true
    } catch {
      hasTaskset = false
    }
  }
  return hasTaskset
}

const children = new Set<ChildProcess>()

function killAll (): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try { c.kill('SIGKILL') } catch {}
    }
  }
  children.clear()
}

// Children must not outlive the orchestrator, whatever way it ends.
process.on('exit', killAll)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => { killAll(); process.exit(130) })
}

export interface SpawnOptions {
  core?: number
  env?: Record<string, string>
  nodeArgs?: string[]
  args?: string[]
}

/**
 * Runs a script in its own node process, pinned to `core`, with an IPC channel: a TypeScript file
 * under tsx, a built .js file on node alone (bench/lib/baseline.ts serverScript).
 */
export function spawnTs (file: string, opts: SpawnOptions = {}): ChildProcess {
  const loader = file.endsWith('.ts') ? ['--import', tsxLoader] : []
  const nodeArgv = [...(opts.nodeArgs ?? []), ...loader, file, ...(opts.args ?? [])]
  const pinned = opts.core !== undefined && tasksetAvailable()
  // taskset execs node, so the child's pid is node's own pid (which /proc sampling relies on)
  const cmd = pinned ? 'taskset' : process.execPath
  const argv = pinned ? ['-c', String(opts.core), process.execPath, ...nodeArgv] : nodeArgv
  const child = spawn(cmd, argv, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...opts.env }
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

/** Asks the child to exit by closing its IPC channel (so --cpu-prof can write), then kills it. */
export async function stop (child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) { children.delete(child); return }
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  try { child.disconnect() } catch {}
  await Promise.race([exited, sleep(graceMs)])
  await kill(child)
}

export function kill (child: ChildProcess): Promise<void> {
  children.delete(child)
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise(resolve => {
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}

/** Waits for the next IPC message of `type` from the child, or rejects on exit/timeout. */
export function nextMessage<T = any> (child: ChildProcess, type: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: any): void => {
      if (m?.type === type) { done(); resolve(m as T) } else if (m?.type === 'error') { done(); reject(new Error(String(m.message))) }
    }
    const onExit = (code: number | null, sig: string | null): void => {
      done(); reject(new Error(`child exited (${code ?? sig}) while waiting for ${type}`))
    }
    const timer = setTimeout(() => { done(); reject(new Error(`timeout waiting for ${type}`)) }, timeoutMs)
    function done (): void {
      clearTimeout(timer)
      child.off('message', onMsg)
      child.off('exit', onExit)
    }
    child.on('message', onMsg)
    child.once('exit', onExit)
  })
}

export async function request<T = any> (child: ChildProcess, msg: { cmd: string, [k: string]: any }, reply: string, timeoutMs: number): Promise<T> {
  const p = nextMessage<T>(child, reply, timeoutMs)
  child.send(msg)
  return await p
}

/** Resident set size in bytes, read from /proc so it works while the child's event loop is busy. */
export function rssOf (pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : 0
  } catch {
    return 0
  }
}

const CLK_TCK = 100 // Linux USER_HZ; true on every mainstream kernel config

/** CPU seconds (user + system) consumed so far by `pid`. */
export function cpuSecondsOf (pid: number): number {
  const s = procStatOf(pid)
  return s.user + s.system
}

/** A process's CPU seconds (user, system) and minor page faults so far, from /proc/<pid>/stat; zeros when unreadable. */
export function procStatOf (pid: number): { user: number, system: number, minorFaults: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // fields after the parenthesised command name: minflt is field 10, utime 14, stime 15
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { user: Number(rest[11]) / CLK_TCK, system: Number(rest[12]) / CLK_TCK, minorFaults: Number(rest[7]) }
  } catch {
    return { user: 0, system: 0, minorFaults: 0 }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

export function median (xs: number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** Which src/ was measured: HEAD, and whether src/ had uncommitted changes (others work on it concurrently). */
export function srcVersion (): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim() !== ''
    return dirty ? `${head} + uncommitted changes in src/` : head
  } catch {
    return 'unknown'
  }
}

/** 1-minute load average: the benchmarks share the machine with whatever else runs on it. */
export function loadAverage (): string {
  try { return readFileSync('/proc/loadavg', 'utf8').split(' ')[0] } catch { return '?' }
}

export function machineInfo (): { date: string, nproc: number, cpu: string, node: string, kernel: string } {
  let cpu = 'unknown'
  try {
    const m = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))
    if (m) cpu = m[1].trim()
  } catch {}
  let nproc = 0
  try { nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) } catch {}
  let kernel = ''
  try { kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim() } catch {}
  return { date: new Date().toISOString().slice(0, 10), nproc, cpu, node: process.version, kernel }
}

/**
 * CPU seconds the whole machine has spent so far (all cores), from /proc/stat: `busy` is
 * everything but idle, `interrupts` the part spent in irq/softirq/steal, which belongs to no process
 * (on loopback much of TCP's work runs in softirq).
 */
export function machineCpuSeconds (): { busy: number, interrupts: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]
    // user nice system idle iowait irq softirq steal
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number)
    const total = f.reduce((a, b) => a + b, 0)
    return { busy: (total - f[3] - f[4]) / CLK_TCK, interrupts: (f[5] + f[6] + f[7]) / CLK_TCK }
  } catch {
    return { busy: 0, interrupts: 0 }
  }
}
