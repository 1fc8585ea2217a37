/**
 * serveCluster's primary when workers fail: a crashed worker's replacement still starting at
 * close(), a rolling restart whose new worker cannot start, an initial worker that cannot start,
 * a replacement that fails and is tried again. Each scenario runs test/cluster/program.ts as a
 * process (node:cluster forks the main module) and reads its one-line JSON outcome.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import test from 'ava'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

async function scenario (name: string, env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'wspipe-cluster-'))
  try {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', 'test/cluster/program.ts', name], {
        cwd: ROOT,
        timeout: 30_000,
        env: { ...process.env, WSPIPE_FIXTURE_FLAG: join(dir, 'cue'), ...env }
      }, (err, out) => { if (err !== null) reject(err); else resolve(out) })
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
