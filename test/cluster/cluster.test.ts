/**
 * serveCluster's primary when workers fail: a crashed worker's replacement still starting at
 * close(), a rolling restart whose new worker cannot start, an initial worker that cannot start,
 * a replacement that fails and is tried again, workers that keep crashing once they serve, and a
 * SIGHUP sent to the whole process group, connections handed to a worker as it closes, and a
 * primary that never answers a closed worker. Each scenario runs test/cluster/program.ts as a
 * process (node:cluster forks the main module) and reads its one-line JSON outcome.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

async function scenario (name: string, env: Record<string, string> = {}, ms = 30_000): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'wspipe-cluster-'))
  try {
    const stdout = await new Promise<string>((resolve, reject) => {
      // A process group of its own, which the program may signal as a whole, and which a
      // timeout ends as a whole, workers included.
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/cluster/program.ts', name], {
        cwd: ROOT,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, WSPIPE_FIXTURE_FLAG: join(dir, 'cue'), ...env }
      })
      let out = ''
      let err = ''
      child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
      // The workers' expected failures are logged there: shown only if the program fails.
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { err += chunk })
      const timer = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL') } catch {} }, ms)
      child.once('error', reject)
      child.once('close', (code, signal) => {
        clearTimeout(timer)
        if (code === 0) resolve(out)
        else reject(new Error(`the program ended with ${String(code ?? signal)}: ${out}\n${err}`))
      })
    })
    return JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

test('close() while a crashed worker\'s replacement is still starting: that worker is stopped too', async (t) => {
  t.timeout(40_000)
  const out = await scenario('close-while-respawning')
  t.deepEqual(out.pidsAfterClose, [])
  t.deepEqual(out.alive, [], 'no worker outlives close()')
})

test('close() after a rolling restart whose new worker cannot start: close() resolves and stops every worker; restart() rejects', async (t) => {
  t.timeout(40_000)
  const out = await scenario('close-after-failed-restart')
  t.is(out.close, 'resolved')
  t.regex(String(out.restart), /^rejected: a worker exited with \d+ before it served/)
  t.deepEqual(out.alive, [])
})

test('a worker that cannot start at first: serveCluster rejects and stops the workers that did start', async (t) => {
  t.timeout(40_000)
  const out = await scenario('initial-fork-fails', { WSPIPE_FIXTURE_FAIL_SECOND: '1' })
  t.regex(String(out.serveCluster), /^rejected: a worker exited with 1 before it served/)
  t.deepEqual(out.alive, [])
})

test('a replacement that fails to start is tried again, later, until one serves', async (t) => {
  t.timeout(40_000)
  const out = await scenario('respawn-retries')
  t.is(out.serving, 1)
  t.deepEqual(out.alive, [])
})

test('close() while a replacement\'s start never finishes: the worker is asked to stop and exits; close() resolves', async (t) => {
  t.timeout(40_000)
  const out = await scenario('close-while-start-hangs')
  t.is(out.close, 'resolved')
  t.deepEqual(out.alive, [])
})

test('workers that crash once they serve are replaced after pauses that double up to maxDelay; one that served past resetAfter is replaced after the first pause again', async (t) => {
  // Five worker starts: bounded generously for a loaded machine.
  t.timeout(75_000)
  const out = await scenario('crash-loop', {}, 60_000)
  t.is(out.error, undefined)
  t.is(out.forks, 4)
  const pauses = out.pauses as number[]
  t.log(`pauses before each replacement: ${pauses.join(', ')} ms`)
  // respawn: { delay: 400, maxDelay: 1200, resetAfter: 1500 }. A timer never fires early; late,
  // by the load, but not by the 400 ms that tell each upper bound from the next pause.
  const expected = [400, 800, 1200, 400]
  for (let i = 0; i < expected.length; i++) t.true(pauses[i] >= expected[i] - 5, `pause ${i}: ${pauses[i]} ms, at least ${expected[i]}`)
  t.true(pauses[2] < 1600, `capped at maxDelay, not doubled to 1600: ${pauses[2]} ms`)
  t.true(pauses[3] < 1200, `a worker that stayed up resets the pause: ${pauses[3]} ms`)
  t.deepEqual(out.alive, [])
})

test('a SIGHUP to the whole process group: the worker survives it, the primary\'s rolling restart replaces it, and its connection gets 1001', async (t) => {
  t.timeout(40_000)
  const out = await scenario('group-sighup')
  t.like(out.closed, { code: 1001, wasClean: true })
  t.is(out.oldExit, 'code 0, signal null', 'the old worker closed and exited, not killed by the signal')
  t.true(out.replaced)
  t.deepEqual(out.alive, [])
})

test('a rolling restart whose old worker is handed connections as it closes: every one is served, none is left hanging', async (t) => {
  t.timeout(40_000)
  const out = await scenario('handoff-across-close')
  t.deepEqual(out.opened, Array(6).fill('opened'))
  t.true(out.replaced)
  t.deepEqual(out.alive, [])
})

test('a closed worker whose primary never answers its last message exits after 5 s, not never', async (t) => {
  t.timeout(40_000)
  const out = await scenario('silent-primary')
  t.is(typeof out.exitedAfter, 'number', String(out.exitedAfter))
  t.true((out.exitedAfter as number) >= 4900 && (out.exitedAfter as number) < 8000, `exited ${String(out.exitedAfter)} ms after it was asked to stop`)
  t.deepEqual(out.alive, [])
})

test('a worker told to stop twice at once (SIGTERM and the primary\'s stop) whose close rejects: it asks the primary once, and its exit code 1 survives the round trip', async (t) => {
  t.timeout(40_000)
  const out = await scenario('close-fails-twice-asked')
  t.is(out.close, 'resolved')
  t.is(out.exit, 'code 1, signal null')
  t.is(out.asked, 1)
  t.deepEqual(out.alive, [])
})
