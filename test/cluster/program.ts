/**
 * A program for test/cluster/cluster.test.ts: `serveCluster` with workers that fail on cue, and
 * in the primary one scripted scenario (argv[2]) that prints its outcome as one JSON line.
 * A worker's `start` reads the file named by WSPIPE_FIXTURE_FLAG when it starts: `slow` makes it
 * take 1 s, `fail` makes it throw, `hang` makes it never finish, `crash N` (N > 0) makes it serve
 * and then exit with 3 after 100 ms, leaving `crash N-1`, `block-close` makes its close first tell
 * the primary and then hold its thread for 600 ms (connections handed to it meanwhile wait, unread,
 * in its IPC channel), `close-fails` makes its close reject once the server closed. Worker 2
 * fails whenever WSPIPE_FIXTURE_FAIL_SECOND is set.
 */
import cluster from 'node:cluster'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect, WebSocketServer } from '../../src/index.js'
import { serveCluster } from '../../src/cluster.js'

const flag = process.env.WSPIPE_FIXTURE_FLAG!
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
const scenario = process.argv[2]
const workers = scenario === 'initial-fork-fails' ? 2 : 1

/** Worker processes still running, whatever the primary's handle says. */
function alive (): number[] {
  return Object.values(cluster.workers ?? {}).filter((w) => w !== undefined && !w.isDead()).map((w) => w!.process.pid!)
}

// Its workers must hold their thread as they close from their first start on.
if (cluster.isPrimary && scenario === 'handoff-across-close') writeFileSync(flag, 'block-close')
if (cluster.isPrimary && scenario === 'close-fails-twice-asked') writeFileSync(flag, 'close-fails')

// 'silent-primary': the primary is not serveCluster's; it forks one worker itself and never
// answers the worker's last message.
const run = cluster.isPrimary && scenario === 'silent-primary' ? undefined : serveCluster({
  workers,
  // The primary handles SIGHUP itself only where the scenario is about signals.
  signals: scenario === 'group-sighup',
  respawn: scenario === 'crash-loop' ? { delay: 400, maxDelay: 1200, resetAfter: 1500 } : true,
  start: async () => {
    const cue = existsSync(flag) ? readFileSync(flag, 'utf8') : ''
    const crashes = /^crash (\d+)$/.exec(cue)
    if (crashes !== null && Number(crashes[1]) > 0) {
      writeFileSync(flag, `crash ${Number(crashes[1]) - 1}`)
      setTimeout(() => process.exit(3), 100)
    }
    if (cue === 'slow') await sleep(1000)
    if (cue === 'hang') await new Promise(() => {})
    if (cue === 'fail' || (process.env.WSPIPE_FIXTURE_FAIL_SECOND !== undefined && cluster.worker?.id === 2)) {
      await sleep(300)
      throw new Error('start failed on cue')
    }
    // The '' handler holds its connection open until it closes.
    const server = new WebSocketServer({ closeTimeout: 200 }).register('', async (conn) => { await conn.closed })
    await server.listen({ port: 0 })
    if (cue === 'close-fails') {
      return {
        address: () => server.address(),
        close: async () => {
          await server.close()
          throw new Error('close failed on cue')
        }
      }
    }
    if (cue === 'block-close') {
      return {
        address: () => server.address(),
        close: async () => {
          process.send!({ fixture: 'blocking' })
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600)
          await server.close()
        }
      }
    }
    return server
  }
})

