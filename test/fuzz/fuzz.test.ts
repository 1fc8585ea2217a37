/**
 * The CI-sized fuzz run: every target of test/fuzz/targets.ts with a fixed seed and a few
 * thousand runs (a few seconds each), so `npm test` checks the same invariants `npm run fuzz`
 * checks for minutes. A failure prints the counterexample and the command that replays it.
 * Known bugs (listed with their target in targets.ts, each fixed elsewhere) are let through here
 * only; `npm run fuzz` still fails on them.
 */

import test from 'ava'
import { describeFailure, runTarget, TARGETS } from './targets.js'

/** Fixed, so a CI failure replays exactly. */
const SEED = 6455
/** A bound on each target's time, never an assertion: a slow machine does fewer runs and says so. */
const TIME_LIMIT_MS = 20_000

for (const target of TARGETS) {
  test(`fuzz ${target.name}: ${target.ciRuns} runs, seed ${SEED}`, (t) => {
    t.log(target.summary)
    const result = runTarget(target, { seed: SEED, numRuns: target.ciRuns, timeLimitMs: TIME_LIMIT_MS, skipKnown: true })
    for (const bug of target.known?.bugs ?? []) t.log(`known bug let through: ${bug.id}: ${bug.description}`)
    t.log(`${result.runs} runs in ${(result.ms / 1000).toFixed(1)} s, seed ${result.seed}${result.interrupted ? ' (stopped by the time bound)' : ''}`)
    if (result.failed) t.fail(describeFailure(result))
    else t.true(result.runs > 0)
  })
}
