// The heartbeat rule on its own, and the sweeper's bookkeeping.
import test from 'ava'
import { HeartbeatSweeper, judge } from '../../src/driver/heartbeat.js'

const base = { seen: false, paused: false, moved: false, awaiting: false, lastLife: 0 }

test('traffic is life', (t) => {
  t.is(judge({ ...base, seen: true, awaiting: true }, 100_000, 30, 10), 'alive')
})

test('idle and not paused: ping; still no pong at the next visit: drop', (t) => {
  t.is(judge(base, 50, 30, 10), 'ping')
  t.is(judge({ ...base, awaiting: true }, 60, 30, 10), 'drop')
})

test('paused: no ping (no pong could arrive); moved is life; nothing for interval + timeout: drop', (t) => {
  t.is(judge({ ...base, paused: true, moved: true }, 1000, 30, 10), 'alive')
  t.is(judge({ ...base, paused: true, lastLife: 0 }, 39, 30, 10), 'wait')
  t.is(judge({ ...base, paused: true, lastLife: 0 }, 40, 30, 10), 'drop')
  t.is(judge({ ...base, paused: true, awaiting: true, lastLife: 0 }, 39, 30, 10), 'wait')
})

test('the sweeper visits only what is due and stops its timer when empty', (t) => {
  const sweeper = new HeartbeatSweeper(1000)
  const visits: string[] = []
  const due = { heartbeatDue: 0, onHeartbeat: () => { visits.push('due') } }
  const later = { heartbeatDue: Infinity, onHeartbeat: () => { visits.push('later') } }
  sweeper.add(due)
  sweeper.add(later)
  sweeper.sweep()
  t.deepEqual(visits, ['due'])
  sweeper.delete(due)
  sweeper.delete(later)
  t.is(sweeper.size, 0)
  t.false(process.getActiveResourcesInfo().includes('Timeout') && sweeper.size > 0)
})