if (cluster.isPrimary) {
  const out: Record<string, unknown> = { scenario }
  try {
    if (scenario === 'silent-primary') {
      const worker = cluster.fork()
      await new Promise<void>((resolve) => worker.on('message', (message: { wspipe?: string }) => { if (message?.wspipe === 'ready') resolve() }))
      const exited = new Promise<number>((resolve) => worker.once('exit', () => resolve(performance.now())))
      const asked = performance.now()
      worker.send({ wspipe: 'stop' })
      out.exitedAfter = await Promise.race([exited.then((at) => Math.round(at - asked)), sleep(15_000).then(() => 'no exit after 15 s')])
    } else if (scenario === 'initial-fork-fails') {
      out.serveCluster = await run!.then(() => 'resolved', (err: Error) => `rejected: ${err.message}`)
      await sleep(500)
    } else {
      const primary = (await run!)!
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
      } else if (scenario === 'crash-loop') {
        // Workers that crash soon after serving are replaced after pauses that double (400,
        // 800, then 1200: capped); one that served past resetAfter is replaced after 400 again.
        const forks: number[] = []
        const exits: number[] = []
        cluster.on('fork', () => forks.push(performance.now()))
        cluster.on('exit', () => exits.push(performance.now()))
        const serves = async (n: number): Promise<void> => {
          for (let i = 0; i < 400 && !(forks.length === n && primary.pids.length === 1); i++) await sleep(50)
          if (forks.length !== n || primary.pids.length !== 1) throw new Error(`replacement ${n} not serving within 20 s`)
        }
        writeFileSync(flag, 'crash 2')
        process.kill(primary.pids[0], 'SIGKILL')
        // Two replacements crash; the third serves.
        await serves(3)
        const stable = primary.pids[0]
        await sleep(1700)
        process.kill(stable, 'SIGKILL')
        await serves(4)
        out.pauses = forks.map((at, i) => Math.round(at - exits[i]))
        out.forks = forks.length
        await primary.close()
      } else if (scenario === 'group-sighup') {
        // SIGHUP to the whole process group (this primary leads it): the worker ignores it, the
        // primary's rolling restart replaces it, and its connection gets 1001.
        const old = primary.pids[0]
        const oldExit = new Promise<string>((resolve) => {
          cluster.on('exit', (worker, code, signal) => { if (worker.process.pid === old) resolve(`code ${String(code)}, signal ${String(signal)}`) })
        })
        const conn = await connect(`ws://127.0.0.1:${primary.address!.port}/`)
        process.kill(-process.pid, 'SIGHUP')
        out.closed = (await Promise.race([conn.closed, sleep(10_000).then(() => 'not closed after 10 s')]))
        out.oldExit = await Promise.race([oldExit, sleep(10_000).then(() => 'no exit after 10 s')])
        for (let i = 0; i < 200 && !(primary.pids.length === 1 && primary.pids[0] !== old); i++) await sleep(50)
        out.replaced = primary.pids.length === 1 && primary.pids[0] !== old
        await primary.close()
      } else if (scenario === 'handoff-across-close') {
        // A rolling restart whose old worker is handed connections while it closes: each must be
        // served (by the new worker), none left open with nobody behind it.
        const old = primary.pids[0]
        const blocking = new Promise<void>((resolve) => {
          cluster.on('message', (worker, message: { fixture?: string }) => { if (worker.process.pid === old && message?.fixture === 'blocking') resolve() })
        })
        const restarted = primary.restart()
        await blocking
        // The old and the new worker both take turns in the primary's round robin until the old
        // one's close reaches it: some of these are handed to the old one, whose thread is held.
        const opened = await Promise.all(Array.from({ length: 6 }, async () => {
          try {
            const conn = await connect(`ws://127.0.0.1:${primary.address!.port}/`, { handshakeTimeout: 4000 })
            conn.close()
            return 'opened'
          } catch (err) {
            return String(err)
          }
        }))
        await restarted
        out.opened = opened
        out.replaced = primary.pids.length === 1 && primary.pids[0] !== old
        await primary.close()
      } else if (scenario === 'close-fails-twice-asked') {
        // A SIGTERM and the primary's stop reach the worker at once, and its close rejects: it
        // asks the primary once, and exits 1 on the answer.
        const pid = primary.pids[0]
        const exit = new Promise<string>((resolve) => {
          cluster.on('exit', (worker, code, signal) => { if (worker.process.pid === pid) resolve(`code ${String(code)}, signal ${String(signal)}`) })
        })
        let asked = 0
        cluster.on('message', (worker, message: { wspipe?: string }) => { if (worker.process.pid === pid && message?.wspipe === 'closed') asked++ })
        process.kill(pid, 'SIGTERM')
        out.close = await Promise.race([primary.close().then(() => 'resolved'), sleep(8000).then(() => 'still pending after 8 s')])
        out.exit = await Promise.race([exit, sleep(2000).then(() => 'no exit')])
        out.asked = asked
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
