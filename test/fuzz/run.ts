/**
 * `npm run fuzz`: the fuzz targets of test/fuzz/targets.ts for minutes instead of seconds.
 *
 *   npm run fuzz                                  # every target, 180 s in all, a fresh seed
 *   npm run fuzz -- --seconds 600 --seed 42       # longer, with a chosen seed
 *   npm run fuzz -- --target session              # one target (repeat --target for more)
 *   npm run fuzz -- --target session --seed 42 --path "1234:5:0"   # replay a counterexample
 *   npm run fuzz -- --runs 100000                 # a fixed number of runs per target instead of a time
 *   npm run fuzz -- --skip-known                  # let the known bugs listed in targets.ts through
 *
 * Prints, per target, the runs, the seed and the time; for a failure, the shrunk counterexample,
 * the error and the command that replays it. Exits 1 if any target failed.
 */

import { parseArgs } from 'node:util'
import { describeFailure, runTarget, TARGETS, type TargetResult } from './targets.js'

/** Time given to shrinking a counterexample further, after the run that found it. */
const SHRINK_MS = 60_000

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '180' },
    seed: { type: 'string' },
    target: { type: 'string', multiple: true },
    path: { type: 'string' },
    runs: { type: 'string' },
    'skip-known': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false }
  }
})

if (values.help) {
  console.log('usage: npm run fuzz -- [--seconds N] [--seed S] [--target NAME]... [--path P] [--runs N] [--skip-known]')
  console.log(`targets:\n${TARGETS.map((t) => `  ${t.name.padEnd(20)} ${t.summary}`).join('\n')}`)
  process.exit(0)
}

const names = values.target ?? TARGETS.map((t) => t.name)
const unknown = names.filter((n) => !TARGETS.some((t) => t.name === n))
if (unknown.length > 0) {
  console.error(`unknown target ${unknown.join(', ')}; targets: ${TARGETS.map((t) => t.name).join(', ')}`)
  process.exit(2)
}
const targets = TARGETS.filter((t) => names.includes(t.name))
const seconds = Number(values.seconds)
const seed = values.seed !== undefined ? Number(values.seed) : (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0
const runs = values.runs !== undefined ? Number(values.runs) : undefined
if (!(seconds > 0) || !Number.isInteger(seed) || (runs !== undefined && !(runs > 0))) {
  console.error('--seconds and --runs must be positive numbers, --seed an integer')
  process.exit(2)
}
if (values.path !== undefined && targets.length !== 1) {
  console.error('--path replays one target: give exactly one --target')
  process.exit(2)
}

const perTargetMs = (seconds * 1000) / targets.length
console.log(values.path !== undefined
  ? `replaying ${targets[0].name}, seed ${seed}, path ${values.path}`
  : `fuzzing ${targets.length} target(s), seed ${seed}, ${runs !== undefined ? `${runs} runs each` : `${(perTargetMs / 1000).toFixed(0)} s each`}`)

let failures = 0
for (const target of targets) {
  let result: TargetResult = runTarget(target, {
    seed,
    numRuns: runs ?? 2 ** 31 - 1,
    timeLimitMs: values.path !== undefined ? SHRINK_MS : runs !== undefined ? 2 ** 31 - 1 : perTargetMs,
    path: values.path,
    skipKnown: values['skip-known']
  })
  if (result.failed && values.path === undefined && result.path !== null) {
    // The time limit may have cut shrinking short: go on from where it stopped.
    const more = runTarget(target, { seed, numRuns: 1, timeLimitMs: SHRINK_MS, path: result.path, skipKnown: values['skip-known'] })
    if (more.failed) result = { ...more, runs: result.runs, ms: result.ms + more.ms }
  }
  const line = `${target.name.padEnd(20)} ${String(result.runs).padStart(9)} runs  ${(result.ms / 1000).toFixed(1).padStart(6)} s  seed ${result.seed}`
  if (!result.failed) {
    console.log(`${line}  ok`)
    continue
  }
  failures++
  console.log(`${line}  FAILED`)
  console.log(describeFailure(result).replace(/^/gm, '    '))
}
console.log(failures === 0 ? 'no failures' : `${failures} target(s) failed`)
process.exit(failures === 0 ? 0 : 1)
