/**
 * A program for test/cluster/cluster.test.ts: `serveCluster` with workers that fail on cue, and
 * in the primary one scripted scenario (argv[2]) that prints its outcome as one JSON line.
 * A worker's `start` reads the file named by WSPIPE_FIXTURE_FLAG when it starts: `slow` makes it
 * take 1 s, `fail` makes it throw, `hang` makes it never finish. Worker 2 fails whenever
 * WSPIPE_FIXTURE_FAIL_SECOND is set.
 */
import cluster from 'node:cluster'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { serveCluster, WebSocketServer } from '../../src/index.js'

const flag = process.env.WSPIPE_FIXTURE_FLAG!
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const scenario = process.argv[2]
const workers = scenario === 'initial-fork-fails' ? 2 : 1

/** Worker processes still running, whatever the primary's handle says. */
function alive (): number[] {
  return Object.values(cluster.workers ?? {}).filter((w) => w !== undefined && !w.isDead()).map((w) => w!.process.pid!)
}

const run = serveCluster({
  workers,
  signals: false,
  start: async () => {
    const cue = existsSync(flag) ? readFileSync(flag, 'utf8') : ''
    if (cue === 'slow') await sleep(1000)
    if (cue === 'hang') await new Promise(() => {})
    if (cue === 'fail' || (process.env.WSPIPE_FIXTURE_FAIL_SECOND !== undefined && cluster.worker?.id === 2)) {
      await sleep(300)
      throw new Error('start failed on cue')
    }
    const server = new WebSocketServer({ closeTimeout: 200 }).register('', async () => {})
    await server.listen({ port: 0 })
    return server
  }
})

if (cluster.isPrimary) {
  const out: Record<string, unknown> = { scenario }
  try {
    if (scenario === 'initial-fork-fails') {
      out.serveCluster = await run.then(() => 'resolved', (err: Error) => `rejected: ${err.message}`)
      await sleep(500)
    } else {
      const primary = (await run)!
      if (scenario === 'close-while-respawning') {
        // The replacement of a crashed worker is still starting when close() is called.
        writeFileSync(flag, 'slow')
        process.kill(primary.pids[0], 'SIGKILL')
        await sleep(700)
        await primary.close()
        out.pidsAfterClose = primary.pids
        await sleep(1500)
      } else if (scenario === 'close-while-start-hangs') {
        // The replacement of a crashed worker never finishes starting.
        writeFileSync(flag, 'hang')
        process.kill(primary.pids[0], 'SIGKILL')
        await sleep(1500)
        out.close = await Promise.race([primary.close().then(() => 'resolved'), sleep(8000).then(() => 'still pending after 8 s')])
        await sleep(300)
      } else if (scenario === 'close-after-failed-restart') {
        writeFileSync(flag, 'fail')
        const restarted = primary.restart().then(() => 'resolved', (err: Error) => `rejected: ${err.message}`)
        await sleep(100)
        out.close = await primary.close().then(() => 'resolved', (err: Error) => `rejected: ${err.message}`)
        out.restart = await restarted
        await sleep(300)
      } else if (scenario === 'respawn-retries') {
        // The first replacement fails to start; a later one, once the cue is gone, serves.
        writeFileSync(flag, 'fail')
        process.kill(primary.pids[0], 'SIGKILL')
        await sleep(1300)
        rmSync(flag, { force: true })
        for (let i = 0; i < 100 && primary.pids.length === 0; i++) await sleep(100)
        out.serving = primary.pids.length
        await primary.close()
      } else {
        throw new Error(`no scenario ${scenario}`)
      }
    }
    out.alive = alive()
  } catch (err) {
    out.error = String(err)
  }
  console.log(JSON.stringify(out))
  for (const pid of alive()) process.kill(pid, 'SIGKILL')
  process.exit(0)
}
