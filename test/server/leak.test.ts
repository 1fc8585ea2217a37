/**
 * The leak test, CI-sized: a few hundred connections through every way a connection ends (1000,
 * 1011 from a throwing handler, client reset, close timeout, heartbeat drop, protocol error,
 * budget 1013); afterwards the heap is back to its baseline after GC, every server-side
 * connection object has been collected, and no timer, socket or listener is left.
 * `npm run reliability` runs the same with 10,000 connections.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import test from 'ava'
import { ENDINGS, leakProblems, runLeak } from '../reliability/leak.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

// One run serves both tests: the leak checks, and the ending that needs the memory budget.
let run: ReturnType<typeof runLeak> | undefined
const report = async (): ReturnType<typeof runLeak> => await (run ??= runLeak({ perEnding: 40, concurrency: 20, maxMsPerEnding: 15_000, gc }))

test.serial('every ending leaves no heap, connection object, timer, socket or listener behind', async (t) => {
  t.timeout(60_000)
  const r = await report()
  for (const [ending, e] of Object.entries(r.endings)) {
    t.log(`${ending}: ${e.connections} connections, server codes ${JSON.stringify(e.codes)}${e.unsupported !== undefined ? ` (${e.unsupported})` : ''}`)
  }
  t.log(`heap ${r.heapBaseline} -> ${r.heapAfter} bytes, ${r.uncollected} connections uncollected, ${r.seconds.toFixed(1)} s`)
  t.deepEqual(leakProblems(r).filter((p) => !p.startsWith('budget:')), [])
  t.is(Object.keys(r.endings).length, Object.keys(ENDINGS).length)
})

test.serial('a frame that cannot get memory under memoryBudget ends its connection with 1013, leaving nothing behind', async (t) => {
  t.timeout(60_000)
  const r = await report()
  t.deepEqual(leakProblems(r).filter((p) => p.startsWith('budget:')), [])
  t.true(r.endings.budget.connections > 0)
})
